//! Mirrors and sources on one server: a stream with `mirror` or `sources` takes the
//! messages of other streams of the engine, each through an internal ordered reader of
//! the origin (no consumer object, no network: the engine reads the origin's store).
//!
//! - **What is read**: the origin's durable prefix only (its `visible` sequence), from
//!   the recorded position on, filtered by `filter_subject` or mapped by
//!   `subject_transforms` ([`SourceMapping`]), in batches of at most [`BATCH_MSGS`]
//!   messages / [`BATCH_BYTES`] bytes per source and pump (the batch lives for one
//!   call; what waits for the target's group commit is charged to `stream.pending` as
//!   any publish). When a batch is cut short, [`JetStream::next_deadline`] asks for an
//!   immediate tick so the pump goes on.
//! - **How it is stored**: through the target's publish path (its limits, retention,
//!   transform and republish apply), with the origin's `Nats-Expected-*` headers
//!   dropped. A mirror keeps the origin's headers and sequences ([`Stream::skip_to`]);
//!   a source's copy carries `Nats-Stream-Source: <origin> <seq> <filter> <dest>
//!   <origin subject>` as nats-server 2.15 writes it (`>` for no filter / no mapping;
//!   nats-server adds an ident token after it, which Weir does not write).
//! - **Position after a restart** (or a reopened store): a mirror resumes after its
//!   last sequence; a source after the newest `Nats-Stream-Source` of its own in the
//!   target (a backward scan of the target, once per open, as nats-server's
//!   `startingSequenceForSources`); with none, from `opt_start_seq`,
//!   `opt_start_time` or the origin's first message.
//! - **Info**: `mirror` / `sources` in STREAM.INFO carry `name`, `lag` (origin
//!   sequences after the position, deleted ones included) and `active` (ns since the
//!   origin was last read, -1 while the origin does not exist), plus the
//!   `filter_subject` / `subject_transforms` given.
//!
//! A config whose sources lead back to the stream itself is refused (10052 "stream
//! sources form a cycle"), so no message is copied around a loop.
//!
//! Differences from nats-server: no `external` sources (refused at config time), no
//! flow control or consumer on the origin (the `consumer` field of 2.14 is kept and
//! echoed but not used; so a source does not count as interest on an interest or
//! workqueue origin, whose messages may go before they are copied), and an origin
//! message the target refuses (a limit, a TTL it does not allow) is skipped rather than
//! retried.
//!
//! [`Stream::skip_to`]: crate::stream::Stream::skip_to

use super::host::StreamHost;
use super::{JetStream, JsOut, PENDING_ENTRY_COST};
use crate::mem::Charge;
use crate::proto::Headers;
use crate::store::{MsgStore, StoredMsg};
use crate::stream::StreamConfig;
use crate::stream::sourcing::{SourceMapping, SourceSpec};
use serde_json::{Value, json};

/// Most messages one source copies per pump.
pub const BATCH_MSGS: usize = 256;
/// Most payload and header bytes one source copies per pump.
pub const BATCH_BYTES: usize = 1 << 20;
/// The header nats-server writes on a sourced message.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";
/// Pump rounds per call (a source of a source of a memory stream moves in one call).
const ROUNDS: usize = 4;

/// One origin of a sourcing stream.
#[derive(Clone, Debug)]
pub(super) struct SourceRun {
    spec: SourceSpec,
    mapping: SourceMapping,
    /// `(name, filters, destinations)` of the `Nats-Stream-Source` header.
    iname: (String, String, String),
    /// Next origin sequence to read; `None` until resolved from the target's store.
    next: Option<u64>,
    /// When the origin was last read (ns).
    active: Option<i64>,
    /// Origin sequences after the position at the last read.
    lag: u64,
}

/// The mirror or the sources of one stream.
#[derive(Clone, Debug)]
pub(super) struct Sourcing {
    mirror: bool,
    runs: Vec<SourceRun>,
}

impl Sourcing {
    /// The sourcing a checked config asks for (`None`: neither mirror nor sources).
    pub fn of(cfg: &StreamConfig) -> Option<Sourcing> {
        let (mirror, specs) = match cfg.mirror_spec() {
            Some(m) => (true, vec![m]),
            None => (false, cfg.source_specs()),
        };
        let runs: Vec<SourceRun> = specs
            .into_iter()
            .filter_map(|spec| {
                let mapping = spec.mapping().ok()?;
                let iname = spec.index_name();
                Some(SourceRun { spec, mapping, iname, next: None, active: None, lag: 0 })
            })
            .collect();
        (!runs.is_empty()).then_some(Sourcing { mirror, runs })
    }
}

