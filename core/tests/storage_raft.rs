//! `RaftStorage` over `RealDisk` in a temporary directory: round trips, log conflicts,
//! snapshots and compaction, torn tails and corruption of the meta log and of the entry
//! store.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use weir_core::disk::{Disk, RealDisk};
use weir_core::raft::storage::{RaftStorage, RaftStorageConfig, StorageError};
use weir_core::raft::{Entry, HardState, Snapshot, SnapshotMeta};
use weir_core::raft::{Ready, Restored};
use weir_core::store::MsgStore;

/// Run a future that never waits (RealDisk has no simulated latency).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("storage future waited with a zero-latency disk"),
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("weir-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }

    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(RealDisk::new(&self.0).expect("temp dir"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last).map(|i| Entry { term, index: i, data: format!("e{i}t{term}").into_bytes() }).collect()
}

fn open(disk: &Arc<dyn Disk>) -> (RaftStorage, Restored) {
    block_on(RaftStorage::open(disk.clone(), "raft")).expect("open")
}

fn persist(s: &mut RaftStorage, r: Ready) {
    block_on(s.persist(&r)).expect("persist")
}

fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

fn snapshot(last_index: u64, last_term: u64, data: &[u8]) -> Snapshot {
    Snapshot { meta: SnapshotMeta { last_index, last_term, peers: vec![1, 2, 3] }, data: data.to_vec() }
}

#[test]
fn storage_empty_open_gives_default() {
    let dir = TempDir::new("empty");
    let disk = dir.disk();
    let (_, r) = open(&disk);
    assert_eq!(r, Restored::default());
    let (_, r) = open(&disk);
    assert_eq!(r, Restored::default());
}

#[test]
fn storage_round_trip() {
    let dir = TempDir::new("roundtrip");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { hard_state: Some(hs(1, Some(2), 0)), entries: entries(1, 3, 1), ..Default::default() });
    persist(&mut s, Ready { entries: entries(4, 5, 1), ..Default::default() });
    persist(&mut s, Ready { hard_state: Some(hs(2, None, 4)), ..Default::default() });
    // Nothing to persist: no write at all.
    let len = s.meta_len();
    let store = s.entry_store().state();
    persist(&mut s, Ready::default());
    assert_eq!(s.meta_len(), len);
    assert_eq!(s.entry_store().state(), store);
    assert_eq!((s.last_index(), s.snapshot_index()), (5, 0));
    drop(s);

    let (s, r) = open(&disk);
    assert_eq!(r.hard_state, hs(2, None, 4));
    assert_eq!(r.snapshot, None);
    assert_eq!(r.entries, entries(1, 5, 1));
    assert_eq!((s.last_index(), s.hard_state()), (5, hs(2, None, 4)));
}

#[test]
fn storage_conflicting_suffix_is_replaced() {
    let dir = TempDir::new("conflict");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 6, 1), ..Default::default() });
    // A new leader overwrites from index 4.
    persist(&mut s, Ready { hard_state: Some(hs(2, Some(3), 3)), entries: entries(4, 5, 2), ..Default::default() });
    assert_eq!(s.last_index(), 5);
    // And again from 5, growing past the old end.
    persist(&mut s, Ready { entries: entries(5, 8, 3), ..Default::default() });
    drop(s);

    let (s, r) = open(&disk);
    let mut want = entries(1, 3, 1);
    want.extend(entries(4, 4, 2));
    want.extend(entries(5, 8, 3));
    assert_eq!(r.entries, want);
    assert_eq!(s.last_index(), 8);
}

#[test]
fn storage_rejects_gaps_without_writing() {
    let dir = TempDir::new("gap");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 2, 1), ..Default::default() });
    let len = s.meta_len();
    let err = block_on(s.persist(&Ready { entries: entries(5, 6, 1), ..Default::default() })).unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
    assert_eq!(s.meta_len(), len);
    assert_eq!(s.entry_store().state().last_seq, 2);
    // Still usable afterwards.
    persist(&mut s, Ready { entries: entries(3, 3, 1), ..Default::default() });
    drop(s);
    assert_eq!(open(&disk).1.entries, entries(1, 3, 1));
}

