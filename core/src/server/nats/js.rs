//! JetStream inside the NATS server: the options ([`JetStreamOptions`]) and the thin
//! async shell ([`JsHandle`] plus two tasks) around the synchronous engine
//! ([`crate::jetstream::engine::JetStream`]).
//!
//! **Locks.** The engine sits in its own mutex beside the broker's. The broker's lock may
//! be held while the engine's is taken (the publish path hands messages to the engine
//! from inside [`Broker::publish_deferred`](super::broker::Broker::publish_deferred)),
//! never the other way round: whoever holds the engine's lock collects the engine's
//! outputs ([`JsOut`]), drops the lock, and only then routes them through the broker.
//!
//! **Group commit.** A publish into a file stream appends (unsynced) and queues its
//! PubAck inside the engine. The *flusher* task wakes whenever the engine says
//! [`needs_sync`](crate::jetstream::engine::JetStream::needs_sync): under the lock it
//! begins a commit (`begin_sync`: buffered writes handed to the disk, consumer states
//! written to temp files, the waiting PubAcks set aside), releases the lock for the
//! fsyncs (one per dirty file covers every append before it), then ends the commit
//! under the lock (`end_sync`), which releases the set-aside PubAcks: never before the
//! fsync. While one commit's fsyncs run, publishes, acks and deliveries go on and what
//! they append waits for the next commit, so under load each commit covers more
//! appends: batches grow by themselves, with no timer and no batch size to tune.
//!
//! **Time.** The *timer* task sleeps until the engine's
//! [`next_deadline`](crate::jetstream::engine::JetStream::next_deadline) (redelivery,
//! pull-request expiry, heartbeats, `max_age`), calls `tick`, and sleeps again; every
//! call into the engine checks whether the deadline moved earlier than the one the timer
//! sleeps towards and wakes it if so. Wall-clock time (message timestamps) is the
//! configured [`JetStreamOptions::epoch_ns`] plus the runtime's monotonic time since
//! start, so the simulation's clock drives it.
//!
//! **Simulated disk time.** The engine's disk is wrapped in [`Metered`]: each operation
//! notes the disk's latency hint, and the flusher sleeps for what is owed after its sync
//! and before it releases the PubAcks, so a slow simulated disk delays acknowledgements
//! (and lets batches grow) as a real one does. A real disk owes nothing.

use super::broker::Message;
use crate::disk::{Disk, DiskOp, Metered};
use crate::jetstream::engine::{JetStream, JsConfig, JsOut, JszSummary, RecoveryNote};
use crate::mem::Ledger;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Default `max_memory_store` when none is configured: 1 GiB. (nats-server takes 75% of
/// the machine's memory; the binary computes that and passes it, the core stays
/// independent of the machine.)
pub const DEFAULT_MAX_MEMORY_STORE: u64 = 1 << 30;
/// Default `max_file_store`: 1 TB, as nats-server's `JetStreamMaxStoreDefault`.
pub const DEFAULT_MAX_FILE_STORE: u64 = 1 << 40;

/// The ledger accounts the engine charges (besides the server's `client.outbound`):
/// the engine's own list.
pub const JETSTREAM_ACCOUNTS: &[&str] = crate::jetstream::engine::ACCOUNTS;

/// How many rounds of engine outputs one input may cascade into (an output routed back
/// into the engine, deliveries releasing inflight charges that let consumers deliver
/// more). A cascade longer than this is left for the next input or tick, so that one
/// publish never holds the locks without bound.
pub const MAX_CASCADE: usize = 64;

/// How a server runs JetStream.
#[derive(Clone)]
pub struct JetStreamOptions {
    /// Where streams and consumers persist: the binary passes a `RealDisk` rooted at the
    /// store directory (the engine nests its data in `jetstream/` under
    /// [`JsConfig::store_dir`], as nats-server does), the simulation its `SimDisk`.
    pub disk: Arc<dyn Disk>,
    /// The engine's configuration: store directory on `disk`, limits, API queue bound,
    /// known-bug switches. `server_name` is filled from the server's.
    pub engine: JsConfig,
    /// The store directory as logged and shown in `/jsz` (`config.store_dir`); the
    /// binary gives the absolute `<store_dir>/jetstream` path.
    pub shown_dir: String,
    /// Wall-clock time (ns since the Unix epoch) when the server starts: message
    /// timestamps are this plus the runtime's monotonic time since. The binary reads the
    /// system clock once; the simulation passes a value of its own, so runs replay.
    pub epoch_ns: i64,
}

impl JetStreamOptions {
    /// Options over `disk` with the engine's defaults and nats-server's default limits
    /// ([`DEFAULT_MAX_MEMORY_STORE`], [`DEFAULT_MAX_FILE_STORE`]), data at the disk's root.
    pub fn new(disk: Arc<dyn Disk>, shown_dir: impl Into<String>, epoch_ns: i64) -> JetStreamOptions {
        JetStreamOptions {
            disk,
            engine: JsConfig {
                store_dir: String::new(),
                max_memory_store: DEFAULT_MAX_MEMORY_STORE,
                max_file_store: DEFAULT_MAX_FILE_STORE,
                ..JsConfig::default()
            },
            shown_dir: shown_dir.into(),
            epoch_ns,
        }
    }
}

impl std::fmt::Debug for JetStreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamOptions")
            .field("engine", &self.engine)
            .field("shown_dir", &self.shown_dir)
            .field("epoch_ns", &self.epoch_ns)
            .finish_non_exhaustive()
    }
}

