//! The store world: one node's [`FileStore`] on the simulated disk, driven by in-process
//! writers (appends, and deletes of their own acknowledged messages) and a reader that
//! checks every message it loads, while the harness crashes the node (losing unsynced
//! writes, sometimes leaving torn tails), damages its durable files while it is down,
//! fills its disk and slows it down.
//!
//! An append is acknowledged (`ok` in the history) only after the store returned and
//! the disk time it took has passed, so a crash inside that window leaves the outcome
//! unknown, as for a real client. The store's index is charged to `store.index`; at its
//! limit appends are refused (a definite failure), never over-charged. After the safety phase every fault is healed, a probe
//! append must succeed (liveness), memory must drain to zero once the cache and idle
//! buffers expire (baseline), and a final power cut and reopen must give contents that
//! agree with the history ([`store_outcomes`]).

use crate::check::Violation;
use crate::check::store::{
    Entry, FinalMsg, FinalStore, Journal, ReadAsk, ReadContext, STORE_DIR, judge_read, store_outcomes, subject_for,
};
use crate::config::SimConfig;
use crate::disk::{SimDisk, SimDisks};
use crate::harness::{Ctx, ONE_DISK_NODE_FAULTS, World, begin_incarnation, one_node};
// The book is the checker's record, kept outside the node's counted heap.
use super::scratch::torn_tail;
use crate::heap;
use crate::node::NodeNo;
use crate::workload::{ClientStats, value_for};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use weir_core::disk::{Disk, DiskOp};
use weir_core::mem::Ledger;
use weir_core::store::{
    Discard, FileStore, FileStoreConfig, MsgStore, STORE_BUFFERS, STORE_CACHE, STORE_INDEX, StoreBugs, StoreError,
    StoreLimits, StoreMemory,
};
use weir_core::testing::payload;
use weir_faults::FaultClass;
use weir_traces::{EventKind, EventSink, HARNESS};

/// The store's directory on the node's disk.
const DIR: &str = STORE_DIR;
/// The only node.
const NODE: NodeNo = 1;
/// How long cached windows and idle buffers live without use.
const CACHE_EXPIRY: Duration = Duration::from_secs(2);
/// Period of the node's clock ticks (sync interval, cache expiry).
const TICK: Duration = Duration::from_millis(100);

/// The open store, shared between the node's tasks and the harness (probe, final read).
type Slot = Arc<Mutex<Option<FileStore>>>;

fn lock(slot: &Slot) -> MutexGuard<'_, Option<FileStore>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every incarnation of the node needs.
#[derive(Clone)]
struct NodeParams {
    cfg: SimConfig,
    bugs: StoreBugs,
    slot: Slot,
    ledger: Ledger,
    sink: Arc<dyn EventSink>,
    incarnation: Arc<AtomicU32>,
    /// Set when the safety phase ends: writers and the reader stop.
    stop: Arc<AtomicBool>,
    /// Violations seen by the reader (survive crashes).
    read_violations: Arc<Mutex<Vec<Violation>>>,
    /// Deletes, recoveries and disk damage in order, and what the run knows about its
    /// messages (shared by every incarnation).
    book: Arc<Mutex<Book>>,
    start: Instant,
    seed: u64,
}

/// The world's book-keeping, kept across crashes.
#[derive(Default)]
struct Book {
    /// What the checker judges deletes and recoveries by.
    journal: Journal,
    /// How many entries of the disk's damage record are in the journal.
    damage_seen: usize,
    /// Deletes asked whose outcome is not known yet: `true` once a crash or a failed
    /// store cut them short (the next open finds out whether they happened).
    deletes: BTreeMap<u64, bool>,
    /// Acknowledged messages that must be readable (sequence to value): not asked to be
    /// deleted and not reported lost; retention may still evict the oldest.
    present: BTreeMap<u64, u64>,
}

impl Book {
    /// Copy the damage the disk did since the last call into the journal.
    fn take_damage(&mut self, disk: &SimDisk) {
        let new = disk.damage_since(self.damage_seen);
        self.damage_seen += new.len();
        self.journal.extend(new.into_iter().map(Entry::Damage));
    }

    /// A store was opened: journal the damage before it, then its report; forget the
    /// messages it lost and settle the deletes that were cut short.
    fn opened(&mut self, disk: &SimDisk, fs: &mut FileStore) {
        self.take_damage(disk);
        let r = fs.recovery().clone();
        for l in &r.lost {
            for seq in l.seqs.clone() {
                self.present.remove(&seq);
            }
        }
        self.journal.push(Entry::Recovered { lost: r.lost, damaged: r.damaged });
        let cut_short: Vec<u64> = self.deletes.iter().filter(|&(_, &cut)| cut).map(|(&s, _)| s).collect();
        for seq in cut_short {
            self.deletes.remove(&seq);
            if let Ok(Some(m)) = fs.load(seq)
                && let Some(value) = m.payload.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            {
                self.journal.push(Entry::DeleteNotApplied(seq));
                self.present.insert(seq, value);
            }
        }
    }
}

