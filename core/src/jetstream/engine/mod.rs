//! The JetStream engine of one server: streams, consumers and the `$JS.API` served from
//! one synchronous, deterministic state machine. No clock (time comes in as `now_ns`,
//! nanoseconds since the Unix epoch), no async, no I/O except through the [`Disk`] seam,
//! no threads: the server shell locks it and calls it, and the simulation runs the same
//! code inside madsim. Account `$G` only.
//!
//! # Interface (what the shell does)
//!
//! | when | call |
//! |---|---|
//! | start | [`JetStream::open`]: recover every stream and consumer under `store_dir`; log the [`RecoveryNote`]s |
//! | the broker routes a publish | if [`JetStream::wants`]`(subject)`, [`JetStream::on_message`] |
//! | after a batch of inputs | if [`JetStream::needs_sync`], [`JetStream::sync`] (the group commit that releases PubAcks) |
//! | a subject's local interest changes | [`JetStream::on_interest`] (push deliver subjects, and request inboxes going away) |
//! | at [`JetStream::next_deadline`] | [`JetStream::tick`] |
//! | [`JsOut::Watch`], and after open for [`JetStream::watched_subjects`] | report interest with [`JetStream::on_interest`] |
//! | after dropping [`JsOut::Deliver`] charges, or queueing API requests with [`JetStream::queue_api`] | [`JetStream::poll`] |
//! | `/jsz`, `/metrics` | [`JetStream::jsz`] |
//!
//! Every call appends its output to `out` as [`JsOut`]:
//! - [`JsOut::Publish`]: a server-originated message (API replies, PubAcks, pull status
//!   messages, heartbeats, flow-control requests, AckSync replies, advisories). Route it
//!   through the broker like a publish to `msg.subject` (the engine may want it back:
//!   advisories do not match its subjects, replies go to inboxes).
//! - [`JsOut::Deliver`]: a stream message for a consumer. Route it to subscribers of `to`
//!   (the pull request's reply inbox or the push `deliver_subject`) but present it with
//!   `msg.subject` (the message's own subject) and `msg.reply` (the `$JS.ACK...` subject)
//!   in the `MSG`/`HMSG` line, as nats-server does. Drop `charge` once the message is in
//!   the client's outbound buffer (or was dropped for lack of interest), then call
//!   [`JetStream::poll`] so consumers blocked on `consumer.inflight` resume.
//!
//! # Durability (the PubAck contract)
//!
//! File streams run their [`FileStore`] with writes coalesced and unsynced
//! (`SyncPolicy::Interval` with an interval that never elapses): a publish appends and
//! queues its PubAck; [`JetStream::sync`] flushes and fsyncs every dirty store once (group
//! commit) and only then sends the queued PubAcks and shows the new messages to the
//! consumers. If the flush fails, the queued publishes are answered with 10077 errors
//! (never a false ack) and the stream is reopened from disk, keeping what the running
//! stream showed (its removals, its first and last sequence: see [`JetStream::reopen`]).
//! What a publish evicts (its stream's limits, a roll-up) takes effect only once the
//! publish is durable: the file store holds those removals (`store::held`) until the
//! commit that covers the publish ends, consumers still read the held messages, and a
//! refused publish evicts nothing (a KV put answered 10077 keeps the previous value).
//! Memory streams answer at once. `JsBugs::ack_before_store` sends the PubAck at append time (a known bug for the
//! simulation to catch). API changes to a file stream (purge, delete, update) are flushed
//! before their reply. Consumer ack state is written (atomically) by `sync` whenever it
//! moved, so at most the acks since the last sync are redelivered after a crash.
//!
//! # On disk
//!
//! See [`layout`]: `<store_dir>/jetstream/$G/streams/<name>.meta` (config, checksummed),
//! `streams/<name>/msgs/` (the FileStore), `streams/<name>/obs/<consumer>.{meta,state}`.
//! A stream whose metadata or store cannot be read is kept out of service and reported
//! (in [`RecoveryNote`]s, STREAM.NAMES, STREAM.LIST's `offline` and `jsz`), never dropped;
//! the rest opens.
//!
//! # Memory
//!
//! Dedup ids and TTLs charge `stream.dedup`, store indexes `store.index`, store buffers
//! and caches `store.buffers`/`store.cache`, loaded deliveries `consumer.inflight`,
//! publishes waiting for the group commit `stream.pending` (at its limit the engine
//! syncs before appending more): the ledger passed to [`JetStream::open`] needs
//! those six accounts ([`ACCOUNTS`]); without `stream.pending` the engine bounds the
//! same way with a private account that the ledger does not report. Memory streams
//! are bounded by `max_memory_store` (a publish past it is refused with 10023), file
//! streams by `max_file_store`. The API queue holds at most `max_api_pending` requests;
//! over it a request is answered with an error and counted, never dropped silently.
//!
//! # Known costs
//!
//! Counting a consumer's pending messages from inside a stream (after limit evictions
//! on a lagging consumer, a purge, or a filtered restore) walks the messages between;
//! from the head of the stream it uses the store's per-subject counts. A stream with
//! sources finds where each source stopped by walking back from its last message to
//! the newest copy of that source (once per open, and for a source added by an
//! update): a stream with no copy of it yet is walked whole (`sources.rs`).
//!
//! # Stream features
//!
//! Subject transforms and republish (`republish.rs`) run on the publish path of
//! a stream's host (`host.rs`); mirrors and sources (`sources.rs`) are pumped by the engine after
//! every input, sync and tick; subject delete markers are written by the stream's
//! expiry and shown to consumers by [`JetStream::tick`].

mod anystore;
mod api;
mod consumer_api;
mod consumer_ops;
mod fuzz;
mod host;
pub mod layout;
mod reader;
mod republish;
mod sources;
mod stats;
#[cfg(test)]
mod tests;

pub use anystore::AnyStore;
pub use fuzz::fuzz_js_api;
pub use stats::{ApiStats, JetStreamConfigJson, JszConsumer, JszStream, JszSummary};

use crate::consumer::{ACK_PREFIX, AckReply, ConsumerBugs, ConsumerOptions, ConsumerState, FC_PREFIX, InflightCharge};
use crate::disk::Disk;
use crate::jetstream::ApiError;
use crate::mem::{Account, Charge, Ledger};
use crate::server::nats::broker::Message;
use crate::store::{FileStore, FileStoreConfig, MemStore, StoreMemory, SyncPolicy};
use crate::stream::{STREAM_DEDUP, StorageType, Stream, StreamBugs, StreamConfig, StreamOptions};
use crate::subject::{SubId, SubIndex};
use host::{ConsumerMeta, StreamHost, StreamMeta};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The `$JS.API.` prefix.
pub const API_PREFIX: &str = "$JS.API.";
/// JetStream API level advertised in `$JS.API.INFO` (`api.level`): 1 is nats-server
/// 2.11's (consumer pause, per-message TTL).
pub const API_LEVEL: u32 = 1;
/// The ledger accounts the engine charges: build the node's ledger with at least these
/// (e.g. `Ledger::with_defaults(ACCOUNTS)`), or [`JetStream::open`] panics.
pub const ACCOUNTS: &[&str] = &[
    crate::mem::names::CONSUMER_INFLIGHT,
    crate::mem::names::STORE_BUFFERS,
    crate::mem::names::STORE_CACHE,
    crate::mem::names::STORE_INDEX,
    crate::mem::names::STREAM_DEDUP,
    crate::mem::names::STREAM_PENDING,
];
/// Bytes charged to `stream.pending` per publish waiting for the sync, besides its
/// subject and reply (the queued PubAck and the unsynced entry).
pub const PENDING_ENTRY_COST: usize = 128;
/// Default bound of the API request queue (nats-server's `JSDefaultRequestQueueLimit`).
pub const DEFAULT_MAX_API_PENDING: usize = 10_000;

