//! `RaftStorage` on `SimDisk` under crashes: random persist calls (hard states, entry
//! batches, conflicting suffixes, local and leader snapshots), a power cut at a random
//! disk operation with torn writes on, reopen, and compare with a model. A completed
//! persist call must survive; one cut short must leave a prefix of its steps (see the
//! storage module documentation): never an entry before the term and vote that come
//! with it, never a commit index before the entries it covers.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use weir_core::disk::Disk;
use weir_core::raft::storage::{RaftStorage, RaftStorageConfig, StorageError};
use weir_core::raft::{Entry, HardState, Ready, Restored, Snapshot, SnapshotMeta};
use weir_sim::disk::{PowerCut, SimDisk, SimDiskConfig};

/// Run a future that never waits (the disk has zero latency).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("storage future waited with a zero-latency disk"),
    }
}

/// What storage should hold: the obvious in-memory implementation of the same rules.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    hs: HardState,
    snap: Option<Snapshot>,
    /// Entries after the snapshot.
    entries: Vec<Entry>,
}

impl Model {
    fn snap_index(&self) -> u64 {
        self.snap.as_ref().map_or(0, |s| s.meta.last_index)
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
    }

    fn term_at(&self, i: u64) -> Option<u64> {
        if i == self.snap_index() {
            return Some(self.snap.as_ref().map_or(0, |s| s.meta.last_term));
        }
        self.entries.iter().find(|e| e.index == i).map(|e| e.term)
    }

    fn apply(&mut self, r: &Ready) {
        if let Some(s) = &r.snapshot {
            let (si, st) = (s.meta.last_index, s.meta.last_term);
            if si <= self.last_index() && self.term_at(si) == Some(st) {
                self.entries.retain(|e| e.index > si);
            } else {
                self.entries.clear();
            }
            self.snap = Some(s.clone());
        }
        if let Some(hs) = r.hard_state {
            self.hs = hs;
        }
        let es: Vec<&Entry> = r.entries.iter().filter(|e| e.index > self.snap_index()).collect();
        if let Some(first) = es.first() {
            self.entries.retain(|e| e.index < first.index);
            assert_eq!(first.index, self.last_index() + 1, "generator made a gap");
            self.entries.extend(es.into_iter().cloned());
        }
    }

    fn restored(&self) -> Restored {
        Restored { hard_state: self.hs, snapshot: self.snap.clone(), entries: self.entries.clone() }
    }

    fn from_restored(r: Restored) -> Model {
        Model { hs: r.hard_state, snap: r.snapshot, entries: r.entries }
    }

    /// Every state a crash may leave when `r` is cut short: before it, after it, or a
    /// prefix of its steps (new term, vote and snapshot with the commit index clamped; the
    /// log reconciled with the snapshot; cut at the conflict; a prefix of the new entries).
    fn cut_short(&self, r: &Ready) -> Vec<Restored> {
        let mut after = self.clone();
        after.apply(r);
        let mut out = vec![self.restored(), after.restored()];
        let hs = r.hard_state.unwrap_or(self.hs);
        let early = r.snapshot.is_some() || (hs.term, hs.vote) != (self.hs.term, self.hs.vote);
        // The snapshot alone.
        let mut base = self.clone();
        base.apply(&Ready { snapshot: r.snapshot.clone(), ..Default::default() });
        let es: Vec<Entry> = r.entries.iter().filter(|e| e.index > base.snap_index()).cloned().collect();
        let mut cut = base.clone();
        if let Some(f) = es.first() {
            cut.entries.retain(|e| e.index < f.index);
        }
        let hs_mid = if early { HardState { commit: hs.commit.min(cut.last_index()), ..hs } } else { self.hs };
        let mut logs = vec![base.entries.clone(), cut.entries.clone()];
        for k in 1..=es.len() {
            let mut l = cut.entries.clone();
            l.extend_from_slice(&es[..k]);
            logs.push(l);
        }
        for entries in logs {
            out.push(Restored { hard_state: hs_mid, snapshot: base.snap.clone(), entries });
        }
        out
    }
}

