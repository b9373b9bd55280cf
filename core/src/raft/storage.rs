//! Durable Raft state over the `Disk` seam: hard state, log and snapshot.
//!
//! Files in the storage directory:
//! - `wal`: an append-only log of frames `[len u32 LE][xxh3-64 of payload u64 LE][payload]`.
//!   A payload is the bincode encoding of a batch of [`Record`]s: a hard state, a run of
//!   entries, or a snapshot marker. [`RaftStorage::persist`] appends exactly one frame and
//!   syncs once, so a persist call is atomic: a crash keeps the whole frame or none of it.
//!   Entries whose first index is at or below the last stored index replace the stored
//!   suffix from that index (a log conflict).
//! - `snap`: the current snapshot, one frame holding a bincode [`Snapshot`].
//! - `snap.tmp`: a snapshot being installed.
//!
//! Snapshot protocol. The snapshot becomes current when the wal frame carrying its marker
//! (index, term and the checksum of its file) is durable, which keeps a persist call
//! atomic even when it carries a snapshot: write `snap.tmp`, sync it, sync the directory
//! (its name is now durable), append and sync the wal frame (the commit point), then
//! rename `snap.tmp` over `snap`. That rename needs no directory sync of its own: until
//! some later directory sync makes it durable, a crash leaves the referenced `snap.tmp`
//! behind and [`RaftStorage::open`] finishes the rename. Every later writer of `snap.tmp`
//! syncs the directory first, so the rename is durable before the name is reused.
//!
//! Installing a snapshot at `(index, term)` drops stored entries up to `index`; entries
//! after it survive only when the stored entry at `index` has term `term` (the Raft
//! log-matching rule), otherwise the whole log is discarded.
//!
//! Compaction: when more than half of a wal of at least [`DEFAULT_MIN_REWRITE_BYTES`] is
//! obsolete (entries below the snapshot, replaced suffixes, old hard states), the live
//! state is rewritten to `wal.tmp`, synced, renamed over `wal` and the directory synced.
//!
//! Recovery: frames are replayed in order. A damaged frame with no valid frame after it
//! is what a crash during an append leaves behind, so the wal is cut there; a damaged
//! frame followed by a valid one is corruption and is reported with its byte offset.
//!
//! In memory the storage keeps only an index of the log (last index, snapshot position,
//! term boundaries and the size of each persisted batch), never the entries themselves.
//! After an I/O error the storage refuses further writes: what reached the disk is then
//! unknown (fsync errors may drop dirty pages), and only reopening re-establishes it.

use super::{Entry, HardState, Index, Ready, Restored, Snapshot, Term};
use crate::disk::{self, Disk, DiskOp};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// The write-ahead log.
const WAL: &str = "wal";
/// A wal being rewritten.
const WAL_TMP: &str = "wal.tmp";
/// The current snapshot.
const SNAP: &str = "snap";
/// A snapshot being installed.
const SNAP_TMP: &str = "snap.tmp";
/// Frame header: length and checksum.
const HEADER: usize = 12;
/// Entry bytes per frame when the wal is rewritten.
const REWRITE_BATCH_BYTES: u64 = 1 << 20;

/// Below this wal size the wal is never rewritten.
pub const DEFAULT_MIN_REWRITE_BYTES: u64 = 64 * 1024;

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
    /// An earlier I/O error left the on-disk state unknown; reopen the storage.
    #[error("raft storage failed earlier and must be reopened")]
    Failed,
}

/// One wal record, as written.
#[derive(Serialize)]
enum RecordRef<'a> {
    /// The hard state from here on.
    HardState(&'a HardState),
    /// Entries to append (replacing the stored suffix from their first index).
    Entries(&'a [Entry]),
    /// The snapshot whose file has checksum `checksum` is current from here on.
    SnapshotMarker { last_index: Index, last_term: Term, checksum: u64 },
}

/// One wal record, as read back (same encoding as [`RecordRef`]).
#[derive(Deserialize)]
enum Record {
    /// The hard state from here on.
    HardState(HardState),
    /// Entries to append (replacing the stored suffix from their first index).
    Entries(Vec<Entry>),
    /// The snapshot whose file has checksum `checksum` is current from here on.
    SnapshotMarker { last_index: Index, last_term: Term, checksum: u64 },
}

/// The snapshot a wal refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Marker {
    last_index: Index,
    last_term: Term,
    checksum: u64,
}

