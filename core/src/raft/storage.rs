//! Durable Raft state over the `Disk` seam: hard state, log and snapshot.
//!
//! Files in the storage directory:
//! - `log/`: a [`FileStore`] holding the log's entries after the snapshot, one message per
//!   entry: sequence = Raft index, subject `raft`, timestamp field = the entry's term,
//!   payload = its data. It is opened with [`SyncPolicy::Always`], so every store call is
//!   durable when it returns; a persist's entries go in with one
//!   [`MsgStore::append_batch`] (one sync). A conflicting suffix is cut with
//!   [`FileStore::truncate_after`], a snapshot drops the entries it covers with
//!   [`MsgStore::compact`]`(index + 1)` (which also moves the store's last sequence to the
//!   snapshot when the snapshot is past the log).
//! - `meta`: the hard state and the snapshot marker (index, term and checksum of the
//!   current snapshot file), as an append-only log of frames
//!   `[len u32 LE][xxh3-64 of payload u64 LE][payload]`, each payload the bincode encoding
//!   of the whole [`Meta`]; the last valid frame is current. Appends are synced; once the
//!   file reaches [`DEFAULT_MIN_REWRITE_BYTES`] (see [`RaftStorage::set_min_rewrite_bytes`])
//!   it is replaced by one frame: write `meta.tmp`, sync, rename over `meta`, sync the
//!   directory.
//! - `snap`: the current snapshot, one frame holding a bincode [`Snapshot`].
//! - `snap.tmp`: a snapshot being installed.
//!
//! # Persist order and crashes
//!
//! A persist call ([`RaftStorage::persist`]) is no longer one atomic write. It runs these
//! steps, each durable before the next starts, and skips those with nothing to do:
//!
//! 1. A snapshot's file: write `snap.tmp`, sync it, sync the directory.
//! 2. Meta, first write: when the Ready carries a snapshot or changes the term or the
//!    vote, a meta frame with the new term and vote, the new snapshot marker, and the
//!    commit index clamped to the part of the log that steps 3 and 4 leave in place. Then
//!    (for a snapshot) rename `snap.tmp` over `snap`.
//! 3. The snapshot applied to the store: a snapshot at `(i, t)` keeps the entries after
//!    `i` only when the stored entry at `i` has term `t` (the log-matching rule); otherwise
//!    the log is cut after `i` ([`FileStore::truncate_after`]). Then the entries up to `i`
//!    are compacted away.
//! 4. Entries: a conflicting suffix is cut (`truncate_after(first new index - 1)`), then
//!    the new entries are appended in one batch.
//! 5. Meta, last write: the final hard state (the commit index unclamped), when it differs
//!    from what is durable.
//!
//! Why this order is safe:
//! - Term and vote before entries (2 before 4): a node never holds entries of term `T`
//!   while its durable term is below `T`, so a crash cannot let it vote again in `T`, or
//!   forget a vote, with `T`'s entries in its log. Messages are sent only after persist
//!   returns, so nothing a crash undoes was ever promised.
//! - Commit after entries (4 before 5, and the clamp in 2): the durable commit index never
//!   exceeds the durable log.
//! - Truncation before the replacement entries (inside 4), and truncation itself is
//!   crash-safe in the store (the old suffix whole, or cut). Losing a suffix is safe:
//!   Raft cuts only uncommitted entries, and the leader resends what a follower lacks.
//! - Snapshot file before its marker (1 before 2): the marker is the commit point of an
//!   installed snapshot; a crash before it leaves the old snapshot current (a stray
//!   `snap.tmp` is removed at open), after it the new one. The rename needs no directory
//!   sync of its own: until some later directory sync makes it durable, a crash leaves the
//!   referenced `snap.tmp` behind and [`RaftStorage::open`] finishes the rename. Every
//!   later writer of `snap.tmp` syncs the directory first, so the rename is durable before
//!   the name is reused.
//! - Marker before the store changes it implies (2 before 3): entries are dropped only
//!   once the snapshot covering them is current. A crash between 2 and 3 leaves entries
//!   that [`RaftStorage::open`] reconciles with the marker exactly as step 3 would (it
//!   cuts before it compacts, so an entry at the snapshot index with another term is
//!   always seen).
//!
//! So a crash keeps every completed persist call, and of the call it cuts short, a prefix
//! of its steps: the state before it; the new term, vote and snapshot with the old log
//! (reconciled with the snapshot); then that log cut at the conflict; then with a prefix
//! of the new entries; then all of them under the old commit index; then the state after
//! it. Each is a state the node could have been in, and none holds an entry of a term
//! above its durable term.
//!
//! # Recovery
//!
//! The meta log is replayed: a damaged frame with no valid frame after it is what a crash
//! during an append leaves behind, so it is cut there; a damaged frame followed by a valid
//! one is corruption and is reported with its byte offset. The store recovers itself (a
//! torn tail is cut); any damage it reports, or a log with holes, is corruption here.
//!
//! In memory the storage keeps only an index of the log (last index, snapshot position,
//! term boundaries) besides the store's own index, never the entries themselves. After an
//! I/O error the storage refuses further writes: what reached the disk is then unknown
//! (fsync errors may drop dirty pages), and only reopening re-establishes it.

