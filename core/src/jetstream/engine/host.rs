//! [`StreamHost`]: one stream with its consumers, the PubAcks waiting for the group
//! commit, and the glue between them: publishing, turning consumer [`Effect`]s into
//! messages, interest/workqueue retention, consumer persistence.

use super::anystore::AnyStore;
use super::layout;
use super::reader::View;
use super::republish::Features;
use super::{JsOut, RecoveryNote};
use crate::consumer::{
    Advisory, Consumer, ConsumerConfig, ConsumerState, DoneReason, Effect, Retention, StreamSummary,
};
use crate::disk::Disk;
use crate::jetstream::ApiError;
use crate::mem::{Account, Charge};
use crate::proto::ByteStr;
use crate::server::nats::broker::Message;
use crate::store::{FlushPlan, MsgStore, StoreError};
use crate::stream::{RetentionPolicy, Stream, StreamConfig, pub_ack_error_json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a stream's `.meta` file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StreamMeta {
    pub config: StreamConfig,
    pub created_ns: i64,
}

/// What a consumer's `.meta` file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ConsumerMeta {
    pub config: ConsumerConfig,
    pub created_ns: i64,
}

/// A consumer inside the engine.
#[derive(Debug)]
pub(super) struct ConsumerHost {
    pub c: Consumer,
    /// The `state_version` last written to disk.
    pub saved_version: u64,
}

/// A stream inside the engine.
#[derive(Debug)]
pub(super) struct StreamHost {
    pub stream: Stream<AnyStore>,
    pub consumers: BTreeMap<String, ConsumerHost>,
    /// Highest sequence consumers may see (the durable prefix; see [`View`]).
    pub visible: u64,
    /// Stored but not yet durable: `(seq, subject)`, for the consumers at the next sync.
    pub unsynced: Vec<(u64, String)>,
    /// Messages removed since the last sync while some were unsynced: resync consumer counts.
    pub resync: bool,
    /// PubAck replies waiting for the group commit.
    pub acks: Vec<Message>,
    /// The store has writes not yet synced.
    pub dirty: bool,
    /// Consumers removed (inactivity, delete) whose files the engine must remove.
    pub gone: Vec<String>,
    /// `stream.pending` charges of the publishes waiting for the sync.
    pub charges: Vec<Charge>,
    /// Subject transform and republish, parsed from the config.
    pub features: Features,
    /// AckSync replies held until the acks they confirm are durable (file streams).
    pub held_replies: Vec<HeldReply>,
    /// Sequences removed (retention, deletes) since the last sync of a file stream, for
    /// a reopen to remove again (their delete records may not have reached the disk).
    /// As many as one group-commit interval removes; the store buffers their delete
    /// records (charged to `store.buffers`) for as long.
    pub removed: Vec<u64>,
    /// The account charged for held replies (`stream.pending`).
    pub pending: Option<Arc<Account>>,
    /// The group commit in flight for this stream, if any (its fsyncs run without the
    /// engine's lock).
    pub commit: Option<Commit>,
}

/// An AckSync reply (the empty message a double-ack waits for) held back until the
/// consumer state it confirms is on disk: sending it earlier would confirm an ack that
/// a failed sync (the store is then reopened from disk) or a power cut could undo.
#[derive(Debug)]
pub(super) struct HeldReply {
    /// The consumer whose ack it confirms.
    consumer: String,
    /// The consumer's `state_version` once the ack was applied: the reply goes out when
    /// the saved version reaches it.
    version: u64,
    /// The reply subject.
    to: String,
    /// Its `stream.pending` charge.
    _charge: Charge,
}

/// What one stream's part of a group commit covers while its fsyncs run: taken from
/// the [`StreamHost`] by [`StreamHost::begin_sync`], released by [`StreamHost::end_sync`].
#[derive(Debug, Default)]
pub(super) struct Commit {
    /// The engine's job this belongs to.
    pub job: u64,
    /// Whether the store's writes are part of it (else only consumer states are).
    pub store: bool,
    /// PubAcks released once durable.
    pub acks: Vec<Message>,
    /// Messages shown to the consumers once durable.
    pub unsynced: Vec<(u64, String)>,
    /// Their `stream.pending` charges.
    pub charges: Vec<Charge>,
    /// Whether consumers must recount when it ends.
    pub resync: bool,
    /// The store's last sequence when it began: the new durable prefix.
    pub last_seq: u64,
    /// How many of [`StreamHost::removed`] (the oldest) its writes cover: dropped from
    /// there once it succeeds, kept for a reopen when it fails.
    pub removed: usize,
}

