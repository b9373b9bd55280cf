//! `FileStore`: a durable [`MsgStore`] over the [`Disk`] seam.
//!
//! # Layout
//!
//! The store owns one directory. Its data lives in append-only block files
//! `<dir>/<index>.blk`, `index` a decimal number starting at 1 that only grows. The last
//! block takes every write; it is rolled (a new block started) when a write would take
//! it past `block_size`. Any other file in the directory is foreign: it is listed in the
//! [`RecoveryReport`] and never touched.
//!
//! # Record format
//!
//! A block is a sequence of records. Every record is framed the same way (little endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `len`: whole record length, framing included |
//! | 4 | 1 | `kind`: 1 block header, 2 message, 3 delete, 4 seal |
//! | 5 | 1 | reserved, 0 |
//! | 6 | 2 | `subj_len`: subject length (messages) |
//! | 8 | 4 | `rec`: record number within the block (the block header is 0) |
//! | 12 | 4 | `slot`: message position in the block (`seq - base - 1`); delete: the block's message count; header: 1 if it truncates, else 0 |
//! | 16 | 8 | `seq`: message sequence; delete: first deleted; header: `base` |
//! | 24 | 8 | `aux`: message timestamp (ns, i64); delete: last deleted; header: `prev_end`; seal: slot count |
//! | 32 | 4 | `hdr_len`: message header-block length |
//! | 36 | 4 | header check: low 32 bits of xxh3-64 of bytes 0..36 |
//! | 40 | … | body: message `subject ‖ headers ‖ payload`; header `"WEIRBLK1" ‖ index u64` |
//! | len-8 | 8 | xxh3-64 of bytes 0..len-8 |
//!
//! So a message record is 48 bytes plus subject, headers and payload ([`stored_size`](super::stored_size)),
//! a delete or seal record 48 bytes, a block header 64 bytes.
//!
//! - **Block header** (first record): `base` is the last sequence assigned before the
//!   block was started; its messages take `base + 1, base + 2, …` with no gaps.
//!   `prev_end` is the last sequence covered by the previous block. `base > prev_end`
//!   records a skip (`compact` past the end), which is how the high-water mark survives
//!   every block being emptied and removed. The last block is never removed.
//! - **Delete**: the messages `seq..=aux` are deleted (ranges may span sequences that
//!   were already gone). Interior deletes, purges, compaction, expiry and limit
//!   evictions all write delete records, always into the last block, after the message
//!   records they delete. Messages are never rewritten in place. A delete's `slot` field
//!   holds its block's message count when it was written, so a damaged message record
//!   followed only by deletes is still reported lost (its sequence is never reused).
//! - **Seal**: written to a block (and synced) before the next block is created; `aux`
//!   is the block's message count, so a cut in a rolled block is detectable.
//! - **Truncating block header** (`slot` = 1): written by [`FileStore::truncate_after`]
//!   (for Raft logs, never by streams). Its `base` may be below the end of the previous
//!   blocks: every sequence above `base` held by an earlier block is discarded, and the
//!   block's own messages reuse them from `base + 1`. `prev_end` still records where the
//!   previous block ended. A header without the flag whose `base` is below the previous
//!   block's end is not accepted (the file is reported as foreign).
//!
//! Blocks are removed only from the front (oldest first), once every message in them is
//! deleted. Since deletes only ever point backwards, a removed prefix never holds a
//! delete that a remaining block needs.
//!
//! # Truncation
//!
//! [`FileStore::truncate_after`]`(seq)` rolls to a new block whose header has the truncate
//! flag, `base = seq` and `prev_end` = the old last sequence; like every roll it seals and
//! syncs the previous block, then writes and syncs the header and syncs the directory.
//! That durable header is the commit point: a crash before it leaves the old suffix whole
//! (a torn header is a torn creation, removed at open), a crash after it leaves the log
//! truncated. Nothing is rewritten or removed: the block holding `seq` keeps its later
//! records on disk, and blocks wholly above `seq` stay as empty blocks (in the index they
//! end at `seq`), because they may hold deletes of earlier messages. Every open discards
//! those records again for as long as the truncating block exists, and since blocks are
//! removed only from the front, once emptied, they always go before it.
//! Recovery applies a truncation where the truncating header appears in block order:
//! deletes read before it act on the old messages, records after it on the new ones, and
//! discarded sequences are never reported lost (a lost range of an earlier block is cut
//! at `base`).
//!
//! # Durability
//!
//! [`SyncPolicy::Always`] (the default) syncs the last block before a write call returns;
//! [`MsgStore::append_batch`] syncs once for the whole batch. [`SyncPolicy::Interval`]
//! leaves writes unsynced until [`FileStore::flush_if_due`] (or [`FileStore::tick`])
//! finds the interval elapsed: a power cut then loses up to an interval of acknowledged
//! writes, and their sequences may be handed out again. Rolling a block always syncs the
//! sealed block, the new block's header and the directory.
//!
//! With [`SyncPolicy::Interval`] small writes are also coalesced in a write-behind buffer
//! of up to `write_chunk` bytes (taken from the buffer pool, so charged to `store.buffers`):
//! it goes to the disk when full, before a read reaches into it, before a roll or a sync,
//! and when the store is dropped. Buffered records are unsynced writes like any other, so a
//! crash loses a suffix of them, never a record in the middle; a failure writing the buffer
//! stops the store ([`StoreError::Failed`]) since it holds acknowledged messages.
//! A batch ([`MsgStore::append_batch`]) that no limit could evict from or refuse is encoded
//! into one buffer per block and written with one disk append, under either policy; if that
//! append fails, none of its messages is stored.
//!
//! # Recovery
//!
//! [`FileStore::open`] scans every block in order (in bounded chunks, or whole blocks
//! when the buffer pool can hold them), checking every record's header check and
//! checksum. After a damaged spot it resynchronises on the next record whose header and
//! checksum are both right. From block headers, seals and message slots it knows which
//! sequences each block must hold, so it reports every message whose record is damaged
//! or missing as a [`LostRange`] (exact sequences, nothing renumbered), and damaged byte
//! regions as [`DamagedRegion`]s (with how many unreadable records they held, when the
//! record numbering tells). A damaged delete record whose header is still readable is
//! applied; one whose header is not is counted there, and the message it deleted may be
//! visible again. Damage at the end of the last block with no good record after it is a
//! torn write: it is cut off and reported as a [`TruncatedTail`]. A rolled block without
//! its seal is reported as damaged at its end. A block file with nothing readable left is
//! reported as damaged and left in place; the sequences it held (up to the next block's
//! `prev_end`) are lost, counted from sequence 1 if it was the oldest block (an
//! over-report when older blocks had been removed). Limits are then enforced again.
//!
//! Damage is reported by the open that finds it ([`FileStore::recovery`]); the damaged
//! files stay untouched, except that a block left with no live message at the front of the
//! store is reclaimed like any emptied block, after which later opens no longer mention it.
//!
//! After a failed write or sync the store refuses further writes ([`StoreError::Failed`])
//! until reopened; a failed append (such as ENOSPC) that could be undone is reported as
//! such and leaves the store usable.

use super::cache::BlockCache;
use super::meter::{BLOCK_COST, IndexMeter, SLOT_COST, SUBJECT_COST};
use super::pool::{BufferPool, PoolBuf};
use super::record::{self, SMALL_LEN};
use super::validate_filter;
use super::{
    Discard, LimitKind, MsgStore, NewMsg, PurgeRequest, Result, STORE_BUFFERS, STORE_CACHE, STORE_INDEX, StateRequest,
    StoreError, StoreLimits, StoreState, StoredMsg, check_size,
};
use crate::disk::Disk;
use crate::mem::{Account, Ledger};
use crate::subject::{has_wildcards, matches as subject_matches};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

/// When writes are made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Sync before every write call returns.
    #[default]
    Always,
    /// Sync when the caller's [`FileStore::flush_if_due`] finds this interval elapsed;
    /// a power cut loses up to one interval of acknowledged writes.
    Interval(Duration),
}

/// Known-bug switches of the file store: each turns off one safeguard on purpose so
/// the simulator can prove its checkers catch the defect (all off in production; the
/// simulator's bug catalogue, `weir-sim`'s `bugs`, maps its CLI names onto them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreBugs {
    /// Acknowledge appends before syncing them (the sync happens at the next write).
    pub lazy_fsync: bool,
    /// The buffer pool charges past its cap instead of refusing.
    pub unbounded_buffer_pool: bool,
    /// Message reads never return their buffer's charge.
    pub buffer_leak: bool,
}

/// File store tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStoreConfig {
    /// Roll to a new block when a write would take the last one past this size.
    pub block_size: u64,
    /// Durability policy.
    pub sync: SyncPolicy,
    /// Bytes read (and cached) around a message read.
    pub read_ahead: usize,
    /// Read size of the recovery scan when the pool cannot hold a whole block.
    pub scan_chunk: usize,
    /// Byte cap of the block cache.
    pub cache_bytes: u64,
    /// Cached windows and idle pool buffers are dropped after this long unused.
    pub cache_expiry: Duration,
    /// Idle bytes the buffer pool keeps for reuse.
    pub pool_idle_bytes: u64,
    /// Most bytes of delete records written per disk append.
    pub write_chunk: usize,
    /// Known-bug switches.
    pub bugs: StoreBugs,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            block_size: 4 << 20,
            sync: SyncPolicy::Always,
            read_ahead: 64 << 10,
            scan_chunk: 256 << 10,
            cache_bytes: 8 << 20,
            cache_expiry: Duration::from_secs(10),
            pool_idle_bytes: 1 << 20,
            write_chunk: 64 << 10,
            bugs: StoreBugs::default(),
        }
    }
}

