//! `FileStore::truncate_after` (the Raft-only suffix truncation) on `SimDisk`: a proptest
//! model (random appends, truncations, compactions and reopens against a plain in-memory
//! log), power cuts at every disk operation of a truncation with torn writes, and the
//! recovery rules (truncated sequences are discarded, never reported lost).

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::disk::Disk;
use weir_core::store::{FileStore, FileStoreConfig, MsgStore, NewMsg, StoreError, StoreLimits, StoreMemory};
use weir_sim::disk::{PowerCut, SimDisk, SimDiskConfig};

const DIR: &str = "n1/log";

/// The obvious log: messages by sequence, the first and last sequence.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    msgs: BTreeMap<u64, Vec<u8>>,
    last: u64,
}

impl Model {
    fn first(&self) -> u64 {
        self.msgs.keys().next().copied().unwrap_or(self.last + 1)
    }

    fn append(&mut self, payloads: &[Vec<u8>]) {
        for p in payloads {
            self.last += 1;
            self.msgs.insert(self.last, p.clone());
        }
    }

    fn truncate_after(&mut self, seq: u64) {
        if seq < self.last {
            self.msgs.retain(|&q, _| q <= seq);
            self.last = seq;
        }
    }

    fn compact(&mut self, seq: u64) {
        self.msgs.retain(|&q, _| q >= seq);
        self.last = self.last.max(seq.saturating_sub(1));
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Append a batch of this many messages with these payload lengths.
    Append(Vec<usize>),
    /// Truncate after `last - back` (clamped to what is allowed).
    Truncate(u64),
    /// Compact below `first + ahead`.
    Compact(u64),
    /// Close and reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(0usize..400, 1..6).prop_map(Op::Append),
        3 => (0u64..12).prop_map(Op::Truncate),
        1 => (0u64..8).prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn payload(n: usize, k: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n * 131 + k * 17 + i) as u8).collect()
}

fn cfg(block_size: u64) -> FileStoreConfig {
    FileStoreConfig { block_size, scan_chunk: 512, read_ahead: 256, write_chunk: 96, ..Default::default() }
}

fn mem() -> StoreMemory {
    StoreMemory::standalone(1 << 20, 1 << 20)
}

fn open(disk: Arc<dyn Disk>, block_size: u64) -> Result<FileStore, StoreError> {
    FileStore::open(disk, DIR, StoreLimits::default(), cfg(block_size), mem())
}

/// What the store holds, as a model.
fn contents(fs: &mut FileStore) -> Model {
    let st = fs.state();
    let msgs = (st.first_seq..=st.last_seq).filter_map(|q| fs.load(q).expect("load")).map(|m| (m.seq, m.payload));
    Model { msgs: msgs.collect(), last: st.last_seq }
}

fn append(fs: &mut FileStore, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
    let batch: Vec<NewMsg<'_>> =
        payloads.iter().map(|p| NewMsg { subject: "raft", headers: b"", payload: p, ts_ns: 3 }).collect();
    fs.append_batch(&batch)
}