/// A consumer state written to its temp file, waiting for the fsync and the rename.
#[derive(Clone, Debug)]
pub(super) struct StagedState {
    pub consumer: String,
    pub version: u64,
    pub tmp: String,
    pub path: String,
}

/// A server-originated message with no headers.
pub(super) fn plain(subject: &str, payload: Vec<u8>) -> Message {
    Message { subject: ByteStr::from(subject), reply: None, headers: None, payload: Bytes::from(payload) }
}

/// A status-only message (`NATS/1.0 <code> ...` header block, empty payload).
pub(super) fn status_msg(subject: &str, reply: Option<String>, headers: Vec<u8>) -> Message {
    Message {
        subject: ByteStr::from(subject),
        reply: reply.map(ByteStr::from),
        headers: Some(Bytes::from(headers)),
        payload: Bytes::new(),
    }
}

/// The consumer-side view of a stream config.
pub(super) fn summary(cfg: &StreamConfig, consumers: &BTreeMap<String, ConsumerHost>) -> StreamSummary {
    StreamSummary {
        name: cfg.name.clone(),
        subjects: cfg.subjects.clone(),
        retention: match cfg.retention {
            RetentionPolicy::Limits => Retention::Limits,
            RetentionPolicy::Interest => Retention::Interest,
            RetentionPolicy::WorkQueue => Retention::Workqueue,
        },
        replicas: cfg.num_replicas,
        consumer_limits: crate::consumer::ConsumerLimits {
            inactive_threshold: cfg.consumer_limits.inactive_threshold,
            max_ack_pending: cfg.consumer_limits.max_ack_pending,
        },
        other_consumers: consumers.iter().map(|(n, h)| (n.clone(), h.c.filters().to_vec())).collect(),
        // Set by the engine where it creates consumers (its config holds the limits).
        server_limits: Default::default(),
    }
}

impl StreamHost {
    /// A host for an opened stream (nothing unsynced).
    pub fn new(stream: Stream<AnyStore>) -> Self {
        let visible = stream.store_state().last_seq;
        let features = Features::of(stream.config());
        StreamHost {
            features,
            stream,
            consumers: BTreeMap::new(),
            visible,
            unsynced: Vec::new(),
            resync: false,
            acks: Vec::new(),
            dirty: false,
            gone: Vec::new(),
            charges: Vec::new(),
            held_replies: Vec::new(),
            removed: Vec::new(),
            pending: None,
            commit: None,
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.stream.name()
    }

    /// Whether this is a file stream.
    pub fn is_file(&self) -> bool {
        self.stream.store().is_file()
    }

    /// Whether [`StreamHost::sync`] has something to do.
    pub fn needs_sync(&self) -> bool {
        self.dirty || !self.acks.is_empty() || !self.unsynced.is_empty() || !self.held_replies.is_empty()
    }

    /// Store a message published on `subject`; the PubAck goes to `reply` (if any), now
    /// for memory streams (and with `ack_before_store`), after the sync for file streams.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        now_ns: i64,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
        ack_before_store: bool,
        charge: Option<Charge>,
        out: &mut Vec<JsOut>,
    ) {
        let before = self.stream.store_state();
        let stored_subject = self.features.stored_subject(subject);
        let subject = stored_subject.as_str();
        // Republish reports the subject's previous sequence (`Nats-Last-Sequence`).
        let subject_last = match self.features.republish {
            Some(_) => self.stream.load_last(subject).ok().flatten().map_or(0, |m| m.seq),
            None => 0,
        };
        let r = self.stream.publish(now_ns, subject, headers, payload);
        let after = self.stream.store_state();
        let ack = match r {
            Ok(ack) => ack,
            Err(e) => {
                if self.stream.store_failure().is_some() {
                    self.dirty = true;
                }
                if let Some(to) = reply.filter(|r| !r.is_empty()) {
                    out.push(JsOut::Publish(plain(to, pub_ack_error_json(self.name(), &e))));
                }
                return;
            }
        };
        if ack.stored
            && let Some(m) =
                self.features.republished(self.name(), ack.seq, subject_last, now_ns, subject, headers, payload)
        {
            out.push(JsOut::Publish(m));
        }
        let file = self.is_file();
        let removed = before.msgs + ack.stored as u64 > after.msgs;
        if file {
            self.charges.extend(charge);
            self.dirty |= after.last_seq != before.last_seq || removed;
            if ack.stored {
                self.unsynced.push((ack.seq, subject.to_string()));
            }
            if removed {
                self.resync = true;
            }
        } else {
            self.visible = after.last_seq;
            if removed {
                self.resync_consumers(now_ns, out);
            } else if ack.stored {
                self.appended(now_ns, ack.seq, subject, out);
            }
        }
        let Some(to) = reply.filter(|r| !r.is_empty() && !self.stream.config().no_ack) else { return };
        let msg = plain(to, ack.to_json(None));
        if file && !ack_before_store {
            self.acks.push(msg);
        } else {
            out.push(JsOut::Publish(msg));
        }
    }

