//! `FileStore` on `SimDisk` under power cuts: random workloads (appends, batches,
//! deletes, purges, compaction, with random limits), a power cut at a random disk
//! operation (so possibly in the middle of a write), a crash that drops unsynced data
//! (with torn writes), then reopen. Every acknowledged operation must survive, in order,
//! with no gaps and no phantoms; the one operation cut short may have taken effect
//! (partly, for multi-record operations) or not. Also: the `lazy_fsync` bug switch loses
//! an acknowledged append, and `SyncPolicy::Interval` loses at most what followed the
//! last flush.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_core::store::{
    Discard, FileStore, FileStoreConfig, MemStore, MsgStore, NewMsg, PurgeRequest, StoreBugs, StoreError, StoreLimits,
    StoreMemory, StoredMsg, SyncPolicy,
};
use weir_sim::disk::{PowerCut, SimDisk, SimDiskConfig};

const DIR: &str = "node1/stream";
const SUBJECTS: [&str; 4] = ["a", "b", "c.d", "c.e"];

#[derive(Clone, Debug)]
enum Op {
    Append { subj: usize, len: usize },
    Batch(Vec<(usize, usize)>),
    Delete(u64),
    Purge(Option<usize>),
    PurgeKeep(u64),
    Compact(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..SUBJECTS.len(), 0usize..300).prop_map(|(subj, len)| Op::Append { subj, len }),
        3 => prop::collection::vec((0..SUBJECTS.len(), 0usize..200), 1..8).prop_map(Op::Batch),
        3 => (0u64..60).prop_map(Op::Delete),
        1 => prop::option::of(0..SUBJECTS.len()).prop_map(Op::Purge),
        1 => (0u64..5).prop_map(Op::PurgeKeep),
        1 => (0u64..70).prop_map(Op::Compact),
    ]
}

fn limits() -> impl Strategy<Value = StoreLimits> {
    (prop::option::weighted(0.3, 3u64..30), prop::option::weighted(0.2, 1u64..4), prop::bool::weighted(0.2)).prop_map(
        |(max_msgs, per_subject, new)| StoreLimits {
            max_msgs,
            max_msgs_per_subject: per_subject,
            discard: if new { Discard::New } else { Discard::Old },
            ..Default::default()
        },
    )
}

fn payload(op: usize, k: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (op * 31 + k * 7 + i) as u8).collect()
}

/// Apply `op` (the `n`th) to a store; for a batch, `prefix` limits how many messages.
fn apply(s: &mut dyn MsgStore, op: &Op, n: usize, prefix: Option<usize>) -> Result<String, StoreError> {
    let ts = n as i64;
    Ok(match op {
        Op::Append { subj, len } => format!("{:?}", s.append(SUBJECTS[*subj], b"h:1", &payload(n, 0, *len), ts)?),
        Op::Batch(msgs) => {
            let bodies: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(k, (_, len))| payload(n, k, *len)).collect();
            let batch: Vec<NewMsg<'_>> = msgs
                .iter()
                .zip(&bodies)
                .take(prefix.unwrap_or(msgs.len()))
                .map(|((subj, _), body)| NewMsg { subject: SUBJECTS[*subj], headers: b"", payload: body, ts_ns: ts })
                .collect();
            format!("{:?}", s.append_batch(&batch)?)
        }
        Op::Delete(seq) => format!("{:?}", s.delete(*seq)?),
        Op::Purge(subj) => {
            format!("{:?}", s.purge(&PurgeRequest { filter: subj.map(|i| SUBJECTS[i].into()), ..Default::default() })?)
        }
        Op::PurgeKeep(keep) => format!("{:?}", s.purge(&PurgeRequest { keep: Some(*keep), ..Default::default() })?),
        Op::Compact(seq) => format!("{:?}", s.compact(*seq)?),
    })
}

/// Everything a store holds: messages by sequence and the last sequence.
type Contents = (BTreeMap<u64, StoredMsg>, u64);

fn contents(s: &mut dyn MsgStore) -> Contents {
    let last = s.state().last_seq;
    let msgs = (1..=last).filter_map(|q| s.load(q).expect("load")).map(|m| (m.seq, m)).collect();
    (msgs, last)
}