/// Entries from one frame that are still (partly) live, for compaction accounting.
#[derive(Clone, Copy, Debug)]
struct Segment {
    first: Index,
    last: Index,
    bytes: u64,
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
    /// Frames holding live entries, oldest first.
    segments: VecDeque<Segment>,
    /// Sum of `segments[..].bytes`.
    live_bytes: u64,
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

    /// Install a snapshot at `(s, t)` (`s >= snap_index`); returns whether the suffix was kept.
    fn apply_snapshot(&mut self, s: Index, t: Term) -> bool {
        let keep = self.keeps_suffix(s, t);
        if keep {
            let mut runs = Vec::with_capacity(self.runs.len());
            for (k, &(first, term)) in self.runs.iter().enumerate() {
                let end = self.runs.get(k + 1).map_or(self.last_index, |r| r.0 - 1);
                if end > s {
                    runs.push((first.max(s + 1), term));
                }
            }
            self.runs = runs;
            while let Some(seg) = self.segments.front_mut() {
                if seg.last <= s {
                    self.live_bytes -= seg.bytes;
                    self.segments.pop_front();
                } else {
                    seg.first = seg.first.max(s + 1);
                    break;
                }
            }
        } else {
            self.runs.clear();
            self.segments.clear();
            self.live_bytes = 0;
            self.last_index = s;
        }
        self.snap_index = s;
        self.snap_term = t;
        keep
    }

    /// Drop stored entries from `i` on (`i > snap_index`).
    fn truncate_from(&mut self, i: Index) {
        self.runs.retain(|r| r.0 < i);
        while let Some(seg) = self.segments.back_mut() {
            if seg.first >= i {
                self.live_bytes -= seg.bytes;
                self.segments.pop_back();
            } else {
                seg.last = seg.last.min(i - 1);
                break;
            }
        }
        self.last_index = self.last_index.min(i - 1);
    }

    /// Append `es` (checked by [`live_suffix`], non-empty), written in a frame of `bytes` bytes.
    fn append(&mut self, es: &[Entry], bytes: u64) {
        let (first, last) = (es[0].index, es[es.len() - 1].index);
        if first <= self.last_index {
            self.truncate_from(first);
        }
        for e in es {
            if self.runs.last().map(|r| r.1) != Some(e.term) {
                self.runs.push((e.index, e.term));
            }
        }
        self.last_index = last;
        self.segments.push_back(Segment { first, last, bytes });
        self.live_bytes += bytes;
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
    Ok(es)
}

/// Append one frame holding `payload` to `out`; returns the frame length.
fn frame(out: &mut Vec<u8>, payload: &[u8]) -> u64 {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    (HEADER + payload.len()) as u64
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| StorageError::Invalid(format!("cannot encode: {e}")))
}

/// Encode `records` as one frame appended to `out`; returns the frame length.
fn encode_frame(out: &mut Vec<u8>, records: &[RecordRef<'_>]) -> Result<u64, StorageError> {
    let payload = encode(records)?;
    if payload.len() > u32::MAX as usize {
        return Err(StorageError::Invalid(format!("batch of {} bytes is too large", payload.len())));
    }
    Ok(frame(out, &payload))
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

/// Decoded wal frames: `(frame length, records)`, and the length of the valid prefix.
type Frames = (Vec<(u64, Vec<Record>)>, usize);

/// Split a wal into frames. A damaged frame with nothing valid after it ends the valid
/// prefix (a torn tail); one followed by a valid frame is corruption.
fn scan_wal(buf: &[u8], path: &str) -> Result<Frames, StorageError> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_frame(buf, pos) {
            Some(range) => {
                let end = range.end;
                let records = decode::<Vec<Record>>(&buf[range]).ok_or_else(|| {
                    StorageError::Corrupt(format!("{path}: undecodable record batch at byte offset {pos}"))
                })?;
                frames.push(((end - pos) as u64, records));
                pos = end;
            }
            None => {
                let valid_after = (pos + 1..buf.len())
                    .find(|&q| parse_frame(buf, q).is_some_and(|r| decode::<Vec<Record>>(&buf[r]).is_some()));
                if let Some(q) = valid_after {
                    return Err(StorageError::Corrupt(format!(
                        "{path}: damaged record at byte offset {pos} (a valid record follows at offset {q})"
                    )));
                }
                break;
            }
        }
    }
    Ok((frames, pos))
}

/// The state a wal describes.
#[derive(Default)]
struct Replayed {
    hard_state: HardState,
    marker: Option<Marker>,
    /// Entries after the snapshot.
    entries: Vec<Entry>,
    index: LogIndex,
}

