//! Message storage for streams: the [`MsgStore`] trait, the in-memory reference
//! implementation [`MemStore`] and the durable [`FileStore`] over the [`Disk`](crate::disk::Disk) seam.
//!
//! # Semantics shared by every store
//!
//! - Sequences start at 1 and are never reused: purges, tail deletes and compaction leave
//!   `last_seq` where it was (the file store persists it in its block headers). The one
//!   exception is [`FileStore::truncate_after`], outside this trait, for logs like Raft's
//!   whose conflicting suffix is replaced.
//! - `first_seq` is the sequence of the oldest stored message, or `last_seq + 1` when the
//!   store is empty (a new store reports `first_seq = 1, last_seq = 0`).
//! - The size of a message (for `bytes` and `max_bytes`) is [`stored_size`]: the length
//!   of its file-store record, the same for both stores so that limits behave alike.
//! - Limits ([`StoreLimits`]) are checked on every append. With [`Discard::New`] an append
//!   that would exceed `max_msgs` or `max_bytes` is refused with [`StoreError::Full`]; with
//!   [`Discard::Old`] the oldest messages are evicted. `max_msgs_per_subject` evicts the
//!   oldest message of the subject unless `discard_new_per_subject` (with `Discard::New`)
//!   asks to refuse instead. Eviction order after inserting a message: per subject first,
//!   then oldest-first while `msgs > max_msgs` or `bytes > max_bytes`. A message bigger
//!   than `max_bytes` or `max_msg_size` (headers plus payload) is always refused. A file
//!   store told to hold them ([`FileStore::hold_removals`], the JetStream engine's group
//!   commit) evicts in its index at once but writes the evictions' delete records only
//!   once the owner says the append is durable (`store::held`).
//! - `max_age` is enforced only by [`MsgStore::expire`], with the caller's clock: messages
//!   are removed from the head while the oldest one satisfies `ts_ns <= now_ns - max_age`
//!   (timestamps are expected not to decrease with the sequence; a younger message at the
//!   head stops expiry, as in JetStream).
//! - Subject filters use NATS wildcards: `*` matches one token, `>` one or more trailing
//!   tokens (the one grammar of [`crate::subject`]; stored subjects are literals).
//!
//! # Memory
//!
//! The file store keeps in memory, per block, one 12-byte slot per sequence (file offset,
//! record length, subject id) and, per live subject, its name, count, first and last
//! sequence: memory follows the number of stored sequences and distinct live subjects,
//! never the message bytes. That index is charged to [`STORE_INDEX`]; an append that
//! would take it past its limit is refused with [`StoreError::NoMemory`]. Message bytes
//! live in two bounded places: the buffer pool (ledger account [`STORE_BUFFERS`], hard
//! cap) and the block cache (account [`STORE_CACHE`], byte cap plus idle expiry driven
//! by [`FileStore::tick`]).

mod cache;
pub mod file;
mod held;
mod mem;
mod meter;
mod pool;
mod record;
mod recover;

pub use cache::BlockCache;
pub use file::{
    DamagedRegion, FileStore, FileStoreConfig, FlushPlan, LostRange, RecoveryReport, StoreBugs, StoreMemory,
    SyncPolicy, TruncatedTail,
};
pub use mem::MemStore;
pub use pool::{BufferPool, PoolBuf};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

pub use crate::mem::names::{STORE_BUFFERS, STORE_CACHE, STORE_INDEX};

/// Check a literal subject for storing (the grammar of [`crate::subject`]).
pub(crate) fn validate_subject(subject: &str) -> Result<()> {
    crate::subject::validate_literal(subject).map_err(|_| StoreError::InvalidSubject(subject.to_string()))
}

/// Check a subject filter (a pattern of [`crate::subject`]).
pub(crate) fn validate_filter(filter: &str) -> Result<()> {
    crate::subject::validate_pattern(filter).map_err(|_| StoreError::InvalidSubject(filter.to_string()))
}

/// Largest record the file format accepts (subject, headers, payload and framing).
pub const MAX_RECORD_LEN: u64 = record::MAX_RECORD_LEN as u64;

/// Bytes a message occupies for `bytes`/`max_bytes` accounting (its record length on disk).
pub fn stored_size(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    (record::OVERHEAD + subject.len() + headers.len() + payload.len()) as u64
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Subject it was published on.
    pub subject: String,
    /// Raw header block (may be empty).
    pub headers: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Timestamp given at append, in nanoseconds.
    pub ts_ns: i64,
}

impl StoredMsg {
    /// Bytes this message counts for (see [`stored_size`]).
    pub fn size(&self) -> u64 {
        stored_size(&self.subject, &self.headers, &self.payload)
    }
}