    /// Messages the stream wrote by itself (subject delete markers): shown to the
    /// consumers like publishes, after the sync for file streams.
    pub fn self_appended(&mut self, now_ns: i64, msgs: Vec<(u64, String)>, out: &mut Vec<JsOut>) {
        if msgs.is_empty() {
            return;
        }
        if self.is_file() {
            self.dirty = true;
            self.unsynced.extend(msgs);
        } else {
            self.visible = self.stream.store_state().last_seq;
            for (seq, subject) in msgs {
                for h in self.consumers.values_mut() {
                    h.c.on_stream_append(seq, &subject);
                }
            }
            self.poll_all(now_ns, out);
        }
    }

    /// Tell every consumer about a new visible message and let them deliver.
    fn appended(&mut self, now_ns: i64, seq: u64, subject: &str, out: &mut Vec<JsOut>) {
        for h in self.consumers.values_mut() {
            h.c.on_stream_append(seq, subject);
        }
        self.poll_all(now_ns, out);
    }

    /// Recount every consumer's pending messages after removals the engine could not
    /// attribute to sequences (limit evictions, roll-ups, purges).
    pub fn resync_consumers(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        let names: Vec<String> = self.consumers.keys().cloned().collect();
        for name in names {
            let Some(h) = self.consumers.get_mut(&name) else { continue };
            // Pending messages the removal took (a filtered purge, a per-subject
            // eviction) stop waiting for acks now, not at their next redelivery, so that
            // num_ack_pending returns to 0 (nats-server #6093).
            let pending: Vec<u64> = h.c.pending().map(|(s, _)| s).collect();
            for seq in pending {
                // A held eviction (its cause not durable yet) is no removal.
                if matches!(load_any(&mut self.stream, seq), Ok(None)) {
                    h.c.on_stream_remove(seq, "");
                }
            }
            let mut view = View { stream: &mut self.stream, visible: self.visible };
            h.c.on_stream_purge(now_ns, &mut view);
            self.drain(now_ns, &name, out);
        }
    }

    /// Let every consumer deliver what it can.
    pub fn poll_all(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        let names: Vec<String> = self.consumers.keys().cloned().collect();
        for name in names {
            self.with_consumer(now_ns, &name, out, |c, v, now| c.poll(now, v));
        }
    }

