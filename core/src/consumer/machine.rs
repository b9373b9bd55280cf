//! The consumer state machine: inputs (pull requests, acks, stream changes, time) in,
//! [`Effect`]s out. It never reads a clock or does I/O; messages come through the
//! [`StreamReader`] the caller passes in.
//!
//! # Sequences and the ack floor
//!
//! `next_seq` is the next stream sequence to consider for a first delivery; every first
//! delivery and every redelivery takes the next consumer sequence. A message delivered
//! under ack explicit/all sits in `pending` (keyed by stream sequence, with its first
//! consumer sequence, delivery count and ack deadline) until it is acked, terminated, runs
//! out of deliveries or leaves the stream. The ack floor is derived from `pending`, never
//! moved by an ack alone: with nothing pending it is the last delivery, otherwise it sits
//! just below the oldest pending message. That is what makes "the floor never passes an
//! unacked message" true by construction; [`ConsumerBugs::ack_floor_skips`] breaks it on
//! purpose so that the simulation's checker can prove it would notice.
//!
//! # Pending counts
//!
//! `num_pending` (messages matching the filters at or after `next_seq`) is asked of the
//! stream once, at creation, and then kept up to date from [`Consumer::on_stream_append`]
//! and [`Consumer::on_stream_remove`]: creating a consumer and delivering never scan the
//! stream (nats-server issues #7082 and #8031), and `num_pending == 0` lets a caught-up
//! consumer skip the store entirely.
//!
//! # Memory
//!
//! Every delivery carries an [`InflightCharge`] for its bytes: a per-consumer window and,
//! when given, the node's `consumer.inflight` ledger account. The shell drops the charge once
//! the message is handed to the client's outbound buffer. At either limit the consumer
//! stops loading and waits for [`Consumer::poll`] after charges come back; nothing is
//! buffered. Pending acks are bounded by `max_ack_pending`, waiting pull requests by
//! `max_waiting`, redeliveries by `pending`.

use super::ack::{AckKind, AckReply, FC_PREFIX};
use super::config::{
    AckPolicy, ConsumerConfig, DEFAULT_EPHEMERAL_INACTIVE_NS, DeliverPolicy, ReplayPolicy, StreamSummary,
};
use super::effect::{Advisory, Delivery, DoneReason, Effect, InflightCharge};
use super::error::ConsumerError;
use super::info::{ConsumerInfo, SequenceInfo};
use super::priority::{Pin, PriorityGroupState, PriorityPolicy, PullGroup};
use super::pull::{self, PullRequest};
use super::state::{ConsumerState, PendingEntry, SeqPair};
use crate::jetstream::{NANOS_PER_SEC, format_go_duration};
use crate::mem::{Account, Charge};
use crate::store::{StoreError, StoredMsg};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod priority;
mod reset;

pub use crate::mem::names::CONSUMER_INFLIGHT;
/// Default per-consumer inflight window (bytes).
pub const DEFAULT_INFLIGHT_WINDOW: u64 = 4 * 1024 * 1024;
/// Most bytes a push consumer with flow control has outstanding (`JsFlowControlMaxPending`).
pub const FLOW_CONTROL_MAX_PENDING: u64 = 32 * 1024 * 1024;

/// How a consumer reads its stream. The stream host implements it over its store and
/// its per-subject state; every method must be cheap (no scans for the counting ones).
pub trait StreamReader {
    /// The message at `seq`, if stored.
    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>, StoreError>;
    /// The first message at or after `from_seq` whose subject matches any of `filters`
    /// (empty `filters`: any subject).
    fn load_next(&mut self, filters: &[String], from_seq: u64) -> Result<Option<StoredMsg>, StoreError>;
    /// The sequence of the newest message matching `filters`.
    fn last_seq_matching(&mut self, filters: &[String]) -> Option<u64>;
    /// The newest sequence of every distinct subject matching `filters` (for
    /// `last_per_subject`), in any order.
    fn last_per_subject(&mut self, filters: &[String]) -> Vec<u64>;
    /// The first sequence whose timestamp is at or after `ts_ns` (`last_seq + 1` if none).
    fn seq_for_time(&mut self, ts_ns: i64) -> u64;
    /// Oldest stored sequence (`last_seq + 1` when empty).
    fn first_seq(&self) -> u64;
    /// Highest sequence assigned.
    fn last_seq(&self) -> u64;
    /// How many stored messages at or after `from_seq` match `filters`.
    fn num_pending(&mut self, filters: &[String], from_seq: u64) -> u64;
}

/// Known-bug switches: each re-enables a failure the simulation must catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerBugs {
    /// An explicit ack moves the ack floor to the acked message even when older messages
    /// are still pending (the floor passes unacked messages).
    pub ack_floor_skips: bool,
}

/// Runtime options a consumer is created with (not part of its config).
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Per-consumer inflight window in bytes (one message always fits into an empty window).
    pub inflight_window: u64,
    /// The node's `consumer.inflight` ledger account, shared by all consumers.
    pub node_inflight: Option<Arc<Account>>,
    /// Maximum outstanding flow-control bytes of push consumers.
    pub flow_control_limit: u64,
    /// Bug switches.
    pub bugs: ConsumerBugs,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            inflight_window: DEFAULT_INFLIGHT_WINDOW,
            node_inflight: None,
            flow_control_limit: FLOW_CONTROL_MAX_PENDING,
            bugs: ConsumerBugs::default(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    cseq: u64,
    dc: u64,
    /// `Some` while waiting for an ack (it is in `deadlines`); `None` while queued for redelivery.
    deadline: Option<i64>,
    delivered_ns: i64,
}

#[derive(Clone, Debug)]
struct Waiting {
    reply: String,
    /// Messages still wanted.
    n: u64,
    /// Messages delivered to this request.
    d: u64,
    /// Byte budget left (0: none).
    b: u64,
    max_bytes: bool,
    expires: Option<i64>,
    no_wait: bool,
    hb: i64,
    next_hb: Option<i64>,
    /// The priority-group fields of a JSON request (`id` is filled in when the request is
    /// handed a pin).
    group: Option<PullGroup>,
}

