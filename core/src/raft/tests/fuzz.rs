//! Arbitrary message sequences (as a faulty network or confused peers could deliver them)
//! never panic the state machine, and its output stays something storage accepts.

use crate::raft::{
    Config, Entry, Envelope, GroupId, HardState, Message, Raft, RaftAccounts, Ready, Restored, Role, Snapshot,
    SnapshotMeta, Term,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::cell::Cell;

#[derive(Clone, Debug)]
enum Op {
    Tick(u64),
    Step(Envelope),
    Propose(usize),
    Compact,
    /// A well-formed election grant from `from` (random messages almost never win one).
    Grant(u64),
}

fn entries(prev: u64) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec((0u64..6, 0usize..4), 0..4).prop_map(move |v| {
        v.into_iter()
            .enumerate()
            .map(|(k, (term, len))| Entry { term, index: prev + 1 + k as u64, data: vec![k as u8; len] })
            .collect()
    })
}

fn message() -> impl Strategy<Value = Message> {
    let idx = 0u64..14;
    let term = 0u64..6;
    prop_oneof![
        (idx.clone(), term.clone()).prop_map(|(last_index, last_term)| Message::PreVote { last_index, last_term }),
        any::<bool>().prop_map(|granted| Message::PreVoteResp { granted }),
        (idx.clone(), term.clone()).prop_map(|(last_index, last_term)| Message::Vote { last_index, last_term }),
        any::<bool>().prop_map(|granted| Message::VoteResp { granted }),
        (idx.clone(), term.clone(), idx.clone()).prop_flat_map(|(p, t, c)| entries(p)
            .prop_map(move |es| Message::Append { prev_index: p, prev_term: t, entries: es, commit: c })),
        (any::<bool>(), idx.clone()).prop_map(|(success, index)| Message::AppendResp { success, index }),
        (idx.clone(), term, 0u64..12, prop::collection::vec(any::<u8>(), 0..6), any::<bool>()).prop_map(
            |(li, lt, offset, chunk, done)| Message::InstallSnapshot {
                meta: SnapshotMeta { last_index: li, last_term: lt, peers: vec![1, 2, 3] },
                offset,
                chunk,
                done
            }
        ),
        (idx, 0u64..12, any::<bool>()).prop_map(|(last_index, next_offset, done)| {
            Message::InstallSnapshotResp { last_index, next_offset, done }
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..400).prop_map(Op::Tick),
        6 => (1u64..=4, 0u64..7, message()).prop_map(|(from, term, msg)| Op::Step(Envelope { group: GroupId::TEST_LOG, from, to: 1, term, msg })),
        1 => (0usize..40).prop_map(Op::Propose),
        1 => Just(Op::Compact),
        2 => (2u64..=3).prop_map(Op::Grant),
    ]
}

/// What storage would hold: enough to check that every Ready is acceptable to it.
struct Disk {
    snap: (u64, Term),
    entries: Vec<Entry>,
    hs: HardState,
}

impl Disk {
    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap.0, |e| e.index)
    }

    fn persist(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            let (si, st) = (s.meta.last_index, s.meta.last_term);
            assert!(si >= self.snap.0, "snapshot went backwards");
            let keep =
                si == self.snap.0 && st == self.snap.1 || self.entries.iter().any(|e| e.index == si && e.term == st);
            self.entries.retain(|e| keep && e.index > si);
            self.snap = (si, st);
        }
        if let Some(hs) = rd.hard_state {
            self.hs = hs;
        }
        let es: Vec<&Entry> = rd.entries.iter().filter(|e| e.index > self.snap.0).collect();
        for w in rd.entries.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1, "entries not contiguous");
        }
        if let Some(f) = es.first() {
            assert!(f.index <= self.last() + 1, "entries start at {} after a log ending at {}", f.index, self.last());
            self.entries.retain(|e| e.index < f.index);
            self.entries.extend(es.into_iter().cloned());
        }
    }
}

#[test]
fn arbitrary_input_never_breaks_the_machine() {
    let config = ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() };
    let led = Cell::new(0u32);
    let strategy = (any::<u64>(), prop::collection::vec(op(), 1..200));
    let result = TestRunner::new(config).run(&strategy, |(seed, ops)| {
        if run(seed, ops)? {
            led.set(led.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(led.get() > 10, "the fuzzer rarely exercised the leader side ({} runs)", led.get());
}

/// Feed `ops` to a fresh node; returns whether it ever led.
fn run(seed: u64, ops: Vec<Op>) -> Result<bool, TestCaseError> {
    let snap = Snapshot { meta: SnapshotMeta { last_index: 2, last_term: 1, peers: vec![1, 2, 3] }, data: vec![] };
    let restored = Restored {
        hard_state: HardState { term: 1, vote: None, commit: 2 },
        snapshot: Some(snap),
        entries: vec![Entry { term: 1, index: 3, data: vec![] }],
    };
    let accounts = RaftAccounts::with_limits(200, 300, 400);
    let (pending, catchup, log) = (accounts.pending.clone(), accounts.catchup.clone(), accounts.log.clone());
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.max_append_bytes = 60;
    cfg.catchup_window_bytes = 120;
    cfg.snapshot_chunk_bytes = 3;
    let mut disk =
        Disk { snap: (2, 1), entries: vec![Entry { term: 1, index: 3, data: vec![] }], hs: restored.hard_state };
    let mut raft = Raft::new(cfg, restored, seed, accounts, 0);
    let (mut now, mut applied, mut term, mut led) = (0u64, 2u64, 1u64, false);
    for op in ops {
        let mut early_tick = false;
        match op {
            Op::Tick(dt) => {
                now += dt;
                // A tick before the deadline must do nothing (shells skip those).
                early_tick = now < raft.next_deadline();
                raft.tick(now);
            }
            Op::Step(env) => raft.step(now, env),
            Op::Propose(len) => {
                let _ = raft.propose(now, vec![7; len]);
            }
            Op::Compact => raft.compact(raft.applied_index(), vec![]),
            Op::Grant(from) => {
                let (term, msg) = match raft.role() {
                    Role::PreCandidate => (raft.term() + 1, Message::PreVoteResp { granted: true }),
                    _ => (raft.term(), Message::VoteResp { granted: true }),
                };
                raft.step(now, Envelope { group: GroupId::TEST_LOG, from, to: 1, term, msg });
            }
        }
        let rd = raft.ready();
        prop_assert!(!early_tick || rd.is_empty(), "a tick before the deadline had effects: {rd:?}");
        raft.invariants();
        disk.persist(&rd);
        if rd.restore {
            applied = rd.snapshot.as_ref().expect("restore has a snapshot").meta.last_index;
        }
        for e in &rd.committed {
            prop_assert_eq!(e.index, applied + 1, "committed out of order");
            applied = e.index;
        }
        led |= raft.role() == Role::Leader;
        prop_assert!(raft.term() >= term, "term went backwards");
        term = raft.term();
        prop_assert!(raft.commit_index() <= raft.last_index());
        prop_assert!(raft.applied_index() <= raft.commit_index());
        prop_assert!(disk.hs.commit <= disk.last(), "durable commit beyond the durable log");
        prop_assert!(pending.current() <= pending.limit() && catchup.current() <= catchup.limit());
        prop_assert!(log.current() <= log.limit(), "raft.log over its limit");
        prop_assert_eq!(log.current(), raft.log_bytes());
    }
    Ok(led)
}
