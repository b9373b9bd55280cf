//! File store behaviour on a real directory and on a small in-test disk: round trips,
//! sequence high-water mark, foreign files, ENOSPC, oversized messages, reads that touch
//! only the record, bounded buffers, memory returning to baseline, the buffer bug switches,
//! interval syncing and runtime corruption detection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
mod support;

use support::MemDisk;
use weir_core::disk::{Disk, RealDisk};
use weir_core::store::{
    FileStore, FileStoreConfig, MsgStore, NewMsg, PurgeRequest, StoreBugs, StoreError, StoreLimits, StoreMemory,
    SyncPolicy, stored_size,
};

const DIR: &str = "st";

fn open_with(disk: &Arc<MemDisk>, cfg: FileStoreConfig, mem: &StoreMemory) -> FileStore {
    FileStore::open(disk.clone(), DIR, StoreLimits::default(), cfg, mem.clone()).expect("open")
}

fn mem() -> StoreMemory {
    StoreMemory::standalone(1 << 20, 1 << 20)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weir-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn real_disk_round_trip_and_reopen() {
    let root = temp_dir("roundtrip");
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&root).unwrap());
    let cfg = FileStoreConfig { block_size: 1024, ..Default::default() };
    let limits = StoreLimits::default();
    let mut fs = FileStore::open(disk.clone(), "streams/s1", limits.clone(), cfg.clone(), mem()).unwrap();
    for i in 0..100u64 {
        let subj = if i % 2 == 0 { "orders.eu" } else { "orders.us" };
        assert_eq!(fs.append(subj, b"k: v", format!("msg {i}").as_bytes(), i as i64).unwrap(), i + 1);
    }
    assert!(fs.block_count() > 3);
    assert!(fs.delete(50).unwrap());
    assert_eq!(
        fs.purge(&PurgeRequest { filter: Some("orders.us".into()), up_to_seq: Some(21), keep: None }).unwrap(),
        10
    );
    let before = fs.state();
    fs.close().unwrap();
    let mut fs = FileStore::open(disk, "streams/s1", limits, cfg, mem()).unwrap();
    assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
    assert_eq!(fs.state(), before);
    let m = fs.load(99).unwrap().unwrap();
    assert_eq!(
        (m.subject.as_str(), m.headers.as_slice(), m.payload.as_slice(), m.ts_ns),
        ("orders.eu", &b"k: v"[..], &b"msg 98"[..], 98)
    );
    assert!(fs.load(50).unwrap().is_none());
    assert!(fs.load(20).unwrap().is_none());
    assert_eq!(fs.load_last("orders.*").unwrap().unwrap().seq, 100);
    assert_eq!(fs.load_next("orders.us", 1).unwrap().unwrap().seq, 22);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn sequences_are_never_reused() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { block_size: 512, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    for _ in 0..20 {
        fs.append("a", b"", b"0123456789", 0).unwrap();
    }
    assert_eq!(fs.purge(&PurgeRequest::all()).unwrap(), 20);
    assert_eq!(fs.block_count(), 1, "a purge that empties the store leaves one fresh block");
    drop(fs);
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    let st = fs.state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (21, 20, 0));
    assert_eq!(fs.append("a", b"", b"x", 0).unwrap(), 21);
    assert!(fs.delete(21).unwrap());
    drop(fs);
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    assert_eq!(fs.append("a", b"", b"x", 0).unwrap(), 22, "tail delete does not lower last_seq");
    assert_eq!(fs.compact(1000).unwrap(), 1);
    drop(fs);
    let mut fs = open_with(&disk, cfg, &mem());
    assert_eq!(fs.state().last_seq, 999);
    assert_eq!(fs.append("a", b"", b"x", 0).unwrap(), 1000);
}

