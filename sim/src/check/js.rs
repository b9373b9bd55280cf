//! The JetStream checker, in the style of Jepsen's queue checker: it judges a run's
//! history ([`JsEvent`]s: publish attempts and their outcomes, deliveries, acks, info
//! samples) against the streams as read back after a final power cut and recovery.
//!
//! A message is identified by its value ([`js_value`]): the value fixes its stream,
//! subject ([`js_subject`]), payload ([`js_payload`]) and `Nats-Msg-Id` ([`js_msg_id`]),
//! so any stored or delivered message can be checked on its own. A publish attempt ends
//! in a PubAck, a definite failure or an unknown outcome; a `Nats-Msg-Id` publish may be
//! attempted several times with the same value.
//!
//! Invariants (the names violations carry):
//! - `js-no-phantom`: every stored or delivered message is one some client published,
//!   intact (subject and payload exactly as published);
//! - `js-failed-not-stored`: a value whose every attempt definitely failed is not stored;
//! - `js-acked-durability`: every acknowledged publish is in the stream after recovery,
//!   at the sequence its PubAck named, unless retention ([`Retention`]; `max_msgs`,
//!   `max_bytes`, `max_msgs_per_subject` on limits streams, an ack on interest and
//!   workqueue streams), a delete, or a reported loss (`state.lost`) removed it;
//! - `js-exactly-once`: a value published without a Msg-Id is stored at most once;
//! - `js-dedup`: a Msg-Id value is stored once, and acknowledged at one sequence, within
//!   the duplicate window (a restart may forget ids of messages no longer stored, as
//!   nats-server rebuilds the window from the stored messages);
//! - `js-delivery`: once the consumers caught up, every acknowledged message was
//!   delivered at least once to each consumer whose filter matches it (unless retention,
//!   a delete or a reported loss removed it first);
//! - `js-order`: per consumer and server incarnation, first deliveries come in
//!   increasing stream sequence;
//! - `js-ack-floor`: a consumer's ack floor never passes a message that consumer has
//!   not acked or terminated;
//! - `js-workqueue`: on a workqueue stream, a message whose ack the server confirmed is
//!   neither delivered again nor stored at the end, unless a power cut came after the ack
//!   (consumer and stream state are written behind, as nats-server's);
//! - `js-limits`: `max_msgs`, `max_bytes` and `max_msgs_per_subject` hold at every stream
//!   sample and at the end;
//! - `js-acked-kept`: on limits streams, at every stream sample each subject holds at
//!   least its acknowledged messages that no limit, delete or reported loss removed by
//!   then (a KV key keeps its latest acknowledged value; a refused put evicts nothing).
//!
//! The ledger accounts `consumer.inflight` and `stream.dedup` are judged by the generic
//! `memory-bound` checker (every sample within its limit) and the harness's
//! memory-baseline check (drained once idle).

use super::{Tally, Violation, at, pubsub_payload};
use std::collections::{BTreeMap, BTreeSet};
use weir_traces::{AckKind, Event, EventKind, JsEvent};

/// The value of publisher `client`'s `n`-th message to stream number `stream`.
pub fn js_value(client: u32, stream: u32, n: u64) -> u64 {
    (u64::from(client + 1) << 40) | (u64::from(stream & 0xFF) << 32) | (n & 0xFFFF_FFFF)
}

/// The stream number a value was published to.
pub fn js_stream_of(value: u64) -> u32 {
    ((value >> 32) & 0xFF) as u32
}

/// The subject prefix of stream number `stream`: `js<stream>` (its subjects are `js<stream>.>`).
pub fn js_prefix(stream: u32) -> String {
    format!("js{stream}")
}

/// The subject a value is published on: `js<stream>.<k>`, `k` cycling over four subjects.
pub fn js_subject(value: u64) -> String {
    let k = ((value >> 40) + (value & 0xFFFF_FFFF)) % 4;
    format!("{}.{k}", js_prefix(js_stream_of(value)))
}

/// The payload of a value (`len` bytes, at least 8; see [`pubsub_payload`]).
pub fn js_payload(value: u64, len: usize) -> Vec<u8> {
    pubsub_payload(value, len)
}

/// The `Nats-Msg-Id` of a value (when its publisher sends one).
pub fn js_msg_id(value: u64) -> String {
    format!("v{value:x}")
}

