//! Model-based test: random operations applied to a `FileStore` (over an in-memory disk,
//! with random limits and tiny blocks, caches and chunks, and reopened at random points)
//! and to the reference `MemStore` must give the same observable results: the same
//! return values and errors, `state()`, every `load`, `load_last` and `load_next`.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
mod support;

use support::MemDisk;
use weir_core::store::{
    Discard, FileStore, FileStoreConfig, MemStore, MsgStore, NewMsg, PurgeRequest, StateRequest, StoreError,
    StoreLimits, StoreMemory, StoreSnapshot,
};

const SUBJECTS: [&str; 5] = ["a", "b", "a.b", "a.c", "x.y.z"];
const FILTERS: [&str; 8] = [">", "a", "b", "a.*", "a.>", "*", "x.*.z", "q.>"];

#[derive(Clone, Debug)]
enum Op {
    Append { subj: usize, hdr: usize, payload: usize, dt: i64 },
    Batch(Vec<(usize, usize)>),
    Delete(u64),
    Purge { filter: Option<usize>, up_to: Option<u64>, keep: Option<u64> },
    Compact(u64),
    Expire(i64),
    SetLimits(StoreLimits),
    Reopen,
}

fn limits() -> impl Strategy<Value = StoreLimits> {
    (
        prop::option::weighted(0.3, 1u64..20),
        prop::option::weighted(0.3, 150u64..3000),
        prop::option::weighted(0.3, 1u64..50),
        prop::option::weighted(0.3, 1u64..5),
        prop::option::weighted(0.2, 5u64..200),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(max_msgs, max_bytes, age, per_subj, max_size, new, new_per)| StoreLimits {
            max_msgs,
            max_bytes,
            max_age: age.map(Duration::from_nanos),
            max_msgs_per_subject: per_subj,
            max_msg_size: max_size,
            discard: if new { Discard::New } else { Discard::Old },
            discard_new_per_subject: new_per,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..SUBJECTS.len(), 0usize..3, 0usize..120, 0i64..5)
            .prop_map(|(subj, hdr, payload, dt)| Op::Append { subj, hdr, payload, dt }),
        2 => prop::collection::vec((0..SUBJECTS.len(), 0usize..60), 1..6).prop_map(Op::Batch),
        3 => (0u64..40).prop_map(Op::Delete),
        1 => (prop::option::of(0..FILTERS.len()), prop::option::weighted(0.3, 0u64..40), prop::option::weighted(0.3, 0u64..4))
            .prop_map(|(filter, up_to, keep)| Op::Purge { filter, up_to, keep }),
        1 => (0u64..50).prop_map(Op::Compact),
        1 => (0i64..60).prop_map(Op::Expire),
        1 => limits().prop_map(Op::SetLimits),
        2 => Just(Op::Reopen),
    ]
}

fn file_cfg() -> impl Strategy<Value = FileStoreConfig> {
    (256u64..2048, 0usize..600, 64usize..400, 48usize..200, 0u64..2000).prop_map(
        |(block_size, read_ahead, scan_chunk, write_chunk, cache_bytes)| FileStoreConfig {
            block_size,
            read_ahead,
            scan_chunk,
            write_chunk,
            cache_bytes,
            pool_idle_bytes: 1024,
            ..Default::default()
        },
    )
}

/// Outcomes compared between the stores: the value, or the error's description.
fn outcome<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e}"),
    }
}

fn compare(ms: &mut MemStore, fs: &mut FileStore, ctx: &str) -> Result<(), TestCaseError> {
    let req = StateRequest { deleted: true, subjects: Some(">".into()) };
    let a = ms.state_with(&req).unwrap();
    let b = fs.state_with(&req).unwrap();
    prop_assert_eq!(&a, &b, "state after {}", ctx);
    let snap = fs.snapshot();
    prop_assert_eq!(&ms.snapshot(), &snap);
    prop_assert_eq!(StoreSnapshot::decode(&snap.encode()).unwrap(), snap);
    for seq in 0..=a.last_seq + 1 {
        prop_assert_eq!(ms.load(seq).unwrap(), fs.load(seq).unwrap(), "load({}) after {}", seq, ctx);
    }
    for f in SUBJECTS.iter().chain(FILTERS.iter()) {
        prop_assert_eq!(ms.load_last(f).unwrap(), fs.load_last(f).unwrap(), "load_last({}) after {}", f, ctx);
    }
    for f in FILTERS {
        let mut from = 0;
        loop {
            let x = ms.load_next(f, from).unwrap();
            let y = fs.load_next(f, from).unwrap();
            prop_assert_eq!(&x, &y, "load_next({}, {}) after {}", f, from, ctx);
            match x {
                Some(m) => from = m.seq + 1,
                None => break,
            }
        }
    }
    Ok(())
}