/// A reference store holding exactly `c`, with `limits`.
fn model_from(c: &Contents, limits: &StoreLimits) -> MemStore {
    let mut m = MemStore::new(StoreLimits::default()).unwrap();
    for seq in 1..=c.1 {
        match c.0.get(&seq) {
            Some(msg) => assert_eq!(m.append(&msg.subject, &msg.headers, &msg.payload, msg.ts_ns).unwrap(), seq),
            None => {
                m.append("gap", b"", b"", 0).unwrap();
                m.delete(seq).unwrap();
            }
        }
    }
    m.set_limits(limits.clone()).unwrap();
    m
}

fn is_power_cut(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { .. } | StoreError::Failed(_) | StoreError::NoSpace { .. })
}

fn store_cfg(block_size: u64, bugs: StoreBugs) -> FileStoreConfig {
    FileStoreConfig { block_size, scan_chunk: 512, read_ahead: 256, write_chunk: 96, bugs, ..Default::default() }
}

/// Check the recovered contents against the states the interrupted operation allows.
fn check_recovered(
    got: &Contents,
    before: &Contents,
    inflight: Option<(&Op, Vec<Contents>)>,
) -> Result<(), TestCaseError> {
    let Some((op, states)) = inflight else {
        prop_assert_eq!(got, before, "every acknowledged operation survives, nothing else appears");
        return Ok(());
    };
    match op {
        Op::Append { .. } | Op::Batch(_) => {
            // A prefix of the messages (each with its evictions, re-enforced at open).
            prop_assert!(
                got == before || states.iter().any(|s| s == got),
                "recovered state is not a prefix of the interrupted append\n got {:?}\n before {:?}",
                got,
                before
            );
        }
        _ => {
            // A removal cut short: each sequence removed or not, nothing else changed.
            let after = states.last().expect("final state");
            prop_assert!(
                got.1 == before.1 || got.1 == after.1,
                "last_seq {} not in {{{}, {}}}",
                got.1,
                before.1,
                after.1
            );
            for seq in 1..=before.1.max(after.1) {
                let g = got.0.get(&seq);
                prop_assert!(g == before.0.get(&seq) || g == after.0.get(&seq), "seq {} is {:?}", seq, g);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn synced_writes_survive_crashes(
        seed in any::<u64>(),
        torn in prop::sample::select(vec![0.0, 0.5, 1.0]),
        block_size in 300u64..3000,
        limits in limits(),
        rounds in prop::collection::vec((prop::collection::vec(op(), 1..25), 0u64..150), 1..5),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sim = Arc::new(SimDisk::new(SimDiskConfig { torn_write_prob: torn, ..SimDiskConfig::instant() }));
        let pc = Arc::new(PowerCut::new(sim.clone()));
        let cfg = store_cfg(block_size, StoreBugs::default());
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let mut model = MemStore::new(limits.clone()).unwrap();
        let mut n = 0;
        for (ops, budget) in rounds {
            pc.set_budget(Some(budget));
            let mut inflight = None;
            if let Ok(mut fs) = FileStore::open(pc.clone(), DIR, limits.clone(), cfg.clone(), mem.clone()) {
                for op in &ops {
                    n += 1;
                    let mut next = model.clone();
                    let expect = apply(&mut next, op, n, None);
                    match apply(&mut fs, op, n, None) {
                        Ok(v) => {
                            prop_assert_eq!(Ok(v), expect.map_err(|e| e.to_string()), "op {:?}", op);
                            model = next;
                        }
                        Err(e) if is_power_cut(&e) => {
                            let states = match op {
                                Op::Batch(msgs) => (1..=msgs.len())
                                    .filter_map(|k| {
                                        let mut m = model.clone();
                                        apply(&mut m, op, n, Some(k)).ok().map(|_| contents(&mut m))
                                    })
                                    .collect(),
                                _ => vec![contents(&mut next)],
                            };
                            inflight = Some((op.clone(), states));
                            break;
                        }
                        Err(e) => {
                            // A refusal (limits); a refused batch keeps its stored prefix in both.
                            prop_assert_eq!(e.to_string(), expect.unwrap_err().to_string());
                            model = next;
                        }
                    }
                }
            }
            sim.crash(&mut rng);
            pc.set_budget(None);
            let mut fs = FileStore::open(sim.clone(), DIR, limits.clone(), cfg.clone(), mem.clone()).expect("reopen");
            let rep = fs.recovery().clone();
            prop_assert!(rep.lost.is_empty() && rep.damaged.is_empty() && rep.foreign.is_empty(), "{:?}", rep);
            let got = contents(&mut fs);
            let before = contents(&mut model);
            check_recovered(&got, &before, inflight.as_ref().map(|(o, s)| (o, s.clone())))?;
            // The store keeps working, and never reuses a sequence.
            let next_seq = fs.state().last_seq + 1;
            model = model_from(&got, &limits);
            if limits.discard == Discard::Old {
                n += 1;
                prop_assert_eq!(fs.append("after.crash", b"", b"x", n as i64).unwrap(), next_seq);
                model.append("after.crash", b"", b"x", n as i64).unwrap();
                prop_assert_eq!(contents(&mut fs), contents(&mut model));
            }
        }
    }
}

/// One acknowledged append, then a power cut before anything else happens.
fn ack_then_crash(bugs: StoreBugs) -> Option<StoredMsg> {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let cfg = store_cfg(4096, bugs);
    let mem = StoreMemory::standalone(1 << 20, 1 << 20);
    let mut fs = FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg.clone(), mem.clone()).unwrap();
    fs.append("a", b"", b"first", 1).unwrap();
    let seq = fs.append("a", b"", b"acknowledged", 2).unwrap();
    drop(fs);
    sim.crash(&mut ChaCha8Rng::seed_from_u64(7));
    let mut fs = FileStore::open(sim, DIR, StoreLimits::default(), cfg, mem).unwrap();
    fs.load(seq).unwrap()
}

#[test]
fn lazy_fsync_loses_an_acknowledged_append() {
    assert_eq!(ack_then_crash(StoreBugs::default()).unwrap().payload, b"acknowledged");
    assert!(
        ack_then_crash(StoreBugs { lazy_fsync: true, ..Default::default() }).is_none(),
        "with lazy_fsync the acknowledged append must be lost by the crash (the checker's teeth)"
    );
}

/// `FileStore::skip_to` spends sequences without storing anything, durably at once: a
/// power cut right after it (with torn writes) keeps the skip whole, every message, and
/// reports nothing lost; the next append takes the sequence skipped to. (The engine
/// skips a reopened stream past its refused publishes' sequences; a store-and-delete
/// per sequence could be cut between its two records and leave a phantom message.)
#[test]
fn a_skip_survives_a_power_cut_whole() {
    for seed in 0..20u64 {
        let sim = Arc::new(SimDisk::new(SimDiskConfig { torn_write_prob: 0.5, ..SimDiskConfig::instant() }));
        let cfg = FileStoreConfig {
            sync: SyncPolicy::Interval(Duration::from_secs(3600)),
            ..store_cfg(4096, StoreBugs::default())
        };
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let mut fs = FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg.clone(), mem.clone()).unwrap();
        for i in 1..=3 {
            fs.append("a", b"", &payload(i, 0, 20), i as i64).unwrap();
        }
        fs.flush().unwrap();
        fs.skip_to(10).unwrap();
        assert_eq!((fs.state().first_seq, fs.state().last_seq, fs.state().msgs), (1, 9, 3));
        drop(fs);
        sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut fs = FileStore::open(sim, DIR, StoreLimits::default(), cfg, mem).unwrap();
        assert!(fs.recovery().lost.is_empty(), "seed {seed}: {:?}", fs.recovery());
        let st = fs.state();
        assert_eq!((st.first_seq, st.last_seq, st.msgs), (1, 9, 3), "seed {seed}");
        assert_eq!(fs.append("a", b"", b"next", 9).unwrap(), 10, "seed {seed}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `SyncPolicy::Interval`: a crash keeps everything up to the last flush and then a
    /// prefix of what followed; it never reorders or invents messages.
    #[test]
    fn interval_policy_loses_at_most_the_unflushed_suffix(
        seed in any::<u64>(),
        ops in prop::collection::vec((0..SUBJECTS.len(), 0usize..100, prop::bool::weighted(0.2)), 1..60),
    ) {
        let sim = Arc::new(SimDisk::new(SimDiskConfig { torn_write_prob: 0.5, ..SimDiskConfig::instant() }));
        let every = Duration::from_millis(10);
        let cfg = FileStoreConfig { sync: SyncPolicy::Interval(every), ..store_cfg(700, StoreBugs::default()) };
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let mut fs = FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg.clone(), mem.clone()).unwrap();
        let mut model = MemStore::new(StoreLimits::default()).unwrap();
        let mut history = vec![contents(&mut model)];
        let mut flushed = 0;
        let mut now = Duration::ZERO;
        fs.tick(now).unwrap();
        for (i, (subj, len, tick)) in ops.iter().enumerate() {
            fs.append(SUBJECTS[*subj], b"", &payload(i, 0, *len), i as i64).unwrap();
            model.append(SUBJECTS[*subj], b"", &payload(i, 0, *len), i as i64).unwrap();
            history.push(contents(&mut model));
            if *tick {
                now += every;
                if fs.flush_if_due(now).unwrap() {
                    flushed = history.len() - 1;
                }
            }
        }
        drop(fs);
        sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut fs = FileStore::open(sim, DIR, StoreLimits::default(), cfg, mem).unwrap();
        let got = contents(&mut fs);
        let k = history.iter().position(|h| *h == got);
        prop_assert!(k.is_some_and(|k| k >= flushed), "recovered {} msgs, flushed through state {}", got.0.len(), flushed);
    }
}

/// A full disk: appends fail with `NoSpace` (sometimes while rolling a block), nothing
/// stored before is lost, the store keeps serving and resumes when space returns, and
/// a crash afterwards keeps every acknowledged append.
#[test]
fn disk_full_loses_nothing() {
    for cap in (600u64..4000).step_by(97) {
        let sim = Arc::new(SimDisk::new(SimDiskConfig { capacity_bytes: Some(cap), ..SimDiskConfig::instant() }));
        let cfg = store_cfg(500, StoreBugs::default());
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let mut fs = FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg.clone(), mem.clone()).unwrap();
        let mut model = MemStore::new(StoreLimits::default()).unwrap();
        let mut refused = 0;
        for i in 0..60usize {
            let body = payload(i, 0, 40 + i % 50);
            match fs.append(SUBJECTS[i % 4], b"", &body, i as i64) {
                Ok(seq) => assert_eq!(seq, model.append(SUBJECTS[i % 4], b"", &body, i as i64).unwrap()),
                Err(StoreError::NoSpace { .. }) => refused += 1,
                Err(e) => panic!("cap {cap}: unexpected {e}"),
            }
            if i == 40 {
                assert!(refused > 0, "cap {cap}: the disk never filled");
                assert!(!fs.is_failed(), "cap {cap}: ENOSPC must leave the store usable");
                assert_eq!(contents(&mut fs), contents(&mut model), "cap {cap}");
                sim.set_config(SimDiskConfig::instant());
            }
        }
        assert_eq!(contents(&mut fs), contents(&mut model), "cap {cap}");
        drop(fs);
        sim.crash(&mut ChaCha8Rng::seed_from_u64(cap));
        let mut fs = FileStore::open(sim, DIR, StoreLimits::default(), cfg, mem).unwrap();
        assert!(fs.recovery().is_clean(), "cap {cap}: {:?}", fs.recovery());
        assert_eq!(contents(&mut fs), contents(&mut model), "cap {cap}");
    }
}

/// A delete on a full disk: the tombstone cannot be written, so the delete fails; the
/// store stays usable, the message it targeted is either still there, whole, or gone
/// (the one operation that failed may or may not have happened; the store world's
/// checker allows both for that sequence only), every other message survives a
/// reopen, and once there is room again the delete succeeds and stays done.
#[test]
fn a_delete_on_a_full_disk_fails_and_touches_nothing_else() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let cfg = store_cfg(4096, StoreBugs::default());
    let mem = StoreMemory::standalone(1 << 20, 1 << 20);
    let open = || FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg.clone(), mem.clone()).unwrap();
    let mut fs = open();
    for (i, body) in [&b"one"[..], b"two", b"three"].into_iter().enumerate() {
        assert_eq!(fs.append("a", b"", body, i as i64).unwrap(), i as u64 + 1);
    }
    let mut full = sim.config();
    full.capacity_bytes = Some(sim.used_bytes());
    sim.set_config(full.clone());
    assert!(fs.delete(2).is_err(), "no room for the tombstone: the delete must fail, not pretend");
    drop(fs);
    let mut fs = open();
    assert_eq!(fs.load(1).unwrap().unwrap().payload, b"one");
    assert_eq!(fs.load(3).unwrap().unwrap().payload, b"three");
    if let Some(m) = fs.load(2).unwrap() {
        assert_eq!(m.payload, b"two", "a message a failed delete left must be intact");
    }
    full.capacity_bytes = None;
    sim.set_config(full);
    let _ = fs.delete(2).unwrap();
    drop(fs);
    let mut fs = open();
    assert!(fs.load(2).unwrap().is_none(), "a delete that returned Ok stays deleted");
    assert_eq!(fs.load(3).unwrap().unwrap().payload, b"three");
}