fn payload(r: &mut ChaCha8Rng) -> Vec<u8> {
    let n = if r.gen_bool(0.1) { r.gen_range(200..2000) } else { r.gen_range(0..120) };
    (0..n).map(|_| r.r#gen()).collect()
}

fn run_of(first: u64, n: u64, term: u64, r: &mut ChaCha8Rng) -> Vec<Entry> {
    (first..first + n).map(|index| Entry { term, index, data: payload(r) }).collect()
}

fn snapshot(last_index: u64, last_term: u64, r: &mut ChaCha8Rng) -> Snapshot {
    Snapshot { meta: SnapshotMeta { last_index, last_term, peers: vec![1, 2, 3] }, data: payload(r) }
}

/// A random Ready that is valid for a log in state `m`.
fn gen_ready(m: &Model, r: &mut ChaCha8Rng) -> Ready {
    let mut ready = Ready::default();
    let (snap, last) = (m.snap_index(), m.last_index());
    let mut term = m.hs.term.max(1);
    match r.gen_range(0..100) {
        // A new term, vote or commit.
        0..=14 => {
            if r.gen_bool(0.5) {
                term += 1;
            }
            ready.hard_state = Some(HardState { term, vote: r.gen_bool(0.5).then(|| r.gen_range(1..4)), commit: last });
        }
        // Append (with a commit update half the time).
        15..=59 => {
            ready.entries = run_of(last + 1, r.gen_range(1..6), term, r);
            if r.gen_bool(0.5) {
                ready.hard_state = Some(HardState { term, vote: m.hs.vote, commit: last });
            }
        }
        // A new leader overwrites a suffix.
        60..=74 if last > snap => {
            term += 1;
            let from = r.gen_range(snap + 1..=last);
            ready.hard_state =
                Some(HardState { term, vote: Some(r.gen_range(1..4)), commit: m.hs.commit.min(from - 1) });
            ready.entries = run_of(from, r.gen_range(1..6), term, r);
        }
        // A local snapshot at or below the last index (keeps the rest of the log).
        75..=87 => {
            let at = r.gen_range(snap..=last);
            let t = m.term_at(at).expect("covered index");
            ready.snapshot = Some(snapshot(at, t, r));
            if r.gen_bool(0.3) {
                ready.entries = run_of(last + 1, r.gen_range(1..3), term, r);
            }
        }
        // A snapshot from a leader: past our log, or at an index whose term differs.
        _ => {
            term += 1;
            let at =
                if last > snap && r.gen_bool(0.5) { r.gen_range(snap + 1..=last) } else { last + r.gen_range(0..5) };
            let t = if m.term_at(at).is_some() && r.gen_bool(0.5) { m.term_at(at).unwrap() } else { term };
            ready.snapshot = Some(snapshot(at, t, r));
            ready.restore = true;
            ready.hard_state = Some(HardState { term, vote: None, commit: at });
            if r.gen_bool(0.5) {
                // Entries from the leader right after its snapshot (maybe overlapping it).
                let from = at + 1 - r.gen_range(0..2).min(at);
                ready.entries = run_of(from.max(1), r.gen_range(1..4), term, r);
            }
        }
    }
    ready
}

fn open(disk: &Arc<PowerCut>, block_size: u64) -> Result<(RaftStorage, Restored), StorageError> {
    let d: Arc<dyn Disk> = disk.clone();
    block_on(RaftStorage::open_with(d, "n1/raft", RaftStorageConfig { block_size, ..Default::default() }))
}

/// One seeded history of persists and power cuts.
fn crash_history(seed: u64) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let sim = Arc::new(SimDisk::new(SimDiskConfig {
        torn_write_prob: 0.6,
        torn_garbage_prob: 0.5,
        ..SimDiskConfig::instant()
    }));
    let disk = Arc::new(PowerCut::new(sim.clone()));
    let mut model = Model::default();
    // Small blocks, so that rolls and truncating blocks happen often.
    let block_size = r.gen_range(512..8192);
    // Candidates for what storage holds after a persist that was cut short.
    let mut cut_short: Option<Vec<Restored>> = None;

    for round in 0..r.gen_range(2..10) {
        let ctx = format!("seed {seed} round {round}");
        // Open, perhaps losing power during recovery itself (which must change nothing).
        let (mut st, restored) = loop {
            let cut = r.gen_bool(0.2).then(|| r.gen_range(0..8));
            disk.set_budget(cut);
            match open(&disk, block_size) {
                Ok(x) => break x,
                Err(StorageError::Io { .. }) if cut.is_some() => {
                    disk.set_budget(None);
                    sim.crash(&mut r);
                }
                Err(e) => panic!("{ctx}: open failed: {e}"),
            }
        };
        disk.set_budget(None);
        if let Some(allowed) = cut_short.take() {
            assert!(
                allowed.contains(&restored),
                "{ctx}: cut-short persist left {restored:?}, not a prefix of its steps {allowed:?}"
            );
            model = Model::from_restored(restored.clone());
        } else {
            assert_eq!(restored, model.restored(), "{ctx}: completed persists lost");
        }
        assert_eq!((st.last_index(), st.snapshot_index()), (model.last_index(), model.snap_index()), "{ctx}");
        assert_eq!(st.hard_state(), model.hs, "{ctx}");
        st.set_min_rewrite_bytes(r.gen_range(256..4096));

        let steps = r.gen_range(1..30);
        // Lose power at a random disk operation of this round, or between persist calls.
        let cut = r.gen_bool(0.7).then(|| r.gen_range(0..steps * 5));
        disk.set_budget(cut);
        for step in 0..steps {
            let ready = gen_ready(&model, &mut r);
            let mut next = model.clone();
            next.apply(&ready);
            match block_on(st.persist(&ready)) {
                Ok(()) => {
                    model = next;
                    assert_eq!(st.last_index(), model.last_index(), "{ctx} step {step}");
                    assert_eq!(st.snapshot_index(), model.snap_index(), "{ctx} step {step}");
                }
                Err(StorageError::Io { .. }) => {
                    cut_short = Some(model.cut_short(&ready));
                    // Storage refuses to continue after an I/O error.
                    assert!(matches!(block_on(st.persist(&ready)), Err(StorageError::Failed)));
                    break;
                }
                Err(e) => panic!("{ctx} step {step}: {e}"),
            }
        }
        disk.set_budget(None);
        drop(st);
        sim.crash(&mut r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn disk_raft_storage_survives_power_cuts(seed in any::<u64>()) {
        crash_history(seed);
    }
}

#[test]
fn disk_raft_storage_disk_use_stays_bounded() {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let disk: Arc<dyn Disk> = sim.clone();
    let cfg = RaftStorageConfig { block_size: 8 * 1024, ..Default::default() };
    let (mut st, _) = block_on(RaftStorage::open_with(disk.clone(), "raft", cfg.clone())).unwrap();
    st.set_min_rewrite_bytes(4 * 1024);
    let mut model = Model::default();
    let (mut max_disk, mut max_meta) = (0, 0);
    for i in 1..=3000u64 {
        let mut ready = Ready {
            hard_state: Some(HardState { term: 1, vote: Some(1), commit: i - 1 }),
            entries: run_of(i, 1, 1, &mut r),
            ..Default::default()
        };
        // Snapshot every 100 entries, keeping the last 20.
        if i % 100 == 0 {
            ready.snapshot = Some(snapshot(i - 20, 1, &mut r));
        }
        model.apply(&ready);
        block_on(st.persist(&ready)).unwrap();
        max_disk = max_disk.max(sim.used_bytes());
        max_meta = max_meta.max(st.meta_len());
    }
    assert!(max_meta <= 4 * 1024 + 64, "meta log grew to {max_meta} bytes");
    assert!(max_disk < 96 * 1024, "disk use grew to {max_disk} bytes");
    assert!(st.entry_store().block_count() <= 6, "{} blocks", st.entry_store().block_count());
    drop(st);
    let (_, restored) = block_on(RaftStorage::open_with(disk, "raft", cfg)).unwrap();
    assert_eq!(restored, model.restored());
}

#[test]
fn disk_raft_storage_reports_mid_log_corruption() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let disk: Arc<dyn Disk> = sim.clone();
    let (mut st, _) = block_on(RaftStorage::open(disk.clone(), "raft")).unwrap();
    for i in 0..5 {
        block_on(st.persist(&Ready { entries: run_of(i * 3 + 1, 3, 1, &mut r), ..Default::default() })).unwrap();
    }
    let block = format!("raft/log/{}.blk", st.entry_store().block_indexes()[0]);
    drop(st);
    let len = disk.len(&block).unwrap();
    sim.flip_bit(&block, len / 2, 4).unwrap();
    sim.crash(&mut r);
    let err = block_on(RaftStorage::open(disk, "raft")).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
}

/// With latency, persist really waits for the disk (real tokio in the normal build).
#[cfg(not(madsim))]
#[test]
fn disk_raft_storage_waits_out_disk_latency() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let sim = Arc::new(SimDisk::new(SimDiskConfig {
            sync_latency: std::time::Duration::from_millis(5),
            ..SimDiskConfig::instant()
        }));
        let disk: Arc<dyn Disk> = sim.clone();
        let (mut st, _) = RaftStorage::open(disk.clone(), "raft").await.unwrap();
        let start = tokio::time::Instant::now();
        let e = Entry { term: 1, index: 1, data: b"x".to_vec() };
        st.persist(&Ready { entries: vec![e.clone()], ..Default::default() }).await.unwrap();
        assert!(start.elapsed() >= std::time::Duration::from_millis(5));
        drop(st);
        let (_, restored) = RaftStorage::open(disk, "raft").await.unwrap();
        assert_eq!(restored.entries, vec![e]);
    });
}