#[derive(Clone, Debug, Default)]
struct FlowControl {
    /// Bytes delivered since the last answered flow-control request.
    pbytes: u64,
    /// Current allowance (doubles on each answer, up to the limit).
    maxpb: u64,
    limit: u64,
    /// The outstanding request's reply subject and the bytes it covers.
    outstanding: Option<(String, u64)>,
    counter: u64,
}

enum Next {
    Msg(StoredMsg, bool),
    /// Nothing deliverable now (end of stream or `max_ack_pending`).
    Eos,
    /// A read failed: try again on the next poll.
    Error,
}

/// A JetStream consumer (see the module docs).
#[derive(Debug)]
pub struct Consumer {
    stream: String,
    name: String,
    cfg: ConsumerConfig,
    filters: Vec<String>,
    created_ns: i64,
    opts: ConsumerOptions,
    next_seq: u64,
    next_cseq: u64,
    ack_floor: SeqPair,
    delivered_active: Option<i64>,
    acked_active: Option<i64>,
    pending: BTreeMap<u64, Pending>,
    deadlines: BTreeSet<(i64, u64)>,
    redeliver: BTreeSet<u64>,
    num_pending: u64,
    /// `last_per_subject` start: the sequences still to deliver and the highest of them as
    /// chosen at creation; below that bound only these are delivered.
    lps: Option<(BTreeSet<u64>, u64)>,
    waiting: VecDeque<Waiting>,
    push_active: bool,
    inactive_since: Option<i64>,
    inactive_reported: bool,
    next_push_hb: Option<i64>,
    fc: FlowControl,
    rate_next_ns: i64,
    replay_last: Option<(i64, i64)>,
    replay_wait: Option<i64>,
    /// When a pause ends (a timer, so that delivery resumes without another input).
    pause_wake: Option<i64>,
    /// The pin of a `pinned_client` consumer.
    pin: Pin,
    window: Arc<AtomicU64>,
    inflight_blocked: bool,
    state_version: u64,
    deleted: bool,
    out: Vec<Effect>,
}

impl Consumer {
    /// Create a consumer of `stream` at `now_ns`: defaults and checks `cfg` (see
    /// [`ConsumerConfig::normalize`]; an empty `name` is taken from `durable_name`, and an
    /// unnamed ephemeral must be named by the host first), picks the start sequence from the
    /// deliver policy and asks the reader once for the pending count.
    pub fn create<R: StreamReader + ?Sized>(
        stream: &StreamSummary,
        cfg: ConsumerConfig,
        now_ns: i64,
        reader: &mut R,
        opts: ConsumerOptions,
    ) -> Result<Consumer, ConsumerError> {
        let cfg = cfg.normalize(stream)?;
        if cfg.consumer_name().is_empty() {
            return Err(ConsumerError::InvalidConfig("consumer name is required".into()));
        }
        let mut c = Consumer::blank(&stream.name, cfg, now_ns, opts);
        let filters = c.filters.clone();
        let mut start = match c.cfg.deliver_policy {
            DeliverPolicy::All => reader.first_seq(),
            DeliverPolicy::Last => reader.last_seq_matching(&filters).unwrap_or(reader.last_seq() + 1),
            DeliverPolicy::New => reader.last_seq() + 1,
            DeliverPolicy::ByStartSequence => c.cfg.opt_start_seq,
            DeliverPolicy::ByStartTime => reader.seq_for_time(c.cfg.opt_start_time.unwrap_or(0)),
            DeliverPolicy::LastPerSubject => {
                let set: BTreeSet<u64> = reader.last_per_subject(&filters).into_iter().collect();
                let first = set.first().copied();
                if let Some(&max) = set.last() {
                    c.lps = Some((set, max));
                }
                first.unwrap_or(reader.last_seq() + 1)
            }
        };
        // As nats-server's selectStartingSeqNo: clamp into [first_seq, last_seq + 1].
        let (first, last) = (reader.first_seq().max(1), reader.last_seq());
        start = start.clamp(first, last + 1);
        c.next_seq = start;
        c.ack_floor = SeqPair { consumer_seq: 0, stream_seq: start - 1 };
        c.num_pending = match &c.lps {
            Some((set, max)) => set.len() as u64 + reader.num_pending(&filters, max + 1),
            None => reader.num_pending(&filters, start),
        };
        c.check();
        Ok(c)
    }

    /// Rebuild a consumer from its persisted config (already normalized) and state after a
    /// restart at `now_ns`. Pending messages get a fresh ack deadline from their last delivery.
    pub fn restore<R: StreamReader + ?Sized>(
        stream_name: &str,
        cfg: ConsumerConfig,
        created_ns: i64,
        state: &ConsumerState,
        now_ns: i64,
        reader: &mut R,
        opts: ConsumerOptions,
    ) -> Consumer {
        let mut c = Consumer::blank(stream_name, cfg, now_ns, opts);
        c.created_ns = created_ns;
        c.next_seq = state.delivered.stream_seq + 1;
        c.next_cseq = state.delivered.consumer_seq + 1;
        c.ack_floor = state.ack_floor;
        for p in &state.pending {
            if p.stream_seq <= c.ack_floor.stream_seq || p.stream_seq >= c.next_seq {
                continue; // inconsistent entry: the floor wins
            }
            let deadline = p.delivered_ns.saturating_add(c.ack_wait_for(p.deliveries));
            c.pending.insert(
                p.stream_seq,
                Pending {
                    cseq: p.consumer_seq,
                    dc: p.deliveries,
                    deadline: Some(deadline),
                    delivered_ns: p.delivered_ns,
                },
            );
            c.deadlines.insert((deadline, p.stream_seq));
        }
        let first = reader.first_seq();
        if c.next_seq < first {
            c.next_seq = first;
        }
        c.num_pending = reader.num_pending(&c.filters.clone(), c.next_seq);
        c.drop_pending_below(first);
        c.check();
        c
    }