/// The header value for origin sequence `seq` of a message on `subject` in the
/// origin: `<origin> <seq> <filters> <destinations> <subject>`, nats-server 2.15's
/// layout without its trailing ident token (checked by tests/js_client.rs).
fn source_header(iname: &(String, String, String), seq: u64, subject: &str) -> String {
    format!("{} {seq} {} {} {subject}", iname.0, iname.1, iname.2)
}

/// The origin sequence a target message copied for `iname`, from its headers.
fn sourced_seq(headers: &[u8], iname: &(String, String, String)) -> Option<u64> {
    if headers.is_empty() {
        return None;
    }
    let h = Headers::parse(headers).ok()?;
    let v = h.get(STREAM_SOURCE)?;
    let mut t = v.split(' ');
    let (name, seq, filter, dest) = (t.next()?, t.next()?, t.next().unwrap_or(">"), t.next().unwrap_or(">"));
    (name == iname.0 && filter == iname.1 && dest == iname.2).then(|| seq.parse().ok()).flatten()
}

/// The headers to store a copy with: the origin's minus `Nats-Expected-*` (they were
/// checked by the origin) and, for a source, with `Nats-Stream-Source` set.
fn copy_headers(headers: &[u8], source: Option<String>) -> Vec<u8> {
    let mut h = if headers.is_empty() { Headers::new() } else { Headers::parse(headers).unwrap_or_default() };
    let expected: Vec<String> =
        h.iter().map(|(k, _)| k.to_string()).filter(|k| k.starts_with("Nats-Expected-")).collect();
    for k in &expected {
        h.remove(k);
    }
    if let Some(v) = source {
        h.remove(STREAM_SOURCE);
        let _ = h.append(STREAM_SOURCE, &v);
    }
    if h.is_empty() && h.status().is_none() {
        return Vec::new();
    }
    h.to_bytes().to_vec()
}

impl JetStream {
    /// Set up (or drop) the sourcing of stream `name` from its config. `keep`: keep the
    /// positions of runs whose origin and mapping did not change (a config update);
    /// otherwise every position is resolved again from the store (open, reopen).
    pub(super) fn refresh_sourcing(&mut self, name: &str, keep: bool) {
        let Some(cfg) = self.streams.get(name).map(|h| h.stream.config().clone()) else {
            self.sourcing.remove(name);
            return;
        };
        match Sourcing::of(&cfg) {
            None => {
                self.sourcing.remove(name);
            }
            Some(mut s) => {
                if keep && let Some(old) = self.sourcing.get(name) {
                    for r in &mut s.runs {
                        if let Some(o) = old.runs.iter().find(|o| o.iname == r.iname) {
                            (r.next, r.active, r.lag) = (o.next, o.active, o.lag);
                        }
                    }
                }
                self.sourcing.insert(name.to_string(), s);
            }
        }
    }