/// A message to append in a batch.
#[derive(Clone, Copy, Debug)]
pub struct NewMsg<'a> {
    /// Subject (literal, no wildcards).
    pub subject: &'a str,
    /// Raw header block.
    pub headers: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
    /// Timestamp in nanoseconds.
    pub ts_ns: i64,
}

/// What to do when a limit would be exceeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discard {
    /// Evict the oldest messages.
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Which limit refused an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitKind {
    /// `max_msgs`.
    Msgs,
    /// `max_bytes`.
    Bytes,
    /// `max_msgs_per_subject`.
    MsgsPerSubject,
}

/// Retention limits of a store (`None` means unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreLimits {
    /// Most messages kept.
    pub max_msgs: Option<u64>,
    /// Most bytes kept (see [`stored_size`]).
    pub max_bytes: Option<u64>,
    /// Oldest message age kept, enforced by [`MsgStore::expire`].
    pub max_age: Option<Duration>,
    /// Most messages kept per subject.
    pub max_msgs_per_subject: Option<u64>,
    /// Largest accepted message (headers plus payload).
    pub max_msg_size: Option<u64>,
    /// Policy when `max_msgs` or `max_bytes` would be exceeded.
    pub discard: Discard,
    /// With [`Discard::New`], refuse (instead of evict) when a subject is at its limit.
    pub discard_new_per_subject: bool,
}

impl StoreLimits {
    /// Check that the limits make sense (no zero limits).
    pub fn validate(&self) -> Result<(), StoreError> {
        let zero = |v: Option<u64>| v == Some(0);
        if zero(self.max_msgs) || zero(self.max_bytes) || zero(self.max_msgs_per_subject) {
            return Err(StoreError::InvalidRequest("limits must be positive (use None for unlimited)".into()));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(StoreError::InvalidRequest("max_age must be positive".into()));
        }
        Ok(())
    }

    /// `max_age` in nanoseconds (saturating).
    pub fn max_age_ns(&self) -> Option<i64> {
        self.max_age.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// What [`MsgStore::purge`] removes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Only messages whose subject matches this filter (`None`: all).
    pub filter: Option<String>,
    /// Only messages with a sequence below this one (exclusive).
    pub up_to_seq: Option<u64>,
    /// Keep the newest `keep` matching messages (cannot be combined with `up_to_seq`).
    pub keep: Option<u64>,
}

impl PurgeRequest {
    /// Purge everything.
    pub fn all() -> Self {
        PurgeRequest::default()
    }

    /// Purge the messages matching `filter`.
    pub fn subject(filter: &str) -> Self {
        PurgeRequest { filter: Some(filter.to_string()), ..Default::default() }
    }
}

/// Which optional parts of [`StoreState`] to fill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateRequest {
    /// Fill [`StoreState::deleted`] (walks the index).
    pub deleted: bool,
    /// Fill [`StoreState::subjects`] with the subjects matching this filter.
    pub subjects: Option<String>,
}

/// A summary of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Oldest stored sequence (`last_seq + 1` when empty).
    pub first_seq: u64,
    /// Highest sequence ever assigned (or skipped to by compaction).
    pub last_seq: u64,
    /// Stored messages.
    pub msgs: u64,
    /// Stored bytes (see [`stored_size`]).
    pub bytes: u64,
    /// Sequences between `first_seq` and `last_seq` that hold no message.
    pub num_deleted: u64,
    /// Distinct subjects stored.
    pub num_subjects: u64,
    /// The deleted sequences as ranges (only when requested).
    pub deleted: Vec<RangeInclusive<u64>>,
    /// Message count per subject (only when requested).
    pub subjects: BTreeMap<String, u64>,
}

/// A serializable summary of a store for Raft snapshots: enough for a follower to tell
/// which sequences it should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// Oldest stored sequence.
    pub first_seq: u64,
    /// Highest sequence assigned.
    pub last_seq: u64,
    /// Stored messages.
    pub msgs: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Deleted sequences inside `[first_seq, last_seq]` as `(first, last)` ranges.
    pub deleted: Vec<(u64, u64)>,
}

impl StoreSnapshot {
    /// The bincode encoding.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("snapshot encodes")
    }

    /// Decode [`StoreSnapshot::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(s, _)| s)
            .map_err(|e| StoreError::InvalidRequest(format!("bad store snapshot: {e}")))
    }

    /// Build from a state that has its deleted ranges filled.
    pub fn from_state(st: &StoreState) -> Self {
        StoreSnapshot {
            first_seq: st.first_seq,
            last_seq: st.last_seq,
            msgs: st.msgs,
            bytes: st.bytes,
            deleted: st.deleted.iter().map(|r| (*r.start(), *r.end())).collect(),
        }
    }
}