    fn blank(stream: &str, cfg: ConsumerConfig, now_ns: i64, opts: ConsumerOptions) -> Consumer {
        let fc = FlowControl {
            maxpb: (opts.flow_control_limit / 16).max(1),
            limit: opts.flow_control_limit.max(1),
            ..Default::default()
        };
        let next_push_hb = (cfg.is_push() && cfg.idle_heartbeat > 0).then(|| now_ns + cfg.idle_heartbeat);
        Consumer {
            stream: stream.to_string(),
            name: cfg.consumer_name().to_string(),
            filters: cfg.filters(),
            created_ns: now_ns,
            next_seq: 1,
            next_cseq: 1,
            ack_floor: SeqPair::default(),
            delivered_active: None,
            acked_active: None,
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            redeliver: BTreeSet::new(),
            num_pending: 0,
            lps: None,
            waiting: VecDeque::new(),
            push_active: false,
            inactive_since: Some(now_ns),
            inactive_reported: false,
            next_push_hb,
            fc,
            rate_next_ns: 0,
            replay_last: None,
            replay_wait: None,
            pause_wake: cfg.pause_until.filter(|u| *u > now_ns),
            pin: Pin::default(),
            window: Arc::new(AtomicU64::new(0)),
            inflight_blocked: false,
            state_version: 0,
            deleted: false,
            out: Vec::new(),
            cfg,
            opts,
        }
    }

    // ----- queries -------------------------------------------------------------------

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The config in force (defaulted).
    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    /// The subject filters (empty: all subjects).
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// Messages matching the filters not yet delivered.
    pub fn num_pending(&self) -> u64 {
        self.num_pending
    }

    /// Messages delivered and awaiting ack.
    pub fn num_ack_pending(&self) -> usize {
        self.pending.len()
    }

    /// Waiting pull requests.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Pending messages delivered more than once.
    pub fn num_redelivered(&self) -> usize {
        self.pending.values().filter(|p| p.dc > 1).count()
    }

    /// The last delivery (consumer sequence, highest stream sequence delivered).
    pub fn delivered(&self) -> SeqPair {
        SeqPair { consumer_seq: self.next_cseq - 1, stream_seq: self.next_seq - 1 }
    }

    /// The ack floor.
    pub fn ack_floor(&self) -> SeqPair {
        self.ack_floor
    }

    /// The stream sequences awaiting ack with their delivery counts, in order.
    pub fn pending(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pending.iter().map(|(s, p)| (*s, p.dc))
    }

    /// Bytes loaded for delivery whose charges are still held.
    pub fn inflight_bytes(&self) -> u64 {
        self.window.load(Ordering::Relaxed)
    }

    /// Moves whenever the persisted state ([`Consumer::state`]) changes.
    pub fn state_version(&self) -> u64 {
        self.state_version
    }

    /// When the consumer was created (ns since the epoch).
    pub fn created_ns(&self) -> i64 {
        self.created_ns
    }

    /// Whether the consumer is paused at `now_ns`.
    pub fn is_paused(&self, now_ns: i64) -> bool {
        self.cfg.pause_until.is_some_and(|u| now_ns < u)
    }

    /// Whether the last [`Consumer::poll`] stopped because the inflight window or the node's
    /// `consumer.inflight` account was full: poll again once charges have been dropped.
    pub fn blocked_on_inflight(&self) -> bool {
        self.inflight_blocked
    }

    /// Whether this consumer still needs `seq` (published on `subject`) to stay in an
    /// interest or workqueue stream, as nats-server's `needAck`.
    pub fn needs_ack(&self, seq: u64, subject: &str) -> bool {
        if !self.matches(subject) || seq <= self.ack_floor.stream_seq {
            return false;
        }
        match self.cfg.ack_policy {
            AckPolicy::None | AckPolicy::All => true,
            AckPolicy::Explicit => seq >= self.next_seq || self.pending.contains_key(&seq),
        }
    }