/// Known-bug switches for the simulation (all off in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsBugs {
    /// `ack-before-store`: send the PubAck at append time, before the group commit.
    pub ack_before_store: bool,
    /// The stream's switches (`dedup-forgets`).
    pub stream: StreamBugs,
    /// The consumers' switches (`ack-floor-skips`).
    pub consumer: ConsumerBugs,
    /// `evict-before-durable`: a file stream's limit evictions (and roll-ups) take
    /// effect when the publish is appended, not once it is durable (the store holds
    /// nothing, `store::held`): a publish its group commit refuses still evicts, and a
    /// KV put answered with an error loses the key's previous value.
    pub evict_before_durable: bool,
}

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct JsConfig {
    /// Directory on the [`Disk`] seam under which `jetstream/$G/...` lives.
    pub store_dir: String,
    /// Most bytes all memory streams may hold (`u64::MAX`: no limit).
    pub max_memory_store: u64,
    /// Most bytes all file streams may hold (`u64::MAX`: no limit).
    pub max_file_store: u64,
    /// Bound of the API request queue ([`JetStream::queue_api`]).
    pub max_api_pending: usize,
    /// The server's name, reported as `cluster.leader` in infos.
    pub server_name: String,
    /// File store tuning (its `sync` is replaced: the engine does group commit).
    pub file_store: FileStoreConfig,
    /// Per-consumer inflight window (bytes).
    pub inflight_window: u64,
    /// The server's consumer limits (`jetstream { limits { max_request_batch, max_ack_pending } }`).
    pub consumer_limits: crate::consumer::ServerLimits,
    /// Known-bug switches.
    pub bugs: JsBugs,
}

impl Default for JsConfig {
    fn default() -> Self {
        JsConfig {
            store_dir: "jetstream-data".into(),
            max_memory_store: u64::MAX,
            max_file_store: u64::MAX,
            max_api_pending: DEFAULT_MAX_API_PENDING,
            server_name: "weir".into(),
            file_store: FileStoreConfig::default(),
            inflight_window: crate::consumer::DEFAULT_INFLIGHT_WINDOW,
            consumer_limits: crate::consumer::ServerLimits::default(),
            bugs: JsBugs::default(),
        }
    }
}

/// Something the engine sends (see the module docs for how the shell routes each).
#[derive(Debug)]
pub enum JsOut {
    /// A server-originated message to publish on `msg.subject`.
    Publish(Message),
    /// A stream message for a consumer: deliver to subscribers of `to`, showing
    /// `msg.subject`/`msg.reply`; drop `charge` once it is handed off.
    Deliver {
        /// Subject whose subscribers get it (pull reply inbox or push deliver subject).
        to: String,
        /// The message as the client sees it (own subject, `$JS.ACK` reply).
        msg: Message,
        /// The `consumer.inflight` charge for its bytes.
        charge: InflightCharge,
    },
    /// Start (`watch`) or stop watching local interest in `subject` (a push consumer's
    /// deliver subject): report its current interest at once and every change through
    /// [`JetStream::on_interest`]. [`JetStream::watched_subjects`] lists them after open.
    Watch {
        /// The deliver subject.
        subject: String,
        /// Start (true) or stop (false).
        watch: bool,
    },
}

/// Something recovery (or persistence) found wrong, in clear text for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryNote {
    /// Stream concerned.
    pub stream: String,
    /// Consumer concerned, if any.
    pub consumer: Option<String>,
    /// What happened.
    pub text: String,
}

impl std::fmt::Display for RecoveryNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.consumer {
            Some(c) => write!(f, "JetStream stream {} consumer {}: {}", self.stream, c, self.text),
            None => write!(f, "JetStream stream {}: {}", self.stream, self.text),
        }
    }
}

/// Pause before the first new attempt to open a stream whose open failed for a
/// reason that may pass (see [`Unrecovered::transient`]), in ns; it doubles with every
/// failed attempt up to [`REOPEN_RETRY_MAX_NS`].
const REOPEN_RETRY_NS: i64 = 500_000_000;
/// Longest pause between attempts to open a stream (ns): 32 s.
const REOPEN_RETRY_MAX_NS: i64 = REOPEN_RETRY_NS << 6;

/// The pause before attempt `attempts + 1` to open a stream (ns).
fn reopen_backoff(attempts: u32) -> i64 {
    REOPEN_RETRY_NS.checked_shl(attempts.min(6)).unwrap_or(REOPEN_RETRY_MAX_NS).min(REOPEN_RETRY_MAX_NS)
}

/// Why a stream could not be opened from disk, and whether another attempt may succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Unrecovered {
    /// What went wrong (for the notes, STREAM.LIST's `offline` and `jsz`).
    text: String,
    /// The disk or the ledger refused: a read failed (EIO, a short read), the disk was
    /// full, a memory charge was refused. Such a failure may pass, so the engine tries
    /// again (with a growing pause, from [`JetStream::tick`]) instead of keeping the
    /// stream out of service until the next restart. Damaged or invalid metadata reads
    /// the same every time and is not retried.
    transient: bool,
}

impl Unrecovered {
    /// A failure that another attempt cannot change.
    fn permanent(text: String) -> Unrecovered {
        Unrecovered { text, transient: false }
    }

    /// A failure of the disk or the ledger, which may pass.
    fn transient(text: String) -> Unrecovered {
        Unrecovered { text, transient: true }
    }

    /// A metadata file that could not be read: transient if the disk failed the read.
    fn read(e: layout::ReadError) -> Unrecovered {
        match e {
            layout::ReadError::Io(t) => Unrecovered::transient(t),
            layout::ReadError::Corrupt(t) => Unrecovered::permanent(t),
        }
    }

    /// A store that would not open: transient when the disk or the ledger refused.
    fn store(dir: &str, e: &crate::store::StoreError) -> Unrecovered {
        use crate::store::StoreError as E;
        let text = format!("cannot open its store in {dir}: {e}");
        let transient = matches!(e, E::Io { .. } | E::NoSpace { .. } | E::NoMemory { .. } | E::Failed(_));
        Unrecovered { text, transient }
    }
}

