//! `FileStore` on `SimDisk` with damaged durable data: a bit flipped, or a block cut,
//! at a random offset of a random block. Reopening must report exactly the sequences
//! whose records were damaged (never skipping or renumbering anything), load every
//! other message intact and keep serving. Damage at the end of the last block is a torn
//! write: cut off and reported as such. The test reads block layouts with its own parser
//! of the documented record format.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use weir_core::disk::Disk;
use weir_core::store::{FileStore, FileStoreConfig, MsgStore, RecoveryReport, StoreLimits, StoreMemory};
use weir_sim::disk::{SimDisk, SimDiskConfig};

const DIR: &str = "n/s";
const SUBJECTS: [&str; 3] = ["a", "b.c", "d.e.f"];
const KIND_MSG: u8 = 2;
const KIND_DELETE: u8 = 3;

#[derive(Clone, Copy, Debug)]
struct Rec {
    off: u64,
    len: u64,
    kind: u8,
    seq: u64,
}

/// Records of an intact block file (`len u32` at 0, `kind` at 4, `seq u64` at 16).
fn records(data: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(data[pos + 16..pos + 24].try_into().unwrap());
        out.push(Rec { off: pos as u64, len: len as u64, kind: data[pos + 4], seq });
        pos += len;
    }
    assert_eq!(pos, data.len());
    out
}

fn block_files(sim: &SimDisk) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = sim
        .durable_file_names()
        .into_iter()
        .filter_map(|p| {
            let name = p.strip_prefix(&format!("{DIR}/"))?.to_string();
            Some((name.strip_suffix(".blk")?.parse().ok()?, p))
        })
        .collect();
    v.sort();
    v
}

fn cfg(block_size: u64) -> FileStoreConfig {
    FileStoreConfig { block_size, scan_chunk: 256, read_ahead: 128, ..Default::default() }
}

fn mem() -> StoreMemory {
    StoreMemory::standalone(1 << 20, 1 << 20)
}

