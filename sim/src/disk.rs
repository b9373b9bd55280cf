//! `SimDisk`: an in-memory [`Disk`] that keeps written-not-synced data apart from durable
//! data, so that a simulated power cut ([`SimDisk::crash`]) loses exactly what the
//! durability contract in [`weir_core::disk`] allows it to lose.
//!
//! Model:
//! - Two namespaces map paths to file ids: `current` (what operations see) and `durable`
//!   (what survives a crash). Creating, renaming and removing change `current`;
//!   [`Disk::sync_dir`] copies the entries directly under a directory (and their absence)
//!   into `durable`.
//! - Each file has `data` (what reads see) and a synced image (what survives a crash);
//!   [`Disk::sync`] makes the synced image equal to `data`. The image is kept as a prefix
//!   length of `data` while only appends happened since the last sync, so the common
//!   append-then-sync cycle neither copies nor doubles memory.
//! - A crash replaces `current` by `durable` and every file's data by its synced image,
//!   except that, with probability `torn_write_prob`, a file with unsynced appended bytes
//!   keeps a random prefix of them, whose last bytes (up to 16) are random garbage with
//!   probability `torn_garbage_prob` (a torn sector). Files never made durable vanish.
//!
//! - Every damage the disk does to data (a flipped bit, a cut durable file, the garbage
//!   of a torn write) is kept in an ordered record, [`SimDisk::damage`], so checkers
//!   can hold the store's recovery reports to what was really damaged.
//!
//! `SimDisk` does not depend on madsim, so it is unit-tested in the normal build. Under
//! `--cfg madsim`, [`SimDisks`] is the madsim plugin that gives each node its disk and
//! crashes it when the node is killed.

use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use weir_core::disk::{self, Disk, DiskOp};

#[cfg(madsim)]
pub use self::plugin::SimDisks;

/// Most bytes at the end of a torn write that are replaced by garbage.
const TORN_SECTOR: usize = 16;

/// Configuration of a simulated disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimDiskConfig {
    /// Base latency of a read.
    pub read_latency: Duration,
    /// Base latency of a write (append, write_file, truncate, rename, remove).
    pub write_latency: Duration,
    /// Base latency of a file or directory sync.
    pub sync_latency: Duration,
    /// Total bytes the disk holds (`None`: unlimited); writes past it fail with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// Chance that a crash keeps a random prefix of a file's unsynced appended bytes.
    pub torn_write_prob: f64,
    /// Chance that such a kept prefix ends in up to 16 bytes of garbage.
    pub torn_garbage_prob: f64,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            read_latency: Duration::from_micros(50),
            write_latency: Duration::from_micros(20),
            sync_latency: Duration::from_micros(500),
            capacity_bytes: None,
            torn_write_prob: 0.0,
            torn_garbage_prob: 0.5,
        }
    }
}

impl SimDiskConfig {
    /// A disk with no latency, no capacity limit and no torn writes (for tests).
    pub fn instant() -> Self {
        SimDiskConfig {
            read_latency: Duration::ZERO,
            write_latency: Duration::ZERO,
            sync_latency: Duration::ZERO,
            ..Default::default()
        }
    }
}

type FileId = u64;

/// What the disk did to a file's bytes (see [`Damage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// [`SimDisk::flip_bit`]: one bit of one byte flipped.
    FlipBit,
    /// [`SimDisk::truncate_durable`]: the durable image cut (lost durable writes).
    Cut,
    /// A crash kept a torn write whose last bytes are garbage ([`SimDisk::crash`]).
    TornGarbage,
}

/// One damage the disk did, in the order done: bytes `offset..end` of `path` are not what
/// was written (for a cut, `offset` is the new length and `end` the old one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The file's path.
    pub path: String,
    /// First damaged byte.
    pub offset: u64,
    /// One past the last damaged byte.
    pub end: u64,
    /// What was done.
    pub kind: DamageKind,
}