impl std::fmt::Display for Unrecovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a stream's reopen carries over from the running stream (see [`JetStream::reopen`]).
struct Reopen {
    /// The running stream's dedup window, carried whole (its ids stay charged to
    /// `stream.dedup`; see [`crate::stream::Stream::take_dedup`]). `None` for a stream
    /// opened as at start, and while the reopened stream holds it.
    dedup: Option<crate::stream::Dedup>,
    /// The end of a hole in that window ([`crate::stream::Stream::dedup_gap_until_ns`]).
    dedup_gap_until_ns: i64,
    /// The consumers' ack state.
    carried: BTreeMap<String, ConsumerState>,
    /// Sequences answered with errors (they must not appear).
    refused: Vec<u64>,
    /// Removals since the last sync.
    removed: Vec<u64>,
    /// When to try again after a failed attempt (ns).
    retry_ns: i64,
    /// Failed attempts so far (the pause before the next one grows with them).
    attempts: u32,
    /// What the running store showed when it failed (see [`Shown`]).
    shown: Option<Shown>,
}

impl Reopen {
    /// Nothing carried over: a stream opened from what the disk holds, as at start.
    fn fresh() -> Reopen {
        Reopen {
            dedup: None,
            dedup_gap_until_ns: 0,
            carried: BTreeMap::new(),
            refused: Vec::new(),
            removed: Vec::new(),
            retry_ns: 0,
            attempts: 0,
            shown: None,
        }
    }
}

/// A listing of the streams directory that failed (see [`JetStream::recover_listed`]).
struct Unlisted {
    /// When to list again (ns).
    retry_ns: i64,
    /// Failed listings so far.
    attempts: u32,
    /// Why the last one failed.
    why: String,
}

/// The extent of a failed stream's running store as its consumers saw it, which its
/// reopen must not fall behind: everything it had removed stays removed (evictions by
/// durable publishes, expiry and purges whose delete records may not have reached the
/// disk), and its last sequence stays spent. Consumers and clients saw that store (a
/// consumer skips what a limit evicted, STREAM.INFO shows its first and last sequence),
/// so a reopen that brought an evicted message back behind a consumer, or handed out a
/// sequence again, would be a rollback they could see. Messages the store held (evicted
/// by publishes not yet durable, `store::held`) count as present: consumers still saw
/// them, and the failed commit refused the publishes that evicted them. The gaps are
/// as many as the running store had (bounded by its index, already charged to
/// `store.index`), held only until the reopen succeeds.
struct Shown {
    /// Its first sequence: everything below is removed again.
    first_seq: u64,
    /// Its last sequence: the reopened store skips to it (refused publishes keep their
    /// sequences spent, as deleted ones).
    last_seq: u64,
    /// Its interior gaps (deleted sequences between first and last).
    gaps: Vec<std::ops::RangeInclusive<u64>>,
}

impl Shown {
    /// What consumers saw of a store in state `st` (its deleted ranges filled) that
    /// holds the messages `held`: evicted by appends not yet durable, so still shown to
    /// consumers (`store::held`) and not to be removed again by the reopen (a failed
    /// commit refused those appends, so their evictions never happened).
    fn of(st: &crate::store::StoreState, held: &BTreeSet<u64>) -> Shown {
        let first_seq = held.first().map_or(st.first_seq, |&h| h.min(st.first_seq));
        let mut gaps: Vec<std::ops::RangeInclusive<u64>> = Vec::new();
        if first_seq < st.first_seq {
            gaps.push(first_seq..=st.first_seq - 1);
        }
        if st.msgs > 0 {
            gaps.extend(st.deleted.iter().cloned());
        }
        let mut out = Vec::with_capacity(gaps.len());
        for r in gaps {
            let mut from = *r.start();
            for &h in held.range(r.clone()) {
                if h > from {
                    out.push(from..=h - 1);
                }
                from = h + 1;
            }
            if from <= *r.end() {
                out.push(from..=*r.end());
            }
        }
        Shown { first_seq, last_seq: st.last_seq, gaps: out }
    }
}

/// The JetStream engine (see the module docs).
pub struct JetStream {
    cfg: JsConfig,
    disk: Arc<dyn Disk>,
    store_mem: StoreMemory,
    dedup: Arc<Account>,
    inflight: Arc<Account>,
    pending: Arc<Account>,
    streams: BTreeMap<String, StreamHost>,
    /// Streams that could not be opened, with why.
    failed: BTreeMap<String, String>,
    /// Failed streams whose open is retried because the error may pass (a failed
    /// store's reopen, a transient failure at start: [`Unrecovered::transient`]), with
    /// what the running stream carried over.
    reopening: BTreeMap<String, Reopen>,
    /// Set when listing the streams directory failed at start: when to list it again
    /// (ns). Until a listing succeeds, streams on disk may be unknown, so no stream is
    /// created (a create would clear an unlisted stream's directory).
    unlisted: Option<Unlisted>,
    /// Stream subjects -> stream name (routing and [`JetStream::wants`]).
    routes: SubIndex<String>,
    route_ids: BTreeMap<String, Vec<SubId>>,
    api_queue: VecDeque<Message>,
    stats: ApiStats,
    /// Counter for ephemeral consumer names.
    next_ephemeral: u64,
    /// Notes produced after open (persistence failures), for the shell to log.
    notes: Vec<RecoveryNote>,
    /// Streams with a mirror or sources, and where each origin is read ([`sources`]).
    sourcing: BTreeMap<String, sources::Sourcing>,
    /// Set when a source pump stopped short: tick at once to go on.
    source_wake: Option<i64>,
    /// The group commit whose fsyncs run outside the lock ([`JetStream::begin_sync`]).
    job: Option<SyncJob>,
    /// Id of the last group commit begun.
    next_job: u64,
    /// Consumer directories whose renamed state files the next commit syncs.
    dir_syncs: std::collections::BTreeSet<String>,
    /// A failure met while beginning the commit in flight, reported when it ends.
    sync_error: Option<std::io::Error>,
}

/// The fsyncs of a group commit, to run without the engine's lock: from
/// [`JetStream::begin_sync`], run by [`SyncJob::run`], handed back to
/// [`JetStream::end_sync`].
#[derive(Clone, Debug)]
pub struct SyncJob {
    id: u64,
    ios: Vec<SyncIo>,
}

#[derive(Clone, Debug)]
enum SyncIo {
    /// A file stream's written blocks (and directory).
    Store { stream: String, plan: crate::store::FlushPlan },
    /// A consumer state in its temp file; `cancelled` once the consumer went.
    State { stream: String, staged: host::StagedState, cancelled: bool },
    /// A consumer directory after renames.
    Dir(String),
}

/// What a [`SyncJob`]'s fsyncs came to: one result per fsync (the failing path and error).
#[derive(Debug)]
pub struct SyncDone {
    id: u64,
    results: Vec<Result<(), (String, std::io::Error)>>,
}