    /// Run `f` on consumer `name` with a view of the stream, then apply its effects.
    pub fn with_consumer(
        &mut self,
        now_ns: i64,
        name: &str,
        out: &mut Vec<JsOut>,
        f: impl FnOnce(&mut Consumer, &mut View<'_>, i64),
    ) -> bool {
        let Some(h) = self.consumers.get_mut(name) else { return false };
        let mut view = View { stream: &mut self.stream, visible: self.visible };
        f(&mut h.c, &mut view, now_ns);
        self.drain(now_ns, name, out);
        true
    }

    /// Apply consumer `name`'s effects: deliveries and statuses become messages, `Done`
    /// drives retention, `Inactive` deletes the consumer.
    pub fn drain(&mut self, now_ns: i64, name: &str, out: &mut Vec<JsOut>) {
        let mut inactive = false;
        let mut done = Vec::new();
        let file = self.is_file();
        {
            let Some(h) = self.consumers.get_mut(name) else { return };
            for e in h.c.drain_effects() {
                match e {
                    Effect::Deliver(d) => {
                        let headers = (!d.headers.is_empty()).then(|| Bytes::from(d.headers));
                        let msg = Message {
                            subject: ByteStr::from(d.subject),
                            reply: Some(ByteStr::from(d.reply)),
                            headers,
                            payload: Bytes::from(d.payload),
                        };
                        out.push(JsOut::Deliver { to: d.to, msg, charge: d.charge });
                    }
                    Effect::Status { to, reply, headers } => {
                        out.push(JsOut::Publish(status_msg(&to, reply, headers)));
                    }
                    Effect::AckReply { to } if file => {
                        // Confirmed only once durable (see `HeldReply`). With no room
                        // on `stream.pending` the reply is dropped: the client's AckSync
                        // times out and it acks again (acks are idempotent).
                        let cost = (super::PENDING_ENTRY_COST + to.len()) as u64;
                        if let Some(charge) = self.pending.as_ref().and_then(|a| Charge::try_new(a, cost)) {
                            let version = h.c.state_version();
                            self.held_replies.push(HeldReply {
                                consumer: name.to_string(),
                                version,
                                to,
                                _charge: charge,
                            });
                        }
                    }
                    Effect::AckReply { to } => out.push(JsOut::Publish(plain(&to, Vec::new()))),
                    Effect::Done { seq, reason } => done.push((seq, reason)),
                    Effect::Advisory(a) => out.push(JsOut::Publish(advisory(self.stream.name(), name, now_ns, &a))),
                    Effect::Inactive => inactive = true,
                }
            }
        }
        for (seq, reason) in done {
            self.retire(now_ns, name, seq, reason, out);
        }
        if inactive {
            self.remove_consumer(now_ns, name, out);
        }
    }

    /// Consumer `by` no longer needs `seq`: remove it if the retention policy says so.
    fn retire(&mut self, now_ns: i64, by: &str, seq: u64, reason: DoneReason, out: &mut Vec<JsOut>) {
        let policy = self.stream.config().retention;
        if policy == RetentionPolicy::Limits || reason == DoneReason::MaxDeliveries {
            return;
        }
        // A message a pending append evicted (held) is still there, and removing it for
        // good keeps it from coming back if that append fails.
        let Ok(Some(m)) = load_any(&mut self.stream, seq) else { return };
        if policy == RetentionPolicy::Interest
            && self.consumers.iter().any(|(n, h)| n != by && h.c.needs_ack(seq, &m.subject))
        {
            return;
        }
        self.remove_seq(now_ns, seq, &m.subject, out);
    }

    /// Remove `seq` (on `subject`) from the stream and tell the consumers.
    pub fn remove_seq(&mut self, now_ns: i64, seq: u64, subject: &str, out: &mut Vec<JsOut>) {
        match self.stream.remove_msg(seq) {
            Ok(true) => {
                if self.is_file() {
                    self.dirty = true;
                    self.removed.push(seq);
                }
                for h in self.consumers.values_mut() {
                    h.c.on_stream_remove(seq, subject);
                }
                let _ = (now_ns, out);
            }
            Ok(false) => {}
            Err(_) => self.dirty = true,
        }
    }

    /// After a reopen from disk (file streams): give the reopened store the extent the
    /// failed running store had (see `super::Shown`). Messages below `first_seq` or
    /// inside `gaps` that the disk brought back (removals whose delete records never
    /// reached it: evictions by durable publishes, expiry, purges) are removed again, and when the disk
    /// fell short of `last_seq` (the refused publishes' sequences) the store skips to it
    /// ([`crate::store::FileStore::skip_to`], durable at once), so that no sequence is
    /// handed out twice and neither end of the stream moves back. The removals are made
    /// durable by the next group commit. An error means the extent could not be kept
    /// (the caller retries the reopen later rather than serve a stream that moved back).
    pub fn keep_extent(
        &mut self,
        now_ns: i64,
        first_seq: u64,
        last_seq: u64,
        gaps: &[std::ops::RangeInclusive<u64>],
        out: &mut Vec<JsOut>,
    ) -> Result<(), StoreError> {
        if !self.is_file() {
            return Ok(());
        }
        let st = self.stream.store_state();
        let mut purged = false;
        if st.first_seq < first_seq && st.msgs > 0 {
            // One compaction for the front (a large undurable eviction or purge is one
            // delete record); the consumers recount below.
            purged = self.stream.store_mut().compact(first_seq.min(st.last_seq + 1))? > 0;
        }
        for r in gaps {
            let mut from = *r.start();
            loop {
                let next = self.stream.store_mut().file_mut().and_then(|fs| fs.next_live(from));
                let Some(seq) = next.filter(|s| s <= r.end()) else { break };
                let subject = self.stream.store_mut().load(seq)?.map(|m| m.subject).unwrap_or_default();
                if !self.stream.store_mut().delete(seq)? {
                    break;
                }
                self.removed.push(seq);
                for h in self.consumers.values_mut() {
                    h.c.on_stream_remove(seq, &subject);
                }
                from = seq + 1;
            }
        }
        if let Some(fs) = self.stream.store_mut().file_mut() {
            fs.skip_to(last_seq + 1)?;
        }
        if self.stream.store_state() != st {
            self.dirty = true;
        }
        if purged {
            self.resync_consumers(now_ns, out);
        }
        Ok(())
    }

    /// Delete consumer `name` (409 to its waiting requests); on an interest stream the
    /// messages only it held go (nats-server #7754 is the bug this avoids).
    pub fn remove_consumer(&mut self, now_ns: i64, name: &str, out: &mut Vec<JsOut>) -> Option<ConsumerHost> {
        let mut h = self.consumers.remove(name)?;
        h.c.delete();
        for e in h.c.drain_effects() {
            if let Effect::Status { to, reply, headers } = e {
                out.push(JsOut::Publish(status_msg(&to, reply, headers)));
            }
        }
        self.stream.remove_consumer(name);
        self.gone.push(name.to_string());
        let push = h.c.config().deliver_subject.clone();
        if !push.is_empty() {
            out.push(JsOut::Watch { subject: push, watch: false });
        }
        if self.stream.config().retention == RetentionPolicy::Interest {
            self.release_unneeded(now_ns, out);
        }
        Some(h)
    }

    /// Interest retention: remove every visible message no remaining consumer needs.
    pub fn release_unneeded(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        let mut from = 0;
        let mut gone = Vec::new();
        loop {
            let m = match self.stream.store_mut().load_next(">", from) {
                Ok(Some(m)) if m.seq <= self.visible => m,
                _ => break,
            };
            from = m.seq + 1;
            if !self.consumers.values().any(|h| h.c.needs_ack(m.seq, &m.subject)) {
                gone.push((m.seq, m.subject));
            }
        }
        for (seq, subject) in gone {
            self.remove_seq(now_ns, seq, &subject, out);
        }
    }

    /// Whether appended messages wait for a sync (here or in the commit in flight).
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty() || self.commit.as_ref().is_some_and(|c| !c.unsynced.is_empty())
    }

