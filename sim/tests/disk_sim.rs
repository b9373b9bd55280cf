//! `SimDisk` follows the durability contract of `weir_core::disk`: unsynced data and
//! undurable names vanish on a crash, torn writes keep a prefix only, ENOSPC changes
//! nothing, and a seeded random-operation model check covers the rest.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;
use weir_core::disk::{Disk, DiskOp};
use weir_sim::disk::{SimDisk, SimDiskConfig};

fn disk() -> SimDisk {
    SimDisk::new(SimDiskConfig::instant())
}

fn torn_disk(torn: f64, garbage: f64) -> SimDisk {
    SimDisk::new(SimDiskConfig { torn_write_prob: torn, torn_garbage_prob: garbage, ..SimDiskConfig::instant() })
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn disk_unsynced_appends_vanish_synced_survive() {
    let d = disk();
    d.append("d/f", b"hello ").unwrap();
    d.sync("d/f").unwrap();
    d.sync_dir("d").unwrap();
    assert_eq!(d.append("d/f", b"world").unwrap(), 11);
    assert_eq!(d.read("d/f").unwrap(), b"hello world");
    d.crash(&mut rng(1));
    assert_eq!(d.read("d/f").unwrap(), b"hello ");
    // Synced appends survive.
    d.append("d/f", b"again").unwrap();
    d.sync("d/f").unwrap();
    d.crash(&mut rng(2));
    assert_eq!(d.read("d/f").unwrap(), b"hello again");
}

#[test]
fn disk_created_file_needs_sync_dir() {
    let d = disk();
    d.write_file("d/new", b"data").unwrap();
    d.sync("d/new").unwrap();
    assert_eq!(d.durable_file_names(), Vec::<String>::new());
    d.crash(&mut rng(1));
    assert!(!d.exists("d/new"));
    assert_eq!(d.file_names(), Vec::<String>::new());

    // Syncing another directory does not help; syncing its own does.
    d.write_file("d/new", b"data").unwrap();
    d.sync("d/new").unwrap();
    d.sync_dir("e").unwrap();
    d.sync_dir("").unwrap();
    d.crash(&mut rng(2));
    assert!(!d.exists("d/new"));
    d.write_file("d/new", b"data").unwrap();
    d.sync("d/new").unwrap();
    d.sync_dir("d").unwrap();
    d.crash(&mut rng(3));
    assert_eq!(d.read("d/new").unwrap(), b"data");

    // Durable name, unsynced contents: the file survives empty.
    d.write_file("d/empty", b"lost").unwrap();
    d.sync_dir("d").unwrap();
    d.crash(&mut rng(4));
    assert_eq!(d.read("d/empty").unwrap(), b"");
}

#[test]
fn disk_rename_needs_sync_dir() {
    let d = disk();
    d.write_file("d/a", b"old").unwrap();
    d.sync("d/a").unwrap();
    d.sync_dir("d").unwrap();
    d.write_file("d/a.tmp", b"new").unwrap();
    d.sync("d/a.tmp").unwrap();
    d.rename("d/a.tmp", "d/a").unwrap();
    assert_eq!(d.read("d/a").unwrap(), b"new");
    assert_eq!(d.list("d").unwrap(), ["a"]);
    d.crash(&mut rng(1));
    assert_eq!(d.read("d/a").unwrap(), b"old");
    assert_eq!(d.list("d").unwrap(), ["a"]);

    d.write_file("d/a.tmp", b"new").unwrap();
    d.sync("d/a.tmp").unwrap();
    d.rename("d/a.tmp", "d/a").unwrap();
    d.sync_dir("d").unwrap();
    d.crash(&mut rng(2));
    assert_eq!(d.read("d/a").unwrap(), b"new");
    assert!(!d.exists("d/a.tmp"));
}

#[test]
fn disk_remove_needs_sync_dir() {
    let d = disk();
    d.write_file("f", b"x").unwrap();
    d.sync("f").unwrap();
    d.sync_dir("").unwrap();
    d.remove("f").unwrap();
    assert!(!d.exists("f"));
    assert_eq!(d.remove("f").unwrap_err().kind(), io::ErrorKind::NotFound);
    d.crash(&mut rng(1));
    assert_eq!(d.read("f").unwrap(), b"x");
    d.remove("f").unwrap();
    d.sync_dir("").unwrap();
    d.crash(&mut rng(2));
    assert!(!d.exists("f"));
    assert_eq!(d.used_bytes(), 0);
}

#[test]
fn disk_overwrite_and_truncate_revert_to_synced_image() {
    let d = torn_disk(1.0, 1.0);
    d.write_file("f", b"0123456789").unwrap();
    d.sync("f").unwrap();
    d.sync_dir("").unwrap();
    d.write_file("f", b"abc").unwrap();
    d.crash(&mut rng(1));
    assert_eq!(d.read("f").unwrap(), b"0123456789");
    d.truncate("f", 4).unwrap();
    d.append("f", b"xyz").unwrap();
    assert_eq!(d.read("f").unwrap(), b"0123xyz");
    d.crash(&mut rng(2));
    assert_eq!(d.read("f").unwrap(), b"0123456789");
    // Growing with zeros.
    d.truncate("f", 12).unwrap();
    d.sync("f").unwrap();
    d.crash(&mut rng(3));
    assert_eq!(d.read("f").unwrap(), b"0123456789\0\0");
}

#[test]
fn disk_torn_tail_keeps_a_prefix_only() {
    let synced = b"synced-part:".to_vec();
    let unsynced: Vec<u8> = (0..100u8).collect();
    let full = [synced.clone(), unsynced.clone()].concat();
    let mut lengths = std::collections::BTreeSet::new();
    let mut garbage_seen = false;
    for seed in 0..200 {
        let garbage = if seed % 2 == 0 { 0.0 } else { 1.0 };
        let d = torn_disk(1.0, garbage);
        d.append("w", &synced).unwrap();
        d.sync("w").unwrap();
        d.sync_dir("").unwrap();
        d.append("w", &unsynced).unwrap();
        d.crash(&mut rng(seed));
        let got = d.read("w").unwrap();
        assert!(got.starts_with(&synced), "seed {seed}: synced image damaged");
        assert!(got.len() <= full.len());
        if garbage == 0.0 {
            assert_eq!(got, full[..got.len()], "seed {seed}: not a prefix");
        } else {
            // Only the last 16 bytes may differ.
            let clean = got.len().saturating_sub(16).max(synced.len());
            assert_eq!(got[..clean], full[..clean], "seed {seed}");
            garbage_seen |= got != full[..got.len()];
        }
        lengths.insert(got.len());
        // What survived is now durable.
        d.crash(&mut rng(seed + 1000));
        assert_eq!(d.read("w").unwrap(), got);
    }
    assert!(lengths.len() > 20, "torn lengths vary: {lengths:?}");
    assert!(garbage_seen);

    // Without torn writes the tail is lost entirely.
    let d = torn_disk(0.0, 1.0);
    d.append("w", &synced).unwrap();
    d.sync("w").unwrap();
    d.sync_dir("").unwrap();
    d.append("w", &unsynced).unwrap();
    d.crash(&mut rng(5));
    assert_eq!(d.read("w").unwrap(), synced);
}

#[test]
fn disk_enospc_changes_nothing() {
    let d = SimDisk::new(SimDiskConfig { capacity_bytes: Some(100), ..SimDiskConfig::instant() });
    d.append("a", &[1; 60]).unwrap();
    d.write_file("b", &[2; 30]).unwrap();
    assert_eq!(d.used_bytes(), 90);
    let names = d.file_names();

    let err = d.append("a", &[3; 11]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert!(err.to_string().contains("ENOSPC"), "{err}");
    assert_eq!(d.write_file("c", &[4; 11]).unwrap_err().kind(), io::ErrorKind::StorageFull);
    assert_eq!(d.write_file("b", &[4; 41]).unwrap_err().kind(), io::ErrorKind::StorageFull);
    assert_eq!(d.truncate("b", 41).unwrap_err().kind(), io::ErrorKind::StorageFull);
    assert_eq!(d.read("a").unwrap(), [1; 60]);
    assert_eq!(d.read("b").unwrap(), [2; 30]);
    assert_eq!(d.used_bytes(), 90);
    assert_eq!(d.file_names(), names);

    // Exactly full is fine; shrinking and removing free space.
    d.append("a", &[3; 10]).unwrap();
    assert_eq!(d.used_bytes(), 100);
    d.write_file("b", &[5; 10]).unwrap();
    d.remove("a").unwrap();
    assert_eq!(d.used_bytes(), 10);
    d.append("c", &[6; 90]).unwrap();
}

#[test]
fn disk_flip_bit_and_truncate_durable_survive_crashes() {
    let d = disk();
    d.append("f", &[0; 8]).unwrap();
    d.sync("f").unwrap();
    d.sync_dir("").unwrap();
    d.append("f", &[0; 8]).unwrap();
    d.flip_bit("f", 2, 3).unwrap();
    d.flip_bit("f", 10, 0).unwrap();
    assert_eq!(d.read("f").unwrap()[2], 8);
    assert_eq!(d.read("f").unwrap()[10], 1);
    assert!(d.flip_bit("f", 16, 0).is_err());
    d.crash(&mut rng(1));
    assert_eq!(d.read("f").unwrap(), [0, 0, 8, 0, 0, 0, 0, 0]);

    // A separate synced image is corrupted too.
    d.write_file("f", b"zzzzzzzzzz").unwrap();
    d.flip_bit("f", 0, 0).unwrap();
    assert_eq!(d.read("f").unwrap()[0], b'z' ^ 1);
    d.crash(&mut rng(2));
    assert_eq!(d.read("f").unwrap(), [1, 0, 8, 0, 0, 0, 0, 0]);

    d.truncate_durable("f", 3).unwrap();
    assert_eq!(d.read("f").unwrap(), [1, 0, 8]);
    d.crash(&mut rng(3));
    assert_eq!(d.read("f").unwrap(), [1, 0, 8]);
    assert!(d.truncate_durable("missing", 0).is_err());
}

#[test]
fn disk_latency_and_paths() {
    let d = SimDisk::new(SimDiskConfig {
        read_latency: Duration::from_micros(1),
        write_latency: Duration::from_micros(2),
        sync_latency: Duration::from_micros(3),
        ..SimDiskConfig::default()
    });
    assert_eq!(d.latency(DiskOp::Sync, 0), Duration::from_micros(3));
    d.set_extra_latency(Duration::from_millis(5));
    assert_eq!(d.latency(DiskOp::Write, 100), Duration::from_micros(5_002));
    d.set_extra_latency(Duration::ZERO);
    assert_eq!(d.latency(DiskOp::Read, 100), Duration::from_micros(1));

    for bad in ["", "/abs", "a/../b"] {
        assert_eq!(d.append(bad, b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
    d.append("x/b", b"1").unwrap();
    d.append("x/a", b"22").unwrap();
    d.append("x/sub/c", b"3").unwrap();
    d.append("top", b"4").unwrap();
    assert_eq!(d.list("x").unwrap(), ["a", "b"]);
    assert_eq!(d.list("").unwrap(), ["top"]);
    assert_eq!(d.list("nothing").unwrap(), Vec::<String>::new());
    assert_eq!(d.read_at("x/a", 1, 10).unwrap(), b"2");
    assert_eq!(d.read_at("x/a", 5, 10).unwrap(), b"");
    assert_eq!(d.len("x/a").unwrap(), 2);
    assert_eq!(d.read("nope").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(d.sync("nope").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(d.rename("nope", "x").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(d.file_names(), ["top", "x/a", "x/b", "x/sub/c"]);
}

/// A reference model of the contract, written the obvious way.
#[derive(Default)]
struct Model {
    next: u64,
    current: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    /// id -> (data, synced)
    files: BTreeMap<u64, (Vec<u8>, Vec<u8>)>,
}

impl Model {
    fn create(&mut self, p: &str) -> u64 {
        if let Some(&id) = self.current.get(p) {
            return id;
        }
        self.next += 1;
        self.files.insert(self.next, (Vec::new(), Vec::new()));
        self.current.insert(p.to_string(), self.next);
        self.next
    }

    fn data(&mut self, p: &str) -> Option<&mut (Vec<u8>, Vec<u8>)> {
        let id = *self.current.get(p)?;
        self.files.get_mut(&id)
    }
}

const PATHS: [&str; 6] = ["a/x", "a/y", "a/z", "b/x", "b/w", "top"];
const DIRS: [&str; 3] = ["a", "b", ""];

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Apply `steps` random operations with random crashes to a `SimDisk` and the model,
/// checking after every crash that each file equals (torn = 0) or extends (torn > 0,
/// garbage = 0) its last synced image and that the namespace is the durable one.
fn run_model(seed: u64, torn: f64, steps: usize) {
    let mut r = rng(seed);
    let d = torn_disk(torn, 0.0);
    let mut m = Model::default();
    for step in 0..steps {
        let p = PATHS[r.gen_range(0..PATHS.len())];
        let ctx = format!("seed {seed} step {step}");
        match r.gen_range(0..100) {
            0..=29 => {
                let bytes: Vec<u8> = (0..r.gen_range(0..40)).map(|_| r.r#gen()).collect();
                d.append(p, &bytes).unwrap();
                let id = m.create(p);
                m.files.get_mut(&id).unwrap().0.extend_from_slice(&bytes);
            }
            30..=37 => {
                let bytes: Vec<u8> = (0..r.gen_range(0..40)).map(|_| r.r#gen()).collect();
                d.write_file(p, &bytes).unwrap();
                let id = m.create(p);
                m.files.get_mut(&id).unwrap().0 = bytes;
            }
            38..=42 => {
                let len = r.gen_range(0..60u64);
                let res = d.truncate(p, len);
                match m.data(p) {
                    Some(f) => {
                        res.unwrap();
                        f.0.resize(len as usize, 0);
                    }
                    None => assert_eq!(res.unwrap_err().kind(), io::ErrorKind::NotFound, "{ctx}"),
                }
            }
            43..=62 => {
                let res = d.sync(p);
                match m.data(p) {
                    Some(f) => {
                        res.unwrap();
                        f.1 = f.0.clone();
                    }
                    None => assert!(res.is_err(), "{ctx}"),
                }
            }
            63..=77 => {
                let dir = DIRS[r.gen_range(0..DIRS.len())];
                d.sync_dir(dir).unwrap();
                m.durable.retain(|p, _| parent(p) != dir);
                for (p, id) in m.current.iter().filter(|(p, _)| parent(p) == dir) {
                    m.durable.insert(p.clone(), *id);
                }
            }
            78..=85 => {
                let to = PATHS[r.gen_range(0..PATHS.len())];
                let res = d.rename(p, to);
                match m.current.remove(p) {
                    Some(id) => {
                        res.unwrap();
                        m.current.insert(to.to_string(), id);
                    }
                    None => assert!(res.is_err(), "{ctx}"),
                }
            }
            86..=91 => {
                let res = d.remove(p);
                match m.current.remove(p) {
                    Some(_) => res.unwrap(),
                    None => assert!(res.is_err(), "{ctx}"),
                }
            }
            _ => {
                d.crash(&mut r);
                m.current = m.durable.clone();
                let mut decided = BTreeMap::new();
                for (path, id) in &m.durable {
                    let got = d.read(path).unwrap_or_else(|e| panic!("{ctx}: {path} lost: {e}"));
                    let (data, synced) = &m.files[id];
                    if torn == 0.0 || !data.starts_with(synced) {
                        assert_eq!(&got, synced, "{ctx}: {path} is not its synced image");
                    } else {
                        assert!(got.starts_with(synced), "{ctx}: {path} lost synced bytes");
                        assert!(data.starts_with(&got), "{ctx}: {path} is not a prefix of what was written");
                    }
                    decided.insert(*id, got);
                }
                m.files = decided.into_iter().map(|(id, got)| (id, (got.clone(), got))).collect();
            }
        }
        // What operations see always matches the model.
        assert_eq!(d.file_names(), m.current.keys().cloned().collect::<Vec<_>>(), "{ctx}");
        for (path, id) in &m.current {
            assert_eq!(d.read(path).unwrap(), m.files[id].0, "{ctx}: {path}");
        }
        assert_eq!(d.durable_file_names(), m.durable.keys().cloned().collect::<Vec<_>>(), "{ctx}");
        for (path, id) in &m.durable {
            assert_eq!(d.durable_contents(path).unwrap(), m.files[id].1, "{ctx}: durable {path}");
        }
        let used: u64 = {
            let ids: std::collections::BTreeSet<_> = m.current.values().collect();
            ids.iter().map(|id| m.files[id].0.len() as u64).sum()
        };
        assert_eq!(d.used_bytes(), used, "{ctx}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn disk_crash_leaves_exactly_synced_images(seed in any::<u64>()) {
        run_model(seed, 0.0, 200);
    }

    #[test]
    fn disk_torn_crash_leaves_synced_prefixes(seed in any::<u64>()) {
        run_model(seed, 0.7, 200);
    }
}

#[test]
fn a_process_restart_after_a_failed_fsync_finds_only_durable_data() {
    // Even on a disk that tears every crashed write, nothing unsynced is kept, and no
    // damage is recorded: the unsynced bytes are simply gone.
    let d = torn_disk(1.0, 1.0);
    d.append("d/f", b"durable ").unwrap();
    d.sync("d/f").unwrap();
    d.sync_dir("d").unwrap();
    d.append("d/f", b"unsynced").unwrap();
    d.append("d/g", b"never named durably").unwrap();
    d.lose_unsynced();
    assert_eq!(d.read("d/f").unwrap(), b"durable ");
    assert!(!d.exists("d/g"));
    assert!(d.damage().is_empty());
}