    /// Copy what the origins have that their mirrors and sources lack (see the module
    /// docs). Called after inputs, syncs and ticks.
    pub(super) fn pump_sources(&mut self, now_ns: i64, out: &mut Vec<JsOut>) {
        if self.sourcing.is_empty() {
            return;
        }
        self.source_wake = None;
        for _ in 0..ROUNDS {
            let mut moved = false;
            let targets: Vec<(String, usize)> = self.sourcing.iter().map(|(n, s)| (n.clone(), s.runs.len())).collect();
            for (target, runs) in targets {
                for i in 0..runs {
                    moved |= self.pump_one(now_ns, &target, i, out);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Resolve run `i` of `target`'s position if needed; `None` if it cannot be yet.
    fn resolve(&mut self, target: &str, i: usize) -> Option<u64> {
        let s = self.sourcing.get(target)?;
        let run = s.runs.get(i)?;
        if let Some(n) = run.next {
            return Some(n);
        }
        let (mirror, iname, spec) = (s.mirror, run.iname.clone(), run.spec.clone());
        let origin_exists = self.streams.contains_key(&spec.name);
        let t = self.streams.get_mut(target)?;
        let st = t.stream.store_state();
        let mut found = None;
        if mirror {
            if st.last_seq > 0 {
                found = Some(st.last_seq + 1);
            }
        } else {
            let mut seq = st.last_seq;
            while seq >= st.first_seq.max(1) {
                match t.stream.store_mut().load(seq) {
                    Ok(Some(m)) => {
                        if let Some(s) = sourced_seq(&m.headers, &iname) {
                            found = Some(s + 1);
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(_) => return None,
                }
                seq -= 1;
            }
        }
        let next = match found {
            Some(n) => n,
            None if spec.opt_start_seq > 0 => spec.opt_start_seq,
            None => match spec.opt_start_time.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => {
                    if !origin_exists {
                        return None;
                    }
                    let ts = crate::jetstream::parse_rfc3339(t).ok().flatten().unwrap_or(0);
                    let o = self.streams.get_mut(&spec.name)?;
                    match o.stream.seq_at_time(ts) {
                        Ok(Some(s)) => s,
                        Ok(None) => o.stream.store_state().last_seq + 1,
                        Err(_) => return None,
                    }
                }
                None => 1,
            },
        };
        let run = self.sourcing.get_mut(target)?.runs.get_mut(i)?;
        run.next = Some(next);
        Some(next)
    }

    /// One batch of run `i` of `target`; whether its position moved.
    fn pump_one(&mut self, now_ns: i64, target: &str, i: usize, out: &mut Vec<JsOut>) -> bool {
        let Some((mirror, origin, mapping, iname)) = self.sourcing.get(target).and_then(|s| {
            let r = s.runs.get(i)?;
            Some((s.mirror, r.spec.name.clone(), r.mapping.clone(), r.iname.clone()))
        }) else {
            return false;
        };
        if !self.streams.contains_key(&origin) || !self.streams.contains_key(target) {
            if let Some(r) = self.sourcing.get_mut(target).and_then(|s| s.runs.get_mut(i)) {
                r.active = None;
            }
            return false;
        }
        let Some(start) = self.resolve(target, i) else { return false };
        // Read a batch from the origin's durable prefix.
        let Some(o) = self.streams.get_mut(&origin) else { return false };
        let visible = o.visible;
        let filter = match &mapping {
            SourceMapping::Filter(f) => f.clone(),
            SourceMapping::Transforms(_) => ">".to_string(),
        };
        let mut batch: Vec<(StoredMsg, String)> = Vec::new();
        let (mut from, mut bytes, mut cut, mut failed) = (start, 0usize, false, false);
        loop {
            if batch.len() >= BATCH_MSGS || bytes >= BATCH_BYTES {
                cut = true;
                break;
            }
            let m = match o.stream.load_next(&filter, from) {
                Ok(Some(m)) if m.seq <= visible => m,
                Ok(_) => break,
                Err(_) => {
                    // The origin's store failed: keep the position; the next input,
                    // sync or tick tries again (no immediate wake-up, no busy loop).
                    failed = true;
                    break;
                }
            };
            from = m.seq + 1;
            if let Some(subject) = mapping.map(&m.subject) {
                bytes += m.headers.len() + m.payload.len();
                batch.push((m, subject));
            }
        }
        if !cut && !failed {
            // Nothing more matching up to the durable end: the position is the end.
            from = from.max(visible + 1).max(start);
        }
        let origin_last = visible;
        // Store the batch into the target.
        let mut next = start;
        let mut stopped = false;
        for (m, subject) in batch {
            let Some(t) = self.streams.get(target) else { return false };
            let file = t.is_file();
            let mut charge = None;
            if file {
                let cost = (PENDING_ENTRY_COST + subject.len()) as u64;
                charge = Charge::try_new(&self.pending, cost);
                if charge.is_none() {
                    // The group commit must run first; the pump goes on after it.
                    stopped = true;
                    break;
                }
            }
            let Some(t) = self.streams.get_mut(target) else { return false };
            let headers = if mirror {
                if t.stream.skip_to(m.seq, now_ns).is_err() {
                    stopped = true;
                    break;
                }
                copy_headers(&m.headers, None)
            } else {
                copy_headers(&m.headers, Some(source_header(&iname, m.seq, &m.subject)))
            };
            t.publish(now_ns, &subject, None, &headers, &m.payload, false, charge, out);
            if t.stream.store_failure().is_some() {
                stopped = true;
                break;
            }
            next = m.seq + 1;
        }
        if !stopped {
            next = next.max(from);
        }
        // A batch cut short made progress: tick at once to go on. A stop for lack of
        // `stream.pending` room waits for the group commit, which pumps again when it
        // is done (waking now would spin until then).
        if cut && !stopped {
            self.source_wake = Some(now_ns);
        }
        let Some(run) = self.sourcing.get_mut(target).and_then(|s| s.runs.get_mut(i)) else { return false };
        run.next = Some(next);
        run.active = Some(now_ns);
        run.lag = origin_last.saturating_sub(next.saturating_sub(1));
        next != start
    }

    /// Refuse a config whose mirror or sources lead back to stream `name` through the
    /// origins' own mirrors and sources (each message would be copied around the loop
    /// forever): 10052 "stream sources form a cycle". Origins that do not exist yet are
    /// followed no further (a later create of one is checked in turn).
    pub(super) fn check_source_cycle(&self, name: &str, cfg: &StreamConfig) -> Result<(), crate::jetstream::ApiError> {
        let origins = |c: &StreamConfig| -> Vec<String> {
            c.mirror_spec().into_iter().chain(c.source_specs()).map(|s| s.name).collect()
        };
        let mut todo = origins(cfg);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(o) = todo.pop() {
            if o == name {
                return Err(crate::jetstream::ApiError::stream_invalid_config("stream sources form a cycle"));
            }
            if !seen.insert(o.clone()) {
                continue;
            }
            if let Some(h) = self.streams.get(&o) {
                todo.extend(origins(h.stream.config()));
            }
        }
        Ok(())
    }

    /// `mirror` / `sources` for stream `name`'s info (see the module docs for the fields).
    pub(super) fn source_infos(&self, name: &str, now_ns: i64) -> (Option<Value>, Option<Vec<Value>>) {
        let Some(s) = self.sourcing.get(name) else { return (None, None) };
        let infos: Vec<Value> = s
            .runs
            .iter()
            .map(|r| {
                let mut v = json!({
                    "name": r.spec.name,
                    "lag": r.lag,
                    "active": r.active.map_or(-1, |a| now_ns.saturating_sub(a)),
                });
                if !r.spec.filter_subject.is_empty() {
                    v["filter_subject"] = json!(r.spec.filter_subject);
                }
                if !r.spec.subject_transforms.is_empty() {
                    v["subject_transforms"] = json!(
                        r.spec
                            .subject_transforms
                            .iter()
                            .map(|t| json!({"src": t.src, "dest": t.dest}))
                            .collect::<Vec<_>>()
                    );
                }
                v
            })
            .collect();
        if s.mirror { (infos.into_iter().next(), None) } else { (None, Some(infos)) }
    }

    /// Check the sourcing state (part of [`JetStream::invariants`]): only streams in
    /// service source, as their configs say.
    pub(super) fn sourcing_invariants(&self) {
        for (name, s) in &self.sourcing {
            let h: &StreamHost = self.streams.get(name).unwrap_or_else(|| panic!("sourcing for unknown stream {name}"));
            assert!(h.stream.config().is_sourcing(), "stream {name} sources without a mirror or sources");
            assert_eq!(s.mirror, h.stream.config().mirror_spec().is_some(), "stream {name}: mirror flag differs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_header_round_trips() {
        let iname = ("ORIGIN".to_string(), ">".to_string(), ">".to_string());
        let h =
            copy_headers(b"NATS/1.0\r\nNats-Expected-Stream: X\r\nK: v\r\n\r\n", Some(source_header(&iname, 7, "a.b")));
        let text = String::from_utf8(h.clone()).unwrap();
        assert!(
            !text.contains("Expected")
                && text.contains("K: v")
                && text.contains("Nats-Stream-Source: ORIGIN 7 > > a.b")
        );
        assert_eq!(sourced_seq(&h, &iname), Some(7));
        let other = ("ORIGIN".to_string(), "a.>".to_string(), ">".to_string());
        assert_eq!(sourced_seq(&h, &other), None);
        assert!(copy_headers(b"", None).is_empty());
    }
}