    /// Group commit, first half (under the engine's lock): hand the store's buffered
    /// writes to the disk and take what waits for them (PubAcks, new messages, charges)
    /// into a [`Commit`] of `job`; returns the fsyncs that make them durable (`None` for
    /// a memory stream or when only consumer states are part of the job). On a failed
    /// write the waiting publishes are answered with errors and their sequences returned.
    pub fn begin_sync(&mut self, job: u64, out: &mut Vec<JsOut>) -> Result<Option<FlushPlan>, (StoreError, Vec<u64>)> {
        debug_assert!(self.commit.is_none(), "one group commit at a time");
        if !self.needs_sync() {
            self.commit = Some(Commit { job, ..Commit::default() });
            return Ok(None);
        }
        let plan = match self.stream.store_mut().file_mut().map(|fs| fs.begin_flush()) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                let refused = self.refuse(&e, out);
                return Err((e, refused));
            }
            None => None,
        };
        self.dirty = false;
        self.commit = Some(Commit {
            job,
            store: true,
            acks: std::mem::take(&mut self.acks),
            unsynced: std::mem::take(&mut self.unsynced),
            charges: std::mem::take(&mut self.charges),
            resync: std::mem::take(&mut self.resync),
            last_seq: self.stream.store_state().last_seq,
            removed: self.removed.len(),
        });
        Ok(plan)
    }

    /// Group commit, second half (under the lock again), with the fsyncs' `result`: on
    /// success show the committed messages to the consumers and release their PubAcks;
    /// on failure answer every waiting publish (committed or newer) with an error (never
    /// a false ack) and return the error with the refused sequences, for the caller to
    /// reopen the stream and remove them should the disk have kept them after all.
    pub fn end_sync(
        &mut self,
        now_ns: i64,
        result: Result<(), StoreError>,
        out: &mut Vec<JsOut>,
    ) -> Result<(), (StoreError, Vec<u64>)> {
        let Some(c) = self.commit.take_if(|c| c.store) else {
            self.commit = None;
            return Ok(());
        };
        if let Err(e) = result {
            self.commit = Some(c);
            let refused = self.refuse(&e, out);
            return Err((e, refused));
        }
        drop(c.charges);
        self.removed.drain(..c.removed.min(self.removed.len()));
        self.visible = self.visible.max(c.last_seq);
        // The committed appends are durable: the removals they caused (limit evictions,
        // roll-ups) take effect now (`store::held`), their delete records written for
        // the next commit. Were the write refused (a full disk), they stay held and go
        // with a later commit; until then consumers still see those messages.
        let released = match self.stream.store_mut().file_mut().map(|fs| fs.release_held(c.last_seq)) {
            Some(Ok(n)) => n,
            _ => 0,
        };
        self.dirty |= released > 0;
        if c.resync || self.resync || released > 0 {
            self.resync_consumers(now_ns, out);
            self.resync &= !self.unsynced.is_empty();
        } else {
            for (seq, subject) in &c.unsynced {
                for h in self.consumers.values_mut() {
                    h.c.on_stream_append(*seq, subject);
                }
            }
            if !c.unsynced.is_empty() {
                self.poll_all(now_ns, out);
            }
        }
        out.extend(c.acks.into_iter().map(JsOut::Publish));
        Ok(())
    }

    /// A write or fsync failed: answer every publish waiting for durability (in the
    /// commit in flight and after it) with 10077 and return their sequences.
    fn refuse(&mut self, e: &StoreError, out: &mut Vec<JsOut>) -> Vec<u64> {
        let err = ApiError::stream_store_failed(e);
        let c = self.commit.take().unwrap_or_default();
        for m in c.acks.into_iter().chain(std::mem::take(&mut self.acks)) {
            out.push(JsOut::Publish(plain(&m.subject, pub_ack_error_json(self.stream.name(), &err))));
        }
        self.charges.clear();
        c.unsynced.into_iter().chain(std::mem::take(&mut self.unsynced)).map(|(s, _)| s).collect()
    }

    /// Write the state of every consumer whose state moved (file streams only) to its
    /// temp file, for the group commit to sync and rename ([`StagedState`]).
    pub fn stage_consumers(&mut self, disk: &dyn Disk, store_dir: &str) -> (Vec<StagedState>, Vec<RecoveryNote>) {
        let mut staged = Vec::new();
        let mut notes = Vec::new();
        if !self.is_file() {
            return (staged, notes);
        }
        let stream = self.stream.name().to_string();
        for (name, h) in self.consumers.iter_mut() {
            let version = h.c.state_version();
            if version == h.saved_version {
                continue;
            }
            let path = layout::consumer_state(store_dir, &stream, name);
            match layout::stage(disk, &path, &h.c.state().encode()) {
                Ok(tmp) => staged.push(StagedState { consumer: name.clone(), version, tmp, path }),
                Err(e) => notes.push(RecoveryNote {
                    stream: stream.clone(),
                    consumer: Some(name.clone()),
                    text: format!("cannot persist consumer state to {path}: {e}"),
                }),
            }
        }
        (staged, notes)
    }

    /// A staged state's fsync ended with `synced`: rename it over the state file unless
    /// the consumer went, in which case the temp file goes. (Nothing else writes a state
    /// while a commit is in flight: [`super::JetStream::sync`] ends that commit first.)
    /// Returns whether the directory needs a sync, and a note on failure.
    pub fn commit_state(
        &mut self,
        disk: &dyn Disk,
        s: &StagedState,
        synced: Result<(), String>,
    ) -> (bool, Option<RecoveryNote>) {
        let note = |text: String| RecoveryNote {
            stream: self.stream.name().to_string(),
            consumer: Some(s.consumer.clone()),
            text,
        };
        let current = self.consumers.contains_key(&s.consumer);
        if !current {
            let _ = layout::remove_if_present(disk, &s.tmp);
            return (false, None);
        }
        if let Err(e) = synced.and_then(|()| disk.rename(&s.tmp, &s.path).map_err(|e| e.to_string())) {
            let _ = layout::remove_if_present(disk, &s.tmp);
            return (false, Some(note(format!("cannot persist consumer state to {}: {e}", s.path))));
        }
        if let Some(h) = self.consumers.get_mut(&s.consumer) {
            h.saved_version = s.version;
        }
        (true, None)
    }

    /// Send the held AckSync replies whose acks are now durable. Called by
    /// [`super::JetStream::end_sync`] once this stream's part of a commit succeeded and
    /// its staged consumer states were renamed into place: a reply goes out when the
    /// consumer's saved state reached the version the ack produced. Such an ack came
    /// before the commit began, so the removals it caused were among the commit's
    /// writes; acks made while the fsyncs ran wait for the next commit. A consumer that
    /// is gone confirms nothing more; its replies go out (the ack is moot).
    pub fn release_replies(&mut self, out: &mut Vec<JsOut>) {
        let consumers = &self.consumers;
        self.held_replies.retain(|r| {
            let durable = consumers.get(&r.consumer).is_none_or(|h| h.saved_version >= r.version);
            if durable {
                out.push(JsOut::Publish(plain(&r.to, Vec::new())));
            }
            !durable
        });
    }

    /// Whether some consumer's persisted state is behind.
    pub fn consumers_dirty(&self) -> bool {
        self.is_file() && self.consumers.values().any(|h| h.c.state_version() != h.saved_version)
    }

    /// Restore a consumer from its decoded state (or fresh when `state` is `None`).
    pub fn restore_consumer(
        &mut self,
        now_ns: i64,
        meta: ConsumerMeta,
        state: Option<ConsumerState>,
        opts: crate::consumer::ConsumerOptions,
    ) -> Result<(), String> {
        let name = meta.config.consumer_name().to_string();
        let filters = meta.config.filters();
        self.stream.add_consumer(&name, &filters).map_err(|e| e.description)?;
        let st = state.unwrap_or_default();
        let stream_name = self.stream.name().to_string();
        let mut view = View { stream: &mut self.stream, visible: self.visible };
        let c = Consumer::restore(&stream_name, meta.config, meta.created_ns, &st, now_ns, &mut view, opts);
        let v = c.state_version();
        self.consumers.insert(name, ConsumerHost { c, saved_version: v });
        Ok(())
    }
}

