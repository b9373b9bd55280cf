//! A libFuzzer-style entry point for the JetStream API handlers (the cargo-fuzz target
//! `js_api` calls it; `core/tests/js_fuzz_corpus.rs` replays its seeds and regressions).
//!
//! The input is read as a little program over an engine opened on an in-memory disk:
//! API requests on subjects drawn from a list of `$JS.API` subjects (with stream and
//! consumer names drawn from a small set, so requests meet each other's state) and
//! bodies that are either raw fuzz bytes or JSON templates with fuzz-chosen values;
//! publishes with and without JetStream headers; acks on the `$JS.ACK` subjects of earlier
//! deliveries; group commits; time passing; interest changes; restarts. After every step
//! [`JetStream::invariants`] must hold and every API reply must be a JSON object whose
//! `type` is an `io.nats.jetstream.api.v1.*_response`, or a bare 503 status where no API
//! handler takes the subject (nats-server's no-responders); PubAcks must be objects with
//! an `error` or a `stream` and `seq`.

use super::{JetStream, JsConfig, JsOut};
use crate::disk::{Disk, parent};
use crate::mem::Ledger;
use crate::proto::ByteStr;
use crate::server::nats::broker::Message;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

/// Most steps one input runs (keeps each execution short).
const MAX_STEPS: usize = 200;

/// An in-memory [`Disk`]: every write is durable at once (the fuzz target looks for
/// panics and broken invariants in the API handlers, not for crash losses).
#[derive(Default)]
struct FuzzDisk {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.to_owned())
}

impl Disk for FuzzDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.files.lock().expect("disk lock").get(path).cloned().ok_or_else(|| not_found(path))
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let files = self.files.lock().expect("disk lock");
        let d = files.get(path).ok_or_else(|| not_found(path))?;
        let s = (offset as usize).min(d.len());
        Ok(d[s..(s + len).min(d.len())].to_vec())
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let mut files = self.files.lock().expect("disk lock");
        let f = files.entry(path.to_owned()).or_default();
        f.extend_from_slice(data);
        Ok(f.len() as u64)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.files.lock().expect("disk lock").insert(path.to_owned(), data.to_vec());
        Ok(())
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut files = self.files.lock().expect("disk lock");
        files.get_mut(path).ok_or_else(|| not_found(path))?.truncate(len as usize);
        Ok(())
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.len(path).map(|_| ())
    }
    fn sync_dir(&self, _dir: &str) -> io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock().expect("disk lock");
        let data = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_owned(), data);
        Ok(())
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.files.lock().expect("disk lock").remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let files = self.files.lock().expect("disk lock");
        Ok(files
            .keys()
            .filter(|p| parent(p) == dir)
            .map(|p| p.rsplit_once('/').map_or(p.as_str(), |(_, n)| n).to_owned())
            .collect())
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.files.lock().expect("disk lock").get(path).map(|d| d.len() as u64).ok_or_else(|| not_found(path))
    }
}

/// API subjects; `{S}` is a stream name, `{C}` a consumer name. The last ones are wrong on purpose.
const API_SUBJECTS: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.CREATE.{S}",
    "$JS.API.STREAM.UPDATE.{S}",
    "$JS.API.STREAM.INFO.{S}",
    "$JS.API.STREAM.DELETE.{S}",
    "$JS.API.STREAM.PURGE.{S}",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.MSG.GET.{S}",
    "$JS.API.STREAM.MSG.DELETE.{S}",
    "$JS.API.DIRECT.GET.{S}",
    "$JS.API.DIRECT.GET.{S}.{S}.a",
    "$JS.API.CONSUMER.CREATE.{S}",
    "$JS.API.CONSUMER.CREATE.{S}.{C}",
    "$JS.API.CONSUMER.CREATE.{S}.{C}.{S}.a",
    "$JS.API.CONSUMER.DURABLE.CREATE.{S}.{C}",
    "$JS.API.CONSUMER.INFO.{S}.{C}",
    "$JS.API.CONSUMER.DELETE.{S}.{C}",
    "$JS.API.CONSUMER.NAMES.{S}",
    "$JS.API.CONSUMER.LIST.{S}",
    "$JS.API.CONSUMER.MSG.NEXT.{S}.{C}",
    "$JS.API.CONSUMER.PAUSE.{S}.{C}",
    "$JS.API.CONSUMER.UNPIN.{S}.{C}",
    "$JS.API.CONSUMER.RESET.{S}.{C}",
    "$JS.API.STREAM.LEADER.STEPDOWN.{S}",
    "$JS.API.CONSUMER.CREATE.{S}.{C}.x.y.z",
    "$JS.API.STREAM.CREATE",
    "$JS.API.NOPE.{S}",
    "$JS.API",
];