impl SyncJob {
    /// Run the fsyncs on `disk` (the engine's disk), in order, without the engine.
    pub fn run(&self, disk: &dyn Disk) -> SyncDone {
        let results = self
            .ios
            .iter()
            .map(|io| match io {
                SyncIo::Store { plan, .. } => plan.run(disk),
                SyncIo::State { staged, .. } => disk.sync(&staged.tmp).map_err(|e| (staged.tmp.clone(), e)),
                SyncIo::Dir(d) => disk.sync_dir(d).map_err(|e| (d.clone(), e)),
            })
            .collect();
        SyncDone { id: self.id, results }
    }
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("streams", &self.streams.len())
            .field("failed", &self.failed.len())
            .field("api_queue", &self.api_queue.len())
            .finish_non_exhaustive()
    }
}

impl JetStream {
    /// Open the engine: recover every stream (and its consumers) under `cfg.store_dir`.
    /// A stream that cannot be opened is reported in the notes and stays listed as
    /// failed; the others open. `ledger` must hold the accounts listed in the module docs.
    pub fn open(
        cfg: JsConfig,
        disk: Arc<dyn Disk>,
        ledger: Arc<Ledger>,
        now_ns: i64,
    ) -> (JetStream, Vec<RecoveryNote>) {
        let mut js = JetStream {
            store_mem: StoreMemory::from_ledger(&ledger),
            dedup: ledger.account(STREAM_DEDUP),
            inflight: ledger.account(crate::consumer::CONSUMER_INFLIGHT),
            // Ledgers built before `stream.pending` existed lack it: the engine then keeps
            // a private account at the registry's default limit (bounded all the same,
            // just not reported); add `ACCOUNTS` to the node's ledger to report it.
            pending: ledger.get(crate::mem::names::STREAM_PENDING).unwrap_or_else(|| {
                let name = crate::mem::names::STREAM_PENDING;
                Arc::new(Account::new(name, crate::mem::spec(name).default_limit))
            }),
            cfg,
            disk,
            streams: BTreeMap::new(),
            failed: BTreeMap::new(),
            reopening: BTreeMap::new(),
            unlisted: None,
            routes: SubIndex::new(),
            route_ids: BTreeMap::new(),
            api_queue: VecDeque::new(),
            stats: ApiStats::default(),
            next_ephemeral: 0,
            notes: Vec::new(),
            sourcing: BTreeMap::new(),
            source_wake: None,
            job: None,
            next_job: 0,
            dir_syncs: std::collections::BTreeSet::new(),
            sync_error: None,
        };
        // Push consumers need no `Watch` at start: the shell asks `watched_subjects`.
        js.recover_listed(now_ns, &mut Vec::new());
        let notes = js.take_notes();
        js.check();
        (js, notes)
    }

    /// List the streams directory and open every stream found that is neither in
    /// service nor failed already (with nothing carried over, as [`Reopen::fresh`]). A
    /// failed listing is tried again from [`JetStream::tick`], and so is a stream whose
    /// open failed for a reason that may pass ([`Unrecovered::transient`]).
    fn recover_listed(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        let dir = layout::streams_dir(&self.cfg.store_dir);
        let names = match layout::names_with_suffix(&*self.disk, &dir, layout::META_SUFFIX) {
            Ok(n) => n,
            Err(e) => {
                let why = format!("cannot list {dir}: {e}");
                self.notes.push(RecoveryNote { stream: "*".into(), consumer: None, text: why.clone() });
                let attempts = self.unlisted.as_ref().map_or(0, |u| u.attempts);
                self.unlisted = Some(Unlisted {
                    retry_ns: now_ns.saturating_add(reopen_backoff(attempts)),
                    attempts: attempts.saturating_add(1),
                    why,
                });
                return;
            }
        };
        self.unlisted = None;
        for name in names {
            if !self.streams.contains_key(&name) && !self.failed.contains_key(&name) {
                self.try_reopen(&name, now_ns, Reopen::fresh(), out);
            }
        }
    }

