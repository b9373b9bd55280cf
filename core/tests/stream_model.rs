//! Model test of the stream state machine: the same random operation sequence (publish
//! with and without `Nats-Msg-Id` and expected-sequence headers, roll-ups, purge,
//! delete, time passing, restart) applied to a `MemStore`-backed and a
//! `FileStore`-backed stream (over an in-memory disk with tiny blocks) must give the
//! same reply to every operation and the same state, messages and dedup answers.
//! A restart rebuilds both streams from their stores (the file store is closed and
//! reopened), so the dedup window must come back the same from either store.
//! Failing cases are printed and kept by proptest; pin one with `PROPTEST_SEED`.

use proptest::prelude::*;
use std::sync::Arc;
mod support;

use support::MemDisk;
use weir_core::mem::Account;
use weir_core::store::{FileStore, FileStoreConfig, MemStore, MsgStore, StoreLimits, StoreMemory};
use weir_core::stream::{
    DiscardPolicy, MsgDeleteRequest, MsgGetRequest, PurgeApiRequest, RetentionPolicy, STREAM_DEDUP, Stream,
    StreamConfig, StreamOptions, pub_ack_error_json,
};

const SUBJECTS: [&str; 4] = ["s.a", "s.b", "s.c.d", "s.c.e"];
const FILTERS: [&str; 5] = ["s.a", "s.b", "s.c.*", "s.>", "s.c.>"];
const MS: i64 = 1_000_000;

#[derive(Clone, Debug)]
enum Op {
    Publish {
        subj: usize,
        id: Option<u8>,
        expect: Option<(u8, u64)>,
        rollup: Option<bool>,
        ttl: Option<u8>,
        payload: usize,
        dt: i64,
    },
    Purge {
        filter: Option<usize>,
        seq: u64,
        keep: u64,
    },
    Delete(u64),
    Tick(i64),
    Restart,
}