use super::{Entry, HardState, Index, Ready, Restored, Snapshot, Term};
use crate::disk::{self, Disk, DiskOp};
use crate::store::{FileStore, FileStoreConfig, MsgStore, NewMsg, StoreError, StoreLimits, StoreMemory, SyncPolicy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use xxhash_rust::xxh3::xxh3_64;

/// The hard state and snapshot marker log.
const META: &str = "meta";
/// A meta log being rewritten.
const META_TMP: &str = "meta.tmp";
/// The current snapshot.
const SNAP: &str = "snap";
/// A snapshot being installed.
const SNAP_TMP: &str = "snap.tmp";
/// The entry store's directory.
const LOG: &str = "log";
/// The single-file log of an older format.
const OLD_WAL: &str = "wal";
/// Subject of every entry message.
const SUBJECT: &str = "raft";
/// Frame header: length and checksum.
const HEADER: usize = 12;

/// Once the meta log is this long it is rewritten as one frame.
pub const DEFAULT_MIN_REWRITE_BYTES: u64 = 16 * 1024;
/// Block size of the entry store.
pub const DEFAULT_BLOCK_SIZE: u64 = 1 << 20;
/// Cap of the entry store's buffer pool with [`RaftStorageConfig::default`].
pub const DEFAULT_BUFFER_BYTES: u64 = 8 << 20;

/// Errors from Raft storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed.
    #[error("raft storage I/O error on {path}: {source}")]
    Io {
        /// File involved.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file is damaged beyond the torn tail that a crash can leave.
    #[error("raft storage corrupt: {0}")]
    Corrupt(String),
    /// The caller asked for something that would break the log (nothing was written).
    #[error("raft storage: invalid request: {0}")]
    Invalid(String),
    /// The entry store refused an operation for another reason (say, its memory is full).
    #[error("raft storage: entry store: {0}")]
    Store(StoreError),
    /// An earlier I/O error left the on-disk state unknown; reopen the storage.
    #[error("raft storage failed earlier and must be reopened")]
    Failed,
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source, .. } => StorageError::Io { path, source },
            StoreError::NoSpace { path } => {
                StorageError::Io { path, source: std::io::Error::from(std::io::ErrorKind::StorageFull) }
            }
            // The entry store stopped on an I/O failure inside this call (a write it
            // buffered failed, and its closing flush refuses): an I/O error of this call.
            // Calls after a failed one never reach the entry store (`persist` answers
            // `Failed` first), so this is never an earlier failure.
            StoreError::Failed(why) => {
                StorageError::Io { path: "entry store".into(), source: std::io::Error::other(why) }
            }
            StoreError::Corrupt { block, lost } => {
                StorageError::Corrupt(format!("entry store block {block}: entries {lost:?} are damaged"))
            }
            other => StorageError::Store(other),
        }
    }
}