#[test]
fn storage_snapshot_compaction_drops_entries() {
    let dir = TempDir::new("compact");
    let disk = dir.disk();
    let cfg = || RaftStorageConfig { block_size: 4096, ..Default::default() };
    let (mut s, _) = block_on(RaftStorage::open_with(disk.clone(), "raft", cfg())).unwrap();
    s.set_min_rewrite_bytes(1024);
    let big = |first: u64, last: u64| -> Vec<Entry> {
        (first..=last).map(|i| Entry { term: 1, index: i, data: vec![i as u8; 200] }).collect()
    };
    for k in 0..10 {
        persist(
            &mut s,
            Ready {
                hard_state: Some(hs(1, Some(1), k * 10)),
                entries: big(k * 10 + 1, k * 10 + 10),
                ..Default::default()
            },
        );
    }
    let before = s.entry_store().state().bytes;
    let blocks = s.entry_store().block_count();
    assert!(before > 20_000 && blocks > 4, "{before} bytes in {blocks} blocks");
    // A local snapshot at 95 keeps 96..=100.
    persist(&mut s, Ready { snapshot: Some(snapshot(95, 1, b"state@95")), ..Default::default() });
    let st = s.entry_store().state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (96, 100, 5));
    assert!(s.entry_store().block_count() <= 2, "{} blocks left", s.entry_store().block_count());
    assert!(s.meta_len() < 1024, "the meta log is rewritten: {} bytes", s.meta_len());
    assert_eq!((s.snapshot_index(), s.last_index()), (95, 100));
    persist(&mut s, Ready { entries: big(101, 102), ..Default::default() });
    drop(s);

    let mut names = disk.list("raft").unwrap();
    names.sort();
    assert_eq!(names, ["meta", "snap"]);
    let (s, r) = block_on(RaftStorage::open_with(disk.clone(), "raft", cfg())).unwrap();
    assert_eq!(r.snapshot, Some(snapshot(95, 1, b"state@95")));
    assert_eq!(r.entries, big(96, 102));
    assert_eq!(r.hard_state, hs(1, Some(1), 90));
    assert_eq!((s.snapshot_index(), s.last_index()), (95, 102));
}

#[test]
fn storage_leader_snapshot_replaces_the_log() {
    let dir = TempDir::new("install");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 5, 1), ..Default::default() });
    // A snapshot whose term at its index differs from ours: the whole log goes.
    persist(
        &mut s,
        Ready {
            snapshot: Some(snapshot(4, 2, b"s4")),
            restore: true,
            hard_state: Some(hs(2, None, 4)),
            entries: entries(3, 6, 2),
            ..Default::default()
        },
    );
    assert_eq!((s.snapshot_index(), s.last_index()), (4, 6));
    // A snapshot past our log: the whole log goes too.
    persist(&mut s, Ready { snapshot: Some(snapshot(10, 3, b"s10")), restore: true, ..Default::default() });
    assert_eq!((s.snapshot_index(), s.last_index()), (10, 10));
    drop(s);
    let (_, r) = open(&disk);
    assert_eq!(r.snapshot, Some(snapshot(10, 3, b"s10")));
    assert!(r.entries.is_empty());
    assert_eq!(r.hard_state, hs(2, None, 4));

    // Older snapshots are refused.
    let (mut s, _) = open(&disk);
    let err = block_on(s.persist(&Ready { snapshot: Some(snapshot(9, 3, b"old")), ..Default::default() })).unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
}

/// Path of the entry store's last block.
fn last_block(s: &RaftStorage) -> String {
    format!("raft/log/{}.blk", s.entry_store().block_indexes().last().unwrap())
}

#[test]
fn storage_torn_meta_tail_recovers_prefix() {
    let dir = TempDir::new("tornmeta");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { hard_state: Some(hs(1, Some(1), 0)), entries: entries(1, 3, 1), ..Default::default() });
    let good = s.meta_len();
    persist(&mut s, Ready { hard_state: Some(hs(1, Some(1), 3)), entries: entries(4, 6, 1), ..Default::default() });
    let full = s.meta_len();
    assert!(full > good);
    drop(s);

    // Every cut inside the second meta record recovers the first hard state: the entries
    // went in before it (the commit index is written after the entries it covers).
    for cut in [good + 1, good + 11, good + 12, (good + full) / 2, full - 1] {
        let meta = disk.read("raft/meta").unwrap();
        disk.truncate("raft/meta", cut).unwrap();
        let (s, r) = open(&disk);
        assert_eq!(r.entries, entries(1, 6, 1), "cut at {cut}");
        assert_eq!(r.hard_state, hs(1, Some(1), 0));
        assert_eq!(s.meta_len(), good);
        assert_eq!(disk.len("raft/meta").unwrap(), good, "tail cut off");
        disk.write_file("raft/meta", &meta).unwrap();
    }
    // A torn tail with garbage in it.
    let mut meta = disk.read("raft/meta").unwrap();
    meta.truncate(full as usize - 5);
    let n = meta.len();
    meta[n - 8..].copy_from_slice(&[0xAB; 8]);
    disk.write_file("raft/meta", &meta).unwrap();
    let (mut s, r) = open(&disk);
    assert_eq!(r.hard_state, hs(1, Some(1), 0));
    // Writing after recovery works and survives a reopen.
    persist(&mut s, Ready { hard_state: Some(hs(2, None, 6)), entries: entries(7, 7, 2), ..Default::default() });
    drop(s);
    let (_, r) = open(&disk);
    let mut want = entries(1, 6, 1);
    want.extend(entries(7, 7, 2));
    assert_eq!((r.entries, r.hard_state), (want, hs(2, None, 6)));
}