/// Apply wal frames in order.
fn replay(frames: Vec<(u64, Vec<Record>)>, path: &str) -> Result<Replayed, StorageError> {
    let mut st = Replayed::default();
    let corrupt = |what: String| StorageError::Corrupt(format!("{path}: {what}"));
    for (bytes, records) in frames {
        for record in records {
            match record {
                Record::HardState(hs) => st.hard_state = hs,
                Record::SnapshotMarker { last_index, last_term, checksum } => {
                    let old = st.index.snap_index;
                    if last_index < old {
                        return Err(corrupt(format!("snapshot at {last_index} after one at {old}")));
                    }
                    if st.index.apply_snapshot(last_index, last_term) {
                        st.entries.drain(..(last_index - old) as usize);
                    } else {
                        st.entries.clear();
                    }
                    st.marker = Some(Marker { last_index, last_term, checksum });
                }
                Record::Entries(es) => {
                    let es = live_suffix(&es, st.index.snap_index, st.index.last_index).map_err(corrupt)?;
                    if let Some(first) = es.first() {
                        st.entries.truncate((first.index - st.index.snap_index - 1) as usize);
                        st.index.append(es, bytes);
                        st.entries.extend_from_slice(es);
                    }
                }
            }
        }
    }
    Ok(st)
}

/// The durable half of a Raft member: hard state, log, snapshot.
#[derive(Debug)]
pub struct RaftStorage {
    disk: Arc<dyn Disk>,
    dir: String,
    hard_state: HardState,
    index: LogIndex,
    /// Current length of the wal.
    wal_len: u64,
    /// The wal is rewritten only once it is at least this long.
    min_rewrite_bytes: u64,
    /// An I/O error happened: the on-disk state is unknown.
    failed: bool,
    /// Write latency not yet waited out, in nanoseconds: writes land in the page cache
    /// and their cost is paid by the next sync (or read), one timer instead of many.
    owed_ns: std::sync::atomic::AtomicU64,
}

impl RaftStorage {
    /// Open (or create) the storage in `dir`, recovering what was durable.
    pub async fn open(disk: Arc<dyn Disk>, dir: &str) -> Result<(RaftStorage, Restored), StorageError> {
        let mut st = RaftStorage {
            disk,
            dir: dir.to_string(),
            owed_ns: std::sync::atomic::AtomicU64::new(0),
            hard_state: HardState::default(),
            index: LogIndex::default(),
            wal_len: 0,
            min_rewrite_bytes: DEFAULT_MIN_REWRITE_BYTES,
            failed: false,
        };
        let names = st.list().await?;
        let has = |n: &str| names.iter().any(|x| x == n);
        for name in names.iter().filter(|n| n.ends_with(".tmp") && *n != SNAP_TMP) {
            st.remove(name).await?;
        }

        // The wal: cut a torn tail, replay the rest.
        let wal_path = st.path(WAL);
        let buf = if has(WAL) { st.read(WAL).await? } else { Vec::new() };
        let (frames, valid_len) = scan_wal(&buf, &wal_path)?;
        let wal_len = buf.len();
        drop(buf);
        let replayed = replay(frames, &wal_path)?;
        if has(WAL) {
            if valid_len < wal_len {
                st.truncate(WAL, valid_len as u64).await?;
                st.sync(WAL).await?;
            }
        } else {
            st.write_file(WAL, &[]).await?;
            st.sync_dir().await?;
        }

        // The snapshot the wal refers to.
        let snap = if has(SNAP) { Some(st.read_snapshot(SNAP).await?) } else { None };
        let tmp = if has(SNAP_TMP) { Some(st.read_snapshot(SNAP_TMP).await?) } else { None };
        let matches = |f: &Option<Result<(u64, Snapshot), String>>, m: &Marker| {
            matches!(f, Some(Ok((sum, s))) if *sum == m.checksum
                && s.meta.last_index == m.last_index && s.meta.last_term == m.last_term)
        };
        let snapshot = match replayed.marker {
            None => {
                if snap.is_some() {
                    return Err(StorageError::Corrupt(format!(
                        "{}: snapshot file present but the wal refers to none",
                        st.path(SNAP)
                    )));
                }
                if tmp.is_some() {
                    st.remove(SNAP_TMP).await?;
                }
                None
            }
            Some(m) if matches(&snap, &m) => {
                if tmp.is_some() {
                    st.remove(SNAP_TMP).await?;
                }
                snap.and_then(|r| r.ok()).map(|(_, s)| s)
            }
            Some(m) if matches(&tmp, &m) => {
                // Committed, but the rename did not survive: finish it.
                st.rename(SNAP_TMP, SNAP).await?;
                st.sync_dir().await?;
                tmp.and_then(|r| r.ok()).map(|(_, s)| s)
            }
            Some(m) => {
                let why = match snap {
                    Some(Err(e)) => e,
                    _ => format!("the snapshot at index {} that the wal refers to is missing", m.last_index),
                };
                return Err(StorageError::Corrupt(format!("{}: {why}", st.path(SNAP))));
            }
        };

        st.hard_state = replayed.hard_state;
        st.index = replayed.index;
        st.wal_len = valid_len as u64;
        let restored = Restored { hard_state: replayed.hard_state, snapshot, entries: replayed.entries };
        Ok((st, restored))
    }