#[test]
fn foreign_files_are_reported_and_left_alone() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { block_size: 512, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    for i in 0..30u8 {
        fs.append("a.b", b"", &[i; 20], 0).unwrap();
    }
    let state = fs.state();
    let last_block = *fs.block_indexes().last().unwrap();
    drop(fs);
    disk.write_file(&format!("{DIR}/notes.txt"), b"hello").unwrap();
    disk.write_file(&format!("{DIR}/0007.blk"), b"zero padded").unwrap();
    let junk = vec![0xA5u8; 300];
    let junk_name = format!("{}.blk", last_block + 5);
    disk.write_file(&format!("{DIR}/{junk_name}"), &junk).unwrap();
    let mut fs = open_with(&disk, cfg, &mem());
    let rep = fs.recovery().clone();
    assert_eq!(rep.foreign, vec!["0007.blk".to_string(), "notes.txt".to_string(), junk_name.clone()]);
    assert!(rep.lost.is_empty() && rep.damaged.is_empty(), "{rep:?}");
    assert_eq!(fs.state(), state);
    for seq in 1..=30 {
        assert_eq!(fs.load(seq).unwrap().unwrap().payload, vec![seq as u8 - 1; 20]);
    }
    // New data goes to blocks after the foreign one; the foreign files are untouched.
    for _ in 0..30 {
        fs.append("a.b", b"", &[1; 20], 0).unwrap();
    }
    assert!(fs.block_indexes().iter().any(|&i| i > last_block + 5));
    assert_eq!(disk.read(&format!("{DIR}/{junk_name}")).unwrap(), junk);
    assert_eq!(disk.read(&format!("{DIR}/notes.txt")).unwrap(), b"hello");
}

#[test]
fn enospc_is_a_clear_error_and_loses_nothing() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { block_size: 4096, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    let mut stored = 0;
    disk.set_capacity(Some(2000));
    let err = loop {
        match fs.append("a", b"", &[7; 100], 0) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(!fs.is_failed(), "an undone failed append leaves the store usable");
    assert_eq!(fs.state().msgs, stored);
    for seq in 1..=stored {
        assert!(fs.load(seq).unwrap().is_some());
    }
    disk.set_capacity(None);
    assert_eq!(fs.append("a", b"", b"after", 0).unwrap(), stored + 1);
    drop(fs);
    let mut fs = open_with(&disk, cfg, &mem());
    assert!(fs.recovery().is_clean());
    assert_eq!(fs.state().msgs, stored + 1);
    assert_eq!(fs.load(stored + 1).unwrap().unwrap().payload, b"after");
}

/// Regression (store-crashes seeds 3, 33, 80, 113, 139, 187 with every fault point on):
/// open probes the blocks from the newest back for the last one that starts with a
/// block header. A failed probe read was taken for "no header", so an older block became
/// the last; the real last block was then indexed as a rolled block whose seal is
/// missing (reported as damage the disk never did), and the next append rolled past it
/// without writing a seal, so every later open reported it again. A failed read must
/// fail the open instead, and the next open must find the store whole.
#[test]
fn a_failed_read_at_open_fails_the_open_and_damages_nothing() {
    for kind in [std::io::ErrorKind::UnexpectedEof, std::io::ErrorKind::Other] {
        let disk = Arc::new(MemDisk::default());
        let cfg = FileStoreConfig { block_size: 512, ..Default::default() };
        let mut fs = open_with(&disk, cfg.clone(), &mem());
        for _ in 0..20 {
            fs.append("a", b"", &[3; 60], 0).unwrap();
        }
        let blocks = fs.block_indexes();
        assert!(blocks.len() >= 3, "rolled: {blocks:?}");
        let last = *blocks.last().unwrap();
        drop(fs);
        disk.fail_next_read_at(&format!("{DIR}/{last}.blk"), kind);
        let err = FileStore::open(disk.clone(), DIR, StoreLimits::default(), cfg.clone(), mem())
            .expect_err("a failed read fails the open");
        assert!(matches!(err, StoreError::Io { op: "read", .. }), "{kind:?}: {err}");
        let mut fs = open_with(&disk, cfg.clone(), &mem());
        assert!(fs.recovery().is_clean(), "{kind:?}: {:?}", fs.recovery());
        assert_eq!(fs.block_indexes(), blocks, "{kind:?}");
        for _ in 0..20 {
            fs.append("a", b"", &[4; 60], 0).unwrap();
        }
        drop(fs);
        let fs = open_with(&disk, cfg.clone(), &mem());
        assert!(fs.recovery().is_clean(), "{kind:?}: {:?}", fs.recovery());
        assert_eq!(fs.state().msgs, 40, "{kind:?}");
    }
}

/// A new block's header write that fails part-way leaves a torn file; if removing it
/// fails too, the store must stop (a reopen removes it as a torn creation). Going on
/// would roll past it, so the torn file would sit between blocks, be named durably by
/// the next directory sync, and be reported as a destroyed block by every open.
#[test]
fn a_torn_block_creation_that_cannot_be_removed_stops_the_store() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { block_size: 512, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    while fs.block_indexes().len() < 2 {
        fs.append("a", b"", &[5; 60], 0).unwrap();
    }
    let torn = format!("{DIR}/{}.blk", fs.block_indexes().last().unwrap() + 1);
    disk.tear_next_append(&torn, 3);
    disk.fail_next_remove(&torn);
    let mut stored = fs.state().msgs;
    let err = loop {
        match fs.append("a", b"", &[5; 60], 0) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StoreError::Io { op: "create block", .. }), "{err}");
    assert!(fs.is_failed(), "a torn block file is left behind: the store stops");
    assert!(matches!(fs.append("a", b"", &[5; 60], 0), Err(StoreError::Failed(_))));
    drop(fs);
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
    assert!(!disk.exists(&torn), "the reopen removed the torn creation");
    for _ in 0..20 {
        fs.append("a", b"", &[6; 60], 0).unwrap();
    }
    drop(fs);
    let fs = open_with(&disk, cfg, &mem());
    assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
    assert_eq!(fs.state().msgs, stored + 20);
}