/// Where `Op::Truncate(back)` truncates for a store in state `m`.
fn truncate_point(m: &Model, back: u64) -> u64 {
    m.last.saturating_sub(back).max(m.first() - 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The store follows the model through appends, truncations, compactions and reopens.
    #[test]
    fn truncate_after_matches_a_vec_model(block_size in 300u64..4000, ops in prop::collection::vec(op(), 1..60)) {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(SimDiskConfig::instant()));
        let mut fs = open(disk.clone(), block_size).unwrap();
        let mut model = Model::default();
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Append(lens) => {
                    let ps: Vec<Vec<u8>> = lens.iter().enumerate().map(|(k, &l)| payload(n, k, l)).collect();
                    let seqs = append(&mut fs, &ps).unwrap();
                    prop_assert_eq!(seqs.first().copied(), Some(model.last + 1));
                    model.append(&ps);
                }
                Op::Truncate(back) => {
                    let at = truncate_point(&model, *back);
                    let before = model.msgs.len() as u64;
                    model.truncate_after(at);
                    prop_assert_eq!(fs.truncate_after(at).unwrap(), before - model.msgs.len() as u64);
                    // Below the first stored sequence is refused and changes nothing.
                    if model.first() > 1 {
                        let err = fs.truncate_after(model.first() - 2).unwrap_err();
                        prop_assert!(matches!(err, StoreError::InvalidRequest(_)), "{}", err);
                    }
                }
                Op::Compact(ahead) => {
                    let at = model.first() + ahead;
                    fs.compact(at).unwrap();
                    model.compact(at);
                }
                Op::Reopen => {
                    drop(fs);
                    fs = open(disk.clone(), block_size).unwrap();
                    let rep = fs.recovery();
                    prop_assert!(rep.is_clean() && rep.truncated.is_none(), "{:?}", rep);
                }
            }
            prop_assert_eq!(&contents(&mut fs), &model, "after op {} {:?}", n, op);
            let st = fs.state();
            prop_assert_eq!((st.first_seq, st.last_seq, st.msgs), (model.first(), model.last, model.msgs.len() as u64));
        }
        drop(fs);
        let mut fs = open(disk, block_size).unwrap();
        prop_assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
        prop_assert_eq!(&contents(&mut fs), &model);
    }

    /// A power cut at any disk operation of a truncation (torn writes on) leaves the old
    /// suffix or the truncated log, never a mix; acknowledged appends survive; recovery
    /// reports nothing lost; and the next append takes the right sequence.
    #[test]
    fn truncate_after_survives_power_cuts(
        seed in any::<u64>(),
        torn in prop::sample::select(vec![0.0, 0.5, 1.0]),
        block_size in 300u64..3000,
        ops in prop::collection::vec(op(), 1..30),
        budget in 0u64..40,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sim = Arc::new(SimDisk::new(SimDiskConfig {
            torn_write_prob: torn,
            torn_garbage_prob: 0.5,
            ..SimDiskConfig::instant()
        }));
        let pc = Arc::new(PowerCut::new(sim.clone()));
        let mut fs = open(pc.clone(), block_size).unwrap();
        let mut model = Model::default();
        // Build some history (no power cut yet).
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Append(lens) => {
                    let ps: Vec<Vec<u8>> = lens.iter().enumerate().map(|(k, &l)| payload(n, k, l)).collect();
                    append(&mut fs, &ps).unwrap();
                    model.append(&ps);
                }
                Op::Truncate(back) => {
                    let at = truncate_point(&model, *back);
                    fs.truncate_after(at).unwrap();
                    model.truncate_after(at);
                }
                Op::Compact(ahead) => {
                    let at = model.first() + ahead;
                    fs.compact(at).unwrap();
                    model.compact(at);
                }
                Op::Reopen => {
                    drop(fs);
                    fs = open(pc.clone(), block_size).unwrap();
                }
            }
        }
        // Then a truncation (and the appends replacing the suffix) with the power cut.
        let at = truncate_point(&model, (seed % 7) + 1);
        let mut after = model.clone();
        after.truncate_after(at);
        let replacement: Vec<Vec<u8>> = (0..3).map(|k| payload(999, k, 50 + k * 100)).collect();
        let mut replaced = after.clone();
        replaced.append(&replacement);
        pc.set_budget(Some(budget));
        let mut states = vec![model.clone()];
        match fs.truncate_after(at) {
            Ok(_) => {
                states = vec![after.clone()];
                match append(&mut fs, &replacement) {
                    Ok(_) => states = vec![replaced.clone()],
                    Err(_) => {
                        // Any prefix of the replacement batch.
                        for k in 0..=replacement.len() {
                            let mut m = after.clone();
                            m.append(&replacement[..k]);
                            states.push(m);
                        }
                    }
                }
            }
            Err(StoreError::InvalidRequest(e)) => panic!("{e}"),
            Err(_) => states.push(after.clone()),
        }
        drop(fs);
        sim.crash(&mut rng);
        pc.set_budget(None);
        let mut fs = open(sim.clone(), block_size).expect("reopen");
        let rep = fs.recovery().clone();
        prop_assert!(rep.lost.is_empty() && rep.damaged.is_empty() && rep.foreign.is_empty(), "{:?}", rep);
        let got = contents(&mut fs);
        prop_assert!(states.contains(&got), "recovered {:?}\nallowed {:?}", got, states);
        // The log keeps working from where it recovered.
        let seqs = append(&mut fs, &[b"next".to_vec()]).unwrap();
        prop_assert_eq!(seqs, vec![got.last + 1]);
        drop(fs);
        let mut fs = open(sim, block_size).unwrap();
        let mut want = got;
        want.append(&[b"next".to_vec()]);
        prop_assert_eq!(contents(&mut fs), want);
    }
}