impl FileStoreConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(StoreError::InvalidRequest(m.to_string()));
        if !(256..=1 << 30).contains(&self.block_size) {
            return bad("block_size must be between 256 bytes and 1 GiB");
        }
        if self.scan_chunk < record::BLOCK_HEADER_LEN || self.write_chunk < SMALL_LEN {
            return bad("scan_chunk and write_chunk are too small");
        }
        if self.read_ahead > 64 << 20 {
            return bad("read_ahead must be at most 64 MiB");
        }
        Ok(())
    }
}

/// The ledger accounts a file store charges.
#[derive(Clone, Debug)]
pub struct StoreMemory {
    /// `store.buffers`: the buffer pool (its limit is the pool's hard cap).
    pub buffers: Arc<Account>,
    /// `store.cache`: cached block windows.
    pub cache: Arc<Account>,
    /// `store.index`: the in-memory index (slots, subjects, block descriptors).
    pub index: Arc<Account>,
}

impl StoreMemory {
    /// The node ledger's `store.buffers`, `store.cache` and `store.index` accounts (panics if missing).
    pub fn from_ledger(ledger: &Ledger) -> Self {
        StoreMemory {
            buffers: ledger.account(STORE_BUFFERS),
            cache: ledger.account(STORE_CACHE),
            index: ledger.account(STORE_INDEX),
        }
    }

    /// Private accounts with the given limits (the index unlimited; see [`StoreMemory::with_index_limit`]).
    pub fn standalone(buffers: u64, cache: u64) -> Self {
        StoreMemory {
            buffers: Arc::new(Account::new(STORE_BUFFERS, buffers)),
            cache: Arc::new(Account::new(STORE_CACHE, cache)),
            index: Arc::new(Account::new(STORE_INDEX, u64::MAX)),
        }
    }

    /// The same, with a private `store.index` account of `limit` bytes.
    pub fn with_index_limit(self, limit: u64) -> Self {
        StoreMemory { index: Arc::new(Account::new(STORE_INDEX, limit)), ..self }
    }
}

/// Messages lost to damage: their records were unreadable or missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// Block that held them.
    pub block: u64,
    /// Their sequences.
    pub seqs: RangeInclusive<u64>,
}

/// A damaged byte region of a block (outside a torn tail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRegion {
    /// Block index.
    pub block: u64,
    /// Offset of the first damaged byte.
    pub offset: u64,
    /// Length of the region.
    pub len: u64,
    /// Records whose header could not be read (`None` when a cut hides the count); those
    /// that were messages are in [`RecoveryReport::lost`], the others were deletes, seals or headers.
    pub unreadable_records: Option<u64>,
}

/// The torn end of the last block, cut off at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    /// Block index.
    pub block: u64,
    /// New length of the block.
    pub offset: u64,
    /// Bytes cut.
    pub bytes: u64,
    /// Sequences of message records (with a readable header) in the cut bytes.
    pub seqs: Option<RangeInclusive<u64>>,
}

/// What [`FileStore::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Lost messages, in sequence order.
    pub lost: Vec<LostRange>,
    /// Damaged regions, in block order.
    pub damaged: Vec<DamagedRegion>,
    /// The torn tail cut from the last block, if any.
    pub truncated: Option<TruncatedTail>,
    /// Files in the directory that are not blocks of this store (left untouched).
    pub foreign: Vec<String>,
    /// Fully deleted blocks removed at open.
    pub removed_blocks: u64,
}

impl RecoveryReport {
    /// Whether recovery found nothing wrong (a cut torn tail is not damage).
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.damaged.is_empty() && self.foreign.is_empty()
    }

    /// Every lost sequence.
    pub fn lost_seqs(&self) -> BTreeSet<u64> {
        self.lost.iter().flat_map(|l| l.seqs.clone()).collect()
    }
}

/// Where a message lives: offset and length of its record, and its subject id. `len == 0`
/// means no message (deleted, lost or never written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Slot {
    pub off: u32,
    pub len: u32,
    pub subj: u32,
}

/// One block file and its index.
#[derive(Debug)]
pub(super) struct Block {
    pub index: u64,
    pub path: String,
    /// Sequences `base + 1 ..= base + slots.len()` belong to this block.
    pub base: u64,
    pub slots: Vec<Slot>,
    /// Live messages.
    pub live: u64,
    /// File length.
    pub len: u64,
    /// Next record number.
    pub recs: u32,
    /// No more writes go here (sealed, or its header is damaged).
    pub sealed: bool,
}

