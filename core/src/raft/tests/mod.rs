//! Unit tests of the Raft state machine over a small synchronous in-memory network.
//!
//! Messages are delivered in order and immediately (no loss unless a test cuts a link
//! or installs a filter); time only moves when a test advances it. The randomised
//! cluster driver with crashes and faults lives in `core/tests/raft_cluster.rs`.

mod election;
mod flow;
mod fuzz;
mod replication;
mod snapshot;

use super::{Config, Entry, Envelope, NodeId, Raft, RaftAccounts, RaftEvent, Ready, Restored, Role, Term};
use crate::mem::Account;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Tick granularity of [`Net::advance`].
const STEP_MS: u64 = 10;

/// A test entry with a payload that names its index.
fn e(term: Term, index: u64) -> Entry {
    Entry { term, index, data: format!("e{index}").into_bytes() }
}

/// Sees (and may rewrite) a message in flight; `false` drops it.
type Tamper = Box<dyn Fn(&mut Envelope) -> bool>;

/// A cluster of Raft nodes over a perfect network, with optional cuts and filters.
struct Net {
    nodes: BTreeMap<NodeId, Raft>,
    pending: BTreeMap<NodeId, Arc<Account>>,
    catchup: BTreeMap<NodeId, Arc<Account>>,
    log: BTreeMap<NodeId, Arc<Account>>,
    now: u64,
    /// Nodes whose traffic (both ways) is dropped.
    isolated: BTreeSet<NodeId>,
    /// Sees (and may rewrite) every message; `false` drops it.
    tamper: Option<Tamper>,
    /// Everything each node handed out in `committed`, plus restored snapshots as markers.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Every node that announced leadership, per term.
    leaders: BTreeMap<Term, BTreeSet<NodeId>>,
    /// Every message that was delivered.
    delivered: Vec<Envelope>,
    /// Every ready, for tests that inspect persistence output.
    readies: BTreeMap<NodeId, Vec<Ready>>,
}

impl Net {
    /// `n` nodes with default configs tweaked by `tweak`.
    fn new(n: u64, tweak: impl Fn(&mut Config)) -> Net {
        Net::with_state(n, tweak, |_| Restored::default(), (1 << 20, 1 << 20))
    }

    /// `n` nodes with per-node restored state and `(pending, catchup)` account limits.
    fn with_state(
        n: u64,
        tweak: impl Fn(&mut Config),
        restored: impl Fn(NodeId) -> Restored,
        limits: (u64, u64),
    ) -> Net {
        Net::with_limits(n, tweak, restored, (limits.0, limits.1, 1 << 24))
    }

    /// `n` nodes with per-node restored state and `(pending, catchup, log)` account limits.
    fn with_limits(
        n: u64,
        tweak: impl Fn(&mut Config),
        restored: impl Fn(NodeId) -> Restored,
        limits: (u64, u64, u64),
    ) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            pending: BTreeMap::new(),
            catchup: BTreeMap::new(),
            log: BTreeMap::new(),
            now: 0,
            isolated: BTreeSet::new(),
            tamper: None,
            applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            delivered: Vec::new(),
            readies: BTreeMap::new(),
        };
        for id in 1..=n {
            let mut cfg = Config::new(id, (1..=n).collect());
            tweak(&mut cfg);
            let accounts = RaftAccounts::with_limits(limits.0, limits.1, limits.2);
            net.pending.insert(id, accounts.pending.clone());
            net.catchup.insert(id, accounts.catchup.clone());
            net.log.insert(id, accounts.log.clone());
            let raft = Raft::new(cfg, restored(id), 1000 + id, accounts, 0);
            net.nodes.insert(id, raft);
            net.applied.insert(id, Vec::new());
        }
        net
    }

    fn node(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// Propose on `id` at the current time.
    fn propose(&mut self, id: NodeId, data: Vec<u8>) -> Result<u64, crate::raft::ProposeError> {
        let now = self.now;
        self.node(id).propose(now, data)
    }

    /// Collect every node's ready and deliver messages until nothing is left to do.
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let mut queue = VecDeque::new();
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let rd = self.node(id).ready();
                self.node(id).invariants();
                if let Some(s) = rd.snapshot.as_ref().filter(|_| rd.restore) {
                    // Mark the restore in the applied history with an entry-shaped sentinel.
                    let marker = Entry { term: s.meta.last_term, index: s.meta.last_index, data: b"<snap>".to_vec() };
                    self.applied.get_mut(&id).expect("node").push(marker);
                }
                for ev in &rd.events {
                    if let RaftEvent::RoleChanged { term, role: Role::Leader } = ev {
                        self.leaders.entry(*term).or_default().insert(id);
                    }
                }
                self.applied.get_mut(&id).expect("node").extend(rd.committed.iter().cloned());
                queue.extend(rd.messages.iter().cloned());
                self.readies.entry(id).or_default().push(rd);
            }
            if queue.is_empty() {
                return;
            }
            while let Some(mut m) = queue.pop_front() {
                let cut = self.isolated.contains(&m.from) || self.isolated.contains(&m.to);
                if cut || self.tamper.as_ref().is_some_and(|f| !f(&mut m)) {
                    continue;
                }
                self.delivered.push(m.clone());
                let now = self.now;
                if let Some(n) = self.nodes.get_mut(&m.to) {
                    n.step(now, m);
                }
            }
        }
        panic!("network did not quiesce");
    }

    /// Move time forward by `ms` in small ticks, delivering everything after each.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP_MS;
            let now = self.now;
            for n in self.nodes.values_mut() {
                n.tick(now);
            }
            self.drain();
        }
    }

    /// Advance until `cond` holds, failing after `limit_ms`.
    fn advance_until(&mut self, limit_ms: u64, mut cond: impl FnMut(&Net) -> bool) {
        let end = self.now + limit_ms;
        while !cond(self) {
            assert!(self.now < end, "condition not reached within {limit_ms} ms");
            self.advance(STEP_MS);
        }
    }

    /// The current leaders (nodes in role Leader).
    fn leaders_now(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.role() == Role::Leader).map(|(&id, _)| id).collect()
    }

    /// Elect a leader and return it.
    fn elect(&mut self) -> NodeId {
        self.advance_until(5_000, |net| net.leaders_now().len() == 1);
        let l = self.leaders_now()[0];
        self.drain();
        l
    }

    /// Assert that no term ever had two leaders.
    fn assert_election_safety(&self) {
        for (term, ls) in &self.leaders {
            assert!(ls.len() <= 1, "term {term} had leaders {ls:?}");
        }
    }
}