fn book(p: &NodeParams) -> MutexGuard<'_, Book> {
    p.book.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_config(cfg: &SimConfig, bugs: StoreBugs) -> FileStoreConfig {
    FileStoreConfig {
        block_size: cfg.store.block_size,
        read_ahead: 4 << 10,
        scan_chunk: (cfg.store.buffers_limit / 4).clamp(64, 8 << 10) as usize,
        cache_bytes: cfg.store.cache_limit,
        cache_expiry: CACHE_EXPIRY,
        pool_idle_bytes: cfg.store.buffers_limit / 4,
        write_chunk: 4 << 10,
        bugs,
        ..FileStoreConfig::default()
    }
}

fn limits(cfg: &SimConfig) -> StoreLimits {
    StoreLimits {
        max_msgs: (cfg.store.max_msgs > 0).then_some(cfg.store.max_msgs),
        discard: Discard::Old,
        ..StoreLimits::default()
    }
}

/// Report what an open's recovery found.
fn emit_recovery(sink: &dyn EventSink, node: NodeNo, fs: &FileStore) {
    let r = fs.recovery();
    let st = fs.state();
    // A record whose header is unreadable may have been a delete (the report cannot
    // say which unreadable records were messages), so its message may be visible again.
    let unreadable_other = r.damaged.iter().any(|d| d.unreadable_records != Some(0));
    sink.emit(
        node,
        EventKind::StoreRecovered {
            lost: r.lost.iter().map(|l| (*l.seqs.start(), *l.seqs.end())).collect(),
            damaged: r.damaged.len() as u64,
            unreadable_other,
            truncated_bytes: r.truncated.as_ref().map_or(0, |t| t.bytes),
            first_seq: st.first_seq,
            last_seq: st.last_seq,
        },
    );
}

/// The time one append or delete of `bytes` spends on the disk (write, then sync).
fn disk_time(disk: &SimDisk, bytes: usize) -> Duration {
    disk.latency(DiskOp::Write, bytes) + disk.latency(DiskOp::Sync, 0)
}

/// Whether an error means the store must be reopened.
fn must_reopen(e: &StoreError) -> bool {
    matches!(e, StoreError::Failed(_) | StoreError::Io { .. })
}

