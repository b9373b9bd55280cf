//! The known-bug catalogue: the CLI names and descriptions of deliberately injectable
//! defects, each mapped onto the switch of the component it breaks
//! ([`weir_core::raft::RaftBugs`], [`weir_core::store::StoreBugs`],
//! [`weir_core::jetstream::engine::JsBugs`], [`weir_core::server::nats::BrokerBugs`]). Which scenarios
//! are expected to catch each bug is recorded in the scenario registry
//! (`weir-scenarios`), not here.
//!
//! To add a bug: add its switch next to the code it breaks, a variant here (name,
//! description, the invariant it breaks, and the arm of the mapping that sets the switch),
//! and list it under `catches` of the scenarios that should catch it.

use std::fmt;
use std::str::FromStr;
use weir_core::jetstream::engine::JsBugs;
use weir_core::raft::RaftBugs;
use weir_core::server::nats::BrokerBugs;
use weir_core::store::StoreBugs;

/// One deliberately injectable defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// Raft term and vote are never written to disk, so a restarted node can vote twice in a term.
    VotesNotPersisted,
    /// The Raft leader commits entries as soon as it has them, without a quorum.
    CommitBeforeQuorum,
    /// The Raft leader ignores the catch-up window and sends a lagging follower everything at once.
    UnboundedCatchup,
    /// The file store acknowledges an append before syncing it (the sync happens at the next write).
    LazyFsync,
    /// The store's buffer pool charges past its cap instead of refusing.
    UnboundedBufferPool,
    /// Store message reads never return their buffer's charge to the pool's account.
    BufferLeak,
    /// JetStream sends the PubAck at append time, before the group commit syncs it.
    AckBeforeStore,
    /// A consumer's ack floor moves to an acked message while older ones are still pending.
    AckFloorSkips,
    /// A stream's dedup window is not rebuilt when it is opened after a restart.
    DedupForgets,
    /// A file stream's limit evictions take effect at append, before the publish is durable.
    EvictBeforeDurable,
    /// A NATS server loses (indexes unmatchably) a peer's wildcard interest re-sent after a route reconnect.
    RouteDropsInterest,
    /// A NATS server forwards a queue-group message to a peer even when a local member got it.
    QueueDoubleDelivery,
    /// A NATS server keeps every message it delivers in a history buffer no ledger account charges.
    UnchargedBuffer,
}

impl Bug {
    /// Every known bug, in a stable order.
    pub const ALL: [Bug; 13] = [
        Bug::VotesNotPersisted,
        Bug::CommitBeforeQuorum,
        Bug::UnboundedCatchup,
        Bug::LazyFsync,
        Bug::UnboundedBufferPool,
        Bug::BufferLeak,
        Bug::AckBeforeStore,
        Bug::AckFloorSkips,
        Bug::DedupForgets,
        Bug::EvictBeforeDurable,
        Bug::RouteDropsInterest,
        Bug::QueueDoubleDelivery,
        Bug::UnchargedBuffer,
    ];

    /// The CLI name of the bug (`--bug NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => "votes-not-persisted",
            Bug::CommitBeforeQuorum => "commit-before-quorum",
            Bug::UnboundedCatchup => "unbounded-catchup",
            Bug::LazyFsync => "lazy-fsync",
            Bug::UnboundedBufferPool => "unbounded-buffer-pool",
            Bug::BufferLeak => "buffer-leak",
            Bug::AckBeforeStore => "ack-before-store",
            Bug::AckFloorSkips => "ack-floor-skips",
            Bug::DedupForgets => "dedup-forgets",
            Bug::EvictBeforeDurable => "evict-before-durable",
            Bug::RouteDropsInterest => "route-drops-interest",
            Bug::QueueDoubleDelivery => "queue-double-delivery",
            Bug::UnchargedBuffer => "uncharged-buffer",
        }
    }

    /// A one-line description for `weir-sim bugs`.
    pub fn describe(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => {
                "Raft term and vote are not persisted; a restarted node may vote twice in one term"
            }
            Bug::CommitBeforeQuorum => "the Raft leader commits without a quorum; acknowledged entries can be lost",
            Bug::UnboundedCatchup => {
                "the Raft catch-up window is ignored; bytes in flight to a lagging follower exceed raft.catchup"
            }
            Bug::LazyFsync => {
                "the file store acknowledges appends before fsync; a power cut loses acknowledged messages"
            }
            Bug::UnboundedBufferPool => {
                "the store's buffer pool charges past its cap (whole blocks at recovery); store.buffers exceeds its limit"
            }
            Bug::BufferLeak => "store reads never return their buffer charge; store.buffers stays above baseline",
            Bug::AckBeforeStore => {
                "JetStream sends the PubAck before the append is synced; a power cut loses acknowledged messages"
            }
            Bug::AckFloorSkips => "an explicit ack moves the consumer's ack floor past older pending messages",
            Bug::DedupForgets => {
                "the dedup window is empty after a restart; a Msg-Id retry within the window is stored twice"
            }
            Bug::EvictBeforeDurable => {
                "a stream's limit evictions take effect at append; a publish refused by a failed commit still evicts (a failed KV put loses the previous value)"
            }
            Bug::RouteDropsInterest => {
                "wildcard interest a peer re-sends after a route reconnect is held but never matched; messages are not forwarded"
            }
            Bug::QueueDoubleDelivery => {
                "a queue-group message with a local member is also forwarded to a peer's member; the group gets it twice"
            }
            Bug::UnchargedBuffer => {
                "a NATS server appends every message it delivers to a never-trimmed buffer no ledger account charges; its heap grows with the load"
            }
        }
    }

    /// The invariant a run with this bug must break: the first seed of a catching
    /// scenario that fails must fail on this one (a panic, a liveness timeout or any
    /// other invariant does not count), and must pass with the bug off.
    pub fn invariant(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => "election-safety",
            Bug::CommitBeforeQuorum => "acked-durability",
            Bug::UnboundedCatchup | Bug::UnboundedBufferPool => "memory-bound",
            Bug::LazyFsync => "acked-durability",
            Bug::BufferLeak => "memory-baseline",
            Bug::AckBeforeStore => "js-acked-durability",
            Bug::AckFloorSkips => "js-ack-floor",
            Bug::DedupForgets => "js-dedup",
            Bug::EvictBeforeDurable => "js-acked-kept",
            Bug::RouteDropsInterest => "pubsub-lost-fault-free",
            Bug::QueueDoubleDelivery => "pubsub-queue-once",
            Bug::UnchargedBuffer => "uncharged-memory",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL.iter().copied().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}' (known: {})", names.join(", "))
        })
    }
}