    /// Make `ready.snapshot`, `ready.hard_state` and `ready.entries` durable.
    ///
    /// One wal append and one wal sync; a snapshot adds a file write, its sync and a
    /// directory sync. The call is atomic with respect to crashes. Entries at or below
    /// the (new) snapshot are ignored: the snapshot covers them.
    pub async fn persist(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let r = self.persist_inner(ready).await;
        if matches!(r, Err(StorageError::Io { .. } | StorageError::Corrupt(_))) {
            self.failed = true;
        }
        r
    }

    async fn persist_inner(&mut self, ready: &Ready) -> Result<(), StorageError> {
        // Check everything before writing anything.
        let (snap_index, last) = match &ready.snapshot {
            Some(s) => {
                let (si, term) = (s.meta.last_index, s.meta.last_term);
                if si < self.index.snap_index {
                    return Err(StorageError::Invalid(format!(
                        "snapshot at {si} is older than the stored one at {}",
                        self.index.snap_index
                    )));
                }
                (si, if self.index.keeps_suffix(si, term) { self.index.last_index } else { si })
            }
            None => (self.index.snap_index, self.index.last_index),
        };
        let es = live_suffix(&ready.entries, snap_index, last).map_err(StorageError::Invalid)?;
        if ready.snapshot.is_none() && ready.hard_state.is_none() && es.is_empty() {
            return Ok(());
        }

        let mut records = Vec::with_capacity(3);
        if let Some(s) = &ready.snapshot {
            let mut file = Vec::new();
            let payload = encode(s)?;
            frame(&mut file, &payload);
            self.write_file(SNAP_TMP, &file).await?;
            self.sync(SNAP_TMP).await?;
            self.sync_dir().await?;
            records.push(RecordRef::SnapshotMarker {
                last_index: s.meta.last_index,
                last_term: s.meta.last_term,
                checksum: xxh3_64(&payload),
            });
        }
        if let Some(hs) = &ready.hard_state {
            records.push(RecordRef::HardState(hs));
        }
        if !es.is_empty() {
            records.push(RecordRef::Entries(es));
        }
        let mut buf = Vec::new();
        let bytes = encode_frame(&mut buf, &records)?;
        self.append(WAL, &buf).await?;
        self.sync(WAL).await?;

        // Durable: update the index.
        if let Some(s) = &ready.snapshot {
            self.index.apply_snapshot(s.meta.last_index, s.meta.last_term);
        }
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
        if !es.is_empty() {
            self.index.append(es, bytes);
        }
        self.wal_len += bytes;
        if ready.snapshot.is_some() {
            // No directory sync needed: see the module documentation.
            self.rename(SNAP_TMP, SNAP).await?;
        }
        let obsolete = self.wal_len.saturating_sub(self.index.live_bytes);
        if self.wal_len >= self.min_rewrite_bytes && obsolete * 2 > self.wal_len {
            self.rewrite_wal().await?;
        }
        Ok(())
    }