    /// Whether `subject` passes the consumer's filters.
    pub fn matches(&self, subject: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| crate::subject::matches(f, subject))
    }

    /// The persisted state.
    pub fn state(&self) -> ConsumerState {
        ConsumerState {
            delivered: self.delivered(),
            ack_floor: self.ack_floor,
            pending: self
                .pending
                .iter()
                .map(|(s, p)| PendingEntry {
                    stream_seq: *s,
                    consumer_seq: p.cseq,
                    deliveries: p.dc,
                    delivered_ns: p.delivered_ns,
                })
                .collect(),
        }
    }

    /// Consumer info at `now_ns` (nats-server's `ConsumerInfo`, without `cluster`).
    pub fn info(&self, now_ns: i64) -> ConsumerInfo {
        let paused = self.is_paused(now_ns);
        ConsumerInfo {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: self.created_ns,
            config: self.cfg.clone(),
            delivered: SequenceInfo {
                consumer_seq: self.next_cseq - 1,
                stream_seq: self.next_seq - 1,
                last_active: self.delivered_active,
            },
            ack_floor: SequenceInfo {
                consumer_seq: self.ack_floor.consumer_seq,
                stream_seq: self.ack_floor.stream_seq,
                last_active: self.acked_active,
            },
            num_ack_pending: self.pending.len() as u64,
            num_redelivered: self.num_redelivered() as u64,
            num_waiting: self.waiting.len() as u64,
            num_pending: self.num_pending,
            push_bound: self.cfg.is_push() && self.push_active,
            paused,
            pause_remaining: if paused { self.cfg.pause_until.unwrap_or(0) - now_ns } else { 0 },
            ts: now_ns,
            priority_groups: self
                .cfg
                .priority_groups
                .first()
                .map(|g| PriorityGroupState {
                    group: g.clone(),
                    pinned_client_id: self.pin.id.clone(),
                    pinned_ts: self.pin.ts_ns,
                })
                .into_iter()
                .collect(),
        }
    }

    /// The earliest time at which [`Consumer::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut t: Option<i64> = None;
        let mut at = |v: Option<i64>| {
            if let Some(v) = v {
                t = Some(t.map_or(v, |t: i64| t.min(v)));
            }
        };
        at(self.deadlines.first().map(|(d, _)| *d));
        for w in &self.waiting {
            at(w.expires);
            at(w.next_hb);
        }
        at(self.next_push_hb);
        at(self.replay_wait);
        at(self.pause_wake);
        at(self.pin.expires_ns);
        if self.rate_next_ns > 0 {
            at(Some(self.rate_next_ns));
        }
        at(self.inactivity_deadline());
        t
    }

    fn inactivity_threshold(&self) -> i64 {
        match self.cfg.inactive_threshold {
            0 if !self.cfg.is_durable() => DEFAULT_EPHEMERAL_INACTIVE_NS,
            t => t,
        }
    }

    fn inactivity_deadline(&self) -> Option<i64> {
        let t = self.inactivity_threshold();
        if t == 0 || self.inactive_reported || !self.waiting.is_empty() {
            return None;
        }
        self.inactive_since.map(|s| s.saturating_add(t))
    }

    /// Take the effects produced so far, in order.
    pub fn drain_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    // ----- inputs ----------------------------------------------------------------------

    /// A message was stored in the stream (call [`Consumer::poll`] after a batch of these).
    pub fn on_stream_append(&mut self, seq: u64, subject: &str) {
        if seq >= self.next_seq && self.matches(subject) {
            self.num_pending += 1;
        }
        self.check();
    }

    /// A message left the stream (delete, limits, retention, purge of one sequence).
    pub fn on_stream_remove(&mut self, seq: u64, subject: &str) {
        if seq >= self.next_seq && self.matches(subject) && self.counted(seq) {
            self.num_pending = self.num_pending.saturating_sub(1);
        }
        if let Some((set, _)) = &mut self.lps {
            set.remove(&seq);
        }
        if self.pending.contains_key(&seq) {
            self.remove_pending(seq);
            self.recompute_floor();
            self.state_version += 1;
        }
        self.check();
    }

    /// Many messages left the stream at once (a purge): resynchronise the pending count from
    /// the reader and forget pending messages below the new first sequence.
    pub fn on_stream_purge<R: StreamReader + ?Sized>(&mut self, now_ns: i64, reader: &mut R) {
        let first = reader.first_seq();
        if self.next_seq < first {
            self.next_seq = first;
        }
        self.lps = None;
        self.num_pending = reader.num_pending(&self.filters.clone(), self.next_seq);
        self.drop_pending_below(first);
        self.recompute_floor();
        self.state_version += 1;
        self.check();
        self.poll(now_ns, reader);
    }

    fn counted(&self, seq: u64) -> bool {
        match &self.lps {
            Some((set, max)) => set.contains(&seq) || seq > *max,
            None => true,
        }
    }

    fn drop_pending_below(&mut self, first: u64) {
        let gone: Vec<u64> = self.pending.range(..first).map(|(s, _)| *s).collect();
        for s in gone {
            self.remove_pending(s);
        }
        self.recompute_floor();
    }

    /// A pull request (`MSG.NEXT` body) with its reply subject, as nats-server's
    /// `processNextMsgRequest`: limits are checked (409s), a full queue answers
    /// `409 Exceeded MaxWaiting` (silently when the request has heartbeats), `no_wait`
    /// with nothing pending answers `404 No Messages`.
    pub fn on_pull_request<R: StreamReader + ?Sized>(&mut self, now_ns: i64, reply: &str, body: &[u8], reader: &mut R) {
        if self.deleted || reply.is_empty() {
            return;
        }
        self.touch(now_ns);
        if self.cfg.is_push() {
            self.status(reply, 409, "Consumer is push based");
            return;
        }
        let req = match PullRequest::parse(body) {
            Ok(r) => r,
            Err(e) => {
                self.status(reply, 400, &format!("Bad Request - {e}"));
                return;
            }
        };
        if self.cfg.max_batch > 0 && req.batch > self.cfg.max_batch as u64 {
            let text = format!("Exceeded MaxRequestBatch of {}", self.cfg.max_batch);
            self.status(reply, 409, &text);
            return;
        }
        if req.expires > 0 && self.cfg.max_expires > 0 && req.expires > self.cfg.max_expires {
            let text = format!("Exceeded MaxRequestExpires of {}", format_go_duration(self.cfg.max_expires));
            self.status(reply, 409, &text);
            return;
        }
        if req.max_bytes > 0 && self.cfg.max_bytes > 0 && req.max_bytes > self.cfg.max_bytes as u64 {
            let text = format!("Exceeded MaxRequestMaxBytes of {}", self.cfg.max_bytes);
            self.status(reply, 409, &text);
            return;
        }
        if let Some(g) = &req.group
            && !self.admit_group(now_ns, reply, g)
        {
            return;
        }
        if req.no_wait && req.expires == 0 && self.num_pending + self.redeliver.len() as u64 == 0 {
            self.status(reply, 404, "No Messages");
            return;
        }
        self.expire_requests(now_ns);
        if self.waiting.len() as i64 >= self.cfg.max_waiting {
            if req.idle_heartbeat == 0 {
                self.status(reply, 409, "Exceeded MaxWaiting");
            }
            return;
        }
        self.enqueue(Waiting {
            reply: reply.to_string(),
            n: req.batch,
            d: 0,
            b: req.max_bytes,
            max_bytes: req.max_bytes > 0,
            expires: (req.expires > 0).then(|| now_ns.saturating_add(req.expires)),
            no_wait: req.no_wait,
            hb: req.idle_heartbeat,
            next_hb: (req.idle_heartbeat > 0).then(|| now_ns + req.idle_heartbeat),
            group: req.group,
        });
        self.check();
        self.poll(now_ns, reader);
    }

    /// An ack published to `ack_subject` (a `$JS.ACK...` subject of this consumer) with
    /// `body`; `reply` is the ack message's reply subject (AckSync). Acks of other
    /// consumers, of undelivered or already acked messages are ignored, as nats-server does;
    /// an AckSync is answered in every case except `+NXT` (whose answer is messages).
    pub fn on_ack<R: StreamReader + ?Sized>(
        &mut self,
        now_ns: i64,
        ack_subject: &str,
        body: &[u8],
        reply: Option<&str>,
        reader: &mut R,
    ) {
        if self.deleted {
            return;
        }
        let Some(info) = AckReply::parse(ack_subject) else { return };
        if info.stream != self.stream || info.consumer != self.name {
            return;
        }
        self.touch(now_ns);
        let kind = AckKind::parse(body);
        let seq = info.stream_seq;
        match &kind {
            AckKind::Ack | AckKind::Next(_) => self.ack(now_ns, seq),
            AckKind::Nak(delay) => self.nak(now_ns, seq, info.consumer_seq, *delay),
            AckKind::Progress => self.progress(now_ns, seq),
            AckKind::Term(reason) => self.term(now_ns, seq, info.consumer_seq, reason.clone().unwrap_or_default()),
            AckKind::Unknown => {}
        }
        match (kind, reply) {
            (AckKind::Next(req), Some(r)) if !r.is_empty() => {
                self.check();
                self.on_pull_request(now_ns, r, &req, reader);
                return;
            }
            (AckKind::Next(_), _) => {}
            (_, Some(r)) if !r.is_empty() => self.out.push(Effect::AckReply { to: r.to_string() }),
            _ => {}
        }
        self.check();
        self.poll(now_ns, reader);
    }

    fn ack(&mut self, now_ns: i64, seq: u64) {
        if seq >= self.next_seq {
            return; // never delivered: nats-server ignores acks past its delivery pointer
        }
        match self.cfg.ack_policy {
            AckPolicy::None => {}
            AckPolicy::Explicit => {
                let Some(p) = self.pending.get(&seq).copied() else { return };
                self.remove_pending(seq);
                self.out.push(Effect::Done { seq, reason: DoneReason::Acked });
                if self.opts.bugs.ack_floor_skips {
                    // Known bug: trust the ack and jump the floor to it.
                    let skip = SeqPair { consumer_seq: p.cseq, stream_seq: seq };
                    self.ack_floor = self.ack_floor.max(skip);
                } else {
                    self.recompute_floor();
                }
                self.acked(now_ns);
            }
            AckPolicy::All => {
                if seq <= self.ack_floor.stream_seq {
                    return;
                }
                let below: Vec<u64> = self.pending.range(..=seq).map(|(s, _)| *s).collect();
                for s in below {
                    self.remove_pending(s);
                    self.out.push(Effect::Done { seq: s, reason: DoneReason::Acked });
                }
                self.recompute_floor();
                self.acked(now_ns);
            }
        }
    }

    fn acked(&mut self, now_ns: i64) {
        self.acked_active = Some(now_ns);
        self.state_version += 1;
    }

    fn nak(&mut self, now_ns: i64, seq: u64, cseq: u64, delay: Option<i64>) {
        let Some(p) = self.pending.get(&seq).copied() else { return };
        self.out.push(Effect::Advisory(Advisory::Nak { stream_seq: seq, consumer_seq: cseq, deliveries: p.dc }));
        match delay {
            Some(d) if d > 0 => {
                self.redeliver.remove(&seq);
                self.set_deadline(seq, now_ns.saturating_add(d));
            }
            _ => {
                if !self.redeliver.contains(&seq) {
                    self.schedule_redelivery(now_ns, seq);
                }
            }
        }
    }

    fn progress(&mut self, now_ns: i64, seq: u64) {
        let Some(p) = self.pending.get(&seq).copied() else { return };
        self.redeliver.remove(&seq);
        let d = now_ns.saturating_add(self.ack_wait_for(p.dc));
        self.set_deadline(seq, d);
        if let Some(p) = self.pending.get_mut(&seq) {
            p.delivered_ns = now_ns;
        }
        self.state_version += 1;
    }

    fn term(&mut self, now_ns: i64, seq: u64, cseq: u64, reason: String) {
        if self.cfg.ack_policy == AckPolicy::All {
            // nats-server handles TERM as an ack first, which for ack-all covers everything below.
            self.ack(now_ns, seq);
            return;
        }
        let Some(p) = self.pending.get(&seq).copied() else { return };
        self.remove_pending(seq);
        self.recompute_floor();
        self.acked(now_ns);
        self.out.push(Effect::Done { seq, reason: DoneReason::Terminated });
        self.out.push(Effect::Advisory(Advisory::Terminated {
            stream_seq: seq,
            consumer_seq: cseq,
            deliveries: p.dc,
            reason,
        }));
    }

    /// A message on a `$JS.FC.<stream>.<consumer>.<id>` subject: the push client caught up.
    pub fn on_flow_control_reply<R: StreamReader + ?Sized>(&mut self, now_ns: i64, subject: &str, reader: &mut R) {
        let Some((id, covered)) = self.fc.outstanding.clone() else { return };
        if id != subject {
            return; // not the latest request: ignored, as nats-server
        }
        self.fc.maxpb = (self.fc.maxpb * 2).min(self.fc.limit);
        self.fc.pbytes = self.fc.pbytes.saturating_sub(covered);
        self.fc.outstanding = None;
        self.check();
        self.poll(now_ns, reader);
    }

    /// Whether a push consumer's deliver subject has subscribers (the host tracks interest).
    pub fn set_push_active<R: StreamReader + ?Sized>(&mut self, now_ns: i64, active: bool, reader: &mut R) {
        if !self.cfg.is_push() || self.push_active == active {
            return;
        }
        self.push_active = active;
        self.inactive_since = if active { None } else { Some(now_ns) };
        self.inactive_reported = false;
        self.check();
        self.poll(now_ns, reader);
    }

    /// Pause until `until_ns` (`None` or a past time resumes), as the PAUSE API; returns
    /// whether the consumer is now paused and the time left (ns).
    pub fn pause<R: StreamReader + ?Sized>(
        &mut self,
        now_ns: i64,
        until_ns: Option<i64>,
        reader: &mut R,
    ) -> (bool, i64) {
        self.cfg.pause_until = until_ns.filter(|u| *u > now_ns);
        self.pause_wake = self.cfg.pause_until;
        self.check();
        self.poll(now_ns, reader);
        let paused = self.is_paused(now_ns);
        (paused, if paused { self.cfg.pause_until.unwrap_or(0) - now_ns } else { 0 })
    }

    /// Replace the config with `new` (defaulted and checked against the stream), if the
    /// update rules allow it. Changed filters recount the pending messages once; a changed
    /// push deliver subject counts as unbound until [`Consumer::set_push_active`].
    pub fn update_config<R: StreamReader + ?Sized>(
        &mut self,
        now_ns: i64,
        stream: &StreamSummary,
        new: ConsumerConfig,
        reader: &mut R,
    ) -> Result<(), ConsumerError> {
        let new = new.normalize(stream)?;
        self.cfg.check_update(&new)?;
        let filters_changed = new.filters() != self.filters;
        if new.deliver_subject != self.cfg.deliver_subject {
            // A new deliver subject has no known subscribers until the host says so.
            self.push_active = false;
            self.inactive_since = Some(now_ns);
        }
        let was_pinned = self.cfg.priority_policy == PriorityPolicy::PinnedClient;
        self.cfg = new;
        if was_pinned && self.cfg.priority_policy != PriorityPolicy::PinnedClient && self.pin.is_set() {
            self.unpin_with("admin");
        }
        self.pause_wake = self.cfg.pause_until.filter(|u| *u > now_ns);
        if filters_changed {
            self.filters = self.cfg.filters();
            self.lps = None;
            self.num_pending = reader.num_pending(&self.filters.clone(), self.next_seq);
        }
        self.check();
        self.poll(now_ns, reader);
        Ok(())
    }

    /// The consumer is being deleted: every waiting pull request gets `409 Consumer Deleted`.
    pub fn delete(&mut self) {
        self.end_requests(409, "Consumer Deleted");
        self.deleted = true;
        self.check();
    }

    /// Leadership moved away: waiting pull requests get `409 Leadership Change`.
    pub fn leadership_lost(&mut self) {
        self.end_requests(409, "Leadership Change");
        self.check();
    }

    fn end_requests(&mut self, code: u16, text: &str) {
        for w in std::mem::take(&mut self.waiting) {
            self.out.push(Effect::Status { to: w.reply, reply: None, headers: pull::status(code, text) });
        }
    }

    /// Drop waiting pull requests whose reply subject `gone` says has no interest any more
    /// (the requesting client left); no status is sent.
    pub fn cancel_requests(&mut self, now_ns: i64, mut gone: impl FnMut(&str) -> bool) {
        self.waiting.retain(|w| !gone(&w.reply));
        if self.waiting.is_empty() && self.inactive_since.is_none() && !self.cfg.is_push() {
            self.inactive_since = Some(now_ns);
        }
        self.check();
    }

    /// Time passed: ack deadlines (redelivery, max deliveries), pull request expiry and
    /// heartbeats, push heartbeats, pause end, inactivity; then delivery.
    pub fn tick<R: StreamReader + ?Sized>(&mut self, now_ns: i64, reader: &mut R) {
        if self.deleted {
            return;
        }
        while let Some(&(d, seq)) = self.deadlines.first() {
            if d > now_ns {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.get_mut(&seq) {
                p.deadline = None;
            }
            self.schedule_redelivery(now_ns, seq);
        }
        self.expire_requests(now_ns);
        let last = self.delivered();
        let mut beats = Vec::new();
        for w in self.waiting.iter_mut() {
            if let Some(t) = w.next_hb
                && t <= now_ns
            {
                beats.push(w.reply.clone());
                w.next_hb = Some(now_ns + w.hb);
            }
        }
        for to in beats {
            let headers = pull::idle_heartbeat(last.consumer_seq, last.stream_seq, None);
            self.out.push(Effect::Status { to, reply: None, headers });
        }
        if let Some(t) = self.next_push_hb
            && t <= now_ns
        {
            let stalled = self.fc.outstanding.as_ref().map(|(s, _)| s.as_str());
            let headers = pull::idle_heartbeat(last.consumer_seq, last.stream_seq, stalled);
            self.out.push(Effect::Status { to: self.cfg.deliver_subject.clone(), reply: None, headers });
            self.next_push_hb = Some(now_ns + self.cfg.idle_heartbeat);
        }
        if self.replay_wait.is_some_and(|t| t <= now_ns) {
            self.replay_wait = None;
        }
        if self.rate_next_ns > 0 && self.rate_next_ns <= now_ns {
            self.rate_next_ns = 0;
        }
        if self.pause_wake.is_some_and(|u| u <= now_ns) {
            self.pause_wake = None;
        }
        if self.pin.expires_ns.is_some_and(|t| t <= now_ns) {
            self.unpin_with("timeout");
        }
        if self.inactivity_deadline().is_some_and(|t| t <= now_ns) {
            self.inactive_reported = true;
            self.out.push(Effect::Inactive);
        }
        self.check();
        self.poll(now_ns, reader);
    }

    /// Deliver what can be delivered now: redeliveries first, then new messages, to waiting
    /// pull requests (round robin) or the push subject, within `max_ack_pending`, the
    /// inflight window, flow control, the rate limit, replay pacing and pause.
    pub fn poll<R: StreamReader + ?Sized>(&mut self, now_ns: i64, reader: &mut R) {
        if self.deleted {
            return;
        }
        let mut eos = false;
        self.inflight_blocked = false;
        while !self.is_paused(now_ns) && self.has_target(now_ns) {
            let (msg, redelivery) = match self.next_message(reader) {
                Next::Msg(m, r) => (m, r),
                Next::Eos => {
                    eos = true;
                    break;
                }
                Next::Error => break,
            };
            if !redelivery
                && self.cfg.replay_policy == ReplayPolicy::Original
                && let Some((last_ts, sent)) = self.replay_last
            {
                let due = sent.saturating_add((msg.ts_ns - last_ts).max(0));
                if due > now_ns {
                    self.replay_wait = Some(due);
                    break;
                }
            }
            let payload_len = msg.payload.len();
            let size = (msg.subject.len() + msg.headers.len() + payload_len) as u64;
            if !self.cfg.is_push() && !self.select_waiting(now_ns, size) {
                // No waiting request may take a message now (pins, overflow marks): the
                // message stays where it is for the next request or timer.
                break;
            }
            let Some(charge) = self.try_charge(size) else {
                self.inflight_blocked = true;
                break;
            };
            self.deliver(now_ns, msg, redelivery, size, payload_len, charge);
        }
        if eos {
            self.end_no_wait_requests();
        }
        self.check();
    }

    fn has_target(&self, now_ns: i64) -> bool {
        if self.cfg.is_push() {
            let fc_stalled = self.cfg.flow_control && self.fc.pbytes > self.fc.maxpb;
            self.push_active && !fc_stalled && self.rate_next_ns <= now_ns.max(1) && self.replay_wait.is_none()
        } else {
            !self.waiting.is_empty() && self.replay_wait.is_none()
        }
    }

    fn next_message<R: StreamReader + ?Sized>(&mut self, reader: &mut R) -> Next {
        while let Some(&seq) = self.redeliver.first() {
            match reader.load(seq) {
                Ok(Some(m)) => return Next::Msg(m, true),
                Ok(None) => {
                    // Gone from the stream while waiting for redelivery: nothing to wait for.
                    self.remove_pending(seq);
                    self.recompute_floor();
                    self.state_version += 1;
                }
                Err(_) => return Next::Error,
            }
        }
        let map = self.cfg.max_ack_pending;
        if self.cfg.ack_policy != AckPolicy::None && map > 0 && self.pending.len() as i64 >= map {
            return Next::Eos;
        }
        if self.num_pending == 0 {
            return Next::Eos;
        }
        loop {
            let filters = &self.filters;
            let m = match reader.load_next(filters, self.next_seq) {
                Ok(Some(m)) => m,
                Ok(None) => return Next::Eos,
                Err(_) => return Next::Error,
            };
            if let Some((set, max)) = &self.lps
                && m.seq <= *max
                && !set.contains(&m.seq)
            {
                // Not the last of its subject: skipped, and never counted as pending.
                self.next_seq = m.seq + 1;
                self.end_lps_if_passed();
                continue;
            }
            return Next::Msg(m, false);
        }
    }

    fn end_lps_if_passed(&mut self) {
        if self.lps.as_ref().is_some_and(|(_, max)| self.next_seq > *max) {
            self.lps = None;
        }
    }

    fn try_charge(&mut self, size: u64) -> Option<InflightCharge> {
        let used = self.window.load(Ordering::Relaxed);
        if used > 0 && used + size > self.opts.inflight_window {
            return None;
        }
        let node = match &self.opts.node_inflight {
            Some(acct) => Some(Charge::try_new(acct, size)?),
            None => None,
        };
        self.window.fetch_add(size, Ordering::Relaxed);
        Some(InflightCharge { window: self.window.clone(), _node: node, bytes: size })
    }

    fn deliver(
        &mut self,
        now_ns: i64,
        msg: StoredMsg,
        redelivery: bool,
        size: u64,
        payload_len: usize,
        charge: InflightCharge,
    ) {
        let seq = msg.seq;
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let dc;
        let mut done_on_delivery = false;
        if redelivery {
            self.redeliver.remove(&seq);
            let p = self.pending.get_mut(&seq).expect("redelivered messages are pending");
            p.dc += 1;
            p.delivered_ns = now_ns;
            dc = p.dc;
            let d = now_ns.saturating_add(self.ack_wait_for(dc));
            self.set_deadline(seq, d);
        } else {
            self.next_seq = seq + 1;
            self.num_pending = self.num_pending.saturating_sub(1);
            if let Some((set, _)) = &mut self.lps {
                set.remove(&seq);
            }
            self.end_lps_if_passed();
            dc = 1;
            if self.cfg.ack_policy == AckPolicy::None {
                self.ack_floor = SeqPair { consumer_seq: cseq, stream_seq: seq };
                done_on_delivery = true;
            } else {
                let d = now_ns.saturating_add(self.ack_wait_for(1));
                self.pending.insert(seq, Pending { cseq, dc: 1, deadline: None, delivered_ns: now_ns });
                self.set_deadline(seq, d);
            }
            if self.cfg.replay_policy == ReplayPolicy::Original {
                self.replay_last = Some((msg.ts_ns, now_ns));
            }
        }
        self.delivered_active = Some(now_ns);
        self.state_version += 1;
        let reply = AckReply {
            stream: self.stream.clone(),
            consumer: self.name.clone(),
            delivered: dc,
            stream_seq: seq,
            consumer_seq: cseq,
            ts_ns: msg.ts_ns,
            pending: self.num_pending,
        }
        .subject();
        let (mut headers, payload) = if self.cfg.headers_only {
            (pull::headers_only(&msg.headers, payload_len), Vec::new())
        } else {
            (msg.headers, msg.payload)
        };
        if self.cfg.priority_policy == PriorityPolicy::PinnedClient && self.pin.is_set() {
            headers = super::priority::add_header(&headers, super::priority::PIN_ID_HEADER, &self.pin.id);
        }
        let to = if self.cfg.is_push() {
            self.fc.pbytes += size;
            if self.cfg.idle_heartbeat > 0 {
                self.next_push_hb = Some(now_ns + self.cfg.idle_heartbeat);
            }
            if self.cfg.rate_limit_bps > 0 {
                let ns = (size as u128 * 8 * NANOS_PER_SEC as u128 / self.cfg.rate_limit_bps as u128) as i64;
                self.rate_next_ns = now_ns.saturating_add(ns.max(1));
            }
            self.cfg.deliver_subject.clone()
        } else {
            let mut w = self.waiting.pop_front().expect("pull delivery has a request");
            w.n -= 1;
            w.d += 1;
            if w.max_bytes {
                w.b -= size;
                if w.b == 0 {
                    w.n = 0;
                }
            }
            if w.hb > 0 {
                w.next_hb = Some(now_ns + w.hb);
            }
            let to = w.reply.clone();
            if w.n > 0 {
                self.requeue(w); // round robin (by priority for `prioritized`), as nats-server's pop
            } else if self.waiting.is_empty() {
                self.inactive_since = Some(now_ns);
            }
            to
        };
        self.out.push(Effect::Deliver(Delivery {
            to,
            subject: msg.subject,
            reply,
            headers,
            payload,
            stream_seq: seq,
            consumer_seq: cseq,
            deliveries: dc,
            charge,
        }));
        if done_on_delivery {
            self.out.push(Effect::Done { seq, reason: DoneReason::Delivered });
        }
        if self.cfg.is_push()
            && self.cfg.flow_control
            && self.fc.outstanding.is_none()
            && self.fc.pbytes > self.fc.maxpb / 2
        {
            self.send_flow_control();
        }
    }

    fn send_flow_control(&mut self) {
        self.fc.counter += 1;
        let id = format!("{FC_PREFIX}{}.{}.{}", self.stream, self.name, self.fc.counter);
        self.fc.outstanding = Some((id.clone(), self.fc.pbytes));
        self.out.push(Effect::Status {
            to: self.cfg.deliver_subject.clone(),
            reply: Some(id),
            headers: pull::flow_control_request(),
        });
    }

    /// No more messages for now: `no_wait` requests end with `404 No Messages`, unless they
    /// carry an expiry and got nothing yet (nats-server's `processWaiting` with eos).
    fn end_no_wait_requests(&mut self) {
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        for w in std::mem::take(&mut self.waiting) {
            if w.no_wait && (w.expires.is_none() || w.d > 0) {
                self.out.push(Effect::Status { to: w.reply, reply: None, headers: pull::status(404, "No Messages") });
            } else {
                keep.push_back(w);
            }
        }
        self.waiting = keep;
    }

    fn expire_requests(&mut self, now_ns: i64) {
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        for w in std::mem::take(&mut self.waiting) {
            if w.expires.is_some_and(|e| e <= now_ns) {
                self.out.push(Effect::Status {
                    to: w.reply,
                    reply: None,
                    headers: pull::status_pending(408, "Request Timeout", w.n, w.b),
                });
            } else {
                keep.push_back(w);
            }
        }
        self.waiting = keep;
        if self.waiting.is_empty() && self.inactive_since.is_none() && !self.cfg.is_push() {
            self.inactive_since = Some(now_ns);
        }
    }

    fn touch(&mut self, now_ns: i64) {
        if !self.cfg.is_push() {
            self.inactive_since = Some(now_ns);
            self.inactive_reported = false;
        }
    }

    fn status(&mut self, to: &str, code: u16, text: &str) {
        self.out.push(Effect::Status { to: to.to_string(), reply: None, headers: pull::status(code, text) });
    }

    // ----- pending bookkeeping ---------------------------------------------------------

    fn ack_wait_for(&self, deliveries: u64) -> i64 {
        match self.cfg.backoff.len() {
            0 => self.cfg.ack_wait,
            n => self.cfg.backoff[(deliveries.max(1) - 1).min(n as u64 - 1) as usize],
        }
    }

    fn set_deadline(&mut self, seq: u64, at: i64) {
        let p = self.pending.get_mut(&seq).expect("deadline of a pending message");
        if let Some(old) = p.deadline.replace(at) {
            self.deadlines.remove(&(old, seq));
        }
        self.deadlines.insert((at, seq));
    }

    /// Queue `seq` for redelivery, or give up on it when it has had `max_deliver` deliveries.
    fn schedule_redelivery(&mut self, now_ns: i64, seq: u64) {
        let Some(p) = self.pending.get(&seq).copied() else { return };
        if self.cfg.max_deliver > 0 && p.dc >= self.cfg.max_deliver as u64 {
            self.remove_pending(seq);
            self.recompute_floor();
            self.acked(now_ns);
            self.out.push(Effect::Done { seq, reason: DoneReason::MaxDeliveries });
            self.out.push(Effect::Advisory(Advisory::MaxDeliveries { stream_seq: seq, deliveries: p.dc }));
            return;
        }
        if let Some(d) = self.pending.get_mut(&seq).and_then(|p| p.deadline.take()) {
            self.deadlines.remove(&(d, seq));
        }
        self.redeliver.insert(seq);
    }

    fn remove_pending(&mut self, seq: u64) {
        if let Some(p) = self.pending.remove(&seq)
            && let Some(d) = p.deadline
        {
            self.deadlines.remove(&(d, seq));
        }
        self.redeliver.remove(&seq);
    }

    /// The floor sits just below the oldest pending message, or at the last delivery when
    /// nothing is pending. It never moves back.
    fn recompute_floor(&mut self) {
        let floor = match self.pending.iter().next() {
            Some((s, p)) => SeqPair { consumer_seq: p.cseq - 1, stream_seq: s - 1 },
            None => self.delivered(),
        };
        self.ack_floor = self.ack_floor.max(floor);
    }

    // ----- invariants ------------------------------------------------------------------

    #[inline]
    fn check(&self) {
        #[cfg(any(test, debug_assertions))]
        self.invariants();
    }

    /// Assert the consumer's invariants (panics with the broken one). Called after every
    /// mutation in test and debug builds; the walk of every pending message and waiting
    /// request only when [`crate::checks::walk`] allows it.
    pub fn invariants(&self) {
        self.priority_invariants();
        let floor = self.ack_floor;
        let delivered = self.delivered();
        assert!(floor.stream_seq <= delivered.stream_seq, "ack floor {floor:?} above delivered {delivered:?}");
        assert!(floor.consumer_seq <= delivered.consumer_seq, "ack floor {floor:?} above delivered {delivered:?}");
        if self.cfg.ack_policy == AckPolicy::None {
            assert!(self.pending.is_empty(), "ack none keeps no pending");
        }
        // The lowest and highest pending bound every other one (the map is ordered).
        if let Some((&low, _)) = self.pending.first_key_value()
            && !self.opts.bugs.ack_floor_skips
        {
            assert!(low > floor.stream_seq, "ack floor {floor:?} passed pending {low}");
        }
        if let Some((&high, _)) = self.pending.last_key_value() {
            assert!(high < self.next_seq, "pending {high} was never delivered (next {})", self.next_seq);
        }
        assert_eq!(self.deadlines.len() + self.redeliver.len(), self.pending.len(), "timer index out of step");
        assert!(self.waiting.len() as i64 <= self.cfg.max_waiting.max(0), "waiting queue over max_waiting");
        if let Some((set, max)) = &self.lps {
            assert!(self.next_seq <= *max, "last-per-subject bound passed but kept");
            assert!(set.first().is_none_or(|s| *s >= self.next_seq), "last-per-subject set behind");
            assert!(set.last().is_none_or(|s| s <= max), "last-per-subject set past its bound");
        }
        if let Some((_, covered)) = &self.fc.outstanding {
            assert!(*covered <= self.fc.pbytes, "flow control covers more than delivered");
        }
        if !crate::checks::walk(self.pending.len() + self.waiting.len()) {
            return;
        }
        for (&seq, p) in &self.pending {
            assert!(p.cseq < self.next_cseq && p.dc >= 1, "pending {seq} {p:?}");
            match p.deadline {
                Some(d) => {
                    assert!(self.deadlines.contains(&(d, seq)), "pending {seq} deadline not indexed");
                    assert!(!self.redeliver.contains(&seq), "pending {seq} both timed and queued");
                }
                None => assert!(self.redeliver.contains(&seq), "pending {seq} neither timed nor queued"),
            }
        }
        assert!(self.waiting.iter().all(|w| w.n > 0), "a finished request is still waiting");
    }
}