/// One incarnation of the node: open (retrying while the disk is full), then run the
/// writers, the reader, the clock and the reopen supervisor.
async fn node_main(p: NodeParams) {
    // A dead process holds no memory: drop what the last incarnation left first.
    lock(&p.slot).take();
    let (_, seed) = begin_incarnation(&p.incarnation, NODE, &p.ledger, &*p.sink, p.seed);
    let disk = madsim::plugin::simulator::<SimDisks>().disk_for(madsim::plugin::node());
    for w in 0..p.cfg.run.clients {
        tokio::spawn(writer(p.clone(), disk.clone(), w, seed ^ (w as u64 + 1)));
    }
    tokio::spawn(reader(p.clone(), disk.clone(), seed ^ 0xEAD));
    let bugs = p.bugs;
    let mut last_tick = Instant::now();
    loop {
        if lock(&p.slot).is_none() {
            let opened = FileStore::open(
                weir_core::disk::FaultPoints::wrap(disk.clone()),
                DIR,
                limits(&p.cfg),
                store_config(&p.cfg, bugs),
                StoreMemory::from_ledger(&p.ledger),
            );
            match opened {
                Ok(mut fs) => {
                    emit_recovery(&*p.sink, NODE, &fs);
                    heap::outside(|| book(&p).opened(&disk, &mut fs));
                    *lock(&p.slot) = Some(fs);
                }
                Err(e) => p.sink.emit(NODE, EventKind::Note { text: format!("store open failed: {e}") }),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            let now = p.start.elapsed();
            let mut g = lock(&p.slot);
            if let Some(fs) = g.as_mut()
                && let Err(e) = fs.tick(now)
                && must_reopen(&e)
            {
                g.take();
            }
        }
    }
}

/// Appends at the configured rate; now and then deletes one of its acknowledged messages.
async fn writer(p: NodeParams, disk: Arc<SimDisk>, client: u32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let period = Duration::from_micros(1_000_000 / p.cfg.workload.rate_per_client.max(1) as u64);
    let len = p.cfg.workload.payload_bytes as usize;
    let mut acked: VecDeque<u64> = VecDeque::new();
    // Values are unique across incarnations: the counter starts past every earlier one.
    let mut n = (p.incarnation.load(Ordering::Relaxed) as u64) << 24;
    while !p.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(period.mul_f64(rng.gen_range(0.5..1.5))).await;
        if p.stop.load(Ordering::Relaxed) {
            break;
        }
        let delete = (!acked.is_empty() && rng.gen_range(0..100) < p.cfg.store.delete_pct)
            .then(|| acked.remove(rng.gen_range(0..acked.len())).expect("index in range"));
        if let Some(seq) = delete {
            let done = {
                let mut g = lock(&p.slot);
                let Some(fs) = g.as_mut() else { continue };
                p.sink.emit(NODE, EventKind::StoreDelete { client, seq, done: false });
                heap::outside(|| {
                    let mut b = book(&p);
                    b.journal.push(Entry::DeleteAsked(seq));
                    b.present.remove(&seq);
                    b.deletes.insert(seq, false);
                });
                let r = fs.delete(seq);
                match &r {
                    Err(e) if must_reopen(e) => {
                        g.take();
                        heap::outside(|| book(&p).deletes.insert(seq, true));
                    }
                    Err(_) => {
                        // Nothing was changed: the message must stay.
                        heap::outside(|| {
                            let mut b = book(&p);
                            b.deletes.remove(&seq);
                            b.journal.push(Entry::DeleteFailed(seq));
                        });
                    }
                    Ok(_) => {}
                }
                r.is_ok()
            };
            tokio::time::sleep(disk_time(&disk, 48)).await;
            if done {
                p.sink.emit(NODE, EventKind::StoreDelete { client, seq, done: true });
                heap::outside(|| {
                    let mut b = book(&p);
                    b.deletes.remove(&seq);
                    b.journal.push(Entry::DeleteDone(seq));
                });
            }
            continue;
        }
        let value = value_for(client, n);
        let r = {
            let mut g = lock(&p.slot);
            let Some(fs) = g.as_mut() else { continue };
            n += 1;
            p.sink.emit(HARNESS, EventKind::ClientInvoke { client, value, target: NODE });
            let ts = p.start.elapsed().as_nanos() as i64;
            let r = fs.append(&subject_for(client, value), b"", &payload(value, len), ts);
            if let Err(e) = &r
                && must_reopen(e)
            {
                g.take();
            }
            r
        };
        tokio::time::sleep(disk_time(&disk, len + 64)).await;
        let kind = match r {
            Ok(seq) => {
                acked.push_back(seq);
                if acked.len() > 64 {
                    acked.pop_front();
                }
                heap::outside(|| book(&p).present.insert(seq, value));
                EventKind::ClientOk { client, value, index: seq }
            }
            Err(e) if must_reopen(&e) => EventKind::ClientUnknown { client, value, reason: e.to_string() },
            Err(e) => EventKind::ClientFail { client, value, reason: e.to_string() },
        };
        p.sink.emit(HARNESS, kind);
    }
}

/// Loads random sequences and scans by subject filter, checking every message.
async fn reader(p: NodeParams, disk: Arc<SimDisk>, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = p.cfg.workload.payload_bytes as usize;
    let clients = p.cfg.run.clients.max(1);
    while !p.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
        let mut g = lock(&p.slot);
        let Some(fs) = g.as_mut() else { continue };
        let st = fs.state();
        if st.last_seq == 0 || st.msgs == 0 {
            continue;
        }
        let seq = rng.gen_range(st.first_seq..=st.last_seq);
        let (ask, r) = if rng.gen_bool(0.5) {
            (ReadAsk::Load(seq), fs.load(seq))
        } else {
            let client = rng.gen_range(0..clients);
            (ReadAsk::Next { client, from: seq }, fs.load_next(&format!("w{client}.>"), seq))
        };
        if let Err(e) = &r
            && must_reopen(e)
        {
            g.take();
        }
        let damaged_blocks: BTreeSet<u64> = disk
            .damage()
            .iter()
            .filter_map(|d| d.path.strip_prefix(&format!("{DIR}/"))?.strip_suffix(".blk")?.parse().ok())
            .collect();
        let evictable_below =
            if p.cfg.store.max_msgs == 0 { 0 } else { (st.last_seq + 1).saturating_sub(p.cfg.store.max_msgs) };
        let b = book(&p);
        let cx =
            ReadContext { present: &b.present, evictable_below, damaged_blocks: &damaged_blocks, payload_len: len };
        if let Some(violation) = judge_read(ask, &r, &cx) {
            drop(b);
            p.read_violations.lock().expect("violations").push(violation);
        }
    }
}

