//! Link shaping for simulated routes: per-link latency, bandwidth caps, cuts
//! (partitions) and holds (a paused receiver that reads nothing). madsim's TCP has
//! none of these, so routes consult this through `weir_core::server::link::LinkShaper`.

use crate::node::{self, NodeNo};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use weir_core::raft::NodeId;
use weir_core::server::link::{Gate, LinkShaper};

#[derive(Debug, Default)]
struct NetState {
    base_latency: BTreeMap<(NodeId, NodeId), Duration>,
    extra_latency: BTreeMap<NodeId, Duration>,
    bandwidth: BTreeMap<NodeId, u64>,
    cut: BTreeSet<(NodeId, NodeId)>,
    held: BTreeSet<NodeId>,
    link_free_at: BTreeMap<(NodeId, NodeId), Instant>,
}

/// The simulated network's shaping state, shared by all nodes of a run.
#[derive(Debug, Default)]
pub struct SimNet {
    state: Mutex<NetState>,
}

impl SimNet {
    /// A network with no shaping.
    pub fn new() -> Self {
        SimNet::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut NetState) -> R) -> R {
        f(&mut self.state.lock().expect("sim net poisoned"))
    }

    /// Set the base one-way latency of `from -> to`.
    pub fn set_base_latency(&self, from: NodeNo, to: NodeNo, d: Duration) {
        self.with(|s| s.base_latency.insert((node::id(from), node::id(to)), d));
    }

    /// Extra latency on every link touching `node` (zero restores).
    pub fn set_extra_latency(&self, n: NodeNo, d: Duration) {
        self.with(|s| s.extra_latency.insert(node::id(n), d));
    }

    /// Bandwidth cap in bytes/s on links touching `node` (0 removes it).
    pub fn set_bandwidth(&self, n: NodeNo, bytes_per_sec: u64) {
        self.with(|s| s.bandwidth.insert(node::id(n), bytes_per_sec));
    }

    /// Cut `from -> to`.
    pub fn cut(&self, from: NodeNo, to: NodeNo) {
        self.with(|s| s.cut.insert((node::id(from), node::id(to))));
    }

    /// Remove every cut.
    pub fn heal(&self) {
        self.with(|s| s.cut.clear());
    }

    /// Hold (or release) traffic towards `node`.
    pub fn set_held(&self, n: NodeNo, held: bool) {
        let id = node::id(n);
        self.with(|s| if held { s.held.insert(id) } else { s.held.remove(&id) });
    }

    /// Remove all shaping except base latencies.
    pub fn reset_faults(&self) {
        self.with(|s| {
            s.extra_latency.clear();
            s.bandwidth.clear();
            s.cut.clear();
            s.held.clear();
        });
    }

    /// Whether `from -> to` is cut.
    pub fn is_cut(&self, from: NodeNo, to: NodeNo) -> bool {
        self.with(|s| s.cut.contains(&(node::id(from), node::id(to))))
    }
}

impl LinkShaper for SimNet {
    fn delay(&self, from: NodeId, to: NodeId, _bytes: usize) -> Duration {
        self.with(|s| {
            let extra = |n| s.extra_latency.get(&n).copied().unwrap_or_default();
            s.base_latency.get(&(from, to)).copied().unwrap_or_default() + extra(from) + extra(to)
        })
    }

    fn pace(&self, from: NodeId, to: NodeId, bytes: usize) -> Duration {
        let now = Instant::now();
        self.with(|s| {
            let caps = [s.bandwidth.get(&from), s.bandwidth.get(&to)];
            let Some(bw) = caps.into_iter().flatten().copied().filter(|&b| b > 0).min() else {
                return Duration::ZERO;
            };
            // The link is busy until earlier frames have been serialised.
            let send = Duration::from_nanos((bytes as u64).saturating_mul(1_000_000_000) / bw);
            let free = s.link_free_at.get(&(from, to)).copied().unwrap_or(now).max(now);
            let done = free + send;
            s.link_free_at.insert((from, to), done);
            done - now
        })
    }

    fn gate(&self, from: NodeId, to: NodeId) -> Gate {
        self.with(|s| {
            if s.cut.contains(&(from, to)) {
                Gate::Drop
            } else if s.held.contains(&to) {
                Gate::Hold
            } else {
                Gate::Open
            }
        })
    }
}