#[test]
fn storage_torn_entry_tail_recovers_prefix() {
    let dir = TempDir::new("tornlog");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { hard_state: Some(hs(1, Some(1), 0)), entries: entries(1, 3, 1), ..Default::default() });
    let block = last_block(&s);
    let good = disk.len(&block).unwrap();
    persist(&mut s, Ready { entries: entries(4, 6, 1), ..Default::default() });
    let full = disk.len(&block).unwrap();
    drop(s);

    // A cut inside the second batch keeps the whole entries before it.
    let data = disk.read(&block).unwrap();
    for cut in [good, good + 1, good + 40, (good + full) / 2, full - 1] {
        disk.truncate(&block, cut).unwrap();
        let (s, r) = open(&disk);
        let k = r.entries.len() as u64;
        assert!((3..6).contains(&k), "cut at {cut}: {k} entries");
        assert_eq!(r.entries, entries(1, k, 1), "cut at {cut}");
        assert_eq!(s.last_index(), k);
        assert_eq!(r.hard_state, hs(1, Some(1), 0));
        drop(s);
        disk.write_file(&block, &data).unwrap();
    }
    assert_eq!(open(&disk).1.entries, entries(1, 6, 1));
}

#[test]
fn storage_flipped_byte_mid_meta_is_corrupt() {
    let dir = TempDir::new("flip");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { hard_state: Some(hs(1, None, 0)), ..Default::default() });
    let first = s.meta_len();
    persist(&mut s, Ready { hard_state: Some(hs(2, None, 0)), ..Default::default() });
    persist(&mut s, Ready { hard_state: Some(hs(3, None, 0)), ..Default::default() });
    drop(s);

    let mut meta = disk.read("raft/meta").unwrap();
    let at = first as usize + 13;
    meta[at] ^= 0x10;
    disk.write_file("raft/meta", &meta).unwrap();
    let err = block_on(RaftStorage::open(disk.clone(), "raft")).unwrap_err();
    match &err {
        StorageError::Corrupt(msg) => assert!(msg.contains(&format!("offset {first}")), "{msg}"),
        other => panic!("expected Corrupt, got {other}"),
    }
    // Nothing was cut off.
    assert_eq!(disk.read("raft/meta").unwrap(), meta);
}

#[test]
fn storage_flipped_byte_mid_log_is_corrupt() {
    let dir = TempDir::new("fliplog");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    for k in 0..3 {
        persist(&mut s, Ready { entries: entries(k * 3 + 1, k * 3 + 3, 1), ..Default::default() });
    }
    let block = last_block(&s);
    drop(s);
    let mut data = disk.read(&block).unwrap();
    // Inside entry 2's record (the block header is 64 bytes, each record 48 + 4 + 5 or 6).
    data[64 + 60 + 20] ^= 0x10;
    disk.write_file(&block, &data).unwrap();
    let err = block_on(RaftStorage::open(disk.clone(), "raft")).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
}

#[test]
fn storage_corrupt_snapshot_is_corrupt() {
    let dir = TempDir::new("badsnap");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 3, 1), ..Default::default() });
    persist(&mut s, Ready { snapshot: Some(snapshot(2, 1, b"two")), ..Default::default() });
    drop(s);
    let mut snap = disk.read("raft/snap").unwrap();
    let n = snap.len();
    snap[n - 1] ^= 1;
    disk.write_file("raft/snap", &snap).unwrap();
    let err = block_on(RaftStorage::open(disk.clone(), "raft")).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
}

#[test]
fn storage_removes_stray_tmp_files() {
    let dir = TempDir::new("stray");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 2, 1), ..Default::default() });
    drop(s);
    disk.write_file("raft/meta.tmp", b"half a rewrite").unwrap();
    disk.write_file("raft/snap.tmp", b"half a snapshot").unwrap();
    let (_, r) = open(&disk);
    assert_eq!(r.entries, entries(1, 2, 1));
    assert_eq!(disk.list("raft").unwrap(), ["meta"]);
}

#[test]
fn storage_finishes_a_committed_snapshot_rename() {
    let dir = TempDir::new("rollforward");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 3, 1), ..Default::default() });
    persist(&mut s, Ready { snapshot: Some(snapshot(3, 1, b"three")), ..Default::default() });
    drop(s);
    // As if the crash came after the meta commit but before the rename reached the disk.
    disk.rename("raft/snap", "raft/snap.tmp").unwrap();
    let (_, r) = open(&disk);
    assert_eq!(r.snapshot, Some(snapshot(3, 1, b"three")));
    assert_eq!(disk.list("raft").unwrap(), ["meta", "snap"]);
}

#[test]
fn storage_unreferenced_snapshot_is_corrupt() {
    let dir = TempDir::new("orphan");
    let disk = dir.disk();
    let (mut s, _) = open(&disk);
    persist(&mut s, Ready { entries: entries(1, 3, 1), ..Default::default() });
    persist(&mut s, Ready { snapshot: Some(snapshot(3, 1, b"three")), ..Default::default() });
    drop(s);
    disk.remove("raft/snap").unwrap();
    let err = block_on(RaftStorage::open(disk.clone(), "raft")).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
}