#[derive(Clone, Debug)]
struct Setup {
    max_msgs: i64,
    max_bytes: i64,
    max_per_subject: i64,
    max_age_ms: i64,
    window_ms: i64,
    discard_new: bool,
    rollups: bool,
    interest: bool,
    ttl: bool,
    dedup_limit: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    let limits = (
        prop_oneof![Just(-1i64), 1i64..12],
        prop_oneof![Just(-1i64), 300i64..2000],
        prop_oneof![Just(-1i64), 1i64..4],
        prop_oneof![Just(0i64), 200i64..3000],
        100i64..2000,
    );
    let flags = (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2), any::<bool>());
    let dedup_limit = prop_oneof![Just(1u64 << 20), 150u64..1000];
    (limits, flags, dedup_limit).prop_map(
        |(
            (max_msgs, max_bytes, max_per_subject, max_age_ms, window_ms),
            (discard_new, rollups, interest, ttl),
            dedup_limit,
        )| {
            Setup {
                max_msgs,
                max_bytes,
                max_per_subject,
                max_age_ms,
                window_ms,
                discard_new,
                rollups,
                interest,
                ttl,
                dedup_limit,
            }
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (
            0..SUBJECTS.len(),
            prop::option::weighted(0.6, 0u8..8),
            prop::option::weighted(0.15, (0u8..3, 0u64..12)),
            prop::option::weighted(0.1, any::<bool>()),
            prop::option::weighted(0.2, 0u8..4),
            0usize..80,
            0i64..400,
        )
            .prop_map(|(subj, id, expect, rollup, ttl, payload, dt)| Op::Publish { subj, id, expect, rollup, ttl, payload, dt }),
        1 => (prop::option::of(0..FILTERS.len()), prop_oneof![3 => Just(0u64), 1 => 1u64..15], prop_oneof![3 => Just(0u64), 1 => 0u64..3])
            .prop_map(|(filter, seq, keep)| Op::Purge { filter, seq, keep }),
        2 => (0u64..20).prop_map(Op::Delete),
        2 => (0i64..1500).prop_map(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

fn config(s: &Setup) -> StreamConfig {
    let mut c = StreamConfig::new("M", &["s.>"]);
    c.max_msgs = s.max_msgs;
    c.max_bytes = s.max_bytes;
    c.max_msgs_per_subject = s.max_per_subject;
    c.max_age = s.max_age_ms * MS;
    c.duplicate_window = if s.max_age_ms > 0 { s.window_ms.min(s.max_age_ms) } else { s.window_ms } * MS;
    c.discard = if s.discard_new { DiscardPolicy::New } else { DiscardPolicy::Old };
    c.allow_rollup_hdrs = s.rollups;
    c.allow_msg_ttl = s.ttl;
    c.retention = if s.interest { RetentionPolicy::Interest } else { RetentionPolicy::Limits };
    c.check_create(false).expect("generated configs are valid")
}

fn headers(op: &Op) -> Vec<u8> {
    let Op::Publish { id, expect, rollup, ttl, .. } = op else { return Vec::new() };
    let mut h = String::new();
    if let Some(i) = id {
        h.push_str(&format!("Nats-Msg-Id: id-{i}\r\n"));
    }
    match expect {
        Some((0, seq)) => h.push_str(&format!("Nats-Expected-Last-Sequence: {seq}\r\n")),
        Some((1, seq)) => h.push_str(&format!("Nats-Expected-Last-Subject-Sequence: {seq}\r\n")),
        Some((_, seq)) => h.push_str(&format!("Nats-Expected-Last-Msg-Id: id-{seq}\r\n")),
        None => {}
    }
    match rollup {
        Some(true) => h.push_str("Nats-Rollup: sub\r\n"),
        Some(false) => h.push_str("Nats-Rollup: all\r\n"),
        None => {}
    }
    if let Some(t) = ttl {
        // 0 is a malformed TTL ("0s" is under a second); the others are 1-3 s.
        h.push_str(&format!("Nats-TTL: {t}s\r\n"));
    }
    if h.is_empty() { Vec::new() } else { format!("NATS/1.0\r\n{h}\r\n").into_bytes() }
}

fn reply<T: std::fmt::Debug>(r: &Result<T, weir_core::jetstream::ApiError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => String::from_utf8(pub_ack_error_json("M", e)).unwrap(),
    }
}

fn opts(limit: u64) -> StreamOptions {
    StreamOptions::new(Arc::new(Account::new(STREAM_DEDUP, limit)))
}

fn file_cfg() -> FileStoreConfig {
    FileStoreConfig {
        block_size: 512,
        read_ahead: 100,
        scan_chunk: 128,
        write_chunk: 96,
        cache_bytes: 600,
        pool_idle_bytes: 1024,
        ..Default::default()
    }
}

fn compare(m: &mut Stream<MemStore>, f: &mut Stream<FileStore>, now: i64, ctx: &str) -> Result<(), TestCaseError> {
    let a = m.info(now, true, Some(">")).unwrap();
    let b = f.info(now, true, Some(">")).unwrap();
    prop_assert_eq!(&a, &b, "info after {}", ctx);
    for seq in 0..=a.state.last_seq + 1 {
        let req = MsgGetRequest { seq, ..Default::default() };
        prop_assert_eq!(reply(&m.get_msg(&req)), reply(&f.get_msg(&req)), "get {} after {}", seq, ctx);
    }
    for t in [0, now / 2, now - 500 * MS, now] {
        let req = MsgGetRequest { start_time: Some(t), ..Default::default() };
        prop_assert_eq!(reply(&m.get_msg(&req)), reply(&f.get_msg(&req)), "get at time {} after {}", t, ctx);
        // Reference: a linear scan for the first message stored at or after `t`.
        let mut want = None;
        let mut from = 0;
        while let Some(msg) = m.store_mut().load_next(">", from).unwrap() {
            if msg.ts_ns >= t {
                want = Some(msg.seq);
                break;
            }
            from = msg.seq + 1;
        }
        prop_assert_eq!(m.get_msg(&req).ok().map(|x| x.seq), want, "time {} after {}", t, ctx);
    }
    for filt in FILTERS {
        let req = MsgGetRequest { last_by_subj: filt.into(), ..Default::default() };
        prop_assert_eq!(m.direct_get(&req), f.direct_get(&req), "direct get last {} after {}", filt, ctx);
    }
    for i in 0..8u8 {
        let id = format!("id-{i}");
        prop_assert_eq!(m.dedup().lookup(&id), f.dedup().lookup(&id), "dedup {} after {}", id, ctx);
    }
    prop_assert_eq!(m.dedup().charged(), f.dedup().charged());
    prop_assert_eq!(m.next_deadline(), f.next_deadline(), "deadline after {}", ctx);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn file_stream_matches_mem_stream(setup in setup(), ops in prop::collection::vec(op(), 1..50)) {
        let cfg = config(&setup);
        let disk = Arc::new(MemDisk::default());
        let mem = StoreMemory::standalone(1 << 20, 1 << 20);
        let open_file = |disk: &Arc<MemDisk>| {
            FileStore::open(disk.clone(), "m/msgs", StoreLimits::default(), file_cfg(), mem.clone()).expect("open")
        };
        let mut now = 1_000 * MS;
        let mut ms = Stream::open(cfg.clone(), MemStore::new(StoreLimits::default()).unwrap(), 0, now, opts(setup.dedup_limit)).unwrap();
        let mut fs = Stream::open(cfg.clone(), open_file(&disk), 0, now, opts(setup.dedup_limit)).unwrap();
        if setup.interest {
            for s in [&["s.a".to_string()][..], &["s.c.*".to_string()][..]] {
                let name = format!("c{}", s[0].len());
                ms.add_consumer(&name, s).unwrap();
                fs.add_consumer(&name, s).unwrap();
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let ctx = format!("op {i}: {op:?}");
            let (a, b) = match op {
                Op::Publish { subj, payload, dt, .. } => {
                    now += dt * MS;
                    let h = headers(op);
                    let p = vec![i as u8; *payload];
                    (reply(&ms.publish(now, SUBJECTS[*subj], &h, &p)), reply(&fs.publish(now, SUBJECTS[*subj], &h, &p)))
                }
                Op::Purge { filter, seq, keep } => {
                    let req = PurgeApiRequest { filter: filter.map(|f| FILTERS[f].to_string()).unwrap_or_default(), seq: *seq, keep: *keep };
                    (reply(&ms.purge(&req)), reply(&fs.purge(&req)))
                }
                Op::Delete(seq) => {
                    let req = MsgDeleteRequest { seq: *seq, no_erase: false };
                    (reply(&ms.delete_msg(&req)), reply(&fs.delete_msg(&req)))
                }
                Op::Tick(dt) => {
                    now += dt * MS;
                    (reply(&ms.tick(now)), reply(&fs.tick(now)))
                }
                Op::Restart => {
                    let consumers = setup.interest;
                    let mstore = ms.into_store();
                    fs.into_store().close().unwrap();
                    ms = Stream::open(cfg.clone(), mstore, 0, now, opts(setup.dedup_limit)).unwrap();
                    fs = Stream::open(cfg.clone(), open_file(&disk), 0, now, opts(setup.dedup_limit)).unwrap();
                    prop_assert!(fs.store().recovery().is_clean());
                    if consumers {
                        for s in [&["s.a".to_string()][..], &["s.c.*".to_string()][..]] {
                            let name = format!("c{}", s[0].len());
                            ms.add_consumer(&name, s).unwrap();
                            fs.add_consumer(&name, s).unwrap();
                        }
                    }
                    (String::new(), String::new())
                }
            };
            prop_assert_eq!(&a, &b, "reply to {}", ctx);
            compare(&mut ms, &mut fs, now, &ctx)?;
            ms.invariants();
            fs.invariants();
        }
    }
}