#[test]
fn bad_input_is_refused_without_changes() {
    let disk = Arc::new(MemDisk::default());
    let limits = StoreLimits { max_msg_size: Some(1000), ..Default::default() };
    let mut fs = FileStore::open(disk.clone(), DIR, limits, FileStoreConfig::default(), mem()).unwrap();
    fs.append("ok", b"", b"1", 0).unwrap();
    let before = fs.state();
    assert!(matches!(fs.append("big", b"", &[0; 1001], 0), Err(StoreError::MaxMsgSize { size: 1001, max: 1000 })));
    assert!(matches!(fs.append("a.*", b"", b"", 0), Err(StoreError::InvalidSubject(_))));
    assert!(matches!(fs.append("", b"", b"", 0), Err(StoreError::InvalidSubject(_))));
    assert!(matches!(fs.load_next("a..b", 0), Err(StoreError::InvalidSubject(_))));
    assert!(matches!(
        fs.purge(&PurgeRequest { filter: None, up_to_seq: Some(3), keep: Some(1) }),
        Err(StoreError::InvalidRequest(_))
    ));
    assert_eq!(fs.state(), before);
    let mut fs2 = FileStore::open(disk, "other", StoreLimits::default(), FileStoreConfig::default(), mem()).unwrap();
    // Past the record cap (which leaves room for the largest message a server accepts).
    let huge = vec![0u8; weir_core::store::MAX_RECORD_LEN as usize];
    assert!(matches!(fs2.append("x", b"", &huge, 0), Err(StoreError::MaxMsgSize { .. })));
    assert_eq!(fs2.state().msgs, 0);
}

#[test]
fn one_message_read_does_not_load_the_block() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { block_size: 1 << 20, read_ahead: 0, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &mem());
    let batch: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().repeat(50)).collect();
    let msgs: Vec<NewMsg<'_>> =
        batch.iter().map(|p| NewMsg { subject: "bulk", headers: b"", payload: p, ts_ns: 0 }).collect();
    fs.append_batch(&msgs).unwrap();
    assert_eq!(fs.block_count(), 1);
    let block_len = disk.len(&format!("{DIR}/1.blk")).unwrap();
    assert!(block_len > 400_000);
    disk.max_read.store(0, Ordering::Relaxed);
    let m = fs.load(1234).unwrap().unwrap();
    assert_eq!(m.payload, 1233u32.to_le_bytes().repeat(50));
    assert_eq!(disk.max_read.load(Ordering::Relaxed), stored_size("bulk", b"", &m.payload));

    // Reopening with a small buffer account scans in chunks and never holds a whole block.
    drop(fs);
    let small = StoreMemory::standalone(64 << 10, 1 << 20);
    let cfg = FileStoreConfig { scan_chunk: 16 << 10, ..cfg };
    let fs = open_with(&disk, cfg, &small);
    assert_eq!(fs.state().msgs, 2000);
    assert!(small.buffers.peak() <= small.buffers.limit());
    assert!(disk.max_read.load(Ordering::Relaxed) <= 16 << 10);
}

/// A workload that reads many messages from a multi-block store.
fn read_workload(fs: &mut FileStore) {
    for i in 0..300u32 {
        fs.append(if i % 3 == 0 { "x.1" } else { "x.2" }, b"h", &[i as u8; 200], i as i64).unwrap();
    }
    for seq in 1..=300 {
        fs.load(seq).unwrap().unwrap();
    }
    let mut from = 0;
    while let Some(m) = fs.load_next("x.1", from).unwrap() {
        from = m.seq + 1;
    }
}