impl Block {
    fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct SubjInfo {
    pub name: Option<Arc<str>>,
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

/// Live subjects: name <-> id, count, first and last sequence.
#[derive(Debug, Default)]
pub(super) struct Subjects {
    ids: BTreeMap<Arc<str>, u32>,
    info: Vec<SubjInfo>,
    free: Vec<u32>,
    /// Bytes of the live subjects' names.
    name_bytes: u64,
    /// Bumped whenever a subject appears or disappears.
    generation: u64,
}

impl Subjects {
    fn id(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn get(&self, id: u32) -> &SubjInfo {
        &self.info[id as usize]
    }

    /// Count a new message `seq` (the newest so far) on subject `s`.
    fn add(&mut self, s: &str, seq: u64) -> u32 {
        if let Some(id) = self.id(s) {
            let i = &mut self.info[id as usize];
            i.count += 1;
            i.last = seq;
            return id;
        }
        let name: Arc<str> = Arc::from(s);
        self.name_bytes += s.len() as u64;
        let info = SubjInfo { name: Some(name.clone()), count: 1, first: seq, last: seq };
        let id = match self.free.pop() {
            Some(id) => {
                self.info[id as usize] = info;
                id
            }
            None => {
                self.info.push(info);
                (self.info.len() - 1) as u32
            }
        };
        self.ids.insert(name, id);
        self.generation += 1;
        id
    }

    /// Uncount one message; true when the subject is gone.
    fn dec(&mut self, id: u32) -> bool {
        let i = &mut self.info[id as usize];
        i.count -= 1;
        if i.count > 0 {
            return false;
        }
        let name = i.name.take().expect("live subject has a name");
        self.name_bytes -= name.len() as u64;
        self.ids.remove(&name);
        self.free.push(id);
        self.generation += 1;
        true
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The fsyncs of a group commit, taken by [`FileStore::begin_flush`] and run without
/// the store by [`FlushPlan::run`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushPlan {
    /// Block files written since the last flush.
    pub files: Vec<String>,
    /// The store directory, when blocks were created or removed since.
    pub dir: Option<String>,
}

impl FlushPlan {
    /// Fsync the files, then the directory; the first failure, with its path. A block
    /// removed meanwhile (it held nothing live) is no failure.
    pub fn run(&self, disk: &dyn Disk) -> std::result::Result<(), (String, io::Error)> {
        for f in &self.files {
            match disk.sync(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err((f.clone(), e)),
                _ => {}
            }
        }
        if let Some(d) = &self.dir {
            disk.sync_dir(d).map_err(|e| (d.clone(), e))?;
        }
        Ok(())
    }
}

/// A durable message store over the [`Disk`] seam (see the module documentation).
pub struct FileStore {
    pub(super) disk: Arc<dyn Disk>,
    pub(super) dir: String,
    pub(super) limits: StoreLimits,
    pub(super) cfg: FileStoreConfig,
    pub(super) blocks: VecDeque<Block>,
    pub(super) subjects: Subjects,
    pub(super) msgs: u64,
    pub(super) bytes: u64,
    pub(super) last_seq: u64,
    pub(super) first_seq: u64,
    pub(super) pool: BufferPool,
    pub(super) cache: BlockCache,
    pub(super) dirty: BTreeSet<u64>,
    pub(super) dir_dirty: bool,
    pub(super) last_flush: Option<Duration>,
    pub(super) failed: Option<String>,
    pub(super) report: RecoveryReport,
    pub(super) head_ts: Option<(u64, i64)>,
    pub(super) next_index: u64,
    /// The index's charge on `store.index`.
    meter: IndexMeter,
    /// Slots in all blocks (for the index model).
    pub(super) slot_count: u64,
    /// The last wildcard filter's matching subject ids, valid for one subject generation.
    match_cache: Option<(String, u64, Arc<[bool]>)>,
    /// Write-behind buffer of the last block (`SyncPolicy::Interval` only): records whose
    /// offsets start at `last block len - pending len`, not yet handed to the disk.
    pending: Option<PoolBuf>,
    active: bool,
    last_active: Duration,
    /// Removals caused by appends whose delete records wait for them (`store::held`).
    pub(super) held: super::held::HeldSet,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("blocks", &self.blocks.len())
            .field("first_seq", &self.first_seq)
            .field("last_seq", &self.last_seq)
            .field("msgs", &self.msgs)
            .finish_non_exhaustive()
    }
}

impl Drop for FileStore {
    /// Hand the write-behind buffer to the disk (unsynced, as it would have been), unless
    /// the block no longer ends where the buffer starts (say, a simulated crash cut it).
    fn drop(&mut self) {
        let Some(b) = self.blocks.back() else { return };
        let start = b.len - self.pending_len();
        if self.failed.is_none() && self.pending_len() > 0 && self.disk.len(&b.path).is_ok_and(|l| l == start) {
            let _ = self.write_pending();
        }
    }
}

/// Map a disk error to a store error.
pub(super) fn io_error(op: &'static str, path: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::StorageFull {
        StoreError::NoSpace { path: path.to_string() }
    } else {
        StoreError::Io { op, path: path.to_string(), source: e }
    }
}

/// Most bytes [`FileStore`] encodes into one buffer for a grouped batch write.
const GROUP_WRITE_MAX: u64 = 1 << 20;

fn no_buffer(need: usize) -> StoreError {
    StoreError::NoMemory { account: STORE_BUFFERS, need: need as u64 }
}

impl FileStore {
    /// Open (or create) the store in `dir`, recovering its blocks; see
    /// [`FileStore::recovery`] for what was found.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &str,
        limits: StoreLimits,
        cfg: FileStoreConfig,
        mem: StoreMemory,
    ) -> Result<FileStore> {
        FileStore::open_dropping(disk, dir, limits, cfg, mem, &[])
    }

    /// [`FileStore::open`], removing the messages `drop` (appends the owner refused
    /// after a failed fsync, which the disk may have kept anyway) durably before the
    /// limits are enforced: a refused append must neither come back nor evict anything
    /// (`store::held`).
    pub fn open_dropping(
        disk: Arc<dyn Disk>,
        dir: &str,
        limits: StoreLimits,
        cfg: FileStoreConfig,
        mem: StoreMemory,
        drop: &[u64],
    ) -> Result<FileStore> {
        limits.validate()?;
        cfg.validate()?;
        let mut pool = BufferPool::new(mem.buffers, cfg.pool_idle_bytes);
        pool.set_bugs(cfg.bugs.unbounded_buffer_pool, cfg.bugs.buffer_leak);
        let cache = BlockCache::new(mem.cache, cfg.cache_bytes, cfg.cache_expiry);
        let mut fs = FileStore {
            disk,
            dir: dir.trim_end_matches('/').to_string(),
            limits,
            cfg,
            blocks: VecDeque::new(),
            subjects: Subjects::default(),
            msgs: 0,
            bytes: 0,
            last_seq: 0,
            first_seq: 1,
            pool,
            cache,
            dirty: BTreeSet::new(),
            dir_dirty: false,
            last_flush: None,
            failed: None,
            report: RecoveryReport::default(),
            head_ts: None,
            next_index: 1,
            meter: IndexMeter::new(mem.index),
            slot_count: 0,
            match_cache: None,
            pending: None,
            active: false,
            last_active: Duration::ZERO,
            held: Default::default(),
        };
        super::recover::recover(&mut fs)?;
        fs.slot_count = fs.blocks.iter().map(|b| b.slots.len() as u64).sum();
        fs.settle_index();
        let dropped: BTreeSet<u64> = drop.iter().copied().filter(|&q| fs.live_slot(q).is_some()).collect();
        if !dropped.is_empty() {
            let ranges = fs.coalesce(&dropped);
            fs.write_deletes(ranges)?;
            fs.flush()?;
        }
        let plan = fs.plan_evictions(None);
        if !plan.is_empty() {
            let ranges = fs.coalesce(&plan);
            fs.write_deletes(ranges)?;
        }
        fs.commit()?;
        fs.invariants();
        Ok(fs)
    }

    /// What recovery found when the store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// The store's directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Block files in use.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Indexes of the block files in use, oldest first.
    pub fn block_indexes(&self) -> Vec<u64> {
        self.blocks.iter().map(|b| b.index).collect()
    }

    /// Bytes of block windows cached.
    pub fn cache_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    /// Bytes of the in-memory index (slots, subjects, blocks) as charged to `store.index`.
    pub fn index_bytes(&self) -> u64 {
        self.meter.charged()
    }

    /// The index model charged to `store.index` (see the `meter` module).
    fn index_model(&self) -> u64 {
        self.slot_count * SLOT_COST
            + self.blocks.len() as u64 * BLOCK_COST
            + self.subjects.len() as u64 * SUBJECT_COST
            + self.subjects.name_bytes
            + self.held.msgs.len() as u64 * (SLOT_COST + SUBJECT_COST)
            + self.held.name_bytes
    }

    /// Bring the `store.index` charge in line with the index.
    pub(super) fn settle_index(&mut self) {
        let model = self.index_model();
        self.meter.settle(model);
    }

    /// Assert the index's invariants; a no-op unless debug assertions are on (tests and
    /// the simulation build). Runs after every mutating call, error paths included: an
    /// error must leave the index describing exactly what the files hold.
    ///
    /// Always checked: the `store.index` charge equals the index model (every mutating
    /// call settles it, error paths included); `first_seq <= last_seq` when the store
    /// holds anything; the last block ends at or before `last_seq`.
    /// Checked when [`crate::checks::walk`] allows a walk of the blocks, then of the live
    /// subjects (cost follows their numbers): blocks ascend without overlapping; per-block
    /// live counts add up to `msgs` and slot counts to `slot_count`; `first_seq` is live
    /// when the store holds anything; live subjects' counts add up to `msgs`, their names
    /// to `name_bytes`.
    /// Checked in unit tests and for small stores (≤ 256 slots; cost follows the slots): every live
    /// slot counted once in its block, its subject and `bytes`, and each subject's
    /// first and last sequence.
    pub fn invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert_eq!(self.meter.charged(), self.index_model(), "store.index charge vs index model");
        if self.msgs > 0 {
            assert!(self.first_seq <= self.last_seq, "first_seq {} > last_seq {}", self.first_seq, self.last_seq);
        }
        if let Some(b) = self.blocks.back() {
            assert!(b.end() <= self.last_seq, "last block ends at {} past last_seq {}", b.end(), self.last_seq);
        }
        if crate::checks::walk(self.blocks.len()) {
            self.check_blocks();
        }
        if crate::checks::walk(self.subjects.ids.len()) {
            self.check_subjects();
        }
        if cfg!(test) || self.slot_count <= 256 {
            self.check_slots();
        }
        if crate::checks::walk(self.held.msgs.len()) {
            self.check_held();
        }
    }

    /// The per-block part of [`FileStore::invariants`].
    fn check_blocks(&self) {
        let mut live = 0;
        let mut slots = 0;
        for (i, b) in self.blocks.iter().enumerate() {
            assert!(
                b.live <= b.slots.len() as u64,
                "block {} counts {} live of {} slots",
                b.index,
                b.live,
                b.slots.len()
            );
            if let Some(next) = self.blocks.get(i + 1) {
                assert!(
                    b.end() <= next.base,
                    "block {} ends at {} past the next block's base {}",
                    b.index,
                    b.end(),
                    next.base
                );
            }
            live += b.live;
            slots += b.slots.len() as u64;
        }
        assert_eq!(live, self.msgs, "blocks' live counts vs msgs");
        assert_eq!(slots, self.slot_count, "blocks' slots vs slot_count");
        if self.msgs > 0 {
            assert!(self.live_slot(self.first_seq).is_some(), "first_seq {} is not a live message", self.first_seq);
        }
    }

    /// The per-subject part of [`FileStore::invariants`].
    fn check_subjects(&self) {
        let subjects = &self.subjects;
        let live_infos: Vec<&SubjInfo> = subjects.info.iter().filter(|i| i.name.is_some()).collect();
        assert_eq!(live_infos.len(), subjects.ids.len(), "subject ids vs live subject records");
        assert_eq!(subjects.info.len(), subjects.ids.len() + subjects.free.len(), "subject ids + free ids");
        assert_eq!(live_infos.iter().map(|i| i.count).sum::<u64>(), self.msgs, "subject counts vs msgs");
        let name_bytes: u64 = live_infos.iter().map(|i| i.name.as_ref().map_or(0, |n| n.len() as u64)).sum();
        assert_eq!(name_bytes, subjects.name_bytes, "subject name bytes");
        for i in &live_infos {
            assert!(i.count > 0 && i.first <= i.last, "subject record {i:?}");
        }
    }

    /// The slot-by-slot part of [`FileStore::invariants`].
    fn check_slots(&self) {
        let mut bytes = 0;
        let mut per_subject: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        for b in &self.blocks {
            let mut live = 0;
            for (k, s) in b.slots.iter().enumerate() {
                if s.len == 0 {
                    continue;
                }
                let seq = b.base + 1 + k as u64;
                live += 1;
                bytes += s.len as u64;
                let e = per_subject.entry(s.subj).or_insert((0, seq, seq));
                e.0 += 1;
                e.2 = seq;
            }
            assert_eq!(live, b.live, "block {} live count", b.index);
        }
        assert_eq!(bytes, self.bytes, "slots' bytes vs bytes");
        for (id, (count, first, last)) in per_subject {
            let info = self.subjects.get(id);
            assert!(info.name.is_some(), "live slot on freed subject id {id}");
            assert_eq!((info.count, info.first, info.last), (count, first, last), "subject {:?}", info.name);
        }
    }

