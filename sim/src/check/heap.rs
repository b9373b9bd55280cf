//! The uncharged-memory check: each node's counted heap (see `crate::heap`) against
//! its ledger.
//!
//! A node's *uncharged* heap is its live heap bytes minus its ledger's total minus the
//! bytes its world keeps on the node's heap for the checkers (`World::checker_held`).
//! The harness reads it at three checkpoints: the **baseline**, the most the ledger
//! sampler saw in [`BASELINE_MS`] while the node was up (it has booted and its clients
//! have connected, so per-connection costs are in it), **after load** (the
//! safety phase's load has just stopped, faults still in place) and **after quiet** (the
//! quiescence check, when every ledger account must be back to its baseline too; a node
//! killed or restarted since the baseline window opened is judged here only, as its
//! after-load reading is a new process's recovery, not what the load left). Fixed
//! costs (a connection's state, a stream's structures, a subscription table) sit in the
//! baseline; what grows with the load must be charged, so uncharged heap more than
//! [`UNCHARGED_LIMIT`] over the baseline at either later checkpoint fails the run.

use super::{Violation, v};
use weir_traces::NodeNo;

/// When the baseline is read, in ms from the run's start: the sampler's readings in
/// this window (every 100 ms), highest uncharged heap kept.
pub const BASELINE_MS: std::ops::Range<u64> = 1_000..3_000;

/// How far uncharged heap may rise over its baseline, in bytes.
///
/// Chosen from the figures of every scenario over seeds 0..40 (docs/TESTING.md,
/// "Uncharged memory"): the largest rise of a passing run stays well below it, while a
/// node that keeps even a few bytes per message of a one-second load goes past it.
pub const UNCHARGED_LIMIT: i64 = 1024 * 1024;

/// A node's heap and ledger at one checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapReading {
    /// Live bytes the node's tasks allocated and nobody freed yet.
    pub heap: i64,
    /// The sum of the node's ledger accounts, in bytes.
    pub ledger: u64,
    /// Bytes the world keeps on the node's heap for its checkers.
    pub held: u64,
}

impl HeapReading {
    /// Heap no account charges: `heap - ledger - held`.
    pub fn uncharged(&self) -> i64 {
        self.heap - self.ledger as i64 - self.held as i64
    }
}

impl std::fmt::Display for HeapReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "uncharged {} KiB (heap {} KiB, ledger {} KiB, checker-held {} KiB)",
            self.uncharged() / 1024,
            self.heap / 1024,
            self.ledger / 1024,
            self.held / 1024
        )
    }
}

/// One node's readings at the checkpoints (`None`: the node was down then).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeHeap {
    /// The node.
    pub node: NodeNo,
    /// In [`BASELINE_MS`] (the reading with the most uncharged heap).
    pub baseline: Option<HeapReading>,
    /// When the safety phase's load stopped.
    pub after_load: Option<HeapReading>,
    /// At the quiescence check.
    pub after_quiet: Option<HeapReading>,
    /// The largest heap the ledger sampler saw, in bytes.
    pub peak_heap: i64,
}

/// `uncharged-memory`: a node's uncharged heap rose more than `limit` bytes over its
/// baseline with the load, or stayed that high after the load ended.
pub fn uncharged_memory(nodes: &[NodeHeap], limit: i64) -> Vec<Violation> {
    let mut out = Vec::new();
    for n in nodes {
        let Some(base) = n.baseline else { continue };
        for (when, reading) in [("under load", n.after_load), ("after the load ended", n.after_quiet)] {
            if let Some(r) = reading
                && r.uncharged() - base.uncharged() > limit
            {
                out.push(v(
                    "uncharged-memory",
                    format!(
                        "n{} uncharged heap rose {} KiB {when} (limit {} KiB): {r}; baseline {base}",
                        n.node,
                        (r.uncharged() - base.uncharged()) / 1024,
                        limit / 1024,
                    ),
                ));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(heap: i64, ledger: u64, held: u64) -> Option<HeapReading> {
        Some(HeapReading { heap, ledger, held })
    }

    #[test]
    fn growth_over_the_baseline_that_no_account_charges_fails() {
        let ok = NodeHeap {
            node: 2,
            baseline: r(500_000, 0, 0),
            after_load: r(3_000_000, 2_400_000, 0),
            after_quiet: r(520_000, 0, 10_000),
            peak_heap: 3_000_000,
        };
        assert!(uncharged_memory(std::slice::from_ref(&ok), 100_000).is_empty());
        let grows = NodeHeap { after_load: r(3_000_000, 1_000_000, 0), ..ok.clone() };
        let vs = uncharged_memory(&[grows], 100_000);
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].invariant, "uncharged-memory");
        assert!(vs[0].detail.starts_with("n2 uncharged heap rose 1464 KiB under load"), "{}", vs[0].detail);
        let stays = NodeHeap { after_quiet: r(800_000, 0, 0), ..ok.clone() };
        let vs = uncharged_memory(&[stays], 100_000);
        assert!(vs[0].detail.contains("after the load ended"), "{}", vs[0].detail);
        // Checker-held bytes are not the node's, and a node without a baseline is skipped.
        let held = NodeHeap { after_quiet: r(800_000, 0, 300_000), ..ok.clone() };
        assert!(uncharged_memory(&[held], 100_000).is_empty());
        let down = NodeHeap { baseline: None, after_quiet: r(9_000_000, 0, 0), ..ok };
        assert!(uncharged_memory(&[down], 100_000).is_empty());
    }
}