#[test]
fn memory_returns_to_baseline_after_expiry() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig {
        block_size: 8 << 10,
        read_ahead: 4 << 10,
        cache_bytes: 16 << 10,
        cache_expiry: Duration::from_secs(10),
        ..Default::default()
    };
    let m = StoreMemory::standalone(64 << 10, 16 << 10);
    let mut fs = open_with(&disk, cfg, &m);
    fs.tick(Duration::from_secs(1)).unwrap();
    read_workload(&mut fs);
    fs.tick(Duration::from_secs(2)).unwrap();
    assert!(m.cache.current() > 0, "reads were cached");
    assert!(m.cache.peak() <= m.cache.limit() && m.buffers.peak() <= m.buffers.limit());
    fs.tick(Duration::from_secs(5)).unwrap();
    assert!(m.cache.current() > 0, "not yet idle for the expiry");
    fs.tick(Duration::from_secs(12)).unwrap();
    fs.tick(Duration::from_secs(20)).unwrap();
    assert_eq!(m.cache.current(), 0);
    assert_eq!(m.buffers.current(), 0);
    assert_eq!(fs.cache_bytes(), 0);
}

#[test]
fn bug_unbounded_buffer_pool_exceeds_the_cap() {
    let run = |bugs: StoreBugs| {
        let disk = Arc::new(MemDisk::default());
        let cfg = FileStoreConfig { block_size: 256 << 10, scan_chunk: 8 << 10, bugs, ..Default::default() };
        let mut fs = open_with(&disk, cfg.clone(), &mem());
        for i in 0..1000u32 {
            fs.append("a", b"", &[i as u8; 200], 0).unwrap();
        }
        drop(fs);
        let m = StoreMemory::standalone(32 << 10, 1 << 20);
        let fs = open_with(&disk, cfg, &m);
        assert_eq!(fs.state().msgs, 1000);
        (m.buffers.peak(), m.buffers.limit())
    };
    let (peak, limit) = run(StoreBugs::default());
    assert!(peak <= limit, "bounded pool: peak {peak} <= {limit}");
    let (peak, limit) = run(StoreBugs { unbounded_buffer_pool: true, ..Default::default() });
    assert!(peak > limit, "the unbounded pool bug must show as a peak over the limit ({peak} <= {limit})");
}

#[test]
fn bug_buffer_leak_leaves_buffers_above_baseline() {
    let run = |bugs: StoreBugs| {
        let disk = Arc::new(MemDisk::default());
        let cfg = FileStoreConfig { block_size: 8 << 10, cache_bytes: 8 << 10, bugs, ..Default::default() };
        let m = StoreMemory::standalone(4 << 20, 8 << 10);
        let mut fs = open_with(&disk, cfg, &m);
        read_workload(&mut fs);
        fs.tick(Duration::from_secs(100)).unwrap();
        fs.tick(Duration::from_secs(200)).unwrap();
        m.buffers.current()
    };
    assert_eq!(run(StoreBugs::default()), 0);
    assert!(run(StoreBugs { buffer_leak: true, ..Default::default() }) > 0, "the leak must be visible");
}

#[test]
fn interval_policy_syncs_when_due() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { sync: SyncPolicy::Interval(Duration::from_secs(1)), ..Default::default() };
    let mut fs = open_with(&disk, cfg, &mem());
    fs.tick(Duration::ZERO).unwrap();
    let base = disk.syncs.load(Ordering::Relaxed);
    for _ in 0..10 {
        fs.append("a", b"", b"x", 0).unwrap();
    }
    assert_eq!(disk.syncs.load(Ordering::Relaxed), base, "no sync per append");
    assert!(!fs.flush_if_due(Duration::from_millis(500)).unwrap());
    assert!(fs.flush_if_due(Duration::from_millis(1000)).unwrap());
    assert_eq!(disk.syncs.load(Ordering::Relaxed), base + 1);
    assert!(!fs.flush_if_due(Duration::from_millis(3000)).unwrap(), "nothing to flush");

    // Always: one sync per append, one per batch.
    let disk = Arc::new(MemDisk::default());
    let mut fs = open_with(&disk, FileStoreConfig::default(), &mem());
    let base = disk.syncs.load(Ordering::Relaxed);
    fs.append("a", b"", b"x", 0).unwrap();
    assert_eq!(disk.syncs.load(Ordering::Relaxed), base + 1);
    let msgs = vec![NewMsg { subject: "a", headers: b"", payload: b"y", ts_ns: 0 }; 50];
    fs.append_batch(&msgs).unwrap();
    assert_eq!(disk.syncs.load(Ordering::Relaxed), base + 2, "group commit");
}