fn open(disk: &Arc<MemDisk>, limits: &StoreLimits, cfg: &FileStoreConfig, mem: &StoreMemory) -> FileStore {
    FileStore::open(disk.clone(), "s/msgs", limits.clone(), cfg.clone(), mem.clone()).expect("open")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn file_store_matches_mem_store(limits in limits(), cfg in file_cfg(), ops in prop::collection::vec(op(), 1..60)) {
        let disk = Arc::new(MemDisk::default());
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let mut ms = MemStore::new(limits.clone()).unwrap();
        let mut fs = open(&disk, &limits, &cfg, &mem);
        let mut clock = 0i64;
        for (i, op) in ops.iter().enumerate() {
            let ctx = format!("op {i}: {op:?}");
            match op {
                Op::Append { subj, hdr, payload, dt } => {
                    clock += dt;
                    let h = vec![b'h'; *hdr * 7];
                    let p = vec![i as u8; *payload];
                    let a = ms.append(SUBJECTS[*subj], &h, &p, clock);
                    let b = fs.append(SUBJECTS[*subj], &h, &p, clock);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Batch(msgs) => {
                    clock += 1;
                    let payloads: Vec<Vec<u8>> = msgs.iter().map(|(_, n)| vec![7; *n]).collect();
                    let batch: Vec<NewMsg<'_>> = msgs
                        .iter()
                        .zip(&payloads)
                        .map(|((s, _), p)| NewMsg { subject: SUBJECTS[*s], headers: b"", payload: p, ts_ns: clock })
                        .collect();
                    let a = ms.append_batch(&batch);
                    let b = fs.append_batch(&batch);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Delete(seq) => {
                    let a = ms.delete(*seq);
                    let b = fs.delete(*seq);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Purge { filter, up_to, keep } => {
                    let req = PurgeRequest { filter: filter.map(|f| FILTERS[f].to_string()), up_to_seq: *up_to, keep: *keep };
                    let a = ms.purge(&req);
                    let b = fs.purge(&req);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Compact(seq) => {
                    let a = ms.compact(*seq);
                    let b = fs.compact(*seq);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Expire(dt) => {
                    let a = ms.expire(clock + dt);
                    let b = fs.expire(clock + dt);
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::SetLimits(l) => {
                    let a = ms.set_limits(l.clone());
                    let b = fs.set_limits(l.clone());
                    prop_assert_eq!(outcome(&a), outcome(&b), "{}", ctx);
                }
                Op::Reopen => {
                    let limits = fs.limits().clone();
                    fs.close().unwrap();
                    fs = open(&disk, &limits, &cfg, &mem);
                    prop_assert!(fs.recovery().is_clean(), "recovery after {}: {:?}", ctx, fs.recovery());
                    prop_assert!(fs.recovery().truncated.is_none());
                }
            }
            compare(&mut ms, &mut fs, &ctx)?;
            prop_assert!(mem.buffers.current() <= mem.buffers.limit());
        }
        // Memory returns to baseline once the cache and the pool have been idle.
        fs.tick(Duration::from_secs(100)).unwrap();
        fs.tick(Duration::from_secs(200)).unwrap();
        prop_assert_eq!(mem.cache.current(), 0);
        prop_assert_eq!(mem.buffers.current(), 0);
        // Old blocks are removed once fully deleted: only live data and the last block remain.
        let st = fs.state();
        if st.msgs == 0 {
            prop_assert!(fs.block_count() <= 2, "{} blocks for an empty store", fs.block_count());
        }
    }
}
