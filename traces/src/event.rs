//! The event model: what a run records, in virtual time, node by node.
//!
//! Events are typed (not free-form strings) so that checkers can consume a trace
//! directly and so that the binary encoding stays compact. Adding a variant at the
//! end is compatible for new readers; any other change bumps [`crate::FORMAT_VERSION`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who an event is about: a cluster node (1-based), or the harness/clients.
pub type NodeNo = u16;

/// The harness itself (fault injector, checkers).
pub const HARNESS: NodeNo = 0;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Virtual time since the run started, in microseconds.
    pub time_us: u64,
    /// The node the event happened on ([`HARNESS`] for harness and client events).
    pub node: NodeNo,
    /// What happened.
    pub kind: EventKind,
}

/// Raft role names as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follower.
    Follower,
    /// Pre-candidate (pre-vote phase).
    PreCandidate,
    /// Candidate.
    Candidate,
    /// Leader.
    Leader,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Free-form note from the harness (phase changes and the like).
    Note {
        /// The text.
        text: String,
    },
    /// A fault from the schedule was applied.
    Fault {
        /// Human-readable description of the fault.
        desc: String,
    },
    /// A node (re)started; `incarnation` counts restarts from 0.
    NodeStart {
        /// Restart count.
        incarnation: u32,
    },
    /// A node was killed (losing unsynced writes).
    NodeCrash,
    /// A client issued a request.
    ClientInvoke {
        /// Client number.
        client: u32,
        /// The unique value proposed.
        value: u64,
        /// The node the request went to.
        target: NodeNo,
    },
    /// The request was acknowledged as committed at `index`.
    ClientOk {
        /// Client number.
        client: u32,
        /// The value.
        value: u64,
        /// Log index it was committed at.
        index: u64,
    },
    /// The request definitely failed (it will never be applied).
    ClientFail {
        /// Client number.
        client: u32,
        /// The value.
        value: u64,
        /// Why.
        reason: String,
    },
    /// The outcome is unknown (timeout, connection lost after send).
    ClientUnknown {
        /// Client number.
        client: u32,
        /// The value.
        value: u64,
        /// Why.
        reason: String,
    },
    /// Raft role change.
    RaftRole {
        /// Term of the new role.
        term: u64,
        /// The new role.
        role: Role,
    },
    /// Raft commit index advanced.
    RaftCommit {
        /// New commit index.
        commit: u64,
    },
    /// The state machine applied an entry.
    Applied {
        /// Log index.
        index: u64,
        /// Entry term.
        term: u64,
        /// Hash of the entry data (0 for leader no-ops).
        data_hash: u64,
    },
    /// The state machine was restored from a snapshot.
    SnapshotRestored {
        /// Last index covered by the snapshot.
        index: u64,
        /// Term of that index.
        term: u64,
        /// Hash of the snapshot's applied-state digest.
        state_hash: u64,
    },
    /// A memory-ledger sample for one account.
    Ledger {
        /// Account name.
        account: String,
        /// Current bytes.
        current: u64,
        /// Peak bytes since the node started.
        peak: u64,
        /// Limit.
        limit: u64,
    },
    /// A checker verdict at the end of the run.
    Verdict {
        /// Whether the run passed.
        pass: bool,
        /// Detail (broken invariant, or a summary).
        detail: String,
    },
    /// A message store was opened: what its recovery found.
    StoreRecovered {
        /// Sequences reported lost to damage, as `(first, last)` ranges.
        lost: Vec<(u64, u64)>,
        /// Damaged regions reported.
        damaged: u64,
        /// Whether some damaged region held unreadable records that were not messages
        /// (a lost delete record can make a deleted message visible again).
        unreadable_other: bool,
        /// Bytes cut from a torn tail.
        truncated_bytes: u64,
        /// First sequence and last sequence after recovery.
        first_seq: u64,
        /// Last sequence after recovery.
        last_seq: u64,
    },
    /// A client asked the store to delete `seq` (`done: false`) or the delete returned (`done: true`).
    StoreDelete {
        /// Client number.
        client: u32,
        /// The sequence.
        seq: u64,
        /// Whether the delete completed.
        done: bool,
    },
    /// A pub/sub client published a message (the event's node is the server it used).
    Publish {
        /// Publisher number.
        client: u32,
        /// The message's unique value (publisher and sequence).
        value: u64,
    },
    /// A pub/sub subscriber received a message (the event's node is its server).
    Deliver {
        /// Subscriber number.
        client: u32,
        /// The message's value.
        value: u64,
        /// Whether subject and payload were exactly what was published.
        intact: bool,
    },
    /// A JetStream client's history event (the `js-single` world).
    Js(crate::js::JsEvent),
}

impl Event {
    /// An event at `time_us` on `node`.
    pub fn new(time_us: u64, node: NodeNo, kind: EventKind) -> Self {
        Event { time_us, node, kind }
    }
}

impl fmt::Display for Event {
    /// One line, as printed by [`crate::render_event`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::render::render_event(self))
    }
}

impl EventKind {
    /// Every kind name returned by [`EventKind::name`], in declaration order
    /// (for validating filters and for exhaustiveness checks in tests).
    pub const NAMES: [&'static str; 19] = [
        "note",
        "fault",
        "node-start",
        "node-crash",
        "invoke",
        "ok",
        "fail",
        "unknown",
        "raft-role",
        "raft-commit",
        "applied",
        "snapshot-restored",
        "ledger",
        "verdict",
        "store-recovered",
        "store-delete",
        "publish",
        "deliver",
        "js",
    ];

    /// A short stable name for the kind (used in text output and filters).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Note { .. } => "note",
            EventKind::Fault { .. } => "fault",
            EventKind::NodeStart { .. } => "node-start",
            EventKind::NodeCrash => "node-crash",
            EventKind::ClientInvoke { .. } => "invoke",
            EventKind::ClientOk { .. } => "ok",
            EventKind::ClientFail { .. } => "fail",
            EventKind::ClientUnknown { .. } => "unknown",
            EventKind::RaftRole { .. } => "raft-role",
            EventKind::RaftCommit { .. } => "raft-commit",
            EventKind::Applied { .. } => "applied",
            EventKind::SnapshotRestored { .. } => "snapshot-restored",
            EventKind::Ledger { .. } => "ledger",
            EventKind::Verdict { .. } => "verdict",
            EventKind::StoreRecovered { .. } => "store-recovered",
            EventKind::StoreDelete { .. } => "store-delete",
            EventKind::Publish { .. } => "publish",
            EventKind::Deliver { .. } => "deliver",
            EventKind::Js(_) => "js",
        }
    }
}
