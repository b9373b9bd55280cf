//! A JetStream stream as a pure state machine over a [`MsgStore`]: the publish path
//! (PubAck, `Nats-Msg-Id` dedup, expected-sequence headers, roll-ups), limits and
//! retention, purge, message get and delete, direct get and stream info.
//!
//! No I/O of its own and no clock: every call that depends on time takes `now_ns`
//! (nanoseconds since the Unix epoch, from the runtime's clock), and the store does the
//! I/O through its own seam. The host (the JetStream API layer) routes messages whose
//! subject matches the stream's subjects to [`Stream::publish`] and sends the returned
//! [`PubAck`] (or [`pub_ack_error_json`]) to the publisher's reply subject.
//!
//! # Semantics (nats-server's, with the differences stated)
//!
//! - **Checks on publish, in nats-server's order** (`processJetStreamMsg`): sealed
//!   (10109); `Nats-Expected-Stream` (10060); `Nats-TTL` without `allow_msg_ttl`
//!   (10166); `Nats-Expected-Last-Subject-Sequence` (+ `-Subject`) (10071, 10193 for the
//!   subject header alone); `Nats-Expected-Last-Sequence` (10071); `Nats-Msg-Id` dedup
//!   (a duplicate is answered with the original sequence and `"duplicate": true`);
//!   `Nats-Expected-Last-Msg-Id` (10070); `Nats-Rollup` (10111); `max_msg_size` (10054);
//!   headers over 64 KiB (10097); then the store's limits (10077 with nats-server's
//!   texts "maximum messages exceeded", "maximum bytes exceeded", "maximum messages per
//!   subject exceeded", "message too large").
//! - **Dedup** (see [`dedup`]): bounded by ledger account [`STREAM_DEDUP`]; at its limit
//!   a publish with a new id is refused with 429/10167 (never an early eviction). A
//!   purge drops the ids of the messages it removed; deletes, acks and limit evictions
//!   do not (as nats-server). After a restart the window is rebuilt from the stored
//!   messages' `Nats-Msg-Id` headers within the window ([`Stream::open`]).
//! - **Per-message TTL** (`Nats-TTL`, with `allow_msg_ttl`; 10166 without it, 10165
//!   when malformed or under 1 s): the message is removed by [`Stream::tick`] once its
//!   TTL has passed (see [`ttl`]; deadlines are rebuilt from the headers on open).
//!   Differences from nats-server: `never` is treated as no TTL (the message still
//!   obeys `max_age`). With `subject_delete_marker_ttl`, a subject whose last message
//!   `max_age` removed gets a marker (`Nats-Marker-Reason: MaxAge`, see
//!   [`Stream::take_markers`]); purges and deletes write none.
//! - **Retention**: limits via the store. For interest and workqueue streams the host
//!   registers consumers ([`Stream::add_consumer`], which also enforces the workqueue
//!   uniqueness rules) and removes a message once acked as its policy says
//!   ([`Stream::remove_msg`]). A publish to an interest stream with no consumer
//!   interested in the subject uses a sequence but stores nothing, as nats-server does.
//! - **Delete** never erases in place: the store drops the message from its index and
//!   the bytes go with their block (no secure erase; `no_erase` is accepted either way).
//!
//! ```
//! use std::sync::Arc;
//! use weir_core::mem::Account;
//! use weir_core::store::{MemStore, StoreLimits};
//! use weir_core::stream::{STREAM_DEDUP, Stream, StreamConfig, StreamOptions};
//!
//! let cfg = StreamConfig::new("ORDERS", &["orders.>"]).check_create(false).unwrap();
//! let store = MemStore::new(StoreLimits::default()).unwrap();
//! let opts = StreamOptions::new(Arc::new(Account::new(STREAM_DEDUP, 1 << 20)));
//! let mut s = Stream::open(cfg, store, 0, 0, opts).unwrap();
//! let hdr = b"NATS/1.0\r\nNats-Msg-Id: a1\r\n\r\n";
//! let ack = s.publish(1_000, "orders.new", hdr, b"hello").unwrap();
//! assert_eq!(ack.to_json(None), br#"{"stream":"ORDERS","seq":1}"#);
//! let dup = s.publish(2_000, "orders.new", hdr, b"hello").unwrap();
//! assert_eq!(dup.to_json(None), br#"{"stream":"ORDERS","seq":1,"duplicate": true}"#);
//! ```

mod config;
pub mod dedup;
pub mod sourcing;
pub mod transform;
pub mod ttl;
mod wire;

pub use config::{
    Compression, ConsumerLimits, DEFAULT_DUPLICATE_WINDOW_NS, DiscardPolicy, MAX_DESCRIPTION_LEN, MAX_METADATA_LEN,
    MAX_NAME_LEN, MAX_REPLICAS, RetentionPolicy, StorageType, StreamConfig, check_subject_overlap, is_valid_name,
    parse_config_request,
};
pub use dedup::{Dedup, STREAM_DEDUP};
pub use wire::{
    ClusterInfo, DirectGetReply, MsgDeleteRequest, MsgGetRequest, MsgGetResponse, PubAck, PurgeApiRequest,
    StoredMsgJson, StreamInfo, StreamStateJson, pub_ack_error_json,
};

use crate::jetstream::ApiError;
use crate::mem::Account;
use crate::proto::Headers;
use crate::store::{
    LimitKind, MAX_RECORD_LEN, MsgStore, PurgeRequest, StateRequest, StoreError, StoreLimits, StoredMsg,
};
use crate::subject::patterns_collide;
use std::collections::BTreeMap;
use std::sync::Arc;
use ttl::TtlIndex;