#[test]
fn corruption_found_by_a_read_is_reported_precisely() {
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { read_ahead: 0, ..Default::default() };
    let mut fs = open_with(&disk, cfg, &mem());
    for i in 0..5u8 {
        fs.append("a", b"", &[i; 30], 0).unwrap();
    }
    // Record 3 (seq 3) starts after the 64-byte header and two 79-byte records.
    disk.corrupt(&format!("{DIR}/1.blk"), 64 + 2 * 79 + 60);
    match fs.load(3) {
        Err(StoreError::Corrupt { block, lost }) => assert_eq!((block, lost), (1, 3..=3)),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(fs.load(2).unwrap().is_some() && fs.load(4).unwrap().is_some());
}

/// `Interval` writes are coalesced in the write-behind buffer yet readable at once and
/// written when the store is dropped; a grouped batch refused by a full disk stores none
/// of its messages and leaves the store usable.
#[test]
fn write_behind_and_grouped_batches() {
    let m = mem();
    let blk = format!("{DIR}/1.blk");
    let disk = Arc::new(MemDisk::default());
    let cfg = FileStoreConfig { sync: SyncPolicy::Interval(Duration::from_secs(1)), ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &m);
    for i in 0..100u8 {
        fs.append("a.b", b"", &[i; 20], i as i64).unwrap();
    }
    let on_disk = |d: &MemDisk| d.files.lock().unwrap()[&blk].len();
    assert_eq!(on_disk(&disk), 64, "only the block header is on the disk");
    assert_eq!(fs.load(100).unwrap().unwrap().payload, vec![99u8; 20]);
    assert!(on_disk(&disk) > 64, "the read wrote the buffer");
    fs.append("a.b", b"", b"tail", 0).unwrap();
    drop(fs);
    let mut fs = open_with(&disk, cfg, &m);
    assert!(fs.recovery().is_clean());
    assert_eq!(fs.state().msgs, 101);
    assert_eq!(fs.load(101).unwrap().unwrap().payload, b"tail");
    drop(fs);

    let disk = Arc::new(MemDisk::default());
    let mut fs = open_with(&disk, FileStoreConfig::default(), &m);
    fs.append("a", b"", b"x", 0).unwrap();
    let used: usize = disk.files.lock().unwrap().values().map(Vec::len).sum();
    disk.set_capacity(Some(used as u64 + 500));
    let body = [7u8; 100];
    let msgs = vec![NewMsg { subject: "a", headers: b"", payload: &body, ts_ns: 0 }; 10];
    assert!(matches!(fs.append_batch(&msgs), Err(StoreError::NoSpace { .. })));
    assert_eq!(fs.state().last_seq, 1);
    assert!(!fs.is_failed());
    disk.set_capacity(None);
    assert_eq!(fs.append_batch(&msgs).unwrap(), (2..=11).collect::<Vec<u64>>());
    drop(fs);
    let mut fs = open_with(&disk, FileStoreConfig::default(), &m);
    assert!(fs.recovery().is_clean());
    assert_eq!(fs.state().msgs, 11);
    assert_eq!(fs.load(11).unwrap().unwrap().payload, body);
}

#[test]
fn index_is_charged_and_refuses_appends_at_its_limit() {
    let disk = Arc::new(MemDisk::default());
    let m = StoreMemory::standalone(1 << 20, 1 << 20).with_index_limit(4 << 10);
    let cfg = FileStoreConfig { block_size: 8 << 10, ..Default::default() };
    let mut fs = open_with(&disk, cfg.clone(), &m);
    let mut stored = 0u64;
    let refused = loop {
        match fs.append("a.b", b"", &stored.to_le_bytes(), 0) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10_000, "the index limit never refused an append");
    };
    assert!(matches!(refused, StoreError::NoMemory { account: "store.index", .. }), "{refused}");
    assert!(m.index.peak() <= m.index.limit(), "appends never charge past the limit");
    assert_eq!(m.index.current(), fs.index_bytes());
    assert!(fs.index_bytes() > stored * 12, "at least a slot per message");
    // Nothing stored is lost, and deleting the oldest messages (dropping whole blocks)
    // makes room again.
    assert_eq!(fs.state().msgs, stored);
    fs.compact(stored / 2).unwrap();
    assert_eq!(m.index.current(), fs.index_bytes());
    assert!(fs.append("a.b", b"", b"x", 0).is_ok(), "compaction dropped blocks and made room");
    let charged = m.index.current();
    drop(fs);
    assert_eq!(m.index.current(), 0, "dropping the store releases its index charge");
    let fs = open_with(&disk, cfg, &m);
    assert_eq!(m.index.current(), charged, "reopening charges the same index");
    assert_eq!(fs.state().msgs, stored - (stored / 2 - 1) + 1);
}