/// Whether `ledger` holds every account the engine charges.
pub fn has_jetstream_accounts(ledger: &Ledger) -> bool {
    let held = ledger.sample();
    JETSTREAM_ACCOUNTS.iter().all(|n| held.iter().any(|a| a.name == *n))
}

/// The engine, its clock and the wake-ups of its two tasks.
pub struct JsHandle {
    engine: Mutex<JetStream>,
    disk: Arc<Metered>,
    epoch_ns: i64,
    start: Instant,
    shown_dir: String,
    /// Woken when the engine needs a sync.
    flush: Notify,
    /// Woken when the engine's deadline moved before `armed`.
    timer: Notify,
    /// The deadline the timer task sleeps towards (`i64::MAX`: none).
    armed: AtomicI64,
}

impl std::fmt::Debug for JsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsHandle").field("shown_dir", &self.shown_dir).finish_non_exhaustive()
    }
}

/// The engine's outputs once it is unlocked, for the broker to route.
pub type Outs = Vec<JsOut>;

impl JsHandle {
    /// Open the engine over `opts.disk` (recovering what is there) and log the startup
    /// lines nats-server prints for JetStream, then one line per recovery note.
    pub fn open(mut opts: JetStreamOptions, server_name: &str, ledger: Arc<Ledger>) -> JsHandle {
        let start = Instant::now();
        let disk = Arc::new(Metered::new(opts.disk.clone()));
        let cfg = &opts.engine;
        tracing::info!("Starting JetStream");
        tracing::info!("---------------- JETSTREAM ----------------");
        tracing::info!("  Max Memory:      {}", friendly_bytes(cfg.max_memory_store));
        tracing::info!("  Max Storage:     {}", friendly_bytes(cfg.max_file_store));
        tracing::info!("  Store Directory: \"{}\"", opts.shown_dir);
        tracing::info!("  API Level:       {}", crate::jetstream::engine::API_LEVEL);
        tracing::info!("-------------------------------------------");
        opts.engine.server_name = server_name.to_owned();
        let (engine, notes) = JetStream::open(opts.engine, disk.clone(), ledger, opts.epoch_ns);
        log_notes(&notes);
        for st in engine.jsz().stream_detail {
            tracing::info!("  Restored {} messages for stream '$G > {}'", st.messages, st.name);
            if !st.consumer_detail.is_empty() {
                tracing::info!("  Recovering {} consumers for stream - '$G > {}'", st.consumer_detail.len(), st.name);
            }
        }
        for (name, why) in engine.failed_streams() {
            tracing::error!("  Stream '$G > {name}' is out of service: {why}");
        }
        let _ = disk.take_owed();
        JsHandle {
            engine: Mutex::new(engine),
            disk,
            epoch_ns: opts.epoch_ns,
            start,
            shown_dir: opts.shown_dir,
            flush: Notify::new(),
            timer: Notify::new(),
            armed: AtomicI64::new(i64::MAX),
        }
    }