/// `Nats-Msg-Id`: the publisher's id for dedup.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// `Nats-Expected-Stream`.
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// `Nats-Expected-Last-Sequence`.
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
/// `Nats-Expected-Last-Subject-Sequence`.
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// `Nats-Expected-Last-Subject-Sequence-Subject`.
pub const EXPECTED_LAST_SUBJ_SEQ_SUBJ: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// `Nats-Expected-Last-Msg-Id`.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// `Nats-Rollup` (`sub` or `all`).
pub const ROLLUP: &str = "Nats-Rollup";
/// `Nats-TTL`.
pub const MSG_TTL: &str = "Nats-TTL";
/// `Nats-Marker-Reason` on subject delete markers (`MaxAge`).
pub const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Most subjects checked for subject delete markers per expiry step.
pub const MARKER_CHUNK: usize = 1024;
/// Most sequences [`Stream::skip_to`] spends one by one.
pub const MAX_MIRROR_SKIP: u64 = 4096;
/// Largest header block a stream accepts (`math.MaxUint16`).
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;
/// Most deleted sequences listed by [`Stream::info`] with `deleted_details`.
pub const MAX_DELETED_DETAILS: usize = 100_000;

/// Known-bug switches for the simulator's checkers to catch (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamBugs {
    /// `dedup-forgets`: do not rebuild the dedup window on open (after a restart).
    pub dedup_forgets: bool,
}

/// What a stream needs besides its config and store.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Ledger account [`STREAM_DEDUP`] charged for dedup entries and TTL deadlines
    /// (shared by the node's streams).
    pub dedup_account: Arc<Account>,
    /// Known-bug switches.
    pub bugs: StreamBugs,
}

impl StreamOptions {
    /// Options with `dedup_account` and no bugs.
    pub fn new(dedup_account: Arc<Account>) -> Self {
        StreamOptions { dedup_account, bugs: StreamBugs::default() }
    }
}

/// A stream over its store `S` (see the module docs).
#[derive(Debug)]
pub struct Stream<S: MsgStore> {
    cfg: StreamConfig,
    store: S,
    created_ns: i64,
    dedup: Dedup,
    ttls: TtlIndex,
    /// Id of the newest stored message (`Nats-Expected-Last-Msg-Id` compares with it).
    last_msg_id: String,
    /// Time of the newest message ever stored (kept across purges, as nats-server's).
    last_ts: Option<i64>,
    /// Consumers by name and their filters (empty: the whole stream).
    consumers: BTreeMap<String, Vec<String>>,
    /// The last store failure (I/O, corruption): the store must be reopened.
    failure: Option<String>,
    bugs: StreamBugs,
    /// Subject delete markers written and not yet taken by the host.
    markers: Vec<(u64, String)>,
    /// Until when (ns) the dedup window has a hole: an id of a message stored within the
    /// window could not be kept (the `stream.dedup` account refused it while the window
    /// was rebuilt or carried over a reopen). Until then a `Nats-Msg-Id` the index does
    /// not hold may be a forgotten one, so such publishes are refused as when the
    /// account is full (429, retryable) instead of being stored twice. 0: no hole.
    dedup_gap_until_ns: i64,
}

/// Whether a raw header block is a subject delete marker's.
fn is_marker(headers: &[u8]) -> bool {
    !headers.is_empty() && Headers::parse(headers).is_ok_and(|h| h.get(MARKER_REASON).is_some())
}