/// Stream names (valid and not).
const STREAMS: &[&str] = &["ORDERS", "WQ", "KV_b", "bad.name", "*", ""];
/// Consumer names (valid and not).
const CONSUMERS: &[&str] = &["worker", "push", "eph", "bad.c", ">"];

/// JSON body templates: `{S}`/`{C}` names, `{N}` a small number (-1..=254), `{NS}` a
/// duration in ns, `{B}` a boolean, `{STORE}`/`{RET}`/`{DISC}`/`{DELIVER}`/`{ACK}` enum values.
const BODIES: &[&str] = &[
    r#"{"name":"{S}","subjects":["{S}.>"],"storage":"{STORE}","retention":"{RET}","max_msgs":{N},"discard":"{DISC}"}"#,
    r#"{"name":"{S}","subjects":["{S}.*"],"max_msgs_per_subject":{N},"allow_direct":{B},"allow_rollup_hdrs":true,"duplicate_window":{NS}}"#,
    r#"{"name":"{S}","subjects":["{S}.>"],"max_age":{NS},"max_bytes":{N},"storage":"{STORE}","allow_msg_ttl":{B}}"#,
    r#"{"stream_name":"{S}","config":{"durable_name":"{C}","ack_policy":"{ACK}","ack_wait":{NS},"max_deliver":{N},"deliver_policy":"{DELIVER}"},"action":""}"#,
    r#"{"stream_name":"{S}","config":{"name":"{C}","filter_subject":"{S}.a","ack_policy":"{ACK}","max_ack_pending":{N},"inactive_threshold":{NS}},"action":"create"}"#,
    r#"{"stream_name":"{S}","config":{"name":"{C}","deliver_subject":"push.{C}","ack_policy":"{ACK}","idle_heartbeat":{NS},"flow_control":{B}}}"#,
    r#"{"batch":{N},"expires":{NS},"no_wait":{B},"max_bytes":{N}}"#,
    r#"{"batch":{N},"expires":{NS},"idle_heartbeat":{NS}}"#,
    r#"{"filter":"{S}.a","keep":{N}}"#,
    r#"{"seq":{N}}"#,
    r#"{"seq":{N},"no_erase":{B}}"#,
    r#"{"last_by_subj":"{S}.a"}"#,
    r#"{"next_by_subj":"{S}.>","seq":{N}}"#,
    r#"{"offset":{N},"subject":"{S}.a"}"#,
    r#"{"subjects_filter":">","deleted_details":{B}}"#,
    r#"{"pause_until":"2026-01-01T00:00:00Z"}"#,
    r#"{"stream_name":"{S}","config":{"durable_name":"{C}","priority_policy":"pinned_client","priority_groups":["{C}"],"priority_timeout":{NS}}}"#,
    r#"{"stream_name":"{S}","config":{"durable_name":"{C}","ack_policy":"{ACK}","priority_policy":"overflow","priority_groups":["A"]}}"#,
    r#"{"batch":{N},"expires":{NS},"group":"{C}","min_pending":{N},"min_ack_pending":{N},"id":"{S}","priority":{N}}"#,
    r#"{"group":"{C}"}"#,
];

/// Publish subjects (inside and outside the streams' subjects).
const PUB_SUBJECTS: &[&str] = &["ORDERS.a", "ORDERS.b.c", "WQ.a", "WQ.b", "KV_b.a", "nowhere"];
/// Publish header blocks; `{N}` a number.
const HEADERS: &[&str] = &[
    "NATS/1.0\r\nNats-Msg-Id: {N}\r\n\r\n",
    "NATS/1.0\r\nNats-Expected-Last-Sequence: {N}\r\n\r\n",
    "NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: {N}\r\n\r\n",
    "NATS/1.0\r\nNats-Expected-Stream: ORDERS\r\n\r\n",
    "NATS/1.0\r\nNats-Expected-Last-Msg-Id: {N}\r\n\r\n",
    "NATS/1.0\r\nNats-Rollup: sub\r\n\r\n",
    "NATS/1.0\r\nNats-Rollup: all\r\n\r\n",
    "NATS/1.0\r\nNats-TTL: {N}s\r\n\r\n",
];
/// Ack bodies.
const ACKS: &[&str] =
    &["", "+ACK", "-NAK", "-NAK {\"delay\": 1000000}", "+WPI", "+NXT", "+NXT {\"batch\":2}", "+TERM", "+TERM why"];

/// Reply inboxes: JSON API replies, pull deliveries, direct gets, PubAcks, ack replies.
const API_INBOX: &str = "_INBOX.api";
const PULL_INBOX: &str = "_INBOX.pull";
const RAW_INBOX: &str = "_INBOX.raw";
const PUB_INBOX: &str = "_INBOX.pub";