/// The snapshot the meta log refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    last_index: Index,
    last_term: Term,
    checksum: u64,
}

/// One meta frame: the whole durable state besides the entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    hard_state: HardState,
    snapshot: Option<Marker>,
}

/// Tuning of [`RaftStorage`].
#[derive(Clone, Debug)]
pub struct RaftStorageConfig {
    /// Block size of the entry store.
    pub block_size: u64,
    /// Ledger accounts the entry store charges.
    pub memory: StoreMemory,
}

impl Default for RaftStorageConfig {
    fn default() -> Self {
        RaftStorageConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            memory: StoreMemory::standalone(DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_BYTES),
        }
    }
}

impl RaftStorageConfig {
    /// The entry store's configuration: synced writes, no cache kept between reads.
    fn store_config(&self) -> FileStoreConfig {
        FileStoreConfig {
            block_size: self.block_size,
            sync: SyncPolicy::Always,
            pool_idle_bytes: 0,
            ..FileStoreConfig::default()
        }
    }
}

/// A disk that notes the latency of every operation, for the async caller to wait out.
struct Metered {
    inner: Arc<dyn Disk>,
    owed_ns: Arc<AtomicU64>,
}

impl Metered {
    fn owe(&self, op: DiskOp, bytes: usize) {
        self.owed_ns.fetch_add(self.inner.latency(op, bytes).as_nanos() as u64, Relaxed);
    }
}

impl Disk for Metered {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let r = self.inner.read(path);
        self.owe(DiskOp::Read, r.as_ref().map_or(0, |b| b.len()));
        r
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.owe(DiskOp::Read, len);
        self.inner.read_at(path, offset, len)
    }
    fn append(&self, path: &str, data: &[u8]) -> std::io::Result<u64> {
        self.owe(DiskOp::Write, data.len());
        self.inner.append(path, data)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> std::io::Result<()> {
        self.owe(DiskOp::Write, data.len());
        self.inner.write_file(path, data)
    }
    fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.truncate(path, len)
    }
    fn sync(&self, path: &str) -> std::io::Result<()> {
        self.owe(DiskOp::Sync, 0);
        self.inner.sync(path)
    }
    fn sync_dir(&self, dir: &str) -> std::io::Result<()> {
        self.owe(DiskOp::Sync, 0);
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> std::io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> std::io::Result<Vec<String>> {
        self.owe(DiskOp::Read, 0);
        self.inner.list(dir)
    }
    fn len(&self, path: &str) -> std::io::Result<u64> {
        self.inner.len(path)
    }
}

/// What the storage knows about the stored log without holding it.
#[derive(Clone, Debug, Default)]
struct LogIndex {
    snap_index: Index,
    snap_term: Term,
    /// Last stored index (`snap_index` when no entries follow the snapshot).
    last_index: Index,
    /// `(first index, term)` of each run of equal terms in `(snap_index, last_index]`.
    runs: Vec<(Index, Term)>,
}

impl LogIndex {
    /// Term of the entry at `i`, if the stored log (or the snapshot) covers it.
    fn term_at(&self, i: Index) -> Option<Term> {
        if i == self.snap_index {
            return Some(self.snap_term);
        }
        if i < self.snap_index || i > self.last_index {
            return None;
        }
        let k = self.runs.partition_point(|&(first, _)| first <= i);
        k.checked_sub(1).map(|k| self.runs[k].1)
    }

    /// Whether installing a snapshot at `(s, t)` keeps the entries after `s`.
    fn keeps_suffix(&self, s: Index, t: Term) -> bool {
        s <= self.last_index && self.term_at(s) == Some(t)
    }