/// The message id in a raw header block, if any.
fn msg_id_of(headers: &[u8]) -> Option<String> {
    if headers.is_empty() {
        return None;
    }
    Headers::parse(headers).ok()?.get(MSG_ID).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// When a stored message with `Nats-TTL` in `headers`, stored at `ts_ns`, must go.
fn ttl_deadline(headers: &[u8], ts_ns: i64) -> Option<i64> {
    if headers.is_empty() {
        return None;
    }
    let h = Headers::parse(headers).ok()?;
    let secs = parse_ttl(h.get(MSG_TTL).filter(|v| !v.is_empty())?).ok()?;
    (secs > 0).then(|| ts_ns.saturating_add(secs.saturating_mul(1_000_000_000)))
}

/// Parse a sequence header as nats-server does: a non-number reads as an impossible
/// sequence, so the check fails rather than passes.
fn parse_seq(v: &str) -> u64 {
    v.parse().unwrap_or(u64::MAX)
}

/// Parse `Nats-TTL` as nats-server's `parseMessageTTL`: `never` (-1), a Go duration of
/// at least 1 s, or whole seconds. `Ok(0)` means no TTL.
fn parse_ttl(v: &str) -> Result<i64, ApiError> {
    if v.eq_ignore_ascii_case("never") {
        return Ok(-1);
    }
    if let Ok(secs) = v.parse::<i64>() {
        return if secs < 0 { Err(ApiError::message_ttl_invalid()) } else { Ok(secs) };
    }
    let units = [("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9)];
    let mut total = 0.0f64;
    let mut rest = v;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().map_err(|_| ApiError::message_ttl_invalid())?;
        rest = &rest[n..];
        let (unit, mul) = units
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or_else(ApiError::message_ttl_invalid)?;
        rest = &rest[unit.len()..];
        total += num * mul;
    }
    if total < 1.0 { Err(ApiError::message_ttl_invalid()) } else { Ok(total as i64) }
}

impl<S: MsgStore> Stream<S> {
    /// Open a stream over `store` with a checked `cfg` ([`StreamConfig::check_create`]
    /// or [`StreamConfig::check_update`]): the store gets the config's limits, and the
    /// dedup window is rebuilt from the stored messages' `Nats-Msg-Id` headers stored
    /// within `duplicate_window` of `now_ns`, so that a restart does not forget them. If
    /// the dedup account cannot hold the whole window the oldest ids are dropped (they
    /// are the first to expire anyway). `created_ns` is the stream's creation time.
    pub fn open(
        cfg: StreamConfig,
        mut store: S,
        created_ns: i64,
        now_ns: i64,
        opts: StreamOptions,
    ) -> Result<Self, ApiError> {
        store.set_limits(cfg.store_limits()).map_err(ApiError::stream_store_failed)?;
        let mut s = Stream {
            cfg,
            store,
            created_ns,
            dedup: Dedup::new(opts.dedup_account.clone()),
            ttls: TtlIndex::new(opts.dedup_account),
            last_msg_id: String::new(),
            last_ts: None,
            consumers: BTreeMap::new(),
            failure: None,
            bugs: opts.bugs,
            markers: Vec::new(),
            dedup_gap_until_ns: 0,
        };
        s.rebuild(now_ns).map_err(ApiError::stream_store_failed)?;
        s.check();
        Ok(s)
    }

    fn rebuild(&mut self, now_ns: i64) -> Result<(), StoreError> {
        let last_seq = self.store.state().last_seq;
        let last = match self.store.load(last_seq)? {
            Some(m) => Some(m),
            None => self.store.load_last(">")?,
        };
        if let Some(last) = last {
            self.last_ts = Some(last.ts_ns);
            if last.seq == last_seq {
                self.last_msg_id = msg_id_of(&last.headers).unwrap_or_default();
            }
        }
        if self.cfg.allow_msg_ttl {
            // Every stored message may carry a TTL: one pass over the stream.
            let mut from = 0;
            while let Some(m) = self.store.load_next(">", from)? {
                if let Some(deadline) = ttl_deadline(&m.headers, m.ts_ns)
                    && !self.ttls.insert(deadline, m.seq)
                {
                    // Out of memory for deadlines: the rest live by the limits only.
                    break;
                }
                from = m.seq + 1;
            }
        }
        let window = self.cfg.duplicate_window;
        if window <= 0 || self.bugs.dedup_forgets {
            return Ok(());
        }
        let cutoff = now_ns.saturating_sub(window);
        let mut next = self.seq_from_time(cutoff.saturating_add(1))?;
        while let Some(seq) = next {
            let Some(m) = self.store.load_next(">", seq)? else { break };
            if let Some(id) = msg_id_of(&m.headers) {
                // At the account's limit the oldest ids make room (the first to expire);
                // each one dropped, or this one if nothing can be, leaves a hole.
                while !self.dedup.insert(&id, &m.subject, m.seq, m.ts_ns) {
                    let Some(ts) = self.dedup.pop_oldest_ts() else {
                        self.note_dedup_gap(m.ts_ns);
                        break;
                    };
                    self.note_dedup_gap(ts);
                }
            }
            next = Some(m.seq + 1);
        }
        Ok(())
    }

    /// Hand this stream's dedup window over (for [`Stream::adopt_dedup`] of the stream's
    /// next incarnation), with its [`Stream::dedup_gap_until_ns`]; this stream keeps an
    /// empty one. The ids stay charged to `stream.dedup` as they are: carried whole, a
    /// window needs no new charge that a full account (or an injected refusal) could
    /// refuse.
    pub fn take_dedup(&mut self) -> (Dedup, i64) {
        (self.dedup.take(), self.dedup_gap_until_ns)
    }

    /// Take over the dedup window `carried` of an earlier incarnation of this stream
    /// ([`Stream::take_dedup`]), which knows more than the rebuild from the stored
    /// messages: ids of messages removed since (acked on a workqueue or interest stream,
    /// evicted, deleted) still answer retries within the window. The engine uses it when
    /// it reopens a stream whose sync failed, which must not forget what clients were
    /// told; a restart rebuilds from the stored messages only, as nats-server does.
    ///
    /// The carried window replaces the rebuilt one, charges and all (so a hole the rebuild
    /// made, short of memory while both were charged, is no hole); ids only the rebuild
    /// found are added, and one the account refuses makes a hole. Ids of the `refused`
    /// sequences (publishes answered with an error, which the disk may have kept all the
    /// same) are dropped, whichever incarnation knew them, and so are ids outside the
    /// window at `now_ns`. `gap_until_ns` is the earlier incarnation's
    /// [`Stream::dedup_gap_until_ns`]: a hole its window had stays one. With
    /// `dedup-forgets` (or no window) the carried window is dropped.
    pub fn adopt_dedup(&mut self, carried: Dedup, gap_until_ns: i64, refused: &[u64], now_ns: i64) {
        let window = self.cfg.duplicate_window;
        if window <= 0 || self.bugs.dedup_forgets {
            self.dedup_gap_until_ns = self.dedup_gap_until_ns.max(gap_until_ns);
            self.dedup.forget_seqs(refused);
            self.check();
            return;
        }
        let cutoff = now_ns.saturating_sub(window);
        let mut rebuilt = std::mem::replace(&mut self.dedup, carried);
        self.dedup_gap_until_ns = gap_until_ns;
        self.dedup.forget_seqs(refused);
        self.dedup.expire(cutoff);
        let extra: Vec<(String, String, u64, i64)> = rebuilt
            .entries()
            .into_iter()
            .filter(|(id, _, seq, ts)| *ts > cutoff && !refused.contains(seq) && self.dedup.lookup(id).is_none())
            .collect();
        // Release the rebuilt window's charges before charging what it adds.
        rebuilt.clear();
        drop(rebuilt);
        for (id, subject, seq, ts) in extra {
            if !self.dedup.insert(&id, &subject, seq, ts) {
                // Refused by the account: this id is forgotten, so the window has a hole
                // until it would have expired (the others are still tried).
                self.note_dedup_gap(ts);
            }
        }
        self.check();
    }

    /// An id stored at `ts_ns` had to be forgotten inside the window: refuse unknown ids
    /// until it would have left the window (see `dedup_gap_until_ns`).
    fn note_dedup_gap(&mut self, ts_ns: i64) {
        let until = ts_ns.saturating_add(self.cfg.duplicate_window);
        self.dedup_gap_until_ns = self.dedup_gap_until_ns.max(until);
    }

    /// Until when (ns since the epoch) publishes with a `Nats-Msg-Id` the dedup index
    /// does not hold are refused because the window has a hole (0: none).
    pub fn dedup_gap_until_ns(&self) -> i64 {
        self.dedup_gap_until_ns
    }

    /// The first stored sequence whose time is at or after `ts_ns` (binary search over
    /// the store, whose times do not decrease with the sequence), `None` if none.
    fn seq_from_time(&mut self, ts_ns: i64) -> Result<Option<u64>, StoreError> {
        let st = self.store.state();
        let (mut lo, mut hi) = (st.first_seq, st.last_seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store.load_next(">", mid)? {
                Some(m) if m.seq < hi && m.ts_ns < ts_ns => lo = m.seq + 1,
                _ => hi = mid,
            }
        }
        Ok(self.store.load_next(">", lo)?.map(|m| m.seq))
    }

    /// The config in force.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The store (for the host's syncs, ticks and metrics).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (e.g. `FileStore::tick`); do not change messages through it.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Give the store back (e.g. to close it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// When the stream was created (ns).
    pub fn created_ns(&self) -> i64 {
        self.created_ns
    }

    /// Whether a message published on `subject` belongs to this stream (one of its
    /// subjects matches); the host routes with it.
    pub fn captures(&self, subject: &str) -> bool {
        self.cfg.subjects.iter().any(|p| crate::subject::matches(p, subject))
    }

    /// The store's summary (first/last sequence, messages, bytes, subjects).
    pub fn store_state(&self) -> crate::store::StoreState {
        self.store.state()
    }

    /// The message at `seq`, for delivery (`None` if it is gone). Store errors are 10077.
    pub fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>, ApiError> {
        self.store.load(seq).map_err(|e| self.store_err(e))
    }

    /// The first message at or after `from_seq` matching `filter`, for delivery.
    pub fn load_next(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>, ApiError> {
        self.store.load_next(filter, from_seq).map_err(|e| self.store_err(e))
    }

    /// The newest message matching `filter` (deliver policy `last`, `last_per_subject`).
    pub fn load_last(&mut self, filter: &str) -> Result<Option<StoredMsg>, ApiError> {
        self.store.load_last(filter).map_err(|e| self.store_err(e))
    }

    /// The first stored sequence at or after time `ts_ns` (deliver policy
    /// `by_start_time`), by binary search; `None` if every message is older.
    pub fn seq_at_time(&mut self, ts_ns: i64) -> Result<Option<u64>, ApiError> {
        self.seq_from_time(ts_ns).map_err(|e| self.store_err(e))
    }

    /// The dedup index (read-only).
    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }

    /// The last store failure (I/O error, corruption, full disk) reported by a call, if
    /// any; such calls also answer 10077 with the store's text. The host should log it
    /// and reopen the stream.
    pub fn store_failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn check(&self) {
        #[cfg(any(test, debug_assertions))]
        self.invariants();
    }

    fn store_err(&mut self, e: StoreError) -> ApiError {
        match e {
            StoreError::Full { limit: LimitKind::Msgs, .. } => {
                ApiError::stream_store_failed("maximum messages exceeded")
            }
            StoreError::Full { limit: LimitKind::Bytes, .. } => ApiError::stream_store_failed("maximum bytes exceeded"),
            StoreError::Full { limit: LimitKind::MsgsPerSubject, .. } => {
                ApiError::stream_store_failed("maximum messages per subject exceeded")
            }
            StoreError::MaxMsgSize { max, .. } if max == MAX_RECORD_LEN => {
                ApiError::stream_store_failed("message too large")
            }
            StoreError::MaxMsgSize { max, .. } if Some(max) == self.store.limits().max_bytes => {
                ApiError::stream_store_failed("maximum bytes exceeded")
            }
            StoreError::MaxMsgSize { .. } => ApiError::stream_message_exceeds_maximum(),
            StoreError::NoMemory { .. } => ApiError::insufficient_resources(),
            e @ (StoreError::InvalidSubject(_) | StoreError::InvalidRequest(_)) => ApiError::stream_store_failed(e),
            e => {
                self.failure = Some(e.to_string());
                ApiError::stream_store_failed(e)
            }
        }
    }

    /// Store a message published on `subject` at `now_ns` with the raw header block
    /// `headers` (may be empty) and `payload`; see the module docs for the checks and
    /// their errors. `Ok` carries the PubAck (also for a duplicate); `Err` the error to
    /// send with [`pub_ack_error_json`]. Expired dedup ids are dropped first.
    pub fn publish(&mut self, now_ns: i64, subject: &str, headers: &[u8], payload: &[u8]) -> Result<PubAck, ApiError> {
        let r = self.publish_inner(now_ns, subject, headers, payload);
        self.check();
        r
    }

    fn publish_inner(
        &mut self,
        now_ns: i64,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> Result<PubAck, ApiError> {
        self.expire_ids(now_ns);
        if self.cfg.sealed {
            return Err(ApiError::stream_sealed());
        }
        let hdr = if headers.is_empty() { Headers::new() } else { Headers::parse(headers).unwrap_or_default() };
        let last_seq = self.store.state().last_seq;
        if let Some(name) = hdr.get(EXPECTED_STREAM).filter(|v| !v.is_empty())
            && name != self.cfg.name
        {
            return Err(ApiError::stream_not_match());
        }
        let ttl = match hdr.get(MSG_TTL).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => parse_ttl(v),
        };
        if matches!(ttl, Ok(t) if t != 0) && !self.cfg.allow_msg_ttl {
            return Err(ApiError::message_ttl_disabled());
        }
        let subj_override = hdr.get(EXPECTED_LAST_SUBJ_SEQ_SUBJ).filter(|v| !v.is_empty());
        if let Some(v) = hdr.get(EXPECTED_LAST_SUBJ_SEQ).filter(|v| !v.is_empty()) {
            let want = parse_seq(v);
            let on = subj_override.unwrap_or(subject);
            let have = match self.store.load_last(on) {
                Ok(m) => m.map_or(0, |m| m.seq),
                Err(StoreError::InvalidSubject(_)) => 0,
                Err(e) => return Err(self.store_err(e)),
            };
            if have != want {
                return Err(ApiError::stream_wrong_last_sequence(have));
            }
        } else if subj_override.is_some() {
            return Err(ApiError::stream_expected_last_seq_per_subject_invalid());
        }
        if let Some(v) = hdr.get(EXPECTED_LAST_SEQ).filter(|v| !v.is_empty())
            && parse_seq(v) != last_seq
        {
            return Err(ApiError::stream_wrong_last_sequence(last_seq));
        }
        // No window (a mirror or a stream with sources that set none): no dedup, so no
        // ids kept that would never expire.
        let msg_id = hdr.get(MSG_ID).filter(|v| !v.is_empty() && self.cfg.duplicate_window > 0);
        if let Some(seq) = msg_id.and_then(|id| self.dedup.lookup(id)) {
            return Ok(PubAck { stream: self.cfg.name.clone(), seq, duplicate: true, stored: false });
        }
        if msg_id.is_some() && now_ns < self.dedup_gap_until_ns {
            // The id may be one the window lost: storing it could store it twice.
            return Err(ApiError::stream_too_many_requests());
        }
        if let Some(want) = hdr.get(EXPECTED_LAST_MSG_ID).filter(|v| !v.is_empty())
            && want != self.last_msg_id
        {
            return Err(ApiError::stream_wrong_last_msg_id(&self.last_msg_id));
        }
        let rollup = match hdr.get(ROLLUP).filter(|v| !v.is_empty()) {
            None => None,
            Some(_) if !self.cfg.allow_rollup_hdrs || self.cfg.deny_purge => {
                return Err(ApiError::stream_rollup_failed("rollup not permitted"));
            }
            Some("sub") => Some(Some(subject.to_string())),
            Some("all") => Some(None),
            Some(other) => return Err(ApiError::stream_rollup_failed(format!("rollup value invalid: {other:?}"))),
        };
        if self.cfg.max_msg_size >= 0 && headers.len() + payload.len() > self.cfg.max_msg_size as usize {
            return Err(ApiError::stream_message_exceeds_maximum());
        }
        if headers.len() > MAX_HEADER_LEN {
            return Err(ApiError::stream_header_exceeds_maximum());
        }
        let ttl_secs = *ttl.as_ref().unwrap_or(&0);
        // Pay for the dedup entry and the TTL deadline before storing anything, so that
        // a message is never stored without them (released if the append fails).
        let dedup_charge = match msg_id {
            Some(id) => Some(self.dedup.reserve(id, subject).ok_or_else(ApiError::stream_too_many_requests)?),
            None => None,
        };
        let ttl_charge = match ttl_secs > 0 {
            true => Some(self.ttls.reserve().ok_or_else(ApiError::stream_too_many_requests)?),
            false => None,
        };
        if self.cfg.retention == RetentionPolicy::Interest && !self.has_interest(subject) {
            let seq = self.skip_seq(subject, headers, payload, now_ns)?;
            if let (Some(id), Some(c)) = (msg_id, dedup_charge) {
                self.dedup.insert_charged(id, subject, seq, now_ns, c);
            }
            self.last_msg_id = msg_id.unwrap_or_default().to_string();
            if let Some(filter) = rollup {
                self.purge_inner(&PurgeRequest { filter, up_to_seq: None, keep: None }, Some(seq))?;
            }
            return Ok(PubAck { stream: self.cfg.name.clone(), seq, duplicate: false, stored: false });
        }
        ttl?;
        let seq = self.store.append(subject, headers, payload, now_ns).map_err(|e| self.store_err(e))?;
        self.last_ts = Some(now_ns);
        self.last_msg_id = msg_id.unwrap_or_default().to_string();
        if let (Some(id), Some(c)) = (msg_id, dedup_charge) {
            self.dedup.insert_charged(id, subject, seq, now_ns, c);
        }
        if let Some(c) = ttl_charge {
            self.ttls.insert_charged(now_ns.saturating_add(ttl_secs.saturating_mul(1_000_000_000)), seq, c);
        }
        if let Some(filter) = rollup {
            self.purge_inner(&PurgeRequest { filter, up_to_seq: None, keep: Some(1) }, Some(seq))?;
        }
        Ok(PubAck { stream: self.cfg.name.clone(), seq, duplicate: false, stored: true })
    }

    /// Spend a sequence without keeping a message (interest stream, no interest), as
    /// nats-server's `SkipMsgNoInterest`: on an empty store by moving `last_seq`; else by
    /// storing and deleting the message with the limits lifted, so that nothing is
    /// evicted or refused on its account.
    fn skip_seq(&mut self, subject: &str, headers: &[u8], payload: &[u8], now_ns: i64) -> Result<u64, ApiError> {
        let st = self.store.state();
        if st.msgs == 0 {
            self.store.compact(st.last_seq + 2).map_err(|e| self.store_err(e))?;
            return Ok(st.last_seq + 1);
        }
        let limits = self.store.limits().clone();
        self.store.set_limits(StoreLimits::default()).map_err(|e| self.store_err(e))?;
        let stored = self.store.append(subject, headers, payload, now_ns);
        let deleted = stored.as_ref().ok().map(|&seq| self.store.delete(seq));
        let restored = self.store.set_limits(limits);
        let seq = stored.map_err(|e| self.store_err(e))?;
        let deleted = deleted.expect("appended").map_err(|e| self.store_err(e))?;
        debug_assert!(deleted);
        let evicted = restored.map_err(|e| self.store_err(e))?;
        debug_assert_eq!(evicted, 0, "restoring the limits after a skip evicts nothing");
        Ok(seq)
    }

    fn expire_ids(&mut self, now_ns: i64) {
        if self.cfg.duplicate_window > 0 {
            self.dedup.expire(now_ns.saturating_sub(self.cfg.duplicate_window));
        }
    }

    /// Apply the passage of time: messages older than `max_age` or past their TTL, and
    /// dedup ids older than `duplicate_window`, go. Returns how many messages were removed.
    pub fn tick(&mut self, now_ns: i64) -> Result<u64, ApiError> {
        self.expire_ids(now_ns);
        let r = self.expire_msgs(now_ns);
        self.check();
        r
    }

    fn expire_msgs(&mut self, now_ns: i64) -> Result<u64, ApiError> {
        let mut n = 0;
        for seq in self.ttls.take_due(now_ns) {
            n += self.store.delete(seq).map_err(|e| self.store_err(e))? as u64;
        }
        if self.cfg.subject_delete_marker_ttl <= 0 || self.cfg.max_age <= 0 {
            return Ok(n + self.store.expire(now_ns).map_err(|e| self.store_err(e))?);
        }
        // With markers: expire in chunks of at most MARKER_CHUNK subjects, so that the
        // set of subjects to check is bounded however many messages age out at once.
        let cutoff = now_ns.saturating_sub(self.cfg.max_age);
        loop {
            let (subjects, upto, done) = self.aging_subjects(cutoff).map_err(|e| self.store_err(e))?;
            n += self.store.expire(upto.saturating_add(self.cfg.max_age)).map_err(|e| self.store_err(e))?;
            self.write_markers(now_ns, subjects)?;
            if done {
                return Ok(n);
            }
        }
    }

    /// The subjects of the oldest (non-marker) messages at or before `cutoff`, at most
    /// [`MARKER_CHUNK`] of them (never splitting one timestamp), the time up to which
    /// they go, and whether that is all of them.
    fn aging_subjects(&mut self, cutoff: i64) -> Result<(std::collections::BTreeSet<String>, i64, bool), StoreError> {
        let mut subjects = std::collections::BTreeSet::new();
        let mut from = 0;
        let mut upto = i64::MIN;
        while let Some(m) = self.store.load_next(">", from)? {
            if m.ts_ns > cutoff {
                break;
            }
            if subjects.len() >= MARKER_CHUNK && m.ts_ns > upto {
                return Ok((subjects, upto, false));
            }
            if !is_marker(&m.headers) {
                subjects.insert(m.subject);
            }
            upto = m.ts_ns;
            from = m.seq + 1;
        }
        Ok((subjects, cutoff, true))
    }

    /// Subject delete markers, as nats-server writes them when `max_age` removed the
    /// last message of a subject: an empty message on the subject with
    /// `Nats-Marker-Reason: MaxAge` and `Nats-TTL` = `subject_delete_marker_ttl`, which
    /// removes itself when that TTL passes. Markers are listed for the host
    /// ([`Stream::take_markers`]) so its consumers see them.
    fn write_markers(&mut self, now_ns: i64, subjects: std::collections::BTreeSet<String>) -> Result<(), ApiError> {
        let ttl_secs = (self.cfg.subject_delete_marker_ttl / 1_000_000_000).max(1);
        let hdr = format!("NATS/1.0\r\n{MARKER_REASON}: MaxAge\r\n{MSG_TTL}: {ttl_secs}s\r\n\r\n");
        for subject in subjects {
            if self.store.load_last(&subject).map_err(|e| self.store_err(e))?.is_some() {
                continue;
            }
            // Without room for its deadline a marker would never leave: skip it.
            let Some(charge) = self.ttls.reserve() else { break };
            let seq = self.store.append(&subject, hdr.as_bytes(), b"", now_ns).map_err(|e| self.store_err(e))?;
            self.last_ts = Some(now_ns);
            self.last_msg_id.clear();
            self.ttls.insert_charged(now_ns.saturating_add(ttl_secs.saturating_mul(1_000_000_000)), seq, charge);
            self.markers.push((seq, subject));
        }
        Ok(())
    }

    /// Markers written since the last call (`(seq, subject)`), for the host to show its
    /// consumers like new messages.
    pub fn take_markers(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.markers)
    }

    /// Make the next stored sequence at least `seq` (a mirror keeps its origin's
    /// sequences): on an empty store by moving its first sequence; otherwise each
    /// missing sequence is spent as nats-server's `SkipMsg` does, at most
    /// [`MAX_MIRROR_SKIP`] of them (past that the mirror's sequences drift). Returns
    /// the next sequence the store will assign.
    pub fn skip_to(&mut self, seq: u64, now_ns: i64) -> Result<u64, ApiError> {
        let st = self.store.state();
        if seq <= st.last_seq + 1 {
            return Ok(st.last_seq + 1);
        }
        if st.msgs == 0 {
            self.store.compact(seq).map_err(|e| self.store_err(e))?;
        } else {
            let gap = (seq - st.last_seq - 1).min(MAX_MIRROR_SKIP);
            for _ in 0..gap {
                self.skip_seq("_weir.skip", &[], &[], now_ns)?;
            }
        }
        self.check();
        Ok(self.store.state().last_seq + 1)
    }

    /// When [`Stream::tick`] next has work: the oldest dedup id leaves the window, a TTL
    /// runs out, or the oldest message reaches `max_age` (one store load). `None`: nothing will expire.
    pub fn next_deadline(&mut self) -> Option<i64> {
        let ids = self.dedup.oldest_ts().map(|t| t.saturating_add(self.cfg.duplicate_window));
        let msgs = if self.cfg.max_age > 0 {
            self.store.load_next(">", 0).ok().flatten().map(|m| m.ts_ns.saturating_add(self.cfg.max_age))
        } else {
            None
        };
        [ids, msgs, self.ttls.next()].into_iter().flatten().min()
    }

    /// Apply a config checked with [`StreamConfig::check_update`] against this stream's:
    /// new limits take effect at once (evicting what they no longer allow) and a shorter
    /// dedup window drops the ids outside it at `now_ns`.
    pub fn update(&mut self, cfg: StreamConfig, now_ns: i64) -> Result<(), ApiError> {
        assert_eq!(cfg.name, self.cfg.name, "update of stream {} with another stream's config", self.cfg.name);
        let r = self.store.set_limits(cfg.store_limits()).map_err(|e| self.store_err(e));
        if r.is_ok() {
            self.cfg = cfg;
            self.expire_ids(now_ns);
        }
        self.check();
        r.map(|_| ())
    }

    /// Purge as STREAM.PURGE does (`filter`, `seq` exclusive upper bound, `keep`):
    /// 10109 on a sealed stream, 10110 "stream purge not permitted" with `deny_purge`,
    /// 10003 when `seq` and `keep` are combined, 10051 for store errors. Returns how many
    /// messages went; the dedup ids of the purged messages go with them.
    pub fn purge(&mut self, req: &PurgeApiRequest) -> Result<u64, ApiError> {
        if self.cfg.sealed {
            return Err(ApiError::stream_sealed());
        }
        if self.cfg.deny_purge {
            return Err(ApiError::stream_purge_failed("stream purge not permitted"));
        }
        if req.seq > 0 && req.keep > 0 {
            return Err(ApiError::bad_request());
        }
        let preq = PurgeRequest {
            filter: (!req.filter.is_empty()).then(|| req.filter.clone()),
            up_to_seq: (req.seq > 0).then_some(req.seq),
            keep: (req.keep > 0).then_some(req.keep),
        };
        let r = self.purge_inner(&preq, None).map_err(|e| ApiError::stream_general_error(e.description));
        self.check();
        r
    }

    /// Purge as `req` says; `cause` is the sequence of the roll-up message that asks for
    /// it (its removals wait for that message to be durable in a store that holds them:
    /// [`MsgStore::purge_caused_by`]).
    fn purge_inner(&mut self, req: &PurgeRequest, cause: Option<u64>) -> Result<u64, ApiError> {
        let n = match cause {
            Some(seq) => self.store.purge_caused_by(req, seq),
            None => self.store.purge(req),
        }
        .map_err(|e| self.store_err(e))?;
        // Purges remove a prefix (in sequence order) of the matching messages: without
        // `keep`, everything matching below `up_to_seq`; with it, everything matching
        // below the first survivor (one indexed lookup for a literal subject).
        let filter = req.filter.as_deref();
        let mut below = req.up_to_seq.unwrap_or(u64::MAX);
        if req.keep.is_some() {
            let survivor = self.store.load_next(filter.unwrap_or(">"), 0).map_err(|e| self.store_err(e))?;
            below = below.min(survivor.map_or(u64::MAX, |m| m.seq));
        }
        self.dedup.purge(filter, below);
        Ok(n)
    }

    /// Delete one message as STREAM.MSG.DELETE does: 10109 on a sealed stream, 10057
    /// "message delete not permitted" with `deny_delete`, 10043 "sequence N not found".
    /// Nothing is erased in place (see the module docs), so `no_erase` changes nothing.
    pub fn delete_msg(&mut self, req: &MsgDeleteRequest) -> Result<(), ApiError> {
        if self.cfg.sealed {
            return Err(ApiError::stream_sealed());
        }
        if self.cfg.deny_delete {
            return Err(ApiError::stream_msg_delete_failed("message delete not permitted"));
        }
        let r = match self.store.delete(req.seq) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::sequence_not_found(req.seq)),
            Err(e) => Err(ApiError::stream_msg_delete_failed(self.store_err(e).description)),
        };
        self.check();
        r
    }

    /// Remove a message because retention says so (interest: every interested consumer
    /// acked it; workqueue: it was acked). Not subject to `deny_delete`. `Ok(false)` if
    /// it was already gone.
    pub fn remove_msg(&mut self, seq: u64) -> Result<bool, ApiError> {
        let r = self.store.delete(seq).map_err(|e| self.store_err(e));
        self.check();
        r
    }

    /// Find a message as STREAM.MSG.GET does: by `seq`, `last_by_subj`, `next_by_subj`
    /// (from `seq`) or `start_time`. Conflicting or empty requests are 10003; a miss
    /// (or a store error) is 10037 "no message found", as nats-server answers.
    pub fn get_msg(&mut self, req: &MsgGetRequest) -> Result<StoredMsg, ApiError> {
        let last = !req.last_by_subj.is_empty();
        let next = !req.next_by_subj.is_empty();
        let time = req.start_time.is_some();
        if (req.seq > 0 && last)
            || (req.seq == 0 && !last && !next && !time)
            || (req.seq > 0 && time)
            || (time && last)
            || (last && next)
            || req.batch > 1
            || !req.multi_last.is_empty()
        {
            return Err(ApiError::bad_request());
        }
        let found = (|| -> Result<Option<StoredMsg>, StoreError> {
            let mut seq = req.seq;
            if let Some(t) = req.start_time {
                match self.seq_from_time(t)? {
                    Some(s) => seq = s,
                    None => return Ok(None),
                }
            }
            if next {
                self.store.load_next(&req.next_by_subj, seq)
            } else if last {
                self.store.load_last(&req.last_by_subj)
            } else {
                self.store.load(seq)
            }
        })();
        found.ok().flatten().ok_or_else(ApiError::no_message_found)
    }

    /// Answer a direct get (`$JS.API.DIRECT.GET.<stream>` with a [`MsgGetRequest`], or
    /// the subject form as `last_by_subj`): the message with nats-server's headers, or
    /// `408 Bad Request` / `404 Message Not Found` status replies.
    pub fn direct_get(&mut self, req: &MsgGetRequest) -> DirectGetReply {
        match self.get_msg(req) {
            Ok(m) => DirectGetReply::found(&self.cfg.name, &m, req.no_hdr),
            Err(e) if e.err_code == ApiError::bad_request().err_code => DirectGetReply::status(408, "Bad Request"),
            Err(_) => DirectGetReply::status(404, "Message Not Found"),
        }
    }

    /// Register (or re-register) consumer `name` with its filters (empty: the whole
    /// stream), as nats-server's `addConsumer` checks it against the stream: 10026 when
    /// `max_consumers` is reached; on a workqueue stream 10099 "multiple non-filtered
    /// consumers not allowed" and 10100 "filtered consumer not unique" when filters overlap.
    pub fn add_consumer(&mut self, name: &str, filters: &[String]) -> Result<(), ApiError> {
        let exists = self.consumers.contains_key(name);
        if !exists && self.cfg.max_consumers > 0 && self.consumers.len() as i64 >= self.cfg.max_consumers {
            return Err(ApiError::maximum_consumers_limit());
        }
        if self.cfg.retention == RetentionPolicy::WorkQueue {
            let others: Vec<&Vec<String>> = self.consumers.iter().filter(|(n, _)| *n != name).map(|(_, f)| f).collect();
            if !others.is_empty() {
                if filters.is_empty() {
                    return Err(ApiError::consumer_wq_multiple_unfiltered());
                }
                let clash = others
                    .iter()
                    .any(|f| f.is_empty() || f.iter().any(|a| filters.iter().any(|b| patterns_collide(a, b))));
                if clash {
                    return Err(ApiError::consumer_wq_consumer_not_unique());
                }
            }
        }
        self.consumers.insert(name.to_string(), filters.to_vec());
        self.check();
        Ok(())
    }

    /// Forget consumer `name`; `false` if unknown. On an interest stream the host then
    /// removes the messages no remaining consumer needs (it knows the ack states).
    pub fn remove_consumer(&mut self, name: &str) -> bool {
        let r = self.consumers.remove(name).is_some();
        self.check();
        r
    }

    /// Number of registered consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Whether some registered consumer's filters match `subject`.
    pub fn has_interest(&self, subject: &str) -> bool {
        self.consumers.values().any(|f| f.is_empty() || f.iter().any(|p| crate::subject::matches(p, subject)))
    }

    /// The state as `StreamState` JSON: with `deleted_details` the deleted sequences (at
    /// most [`MAX_DELETED_DETAILS`]), with `subjects_filter` the per-subject counts.
    /// An invalid filter is 10003.
    pub fn state(&mut self, deleted_details: bool, subjects_filter: Option<&str>) -> Result<StreamStateJson, ApiError> {
        let req = StateRequest { deleted: deleted_details, subjects: subjects_filter.map(str::to_owned) };
        let st = self.store.state_with(&req).map_err(|_| ApiError::bad_request())?;
        let first_ts = if st.msgs > 0 { self.store.load_next(">", 0).ok().flatten().map(|m| m.ts_ns) } else { None };
        Ok(StreamStateJson {
            messages: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            first_ts,
            last_seq: st.last_seq,
            last_ts: self.last_ts,
            num_subjects: st.num_subjects,
            subjects: st.subjects,
            num_deleted: st.num_deleted,
            deleted: st.deleted.into_iter().flatten().take(MAX_DELETED_DETAILS).collect(),
            consumer_count: self.consumers.len() as u64,
        })
    }

    /// `StreamInfo` at `now_ns` (the API layer adds `cluster` and the paging fields).
    pub fn info(
        &mut self,
        now_ns: i64,
        deleted_details: bool,
        subjects_filter: Option<&str>,
    ) -> Result<StreamInfo, ApiError> {
        Ok(StreamInfo {
            config: self.cfg.clone(),
            created: self.created_ns,
            state: self.state(deleted_details, subjects_filter)?,
            cluster: None,
            mirror: None,
            sources: None,
            ts: now_ns,
        })
    }

    /// Check the stream's internal consistency (panics on a violation): the dedup
    /// index agrees with itself and its charge, refers only to assigned sequences, the
    /// store runs the config's limits, and the consumer count respects `max_consumers`.
    pub fn invariants(&self) {
        self.dedup.invariants();
        self.ttls.invariants();
        let st = self.store.state();
        assert!(st.first_seq <= st.last_seq + 1, "first_seq {} past last_seq {} + 1", st.first_seq, st.last_seq);
        assert!(st.msgs <= st.last_seq + 1 - st.first_seq, "more messages than sequences");
        assert!(self.dedup.lookup_max_seq() <= st.last_seq, "dedup refers to an unassigned sequence");
        assert_eq!(self.store.limits(), &self.cfg.store_limits(), "store limits differ from the config");
        if self.cfg.max_consumers > 0 {
            assert!(self.consumers.len() as i64 <= self.cfg.max_consumers, "more consumers than max_consumers");
        }
    }
}

#[cfg(test)]
mod tests;