/// Errors from a message store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A limit with [`Discard::New`] refused the message.
    #[error("store full: {limit:?} limit of {max} reached")]
    Full {
        /// Which limit.
        limit: LimitKind,
        /// Its value.
        max: u64,
    },
    /// The message is larger than `max_msg_size`, `max_bytes` or the record format allows.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    MaxMsgSize {
        /// Size of the refused message.
        size: u64,
        /// The maximum that refused it.
        max: u64,
    },
    /// A subject or filter is not valid.
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    /// A request that cannot be carried out as asked (nothing was changed).
    #[error("invalid store request: {0}")]
    InvalidRequest(String),
    /// The disk is full (nothing was stored by the failing call).
    #[error("no space left on device writing {path}")]
    NoSpace {
        /// File being written.
        path: String,
    },
    /// The disk failed.
    #[error("store I/O error during {op} on {path}: {source}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// File involved.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Stored data failed its checksum: these sequences of this block are lost.
    #[error("block {block} is corrupt: sequences {lost:?} are lost")]
    Corrupt {
        /// Block index.
        block: u64,
        /// Lost sequences.
        lost: RangeInclusive<u64>,
    },
    /// A memory account refused the bytes needed (back-pressure: retry later).
    #[error("ledger account {account} cannot hold {need} more bytes")]
    NoMemory {
        /// Account name.
        account: &'static str,
        /// Bytes that were needed.
        need: u64,
    },
    /// An earlier write or sync failure left the disk state unknown: reopen the store.
    #[error("store failed earlier ({0}) and must be reopened")]
    Failed(String),
}

/// Result type of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream's message store.
pub trait MsgStore {
    /// Store a message; returns its sequence.
    fn append(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64>;

    /// Store messages in order, durably as a group; returns their sequences. On error the
    /// messages before the failing one are stored (`state().last_seq` tells how many).
    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<u64>> {
        msgs.iter().map(|m| self.append(m.subject, m.headers, m.payload, m.ts_ns)).collect()
    }

    /// The message at `seq`, if stored.
    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>>;

    /// The newest message whose subject matches `filter`.
    fn load_last(&mut self, filter: &str) -> Result<Option<StoredMsg>>;

    /// The first message at or after `from_seq` whose subject matches `filter`.
    fn load_next(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>>;

    /// Remove the message at `seq`; `false` if there was none.
    fn delete(&mut self, seq: u64) -> Result<bool>;

    /// Remove messages as `req` says; returns how many.
    fn purge(&mut self, req: &PurgeRequest) -> Result<u64>;

    /// Purge as `req` says because the message appended at `cause` asks for it (a
    /// roll-up): as [`MsgStore::purge`], except that a store that holds the removals
    /// appends cause ([`FileStore::hold_removals`]) holds these too until the append is
    /// durable. Returns how many were removed.
    fn purge_caused_by(&mut self, req: &PurgeRequest, cause: u64) -> Result<u64> {
        let _ = cause;
        self.purge(req)
    }

    /// Remove every message below `seq`; a `seq` past `last_seq + 1` also moves
    /// `last_seq` to `seq - 1`. Returns how many messages were removed.
    fn compact(&mut self, seq: u64) -> Result<u64>;

    /// Remove messages older than `max_age` at `now_ns`; returns how many.
    fn expire(&mut self, now_ns: i64) -> Result<u64>;

    /// Replace the limits, evicting what the new ones no longer allow; returns how many.
    fn set_limits(&mut self, limits: StoreLimits) -> Result<u64>;

    /// The limits in force.
    fn limits(&self) -> &StoreLimits;

    /// The summary, with the optional parts `req` asks for.
    fn state_with(&self, req: &StateRequest) -> Result<StoreState>;

    /// The summary without deleted ranges or subjects.
    fn state(&self) -> StoreState {
        self.state_with(&StateRequest::default()).expect("the plain state needs no filter")
    }

    /// A serializable summary for Raft snapshots.
    fn snapshot(&self) -> StoreSnapshot {
        let st = self.state_with(&StateRequest { deleted: true, subjects: None }).expect("no filter");
        StoreSnapshot::from_state(&st)
    }
}

/// Check a message against the size limits shared by both stores; returns its stored size.
pub(crate) fn check_size(limits: &StoreLimits, subject: &str, headers: &[u8], payload: &[u8]) -> Result<u64> {
    validate_subject(subject)?;
    let body = (headers.len() + payload.len()) as u64;
    if let Some(max) = limits.max_msg_size
        && body > max
    {
        return Err(StoreError::MaxMsgSize { size: body, max });
    }
    let size = stored_size(subject, headers, payload);
    if size > MAX_RECORD_LEN {
        return Err(StoreError::MaxMsgSize { size, max: MAX_RECORD_LEN });
    }
    if headers.len() > u32::MAX as usize {
        return Err(StoreError::MaxMsgSize { size, max: u32::MAX as u64 });
    }
    if let Some(max) = limits.max_bytes
        && size > max
    {
        return Err(StoreError::MaxMsgSize { size, max });
    }
    Ok(size)
}