    /// Install a snapshot at `(s, t)` (`s >= snap_index`).
    fn apply_snapshot(&mut self, s: Index, t: Term) {
        if self.keeps_suffix(s, t) {
            let mut runs = Vec::with_capacity(self.runs.len());
            for (k, &(first, term)) in self.runs.iter().enumerate() {
                let end = self.runs.get(k + 1).map_or(self.last_index, |r| r.0 - 1);
                if end > s {
                    runs.push((first.max(s + 1), term));
                }
            }
            self.runs = runs;
        } else {
            self.runs.clear();
            self.last_index = s;
        }
        self.snap_index = s;
        self.snap_term = t;
    }

    /// Append `es` (checked by [`live_suffix`], non-empty), replacing the suffix from its first index.
    fn append(&mut self, es: &[Entry]) {
        let first = es[0].index;
        if first <= self.last_index {
            self.runs.retain(|r| r.0 < first);
        }
        for e in es {
            if self.runs.last().map(|r| r.1) != Some(e.term) {
                self.runs.push((e.index, e.term));
            }
        }
        self.last_index = es[es.len() - 1].index;
    }
}

/// The part of `es` not covered by a snapshot at `snap_index`, checked to be contiguous and
/// to attach to a log ending at `last`.
fn live_suffix(es: &[Entry], snap_index: Index, last: Index) -> Result<&[Entry], String> {
    if let Some(w) = es.windows(2).find(|w| w[1].index != w[0].index + 1) {
        return Err(format!("entries not contiguous: {} then {}", w[0].index, w[1].index));
    }
    let es = &es[es.partition_point(|e| e.index <= snap_index)..];
    if let Some(f) = es.first()
        && f.index > last + 1
    {
        return Err(format!("entries start at {} but the log ends at {last}", f.index));
    }
    if let Some(e) = es.iter().find(|e| e.term > i64::MAX as u64) {
        return Err(format!("entry {} has term {}, beyond what the store records", e.index, e.term));
    }
    Ok(es)
}