/// Draws a template placeholder's value from the input.
type Filler = fn(&mut Input<'_>) -> String;

/// Reads the fuzz input front to back; zeros once it runs out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.byte() as usize % from.len()]
    }
    fn bytes(&mut self, max: usize) -> &[u8] {
        let n = (self.byte() as usize).min(max).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }
    fn fill(&mut self, template: &str) -> String {
        let mut s = template.to_owned();
        let subs: [(&str, Filler); 10] = [
            ("{S}", |i| i.pick(STREAMS).to_owned()),
            ("{C}", |i| i.pick(CONSUMERS).to_owned()),
            ("{NS}", |i| (i.byte() as i64 * 1_000_000).to_string()),
            ("{N}", |i| (i.byte() as i64 - 1).to_string()),
            ("{B}", |i| (i.byte() & 1 == 1).to_string()),
            ("{STORE}", |i| i.pick(&["file", "memory"]).to_owned()),
            ("{RET}", |i| i.pick(&["limits", "interest", "workqueue"]).to_owned()),
            ("{DISC}", |i| i.pick(&["old", "new"]).to_owned()),
            ("{DELIVER}", |i| i.pick(&["all", "last", "new", "last_per_subject"]).to_owned()),
            ("{ACK}", |i| i.pick(&["explicit", "all", "none"]).to_owned()),
        ];
        for (key, value) in subs {
            while let Some(at) = s.find(key) {
                let v = value(self);
                s.replace_range(at..at + key.len(), &v);
            }
        }
        s
    }
}

fn message(subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) -> Message {
    Message {
        subject: ByteStr::from(subject),
        reply: reply.map(ByteStr::from),
        headers: (!headers.is_empty()).then(|| Bytes::copy_from_slice(headers)),
        payload: Bytes::copy_from_slice(payload),
    }
}

fn ledger() -> Arc<Ledger> {
    use crate::mem::names::*;
    Arc::new(Ledger::with_defaults(&[STREAM_DEDUP, CONSUMER_INFLIGHT, STORE_BUFFERS, STORE_CACHE, STORE_INDEX]))
}

/// What one input produced (for tests of the driver itself).
#[derive(Debug, Default)]
struct Tally {
    /// JSON API replies without / with an `error`.
    api_ok: usize,
    api_err: usize,
    /// Status-only 503 replies (no API handler for the subject, as nats-server's no-responders).
    no_responders: usize,
    /// PubAcks without an error.
    pub_acks: usize,
    /// Deliveries to consumers.
    deliveries: usize,
}

/// Check the engine's outputs, remember the ack subjects of deliveries, drop the charges.
fn settle(out: &mut Vec<JsOut>, acks: &mut Vec<String>, tally: &mut Tally) {
    for o in out.drain(..) {
        match o {
            JsOut::Publish(m)
                if m.subject.as_str() == API_INBOX
                    && m.payload.is_empty()
                    && m.headers.as_deref().is_some_and(|h| h.starts_with(b"NATS/1.0 503")) =>
            {
                tally.no_responders += 1;
            }
            JsOut::Publish(m) if m.subject.as_str() == API_INBOX => {
                let v: serde_json::Value = serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("API reply is not JSON ({e}): {}", String::from_utf8_lossy(&m.payload)));
                let t = v.get("type").and_then(|t| t.as_str()).unwrap_or_default();
                assert!(
                    t.starts_with(crate::jetstream::API_TYPE_PREFIX) && t.ends_with("_response"),
                    "API reply without a response type: {v}"
                );
                if v.get("error").is_some() {
                    tally.api_err += 1;
                } else {
                    tally.api_ok += 1;
                }
            }
            JsOut::Publish(m) if m.subject.as_str() == PUB_INBOX => {
                let v: serde_json::Value = serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("PubAck is not JSON ({e}): {}", String::from_utf8_lossy(&m.payload)));
                let ok = v.get("stream").is_some() && v.get("seq").is_some();
                assert!(v.get("error").is_some() || ok, "PubAck with neither an error nor stream and seq: {v}");
                tally.pub_acks += usize::from(ok && v.get("error").is_none());
            }
            JsOut::Publish(_) | JsOut::Watch { .. } => {}
            JsOut::Deliver { msg, charge, .. } => {
                drop(charge);
                tally.deliveries += 1;
                if let Some(r) = msg.reply.filter(|r| !r.is_empty())
                    && acks.len() < 64
                {
                    acks.push(r.to_string());
                }
            }
        }
    }
}

/// Run one fuzz input against a fresh engine (see the module docs). Panics on a broken
/// invariant or a malformed reply.
pub fn fuzz_js_api(data: &[u8]) {
    run(data);
}

