//! How much the `invariants()` checks may cost.
//!
//! Every state machine checks its invariants after each mutation in builds with debug
//! assertions. A check that walks the whole state (every subject of a stream, every
//! pending ack of a consumer, every consumer of the engine) makes each operation cost
//! O(state), so a debug `weir` binary serving a large stream slows to a crawl: 220,000
//! publishes on distinct subjects each walked every subject before them (quadratic, over
//! a minute where nats-server takes 17 s), and the engine lock was held for the walks,
//! long enough to starve push consumers' heartbeats.
//!
//! The rule: unit tests (`cfg(test)`) and the simulation build (`cfg(madsim)`) always run
//! the full walks (their states are small and finding bugs is their job); other debug
//! builds (a debug binary, the in-process servers of the integration tests) run a walk
//! only over at most [`FULL_WALK_ITEMS`] items and skip larger ones. The O(1) parts of a
//! check always run.

/// The largest walk an invariant check makes outside unit tests and the simulation.
pub const FULL_WALK_ITEMS: usize = 4096;

/// Whether an invariant check should walk `items` items (see the module docs).
#[inline]
pub fn walk(items: usize) -> bool {
    cfg!(any(test, madsim)) || items <= FULL_WALK_ITEMS
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_tests_always_walk() {
        assert!(super::walk(usize::MAX));
        assert!(super::walk(0));
    }
}