fn open(sim: &Arc<SimDisk>, block_size: u64) -> FileStore {
    FileStore::open(sim.clone(), DIR, StoreLimits::default(), cfg(block_size), mem()).expect("open")
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip { at: f64, bit: u8 },
    Truncate { at: f64 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64, 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (0.0..1.0f64).prop_map(|at| Damage::Truncate { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn damage_is_reported_exactly(
        block_size in 300u64..1500,
        msgs in prop::collection::vec((0..SUBJECTS.len(), 0usize..200), 3..80),
        which in any::<prop::sample::Index>(),
        damage in damage(),
    ) {
        let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
        let mut fs = open(&sim, block_size);
        let mut sent = BTreeMap::new();
        for (i, (s, len)) in msgs.iter().enumerate() {
            let body: Vec<u8> = (0..*len).map(|k| (i * 13 + k) as u8).collect();
            let seq = fs.append(SUBJECTS[*s], b"", &body, i as i64).unwrap();
            sent.insert(seq, (SUBJECTS[*s], body));
        }
        drop(fs);

        let files = block_files(&sim);
        let k = which.index(files.len());
        let (index, path) = files[k].clone();
        let is_last = k + 1 == files.len();
        let data = sim.durable_contents(&path).unwrap();
        let recs = records(&data);
        let at = |f: f64| ((f * data.len() as f64) as u64).min(data.len() as u64 - 1);
        let hit: Vec<Rec> = match damage {
            Damage::Flip { at: f, bit } => {
                let o = at(f);
                sim.flip_bit(&path, o, bit).unwrap();
                recs.iter().filter(|r| r.off <= o && o < r.off + r.len).copied().collect()
            }
            Damage::Truncate { at: f } => {
                let t = at(f);
                sim.truncate_durable(&path, t).unwrap();
                recs.iter().filter(|r| r.off + r.len > t).copied().collect()
            }
        };
        let hit_msgs: BTreeSet<u64> = hit.iter().filter(|r| r.kind == KIND_MSG).map(|r| r.seq).collect();
        // Torn-tail cases: the end of the last block, with nothing good after the damage
        // (a cut through the last block's header removes the whole file).
        let last_rec = recs.last().unwrap();
        let torn = is_last
            && match damage {
                Damage::Truncate { .. } => true,
                Damage::Flip { .. } => hit[0].off == last_rec.off && last_rec.off > 0,
            };

        let mut fs = open(&sim, block_size);
        let rep: RecoveryReport = fs.recovery().clone();
        prop_assert!(rep.foreign.is_empty(), "{:?}", rep);
        if torn {
            prop_assert!(rep.lost.is_empty(), "torn tail reported as lost: {:?}", rep);
            prop_assert!(rep.damaged.is_empty(), "{:?}", rep);
            if let Damage::Flip { .. } = damage {
                let t = rep.truncated.clone().expect("a damaged final record is cut off");
                prop_assert_eq!((t.block, t.offset), (index, hit[0].off));
            }
        } else {
            prop_assert_eq!(rep.lost_seqs(), hit_msgs.clone(), "lost sequences; report {:?}", rep);
            prop_assert!(rep.lost.iter().all(|l| l.block == index), "{:?}", rep);
            prop_assert!(!rep.damaged.is_empty(), "damage must be reported: {:?}", rep);
            prop_assert!(rep.damaged.iter().all(|d| d.block == index), "{:?}", rep);
            prop_assert!(rep.truncated.is_none());
        }
        // Everything else loads intact; nothing is renumbered.
        for (&seq, (subject, body)) in &sent {
            let got = fs.load(seq).unwrap();
            if hit_msgs.contains(&seq) {
                prop_assert!(got.is_none(), "damaged seq {} still loads", seq);
            } else {
                let m = got.expect("undamaged message");
                prop_assert_eq!((m.seq, m.subject.as_str(), &m.payload), (seq, *subject, body));
            }
        }
        // The store keeps serving, and a second open sees the same store.
        let st = fs.state();
        let seq = fs.append("after", b"", b"x", 0).unwrap();
        prop_assert_eq!(seq, st.last_seq + 1);
        let before = fs.state();
        drop(fs);
        let mut fs = open(&sim, block_size);
        prop_assert_eq!(fs.state(), before);
        prop_assert_eq!(fs.load(seq).unwrap().unwrap().payload, b"x".to_vec());
        if !torn && sim.exists(&path) {
            // Reported again while the damaged block is still there (a block left with
            // nothing live at the front is reclaimed like any emptied block).
            prop_assert_eq!(fs.recovery().lost_seqs(), hit_msgs);
        }
    }
}

/// A store with messages 1..=10, message 3 deleted, then 11..=15: the delete record sits
/// in the middle of the single block. Returns the disk, the block path and the record.
fn store_with_delete() -> (Arc<SimDisk>, String, Rec) {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let mut fs = open(&sim, 1 << 20);
    for i in 0..10u8 {
        fs.append("a", b"", &[i; 10], 0).unwrap();
    }
    assert!(fs.delete(3).unwrap());
    for i in 10..15u8 {
        fs.append("a", b"", &[i; 10], 0).unwrap();
    }
    drop(fs);
    let (_, path) = block_files(&sim).pop().unwrap();
    let recs = records(&sim.durable_contents(&path).unwrap());
    let del = *recs.iter().find(|r| r.kind == KIND_DELETE).unwrap();
    assert_eq!(del.seq, 3);
    (sim, path, del)
}

#[test]
fn delete_record_with_readable_header_still_applies() {
    let (sim, path, del) = store_with_delete();
    sim.flip_bit(&path, del.off + del.len - 3, 2).unwrap(); // in the checksum trailer
    let mut fs = open(&sim, 1 << 20);
    let rep = fs.recovery().clone();
    assert!(rep.lost.is_empty());
    assert_eq!(rep.damaged.len(), 1);
    assert_eq!((rep.damaged[0].offset, rep.damaged[0].unreadable_records), (del.off, Some(0)));
    assert!(fs.load(3).unwrap().is_none(), "the delete still applies");
    assert_eq!(fs.state().msgs, 14);
}

#[test]
fn unreadable_delete_record_is_counted() {
    let (sim, path, del) = store_with_delete();
    sim.flip_bit(&path, del.off + 17, 0).unwrap(); // in the header (the sequence)
    let mut fs = open(&sim, 1 << 20);
    let rep = fs.recovery().clone();
    assert!(rep.lost.is_empty(), "no message record was damaged");
    assert_eq!(rep.damaged.len(), 1);
    let d = &rep.damaged[0];
    assert_eq!((d.block, d.offset, d.len, d.unreadable_records), (1, del.off, del.len, Some(1)));
    // The documented limit: the message that record deleted is visible again.
    assert!(fs.load(3).unwrap().is_some());
    assert_eq!(fs.state().msgs, 15);
}

#[test]
fn middle_block_removed_from_disk_is_reported_as_lost() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let mut fs = open(&sim, 400);
    for i in 0..40u8 {
        fs.append("a", b"", &[i; 40], 0).unwrap();
    }
    drop(fs);
    let files = block_files(&sim);
    assert!(files.len() >= 4);
    let (index, path) = files[1].clone();
    let seqs: Vec<u64> =
        records(&sim.durable_contents(&path).unwrap()).iter().filter(|r| r.kind == KIND_MSG).map(|r| r.seq).collect();
    sim.truncate_durable(&path, 0).unwrap();
    let mut fs = open(&sim, 400);
    let rep = fs.recovery().clone();
    assert_eq!(rep.lost.len(), 1);
    assert_eq!((rep.lost[0].block, rep.lost[0].seqs.clone()), (index, seqs[0]..=*seqs.last().unwrap()));
    assert_eq!(rep.damaged.len(), 1);
    assert_eq!(fs.state().msgs, 40 - seqs.len() as u64);
    assert_eq!(fs.state().last_seq, 40);
    assert!(fs.load(seqs[0] - 1).unwrap().is_some() && fs.load(seqs.last().unwrap() + 1).unwrap().is_some());
    // The empty file is left in place for inspection.
    assert!(sim.exists(&path));
}

/// Found by the `store-crashes` scenario (seed 1982): the last message record of the
/// store, damaged in its header, followed only by delete records. Without the block's
/// message count in the delete records its sequence was forgotten and handed out again.
#[test]
fn damaged_last_message_followed_by_deletes_is_lost_not_reused() {
    let sim = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let mut fs = open(&sim, 1 << 20);
    for i in 0..5u8 {
        fs.append("a", b"", &[i; 10], 0).unwrap();
    }
    assert!(fs.delete(2).unwrap() && fs.delete(4).unwrap());
    drop(fs);
    let (_, path) = block_files(&sim).pop().unwrap();
    let recs = records(&sim.durable_contents(&path).unwrap());
    let last_msg = *recs.iter().rfind(|r| r.kind == KIND_MSG).unwrap();
    assert_eq!(last_msg.seq, 5);
    assert!(recs.last().unwrap().kind == KIND_DELETE);
    sim.flip_bit(&path, last_msg.off + 17, 1).unwrap(); // in the header (the sequence)
    let mut fs = open(&sim, 1 << 20);
    assert_eq!(fs.recovery().lost_seqs(), BTreeSet::from([5]));
    assert_eq!(fs.state().last_seq, 5);
    assert_eq!(fs.append("a", b"", b"x", 0).unwrap(), 6, "sequence 5 must not be reused");
}