/// The block file names in the store's directory.
fn blocks(disk: &dyn Disk) -> Vec<String> {
    disk.list(DIR).unwrap()
}

#[test]
fn truncate_keeps_block_files_until_they_reach_the_front() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let disk: Arc<dyn Disk> = sim.clone();
    let mut fs = open(disk.clone(), 1024).unwrap();
    for i in 0..40u64 {
        append(&mut fs, &[vec![i as u8; 100]]).unwrap();
    }
    let before = fs.block_indexes();
    assert!(before.len() >= 4, "{before:?}");
    // Truncate in the middle of the second block (1024-byte blocks hold 6 records of 148
    // bytes): nothing is rewritten or removed, one truncating block is added.
    assert_eq!(fs.truncate_after(9).unwrap(), 40 - 9);
    let st = fs.state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (1, 9, 9));
    assert_eq!(fs.block_indexes().len(), before.len() + 1);
    assert_eq!(blocks(&*disk).len(), before.len() + 1);
    // The next append reuses sequence 10.
    assert_eq!(append(&mut fs, &[b"new10".to_vec()]).unwrap(), vec![10]);
    assert_eq!(fs.load(10).unwrap().unwrap().payload, b"new10");
    assert_eq!(fs.load(11).unwrap(), None);
    drop(fs);
    sim.crash(&mut ChaCha8Rng::seed_from_u64(1));
    let mut fs = open(disk.clone(), 1024).unwrap();
    assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
    assert_eq!(fs.state().last_seq, 10);
    assert_eq!(fs.load(9).unwrap().unwrap().payload, vec![8u8; 100]);
    assert_eq!(fs.load(10).unwrap().unwrap().payload, b"new10");
    // Compacting below the new message removes every older block, emptied ones included.
    fs.compact(10).unwrap();
    assert_eq!(fs.block_indexes().len(), 1);
    assert_eq!(blocks(&*disk).len(), 1);
    drop(fs);
    let mut fs = open(disk, 1024).unwrap();
    assert!(fs.recovery().is_clean());
    let st = fs.state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (10, 10, 1));
    assert_eq!(fs.load(10).unwrap().unwrap().payload, b"new10");
}

#[test]
fn deletes_in_a_truncated_block_still_apply() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let disk: Arc<dyn Disk> = sim.clone();
    let mut fs = open(disk.clone(), 662).unwrap();
    for i in 0..15u64 {
        append(&mut fs, &[vec![i as u8; 10]]).unwrap();
    }
    // The delete of 1..=4 lands in the last block, which the truncation then empties.
    fs.compact(5).unwrap();
    let last = *fs.block_indexes().last().unwrap();
    fs.truncate_after(12).unwrap();
    assert!(fs.block_indexes().contains(&last));
    append(&mut fs, &[b"13".to_vec()]).unwrap();
    drop(fs);
    let mut fs = open(disk, 662).unwrap();
    assert!(fs.recovery().is_clean(), "{:?}", fs.recovery());
    let st = fs.state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (5, 13, 9));
    assert_eq!(fs.load(4).unwrap(), None);
    assert_eq!(fs.load(13).unwrap().unwrap().payload, b"13");
}

#[test]
fn lost_messages_above_the_truncation_are_not_reported() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let disk: Arc<dyn Disk> = sim.clone();
    let mut fs = open(disk.clone(), 4096).unwrap();
    for i in 0..10u64 {
        append(&mut fs, &[vec![i as u8; 100]]).unwrap();
    }
    fs.truncate_after(4).unwrap();
    append(&mut fs, &[b"five".to_vec()]).unwrap();
    let first = fs.block_indexes()[0];
    drop(fs);
    // Damage message 8's record in the first block: it was truncated, so nothing is lost.
    let off = 64 + 7 * 148 + 45;
    sim.flip_bit(&format!("{DIR}/{first}.blk"), off, 3).unwrap();
    let mut fs = open(disk.clone(), 4096).unwrap();
    let rep = fs.recovery().clone();
    assert!(rep.lost.is_empty(), "{rep:?}");
    assert_eq!(contents(&mut fs).msgs.len(), 5);
    drop(fs);
    // Damage message 3 (below the truncation): that one is lost.
    sim.flip_bit(&format!("{DIR}/{first}.blk"), 64 + 2 * 148 + 45, 3).unwrap();
    let fs = open(disk, 4096).unwrap();
    let lost: Vec<u64> = fs.recovery().lost_seqs().into_iter().collect();
    assert_eq!(lost, [3]);
}
