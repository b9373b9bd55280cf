//! Raft data types shared by the state machine, its storage and the wire.

use serde::{Deserialize, Serialize};

/// A node's identity in a Raft group (1-based; 0 is never a node).
pub type NodeId = u64;

/// Which Raft group a message, proposal or state machine belongs to. A node hosts many
/// groups (the test log today; the meta group and one per stream later) over one set of
/// routes, and every Raft message carries the id of the group it is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The single group of the replicated test log (`weir raft-node`, the simulator's Raft world).
    pub const TEST_LOG: GroupId = GroupId(0);
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "g{}", self.0)
    }
}
/// A Raft term.
pub type Term = u64;
/// A log index (1-based; 0 means "before the first entry").
pub type Index = u64;

/// One log entry. Empty `data` is a leader's no-op (appended on election).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term in which the entry was created.
    pub term: Term,
    /// Position in the log.
    pub index: Index,
    /// Application payload (empty for no-ops).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes this entry accounts for in ledgers and batch limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// State that must be durable before the node acts on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`.
    pub vote: Option<NodeId>,
    /// Highest index known committed (may lag; recovered state never exceeds truth).
    pub commit: Index,
}

/// What a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index included.
    pub last_index: Index,
    /// Term of `last_index`.
    pub last_term: Term,
    /// Group members at that point.
    pub peers: Vec<NodeId>,
}

/// A snapshot: application state as of `meta.last_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// Opaque application state.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Raft messages between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Pre-vote request: "would you vote for me in `Envelope::term`?" (the sender's term is unchanged).
    PreVote {
        /// Candidate's last log index.
        last_index: Index,
        /// Candidate's last log term.
        last_term: Term,
    },
    /// Pre-vote answer.
    PreVoteResp {
        /// Whether the pre-vote was granted.
        granted: bool,
    },
    /// Vote request.
    Vote {
        /// Candidate's last log index.
        last_index: Index,
        /// Candidate's last log term.
        last_term: Term,
    },
    /// Vote answer.
    VoteResp {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Log replication (empty `entries` doubles as heartbeat).
    Append {
        /// Index just before `entries`.
        prev_index: Index,
        /// Term at `prev_index`.
        prev_term: Term,
        /// Entries to append.
        entries: Vec<Entry>,
        /// Leader's commit index (clamped by the receiver to what it has verified).
        commit: Index,
    },
    /// Replication answer.
    AppendResp {
        /// Whether the entries were appended.
        success: bool,
        /// On success: last index now matching the leader. On reject: the follower's
        /// last log index, a hint for where the leader should retry.
        index: Index,
    },
    /// One chunk of a snapshot, sent in order.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Byte offset of `chunk` within the snapshot data.
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        chunk: Vec<u8>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// Snapshot chunk answer.
    InstallSnapshotResp {
        /// `meta.last_index` of the snapshot being installed.
        last_index: Index,
        /// Next offset the follower expects (equals the total length once done).
        next_offset: u64,
        /// Whether the snapshot is now installed.
        done: bool,
    },
}

/// A message with its routing header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The group this message belongs to; hosts route on it.
    pub group: GroupId,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Sender's term (for PreVote: the term the candidate would stand in).
    pub term: Term,
    /// Body.
    pub msg: Message,
}

impl Envelope {
    /// Approximate encoded size, used for route and catch-up accounting.
    pub fn size(&self) -> u64 {
        32 + match &self.msg {
            Message::Append { entries, .. } => entries.iter().map(Entry::size).sum(),
            Message::InstallSnapshot { chunk, meta, .. } => chunk.len() as u64 + 8 * meta.peers.len() as u64,
            _ => 0,
        }
    }
}