    /// Wall-clock now, ns since the Unix epoch (see the module docs).
    pub fn now_ns(&self) -> i64 {
        let since = Instant::now().saturating_duration_since(self.start);
        self.epoch_ns.saturating_add(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }

    fn lock(&self) -> MutexGuard<'_, JetStream> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the locked engine with the current time, then wake the flusher or the
    /// timer if the engine's state asks for it. Returns the outputs (the lock is dropped).
    fn with_engine(&self, f: impl FnOnce(&mut JetStream, i64, &mut Outs)) -> Outs {
        let mut out = Vec::new();
        let now = self.now_ns();
        let mut e = self.lock();
        f(&mut e, now, &mut out);
        self.after(&mut e);
        out
    }

    /// After a call: wake the flusher when a sync is due, the timer when the deadline
    /// moved before the one it sleeps towards, and log notes the engine produced.
    fn after(&self, e: &mut JetStream) {
        if e.needs_sync() {
            self.flush.notify_one();
        }
        if let Some(d) = e.next_deadline()
            && d < self.armed.load(Ordering::Relaxed)
        {
            self.armed.store(d, Ordering::Relaxed);
            self.timer.notify_one();
        }
        let notes = e.take_notes();
        log_notes(&notes);
    }

    /// Whether the engine wants a message on `subject` (no allocation).
    pub fn wants(&self, subject: &str) -> bool {
        self.lock().wants(subject)
    }

    /// Hand the engine a message it wants.
    pub fn on_message(&self, msg: &Message) -> Outs {
        self.with_engine(|e, now, out| e.on_message(now, msg, out))
    }

    /// Local interest in `subject` changed.
    pub fn on_interest(&self, subject: &str, active: bool) -> Outs {
        self.with_engine(|e, now, out| e.on_interest(now, subject, active, out))
    }

    /// Let consumers blocked on inflight charges deliver again and answer queued API requests.
    pub fn poll(&self) -> Outs {
        self.with_engine(|e, now, out| e.poll(now, out))
    }

    /// Push consumers' deliver subjects (whose interest the broker reports).
    pub fn watched_subjects(&self) -> Vec<String> {
        self.lock().watched_subjects()
    }

    /// The engine's `/jsz` summary and the store directory to show.
    pub fn jsz(&self) -> (JszSummary, String) {
        (self.lock().jsz(), self.shown_dir.clone())
    }

    /// Check the engine's invariants (panics on a violation).
    pub fn invariants(&self) {
        self.lock().invariants();
    }

    /// One group commit, if the engine needs one: begin it under the lock, run its
    /// fsyncs with the lock released (publishes, acks and deliveries go on meanwhile and
    /// wait for the next commit), wait out the simulated disk time, end it under the
    /// lock. What each half releases is handed to `route` as soon as the lock is
    /// dropped, before any wait: outputs held across an `.await` would reach clients
    /// after outputs other tasks produced later (a consumer's delivery released by the
    /// commit arrived after the next one, delivered on an ack meanwhile:
    /// `js-single-crashes` seed 194 with every fault point on). Returns whether a
    /// commit was due.
    async fn sync_once(&self, route: &impl Fn(Outs)) -> bool {
        let mut out = Vec::new();
        let begun = {
            let now = self.now_ns();
            let mut e = self.lock();
            if !e.needs_sync() {
                return false;
            }
            let r = e.begin_sync(now, &mut out);
            self.after(&mut e);
            r
        };
        if !out.is_empty() {
            route(std::mem::take(&mut out));
        }
        let r = match begun {
            Ok(Some(job)) => {
                // The fsyncs are in flight for the disk's sync latency before they take
                // effect, with the lock released. A real disk reports no latency (its
                // syncs take their own time); the simulated disk is durable the instant
                // `sync` runs, so without this wait a power cut could never land between
                // a publish and its durability, the window the group commit must cover
                // (and the `ack-before-store` bug exposes).
                let in_flight = self.disk.latency(DiskOp::Sync, 0);
                if !in_flight.is_zero() {
                    tokio::time::sleep(in_flight).await;
                }
                let done = job.run(&*self.disk);
                if crate::fault_point!("js.commit.slow") {
                    tokio::time::sleep(Duration::from_millis(crate::fault::pick_ms(100))).await;
                }
                self.wait_owed(in_flight).await;
                let now = self.now_ns();
                let r = {
                    let mut e = self.lock();
                    let r = e.end_sync(now, done, &mut out);
                    self.after(&mut e);
                    r
                };
                if !out.is_empty() {
                    route(out);
                }
                r
            }
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        self.wait_owed(Duration::ZERO).await;
        if let Err(e) = r {
            tracing::error!(error = %e, "JetStream sync failed; the publishes it covered were answered with errors");
            // The engine reopened the failed store; do not spin on a disk that keeps failing.
            tokio::time::sleep(SYNC_RETRY).await;
        }
        true
    }

    /// Sleep for the simulated disk time the engine's disk operations owe (none on a
    /// real disk), less `waited` (already slept for them).
    async fn wait_owed(&self, waited: Duration) {
        let owed = self.disk.take_owed().saturating_sub(waited);
        if !owed.is_zero() {
            tokio::time::sleep(owed).await;
        }
    }

    /// The flusher task (runs until cancelled): a group commit whenever the engine needs
    /// one, the released outputs (PubAcks, deliveries of newly durable messages) handed
    /// to `route` with no lock held.
    pub async fn run_flusher(self: Arc<Self>, route: impl Fn(Outs) + Send) {
        loop {
            self.flush.notified().await;
            while self.sync_once(&route).await {}
        }
    }

    /// Sync until nothing is left, routing what it releases (the last act before shutdown).
    pub async fn flush_all(&self, route: impl Fn(Outs)) {
        while self.sync_once(&route).await {}
    }

    /// The timer task (runs until cancelled): sleep until the engine's next deadline (or
    /// until woken because it moved earlier), then `tick`, routing the outputs.
    pub async fn run_timer(self: Arc<Self>, route: impl Fn(Outs) + Send) {
        loop {
            let deadline = {
                let mut e = self.lock();
                let d = e.next_deadline();
                self.armed.store(d.unwrap_or(i64::MAX), Ordering::Relaxed);
                d
            };
            // A wake-up between the store above and this wait is kept as a permit.
            let at = match deadline {
                Some(d) => self.instant_at(d),
                None => Instant::now() + IDLE_TICK,
            };
            tokio::select! {
                biased;
                _ = self.timer.notified() => continue,
                _ = tokio::time::sleep_until(at) => {}
            }
            if deadline.is_some() {
                if crate::fault_point!("timer.tick.delay") {
                    tokio::time::sleep(Duration::from_millis(crate::fault::pick_ms(200))).await;
                }
                let out = self.with_engine(|e, now, out| e.tick(now, out));
                route(out);
            }
        }
    }

    /// The runtime instant at wall-clock time `ns`.
    fn instant_at(&self, ns: i64) -> Instant {
        let after = u64::try_from(ns.saturating_sub(self.epoch_ns)).unwrap_or(0);
        self.start + Duration::from_nanos(after)
    }
}

/// Pause after a failed sync before the next one.
const SYNC_RETRY: Duration = Duration::from_millis(10);

/// Log recovery (or persistence) notes as errors naming the stream and consumer.
fn log_notes(notes: &[RecoveryNote]) {
    for n in notes {
        tracing::error!("{n}");
    }
}

/// nats-server's friendly byte sizes in its JetStream banner (`1.00 TB`, `47.74 GB`).
pub fn friendly_bytes(n: u64) -> String {
    if n == u64::MAX {
        return "unlimited".to_owned();
    }
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2} {}B", UNITS[i])
}

/// How long the timer sleeps when the engine has no deadline: it is woken earlier
/// whenever one appears.
pub const IDLE_TICK: Duration = Duration::from_secs(3600);