/// The value a payload carries, if it is long enough.
pub fn js_value_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Whether `subject` matches the NATS pattern `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for f in filter.split('.') {
        match (f, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

/// A stream's retention policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Kept until a limit removes it.
    Limits,
    /// Removed once every consumer matching it acked it.
    Interest,
    /// Removed once acked (one consumer per subject).
    WorkQueue,
}

impl Retention {
    /// The name in a stream config (`limits`, `interest`, `workqueue`).
    pub fn name(self) -> &'static str {
        match self {
            Retention::Limits => "limits",
            Retention::Interest => "interest",
            Retention::WorkQueue => "workqueue",
        }
    }
}

/// A consumer as the world created it (durable, deliver all, ack explicit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// Its name.
    pub name: String,
    /// Its filter subject (`None`: the whole stream).
    pub filter: Option<String>,
    /// Pull (true) or push (false).
    pub pull: bool,
}

impl ConsumerSpec {
    /// Whether it receives messages on `subject`.
    pub fn matches(&self, subject: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| subject_matches(f, subject))
    }
}

/// A stream as the world created it; limits are 0 when unset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// Its name.
    pub name: String,
    /// Retention policy.
    pub retention: Retention,
    /// `max_msgs` (0: none).
    pub max_msgs: u64,
    /// `max_bytes` (0: none).
    pub max_bytes: u64,
    /// `max_msgs_per_subject` (0: none).
    pub max_per_subject: u64,
    /// `duplicate_window`, in microseconds.
    pub dedup_window_us: u64,
    /// An upper bound on the stored size of one of this run's messages, in bytes (for
    /// judging `max_bytes` evictions).
    pub max_record_bytes: u64,
    /// Its consumers.
    pub consumers: Vec<ConsumerSpec>,
}

/// The world's setup and end state, as the checker needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsSpec {
    /// The streams, by stream number (index).
    pub streams: Vec<StreamSpec>,
    /// Payload length of every publish.
    pub payload_len: usize,
    /// Whether every consumer caught up (nothing pending, nothing unacked) before the end:
    /// only then is missing delivery a violation.
    pub caught_up: bool,
}

/// One message read back at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsFinalMsg {
    /// Its sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A stream as read back after the final power cut and recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsFinalStream {
    /// Highest sequence assigned (`state.last_seq`).
    pub last_seq: u64,
    /// Stored bytes (`state.bytes`).
    pub bytes: u64,
    /// Every stored message, in sequence order.
    pub msgs: Vec<JsFinalMsg>,
    /// Sequences the recovered stream reports lost.
    pub lost: Vec<u64>,
}

/// One publish attempt.
#[derive(Clone, Debug)]
struct Attempt {
    invoked_us: u64,
    outcome: Outcome,
    ended_us: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Open,
    Ack { seq: u64, duplicate: bool },
    Fail,
    Unknown,
}

#[derive(Clone, Debug)]
struct Published {
    stream: u32,
    msg_id: bool,
    attempts: Vec<Attempt>,
}

#[derive(Clone, Copy, Debug)]
struct Delivery {
    at_us: u64,
    value: u64,
    intact: bool,
    sseq: u64,
    dc: u64,
    incarnation: u32,
}

/// Everything the history says.
#[derive(Default)]
struct History {
    published: BTreeMap<u64, Published>,
    /// Open attempt per client (the value it is waiting on).
    open: BTreeMap<u32, u64>,
    /// Deliveries per (stream, consumer).
    deliveries: BTreeMap<(String, String), Vec<Delivery>>,
    /// First ack or term sent per (stream, consumer, sseq).
    acked: BTreeMap<(String, String, u64), u64>,
    /// Which value each consumer was delivered at each sequence: (stream, consumer, sseq, value).
    delivered: BTreeSet<(String, String, u64, u64)>,
    /// Confirmed acks per (stream, consumer, sseq).
    confirmed: BTreeMap<(String, String, u64), u64>,
    /// Consumer info samples per (stream, consumer): (time, ack floor).
    floors: Vec<(u64, String, String, u64, String)>,
    /// Stream info samples per stream: (time, last_seq).
    stream_last: BTreeMap<String, Vec<(u64, u64)>>,
    lost: BTreeMap<String, BTreeSet<u64>>,
    deleted: BTreeMap<String, BTreeSet<u64>>,
    /// When the server confirmed each delete, per stream: seq -> time.
    delete_done: BTreeMap<String, BTreeMap<u64, u64>>,
    crashes: Vec<u64>,
    starts: Vec<u64>,
    /// Highest sequence seen acknowledged or delivered, per stream, with its time.
    seen_seq: BTreeMap<String, Vec<(u64, u64)>>,
}

impl History {
    fn crash_between(&self, from_us: u64, to_us: u64) -> bool {
        self.crashes.iter().any(|&c| c > from_us && c <= to_us)
    }

    fn start_between(&self, from_us: u64, to_us: u64) -> bool {
        self.starts.iter().any(|&c| c > from_us && c <= to_us)
    }

    /// An upper bound on the stream's last sequence at `t_us`: the largest sequence any
    /// evidence up to the next stream sample after `t_us` shows.
    fn last_seq_bound(&self, stream: &str, t_us: u64) -> u64 {
        let samples = self.stream_last.get(stream).map(Vec::as_slice).unwrap_or_default();
        let horizon = samples.iter().map(|s| s.0).find(|&s| s >= t_us).unwrap_or(u64::MAX);
        let from_samples = samples.iter().filter(|s| s.0 <= horizon).map(|s| s.1).max().unwrap_or(0);
        let seen = self.seen_seq.get(stream).map(Vec::as_slice).unwrap_or_default();
        from_samples.max(seen.iter().filter(|s| s.0 <= horizon).map(|s| s.1).max().unwrap_or(0))
    }
}

fn history(events: &[Event], spec: &JsSpec) -> History {
    let mut h = History::default();
    let mut incarnation = 0u32;
    for e in events {
        match &e.kind {
            EventKind::NodeStart { incarnation: i } => {
                incarnation = *i;
                h.starts.push(e.time_us);
            }
            EventKind::NodeCrash => h.crashes.push(e.time_us),
            EventKind::Js(js) => match js {
                JsEvent::Publish { client, value, msg_id, .. } => {
                    let p = h.published.entry(*value).or_insert(Published {
                        stream: js_stream_of(*value),
                        msg_id: *msg_id,
                        attempts: Vec::new(),
                    });
                    p.msg_id |= *msg_id;
                    p.attempts.push(Attempt { invoked_us: e.time_us, outcome: Outcome::Open, ended_us: None });
                    h.open.insert(*client, *value);
                }
                JsEvent::PubAck { client, value, .. }
                | JsEvent::PubFail { client, value, .. }
                | JsEvent::PubUnknown { client, value, .. } => {
                    let outcome = match js {
                        JsEvent::PubAck { seq, duplicate, .. } => {
                            let stream = spec.streams.get(js_stream_of(*value) as usize).map(|s| s.name.clone());
                            if let Some(s) = stream {
                                h.seen_seq.entry(s).or_default().push((e.time_us, *seq));
                            }
                            Outcome::Ack { seq: *seq, duplicate: *duplicate }
                        }
                        JsEvent::PubFail { .. } => Outcome::Fail,
                        _ => Outcome::Unknown,
                    };
                    if h.open.get(client) == Some(value) {
                        h.open.remove(client);
                    }
                    if let Some(a) = h.published.get_mut(value).and_then(|p| p.attempts.last_mut())
                        && a.outcome == Outcome::Open
                    {
                        a.outcome = outcome;
                        a.ended_us = Some(e.time_us);
                    }
                }
                JsEvent::Deliver { stream, consumer, value, intact, stream_seq, delivered, .. } => {
                    h.deliveries.entry((stream.clone(), consumer.clone())).or_default().push(Delivery {
                        at_us: e.time_us,
                        value: *value,
                        intact: *intact,
                        sseq: *stream_seq,
                        dc: *delivered,
                        incarnation,
                    });
                    h.seen_seq.entry(stream.clone()).or_default().push((e.time_us, *stream_seq));
                    h.delivered.insert((stream.clone(), consumer.clone(), *stream_seq, *value));
                }
                JsEvent::Ack { stream, consumer, stream_seq, kind, confirmed } => {
                    let key = (stream.clone(), consumer.clone(), *stream_seq);
                    match (kind, confirmed) {
                        (AckKind::Nak, _) => {}
                        (_, false) => {
                            h.acked.entry(key).or_insert(e.time_us);
                        }
                        (AckKind::Ack, true) => {
                            h.confirmed.entry(key).or_insert(e.time_us);
                        }
                        (AckKind::Term, true) => {}
                    }
                }
                JsEvent::ConsumerInfo { stream, consumer, ack_floor_stream_seq, .. } => {
                    h.floors.push((e.time_us, stream.clone(), consumer.clone(), *ack_floor_stream_seq, at(e)));
                }
                JsEvent::StreamInfo { stream, last_seq, lost, .. } => {
                    h.stream_last.entry(stream.clone()).or_default().push((e.time_us, *last_seq));
                    h.lost.entry(stream.clone()).or_default().extend(lost.iter().copied());
                }
                JsEvent::Delete { stream, seq, done: false } => {
                    h.deleted.entry(stream.clone()).or_default().insert(*seq);
                }
                JsEvent::Delete { stream, seq, done: true } => {
                    h.delete_done.entry(stream.clone()).or_default().entry(*seq).or_insert(e.time_us);
                }
            },
            _ => {}
        }
    }
    h
}

/// Why a stored message may be gone by time `t_us` (`None`: the end of the run).
struct Excuses<'a> {
    h: &'a History,
    spec: &'a StreamSpec,
    fin: &'a JsFinalStream,
    /// Every sequence known to have held a message, per subject: seq -> when the
    /// earliest publish of a value seen there was invoked (evidence: a PubAck, a delivery,
    /// the stream at the end).
    by_subject: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Publishes with no evidence of a sequence whose outcome is unknown (they may be
    /// stored, and evicted before anyone saw them), per subject: when each was invoked.
    unseen: BTreeMap<String, Vec<u64>>,
    lost: BTreeSet<u64>,
}

impl<'a> Excuses<'a> {
    fn new(h: &'a History, spec: &'a StreamSpec, stream_no: u32, fin: &'a JsFinalStream) -> Excuses<'a> {
        let invoked = |value: u64| h.published.get(&value).and_then(|p| p.attempts.first()).map(|a| a.invoked_us);
        let mut by_subject: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut held = |seq: u64, value: u64| {
            if let Some(t) = invoked(value) {
                let at = by_subject.entry(js_subject(value)).or_default().entry(seq).or_insert(t);
                *at = (*at).min(t);
            }
        };
        for m in &fin.msgs {
            if let Some(value) = js_value_of(&m.payload) {
                held(m.seq, value);
            }
        }
        for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
            for a in &p.attempts {
                if let Outcome::Ack { seq, .. } = a.outcome {
                    held(seq, value);
                }
            }
        }
        for (stream, _, seq, value) in &h.delivered {
            if *stream == spec.name {
                held(*seq, *value);
            }
        }
        let seen: BTreeSet<u64> = fin
            .msgs
            .iter()
            .filter_map(|m| js_value_of(&m.payload))
            .chain(h.delivered.iter().filter(|d| d.0 == spec.name).map(|d| d.3))
            .collect();
        let mut unseen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
            let acked = p.attempts.iter().any(|a| matches!(a.outcome, Outcome::Ack { .. }));
            let maybe = p.attempts.iter().any(|a| matches!(a.outcome, Outcome::Unknown | Outcome::Open));
            if maybe && !acked && !seen.contains(&value) {
                unseen.entry(js_subject(value)).or_default().push(p.attempts[0].invoked_us);
            }
        }
        let mut lost: BTreeSet<u64> = h.lost.get(&spec.name).cloned().unwrap_or_default();
        lost.extend(fin.lost.iter().copied());
        Excuses { h, spec, fin, by_subject, unseen, lost }
    }

    /// Whether message `seq` on `subject` may have been removed without anyone's ack by
    /// `t_us`: a limit evicted it, it was deleted, or the stream reported it lost.
    fn removed_by_limits(&self, seq: u64, subject: &str, t_us: Option<u64>) -> bool {
        let s = self.spec;
        if self.lost.contains(&seq) || self.h.deleted.get(&s.name).is_some_and(|d| d.contains(&seq)) {
            return true;
        }
        if s.retention != Retention::Limits {
            return false;
        }
        let last = match t_us {
            Some(t) => self.h.last_seq_bound(&s.name, t),
            None => self.fin.last_seq.max(self.h.last_seq_bound(&s.name, u64::MAX)),
        };
        let newer = last.saturating_sub(seq);
        if s.max_msgs > 0 && newer >= s.max_msgs {
            return true;
        }
        if s.max_bytes > 0 && (newer + 1).saturating_mul(s.max_record_bytes) > s.max_bytes {
            return true;
        }
        s.max_per_subject > 0 && self.evicted_per_subject(seq, subject, t_us)
    }

    /// Whether `max_msgs_per_subject` evicted `seq`: some newer message `m` on its subject
    /// was stored while `max_per_subject` newer ones (`m` included) were. A newer message
    /// counts unless its delete was confirmed before `m` was first published; sequences
    /// known to have held a message come from PubAcks, deliveries and the final stream
    /// (a delete of a newer message must not make an evicted one look lost).
    ///
    /// A publish refused because the store failed (10077) evicted nothing: a stream's
    /// limits take effect only once the append that breaks them is durable (the file
    /// store holds those removals, `store::held`), so a refused one never counts here.
    /// (Until that fix, a failed KV put lost the key's previous value; this checker
    /// excused it: `js-single` seed 37 with every fault point on.)
    ///
    /// By `t_us` (`None`: the end of the run) only newer messages published by then
    /// count, and so do publishes of unknown outcome on the subject that nobody saw
    /// (stored and evicted unseen, they leave no evidence), as if newer.
    fn evicted_per_subject(&self, seq: u64, subject: &str, t_us: Option<u64>) -> bool {
        let deleted = self.h.delete_done.get(&self.spec.name);
        let by = t_us.unwrap_or(u64::MAX);
        // (sequence, invoked, gone), by sequence.
        let mut newer: Vec<(u64, u64, Option<u64>)> = self
            .by_subject
            .get(subject)
            .map(|seqs| {
                seqs.range(seq + 1..)
                    .filter(|(_, t)| **t <= by)
                    .map(|(&n, &t)| (n, t, deleted.and_then(|d| d.get(&n)).copied()))
                    .collect()
            })
            .unwrap_or_default();
        if t_us.is_some() {
            let unseen = self.unseen.get(subject).map(Vec::as_slice).unwrap_or_default();
            newer.extend(unseen.iter().filter(|&&t| t <= by).map(|&t| (u64::MAX, t, None)));
        }
        (0..newer.len()).any(|i| {
            let t_m = newer[i].1;
            let present = newer[..=i].iter().filter(|(_, _, gone)| gone.is_none_or(|g| g >= t_m)).count() as u64;
            present >= self.spec.max_per_subject
        })
    }

    /// Whether retention removed `seq` because the consumers acked it (having been
    /// delivered `value` there: an ack of a reused sequence excuses nothing).
    fn removed_by_acks(&self, seq: u64, subject: &str, value: u64) -> bool {
        let s = self.spec;
        let acked = |c: &ConsumerSpec| {
            self.h.acked.contains_key(&(s.name.clone(), c.name.clone(), seq))
                && self.h.delivered.contains(&(s.name.clone(), c.name.clone(), seq, value))
        };
        match s.retention {
            Retention::Limits => false,
            Retention::Interest | Retention::WorkQueue => {
                s.consumers.iter().filter(|c| c.matches(subject)).all(acked)
                    && s.consumers.iter().any(|c| c.matches(subject))
            }
        }
    }
}

/// `js-acked-kept` on limits stream `s` (number `stream_no`): at every stream sample,
/// each subject holds at least as many messages as it has acknowledged ones that
/// nothing removed by then (a limit, with the newer messages published by then; a
/// delete; a reported loss). The sample's request went out after the stream's last
/// consumer sample before it (the sampler asks in that order), so every PubAck received
/// before that was sent before the server read the stream. This is what a KV get sees:
/// a key's latest acknowledged value stays readable until a later one replaces it (a
/// put refused with 10077 replaces nothing).
fn check_kept(events: &[Event], h: &History, ex: &Excuses<'_>, s: &StreamSpec, stream_no: u32, kept: &mut Tally) {
    // Acknowledged sequences per subject: seq -> when the PubAck arrived.
    let mut acked: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
        for a in &p.attempts {
            if let (Outcome::Ack { seq, .. }, Some(t)) = (&a.outcome, a.ended_us) {
                let at = acked.entry(js_subject(value)).or_default().entry(*seq).or_insert(t);
                *at = (*at).min(t);
            }
        }
    }
    let mut asked: Option<u64> = None;
    for e in events {
        let EventKind::Js(js) = &e.kind else { continue };
        match js {
            JsEvent::ConsumerInfo { stream, .. } if *stream == s.name => asked = Some(e.time_us),
            JsEvent::StreamInfo { stream, subjects, .. } if *stream == s.name => {
                let Some(sent_after) = asked.take() else { continue };
                for (subject, seqs) in &acked {
                    let need = seqs
                        .iter()
                        .filter(|&(&q, &t)| t <= sent_after && !ex.removed_by_limits(q, subject, Some(e.time_us)))
                        .count() as u64;
                    let have = subjects.iter().find(|(k, _)| k == subject).map_or(0, |(_, n)| *n);
                    if have < need {
                        kept.add(|| {
                            format!(
                                "{} at {}: {subject} holds {have} messages, {need} acknowledged ones were not removed",
                                s.name,
                                at(e)
                            )
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Judge a JetStream run: `events` is the whole history, `finals` the streams (by stream
/// number, as in `spec.streams`) read back after the final recovery.
pub fn js_outcomes(events: &[Event], spec: &JsSpec, finals: &[JsFinalStream]) -> Vec<Violation> {
    let h = history(events, spec);
    let mut out = Vec::new();
    let mut phantom = Tally::new("js-no-phantom");
    let mut failed = Tally::new("js-failed-not-stored");
    let mut durable = Tally::new("js-acked-durability");
    let mut once = Tally::new("js-exactly-once");
    let mut dedup = Tally::new("js-dedup");
    let mut delivery = Tally::new("js-delivery");
    let mut order = Tally::new("js-order");
    let mut floor = Tally::new("js-ack-floor");
    let mut wq = Tally::new("js-workqueue");
    let mut limits = Tally::new("js-limits");
    let mut kept = Tally::new("js-acked-kept");
    let empty = JsFinalStream::default();

    for (ix, s) in spec.streams.iter().enumerate() {
        let fin = finals.get(ix).unwrap_or(&empty);
        let ex = Excuses::new(&h, s, ix as u32, fin);
        let stream_no = ix as u32;

        // What is stored at the end.
        let mut stored: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut stored_at: BTreeMap<u64, u64> = BTreeMap::new();
        let mut per_subject: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &fin.msgs {
            *per_subject.entry(m.subject.as_str()).or_default() += 1;
            let value = js_value_of(&m.payload);
            let ok = value.is_some_and(|x| {
                h.published.get(&x).is_some_and(|p| p.stream == stream_no)
                    && m.payload == js_payload(x, spec.payload_len)
                    && m.subject == js_subject(x)
            });
            let Some(value) = value.filter(|_| ok) else {
                phantom.add(|| {
                    format!(
                        "{} seq {} holds {} bytes on {:?} that no client published",
                        s.name,
                        m.seq,
                        m.payload.len(),
                        m.subject
                    )
                });
                continue;
            };
            stored.entry(value).or_default().push(m.seq);
            stored_at.insert(m.seq, value);
        }

        // Limits at the end and at every sample.
        let over = |msgs: u64, bytes: u64, subj: Vec<(&str, u64)>| -> Option<String> {
            if s.max_msgs > 0 && msgs > s.max_msgs {
                return Some(format!("{msgs} messages, max_msgs {}", s.max_msgs));
            }
            if s.max_bytes > 0 && bytes > s.max_bytes {
                return Some(format!("{bytes} bytes, max_bytes {}", s.max_bytes));
            }
            if s.max_per_subject > 0
                && let Some((subject, n)) = subj.into_iter().find(|(_, n)| *n > s.max_per_subject)
            {
                return Some(format!("{n} messages on {subject}, max_msgs_per_subject {}", s.max_per_subject));
            }
            None
        };
        if s.retention == Retention::Limits {
            if let Some(why) =
                over(fin.msgs.len() as u64, fin.bytes, per_subject.iter().map(|(k, n)| (*k, *n)).collect())
            {
                limits.add(|| format!("{} at the end: {why}", s.name));
            }
            for e in events {
                if let EventKind::Js(JsEvent::StreamInfo { stream, msgs, bytes, subjects, .. }) = &e.kind
                    && *stream == s.name
                    && let Some(why) = over(*msgs, *bytes, subjects.iter().map(|(k, n)| (k.as_str(), *n)).collect())
                {
                    limits.add(|| format!("{} at {}: {why}", s.name, at(e)));
                }
            }
            check_kept(events, &h, &ex, s, stream_no, &mut kept);
        }

        for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
            let subject = js_subject(value);
            let copies = stored.get(&value).map(Vec::as_slice).unwrap_or_default();
            if !copies.is_empty() && p.attempts.iter().all(|a| a.outcome == Outcome::Fail) {
                failed.add(|| format!("{} value {value:#x} at seq {copies:?} was reported failed", s.name));
            }
            let acks: Vec<(u64, u64, bool)> = p
                .attempts
                .iter()
                .filter_map(|a| match a.outcome {
                    Outcome::Ack { seq, duplicate } => Some((seq, a.ended_us.unwrap_or(a.invoked_us), duplicate)),
                    _ => None,
                })
                .collect();
            // Durability: the acknowledged sequence holds the value at the end.
            if let Some(&(seq, _, _)) = acks.first()
                && stored_at.get(&seq) != Some(&value)
                && !ex.removed_by_limits(seq, &subject, None)
                && !ex.removed_by_acks(seq, &subject, value)
            {
                durable.add(|| {
                    let now = stored_at.get(&seq).map_or("nothing".to_string(), |x| format!("{x:#x}"));
                    format!(
                        "{} value {value:#x} acknowledged at seq {seq} (last_seq {}), which holds {now}",
                        s.name, fin.last_seq
                    )
                });
            }
            // Duplicates.
            if copies.len() > 1 {
                let first_invoke = p.attempts.first().map_or(0, |a| a.invoked_us);
                let last_end = p.attempts.iter().map(|a| a.ended_us.unwrap_or(u64::MAX)).max().unwrap_or(u64::MAX);
                if !p.msg_id {
                    once.add(|| format!("{} value {value:#x} stored at seqs {copies:?}", s.name));
                } else if last_end.saturating_sub(first_invoke) < s.dedup_window_us {
                    dedup.add(|| {
                        format!(
                            "{} Msg-Id value {value:#x} stored at seqs {copies:?} within the duplicate window",
                            s.name
                        )
                    });
                }
            }
            if p.msg_id {
                let (first_seq, first_t) = match acks.first() {
                    Some(&(seq, t, _)) => (seq, p.attempts.first().map_or(t, |a| a.invoked_us).min(t)),
                    None => (0, 0),
                };
                for &(seq, t, dup) in acks.iter().skip(1) {
                    // A restart may forget ids whose messages are gone: not stored at the
                    // end, or removed by the consumers' acks (damage at rest can make a
                    // removed message visible again after the restart forgot its id).
                    let gone =
                        stored_at.get(&first_seq) != Some(&value) || ex.removed_by_acks(first_seq, &subject, value);
                    let forgivable = h.start_between(first_t, t) && gone;
                    if seq != first_seq && t.saturating_sub(first_t) < s.dedup_window_us && !forgivable {
                        dedup.add(|| {
                            format!(
                                "{} Msg-Id value {value:#x} acknowledged at seq {first_seq} and again at seq {seq} (duplicate={dup}) {:.3}s later",
                                s.name,
                                (t - first_t) as f64 / 1e6
                            )
                        });
                    }
                }
            }
        }

        // Per consumer: delivery, order, ack floor, workqueue.
        for c in &s.consumers {
            let key = (s.name.clone(), c.name.clone());
            let ds = h.deliveries.get(&key).map(Vec::as_slice).unwrap_or_default();
            let mut delivered: BTreeSet<(u64, u64)> = BTreeSet::new();
            let mut last_first: Option<(u32, u64)> = None;
            for d in ds {
                if !d.intact || h.published.get(&d.value).is_none_or(|p| p.stream != stream_no) {
                    phantom.add(|| {
                        format!(
                            "{}/{} was delivered seq {} ({:#x}) that no client published intact",
                            s.name, c.name, d.sseq, d.value
                        )
                    });
                    continue;
                }
                if !c.matches(&js_subject(d.value)) {
                    phantom.add(|| {
                        format!("{}/{} was delivered {} outside its filter", s.name, c.name, js_subject(d.value))
                    });
                }
                delivered.insert((d.sseq, d.value));
                if d.dc == 1 {
                    if let Some((inc, prev)) = last_first
                        && inc == d.incarnation
                        && d.sseq <= prev
                    {
                        order.add(|| {
                            format!(
                                "{}/{} first-delivered seq {} after seq {prev} (at {:.6}s)",
                                s.name,
                                c.name,
                                d.sseq,
                                d.at_us as f64 / 1e6
                            )
                        });
                    }
                    last_first = Some((d.incarnation, d.sseq));
                }
                if s.retention == Retention::WorkQueue
                    && let Some((&t, _)) = h
                        .confirmed
                        .range((s.name.clone(), c.name.clone(), d.sseq)..=(s.name.clone(), c.name.clone(), d.sseq))
                        .next()
                        .map(|(k, t)| (t, k))
                    && t < d.at_us
                    && !h.crash_between(t, d.at_us)
                {
                    wq.add(|| {
                        format!("{}/{} seq {} delivered again after its ack was confirmed", s.name, c.name, d.sseq)
                    });
                }
            }
            if spec.caught_up {
                for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
                    let subject = js_subject(value);
                    let Some(seq) = p.attempts.iter().find_map(|a| match a.outcome {
                        Outcome::Ack { seq, .. } => Some(seq),
                        _ => None,
                    }) else {
                        continue;
                    };
                    if c.matches(&subject)
                        && !delivered.contains(&(seq, value))
                        && !ex.removed_by_limits(seq, &subject, None)
                    {
                        delivery.add(|| format!("{}/{} never received {value:#x} (seq {seq})", s.name, c.name));
                    }
                }
            }
            // The ack floor never passes a message this consumer has not acked.
            let mut known: BTreeMap<u64, (u64, String)> = BTreeMap::new();
            for (&value, p) in h.published.iter().filter(|(_, p)| p.stream == stream_no) {
                for a in &p.attempts {
                    if let (Outcome::Ack { seq, .. }, Some(t)) = (&a.outcome, a.ended_us) {
                        let subject = js_subject(value);
                        if c.matches(&subject) {
                            known.entry(*seq).or_insert((t, subject));
                        }
                    }
                }
            }
            for (t, _, _, f, when) in h.floors.iter().filter(|x| x.1 == s.name && x.2 == c.name) {
                for (&seq, (acked_at, subject)) in known.range(..=*f) {
                    if *acked_at > *t {
                        continue;
                    }
                    let acked = h.acked.get(&(s.name.clone(), c.name.clone(), seq)).is_some_and(|&a| a <= *t);
                    if !acked && !ex.removed_by_limits(seq, subject, Some(*t)) {
                        floor.add(|| {
                            format!(
                                "{}/{} ack floor {f} at {when} passes seq {seq}, which it never acked",
                                s.name, c.name
                            )
                        });
                        break;
                    }
                }
            }
            // Workqueue: a confirmed ack removes the message for good (barring a power cut).
            if s.retention == Retention::WorkQueue {
                let end = u64::MAX;
                for ((_, _, seq), &t) in
                    h.confirmed.range((s.name.clone(), c.name.clone(), 0)..=(s.name.clone(), c.name.clone(), u64::MAX))
                {
                    if stored_at.contains_key(seq) && !h.crash_between(t, end) {
                        wq.add(|| {
                            format!("{}/{} seq {seq} is still stored after its ack was confirmed", s.name, c.name)
                        });
                    }
                }
            }
        }
    }
    for t in [phantom, failed, durable, once, dedup, delivery, order, floor, wq, limits, kept] {
        t.finish(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 16;

    fn ev(t: u64, kind: JsEvent) -> Event {
        Event { time_us: t, node: 0, kind: EventKind::Js(kind) }
    }

    fn spec(retention: Retention) -> JsSpec {
        JsSpec {
            streams: vec![StreamSpec {
                name: "S0".into(),
                retention,
                max_msgs: 0,
                max_bytes: 0,
                max_per_subject: 0,
                dedup_window_us: 10_000_000,
                max_record_bytes: 100,
                consumers: vec![ConsumerSpec { name: "c".into(), filter: None, pull: true }],
            }],
            payload_len: LEN,
            caught_up: true,
        }
    }

    fn val(n: u64) -> u64 {
        js_value(0, 0, n)
    }

    /// A publish of value `n` acknowledged at `seq`, at time `t`.
    fn publish(es: &mut Vec<Event>, t: u64, n: u64, seq: Option<u64>, msg_id: bool) {
        es.push(ev(t, JsEvent::Publish { client: 0, value: val(n), stream: "S0".into(), msg_id }));
        es.push(ev(
            t + 1,
            match seq {
                Some(seq) => JsEvent::PubAck { client: 0, value: val(n), seq, duplicate: false },
                None => JsEvent::PubFail { client: 0, value: val(n), reason: "503".into() },
            },
        ));
    }

    fn deliver(es: &mut Vec<Event>, t: u64, n: u64, seq: u64, dc: u64, ack: Option<AckKind>) {
        es.push(ev(
            t,
            JsEvent::Deliver {
                stream: "S0".into(),
                consumer: "c".into(),
                value: val(n),
                intact: true,
                stream_seq: seq,
                consumer_seq: seq,
                delivered: dc,
            },
        ));
        if let Some(kind) = ack {
            es.push(ev(
                t + 1,
                JsEvent::Ack { stream: "S0".into(), consumer: "c".into(), stream_seq: seq, kind, confirmed: false },
            ));
            es.push(ev(
                t + 2,
                JsEvent::Ack { stream: "S0".into(), consumer: "c".into(), stream_seq: seq, kind, confirmed: true },
            ));
        }
    }

    fn floor(es: &mut Vec<Event>, t: u64, f: u64) {
        es.push(ev(
            t,
            JsEvent::ConsumerInfo {
                stream: "S0".into(),
                consumer: "c".into(),
                delivered_stream_seq: f,
                ack_floor_stream_seq: f,
                num_ack_pending: 0,
                num_pending: 0,
            },
        ));
    }

    fn msg(seq: u64, n: u64) -> JsFinalMsg {
        JsFinalMsg { seq, subject: js_subject(val(n)), payload: js_payload(val(n), LEN) }
    }

    fn fin(msgs: Vec<JsFinalMsg>, last: u64) -> Vec<JsFinalStream> {
        vec![JsFinalStream { last_seq: last, bytes: 0, msgs, lost: vec![] }]
    }

    fn names(es: &[Event], spec: &JsSpec, f: &[JsFinalStream]) -> Vec<&'static str> {
        js_outcomes(es, spec, f).into_iter().map(|x| x.invariant).collect()
    }

    /// Three acknowledged publishes and one failed one, delivered and acked in order.
    fn clean() -> Vec<Event> {
        let mut es = Vec::new();
        publish(&mut es, 10, 1, Some(1), false);
        publish(&mut es, 20, 2, Some(2), true);
        publish(&mut es, 30, 3, Some(3), false);
        publish(&mut es, 40, 4, None, false);
        deliver(&mut es, 50, 1, 1, 1, Some(AckKind::Ack));
        deliver(&mut es, 60, 2, 2, 1, Some(AckKind::Ack));
        floor(&mut es, 70, 2);
        deliver(&mut es, 80, 3, 3, 1, Some(AckKind::Ack));
        floor(&mut es, 90, 3);
        es
    }

    /// Per-subject eviction is judged on every message the subject ever held: deleting a
    /// newer message later does not make an evicted one a loss, but a delete confirmed
    /// before the newer messages came means nothing evicted it.
    #[test]
    fn per_subject_eviction_survives_a_later_delete() {
        let mut sp = spec(Retention::Limits);
        sp.caught_up = false;
        sp.streams[0].max_per_subject = 2;
        // Values 3, 7, 11 share a subject (client 0: (1 + n) % 4 == 0).
        assert!(js_subject(val(3)) == js_subject(val(7)) && js_subject(val(7)) == js_subject(val(11)));
        let delete = |es: &mut Vec<Event>, t: u64, seq: u64| {
            es.push(ev(t, JsEvent::Delete { stream: "S0".into(), seq, done: false }));
            es.push(ev(t + 1, JsEvent::Delete { stream: "S0".into(), seq, done: true }));
        };
        let mut es = Vec::new();
        publish(&mut es, 10, 3, Some(1), false);
        publish(&mut es, 20, 7, Some(2), false);
        publish(&mut es, 30, 11, Some(3), false); // evicts seq 1
        delete(&mut es, 40, 3);
        assert!(names(&es, &sp, &fin(vec![msg(2, 7)], 3)).is_empty());

        let mut es = Vec::new();
        publish(&mut es, 10, 3, Some(1), false);
        publish(&mut es, 20, 7, Some(2), false);
        delete(&mut es, 25, 2);
        publish(&mut es, 30, 11, Some(3), false); // one newer message left: seq 1 stays
        assert_eq!(names(&es, &sp, &fin(vec![msg(3, 11)], 3)), ["js-acked-durability"]);
    }

    /// A publish refused because the store failed evicted nothing (its limits take
    /// effect only once it is durable): the message it would have evicted must stay.
    #[test]
    fn a_publish_refused_for_a_store_failure_evicts_nothing() {
        let mut sp = spec(Retention::Limits);
        sp.caught_up = false;
        sp.streams[0].max_per_subject = 1;
        let refuse = |es: &mut Vec<Event>, t: u64, n: u64, reason: &str| {
            es.push(ev(t, JsEvent::Publish { client: 0, value: val(n), stream: "S0".into(), msg_id: false }));
            es.push(ev(t + 1, JsEvent::PubFail { client: 0, value: val(n), reason: reason.into() }));
        };
        let store_failed = "store I/O error during sync on x.blk: EIO (503/10077)";
        // Value 3 at seq 1, then value 7 (same subject) refused: seq 2 spent, seq 1 stays.
        let mut es = Vec::new();
        publish(&mut es, 10, 3, Some(1), false);
        refuse(&mut es, 20, 7, store_failed);
        assert_eq!(names(&es, &sp, &fin(vec![], 2)), ["js-acked-durability"]);
        assert!(names(&es, &sp, &fin(vec![msg(1, 3)], 2)).is_empty());
        // Nor does any other refusal.
        let mut es = Vec::new();
        publish(&mut es, 10, 3, Some(1), false);
        refuse(&mut es, 20, 7, "no responders");
        assert_eq!(names(&es, &sp, &fin(vec![], 2)), ["js-acked-durability"]);
    }

    #[test]
    fn value_encoding_round_trips() {
        let x = js_value(3, 2, 77);
        assert_eq!(js_stream_of(x), 2);
        assert_eq!(js_value_of(&js_payload(x, 40)), Some(x));
        assert!(js_subject(x).starts_with("js2."));
        assert!(subject_matches("js2.>", &js_subject(x)) && subject_matches("js2.*", "js2.1"));
        assert!(
            !subject_matches("js2.1", "js2.10") && !subject_matches("js2.*", "js2") && !subject_matches("js2.>", "js2")
        );
    }

    #[test]
    fn a_clean_history_passes() {
        let es = clean();
        let f = fin(vec![msg(1, 1), msg(2, 2), msg(3, 3)], 3);
        assert_eq!(names(&es, &spec(Retention::Limits), &f), Vec::<&str>::new());
        // Interest and workqueue streams are empty once everything is acked.
        assert!(names(&es, &spec(Retention::Interest), &fin(vec![], 3)).is_empty());
        assert!(names(&es, &spec(Retention::WorkQueue), &fin(vec![], 3)).is_empty());
    }

    #[test]
    fn loss_phantoms_failures_and_duplicates_are_caught() {
        let es = clean();
        let sp = spec(Retention::Limits);
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(3, 3)], 3)), ["js-acked-durability"]);
        // Sequence reuse after a lost append: seq 2 holds another value.
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 3)], 2)), ["js-acked-durability"]);
        let mut garbled = msg(3, 3);
        garbled.payload[12] ^= 1;
        assert_eq!(
            names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), garbled], 3)),
            ["js-no-phantom", "js-acked-durability"]
        );
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3), msg(4, 9)], 4)), ["js-no-phantom"]);
        assert_eq!(
            names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3), msg(4, 4)], 4)),
            ["js-failed-not-stored"]
        );
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3), msg(4, 1)], 4)), ["js-exactly-once"]);
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3), msg(4, 2)], 4)), ["js-dedup"]);
    }

    #[test]
    fn a_forgotten_msg_id_is_caught_unless_the_window_or_a_restart_excuses_it() {
        let mut es = clean();
        // A retry of value 2 after a restart is stored again at seq 4.
        es.push(Event { time_us: 95, node: 1, kind: EventKind::NodeStart { incarnation: 1 } });
        es.push(ev(100, JsEvent::Publish { client: 0, value: val(2), stream: "S0".into(), msg_id: true }));
        es.push(ev(101, JsEvent::PubAck { client: 0, value: val(2), seq: 4, duplicate: false }));
        let sp = spec(Retention::Limits);
        let f = fin(vec![msg(1, 1), msg(2, 2), msg(3, 3), msg(4, 2)], 4);
        assert_eq!(names(&es, &sp, &f)[0], "js-dedup");
        // Outside the window it is allowed.
        let mut wide = sp.clone();
        wide.streams[0].dedup_window_us = 50;
        assert!(!names(&es, &wide, &f).contains(&"js-dedup"));
        // A duplicate PubAck naming the original sequence is what dedup should answer.
        let mut ok = clean();
        ok.push(ev(100, JsEvent::Publish { client: 0, value: val(2), stream: "S0".into(), msg_id: true }));
        ok.push(ev(101, JsEvent::PubAck { client: 0, value: val(2), seq: 2, duplicate: true }));
        assert!(names(&ok, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3)], 3)).is_empty());
        // On a workqueue stream the original is gone once acked: a restart may forget its id.
        let wqs = spec(Retention::WorkQueue);
        assert!(!names(&es, &wqs, &fin(vec![msg(4, 2)], 4)).contains(&"js-dedup"));
    }

    #[test]
    fn retention_deletes_and_reported_loss_excuse_missing_messages() {
        let es = clean();
        let mut sp = spec(Retention::Limits);
        sp.streams[0].max_msgs = 2;
        assert!(names(&es, &sp, &fin(vec![msg(2, 2), msg(3, 3)], 3)).is_empty());
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(3, 3)], 3)), ["js-acked-durability"]);
        assert_eq!(names(&es, &sp, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3)], 3)), ["js-limits"]);
        let mut es2 = es.clone();
        es2.push(ev(100, JsEvent::Delete { stream: "S0".into(), seq: 1, done: false }));
        assert!(names(&es2, &spec(Retention::Limits), &fin(vec![msg(2, 2), msg(3, 3)], 3)).is_empty());
        let mut lost = fin(vec![msg(2, 2), msg(3, 3)], 3);
        lost[0].lost = vec![1];
        assert!(names(&es, &spec(Retention::Limits), &lost).is_empty());
        // Workqueue: unacked messages must stay.
        let mut es3 = Vec::new();
        publish(&mut es3, 10, 1, Some(1), false);
        let mut wq = spec(Retention::WorkQueue);
        wq.caught_up = false;
        assert_eq!(names(&es3, &wq, &fin(vec![], 1)), ["js-acked-durability"]);
        assert!(names(&es3, &wq, &fin(vec![msg(1, 1)], 1)).is_empty());
        // Per-subject limit: samples over it are caught.
        let mut ps = spec(Retention::Limits);
        ps.streams[0].max_per_subject = 1;
        let mut es4 = es.clone();
        es4.push(ev(
            95,
            JsEvent::StreamInfo {
                stream: "S0".into(),
                msgs: 3,
                bytes: 0,
                first_seq: 1,
                last_seq: 3,
                subjects: ["js0.0", "js0.1", "js0.2", "js0.3"]
                    .iter()
                    .map(|k| (k.to_string(), if *k == "js0.1" { 2 } else { 1 }))
                    .collect(),
                lost: vec![],
            },
        ));
        assert_eq!(names(&es4, &ps, &fin(vec![msg(1, 1), msg(2, 2), msg(3, 3)], 3)), ["js-limits"]);
    }

    /// `js-acked-kept`: a stream sample must count every acknowledged message (acked
    /// before the sample was asked for) that no limit, delete or loss removed by then; a
    /// publish refused for a store failure removes nothing.
    #[test]
    fn a_sample_missing_an_acknowledged_message_is_caught() {
        let mut sp = spec(Retention::Limits);
        sp.caught_up = false;
        sp.streams[0].max_per_subject = 1;
        let subject = js_subject(val(1));
        let sample = |es: &mut Vec<Event>, t: u64, n: u64| {
            es.push(ev(
                t,
                JsEvent::ConsumerInfo {
                    stream: "S0".into(),
                    consumer: "c".into(),
                    delivered_stream_seq: 0,
                    ack_floor_stream_seq: 0,
                    num_ack_pending: 0,
                    num_pending: 0,
                },
            ));
            let subjects = if n == 0 { vec![] } else { vec![(subject.clone(), n)] };
            es.push(ev(
                t + 1,
                JsEvent::StreamInfo {
                    stream: "S0".into(),
                    msgs: n,
                    bytes: 0,
                    first_seq: 1,
                    last_seq: 2,
                    subjects,
                    lost: vec![],
                },
            ));
        };
        let mut es = Vec::new();
        publish(&mut es, 10, 1, Some(1), false);
        es.push(ev(20, JsEvent::Publish { client: 0, value: val(5), stream: "S0".into(), msg_id: false }));
        es.push(ev(21, JsEvent::PubFail { client: 0, value: val(5), reason: "EIO (503/10077)".into() }));
        assert_eq!(js_subject(val(5)), subject);
        let mut gone = es.clone();
        sample(&mut gone, 30, 0);
        assert_eq!(names(&gone, &sp, &fin(vec![msg(1, 1)], 2)), ["js-acked-kept"]);
        let mut kept = es.clone();
        sample(&mut kept, 30, 1);
        assert!(names(&kept, &sp, &fin(vec![msg(1, 1)], 2)).is_empty());
        // A sample asked for before the PubAck arrived may miss it.
        let mut early = Vec::new();
        early.push(ev(9, JsEvent::Publish { client: 0, value: val(1), stream: "S0".into(), msg_id: false }));
        sample(&mut early, 10, 0);
        early.push(ev(12, JsEvent::PubAck { client: 0, value: val(1), seq: 1, duplicate: false }));
        assert!(names(&early, &sp, &fin(vec![msg(1, 1)], 1)).is_empty());
        // A newer acknowledged message on the subject evicts it.
        let mut evicted = es.clone();
        publish(&mut evicted, 22, 5, Some(2), false);
        sample(&mut evicted, 30, 1);
        assert!(names(&evicted, &sp, &fin(vec![msg(2, 5)], 2)).is_empty());
    }

    #[test]
    fn missing_delivery_bad_order_and_a_skipping_floor_are_caught() {
        let sp = spec(Retention::Limits);
        let f = fin(vec![msg(1, 1), msg(2, 2), msg(3, 3)], 3);
        // Message 3 never delivered.
        let mut es = Vec::new();
        for n in 1..=3 {
            publish(&mut es, n * 10, n, Some(n), false);
        }
        deliver(&mut es, 50, 1, 1, 1, Some(AckKind::Ack));
        deliver(&mut es, 60, 2, 2, 1, Some(AckKind::Ack));
        assert_eq!(names(&es, &sp, &f), ["js-delivery"]);
        let mut not_caught_up = sp.clone();
        not_caught_up.caught_up = false;
        assert!(names(&es, &not_caught_up, &f).is_empty());
        // First deliveries out of order (a redelivery, dc 2, may come back to an older one).
        let mut es2 = Vec::new();
        for n in 1..=3 {
            publish(&mut es2, n * 10, n, Some(n), false);
        }
        deliver(&mut es2, 50, 2, 2, 1, Some(AckKind::Ack));
        deliver(&mut es2, 55, 1, 1, 1, Some(AckKind::Nak));
        deliver(&mut es2, 60, 1, 1, 2, Some(AckKind::Ack));
        deliver(&mut es2, 70, 3, 3, 1, Some(AckKind::Term));
        assert_eq!(names(&es2, &sp, &f), ["js-order"]);
        // A restart resets the order.
        let mut es3 = es2.clone();
        es3.insert(es3.len() - 6, Event { time_us: 52, node: 1, kind: EventKind::NodeStart { incarnation: 1 } });
        es3.sort_by_key(|e| e.time_us);
        assert!(names(&es3, &sp, &f).is_empty());
        // The floor at 2 while seq 1 was only nak'd.
        let mut es4 = Vec::new();
        for n in 1..=3 {
            publish(&mut es4, n * 10, n, Some(n), false);
        }
        deliver(&mut es4, 50, 1, 1, 1, Some(AckKind::Nak));
        deliver(&mut es4, 60, 2, 2, 1, Some(AckKind::Ack));
        floor(&mut es4, 65, 2);
        deliver(&mut es4, 70, 1, 1, 2, Some(AckKind::Ack));
        deliver(&mut es4, 80, 3, 3, 1, Some(AckKind::Ack));
        floor(&mut es4, 90, 3);
        assert_eq!(names(&es4, &sp, &f), ["js-ack-floor"]);
        // ... which a max_msgs eviction of seq 1 would excuse.
        let mut lim = sp.clone();
        lim.streams[0].max_msgs = 1;
        es4.push(ev(
            66,
            JsEvent::StreamInfo {
                stream: "S0".into(),
                msgs: 1,
                bytes: 0,
                first_seq: 2,
                last_seq: 2,
                subjects: vec![],
                lost: vec![],
            },
        ));
        assert!(!names(&es4, &lim, &fin(vec![msg(3, 3)], 3)).contains(&"js-ack-floor"));
    }

    #[test]
    fn a_workqueue_ack_removes_the_message_for_good() {
        let wq = spec(Retention::WorkQueue);
        let es = clean();
        assert_eq!(names(&es, &wq, &fin(vec![msg(2, 2)], 3)), ["js-workqueue"]);
        let mut again = clean();
        deliver(&mut again, 200, 1, 1, 2, Some(AckKind::Ack));
        assert_eq!(names(&again, &wq, &fin(vec![], 3)), ["js-workqueue"]);
        // A power cut after the ack excuses both (state is written behind).
        let mut cut = again.clone();
        cut.insert(cut.len() - 3, Event { time_us: 150, node: 1, kind: EventKind::NodeCrash });
        assert!(names(&cut, &wq, &fin(vec![msg(2, 2)], 3)).is_empty());
    }
}
