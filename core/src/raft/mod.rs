//! Raft as a pure state machine: time and input come in as arguments, effects go
//! out as values in a [`Ready`]. No I/O, no clock reads, no global randomness.
//!
//! The shell drives it like this (see `server::node`, through a [`RaftHost`] that owns
//! every group of a node and routes by [`GroupId`]):
//! 1. feed input: [`Raft::tick`] (due at [`Raft::next_deadline`]), [`Raft::step`],
//!    [`Raft::propose`], [`Raft::compact`];
//! 2. take [`Raft::ready`] and, **in this order**: persist `snapshot`, `hard_state`
//!    and `entries` (one fsync), restore the application from `snapshot` if
//!    `restore` is set, apply `committed` in order, and only then send `messages`.
//!    Persisting before sending is what makes votes and append acknowledgements safe.
//!
//! Features: randomised election timeouts from a seeded `ChaCha8Rng`, pre-vote,
//! check-quorum, batched pipelined replication with a per-follower in-flight window
//! charged to `raft.catchup`, commit on quorum for current-term entries, chunked
//! InstallSnapshot, log compaction, proposal back-pressure charged to `raft.pending`,
//! and the in-memory log charged to `raft.log` (see `log.rs` for what bounds it).
//! Known-bug switches ([`RaftBugs`]) disable individual safeguards on purpose.

mod bugs;
pub mod host;
mod log;
mod node;
mod progress;
pub mod state_machine;
pub mod storage;
#[cfg(test)]
mod tests;
mod types;

pub use bugs::RaftBugs;
pub use host::{GroupReady, HostError, RaftHost};
pub use node::Raft;
pub use state_machine::{RestoreError, StateMachine};
pub use types::{Entry, Envelope, GroupId, HardState, Index, Message, NodeId, Snapshot, SnapshotMeta, Term};

use crate::mem::{Account, Ledger, names};
use std::sync::Arc;

/// The ledger accounts a Raft group charges. Every group of a node shares the node's
/// accounts, so the limits bound the node, not each group.
#[derive(Clone, Debug)]
pub struct RaftAccounts {
    /// `raft.pending`: proposals accepted by a leader and not yet committed.
    pub pending: Arc<Account>,
    /// `raft.catchup`: bytes sent to followers and not yet acknowledged.
    pub catchup: Arc<Account>,
    /// `raft.log`: entries held in the in-memory log (see `log.rs` for what bounds it).
    pub log: Arc<Account>,
}

impl RaftAccounts {
    /// The three accounts of `ledger`. Panics if the ledger lacks one (a wiring bug).
    pub fn from_ledger(ledger: &Ledger) -> RaftAccounts {
        RaftAccounts {
            pending: ledger.account(names::RAFT_PENDING),
            catchup: ledger.account(names::RAFT_CATCHUP),
            log: ledger.account(names::RAFT_LOG),
        }
    }

    /// Fresh accounts with the given limits in bytes (tests and tools).
    pub fn with_limits(pending: u64, catchup: u64, log: u64) -> RaftAccounts {
        RaftAccounts {
            pending: Arc::new(Account::new(names::RAFT_PENDING, pending)),
            catchup: Arc::new(Account::new(names::RAFT_CATCHUP, catchup)),
            log: Arc::new(Account::new(names::RAFT_LOG, log)),
        }
    }
}

/// Static configuration of one Raft group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The group this member belongs to: stamped on every message it sends; messages
    /// for another group are ignored.
    pub group: GroupId,
    /// This node.
    pub id: NodeId,
    /// Every member of the group, including `id`, sorted.
    pub peers: Vec<NodeId>,
    /// Election timeout is drawn uniformly from `[min, max)` milliseconds after each reset.
    pub election_timeout_ms: (u64, u64),
    /// Leader heartbeat period in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Most entry bytes in one Append message.
    pub max_append_bytes: u64,
    /// Most bytes in flight (sent, not acknowledged) to one follower.
    pub catchup_window_bytes: u64,
    /// Largest accepted proposal payload.
    pub max_proposal_bytes: u64,
    /// Size of InstallSnapshot chunks.
    pub snapshot_chunk_bytes: u64,
    /// Run a pre-vote round before standing for election.
    pub pre_vote: bool,
    /// Leaders step down when they have not heard from a quorum for an election timeout.
    pub check_quorum: bool,
    /// Deliberately enabled defects (empty in production).
    pub bugs: RaftBugs,
}

impl Config {
    /// Sensible defaults for a member `id` of `peers`.
    pub fn new(id: NodeId, mut peers: Vec<NodeId>) -> Self {
        peers.sort_unstable();
        peers.dedup();
        Config {
            group: GroupId::TEST_LOG,
            id,
            peers,
            election_timeout_ms: (300, 600),
            heartbeat_interval_ms: 50,
            max_append_bytes: 64 * 1024,
            catchup_window_bytes: 256 * 1024,
            max_proposal_bytes: 1024 * 1024,
            snapshot_chunk_bytes: 64 * 1024,
            pre_vote: true,
            check_quorum: true,
            bugs: RaftBugs::NONE,
        }
    }
}

/// What the node recovered from storage at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Last durable hard state.
    pub hard_state: HardState,
    /// Last durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; term not yet incremented.
    PreCandidate,
    /// Asking for votes.
    Candidate,
    /// Leads the group.
    Leader,
}

/// Notable changes, for traces and for the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftEvent {
    /// The role or term changed.
    RoleChanged {
        /// New term.
        term: Term,
        /// New role.
        role: Role,
    },
    /// The commit index advanced.
    CommitAdvanced {
        /// New commit index.
        commit: Index,
    },
    /// This node stopped being leader: proposals it accepted may or may not commit.
    LostLeadership,
}

/// Effects produced since the last call to [`Raft::ready`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Snapshot to persist (received from the leader, or taken locally by [`Raft::compact`]).
    pub snapshot: Option<Snapshot>,
    /// Whether the application must restore its state from `snapshot` (received from a leader).
    pub restore: bool,
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist. If the first index is at or below the last persisted index,
    /// storage first discards its entries from that index on (a conflicting suffix).
    pub entries: Vec<Entry>,
    /// Newly committed entries to apply, in index order.
    pub committed: Vec<Entry>,
    /// Messages to send once the above is durable.
    pub messages: Vec<Envelope>,
    /// Notable changes.
    pub events: Vec<RaftEvent>,
}

impl Ready {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.committed.is_empty()
            && self.messages.is_empty()
            && self.events.is_empty()
    }
}

/// Why a proposal was refused. A refused proposal is never appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the last known one.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// Last known leader.
        leader: Option<NodeId>,
    },
    /// Too many uncommitted proposals (`raft.pending` is full) or too many entries held
    /// in memory (`raft.log` is full until the next compaction): retry later.
    #[error("too many uncommitted proposals; retry later")]
    Backpressure,
    /// No group with this id is hosted on this node.
    #[error("no raft group {group} on this node")]
    NoSuchGroup {
        /// The group asked for.
        group: GroupId,
    },
    /// The payload exceeds `max_proposal_bytes`.
    #[error("proposal of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Payload size.
        size: u64,
        /// Limit.
        limit: u64,
    },
}