fn run(data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    let mut input = Input { data };
    let disk: Arc<FuzzDisk> = Arc::new(FuzzDisk::default());
    let cfg = JsConfig { store_dir: "fuzz".into(), max_api_pending: 4, ..JsConfig::default() };
    let mut now: i64 = 1_700_000_000_000_000_000;
    let (mut js, _) = JetStream::open(cfg.clone(), disk.clone(), ledger(), now);
    let mut out = Vec::new();
    let mut acks: Vec<String> = Vec::new();
    for _ in 0..MAX_STEPS {
        if input.data.is_empty() {
            break;
        }
        now += 1_000;
        match input.byte() % 10 {
            0..=3 => {
                let template = input.pick(API_SUBJECTS);
                let subject = input.fill(template);
                let sel = input.byte();
                let body = if sel & 0x80 == 0 {
                    let t = input.pick(BODIES);
                    input.fill(t).into_bytes()
                } else {
                    input.bytes(512).to_vec()
                };
                let reply = if subject.contains(".MSG.NEXT.") {
                    PULL_INBOX
                } else if subject.contains(".DIRECT.") {
                    RAW_INBOX
                } else {
                    API_INBOX
                };
                let reply = (sel & 0x40 == 0).then_some(reply);
                js.on_message(now, &message(&subject, reply, b"", &body), &mut out);
            }
            4 | 5 => {
                let subject = input.pick(PUB_SUBJECTS);
                let headers = if input.byte() & 1 == 1 {
                    let t = input.pick(HEADERS);
                    input.fill(t).into_bytes()
                } else {
                    Vec::new()
                };
                let payload = input.bytes(64).to_vec();
                let reply = (input.byte() & 3 != 0).then_some(PUB_INBOX);
                if js.wants(subject) {
                    js.on_message(now, &message(subject, reply, &headers, &payload), &mut out);
                }
            }
            6 => {
                if !acks.is_empty() {
                    let subject = acks[input.byte() as usize % acks.len()].clone();
                    let body = input.pick(ACKS);
                    let reply = (input.byte() & 1 == 1).then_some("_INBOX.ack");
                    js.on_message(now, &message(&subject, reply, b"", body.as_bytes()), &mut out);
                }
            }
            7 => {
                let _ = js.sync(now, &mut out);
            }
            8 => {
                now += input.byte() as i64 * 10_000_000;
                js.tick(now, &mut out);
            }
            _ => match input.byte() % 4 {
                0 => {
                    let c = input.pick(CONSUMERS);
                    let active = input.byte() & 1 == 1;
                    js.on_interest(now, &format!("push.{c}"), active, &mut out);
                }
                1 => js.on_interest(now, PULL_INBOX, false, &mut out),
                2 => {
                    let _ = js.sync(now, &mut out);
                    settle(&mut out, &mut acks, &mut tally);
                    drop(js);
                    acks.clear();
                    js = JetStream::open(cfg.clone(), disk.clone(), ledger(), now).0;
                }
                _ => js.poll(now, &mut out),
            },
        }
        settle(&mut out, &mut acks, &mut tally);
        js.poll(now, &mut out);
        settle(&mut out, &mut acks, &mut tally);
        js.invariants();
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_a_program_runs() {
        let mut i = Input { data: &[0, 1, 2] };
        assert_eq!(i.fill("{S}.{C}.{N}"), "ORDERS.push.1");
        // Create a stream, publish to it with a reply, sync, create a pull consumer, fetch, ack, restart.
        let mut p: Vec<u8> = Vec::new();
        p.extend([0, 1, 0, 0, 0, 0, 0, 1, 0, 3, 0]); // STREAM.CREATE.ORDERS, body 0: file, limits, max_msgs 0, old
        p.extend([4, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 1]); // publish "hello" on ORDERS.a, PubAck wanted
        p.extend([7]); // sync: the PubAck goes out
        p.extend([0, 13, 0, 0, 0, 3, 0, 0, 30, 1, 0, 0]); // CONSUMER.CREATE.ORDERS.worker: durable, explicit, all
        p.extend([0, 20, 0, 0, 0, 6, 100, 10, 1, 0]); // MSG.NEXT: batch 9, expires 100 ms
        p.extend([6, 0, 1, 1]); // +ACK the delivery
        p.extend([9, 2]); // restart
        p.extend([0, 16, 0, 0, 0xC0, 0]); // CONSUMER.INFO.ORDERS.worker, empty raw body, no reply
        p.extend([0, 3, 0, 0, 9, 1]); // STREAM.INFO.ORDERS
        let t = run(&p);
        assert_eq!((t.api_ok, t.api_err, t.pub_acks, t.deliveries), (3, 0, 1, 1), "{t:?}");
        // A subject no API handler takes (a stream name with a dot) gets no-responders, as
        // from nats-server, where no subscription matches it.
        let t = run(&[0, 1, 3, 0, 0, 1, 1, 6, 1, 2, 0]);
        assert_eq!((t.api_ok, t.api_err, t.no_responders), (0, 0, 1), "{t:?}");
    }
}