/// Append one frame holding `payload` to `out`; returns the frame length.
fn frame(out: &mut Vec<u8>, payload: &[u8]) -> u64 {
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    (HEADER + payload.len()) as u64
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StorageError> {
    // Room for a typical record up front (growing from empty reallocated per field).
    let mut out = Vec::with_capacity(128);
    bincode::serde::encode_into_std_write(v, &mut out, bincode::config::standard())
        .map_err(|e| StorageError::Invalid(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// The payload range of a whole, checksum-valid frame at `pos`.
fn parse_frame(buf: &[u8], pos: usize) -> Option<std::ops::Range<usize>> {
    let header = buf.get(pos..pos.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(header[4..].try_into().ok()?);
    let start = pos + HEADER;
    let payload = buf.get(start..start.checked_add(len)?)?;
    (xxh3_64(payload) == sum).then_some(start..start + len)
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Option<T> {
    match bincode::serde::decode_from_slice::<T, _>(payload, bincode::config::standard()) {
        Ok((v, used)) if used == payload.len() => Some(v),
        _ => None,
    }
}

/// Replay a meta log: the last frame's state and the length of the valid prefix. A damaged
/// frame with nothing valid after it ends the valid prefix (a torn tail); one followed by a
/// valid frame is corruption.
fn scan_meta(buf: &[u8], path: &str) -> Result<(Meta, usize), StorageError> {
    let mut meta = Meta::default();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_frame(buf, pos).map(|r| (r.end, decode::<Meta>(&buf[r]))) {
            Some((end, Some(m))) => {
                meta = m;
                pos = end;
            }
            Some((_, None)) => {
                return Err(StorageError::Corrupt(format!("{path}: undecodable record at byte offset {pos}")));
            }
            None => {
                let valid_after = (pos + 1..buf.len())
                    .find(|&q| parse_frame(buf, q).is_some_and(|r| decode::<Meta>(&buf[r]).is_some()));
                if let Some(q) = valid_after {
                    return Err(StorageError::Corrupt(format!(
                        "{path}: damaged record at byte offset {pos} (a valid record follows at offset {q})"
                    )));
                }
                break;
            }
        }
    }
    Ok((meta, pos))
}

/// The durable half of a Raft member: hard state, log, snapshot.
#[derive(Debug)]
pub struct RaftStorage {
    disk: Arc<dyn Disk>,
    dir: String,
    /// The entries after the snapshot.
    store: FileStore,
    /// What the meta log says now (its last frame).
    meta: Meta,
    /// The hard state of the last completed persist.
    hard_state: HardState,
    index: LogIndex,
    /// Current length of the meta log.
    meta_len: u64,
    /// The meta log is rewritten once it is this long.
    min_rewrite_bytes: u64,
    /// An I/O error happened: the on-disk state is unknown.
    failed: bool,
    /// Disk latency not yet waited out, in nanoseconds (noted by the [`Metered`] disk).
    owed_ns: Arc<AtomicU64>,
}

impl RaftStorage {
    /// Open (or create) the storage in `dir` with the default configuration.
    pub async fn open(disk: Arc<dyn Disk>, dir: &str) -> Result<(RaftStorage, Restored), StorageError> {
        Self::open_with(disk, dir, RaftStorageConfig::default()).await
    }

    /// Open (or create) the storage in `dir`, recovering what was durable.
    pub async fn open_with(
        disk: Arc<dyn Disk>,
        dir: &str,
        cfg: RaftStorageConfig,
    ) -> Result<(RaftStorage, Restored), StorageError> {
        let owed_ns = Arc::new(AtomicU64::new(0));
        let disk: Arc<dyn Disk> = Arc::new(Metered { inner: disk, owed_ns: owed_ns.clone() });
        let r = Self::open_inner(disk, dir, cfg, owed_ns.clone()).await;
        pay(&owed_ns).await;
        r
    }

    async fn open_inner(
        disk: Arc<dyn Disk>,
        dir: &str,
        cfg: RaftStorageConfig,
        owed_ns: Arc<AtomicU64>,
    ) -> Result<(RaftStorage, Restored), StorageError> {
        let dir = dir.trim_end_matches('/').to_string();
        let names = disk.list(&dir).map_err(io_err(&dir))?;
        let has = |n: &str| names.iter().any(|x| x == n);
        if has(OLD_WAL) {
            return Err(StorageError::Corrupt(format!(
                "{}: a write-ahead log of an older storage format",
                disk::join(&dir, OLD_WAL)
            )));
        }
        for name in names.iter().filter(|n| n.ends_with(".tmp") && *n != SNAP_TMP) {
            let p = disk::join(&dir, name);
            disk.remove(&p).map_err(io_err(&p))?;
        }

        // The meta log: cut a torn tail, take the last frame.
        let meta_path = disk::join(&dir, META);
        let buf = if has(META) { disk.read(&meta_path).map_err(io_err(&meta_path))? } else { Vec::new() };
        let (meta, valid_len) = scan_meta(&buf, &meta_path)?;
        if valid_len < buf.len() {
            disk.truncate(&meta_path, valid_len as u64).map_err(io_err(&meta_path))?;
            disk.sync(&meta_path).map_err(io_err(&meta_path))?;
        }
        drop(buf);

        // The snapshot the meta log refers to.
        let snap_path = disk::join(&dir, SNAP);
        let tmp_path = disk::join(&dir, SNAP_TMP);
        let snap = if has(SNAP) { Some(read_snapshot(&*disk, &snap_path)?) } else { None };
        let tmp = if has(SNAP_TMP) { Some(read_snapshot(&*disk, &tmp_path)?) } else { None };
        let matches = |f: &Option<Result<(u64, Snapshot), String>>, m: &Marker| {
            matches!(f, Some(Ok((sum, s))) if *sum == m.checksum
                && s.meta.last_index == m.last_index && s.meta.last_term == m.last_term)
        };
        let snapshot = match meta.snapshot {
            None => {
                if snap.is_some() {
                    return Err(StorageError::Corrupt(format!(
                        "{snap_path}: snapshot file present but the meta log refers to none"
                    )));
                }
                if tmp.is_some() {
                    disk.remove(&tmp_path).map_err(io_err(&tmp_path))?;
                }
                None
            }
            Some(m) if matches(&snap, &m) => {
                if tmp.is_some() {
                    disk.remove(&tmp_path).map_err(io_err(&tmp_path))?;
                }
                snap.and_then(|r| r.ok()).map(|(_, s)| s)
            }
            Some(m) if matches(&tmp, &m) => {
                // Committed, but the rename did not survive: finish it.
                disk.rename(&tmp_path, &snap_path).map_err(io_err(&tmp_path))?;
                disk.sync_dir(&dir).map_err(io_err(&dir))?;
                tmp.and_then(|r| r.ok()).map(|(_, s)| s)
            }
            Some(m) => {
                let why = match snap {
                    Some(Err(e)) => e,
                    _ => format!("the snapshot at index {} that the meta log refers to is missing", m.last_index),
                };
                return Err(StorageError::Corrupt(format!("{snap_path}: {why}")));
            }
        };

        // The entries.
        let log_dir = disk::join(&dir, LOG);
        let mut store =
            FileStore::open(disk.clone(), &log_dir, StoreLimits::default(), cfg.store_config(), cfg.memory)?;
        let rep = store.recovery();
        if !rep.lost.is_empty() || !rep.damaged.is_empty() || !rep.foreign.is_empty() {
            return Err(StorageError::Corrupt(format!(
                "{log_dir}: lost entries {:?}, damaged regions {:?}, foreign files {:?}",
                rep.lost, rep.damaged, rep.foreign
            )));
        }
        if !has(META) {
            // First open: the meta file and the store's directory become durable names.
            disk.write_file(&meta_path, &[]).map_err(io_err(&meta_path))?;
            disk.sync_dir(&dir).map_err(io_err(&dir))?;
        }

        // Reconcile the store with the snapshot marker, as a persist would have (a crash
        // may have come between the marker and the store's changes).
        let (si, st) = meta.snapshot.map_or((0, 0), |m| (m.last_index, m.last_term));
        let state = store.state();
        if state.last_seq < si {
            store.compact(si + 1)?;
        } else if state.first_seq <= si {
            let keep = store.load(si)?.is_some_and(|m| m.ts_ns as u64 == st);
            if !keep {
                store.truncate_after(si)?;
            }
            store.compact(si + 1)?;
        }
        let state = store.state();
        let holes = if state.msgs == 0 {
            state.last_seq != si
        } else {
            state.first_seq != si + 1 || state.msgs != state.last_seq - si
        };
        if holes {
            return Err(StorageError::Corrupt(format!(
                "{log_dir}: holds {} entries in {}..={} after a snapshot at {si}",
                state.msgs, state.first_seq, state.last_seq
            )));
        }
        let mut entries = Vec::with_capacity(state.msgs as usize);
        for index in si + 1..=state.last_seq {
            let m =
                store.load(index)?.ok_or_else(|| StorageError::Corrupt(format!("{log_dir}: entry {index} missing")))?;
            entries.push(Entry { term: m.ts_ns as u64, index, data: m.payload });
        }
        store.release_memory();

        let mut index = LogIndex { snap_index: si, snap_term: st, last_index: si, runs: Vec::new() };
        if !entries.is_empty() {
            index.append(&entries);
        }
        let st = RaftStorage {
            disk,
            dir,
            store,
            meta,
            hard_state: meta.hard_state,
            index,
            meta_len: valid_len as u64,
            min_rewrite_bytes: DEFAULT_MIN_REWRITE_BYTES,
            failed: false,
            owed_ns,
        };
        let restored = Restored { hard_state: meta.hard_state, snapshot, entries };
        Ok((st, restored))
    }

    /// Make `ready.snapshot`, `ready.hard_state` and `ready.entries` durable.
    ///
    /// Runs the steps described in the module documentation, each synced: a crash keeps
    /// every completed call and a prefix of the steps of the call it cuts short. Entries at
    /// or below the (new) snapshot are ignored: the snapshot covers them.
    pub async fn persist(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let r = self.persist_inner(ready).await;
        pay(&self.owed_ns).await;
        if r.as_ref().is_err_and(|e| !matches!(e, StorageError::Invalid(_))) {
            self.failed = true;
        }
        r
    }

    async fn persist_inner(&mut self, ready: &Ready) -> Result<(), StorageError> {
        // Check everything before writing anything.
        let (snap_index, keep, base_last) = match &ready.snapshot {
            Some(s) => {
                let (si, term) = (s.meta.last_index, s.meta.last_term);
                if si < self.index.snap_index {
                    return Err(StorageError::Invalid(format!(
                        "snapshot at {si} is older than the stored one at {}",
                        self.index.snap_index
                    )));
                }
                let keep = self.index.keeps_suffix(si, term);
                (si, keep, if keep { self.index.last_index } else { si })
            }
            None => (self.index.snap_index, true, self.index.last_index),
        };
        let es = live_suffix(&ready.entries, snap_index, base_last).map_err(StorageError::Invalid)?;
        if ready.snapshot.is_none() && ready.hard_state.is_none() && es.is_empty() {
            return Ok(());
        }
        // The log that steps 3 and 4 never go below.
        let kept_last = es.first().map_or(base_last, |f| base_last.min(f.index - 1));
        let hs = ready.hard_state.unwrap_or(self.hard_state);

        // 1. The snapshot's file.
        let mut marker = self.meta.snapshot;
        if let Some(s) = &ready.snapshot {
            let mut file = Vec::new();
            let payload = encode(s)?;
            frame(&mut file, &payload);
            let tmp = self.path(SNAP_TMP);
            self.disk.write_file(&tmp, &file).map_err(io_err(&tmp))?;
            self.disk.sync(&tmp).map_err(io_err(&tmp))?;
            self.disk.sync_dir(&self.dir).map_err(io_err(&self.dir))?;
            marker = Some(Marker {
                last_index: s.meta.last_index,
                last_term: s.meta.last_term,
                checksum: xxh3_64(&payload),
            });
            pay(&self.owed_ns).await;
        }

        // 2. Term, vote and snapshot marker before any entry.
        let old = self.meta.hard_state;
        if ready.snapshot.is_some() || (hs.term, hs.vote) != (old.term, old.vote) {
            let early = HardState { commit: hs.commit.min(kept_last), ..hs };
            self.write_meta(Meta { hard_state: early, snapshot: marker }).await?;
            if ready.snapshot.is_some() {
                // No directory sync needed: see the module documentation.
                let (tmp, snap) = (self.path(SNAP_TMP), self.path(SNAP));
                self.disk.rename(&tmp, &snap).map_err(io_err(&tmp))?;
            }
        }

        // 3. The snapshot applied to the entry store.
        if let Some(s) = &ready.snapshot {
            let si = s.meta.last_index;
            if !keep && self.store.state().last_seq > si {
                self.store.truncate_after(si)?;
            }
            self.store.compact(si + 1)?;
        }

        // 4. The entries, replacing a conflicting suffix.
        if let Some(first) = es.first() {
            if first.index <= self.store.state().last_seq {
                self.store.truncate_after(first.index - 1)?;
            }
            let msgs: Vec<NewMsg<'_>> = es
                .iter()
                .map(|e| NewMsg { subject: SUBJECT, headers: &[], payload: &e.data, ts_ns: e.term as i64 })
                .collect();
            let seqs = self.store.append_batch(&msgs)?;
            if seqs.first() != Some(&first.index) || seqs.len() != es.len() {
                return Err(StorageError::Corrupt(format!(
                    "{}: entries {}.. stored at sequences {:?}",
                    self.path(LOG),
                    first.index,
                    seqs.first()
                )));
            }
        }
        pay(&self.owed_ns).await;

        // 5. The final hard state.
        let last = Meta { hard_state: hs, snapshot: marker };
        if last != self.meta {
            self.write_meta(last).await?;
        }

        // Durable: update the index.
        if let Some(s) = &ready.snapshot {
            self.index.apply_snapshot(s.meta.last_index, s.meta.last_term);
        }
        if !es.is_empty() {
            self.index.append(es);
        }
        self.hard_state = hs;
        if self.meta_len >= self.min_rewrite_bytes {
            self.rewrite_meta().await?;
        }
        Ok(())
    }

    /// Append `meta` to the meta log and sync it.
    async fn write_meta(&mut self, meta: Meta) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let n = frame(&mut buf, &encode(&meta)?);
        let p = self.path(META);
        self.disk.append(&p, &buf).map_err(io_err(&p))?;
        self.disk.sync(&p).map_err(io_err(&p))?;
        pay(&self.owed_ns).await;
        self.meta = meta;
        self.meta_len += n;
        Ok(())
    }

    /// Replace the meta log by one frame holding the current state.
    async fn rewrite_meta(&mut self) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let n = frame(&mut buf, &encode(&self.meta)?);
        let (tmp, p) = (self.path(META_TMP), self.path(META));
        self.disk.write_file(&tmp, &buf).map_err(io_err(&tmp))?;
        self.disk.sync(&tmp).map_err(io_err(&tmp))?;
        self.disk.rename(&tmp, &p).map_err(io_err(&tmp))?;
        self.disk.sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        pay(&self.owed_ns).await;
        self.meta_len = n;
        Ok(())
    }

    /// Rewrite the meta log once it is `bytes` long (default [`DEFAULT_MIN_REWRITE_BYTES`]).
    pub fn set_min_rewrite_bytes(&mut self, bytes: u64) {
        self.min_rewrite_bytes = bytes;
    }

    /// The last persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The last stored log index (the snapshot's when no entries follow it).
    pub fn last_index(&self) -> Index {
        self.index.last_index
    }

    /// The last index covered by the stored snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.index.snap_index
    }

    /// Current length of the meta log (hard state and snapshot marker) in bytes.
    pub fn meta_len(&self) -> u64 {
        self.meta_len
    }

    /// The entry store (for inspection: blocks, bytes, recovery report).
    pub fn entry_store(&self) -> &FileStore {
        &self.store
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    fn path(&self, name: &str) -> String {
        disk::join(&self.dir, name)
    }
}

/// Wait out the disk latency noted so far.
async fn pay(owed_ns: &AtomicU64) {
    let ns = owed_ns.swap(0, Relaxed);
    if ns > 0 {
        tokio::time::sleep(std::time::Duration::from_nanos(ns)).await;
    }
}

/// Read and check a snapshot file: `Ok(Err(why))` when it is damaged.
fn read_snapshot(disk: &dyn Disk, path: &str) -> Result<Result<(u64, Snapshot), String>, StorageError> {
    let buf = disk.read(path).map_err(io_err(path))?;
    let parsed = parse_frame(&buf, 0)
        .filter(|r| r.end == buf.len())
        .and_then(|r| decode::<Snapshot>(&buf[r.clone()]).map(|s| (xxh3_64(&buf[r]), s)));
    Ok(parsed.ok_or_else(|| format!("damaged snapshot file ({} bytes)", buf.len())))
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_string(), source }
}

impl std::fmt::Debug for dyn Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disk")
    }
}
