//! The Raft state machine. (Skeleton: the implementation replaces the bodies.)

use super::{Config, Envelope, Index, NodeId, ProposeError, Ready, Restored, Role, Term};
use crate::mem::Account;
use std::sync::Arc;

/// One member of a Raft group, as a pure state machine.
#[derive(Debug)]
pub struct Raft {
    _config: Config,
}

impl Raft {
    /// Build a member from its recovered state. `seed` seeds the election-timeout RNG;
    /// `pending` and `catchup` are the ledger accounts it charges; `now_ms` is the current time.
    pub fn new(
        config: Config,
        restored: Restored,
        seed: u64,
        pending: Arc<Account>,
        catchup: Arc<Account>,
        now_ms: u64,
    ) -> Raft {
        let _ = (restored, seed, pending, catchup, now_ms);
        Raft { _config: config }
    }

    /// Advance time: elections, heartbeats, check-quorum, stalled-replication recovery.
    pub fn tick(&mut self, now_ms: u64) {
        let _ = now_ms;
        todo!()
    }

    /// Handle a message from a peer.
    pub fn step(&mut self, now_ms: u64, env: Envelope) {
        let _ = (now_ms, env);
        todo!()
    }

    /// Propose `data` (leader only). Returns the index it will commit at, if it commits.
    pub fn propose(&mut self, now_ms: u64, data: Vec<u8>) -> Result<Index, ProposeError> {
        let _ = (now_ms, data);
        todo!()
    }

    /// The application took a snapshot `data` of its state as of `index` (≤ applied):
    /// record it (for followers that need it) and drop log entries up to `index`.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        let _ = (index, data);
        todo!()
    }

    /// Take the effects produced since the last call.
    pub fn ready(&mut self) -> Ready {
        todo!()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        todo!()
    }
    /// Current role.
    pub fn role(&self) -> Role {
        todo!()
    }
    /// Current term.
    pub fn term(&self) -> Term {
        todo!()
    }
    /// Known leader of the current term.
    pub fn leader(&self) -> Option<NodeId> {
        todo!()
    }
    /// Commit index.
    pub fn commit_index(&self) -> Index {
        todo!()
    }
    /// Highest index handed out in `Ready::committed` (or covered by a restored snapshot).
    pub fn applied_index(&self) -> Index {
        todo!()
    }
    /// Last index in the log (or the snapshot's last index if the log is empty).
    pub fn last_index(&self) -> Index {
        todo!()
    }
    /// Last index covered by the current snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        todo!()
    }
    /// Number of entries held in memory.
    pub fn log_len(&self) -> usize {
        todo!()
    }
}