    /// End a mutating call: settle the `store.index` charge (error paths may have skipped
    /// `commit`, and the charge follows the index whatever happened), then check the
    /// invariants.
    pub(super) fn end_call<T>(&mut self, result: Result<T>) -> Result<T> {
        self.settle_index();
        self.invariants();
        result
    }

    /// Refuse an append of `n` messages on `subject` when `store.index` has no room for them.
    fn check_index_room(&self, n: u64, subject_bytes: u64) -> Result<()> {
        let need = n * (SLOT_COST + SUBJECT_COST) + subject_bytes + BLOCK_COST;
        if self.meter.has_room(need) { Ok(()) } else { Err(StoreError::NoMemory { account: STORE_INDEX, need }) }
    }

    /// Whether an earlier failure stopped writes.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Drive time: flush if the sync interval elapsed, expire idle cached windows and
    /// drop idle pool buffers once nothing has been read or written for `cache_expiry`.
    pub fn tick(&mut self, now: Duration) -> Result<()> {
        let r = self.flush_if_due(now).map(|_| ());
        self.cache.expire(now);
        if self.active {
            self.active = false;
            self.last_active = now;
        } else if now.saturating_sub(self.last_active) >= self.cfg.cache_expiry {
            self.pool.trim();
        }
        r
    }

    /// With [`SyncPolicy::Interval`], sync unsynced writes if the interval has elapsed
    /// since the last flush; returns whether it synced.
    pub fn flush_if_due(&mut self, now: Duration) -> Result<bool> {
        let SyncPolicy::Interval(every) = self.cfg.sync else { return Ok(false) };
        // The first call starts the interval clock.
        let last = *self.last_flush.get_or_insert(now);
        if (self.dirty.is_empty() && !self.dir_dirty) || now < last + every {
            return Ok(false);
        }
        self.flush()?;
        self.last_flush = Some(now);
        Ok(true)
    }

    /// Sync every unsynced write now. A store stopped by an earlier failure refuses
    /// ([`StoreError::Failed`]): the failed write may have dropped buffered records, so
    /// syncing what is left must not pass for making them durable.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        self.write_pending()?;
        let dirty: Vec<u64> = std::mem::take(&mut self.dirty).into_iter().collect();
        for index in dirty {
            let path = self.block_path(index);
            if let Err(e) = self.disk.sync(&path) {
                return Err(self.fail(io_error("sync", &path, e)));
            }
        }
        if self.dir_dirty {
            if let Err(e) = self.disk.sync_dir(&self.dir) {
                let dir = self.dir.clone();
                return Err(self.fail(io_error("sync_dir", &dir, e)));
            }
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Group commit, first half (while the caller holds its lock): hand the write-behind
    /// buffer to the disk and take the files whose fsync makes every write so far durable.
    /// Run the fsyncs with [`FlushPlan::run`] without the store (so that writes go on
    /// meanwhile; they are not covered) and report a failure with
    /// [`FileStore::flush_failed`]. [`FileStore::flush`] is both halves at once.
    /// A store stopped by an earlier failure refuses, as [`FileStore::flush`] does.
    pub fn begin_flush(&mut self) -> Result<FlushPlan> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        self.write_pending()?;
        let files = std::mem::take(&mut self.dirty).into_iter().map(|i| self.block_path(i)).collect();
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        Ok(FlushPlan { files, dir })
    }

    /// The fsyncs of a [`FileStore::begin_flush`] failed on `path`: stop writes, as a
    /// failed [`FileStore::flush`] does.
    pub fn flush_failed(&mut self, path: &str, e: io::Error) -> StoreError {
        self.fail(io_error("sync", path, e))
    }

    /// The first live sequence at or after `from`, if any, from the index alone (no
    /// read): how a caller walks sparse ranges without loading what is not there.
    pub fn next_live(&self, from: u64) -> Option<u64> {
        self.live_from(from).next().map(|(s, _, _)| s)
    }

    /// Make `seq` the next sequence an append takes, keeping every message (nothing to
    /// do when `seq <= last_seq + 1`): the sequences between are spent, never stored.
    /// It rolls to a new block whose header records the skip (`base = seq - 1`,
    /// `prev_end` = the old last sequence) and, like every roll, syncs it and the
    /// directory before returning, so a crash keeps the skip or none of it (a
    /// store-and-delete per sequence could be cut between the two records).
    pub fn skip_to(&mut self, seq: u64) -> Result<()> {
        let result = self.skip_to_unchecked(seq);
        self.end_call(result)
    }

    fn skip_to_unchecked(&mut self, seq: u64) -> Result<()> {
        if seq <= self.last_seq + 1 {
            return Ok(());
        }
        self.check_writable()?;
        let prev_end = self.last_seq;
        self.roll(seq - 1, prev_end, false)?;
        self.last_seq = seq - 1;
        if self.msgs == 0 {
            self.first_seq = seq;
            self.drop_empty_prefix();
        }
        self.commit()
    }

    /// Drop every cached window and idle pool buffer now (say, after a one-off bulk read).
    pub fn release_memory(&mut self) {
        self.cache.clear();
        self.pool.trim();
    }