/// The store world (see the module doc).
pub struct StoreWorld {
    p: NodeParams,
    disk: Arc<SimDisk>,
    fault_rng: ChaCha8Rng,
}

impl World for StoreWorld {
    const NAME: &'static str = "store";
    const DESCRIPTION: &'static str =
        "one node's message store (FileStore on the simulated disk) with in-process writers, deleters and readers";
    const FAULTS: &'static [FaultClass] = ONE_DISK_NODE_FAULTS;

    fn check_config(cfg: &SimConfig) -> Result<(), String> {
        one_node(cfg)
    }

    fn setup(ctx: &mut Ctx) -> Self {
        ctx.init_disks();
        let cfg = ctx.cfg.clone();
        let p = NodeParams {
            bugs: ctx.bugs.store(),
            slot: Arc::default(),
            ledger: Ledger::new(&[
                (STORE_BUFFERS, cfg.store.buffers_limit),
                (STORE_CACHE, cfg.store.cache_limit),
                (STORE_INDEX, cfg.store.index_limit),
            ]),
            sink: ctx.sink.clone(),
            incarnation: Arc::default(),
            stop: Arc::default(),
            read_violations: Arc::default(),
            book: Arc::default(),
            start: ctx.start,
            seed: ctx.rng.r#gen(),
            cfg,
        };
        let p2 = p.clone();
        let disk = ctx.add_disk_node(p.ledger.clone(), move || node_main(p2.clone()));
        StoreWorld { p, disk, fault_rng: ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x00DA_7A6E) }
    }

    fn on_crash(&mut self, _ctx: &Ctx, _no: NodeNo) {
        lock(&self.p.slot).take();
        // Deletes in flight may or may not have happened: the next open finds out.
        book(&self.p).deletes.values_mut().for_each(|cut| *cut = true);
    }

    fn corrupt(&mut self, _ctx: &Ctx, _no: NodeNo) -> String {
        corrupt(&self.disk, &self.p.cfg, &mut self.fault_rng)
    }

    async fn end_safety(&mut self, _ctx: &Ctx) {
        self.p.stop.store(true, Ordering::Relaxed);
    }

    /// A probe append must be stored and read back.
    async fn converge(&mut self, _ctx: &Ctx, deadline: Instant) -> Result<(), String> {
        probe(&self.p, deadline).await
    }

    /// Once the cache and idle buffers expire, memory is back to zero.
    fn quiet_time(&self) -> Duration {
        CACHE_EXPIRY * 2 + TICK * 5
    }

    fn over_baseline(&self, account: &str, current: u64) -> bool {
        // The index follows what is stored, not the load.
        current > 0 && account != STORE_INDEX
    }

    /// A final power cut, then read everything back through a fresh, bug-free open.
    async fn finish(self, ctx: &mut Ctx) -> (Vec<Violation>, ClientStats) {
        ctx.kill(NODE);
        lock(&self.p.slot).take();
        ctx.sink.emit(NODE, EventKind::NodeCrash);
        book(&self.p).deletes.values_mut().for_each(|cut| *cut = true);
        let fin = final_read(&self.disk, &self.p.cfg, &*ctx.sink, &mut book(&self.p));
        let mut violations: Vec<Violation> = self.p.read_violations.lock().expect("violations").drain(..).collect();
        let events = ctx.events();
        match fin {
            Ok(fin) => violations.extend(store_outcomes(&events, &fin)),
            Err(e) => {
                violations.push(Violation { invariant: "recoverable", detail: format!("final open failed: {e}") })
            }
        }
        (violations, stats(&events))
    }
}