    /// Rewrite the wal with only the live state (hard state, snapshot marker, live entries).
    async fn rewrite_wal(&mut self) -> Result<(), StorageError> {
        let path = self.path(WAL);
        let buf = self.read(WAL).await?;
        let (frames, valid_len) = scan_wal(&buf, &path)?;
        if valid_len != buf.len() {
            return Err(StorageError::Corrupt(format!("{path}: damaged record at byte offset {valid_len}")));
        }
        drop(buf);
        let live = replay(frames, &path)?;
        if (live.index.snap_index, live.index.last_index) != (self.index.snap_index, self.index.last_index) {
            return Err(StorageError::Corrupt(format!(
                "{path}: replay gives snapshot {} and last index {}, expected {} and {}",
                live.index.snap_index, live.index.last_index, self.index.snap_index, self.index.last_index
            )));
        }

        let mut out = Vec::new();
        let mut index = LogIndex::default();
        let mut head = vec![RecordRef::HardState(&live.hard_state)];
        if let Some(m) = live.marker {
            head.push(RecordRef::SnapshotMarker {
                last_index: m.last_index,
                last_term: m.last_term,
                checksum: m.checksum,
            });
            index.apply_snapshot(m.last_index, m.last_term);
        }
        encode_frame(&mut out, &head)?;
        let mut rest = &live.entries[..];
        while !rest.is_empty() {
            let mut size = 0;
            let n = rest
                .iter()
                .take_while(|e| {
                    size += e.size();
                    size <= REWRITE_BATCH_BYTES
                })
                .count()
                .max(1);
            let (chunk, tail) = rest.split_at(n);
            let bytes = encode_frame(&mut out, &[RecordRef::Entries(chunk)])?;
            index.append(chunk, bytes);
            rest = tail;
        }
        self.write_file(WAL_TMP, &out).await?;
        self.sync(WAL_TMP).await?;
        self.rename(WAL_TMP, WAL).await?;
        self.sync_dir().await?;
        self.index = index;
        self.wal_len = out.len() as u64;
        Ok(())
    }

    /// Read and check a snapshot file: `Ok(Err(why))` when it is damaged.
    async fn read_snapshot(&self, name: &str) -> Result<Result<(u64, Snapshot), String>, StorageError> {
        let buf = self.read(name).await?;
        let parsed = parse_frame(&buf, 0)
            .filter(|r| r.end == buf.len())
            .and_then(|r| decode::<Snapshot>(&buf[r.clone()]).map(|s| (xxh3_64(&buf[r]), s)));
        Ok(parsed.ok_or_else(|| format!("damaged snapshot file ({} bytes)", buf.len())))
    }

    /// Never rewrite a wal shorter than `bytes` (default [`DEFAULT_MIN_REWRITE_BYTES`]).
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

    /// Current length of the write-ahead log in bytes.
    pub fn wal_len(&self) -> u64 {
        self.wal_len
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    // Disk operations: each waits out the disk's latency first and names its path on error.

    fn path(&self, name: &str) -> String {
        disk::join(&self.dir, name)
    }

    async fn delay(&self, op: DiskOp, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let d = self.disk.latency(op, bytes);
        if op == DiskOp::Write {
            self.owed_ns.fetch_add(d.as_nanos() as u64, Relaxed);
            return;
        }
        let total = d + std::time::Duration::from_nanos(self.owed_ns.swap(0, Relaxed));
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
    }

    async fn list(&self) -> Result<Vec<String>, StorageError> {
        self.delay(DiskOp::Read, 0).await;
        self.disk.list(&self.dir).map_err(io_err(&self.dir))
    }

    async fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let p = self.path(name);
        let len = self.disk.len(&p).map_err(io_err(&p))?;
        self.delay(DiskOp::Read, len as usize).await;
        self.disk.read(&p).map_err(io_err(&p))
    }

    async fn append(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let p = self.path(name);
        self.delay(DiskOp::Write, data.len()).await;
        self.disk.append(&p, data).map(drop).map_err(io_err(&p))
    }

    async fn write_file(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let p = self.path(name);
        self.delay(DiskOp::Write, data.len()).await;
        self.disk.write_file(&p, data).map_err(io_err(&p))
    }

    async fn truncate(&self, name: &str, len: u64) -> Result<(), StorageError> {
        let p = self.path(name);
        self.delay(DiskOp::Write, 0).await;
        self.disk.truncate(&p, len).map_err(io_err(&p))
    }

    async fn sync(&self, name: &str) -> Result<(), StorageError> {
        let p = self.path(name);
        self.delay(DiskOp::Sync, 0).await;
        self.disk.sync(&p).map_err(io_err(&p))
    }

    async fn sync_dir(&self) -> Result<(), StorageError> {
        self.delay(DiskOp::Sync, 0).await;
        self.disk.sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (f, t) = (self.path(from), self.path(to));
        self.delay(DiskOp::Write, 0).await;
        self.disk.rename(&f, &t).map_err(io_err(&f))
    }

    async fn remove(&self, name: &str) -> Result<(), StorageError> {
        let p = self.path(name);
        self.delay(DiskOp::Write, 0).await;
        self.disk.remove(&p).map_err(io_err(&p))
    }
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_string(), source }
}

impl std::fmt::Debug for dyn Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disk")
    }
}