/// The set of bugs enabled for a run (empty in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BugSet(u32);

impl BugSet {
    /// No bugs: the production setting.
    pub const NONE: BugSet = BugSet(0);

    /// Whether `bug` is enabled.
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }

    /// This set with `bug` added.
    pub fn with(self, bug: Bug) -> BugSet {
        BugSet(self.0 | (1 << bug as u32))
    }

    /// The enabled bugs in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.has(*b))
    }

    /// Whether no bug is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The Raft state machine's switches for this set.
    pub fn raft(self) -> RaftBugs {
        let mut r = RaftBugs::NONE;
        for b in self.iter() {
            match b {
                Bug::VotesNotPersisted => r.votes_not_persisted = true,
                Bug::CommitBeforeQuorum => r.commit_before_quorum = true,
                Bug::UnboundedCatchup => r.unbounded_catchup = true,
                _ => {}
            }
        }
        r
    }

    /// The file store's switches for this set.
    pub fn store(self) -> StoreBugs {
        let mut s = StoreBugs::default();
        for b in self.iter() {
            match b {
                Bug::LazyFsync => s.lazy_fsync = true,
                Bug::UnboundedBufferPool => s.unbounded_buffer_pool = true,
                Bug::BufferLeak => s.buffer_leak = true,
                _ => {}
            }
        }
        s
    }

    /// The JetStream engine's switches for this set.
    pub fn js(self) -> JsBugs {
        let mut j = JsBugs::default();
        for b in self.iter() {
            match b {
                Bug::AckBeforeStore => j.ack_before_store = true,
                Bug::AckFloorSkips => j.consumer.ack_floor_skips = true,
                Bug::DedupForgets => j.stream.dedup_forgets = true,
                Bug::EvictBeforeDurable => j.evict_before_durable = true,
                _ => {}
            }
        }
        j
    }
}

impl BugSet {
    /// The NATS broker's switches for this set.
    pub fn broker(self) -> BrokerBugs {
        let mut n = BrokerBugs::default();
        for b in self.iter() {
            match b {
                Bug::RouteDropsInterest => n.route_drops_interest = true,
                Bug::QueueDoubleDelivery => n.queue_double_delivery = true,
                Bug::UnchargedBuffer => n.uncharged_buffer = true,
                _ => {}
            }
        }
        n
    }
}

impl FromIterator<Bug> for BugSet {
    fn from_iter<T: IntoIterator<Item = Bug>>(iter: T) -> Self {
        iter.into_iter().fold(BugSet::NONE, BugSet::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>().unwrap(), b);
        }
        assert!("no-such-bug".parse::<Bug>().unwrap_err().contains("unknown bug"));
    }

    #[test]
    fn set_membership() {
        let s: BugSet = [Bug::UnboundedCatchup].into_iter().collect();
        assert!(s.has(Bug::UnboundedCatchup));
        assert!(!s.has(Bug::VotesNotPersisted));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Bug::UnboundedCatchup]);
    }

    #[test]
    fn every_bug_sets_exactly_one_component_switch() {
        assert_eq!(BugSet::NONE.raft(), RaftBugs::NONE);
        assert_eq!(BugSet::NONE.store(), StoreBugs::default());
        assert_eq!(BugSet::NONE.js(), JsBugs::default());
        assert_eq!(BugSet::NONE.broker(), BrokerBugs::default());
        for b in Bug::ALL {
            let s = BugSet::NONE.with(b);
            let r = s.raft();
            let st = s.store();
            let j = s.js();
            let n = s.broker();
            let on = [r.votes_not_persisted, r.commit_before_quorum, r.unbounded_catchup]
                .into_iter()
                .chain([st.lazy_fsync, st.unbounded_buffer_pool, st.buffer_leak])
                .chain([j.ack_before_store, j.consumer.ack_floor_skips, j.stream.dedup_forgets, j.evict_before_durable])
                .chain([n.route_drops_interest, n.queue_double_delivery, n.uncharged_buffer])
                .filter(|&x| x)
                .count();
            assert_eq!(on, 1, "{b}");
        }
    }
}