    /// Recover stream `name` and its consumers from disk; a consumer named in `carried`
    /// takes that ack state instead of the one on disk (a reopen keeps what the running
    /// consumers knew), and the `refused` sequences are dropped from the store before
    /// its limits apply ([`FileStore::open_dropping`]).
    fn recover_stream(
        &mut self,
        name: &str,
        now_ns: i64,
        carried: &BTreeMap<String, ConsumerState>,
        refused: &[u64],
        notes: &mut Vec<RecoveryNote>,
    ) -> Result<StreamHost, Unrecovered> {
        let path = layout::stream_meta(&self.cfg.store_dir, name);
        let body = layout::read_checked(&*self.disk, &path).map_err(Unrecovered::read)?;
        let meta: StreamMeta =
            serde_json::from_slice(&body).map_err(|e| Unrecovered::permanent(format!("{path} is unreadable: {e}")))?;
        if meta.config.name != name {
            return Err(Unrecovered::permanent(format!("{path} names another stream ({:?})", meta.config.name)));
        }
        let cfg = meta
            .config
            .check(false)
            .map_err(|e| Unrecovered::permanent(format!("{path} holds an invalid config: {}", e.description)))?;
        let mut host = self.open_stream(cfg, meta.created_ns, now_ns, false, refused, notes)?;
        let dir = layout::consumers_dir(&self.cfg.store_dir, name);
        let consumers = layout::names_with_suffix(&*self.disk, &dir, layout::META_SUFFIX)
            .map_err(|e| Unrecovered::transient(format!("cannot list {dir}: {e}")))?;
        for c in consumers {
            let note = |text: String| RecoveryNote { stream: name.to_string(), consumer: Some(c.clone()), text };
            // A consumer whose files the disk failed to read fails the whole stream's
            // recovery, to be retried: going on without it would lose a durable
            // consumer (or its acks) to one failed read. Damaged files are reported
            // and recovery goes on without them, as they read the same every time.
            let mpath = layout::consumer_meta(&self.cfg.store_dir, name, &c);
            let meta: ConsumerMeta = match layout::read_checked(&*self.disk, &mpath) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(m) => m,
                    Err(e) => {
                        notes.push(note(format!("{mpath} is unreadable: {e}")));
                        continue;
                    }
                },
                Err(e @ layout::ReadError::Io(_)) => return Err(Unrecovered::read(e)),
                Err(layout::ReadError::Corrupt(t)) => {
                    notes.push(note(t));
                    continue;
                }
            };
            let state = if let Some(st) = carried.get(&c) {
                Some(st.clone())
            } else if host.is_file() {
                let spath = layout::consumer_state(&self.cfg.store_dir, name, &c);
                if self.disk.exists(&spath) {
                    let decoded = match layout::read_checked(&*self.disk, &spath) {
                        Ok(b) => ConsumerState::decode(&b),
                        Err(e @ layout::ReadError::Io(_)) => return Err(Unrecovered::read(e)),
                        Err(layout::ReadError::Corrupt(t)) => Err(t),
                    };
                    match decoded {
                        Ok(s) => Some(s),
                        Err(t) => {
                            notes.push(note(format!(
                                "{t}; ack state reset to the ack floor 0 (messages will be redelivered)"
                            )));
                            None
                        }
                    }
                } else {
                    None
                }
            } else {
                None
            };
            if let Err(t) = host.restore_consumer(now_ns, meta, state, self.consumer_options()) {
                notes.push(note(format!("cannot restore: {t}")));
            }
        }
        Ok(host)
    }

    /// Open (or create) the store and stream for a checked config; `refused` are
    /// sequences a failed commit refused, dropped from a file store as it opens. A file
    /// store holds the removals appends cause until the group commit makes the append
    /// durable (`store::held`; released by [`StreamHost::end_sync`]).
    fn open_stream(
        &mut self,
        cfg: StreamConfig,
        created_ns: i64,
        now_ns: i64,
        fresh: bool,
        refused: &[u64],
        notes: &mut Vec<RecoveryNote>,
    ) -> Result<StreamHost, Unrecovered> {
        let name = cfg.name.clone();
        let store = match cfg.storage {
            StorageType::Memory => {
                AnyStore::Mem(MemStore::new(cfg.store_limits()).map_err(|e| Unrecovered::permanent(e.to_string()))?)
            }
            StorageType::File => {
                let dir = layout::msgs_dir(&self.cfg.store_dir, &name);
                if fresh {
                    layout::clear_dir(&*self.disk, &dir)
                        .map_err(|e| Unrecovered::transient(format!("cannot clear {dir}: {e}")))?;
                }
                let mut fcfg = self.cfg.file_store.clone();
                // Group commit: the engine flushes in `sync`; the interval never elapses.
                fcfg.sync = SyncPolicy::Interval(Duration::from_secs(100 * 365 * 24 * 3600));
                let mut fs = FileStore::open_dropping(
                    self.disk.clone(),
                    &dir,
                    cfg.store_limits(),
                    fcfg,
                    self.store_mem.clone(),
                    refused,
                )
                .map_err(|e| Unrecovered::store(&dir, &e))?;
                let hold = !self.cfg.bugs.evict_before_durable;
                fs.hold_removals(hold).map_err(|e| Unrecovered::store(&dir, &e))?;
                let rep = fs.recovery();
                if !rep.is_clean() {
                    notes.push(RecoveryNote {
                        stream: name.clone(),
                        consumer: None,
                        text: format!(
                            "store recovered with damage: lost sequences {:?}, {} damaged regions, foreign files {:?}",
                            rep.lost.iter().map(|l| l.seqs.clone()).collect::<Vec<_>>(),
                            rep.damaged.len(),
                            rep.foreign
                        ),
                    });
                }
                AnyStore::File(Box::new(fs))
            }
        };
        let opts = StreamOptions { dedup_account: self.dedup.clone(), bugs: self.cfg.bugs.stream };
        // The config was checked before: what fails here is the store (enforcing the
        // limits, the reads that rebuild the dedup window), so another attempt may pass.
        let stream =
            Stream::open(cfg, store, created_ns, now_ns, opts).map_err(|e| Unrecovered::transient(e.description))?;
        let mut host = StreamHost::new(stream);
        host.pending = Some(self.pending.clone());
        Ok(host)
    }

    fn consumer_options(&self) -> ConsumerOptions {
        ConsumerOptions {
            inflight_window: self.cfg.inflight_window,
            node_inflight: Some(self.inflight.clone()),
            bugs: self.cfg.bugs.consumer,
            ..ConsumerOptions::default()
        }
    }

    /// Put an opened stream in service (routing of its subjects).
    fn install(&mut self, host: StreamHost) {
        let name = host.name().to_string();
        self.route(&name, &host.stream.config().subjects.clone());
        self.failed.remove(&name);
        self.reopening.remove(&name);
        self.streams.insert(name.clone(), host);
        self.refresh_sourcing(&name, false);
    }

    fn route(&mut self, name: &str, subjects: &[String]) {
        for id in self.route_ids.remove(name).unwrap_or_default() {
            self.routes.remove(id);
        }
        let ids = subjects.iter().filter_map(|s| self.routes.insert(s, None, name.to_string()).ok()).collect();
        self.route_ids.insert(name.to_string(), ids);
    }

    fn unroute(&mut self, name: &str) {
        for id in self.route_ids.remove(name).unwrap_or_default() {
            self.routes.remove(id);
        }
    }

    /// Whether the engine wants a message published on `subject`: `$JS.API.>`,
    /// `$JS.ACK.>`, `$JS.FC.>` and every stream subject. Cheap (a subject-tree lookup).
    pub fn wants(&self, subject: &str) -> bool {
        subject.starts_with("$JS.")
            && (subject.starts_with(API_PREFIX) || subject.starts_with(ACK_PREFIX) || subject.starts_with(FC_PREFIX))
            || self.routes.interest(subject)
    }

    /// Handle a message the broker routed here ([`JetStream::wants`] said yes): API
    /// requests, publishes into streams, acks, flow-control replies, pull requests.
    pub fn on_message(&mut self, now_ns: i64, msg: &Message, out: &mut Vec<JsOut>) {
        let subject = msg.subject.as_str();
        if subject.starts_with(API_PREFIX) {
            if self.queue_api(msg, out) {
                self.run_api(now_ns, out);
            }
        } else if subject.starts_with(ACK_PREFIX) {
            self.on_ack(now_ns, msg, out);
        } else if subject.starts_with(FC_PREFIX) {
            self.on_fc(now_ns, subject, out);
        } else {
            self.on_publish(now_ns, msg, out);
        }
        self.pump_sources(now_ns, out);
        self.reap();
        self.check();
    }

    /// Queue an API request without answering it yet (answered by [`JetStream::poll`] or
    /// the next [`JetStream::on_message`]). Over `max_api_pending` the request is
    /// answered at once with 10023 "insufficient resources" and counted; returns whether
    /// it was queued.
    pub fn queue_api(&mut self, msg: &Message, out: &mut Vec<JsOut>) -> bool {
        if self.api_queue.len() >= self.cfg.max_api_pending {
            self.stats.total += 1;
            self.stats.errors += 1;
            self.stats.overflow += 1;
            if let Some(r) = msg.reply.as_ref().filter(|r| !r.is_empty()) {
                let body = crate::jetstream::api_error_response("api", &ApiError::insufficient_resources());
                out.push(JsOut::Publish(host::plain(r, body)));
            }
            return false;
        }
        self.api_queue.push_back(msg.clone());
        true
    }

    fn run_api(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        while let Some(m) = self.api_queue.pop_front() {
            self.handle_api(now_ns, &m, out);
        }
    }

    fn on_publish(&mut self, now_ns: i64, msg: &Message, out: &mut Vec<JsOut>) {
        let subject = msg.subject.as_str();
        let Some(name) = self.routes.matching_refs(subject).plain.first().map(|s| (*s).clone()) else { return };
        let reply = msg.reply.as_ref().map(|r| r.as_str());
        let headers: &[u8] = msg.headers.as_deref().unwrap_or(&[]);
        let over = self.over_storage_limit(&name);
        let ack_before_store = self.cfg.bugs.ack_before_store;
        let Some(file) = self.streams.get(&name).map(StreamHost::is_file) else { return };
        let mut charge = None;
        if file && !over {
            // What waits for the group commit is charged to `stream.pending`; when it is
            // full, the commit runs now (push-back by syncing, not by refusing).
            let cost = (PENDING_ENTRY_COST + subject.len() + reply.map_or(0, str::len)) as u64;
            charge = Charge::try_new(&self.pending, cost);
            if charge.is_none() {
                let _ = self.sync(now_ns, out);
                charge = Charge::try_new(&self.pending, cost);
            }
        }
        let Some(host) = self.streams.get_mut(&name) else { return };
        if over || (file && charge.is_none()) {
            if let Some(to) = reply.filter(|r| !r.is_empty()) {
                let body = crate::stream::pub_ack_error_json(&name, &ApiError::insufficient_resources());
                out.push(JsOut::Publish(host::plain(to, body)));
            }
            return;
        }
        host.publish(now_ns, subject, reply, headers, &msg.payload, ack_before_store, charge, out);
    }

    /// Whether the storage class of stream `name` is at its server-wide limit.
    fn over_storage_limit(&self, name: &str) -> bool {
        let Some(h) = self.streams.get(name) else { return false };
        let file = h.is_file();
        let limit = if file { self.cfg.max_file_store } else { self.cfg.max_memory_store };
        if limit == u64::MAX {
            return false;
        }
        let used: u64 =
            self.streams.values().filter(|s| s.is_file() == file).map(|s| s.stream.store_state().bytes).sum();
        used >= limit
    }

    fn on_ack(&mut self, now_ns: i64, msg: &Message, out: &mut Vec<JsOut>) {
        let subject = msg.subject.as_str();
        let Some(info) = AckReply::parse(subject) else { return };
        let Some(host) = self.streams.get_mut(&info.stream) else { return };
        let reply = msg.reply.as_ref().map(|r| r.as_str());
        let payload = msg.payload.clone();
        host.with_consumer(now_ns, &info.consumer, out, |c, v, now| c.on_ack(now, subject, &payload, reply, v));
    }

    fn on_fc(&mut self, now_ns: i64, subject: &str, out: &mut Vec<JsOut>) {
        let mut t = subject.split('.');
        let (Some(_), Some(_), Some(stream), Some(consumer)) = (t.next(), t.next(), t.next(), t.next()) else { return };
        let Some(host) = self.streams.get_mut(stream) else { return };
        host.with_consumer(now_ns, consumer, out, |c, v, now| c.on_flow_control_reply(now, subject, v));
    }

    /// Whether [`JetStream::sync`] (or [`JetStream::begin_sync`]) has work: appended
    /// messages whose PubAcks wait for durability, unsynced deletes, consumer states to
    /// persist, or directories to sync after renaming consumer states.
    pub fn needs_sync(&self) -> bool {
        !self.dir_syncs.is_empty() || self.streams.values().any(|h| h.needs_sync() || h.consumers_dirty())
    }

    /// The group commit in one go, under the caller's lock: end the commit in flight (its
    /// fsyncs are run again here), then [`JetStream::begin_sync`], the fsyncs and
    /// [`JetStream::end_sync`]. The first error is returned.
    pub fn sync(&mut self, now_ns: i64, out: &mut Vec<JsOut>) -> std::io::Result<()> {
        let mut first = None;
        if let Some(job) = self.job.clone() {
            let done = job.run(&*self.disk);
            first = self.end_sync(now_ns, done, out).err();
        }
        match self.begin_sync(now_ns, out) {
            Ok(Some(job)) => {
                let done = job.run(&*self.disk);
                if let Err(e) = self.end_sync(now_ns, done, out) {
                    first.get_or_insert(e);
                }
            }
            Ok(None) => {}
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        for d in std::mem::take(&mut self.dir_syncs) {
            if let Err(e) = self.disk.sync_dir(&d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Group commit, first half (under the shell's lock): every dirty store hands its
    /// buffered writes to the disk and every consumer whose ack state moved writes it to
    /// a temp file; what waits for them (PubAcks, new messages for the consumers) is set
    /// aside. Returns the fsyncs to run *without* the lock ([`SyncJob::run`]), to be
    /// handed back to [`JetStream::end_sync`]; `Ok(None)` when there is nothing to do or
    /// a commit is in flight already; an error when a store failed and nothing else was
    /// due (its waiting publishes were answered with errors and it was reopened).
    /// Publishes after this call wait for the next commit.
    pub fn begin_sync(&mut self, now_ns: i64, out: &mut Vec<JsOut>) -> std::io::Result<Option<SyncJob>> {
        if self.job.is_some() {
            return Ok(None);
        }
        self.next_job += 1;
        let id = self.next_job;
        let mut ios: Vec<SyncIo> = std::mem::take(&mut self.dir_syncs).into_iter().map(SyncIo::Dir).collect();
        let mut joined = false;
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            let Some(host) = self.streams.get_mut(&name) else { continue };
            if !host.needs_sync() && !host.consumers_dirty() {
                continue;
            }
            match host.begin_sync(id, out) {
                Ok(plan) => ios.extend(plan.map(|plan| SyncIo::Store { stream: name.clone(), plan })),
                Err((e, refused)) => {
                    self.sync_error.get_or_insert_with(|| std::io::Error::other(e.to_string()));
                    self.reopen(&name, now_ns, &refused, out);
                    continue;
                }
            }
            joined = true;
            let (staged, notes) = host.stage_consumers(&*self.disk, &self.cfg.store_dir);
            if let Some(n) = notes.first() {
                self.sync_error.get_or_insert_with(|| std::io::Error::other(n.text.clone()));
            }
            self.notes.extend(notes);
            ios.extend(staged.into_iter().map(|staged| SyncIo::State {
                stream: name.clone(),
                staged,
                cancelled: false,
            }));
        }
        self.reap();
        if ios.is_empty() && !joined {
            self.check();
            return match self.sync_error.take() {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let job = SyncJob { id, ios };
        self.job = Some(job.clone());
        self.check();
        Ok(Some(job))
    }

    /// Group commit, second half (under the lock again) with the fsyncs' results: on
    /// success the committed PubAcks go out and the consumers see the new messages, and
    /// the synced consumer states are renamed into place (their directories are synced
    /// by the next commit); a failed store answers its waiting publishes with errors and
    /// is reopened from disk. A `done` of a commit that [`JetStream::sync`] ended already
    /// is ignored. The first error is returned.
    pub fn end_sync(&mut self, now_ns: i64, done: SyncDone, out: &mut Vec<JsOut>) -> std::io::Result<()> {
        let Some(job) = self.job.take_if(|j| j.id == done.id) else { return Ok(()) };
        let mut first = self.sync_error.take();
        let mut stores: BTreeMap<String, Result<(), crate::store::StoreError>> = BTreeMap::new();
        let mut states = Vec::new();
        for (io, r) in job.ios.into_iter().zip(done.results) {
            match io {
                SyncIo::Store { stream, .. } => {
                    let r = r.map_err(|(path, e)| {
                        let fs = self.streams.get_mut(&stream).and_then(|h| h.stream.store_mut().file_mut());
                        match fs {
                            Some(fs) => fs.flush_failed(&path, e),
                            None => crate::store::StoreError::Failed(format!("sync {path}: {e}")),
                        }
                    });
                    stores.insert(stream, r);
                }
                SyncIo::State { stream, staged, cancelled } => states.push((stream, staged, cancelled, r)),
                SyncIo::Dir(d) => {
                    if let Err((_, e)) = r {
                        first.get_or_insert(std::io::Error::other(format!("sync_dir {d}: {e}")));
                    }
                }
            }
        }
        let mut ended = std::collections::BTreeSet::new();
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            let Some(host) = self.streams.get_mut(&name) else { continue };
            if host.commit.as_ref().is_none_or(|c| c.job != job.id) {
                continue;
            }
            let r = stores.remove(&name).unwrap_or(Ok(()));
            match host.end_sync(now_ns, r, out) {
                Ok(()) => {
                    ended.insert(name);
                }
                Err((e, refused)) => {
                    first.get_or_insert_with(|| std::io::Error::other(e.to_string()));
                    self.reopen(&name, now_ns, &refused, out);
                }
            }
        }
        for (stream, staged, cancelled, r) in states {
            let host = self.streams.get_mut(&stream).filter(|_| !cancelled && ended.contains(&stream));
            let Some(host) = host else {
                let _ = layout::remove_if_present(&*self.disk, &staged.tmp);
                continue;
            };
            let (synced_dir, note) = host.commit_state(&*self.disk, &staged, r.map_err(|(_, e)| e.to_string()));
            if synced_dir {
                self.dir_syncs.insert(layout::consumers_dir(&self.cfg.store_dir, &stream));
            }
            if let Some(n) = note {
                first.get_or_insert_with(|| std::io::Error::other(n.text.clone()));
                self.notes.push(n);
            }
        }
        // Held AckSync replies go out only now, once the states they confirm are renamed
        // into place (a failed store was reopened above and dropped its replies unsent).
        for name in &ended {
            if let Some(host) = self.streams.get_mut(name) {
                host.release_replies(out);
            }
        }
        self.pump_sources(now_ns, out);
        self.reap();
        self.check();
        first.map_or(Ok(()), Err)
    }

    /// Reopen stream `name` from disk after its store failed (after a failed fsync the
    /// kernel's view of the file is unknown, so only a fresh read of the disk is
    /// trusted): what the disk kept comes back, except the `refused` sequences (answered
    /// with errors, so they must not appear). What the running stream knew that is not
    /// derived from the disk is carried over, so that the reopen is no rollback that
    /// clients could see: the consumers' ack state (no redelivery of acked messages, no
    /// second first-delivery), the removals since the last sync (acked workqueue and
    /// interest messages stay removed) and the dedup window (ids of removed messages
    /// still answer retries), and the running store's extent (its removals and its last
    /// sequence, see [`Shown`]). Held AckSync replies are dropped unsent (never confirmed;
    /// the client acks again). If it cannot be opened the stream is listed as failed.
    /// A reopen that fails for a reason that may pass ([`Unrecovered::transient`]) is
    /// retried from [`JetStream::tick`], first after [`REOPEN_RETRY_NS`] and then with a
    /// doubling pause, with the same carried-over state.
    fn reopen(&mut self, name: &str, now_ns: i64, refused: &[u64], out: &mut Vec<JsOut>) {
        let Some(mut old) = self.streams.remove(name) else { return };
        self.sourcing.remove(name);
        let (dedup, dedup_gap_until_ns) = old.stream.take_dedup();
        let dedup = Some(dedup);
        let carried: BTreeMap<String, ConsumerState> =
            old.consumers.iter().map(|(n, h)| (n.clone(), h.c.state())).collect();
        let removed = std::mem::take(&mut old.removed);
        let req = crate::store::StateRequest { deleted: true, subjects: None };
        let held: BTreeSet<u64> =
            old.stream.store_mut().file_mut().map(|fs| fs.held_seqs().collect()).unwrap_or_default();
        let shown = crate::store::MsgStore::state_with(old.stream.store(), &req).ok().map(|st| Shown::of(&st, &held));
        for h in old.consumers.values_mut() {
            // Their waiting pull requests end; the consumers come back from disk.
            h.c.leadership_lost();
            for e in h.c.drain_effects() {
                if let crate::consumer::Effect::Status { to, reply, headers } = e {
                    out.push(JsOut::Publish(host::status_msg(&to, reply, headers)));
                }
            }
        }
        drop(old);
        self.unroute(name);
        let r = Reopen {
            dedup,
            dedup_gap_until_ns,
            carried,
            refused: refused.to_vec(),
            removed,
            retry_ns: 0,
            attempts: 0,
            shown,
        };
        self.try_reopen(name, now_ns, r, out);
    }

    /// Open stream `name` again from disk with the state `r` carries over (see
    /// [`JetStream::reopen`]); on failure the stream is listed as failed and the reopen
    /// is retried later.
    fn try_reopen(&mut self, name: &str, now_ns: i64, mut r: Reopen, out: &mut Vec<JsOut>) {
        let mut notes = Vec::new();
        let recovered = self.recover_stream(name, now_ns, &r.carried, &r.refused, &mut notes).and_then(|mut host| {
            if let Some(d) = r.dedup.take() {
                host.stream.adopt_dedup(d, r.dedup_gap_until_ns, &r.refused, now_ns);
            }
            for seq in r.refused.iter().chain(&r.removed) {
                if let Ok(Some(m)) = crate::store::MsgStore::load(host.stream.store_mut(), *seq) {
                    host.remove_seq(now_ns, *seq, &m.subject, out);
                }
            }
            let Some(s) = &r.shown else { return Ok(host) };
            match host.keep_extent(now_ns, s.first_seq, s.last_seq, &s.gaps, out) {
                Ok(()) => Ok(host),
                Err(e) => {
                    // The next attempt carries the window again.
                    let (d, gap) = host.stream.take_dedup();
                    (r.dedup, r.dedup_gap_until_ns) = (Some(d), gap);
                    Err(Unrecovered::transient(format!(
                        "cannot keep what the stream showed before its store failed: {e}"
                    )))
                }
            }
        });
        match recovered {
            Ok(host) => {
                // Restored push consumers start unbound: the shell reports their interest again.
                for h in host.consumers.values() {
                    let subject = h.c.config().deliver_subject.clone();
                    if !subject.is_empty() {
                        out.push(JsOut::Watch { subject, watch: true });
                    }
                }
                self.install(host);
            }
            Err(u) => {
                notes.push(RecoveryNote { stream: name.into(), consumer: None, text: u.text.clone() });
                self.failed.insert(name.to_string(), u.text);
                if u.transient {
                    r.retry_ns = now_ns.saturating_add(reopen_backoff(r.attempts));
                    r.attempts = r.attempts.saturating_add(1);
                    self.reopening.insert(name.to_string(), r);
                }
            }
        }
        self.notes.extend(notes);
    }

    /// Notes produced since the last call (persistence failures, reopened streams), for the log.
    pub fn take_notes(&mut self) -> Vec<RecoveryNote> {
        std::mem::take(&mut self.notes)
    }

    /// Local interest in `subject` changed: push consumers whose `deliver_subject` it is
    /// become active or inactive; with `active == false`, pull requests waiting with
    /// `subject` as their reply inbox are dropped (the client went away).
    pub fn on_interest(&mut self, now_ns: i64, subject: &str, active: bool, out: &mut Vec<JsOut>) {
        for host in self.streams.values_mut() {
            let names: Vec<String> = host.consumers.keys().cloned().collect();
            for n in names {
                host.with_consumer(now_ns, &n, out, |c, v, now| {
                    if c.config().deliver_subject == subject {
                        c.set_push_active(now, active, v);
                    } else if !active && !c.config().is_push() {
                        c.cancel_requests(now, |r| r == subject);
                    }
                });
            }
        }
        self.reap();
        self.check();
    }

    /// Drive time: stream expiry (`max_age`, TTLs, dedup window), consumer deadlines
    /// (redelivery, request expiry, heartbeats, inactivity), file store cache expiry.
    pub fn tick(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        if self.unlisted.as_ref().is_some_and(|u| u.retry_ns <= now_ns) {
            self.recover_listed(now_ns, out);
        }
        let due: Vec<String> =
            self.reopening.iter().filter(|(_, r)| r.retry_ns <= now_ns).map(|(n, _)| n.clone()).collect();
        for name in due {
            if let Some(r) = self.reopening.remove(&name) {
                self.try_reopen(&name, now_ns, r, out);
            }
        }
        for host in self.streams.values_mut() {
            let before = host.stream.store_state();
            if host.stream.tick(now_ns).is_err() {
                host.dirty = true;
            }
            let after = host.stream.store_state();
            let markers = host.stream.take_markers();
            if after.msgs != before.msgs || !markers.is_empty() {
                host.dirty |= host.is_file();
                if !host.has_unsynced() {
                    host.resync_consumers(now_ns, out);
                } else {
                    host.resync = true;
                }
            }
            host.self_appended(now_ns, markers, out);
            if let Some(fs) = host.stream.store_mut().file_mut() {
                let _ = fs.tick(Duration::from_nanos(now_ns.max(0) as u64));
            }
            let names: Vec<String> = host.consumers.keys().cloned().collect();
            for n in names {
                let due = host.consumers.get(&n).and_then(|h| h.c.next_deadline()).is_some_and(|d| d <= now_ns);
                if due {
                    host.with_consumer(now_ns, &n, out, |c, v, now| c.tick(now, v));
                }
            }
        }
        self.poll(now_ns, out);
    }

    /// The earliest time [`JetStream::tick`] has work (ns), if any.
    pub fn next_deadline(&mut self) -> Option<i64> {
        let mut t: Option<i64> = None;
        for host in self.streams.values_mut() {
            for d in [host.stream.next_deadline()]
                .into_iter()
                .chain(host.consumers.values().map(|h| h.c.next_deadline()))
                .flatten()
            {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        }
        let retries = self.reopening.values().map(|r| r.retry_ns).chain(self.unlisted.as_ref().map(|u| u.retry_ns));
        for d in self.source_wake.into_iter().chain(retries) {
            t = Some(t.map_or(d, |t| t.min(d)));
        }
        t
    }

    /// Answer queued API requests and let consumers blocked on `consumer.inflight`
    /// deliver again (call after dropping [`JsOut::Deliver`] charges).
    pub fn poll(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        self.run_api(now_ns, out);
        self.pump_sources(now_ns, out);
        for host in self.streams.values_mut() {
            let blocked: Vec<String> =
                host.consumers.iter().filter(|(_, h)| h.c.blocked_on_inflight()).map(|(n, _)| n.clone()).collect();
            for n in blocked {
                host.with_consumer(now_ns, &n, out, |c, v, now| c.poll(now, v));
            }
        }
        self.reap();
        self.check();
    }

    /// Deliver subjects of push consumers, whose interest the shell must report through
    /// [`JetStream::on_interest`] (call after [`JetStream::open`]; later changes come as
    /// [`JsOut::Watch`]).
    pub fn watched_subjects(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .values()
            .flat_map(|h| h.consumers.values().map(|c| c.c.config().deliver_subject.clone()))
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Names of the streams in service.
    pub fn stream_names(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }

    /// Streams that could not be opened, with the reason.
    pub fn failed_streams(&self) -> &BTreeMap<String, String> {
        &self.failed
    }

    /// The engine's configuration.
    pub fn config(&self) -> &JsConfig {
        &self.cfg
    }

    fn check(&self) {
        #[cfg(any(test, debug_assertions))]
        self.invariants();
    }

    /// Check the engine's consistency (panics on a violation): every stream routes
    /// exactly its subjects, no stream is both in service and failed, a stream whose
    /// reopen is retried is listed as failed, each host shows
    /// consumers only durable messages, its consumers are registered with the stream,
    /// and every stream and consumer passes its own invariants.
    ///
    /// The walk over streams and consumers runs when [`crate::checks::walk`] allows one
    /// over their number; each stream's and consumer's own checks bound their walks.
    pub fn invariants(&self) {
        assert_eq!(self.route_ids.len(), self.streams.len(), "routed streams differ from streams in service");
        assert!(self.api_queue.len() <= self.cfg.max_api_pending, "API queue over its bound");
        for name in self.reopening.keys() {
            assert!(self.failed.contains_key(name), "stream {name} is being reopened but not listed as failed");
        }
        let items = self.streams.len() + self.streams.values().map(|h| h.consumers.len()).sum::<usize>();
        if !crate::checks::walk(items) {
            return;
        }
        for (name, host) in &self.streams {
            assert!(!self.failed.contains_key(name), "stream {name} is both in service and failed");
            assert_eq!(host.name(), name);
            let ids = &self.route_ids[name];
            assert_eq!(ids.len(), host.stream.config().subjects.len(), "stream {name} routes other subjects");
            for id in ids {
                assert_eq!(self.routes.get(*id).map(String::as_str), Some(name.as_str()));
            }
            let st = host.stream.store_state();
            assert!(host.visible <= st.last_seq, "stream {name} shows unassigned sequences");
            if !host.is_file() {
                assert!(host.unsynced.is_empty() && host.acks.is_empty(), "memory stream {name} waits for a sync");
            }
            assert!(
                host.unsynced.iter().all(|(s, _)| *s > host.visible),
                "stream {name}: an unsynced message is visible"
            );
            if let Some(c) = &host.commit {
                assert_eq!(
                    Some(c.job),
                    self.job.as_ref().map(|j| j.id),
                    "stream {name}: a commit outside the one in flight"
                );
                assert!(
                    c.unsynced.iter().all(|(s, _)| *s > host.visible),
                    "stream {name}: a committing message is visible"
                );
            }
            assert_eq!(host.stream.consumer_count(), host.consumers.len(), "stream {name}: consumer registry differs");
            assert!(host.gone.is_empty(), "stream {name}: removed consumers' files were not reaped");
            host.stream.invariants();
            for (cname, h) in &host.consumers {
                assert_eq!(h.c.name(), cname);
                h.c.invariants();
            }
        }
        self.sourcing_invariants();
    }
}

/// The shell keeps the engine behind a lock shared by connection tasks.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<JetStream>();
};