/// Damage the durable image while the node is down: flip a bit, or cut a rolled block.
/// The newest block's last whole record is spared, and so is the torn tail a crash may
/// have left after it: damage there is indistinguishable from a torn write, and recovery
/// rightly cuts it off as one. The guard is measured from where the torn tail starts
/// ([`torn_tail`]), not from the end of the file.
fn corrupt(disk: &SimDisk, cfg: &SimConfig, rng: &mut ChaCha8Rng) -> String {
    let mut blocks: Vec<(u64, String)> = disk
        .durable_file_names()
        .into_iter()
        .filter_map(|f| {
            let name = f.strip_prefix("stream/")?;
            Some((name.strip_suffix(".blk")?.parse().ok()?, f.clone()))
        })
        .collect();
    blocks.sort();
    let Some(newest) = blocks.last().map(|b| b.0) else { return "corrupt: no block to damage".into() };
    let (index, path) = blocks[rng.gen_range(0..blocks.len())].clone();
    let len = disk.durable_contents(&path).map_or(0, |d| d.len() as u64);
    let guard = if index == newest {
        let config = store_config(cfg, StoreBugs::default());
        torn_tail(disk, DIR, config, index, len) + cfg.workload.payload_bytes as u64 + 128
    } else {
        0
    };
    if len <= guard + 64 {
        return format!("corrupt: {path} too short to damage ({len} bytes)");
    }
    if index != newest && rng.gen_bool(0.3) {
        let cut = rng.gen_range(64..len);
        disk.truncate_durable(&path, cut).expect("block exists");
        return format!("corrupt: cut {path} from {len} to {cut} bytes");
    }
    let offset = rng.gen_range(64..len - guard);
    let bit = rng.gen_range(0..8u8);
    disk.flip_bit(&path, offset, bit).expect("offset inside the file");
    format!("corrupt: flipped bit {bit} at {path}:{offset}")
}

/// After healing: the store must reopen and accept and return a probe append.
async fn probe(p: &NodeParams, deadline: Instant) -> Result<(), String> {
    let client = p.cfg.run.clients;
    let mut n = 0u64;
    loop {
        if Instant::now() >= deadline {
            return Err("no probe append succeeded after healing".into());
        }
        {
            let mut g = lock(&p.slot);
            if let Some(fs) = g.as_mut() {
                let value = value_for(client, n);
                n += 1;
                p.sink.emit(HARNESS, EventKind::ClientInvoke { client, value, target: NODE });
                let body = payload(value, p.cfg.workload.payload_bytes as usize);
                let ts = p.start.elapsed().as_nanos() as i64;
                match fs.append(&subject_for(client, value), b"", &body, ts) {
                    Ok(seq) => {
                        p.sink.emit(HARNESS, EventKind::ClientOk { client, value, index: seq });
                        return match fs.load(seq) {
                            Ok(Some(m)) if m.payload == body => Ok(()),
                            other => Err(format!("probe at seq {seq} read back as {other:?}")),
                        };
                    }
                    Err(e) => {
                        let full_index = matches!(e, StoreError::NoMemory { account: STORE_INDEX, .. });
                        p.sink.emit(HARNESS, EventKind::ClientFail { client, value, reason: e.to_string() });
                        if full_index {
                            // A full index refuses appends by design; alive means it still serves reads.
                            let last = fs.state().last_seq;
                            return match fs.load_last(">") {
                                Ok(Some(m)) if m.seq <= last => Ok(()),
                                other => Err(format!("index full and the newest message reads as {other:?}")),
                            };
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open the store as it survived the final power cut and read every message.
fn final_read(
    disk: &Arc<SimDisk>,
    cfg: &SimConfig,
    sink: &dyn EventSink,
    book: &mut Book,
) -> Result<FinalStore, StoreError> {
    let mem = StoreMemory::standalone(64 << 20, 64 << 20);
    let mut fs = FileStore::open(disk.clone(), DIR, limits(cfg), store_config(cfg, StoreBugs::default()), mem)?;
    emit_recovery(sink, HARNESS, &fs);
    book.opened(disk, &mut fs);
    let st = fs.state();
    let mut msgs = Vec::with_capacity(st.msgs as usize);
    for seq in st.first_seq..=st.last_seq {
        if let Some(m) = fs.load(seq)? {
            msgs.push(FinalMsg { seq, subject: m.subject, payload: m.payload });
        }
    }
    Ok(FinalStore {
        first_seq: st.first_seq,
        last_seq: st.last_seq,
        msgs,
        max_msgs: cfg.store.max_msgs,
        payload_len: cfg.workload.payload_bytes as usize,
        journal: std::mem::take(&mut book.journal),
    })
}

fn stats(events: &[weir_traces::Event]) -> ClientStats {
    let mut s = ClientStats::default();
    let mut outcome: BTreeMap<u64, u8> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::ClientInvoke { value, .. } => {
                s.invoked += 1;
                outcome.insert(*value, 0);
            }
            EventKind::ClientOk { value, .. } => {
                outcome.insert(*value, 1);
            }
            EventKind::ClientFail { value, .. } => {
                outcome.insert(*value, 2);
            }
            _ => {}
        }
    }
    for o in outcome.values() {
        match o {
            1 => s.ok += 1,
            2 => s.failed += 1,
            _ => s.unknown += 1,
        }
    }
    s
}