    /// Flush and close.
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }

    pub(super) fn block_path(&self, index: u64) -> String {
        // One allocation (this runs on every flush): `disk::join` of a formatted name
        // made three.
        use std::fmt::Write as _;
        let mut path = String::with_capacity(self.dir.len() + 25);
        if !self.dir.is_empty() {
            path.push_str(&self.dir);
            path.push('/');
        }
        let _ = write!(path, "{index}.blk");
        path
    }

    /// Stop writes after a failure that left the disk state unknown.
    fn fail(&mut self, e: StoreError) -> StoreError {
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
        e
    }

    pub(super) fn check_writable(&mut self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        self.active = true;
        if self.cfg.bugs.lazy_fsync && self.cfg.sync == SyncPolicy::Always {
            // Known bug `lazy_fsync`: the previous write is synced only now, after its ack.
            self.flush()?;
        }
        Ok(())
    }

    /// End a write call: charge the index as it now is, and make the call durable as the
    /// policy says.
    pub(super) fn commit(&mut self) -> Result<()> {
        self.settle_index();
        match self.cfg.sync {
            SyncPolicy::Always if !self.cfg.bugs.lazy_fsync => self.flush(),
            _ => Ok(()),
        }
    }

    // ----- index helpers -------------------------------------------------------------

    /// Position of the block holding `seq`.
    pub(super) fn block_of(&self, seq: u64) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.base < seq);
        let i = i.checked_sub(1)?;
        (seq <= self.blocks[i].end()).then_some(i)
    }

    pub(super) fn live_slot(&self, seq: u64) -> Option<(usize, Slot)> {
        let bi = self.block_of(seq)?;
        let b = &self.blocks[bi];
        let s = b.slots[(seq - b.base - 1) as usize];
        (s.len != 0).then_some((bi, s))
    }

    /// Live messages at or after `from`, ascending: `(seq, block position, slot)`.
    pub(super) fn live_from(&self, from: u64) -> impl Iterator<Item = (u64, usize, Slot)> + '_ {
        let start = self.blocks.partition_point(|b| b.end() < from);
        self.blocks.range(start..).enumerate().filter(|(_, b)| b.live > 0).flat_map(move |(k, b)| {
            let lo = (from.saturating_sub(b.base + 1) as usize).min(b.slots.len());
            b.slots[lo..]
                .iter()
                .enumerate()
                .filter(|(_, s)| s.len != 0)
                .map(move |(j, s)| (b.base + 1 + (lo + j) as u64, start + k, *s))
        })
    }

    /// The first live sequence at or after `from`, or `last_seq + 1`.
    pub(super) fn first_live(&self, from: u64) -> u64 {
        let found = self.live_from(from).next().map(|(s, _, _)| s);
        found.unwrap_or(self.last_seq + 1)
    }

    /// Live messages at or before `to`, descending.
    fn live_back(&self, to: u64) -> impl Iterator<Item = (u64, usize, Slot)> + '_ {
        let end = self.blocks.partition_point(|b| b.base < to);
        self.blocks.range(..end).enumerate().rev().filter(|(_, b)| b.live > 0).flat_map(move |(k, b)| {
            let hi = ((to - b.base) as usize).min(b.slots.len());
            b.slots[..hi]
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, s)| s.len != 0)
                .map(move |(j, s)| (b.base + 1 + j as u64, k, *s))
        })
    }

    /// Record a message written at `off` of the last block (its slot is the next one).
    pub(super) fn insert_msg(&mut self, bi: usize, seq: u64, off: u64, len: u32, subject: &str) {
        let id = self.subjects.add(subject, seq);
        let b = &mut self.blocks[bi];
        debug_assert_eq!(seq, b.end() + 1);
        b.slots.push(Slot { off: off as u32, len, subj: id });
        self.slot_count += 1;
        b.live += 1;
        self.msgs += 1;
        self.bytes += len as u64;
        if self.msgs == 1 {
            self.first_seq = seq;
        }
    }

    /// Remove the live messages in `from..=to` from the index; returns how many.
    pub(super) fn delete_range_mem(&mut self, from: u64, to: u64) -> u64 {
        let mut stale = BTreeSet::new();
        let mut n = 0;
        let start = self.blocks.partition_point(|b| b.end() < from);
        for bi in start..self.blocks.len() {
            let b = &mut self.blocks[bi];
            if b.base + 1 > to {
                break;
            }
            if b.live == 0 {
                continue;
            }
            let lo = (from.saturating_sub(b.base + 1) as usize).min(b.slots.len());
            let hi = ((to - b.base) as usize).min(b.slots.len());
            for k in lo..hi {
                let s = b.slots[k];
                if s.len == 0 {
                    continue;
                }
                let seq = b.base + 1 + k as u64;
                b.slots[k].len = 0;
                b.live -= 1;
                self.msgs -= 1;
                self.bytes -= s.len as u64;
                n += 1;
                let info = self.subjects.get(s.subj);
                let edge = seq == info.first || seq == info.last;
                if self.subjects.dec(s.subj) {
                    stale.remove(&s.subj);
                } else if edge {
                    stale.insert(s.subj);
                }
            }
        }
        if n == 0 {
            return 0;
        }
        for id in stale {
            let (first, last) = (self.subjects.get(id).first, self.subjects.get(id).last);
            let nf = self.live_from(first).find(|(_, _, s)| s.subj == id).map(|(q, _, _)| q);
            let nl = self.live_back(last).find(|(_, _, s)| s.subj == id).map(|(q, _, _)| q);
            let info = &mut self.subjects.info[id as usize];
            info.first = nf.expect("subject with messages has a first");
            info.last = nl.expect("subject with messages has a last");
        }
        if self.head_ts.is_some_and(|(s, _)| (from..=to).contains(&s)) {
            self.head_ts = None;
        }
        if (from..=to).contains(&self.first_seq) || self.msgs == 0 {
            self.first_seq = self.first_live(self.first_seq);
        }
        n
    }

    /// Remove fully deleted blocks from the front (never the last block, nor one that
    /// holds a held message: `store::held`).
    pub(super) fn drop_empty_prefix(&mut self) -> u64 {
        let mut n = 0;
        while self.blocks.len() > 1
            && self.blocks[0].live == 0
            && !self.held.any_in(self.blocks[0].base + 1, self.blocks[0].end())
        {
            let path = self.blocks[0].path.clone();
            match self.disk.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => break, // keep it; a later removal retries
            }
            let b = self.blocks.pop_front().expect("non-empty");
            self.slot_count -= b.slots.len() as u64;
            self.cache.remove_block(b.index);
            self.dirty.remove(&b.index);
            self.dir_dirty = true;
            n += 1;
        }
        n
    }

    // ----- writing -----------------------------------------------------------------

    /// Append `data` to the last block; returns its offset. A failed append is undone
    /// (or, if that fails too, the store stops writing).
    fn write_last(&mut self, data: &[u8]) -> Result<u64> {
        if matches!(self.cfg.sync, SyncPolicy::Interval(_)) && data.len() <= self.cfg.write_chunk {
            let cap = self.cfg.write_chunk;
            if self.pending.as_ref().is_some_and(|p| p.bytes().len() + data.len() > cap) {
                self.write_pending()?;
            }
            if self.pending.is_none() {
                self.pending = self.pool.take(cap);
            }
            if let Some(p) = self.pending.as_mut() {
                p.vec().extend_from_slice(data);
                let b = self.blocks.back_mut().expect("a store always has a block");
                let off = b.len;
                b.len += data.len() as u64;
                let index = b.index;
                self.mark_dirty(index);
                return Ok(off);
            }
        }
        self.write_pending()?;
        let b = self.blocks.back().expect("a store always has a block");
        let (off, index) = (b.len, b.index);
        match self.disk.append(&b.path, data) {
            Ok(n) if n == off + data.len() as u64 => {}
            Ok(n) => {
                let path = b.path.clone();
                let e = io::Error::other(format!("block grew to {n} bytes, expected {}", off + data.len() as u64));
                return Err(self.fail(io_error("append", &path, e)));
            }
            Err(e) => {
                let path = b.path.clone();
                let undone = match self.disk.len(&path) {
                    Ok(l) if l == off => true,
                    Ok(l) if l > off => self.disk.truncate(&path, off).is_ok(),
                    _ => false,
                };
                let err = io_error("append", &path, e);
                return Err(if undone { err } else { self.fail(err) });
            }
        }
        let b = self.blocks.back_mut().expect("a store always has a block");
        b.len += data.len() as u64;
        self.mark_dirty(index);
        Ok(off)
    }

    fn mark_dirty(&mut self, index: u64) {
        if self.dirty.last() != Some(&index) {
            self.dirty.insert(index);
        }
    }

    /// Hand the write-behind buffer to the disk. It holds acknowledged records, so a
    /// failure stops the store.
    fn write_pending(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else { return Ok(()) };
        if p.bytes().is_empty() {
            self.pool.put(p);
            return Ok(());
        }
        let b = self.blocks.back().expect("a store always has a block");
        let end = b.len;
        let res = self.disk.append(&b.path, p.bytes());
        self.pool.put(p);
        match res {
            Ok(n) if n == end => Ok(()),
            Ok(n) => {
                let path = self.blocks.back().expect("a block").path.clone();
                let e = io::Error::other(format!("block grew to {n} bytes, expected {end}"));
                Err(self.fail(io_error("append", &path, e)))
            }
            Err(e) => {
                let path = self.blocks.back().expect("a block").path.clone();
                Err(self.fail(io_error("append", &path, e)))
            }
        }
    }

    /// Bytes of the write-behind buffer.
    fn pending_len(&self) -> u64 {
        self.pending.as_ref().map_or(0, |p| p.bytes().len() as u64)
    }

    /// Make sure the last block can take `need` more bytes, rolling if it cannot.
    fn prepare(&mut self, need: usize) -> Result<()> {
        let b = self.blocks.back().expect("a store always has a block");
        let has_records = b.recs > 1 || b.len > record::BLOCK_HEADER_LEN as u64;
        if b.sealed || (has_records && b.len + need as u64 > self.cfg.block_size) {
            self.roll(self.last_seq, self.last_seq, false)?;
        }
        Ok(())
    }

    /// Seal the last block and start a new one whose messages follow `base`; `truncates`
    /// marks it as discarding every earlier sequence above `base`.
    pub(super) fn roll(&mut self, base: u64, prev_end: u64, truncates: bool) -> Result<()> {
        if let Some(b) = self.blocks.back()
            && !b.sealed
        {
            let (rec, slots) = (b.recs, b.slots.len() as u64);
            let mut buf = Vec::with_capacity(SMALL_LEN);
            record::put_seal(&mut buf, rec, slots);
            self.write_last(&buf)?;
            let b = self.blocks.back_mut().expect("present");
            b.recs += 1;
            b.sealed = true;
        }
        self.write_pending()?;
        if let Some(b) = self.blocks.back()
            && self.dirty.contains(&b.index)
        {
            let (index, path) = (b.index, b.path.clone());
            if let Err(e) = self.disk.sync(&path) {
                return Err(self.fail(io_error("sync", &path, e)));
            }
            self.dirty.remove(&index);
        }
        let index = self.next_index;
        self.next_index += 1;
        let path = self.block_path(index);
        let mut buf = Vec::with_capacity(record::BLOCK_HEADER_LEN);
        record::put_block_header(&mut buf, index, base, prev_end, truncates);
        if let Err(e) = self.disk.append(&path, &buf) {
            let err = io_error("create block", &path, e);
            // A torn header left behind would end up between blocks once the next roll
            // made a later one: stop instead, and the reopen removes it as a torn
            // creation (it is then the newest file).
            return Err(match self.disk.remove(&path) {
                Ok(()) => err,
                Err(r) if r.kind() == io::ErrorKind::NotFound => err,
                Err(_) => self.fail(err),
            });
        }
        if let Err(e) = self.disk.sync(&path) {
            return Err(self.fail(io_error("sync", &path, e)));
        }
        if let Err(e) = self.disk.sync_dir(&self.dir) {
            let dir = self.dir.clone();
            return Err(self.fail(io_error("sync_dir", &dir, e)));
        }
        self.dir_dirty = false;
        self.blocks.push_back(Block {
            index,
            path,
            base,
            slots: Vec::new(),
            live: 0,
            len: buf.len() as u64,
            recs: 1,
            sealed: false,
        });
        Ok(())
    }

    /// Drop every sequence above `seq` from the index of the first `n` blocks (all the
    /// blocks there are but for, at most, a truncating block at the end): the block holding
    /// `seq` loses its slots above it, and blocks wholly above it are emptied and moved to
    /// `seq` (their files stay: they may hold deletes for earlier blocks, and are removed
    /// from the front like any emptied block). `last_seq` becomes `seq`.
    pub(super) fn discard_above(&mut self, seq: u64, n: usize) {
        // The index lookups below need the blocks in order: set a truncating block aside.
        let aside = (n < self.blocks.len()).then(|| self.blocks.pop_back().expect("a block"));
        debug_assert_eq!(n, self.blocks.len());
        if self.last_seq > seq {
            self.delete_range_mem(seq + 1, self.last_seq);
        }
        for b in self.blocks.iter_mut().rev() {
            if b.end() <= seq {
                break;
            }
            debug_assert!(b.base < seq || b.live == 0);
            let keep = seq.saturating_sub(b.base) as usize;
            self.slot_count -= (b.slots.len() - keep) as u64;
            b.slots.truncate(keep);
            b.base = b.base.min(seq);
            self.cache.remove_block(b.index);
        }
        self.last_seq = seq;
        if self.msgs == 0 {
            self.first_seq = seq + 1;
        }
        self.blocks.extend(aside);
    }

    /// Remove every message above `seq` and make `seq` the last sequence, so that the next
    /// append takes `seq + 1`; returns how many messages were removed.
    ///
    /// This is for logs like Raft's, whose conflicting suffix is replaced: it is the one
    /// exception to "sequences are never reused", and it is not part of [`MsgStore`]. `seq`
    /// must be at least `first_seq - 1` (nothing at or below the first stored sequence is
    /// touched); a `seq` at or past `last_seq` changes nothing. Crash-safe: the truncation
    /// takes effect when a new block whose header marks it is durable (see the module
    /// documentation), so a crash leaves either the whole old suffix or none of it.
    pub fn truncate_after(&mut self, seq: u64) -> Result<u64> {
        let result = self.truncate_after_unchecked(seq);
        self.end_call(result)
    }

    /// [`FileStore::truncate_after`] without the invariant check.
    fn truncate_after_unchecked(&mut self, seq: u64) -> Result<u64> {
        if seq >= self.last_seq {
            return Ok(0);
        }
        if seq + 1 < self.first_seq {
            return Err(StoreError::InvalidRequest(format!(
                "cannot truncate after {seq}: the store starts at {}",
                self.first_seq
            )));
        }
        self.check_writable()?;
        let msgs = self.msgs;
        let prev_end = self.last_seq;
        self.roll(seq, prev_end, true)?;
        let n = self.blocks.len() - 1;
        self.discard_above(seq, n);
        self.drop_empty_prefix();
        self.commit()?;
        Ok(msgs - self.msgs)
    }

    /// Refuse an append that a `Discard::New` limit forbids.
    fn check_discard_new(&self, subject: &str, size: u64) -> Result<()> {
        let l = &self.limits;
        if l.discard != Discard::New {
            return Ok(());
        }
        let count = self.subjects.id(subject).map_or(0, |id| self.subjects.get(id).count);
        if let Some(max) = l.max_msgs_per_subject
            && l.discard_new_per_subject
            && count + 1 > max
        {
            return Err(StoreError::Full { limit: LimitKind::MsgsPerSubject, max });
        }
        if let Some(max) = l.max_msgs
            && self.msgs + 1 > max
        {
            return Err(StoreError::Full { limit: LimitKind::Msgs, max });
        }
        if let Some(max) = l.max_bytes
            && self.bytes + size > max
        {
            return Err(StoreError::Full { limit: LimitKind::Bytes, max });
        }
        Ok(())
    }

    /// The messages the limits evict, if a message of `add = (subject, size)` is added
    /// (or, with `None`, as things stand): per subject first, then oldest first.
    pub(super) fn plan_evictions(&self, add: Option<(&str, u64)>) -> BTreeSet<u64> {
        let mut chosen = BTreeSet::new();
        let mut freed = 0u64;
        if let Some(max) = self.limits.max_msgs_per_subject {
            let over: Vec<(u32, u64)> = match add {
                Some((s, _)) => self
                    .subjects
                    .id(s)
                    .map(|id| (id, self.subjects.get(id).count + 1))
                    .filter(|&(_, c)| c > max)
                    .map(|(id, c)| (id, c - max))
                    .into_iter()
                    .collect(),
                None => self
                    .subjects
                    .ids
                    .values()
                    .map(|&id| (id, self.subjects.get(id).count))
                    .filter(|&(_, c)| c > max)
                    .map(|(id, c)| (id, c - max))
                    .collect(),
            };
            for (id, excess) in over {
                let first = self.subjects.get(id).first;
                for (seq, _, s) in self.live_from(first).filter(|(_, _, s)| s.subj == id).take(excess as usize) {
                    chosen.insert(seq);
                    freed += s.len as u64;
                }
            }
        }
        let (add_msgs, add_bytes) = add.map_or((0, 0), |(_, size)| (1, size));
        let mut msgs = self.msgs + add_msgs - chosen.len() as u64;
        let mut bytes = self.bytes + add_bytes - freed;
        let (max_msgs, max_bytes) = (self.limits.max_msgs, self.limits.max_bytes);
        let over = |m: u64, b: u64| max_msgs.is_some_and(|x| m > x) || max_bytes.is_some_and(|x| b > x);
        if over(msgs, bytes) {
            let mut extra = Vec::new();
            for (seq, _, s) in self.live_from(self.first_seq) {
                if !over(msgs, bytes) {
                    break;
                }
                if chosen.contains(&seq) {
                    continue;
                }
                extra.push(seq);
                msgs -= 1;
                bytes -= s.len as u64;
            }
            chosen.extend(extra);
        }
        chosen
    }

    /// Ranges covering exactly the live messages in `seqs` (a range may span sequences
    /// that hold no message).
    pub(super) fn coalesce(&self, seqs: &BTreeSet<u64>) -> Vec<RangeInclusive<u64>> {
        let mut out: Vec<RangeInclusive<u64>> = Vec::new();
        for &s in seqs {
            if let Some(r) = out.last_mut() {
                let next_live = self.live_from(*r.end() + 1).next().map(|(q, _, _)| q);
                if next_live.is_none_or(|q| q >= s) {
                    *r = *r.start()..=s;
                    continue;
                }
            }
            out.push(s..=s);
        }
        out
    }

    /// Ranges covering the live messages in `from..=to` that `pick` selects.
    fn select(&self, from: u64, to: u64, mut pick: impl FnMut(u64, Slot) -> bool) -> (Vec<RangeInclusive<u64>>, u64) {
        let mut out: Vec<RangeInclusive<u64>> = Vec::new();
        let mut open = false;
        let mut n = 0;
        for (seq, _, s) in self.live_from(from) {
            if seq > to {
                break;
            }
            if pick(seq, s) {
                n += 1;
                match out.last_mut() {
                    Some(r) if open => *r = *r.start()..=seq,
                    _ => out.push(seq..=seq),
                }
                open = true;
            } else {
                open = false;
            }
        }
        (out, n)
    }

    /// Write delete records for `ranges` (chunked) and apply them; returns messages
    /// removed. Held messages are cut out of the ranges (their removal waits for its cause).
    pub(super) fn write_deletes(&mut self, ranges: Vec<RangeInclusive<u64>>) -> Result<u64> {
        let ranges = self.held.split(ranges);
        let per = (self.cfg.write_chunk / SMALL_LEN).max(1);
        let mut n = 0;
        for chunk in ranges.chunks(per) {
            let need = chunk.len() * SMALL_LEN;
            self.prepare(need)?;
            let mut buf = self.pool.take(need).ok_or_else(|| no_buffer(need))?;
            let last = self.blocks.back().expect("a block");
            let (rec, slots) = (last.recs, last.slots.len() as u32);
            for (i, r) in chunk.iter().enumerate() {
                record::put_delete(buf.vec(), rec + i as u32, slots, *r.start(), *r.end());
            }
            let res = self.write_last(buf.bytes());
            self.pool.put(buf);
            res?;
            self.blocks.back_mut().expect("a block").recs += chunk.len() as u32;
            for r in chunk {
                n += self.delete_range_mem(*r.start(), *r.end());
            }
            self.drop_empty_prefix();
        }
        Ok(n)
    }

    /// After a bulk removal emptied the store, start a fresh block so that every old one
    /// can be removed.
    fn reclaim_if_empty(&mut self) -> Result<()> {
        let b = self.blocks.back().expect("a block");
        if self.msgs == 0 && (b.recs > 1 || self.blocks.len() > 1) {
            self.roll(self.last_seq, self.last_seq, false)?;
            self.drop_empty_prefix();
        }
        Ok(())
    }

    fn append_one(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64> {
        let size = check_size(&self.limits, subject, headers, payload)?;
        self.check_discard_new(subject, size)?;
        let evict = self.plan_evictions(Some((subject, size)));
        // Held evictions (`store::held`) are written later, once the append is durable.
        let ranges = if self.held.on { Vec::new() } else { self.held.split(self.coalesce(&evict)) };
        let need = size as usize + ranges.len() * SMALL_LEN;
        self.prepare(need)?;
        let seq = self.last_seq + 1;
        let b = self.blocks.back().expect("a block");
        let (rec, slot) = (b.recs, b.slots.len() as u32);
        debug_assert_eq!(b.end(), self.last_seq);
        let mut buf = self.pool.take(need).ok_or_else(|| no_buffer(need))?;
        record::put_msg(buf.vec(), rec, slot, seq, ts_ns, subject, headers, payload);
        for (i, r) in ranges.iter().enumerate() {
            // The eviction deletes follow the message: the block then holds `slot + 1`.
            record::put_delete(buf.vec(), rec + 1 + i as u32, slot + 1, *r.start(), *r.end());
        }
        let res = self.write_last(buf.bytes());
        self.pool.put(buf);
        let off = res?;
        let bi = self.blocks.len() - 1;
        self.blocks[bi].recs += 1 + ranges.len() as u32;
        self.last_seq = seq;
        self.insert_msg(bi, seq, off, size as u32, subject);
        for r in ranges {
            self.delete_range_mem(*r.start(), *r.end());
        }
        if self.held.on {
            self.remove_caused_by(&evict, seq)?;
        }
        self.drop_empty_prefix();
        Ok(seq)
    }

    /// Append a prefix of `msgs` (at least two) with one disk write, when no limit could
    /// evict or refuse any of them and they fit the last block (after rolling it if the
    /// first does not); returns how many were stored, 0 to take the one-by-one path. A
    /// failed write stores none of them.
    fn append_group(&mut self, msgs: &[NewMsg<'_>], seqs: &mut Vec<u64>) -> Result<usize> {
        if msgs.len() < 2 || self.limits.max_msgs_per_subject.is_some() {
            return Ok(0);
        }
        let size_of = |l: &StoreLimits, m: &NewMsg<'_>| check_size(l, m.subject, m.headers, m.payload).ok();
        let Some(first) = size_of(&self.limits, &msgs[0]) else { return Ok(0) };
        self.prepare(first as usize)?;
        let b = self.blocks.back().expect("a block");
        let (max_msgs, max_bytes) =
            (self.limits.max_msgs.unwrap_or(u64::MAX), self.limits.max_bytes.unwrap_or(u64::MAX));
        let (mut n, mut total) = (0usize, 0u64);
        for m in msgs {
            let Some(size) = size_of(&self.limits, m) else { break };
            let fits_block = n == 0 || b.len + total + size <= self.cfg.block_size;
            let fits_limits = self.msgs + (n as u64) < max_msgs && self.bytes + total + size <= max_bytes;
            if !fits_block || !fits_limits || (n > 0 && total + size > GROUP_WRITE_MAX) {
                break;
            }
            n += 1;
            total += size;
        }
        if n < 2 {
            return Ok(0);
        }
        let Some(mut buf) = self.pool.take(total as usize) else { return Ok(0) };
        let (rec, slot) = (b.recs, b.slots.len() as u32);
        let seq0 = self.last_seq + 1;
        for (i, m) in msgs[..n].iter().enumerate() {
            let i32 = i as u32;
            record::put_msg(
                buf.vec(),
                rec + i32,
                slot + i32,
                seq0 + i as u64,
                m.ts_ns,
                m.subject,
                m.headers,
                m.payload,
            );
        }
        let res = self.write_last(buf.bytes());
        self.pool.put(buf);
        let mut off = res?;
        let bi = self.blocks.len() - 1;
        self.blocks[bi].recs += n as u32;
        for (i, m) in msgs[..n].iter().enumerate() {
            let size = super::stored_size(m.subject, m.headers, m.payload);
            let seq = seq0 + i as u64;
            self.last_seq = seq;
            self.insert_msg(bi, seq, off, size as u32, m.subject);
            off += size;
            seqs.push(seq);
        }
        Ok(n)
    }

    // ----- reading -----------------------------------------------------------------

    /// Bytes `[off, off + len)` of block `bi`, through the cache; on a miss, reads a
    /// read-ahead window when the pool allows and caches it.
    fn read_bytes(&mut self, bi: usize, off: u64, len: usize) -> Result<Vec<u8>> {
        let (index, path, blen) = {
            let b = &self.blocks[bi];
            (b.index, b.path.clone(), b.len)
        };
        if let Some(bytes) = self.cache.get(index, off, len) {
            return Ok(bytes.to_vec());
        }
        if bi + 1 == self.blocks.len() && off + len as u64 > blen - self.pending_len() {
            self.write_pending()?;
        }
        let window = (self.cfg.read_ahead.max(len) as u64).min(blen.saturating_sub(off)) as usize;
        let (charge, want) = match (window > len).then(|| self.pool.reserve(window)).flatten() {
            Some(c) => (c, window),
            None => (self.pool.reserve(len).ok_or_else(|| no_buffer(len))?, len),
        };
        let data = self.disk.read_at(&path, off, want);
        let out = match data {
            Ok(data) if data.len() >= len => {
                let rec = data[..len].to_vec();
                if data.len() > len {
                    self.cache.insert(index, off, data);
                }
                Ok(rec)
            }
            Ok(data) => Ok(data), // short: the caller's checks report it
            Err(e) => Err(io_error("read", &path, e)),
        };
        self.pool.finish_read(charge);
        out
    }

    /// The message at `seq` whose slot is `slot` in block `bi`, checked.
    pub(super) fn read_msg(&mut self, bi: usize, seq: u64, slot: Slot) -> Result<StoredMsg> {
        let block = self.blocks[bi].index;
        let corrupt = StoreError::Corrupt { block, lost: seq..=seq };
        let rec = self.read_bytes(bi, slot.off as u64, slot.len as usize)?;
        let Some(h) = record::parse_header(&rec) else { return Err(corrupt) };
        if h.kind != record::Kind::Msg || h.seq != seq || h.len != slot.len || !record::checksum_ok(&rec) {
            return Err(corrupt);
        }
        let Some((subject, headers, payload)) = record::msg_parts(&h, &rec) else { return Err(corrupt) };
        Ok(StoredMsg {
            seq,
            subject: subject.to_string(),
            headers: headers.to_vec(),
            payload: payload.to_vec(),
            ts_ns: h.aux as i64,
        })
    }

    /// Timestamp of the message at `seq` (reads only its record header).
    fn read_ts(&mut self, bi: usize, seq: u64, slot: Slot) -> Result<i64> {
        if let Some((s, ts)) = self.head_ts
            && s == seq
        {
            return Ok(ts);
        }
        let block = self.blocks[bi].index;
        let hdr = self.read_bytes(bi, slot.off as u64, record::HDR)?;
        match record::parse_header(&hdr) {
            Some(h) if h.kind == record::Kind::Msg && h.seq == seq => Ok(h.aux as i64),
            _ => Err(StoreError::Corrupt { block, lost: seq..=seq }),
        }
    }

    /// Which subject ids match `filter` (indexed by id); cached for the last filter.
    fn matching_ids(&mut self, filter: &str) -> Arc<[bool]> {
        let generation = self.subjects.generation;
        if let Some((f, g, m)) = &self.match_cache
            && f == filter
            && *g == generation
        {
            return m.clone();
        }
        let mut m = vec![false; self.subjects.info.len()];
        for (name, &id) in &self.subjects.ids {
            if subject_matches(filter, name) {
                m[id as usize] = true;
            }
        }
        let m: Arc<[bool]> = m.into();
        self.match_cache = Some((filter.to_string(), generation, m.clone()));
        m
    }
}

impl MsgStore for FileStore {
    fn append(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64> {
        let result = self.append_unchecked(subject, headers, payload, ts_ns);
        self.end_call(result)
    }

    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<u64>> {
        let result = self.append_batch_unchecked(msgs);
        self.end_call(result)
    }

    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>> {
        let Some((bi, slot)) = self.live_slot(seq) else { return Ok(None) };
        self.active = true;
        self.read_msg(bi, seq, slot).map(Some)
    }

    fn load_last(&mut self, filter: &str) -> Result<Option<StoredMsg>> {
        validate_filter(filter)?;
        let seq = if !has_wildcards(filter) {
            self.subjects.id(filter).map(|id| self.subjects.get(id).last)
        } else {
            self.subjects
                .ids
                .iter()
                .filter(|(n, _)| subject_matches(filter, n))
                .map(|(_, &id)| self.subjects.get(id).last)
                .max()
        };
        match seq {
            Some(s) => self.load(s),
            None => Ok(None),
        }
    }

    fn load_next(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>> {
        validate_filter(filter)?;
        let found = if !has_wildcards(filter) {
            let Some(id) = self.subjects.id(filter) else { return Ok(None) };
            let info = self.subjects.get(id);
            let last = info.last;
            self.live_from(from_seq.max(info.first)).take_while(|&(q, _, _)| q <= last).find(|(_, _, s)| s.subj == id)
        } else if filter == ">" {
            self.live_from(from_seq).next()
        } else {
            let m = self.matching_ids(filter);
            if !m.contains(&true) {
                return Ok(None);
            }
            self.live_from(from_seq).find(|(_, _, s)| m[s.subj as usize])
        };
        match found {
            Some((seq, bi, slot)) => {
                self.active = true;
                self.read_msg(bi, seq, slot).map(Some)
            }
            None => Ok(None),
        }
    }

    fn delete(&mut self, seq: u64) -> Result<bool> {
        let result = self.delete_unchecked(seq);
        self.end_call(result)
    }

    fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        let result = self.purge_unchecked(req);
        self.end_call(result)
    }

    fn purge_caused_by(&mut self, req: &PurgeRequest, cause: u64) -> Result<u64> {
        let result = self.purge_caused_unchecked(req, cause);
        self.end_call(result)
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        let result = self.compact_unchecked(seq);
        self.end_call(result)
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        let result = self.expire_unchecked(now_ns);
        self.end_call(result)
    }

    fn set_limits(&mut self, limits: StoreLimits) -> Result<u64> {
        let result = self.set_limits_unchecked(limits);
        self.end_call(result)
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn state_with(&self, req: &StateRequest) -> Result<StoreState> {
        let mut st = StoreState {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            msgs: self.msgs,
            bytes: self.bytes,
            num_deleted: if self.msgs == 0 { 0 } else { self.last_seq + 1 - self.first_seq - self.msgs },
            num_subjects: self.subjects.len() as u64,
            ..Default::default()
        };
        if req.deleted && self.msgs > 0 {
            let mut prev = self.first_seq - 1;
            for (seq, _, _) in self.live_from(self.first_seq) {
                if seq > prev + 1 {
                    st.deleted.push(prev + 1..=seq - 1);
                }
                prev = seq;
            }
            if prev < self.last_seq {
                st.deleted.push(prev + 1..=self.last_seq);
            }
        }
        if let Some(f) = &req.subjects {
            validate_filter(f)?;
            st.subjects = self
                .subjects
                .ids
                .iter()
                .filter(|(n, _)| subject_matches(f, n))
                .map(|(n, &id)| (n.to_string(), self.subjects.get(id).count))
                .collect();
        }
        Ok(st)
    }
}

/// The mutating [`MsgStore`] calls, whose trait methods wrap them with
/// [`FileStore::invariants`].
impl FileStore {
    fn append_unchecked(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64> {
        self.check_writable()?;
        self.check_index_room(1, subject.len() as u64)?;
        let seq = self.append_one(subject, headers, payload, ts_ns)?;
        self.commit()?;
        Ok(seq)
    }

    fn append_batch_unchecked(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<u64>> {
        self.check_writable()?;
        let subject_bytes = msgs.iter().map(|m| m.subject.len() as u64).sum();
        self.check_index_room(msgs.len() as u64, subject_bytes)?;
        let mut seqs = Vec::with_capacity(msgs.len());
        let mut i = 0;
        while i < msgs.len() {
            let step = match self.append_group(&msgs[i..], &mut seqs) {
                Ok(0) => {
                    let m = &msgs[i];
                    self.append_one(m.subject, m.headers, m.payload, m.ts_ns).map(|s| seqs.push(s)).map(|()| 1)
                }
                other => other,
            };
            match step {
                Ok(n) => i += n,
                Err(e) => {
                    self.commit()?;
                    return Err(e);
                }
            }
        }
        self.commit()?;
        Ok(seqs)
    }

    fn delete_unchecked(&mut self, seq: u64) -> Result<bool> {
        if self.live_slot(seq).is_none() {
            // A held message's removal stops waiting for its cause.
            return Ok(self.held.msgs.contains_key(&seq) && self.unhold(&BTreeSet::from([seq]))? == 1);
        }
        self.check_writable()?;
        let n = self.write_deletes(vec![seq..=seq])?;
        self.commit()?;
        Ok(n == 1)
    }

    /// The live messages a purge of `req` removes (see [`MsgStore::purge_caused_by`]).
    pub(super) fn purge_selection(&mut self, req: &PurgeRequest) -> Result<BTreeSet<u64>> {
        if req.keep.is_some() && req.up_to_seq.is_some() {
            return Err(StoreError::InvalidRequest("purge cannot combine keep and up_to_seq".into()));
        }
        if let Some(f) = &req.filter {
            validate_filter(f)?;
        }
        let to = req.up_to_seq.map_or(self.last_seq, |s| s.saturating_sub(1));
        let ids = req.filter.as_deref().filter(|f| *f != ">").map(|f| self.matching_ids(f));
        let matches = |s: Slot| ids.as_ref().is_none_or(|m| m[s.subj as usize]);
        let mut seqs: Vec<u64> = self
            .live_from(self.first_seq)
            .take_while(|(q, _, _)| *q <= to)
            .filter(|(_, _, s)| matches(*s))
            .map(|(q, _, _)| q)
            .collect();
        if let Some(keep) = req.keep {
            seqs.truncate(seqs.len().saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX)));
        }
        Ok(seqs.into_iter().collect())
    }

    /// The name of live subject `id`.
    pub(super) fn subject_name(&self, id: u32) -> Arc<str> {
        self.subjects.get(id).name.clone().expect("a live subject has a name")
    }

    pub(super) fn purge_unchecked(&mut self, req: &PurgeRequest) -> Result<u64> {
        if req.keep.is_some() && req.up_to_seq.is_some() {
            return Err(StoreError::InvalidRequest("purge cannot combine keep and up_to_seq".into()));
        }
        if let Some(f) = &req.filter {
            validate_filter(f)?;
        }
        self.check_writable()?;
        let to = req.up_to_seq.map_or(self.last_seq, |s| s.saturating_sub(1));
        // Held messages the purge matches go for good (not counted: already removed).
        let held = self.held_matching(req, to);
        self.unhold(&held)?;
        let ids = req.filter.as_deref().filter(|f| *f != ">").map(|f| self.matching_ids(f));
        let matches = |s: Slot| ids.as_ref().is_none_or(|m| m[s.subj as usize]);
        let skip = match req.keep {
            Some(keep) => {
                let total = self.live_from(self.first_seq).filter(|(q, _, s)| *q <= to && matches(*s)).count() as u64;
                if total <= keep {
                    return Ok(0);
                }
                total - keep
            }
            None => u64::MAX,
        };
        let mut taken = 0u64;
        let (ranges, n) = self.select(self.first_seq, to, |_, s| {
            let take = matches(s) && taken < skip;
            taken += take as u64;
            take
        });
        if n == 0 {
            return Ok(0);
        }
        let removed = self.write_deletes(ranges)?;
        self.reclaim_if_empty()?;
        self.commit()?;
        Ok(removed)
    }

    fn compact_unchecked(&mut self, seq: u64) -> Result<u64> {
        if seq <= self.first_seq && seq <= self.last_seq + 1 {
            return Ok(0);
        }
        self.check_writable()?;
        let (ranges, _) = self.select(self.first_seq, seq.saturating_sub(1), |_, _| true);
        let removed = self.write_deletes(ranges)?;
        if seq > self.last_seq + 1 {
            let prev_end = self.last_seq;
            self.roll(seq - 1, prev_end, false)?;
            self.last_seq = seq - 1;
            self.first_seq = seq;
            self.drop_empty_prefix();
        } else {
            self.reclaim_if_empty()?;
        }
        self.commit()?;
        Ok(removed)
    }

    fn expire_unchecked(&mut self, now_ns: i64) -> Result<u64> {
        let Some(age) = self.limits.max_age_ns() else { return Ok(0) };
        let cutoff = now_ns.saturating_sub(age);
        let mut upto = None;
        let heads: Vec<(u64, usize, Slot)> = self.live_from(self.first_seq).take(1).collect();
        let mut cursor = heads.into_iter().next();
        while let Some((seq, bi, slot)) = cursor {
            let ts = self.read_ts(bi, seq, slot)?;
            if ts > cutoff {
                self.head_ts = Some((seq, ts));
                break;
            }
            upto = Some(seq);
            cursor = self.live_from(seq + 1).next();
        }
        let Some(upto) = upto else { return Ok(0) };
        self.check_writable()?;
        let first = self.first_seq;
        let n = self.write_deletes(vec![first..=upto])?;
        self.commit()?;
        Ok(n)
    }

    fn set_limits_unchecked(&mut self, limits: StoreLimits) -> Result<u64> {
        limits.validate()?;
        self.limits = limits;
        let plan = self.plan_evictions(None);
        if plan.is_empty() {
            return Ok(0);
        }
        self.check_writable()?;
        let ranges = self.coalesce(&plan);
        let n = self.write_deletes(ranges)?;
        self.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod invariant_tests {
    use super::*;
    use crate::disk::Disk;

    /// A [`FileStore`] over the real disk seam in a fresh temporary directory.
    fn store(dir: &str) -> FileStore {
        let root = std::env::temp_dir().join(format!("{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let disk: Arc<dyn Disk> = Arc::new(crate::disk::RealDisk::new(root).unwrap());
        let mem = StoreMemory::standalone(u64::MAX, u64::MAX);
        FileStore::open(disk, "s", StoreLimits::default(), FileStoreConfig::default(), mem).unwrap()
    }

    #[test]
    fn invariants_hold_through_writes_and_catch_a_miscounted_index() {
        let mut fs = store("weir-store-invariants");
        for i in 0..50u64 {
            fs.append(&format!("s.{}", i % 3), b"", b"payload", i as i64).unwrap();
        }
        fs.delete(7).unwrap();
        fs.purge(&PurgeRequest::subject("s.1")).unwrap();
        fs.invariants();
        fs.msgs += 1;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fs.invariants()));
        assert!(caught.is_err(), "a miscounted index must fail the invariants");
        fs.msgs -= 1;
    }
}