/// What survives a crash of a file's contents.
#[derive(Clone, Debug)]
enum Synced {
    /// The first `n` bytes of `data` (only appends since the last sync).
    Prefix(usize),
    /// A separate image (the file was overwritten or cut below its synced length).
    Own(Vec<u8>),
}

#[derive(Debug)]
struct FileData {
    data: Vec<u8>,
    synced: Synced,
}

impl FileData {
    fn new() -> Self {
        FileData { data: Vec::new(), synced: Synced::Prefix(0) }
    }

    fn synced_image(&self) -> &[u8] {
        match &self.synced {
            Synced::Prefix(n) => &self.data[..*n],
            Synced::Own(v) => v,
        }
    }

    /// About to change bytes below the synced length: give the image its own copy.
    fn detach(&mut self) {
        if let Synced::Prefix(n) = self.synced
            && n > 0
        {
            self.synced = Synced::Own(self.data[..n].to_vec());
        }
    }

    /// Length of the synced image when `data` only appended to it since.
    fn appended_past_synced(&self) -> Option<usize> {
        match &self.synced {
            Synced::Prefix(n) if self.data.len() > *n => Some(*n),
            Synced::Own(v) if self.data.len() > v.len() && self.data.starts_with(v) => Some(v.len()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct State {
    config: SimDiskConfig,
    extra_latency: Duration,
    next_id: FileId,
    current: BTreeMap<String, FileId>,
    durable: BTreeMap<String, FileId>,
    files: BTreeMap<FileId, FileData>,
    /// Every damage done so far, in order.
    damage: Vec<Damage>,
}

impl State {
    fn id(&self, path: &str) -> io::Result<FileId> {
        check_path(path)?;
        self.current.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn file(&self, path: &str) -> io::Result<&FileData> {
        let id = self.id(path)?;
        Ok(&self.files[&id])
    }

    fn file_mut(&mut self, path: &str) -> io::Result<&mut FileData> {
        let id = self.id(path)?;
        Ok(self.files.get_mut(&id).expect("file of a live path"))
    }

    /// The file at `path`, created (empty) if absent.
    fn create(&mut self, path: &str) -> io::Result<FileId> {
        check_path(path)?;
        if let Some(&id) = self.current.get(path) {
            return Ok(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.files.insert(id, FileData::new());
        self.current.insert(path.to_string(), id);
        Ok(id)
    }

    /// Bytes in files reachable from the current namespace.
    fn used(&self) -> u64 {
        let ids: BTreeSet<FileId> = self.current.values().copied().collect();
        ids.iter().map(|id| self.files[id].data.len() as u64).sum()
    }

    /// Fail with ENOSPC if the disk cannot grow by `growth` bytes.
    fn reserve(&self, growth: u64) -> io::Result<()> {
        match self.config.capacity_bytes {
            Some(cap) if growth > 0 && self.used() + growth > cap => {
                Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device (ENOSPC)"))
            }
            _ => Ok(()),
        }
    }

    /// Drop files no namespace refers to.
    fn collect_garbage(&mut self) {
        let live: BTreeSet<FileId> = self.current.values().chain(self.durable.values()).copied().collect();
        self.files.retain(|id, _| live.contains(id));
    }

    /// The file at `path` in the current namespace, else in the durable one.
    fn any_id(&self, path: &str) -> io::Result<FileId> {
        self.current.get(path).or_else(|| self.durable.get(path)).copied().ok_or_else(|| not_found(path))
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {path}"))
}

fn check_path(path: &str) -> io::Result<()> {
    // A two-byte window scan first: most paths have no "..", and this runs on every disk
    // call (`str::contains` builds a substring searcher each time: ~370 instructions).
    let dots = path.as_bytes().windows(2).any(|w| w == b"..");
    if path.is_empty() || path.starts_with('/') || (dots && path.split('/').any(|c| c == "..")) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad disk path {path:?}")));
    }
    Ok(())
}

/// An in-memory disk with durable and written-not-synced data kept apart.
#[derive(Debug)]
pub struct SimDisk {
    state: Mutex<State>,
}

impl Default for SimDisk {
    fn default() -> Self {
        SimDisk::new(SimDiskConfig::default())
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new(config: SimDiskConfig) -> Self {
        SimDisk {
            state: Mutex::new(State {
                config,
                extra_latency: Duration::ZERO,
                next_id: 1,
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                files: BTreeMap::new(),
                damage: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> SimDiskConfig {
        self.lock().config.clone()
    }

    /// Replace the configuration (files are kept).
    pub fn set_config(&self, config: SimDiskConfig) {
        self.lock().config = config;
    }

    /// Add `extra` to every operation's latency (a slow disk; zero restores).
    pub fn set_extra_latency(&self, extra: Duration) {
        self.lock().extra_latency = extra;
    }

    /// A power cut: keep only what was durable, with torn writes as configured.
    pub fn crash(&self, rng: &mut ChaCha8Rng) {
        let torn_p = self.lock().config.torn_write_prob;
        self.crash_with(rng, torn_p);
    }

    /// Everything not yet durable is gone, with no torn write: what a process restarted
    /// after a failed fsync may find. Once an fsync failed, the kernel may have dropped
    /// the dirty pages it could not write (or marked them clean while the disk never got
    /// them: "fsyncgate"), so nothing unsynced can be trusted; the strict reading is that
    /// the restarted process reads only what was durable.
    pub fn lose_unsynced(&self) {
        // No draw is taken with a zero torn-write chance.
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        self.crash_with(&mut rng, 0.0);
    }

    fn crash_with(&self, rng: &mut ChaCha8Rng, torn_p: f64) {
        let mut st = self.lock();
        let st = &mut *st;
        st.current = st.durable.clone();
        let torn_p = torn_p.clamp(0.0, 1.0);
        let garbage_p = st.config.torn_garbage_prob.clamp(0.0, 1.0);
        let ids: BTreeMap<FileId, String> = st.durable.iter().map(|(p, id)| (*id, p.clone())).collect();
        for (id, path) in ids {
            let f = st.files.get_mut(&id).expect("file of a durable path");
            match f.appended_past_synced() {
                Some(synced_len) if torn_p > 0.0 && rng.gen_bool(torn_p) => {
                    let keep = rng.gen_range(0..=f.data.len() - synced_len);
                    f.data.truncate(synced_len + keep);
                    if keep > 0 && garbage_p > 0.0 && rng.gen_bool(garbage_p) {
                        let n = rng.gen_range(1..=keep.min(TORN_SECTOR));
                        let end = f.data.len();
                        rng.fill_bytes(&mut f.data[end - n..]);
                        st.damage.push(Damage {
                            path,
                            offset: (end - n) as u64,
                            end: end as u64,
                            kind: DamageKind::TornGarbage,
                        });
                    }
                }
                _ => {
                    f.data = match std::mem::replace(&mut f.synced, Synced::Prefix(0)) {
                        Synced::Prefix(n) => {
                            f.data.truncate(n);
                            std::mem::take(&mut f.data)
                        }
                        Synced::Own(v) => v,
                    };
                }
            }
            f.synced = Synced::Prefix(f.data.len());
        }
        st.collect_garbage();
    }

    /// Flip bit `bit` (0..8) of byte `offset` of `path`, in both the visible data and the
    /// synced image (a latent sector error that survives crashes).
    pub fn flip_bit(&self, path: &str, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.lock();
        let id = st.any_id(path)?;
        let f = st.files.get_mut(&id).expect("file of a live path");
        let (off, mask) = (offset as usize, 1u8 << (bit % 8));
        let mut hit = false;
        if let Some(b) = f.data.get_mut(off) {
            *b ^= mask;
            hit = true;
        }
        if let Synced::Own(v) = &mut f.synced
            && let Some(b) = v.get_mut(off)
        {
            *b ^= mask;
            hit = true;
        }
        if !hit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} is past the end of {path}"),
            ));
        }
        st.damage.push(Damage { path: path.to_string(), offset, end: offset + 1, kind: DamageKind::FlipBit });
        Ok(())
    }

    /// Cut both the synced image and the visible data of `path` to at most `len` bytes
    /// (lost durable writes).
    pub fn truncate_durable(&self, path: &str, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        let id = st.any_id(path)?;
        let f = st.files.get_mut(&id).expect("file of a live path");
        let len = len as usize;
        let old = f.synced_image().len().max(f.data.len());
        match &mut f.synced {
            Synced::Prefix(n) => *n = (*n).min(len),
            Synced::Own(v) => v.truncate(len),
        }
        f.data.truncate(len);
        if old > len {
            st.damage.push(Damage {
                path: path.to_string(),
                offset: len as u64,
                end: old as u64,
                kind: DamageKind::Cut,
            });
        }
        Ok(())
    }

    /// Every damage done to this disk's data so far, oldest first (flipped bits, cuts of
    /// durable files, torn-write garbage). Only grows; entries are never rewritten.
    pub fn damage(&self) -> Vec<Damage> {
        self.lock().damage.clone()
    }

    /// The damage done since the first `seen` entries of [`SimDisk::damage`].
    pub fn damage_since(&self, seen: usize) -> Vec<Damage> {
        self.lock().damage.get(seen..).map(<[Damage]>::to_vec).unwrap_or_default()
    }

    /// Bytes held by the files in the current namespace.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// Every path in the current namespace, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.lock().current.keys().cloned().collect()
    }

    /// Every path in the durable namespace (what a crash now would leave), sorted.
    pub fn durable_file_names(&self) -> Vec<String> {
        self.lock().durable.keys().cloned().collect()
    }

    /// The synced image of the file at `path` in the durable namespace.
    pub fn durable_contents(&self, path: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let id = st.durable.get(path)?;
        Some(st.files[id].synced_image().to_vec())
    }
}

impl Disk for SimDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        Ok(self.lock().file(path)?.data.clone())
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let data = &st.file(path)?.data;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            check_path(path)?;
            st.reserve(data.len() as u64)?;
            let id = st.create(path)?;
            let f = st.files.get_mut(&id).expect("file just created");
            f.data.extend_from_slice(data);
            Ok(f.data.len() as u64)
        })
    }

    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            check_path(path)?;
            let old = st.current.get(path).map_or(0, |id| st.files[id].data.len());
            st.reserve((data.len() as u64).saturating_sub(old as u64))?;
            let id = st.create(path)?;
            let f = st.files.get_mut(&id).expect("file just created");
            f.detach();
            f.data.clear();
            f.data.extend_from_slice(data);
            Ok(())
        })
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            let old = st.file(path)?.data.len() as u64;
            st.reserve(len.saturating_sub(old))?;
            let f = st.file_mut(path)?;
            let len = len as usize;
            if matches!(f.synced, Synced::Prefix(n) if len < n) {
                f.detach();
            }
            f.data.resize(len, 0);
            Ok(())
        })
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            let f = st.file_mut(path)?;
            f.synced = Synced::Prefix(f.data.len());
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            let st = &mut *st;
            st.durable.retain(|p, _| disk::parent(p) != dir);
            for (p, id) in st.current.iter().filter(|(p, _)| disk::parent(p) == dir) {
                st.durable.insert(p.clone(), *id);
            }
            st.collect_garbage();
            Ok(())
        })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            check_path(to)?;
            let id = st.id(from)?;
            st.current.remove(from);
            st.current.insert(to.to_string(), id);
            st.collect_garbage();
            Ok(())
        })
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        // Disk contents are the simulated world's memory, not the node's.
        crate::heap::outside(|| {
            let mut st = self.lock();
            st.id(path)?;
            st.current.remove(path);
            st.collect_garbage();
            Ok(())
        })
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let st = self.lock();
        let mut names: Vec<String> = st
            .current
            .keys()
            .filter(|p| disk::parent(p) == dir)
            .map(|p| p.rsplit_once('/').map_or(p.as_str(), |(_, n)| n).to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(self.lock().file(path)?.data.len() as u64)
    }

    fn latency(&self, op: DiskOp, _bytes: usize) -> Duration {
        let st = self.lock();
        let base = match op {
            DiskOp::Read => st.config.read_latency,
            DiskOp::Write => st.config.write_latency,
            DiskOp::Sync => st.config.sync_latency,
        };
        base + st.extra_latency
    }
}