/// The message at `seq`, stored or held (evicted by an append that is not durable yet,
/// `store::held`).
fn load_any(stream: &mut Stream<AnyStore>, seq: u64) -> Result<Option<crate::store::StoredMsg>, StoreError> {
    match stream.store_mut().load(seq)? {
        Some(m) => Ok(Some(m)),
        None => match stream.store_mut().file_mut() {
            Some(fs) => fs.held_load(seq),
            None => Ok(None),
        },
    }
}

/// An advisory message on `$JS.EVENT.ADVISORY.CONSUMER.<kind>.<stream>.<consumer>`.
fn advisory(stream: &str, consumer: &str, now_ns: i64, a: &Advisory) -> Message {
    let ts = crate::jetstream::format_rfc3339_nano(now_ns);
    let (kind, ty, body) = match a {
        Advisory::MaxDeliveries { stream_seq, deliveries } => (
            "MAX_DELIVERIES",
            "io.nats.jetstream.advisory.v1.max_deliver",
            serde_json::json!({"stream_seq": stream_seq, "deliveries": deliveries}),
        ),
        Advisory::Terminated { stream_seq, consumer_seq, deliveries, reason } => (
            "MSG_TERMINATED",
            "io.nats.jetstream.advisory.v1.terminated",
            serde_json::json!({"consumer_seq": consumer_seq, "stream_seq": stream_seq, "deliveries": deliveries, "reason": reason}),
        ),
        Advisory::Nak { stream_seq, consumer_seq, deliveries } => (
            "MSG_NAKED",
            "io.nats.jetstream.advisory.v1.nak",
            serde_json::json!({"consumer_seq": consumer_seq, "stream_seq": stream_seq, "deliveries": deliveries}),
        ),
        Advisory::Pinned { group, pinned_id } => (
            "PINNED",
            "io.nats.jetstream.advisory.v1.consumer_group_pinned",
            serde_json::json!({"group": group, "pinned_id": pinned_id}),
        ),
        Advisory::Unpinned { group, reason } => (
            "UNPINNED",
            "io.nats.jetstream.advisory.v1.consumer_group_unpinned",
            serde_json::json!({"group": group, "reason": reason}),
        ),
    };
    let mut obj = serde_json::json!({"type": ty, "id": "", "timestamp": ts, "stream": stream, "consumer": consumer});
    if let (Some(o), Some(b)) = (obj.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            o.insert(k.clone(), v.clone());
        }
    }
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{kind}.{stream}.{consumer}");
    plain(&subject, serde_json::to_vec(&obj).expect("advisory serialises"))
}