/// A disk whose operations all fail once a budget of operations is spent: the power
/// went out at that point (what was not synced is then dropped by `SimDisk::crash`).
pub struct PowerCut {
    inner: Arc<SimDisk>,
    budget: Mutex<Option<u64>>,
}

impl PowerCut {
    /// Wrap `inner` with no budget (nothing fails until one is set).
    pub fn new(inner: Arc<SimDisk>) -> Self {
        PowerCut { inner, budget: Mutex::new(None) }
    }

    /// The disk underneath.
    pub fn inner(&self) -> &Arc<SimDisk> {
        &self.inner
    }

    /// Allow `ops` more operations before every operation fails (`None`: no limit).
    pub fn set_budget(&self, ops: Option<u64>) {
        *self.budget.lock().unwrap() = ops;
    }

    fn tick(&self) -> io::Result<()> {
        match &mut *self.budget.lock().unwrap() {
            Some(0) => Err(io::Error::other("power cut")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Disk for PowerCut {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.tick()?;
        self.inner.read(path)
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.tick()?;
        self.inner.read_at(path, offset, len)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.tick()?;
        self.inner.append(path, data)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.tick()?;
        self.inner.write_file(path, data)
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.tick()?;
        self.inner.truncate(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.tick()?;
        self.inner.sync(path)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.tick()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.tick()?;
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.tick()?;
        self.inner.list(dir)
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.tick()?;
        self.inner.len(path)
    }
    fn latency(&self, op: DiskOp, bytes: usize) -> Duration {
        self.inner.latency(op, bytes)
    }
}

#[cfg(madsim)]
mod plugin {
    use super::{SimDisk, SimDiskConfig};
    use madsim::task::NodeId;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};

    /// The madsim plugin holding one [`SimDisk`] per node; killing a node crashes its disk.
    ///
    /// Register it with `rt.add_simulator::<SimDisks>()`, then reach it from inside the
    /// simulation with `madsim::plugin::simulator::<SimDisks>()`.
    pub struct SimDisks {
        inner: Mutex<Inner>,
    }

    struct Inner {
        disks: BTreeMap<NodeId, Arc<SimDisk>>,
        rng: ChaCha8Rng,
        config: SimDiskConfig,
    }

    impl SimDisks {
        fn lock(&self) -> MutexGuard<'_, Inner> {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Seed the generator behind crash decisions (torn writes); call before nodes start.
        pub fn set_seed(&self, seed: u64) {
            self.lock().rng = ChaCha8Rng::seed_from_u64(seed);
        }

        /// Configuration for disks created from now on.
        pub fn set_default_config(&self, config: SimDiskConfig) {
            self.lock().config = config;
        }

        /// The disk of `node`, created (empty, with the default configuration) if needed.
        pub fn disk_for(&self, node: NodeId) -> Arc<SimDisk> {
            let mut inner = self.lock();
            let config = inner.config.clone();
            inner.disks.entry(node).or_insert_with(|| Arc::new(SimDisk::new(config))).clone()
        }
    }

    impl madsim::plugin::Simulator for SimDisks {
        fn new(_rand: &madsim::rand::GlobalRng, _time: &madsim::time::TimeHandle, _config: &madsim::Config) -> Self {
            SimDisks {
                inner: Mutex::new(Inner {
                    disks: BTreeMap::new(),
                    rng: ChaCha8Rng::seed_from_u64(0),
                    config: SimDiskConfig::default(),
                }),
            }
        }

        fn reset_node(&self, id: NodeId) {
            let mut inner = self.lock();
            let inner = &mut *inner;
            if let Some(disk) = inner.disks.get(&id) {
                disk.crash(&mut inner.rng);
            }
        }
    }
}
