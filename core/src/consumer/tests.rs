//! Consumer state machine tests over a `MemStore`, and a proptest of its invariants.

use super::testing::StoreReader;
use super::*;
use crate::mem::Account;
use crate::store::{MemStore, MsgStore, StoreLimits};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const S: i64 = 1_000_000_000;

struct H {
    c: Consumer,
    r: StoreReader<MemStore>,
    now: i64,
    stream: StreamSummary,
}

fn stream() -> StreamSummary {
    StreamSummary { name: "ORDERS".into(), subjects: vec!["orders.>".into()], replicas: 1, ..Default::default() }
}

impl H {
    fn new(cfg_json: &str) -> H {
        H::with(cfg_json, ConsumerOptions::default(), &[])
    }

    fn with(cfg_json: &str, opts: ConsumerOptions, before: &[&str]) -> H {
        let mut r = StoreReader(MemStore::new(StoreLimits::default()).unwrap());
        for (i, s) in before.iter().enumerate() {
            r.0.append(s, b"", b"data", (i as i64 + 1) * S).unwrap();
        }
        let cfg: ConsumerConfig = serde_json::from_str(cfg_json).unwrap();
        let now = 100 * S;
        let c = Consumer::create(&stream(), cfg, now, &mut r, opts).unwrap();
        H { c, r, now, stream: stream() }
    }

    fn publish(&mut self, subject: &str) -> u64 {
        self.publish_with(subject, b"", b"data")
    }

    fn publish_with(&mut self, subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
        let seq = self.r.0.append(subject, headers, payload, self.now).unwrap();
        self.c.on_stream_append(seq, subject);
        self.c.poll(self.now, &mut self.r);
        seq
    }

    fn pull(&mut self, reply: &str, body: &str) {
        self.c.on_pull_request(self.now, reply, body.as_bytes(), &mut self.r);
    }

    fn ack(&mut self, d: &Delivery, body: &str) {
        self.c.on_ack(self.now, &d.reply, body.as_bytes(), None, &mut self.r);
    }

    fn advance(&mut self, ns: i64) {
        self.now += ns;
        self.c.tick(self.now, &mut self.r);
    }

    fn effects(&mut self) -> Vec<Effect> {
        self.c.drain_effects()
    }

    fn deliveries(&mut self) -> Vec<Delivery> {
        self.effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Deliver(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    fn statuses(&mut self) -> Vec<(String, String)> {
        self.effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Status { to, headers, .. } => Some((to, String::from_utf8(headers).unwrap())),
                _ => None,
            })
            .collect()
    }
}

const PULL: &str = r#"{"durable_name":"w","ack_policy":"explicit"}"#;

#[test]
fn pull_delivers_with_nats_ack_subjects_and_acks_empty_pending() {
    let mut h = H::new(PULL);
    for i in 0..3 {
        h.publish(&format!("orders.{i}"));
    }
    assert_eq!(h.c.num_pending(), 3);
    h.pull("_INBOX.a", r#"{"batch":10,"expires":5000000000}"#);
    let ds = h.deliveries();
    let pendings: Vec<u64> = ds.iter().map(|d| AckReply::parse(&d.reply).unwrap().pending).collect();
    assert_eq!(pendings, vec![2, 1, 0], "the trace's pending counts");
    assert_eq!(ds[0].reply, format!("$JS.ACK.ORDERS.w.1.1.1.{}.2", h.now));
    assert!(ds.iter().all(|d| d.to == "_INBOX.a" && d.deliveries == 1));
    assert_eq!((h.c.num_ack_pending(), h.c.num_waiting()), (3, 1));
    for d in &ds {
        h.ack(d, "");
    }
    assert_eq!(h.c.num_ack_pending(), 0);
    assert_eq!(h.c.ack_floor(), SeqPair { consumer_seq: 3, stream_seq: 3 });
    let dones: Vec<u64> =
        h.effects().into_iter().filter_map(|e| matches!(e, Effect::Done { .. }).then_some(0)).collect();
    assert_eq!(dones.len(), 3);
    let info = serde_json::to_value(h.c.info(h.now)).unwrap();
    assert_eq!(info["delivered"]["stream_seq"], 3);
    assert_eq!(info["ack_floor"]["consumer_seq"], 3);
    assert_eq!(info["num_ack_pending"], 0);
    assert_eq!(info["num_waiting"], 1);
    assert_eq!(info["num_pending"], 0);
    assert_eq!(info["config"]["max_waiting"], 512);
    assert!(info["delivered"]["last_active"].is_string());
    assert_eq!(info["created"], "1970-01-01T00:01:40Z");
}

#[test]
fn info_json_matches_the_trace_byte_for_byte() {
    // trace-js-async-nats.txt: consumer_create_response for a durable on a 3-message stream,
    // without the API layer's "type" and the response-only "_nats.*" metadata.
    let mut r = StoreReader(MemStore::new(StoreLimits::default()).unwrap());
    for i in 0..3 {
        r.0.append(&format!("bench.js.w3.{i}"), b"", b"xxxxxxxx", i).unwrap();
    }
    let s = StreamSummary {
        name: "BENCH_RS".into(),
        subjects: vec!["bench.js.w3.>".into()],
        replicas: 1,
        ..Default::default()
    };
    let cfg: ConsumerConfig = serde_json::from_str(
        r#"{"ack_policy":"explicit","deliver_policy":"all","durable_name":"bench_rs","max_ack_pending":-1,"replay_policy":"instant"}"#,
    )
    .unwrap();
    let created = crate::jetstream::parse_rfc3339_or_zero("2026-11-23T07:08:41.122179876Z").unwrap();
    let c = Consumer::create(&s, cfg, created, &mut r, ConsumerOptions::default()).unwrap();
    let ts = crate::jetstream::parse_rfc3339_or_zero("2026-11-23T07:08:41.122722724Z").unwrap();
    assert_eq!(
        serde_json::to_string(&c.info(ts)).unwrap(),
        concat!(
            r#"{"stream_name":"BENCH_RS","name":"bench_rs","created":"2026-11-23T07:08:41.122179876Z","#,
            r#""config":{"durable_name":"bench_rs","name":"bench_rs","deliver_policy":"all","ack_policy":"explicit","#,
            r#""ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":-1,"#,
            r#""num_replicas":0},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"#,
            r#""num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":3,"ts":"2026-11-23T07:08:41.122722724Z"}"#
        )
    );
    let back: ConsumerInfo = serde_json::from_str(&serde_json::to_string(&c.info(ts)).unwrap()).unwrap();
    assert_eq!(back, c.info(ts));
}

#[test]
fn ack_floor_never_passes_an_unacked_message() {
    let mut h = H::new(PULL);
    for _ in 0..3 {
        h.publish("orders.x");
    }
    h.pull("_INBOX.a", "3");
    let ds = h.deliveries();
    h.ack(&ds[1], "+ACK");
    h.ack(&ds[2], "+ACK");
    assert_eq!(h.c.ack_floor().stream_seq, 0, "1 is still pending");
    assert!(h.c.needs_ack(1, "orders.x") && !h.c.needs_ack(2, "orders.x"));
    h.ack(&ds[0], "+ACK");
    assert_eq!(h.c.ack_floor().stream_seq, 3);
    assert!(!h.c.needs_ack(1, "orders.x"));
}

#[test]
fn ack_floor_skips_bug_switch_moves_the_floor_past_pending() {
    let opts = ConsumerOptions { bugs: ConsumerBugs { ack_floor_skips: true }, ..Default::default() };
    let mut h = H::with(PULL, opts, &[]);
    for _ in 0..3 {
        h.publish("orders.x");
    }
    h.pull("_INBOX.a", "3");
    let ds = h.deliveries();
    h.ack(&ds[2], "+ACK");
    assert_eq!(h.c.ack_floor().stream_seq, 3, "the bug jumps the floor over pending 1 and 2");
    assert_eq!(h.c.num_ack_pending(), 2);
}

#[test]
fn ack_all_acks_everything_below() {
    let mut h = H::new(r#"{"durable_name":"w","ack_policy":"all"}"#);
    for _ in 0..4 {
        h.publish("orders.x");
    }
    h.pull("_INBOX.a", "4");
    let ds = h.deliveries();
    h.ack(&ds[2], "");
    assert_eq!((h.c.num_ack_pending(), h.c.ack_floor().stream_seq), (1, 3));
    h.ack(&ds[1], "");
    assert_eq!(h.c.num_ack_pending(), 1, "an ack below the floor is ignored");
}

#[test]
fn ack_none_needs_no_acks() {
    let mut h = H::new(r#"{"durable_name":"w"}"#);
    h.publish("orders.x");
    h.pull("_INBOX.a", "");
    let effects = h.effects();
    assert!(matches!(effects[0], Effect::Deliver(_)));
    assert!(matches!(effects[1], Effect::Done { seq: 1, reason: DoneReason::Delivered }));
    assert_eq!((h.c.num_ack_pending(), h.c.ack_floor().stream_seq), (0, 1));
}

#[test]
fn no_wait_and_expiry_statuses() {
    let mut h = H::new(PULL);
    h.pull("_INBOX.a", r#"{"batch":5,"no_wait":true}"#);
    assert_eq!(h.statuses(), vec![("_INBOX.a".into(), "NATS/1.0 404 No Messages\r\n\r\n".into())]);
    h.publish("orders.x");
    h.pull("_INBOX.b", r#"{"batch":5,"no_wait":true}"#);
    let effects = h.effects();
    assert!(matches!(&effects[0], Effect::Deliver(d) if d.to == "_INBOX.b"));
    assert!(
        matches!(&effects[1], Effect::Status { to, headers, .. } if to == "_INBOX.b" && headers == b"NATS/1.0 404 No Messages\r\n\r\n")
    );
    assert_eq!(h.c.num_waiting(), 0);
    h.pull("_INBOX.c", r#"{"batch":5,"expires":1000000000}"#);
    assert_eq!(h.c.next_deadline(), Some(h.now + S));
    h.advance(S);
    assert_eq!(
        h.statuses(),
        vec![(
            "_INBOX.c".into(),
            "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 0\r\n\r\n".into()
        )]
    );
}

#[test]
fn request_limits_and_max_waiting() {
    let mut h = H::new(
        r#"{"durable_name":"w","ack_policy":"explicit","max_waiting":1,"max_batch":5,"max_expires":2000000000}"#,
    );
    h.pull("_INBOX.a", "6");
    h.pull("_INBOX.a", r#"{"batch":1,"expires":3000000000}"#);
    h.pull("_INBOX.a", r#"{"batch":1,"idle_heartbeat":1000,"expires":1500}"#);
    h.pull("_INBOX.a", r#"{"batch":"x"}"#);
    let st: Vec<String> = h.statuses().into_iter().map(|s| s.1).collect();
    assert_eq!(st[0], "NATS/1.0 409 Exceeded MaxRequestBatch of 5\r\n\r\n");
    assert_eq!(st[1], "NATS/1.0 409 Exceeded MaxRequestExpires of 2s\r\n\r\n");
    assert_eq!(st[2], "NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n");
    assert!(st[3].starts_with("NATS/1.0 400 Bad Request - "));
    h.pull("_INBOX.b", "1");
    h.pull("_INBOX.c", "1");
    assert_eq!(h.statuses(), vec![("_INBOX.c".into(), "NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n".into())]);
    h.pull("_INBOX.d", r#"{"batch":1,"expires":1000000000,"idle_heartbeat":100000000}"#);
    assert!(h.statuses().is_empty(), "a request with heartbeats is refused silently");
    h.c.delete();
    assert_eq!(h.statuses(), vec![("_INBOX.b".into(), "NATS/1.0 409 Consumer Deleted\r\n\r\n".into())]);
}

#[test]
fn pull_heartbeats_carry_last_sequences() {
    let mut h = H::new(PULL);
    h.publish("orders.x");
    h.pull("_INBOX.a", r#"{"batch":1}"#);
    let _ = h.deliveries();
    h.pull("_INBOX.b", r#"{"batch":1,"expires":10000000000,"idle_heartbeat":1000000000}"#);
    h.advance(S);
    assert_eq!(
        h.statuses(),
        vec![(
            "_INBOX.b".into(),
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\nNats-Last-Stream: 1\r\n\r\n".into()
        )]
    );
}

#[test]
fn max_bytes_ends_a_request_with_409() {
    let mut h = H::new(PULL);
    h.publish_with("orders.x", b"", &[7u8; 100]);
    h.pull("_INBOX.a", r#"{"batch":5,"max_bytes":50}"#);
    assert_eq!(
        h.statuses(),
        vec![(
            "_INBOX.a".into(),
            "NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 50\r\n\r\n"
                .into()
        )]
    );
    assert_eq!(h.c.num_pending(), 1, "the message was not consumed");
}

#[test]
fn redelivery_with_backoff_then_max_deliver() {
    let mut h =
        H::new(r#"{"durable_name":"w","ack_policy":"explicit","max_deliver":3,"backoff":[1000000000,5000000000]}"#);
    h.publish("orders.x");
    h.pull("_INBOX.a", r#"{"batch":10,"expires":100000000000}"#);
    assert_eq!(h.deliveries()[0].deliveries, 1);
    h.advance(S - 1);
    assert!(h.deliveries().is_empty());
    h.advance(1);
    let d = h.deliveries();
    assert_eq!((d[0].deliveries, d[0].consumer_seq, d[0].stream_seq), (2, 2, 1));
    assert!(d[0].reply.starts_with("$JS.ACK.ORDERS.w.2.1.2."));
    h.advance(S);
    assert!(h.deliveries().is_empty(), "second wait is backoff[1] = 5 s");
    h.advance(4 * S);
    assert_eq!(h.deliveries()[0].deliveries, 3);
    assert_eq!(h.c.num_redelivered(), 1);
    h.advance(5 * S);
    let effects = h.effects();
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Advisory(Advisory::MaxDeliveries { stream_seq: 1, deliveries: 3 })))
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Done { seq: 1, reason: DoneReason::MaxDeliveries })));
    assert_eq!((h.c.num_ack_pending(), h.c.ack_floor().stream_seq), (0, 1));
}

#[test]
fn nak_wpi_term_and_ack_sync() {
    let mut h = H::new(PULL);
    for _ in 0..3 {
        h.publish("orders.x");
    }
    h.pull("_INBOX.a", r#"{"batch":3}"#);
    let ds = h.deliveries();
    // NAK: redelivered on the next request, before newer messages.
    h.c.on_ack(h.now, &ds[0].reply, b"-NAK", Some("_INBOX.sync"), &mut h.r);
    let effects = h.effects();
    assert!(effects.iter().any(|e| matches!(e, Effect::AckReply { to } if to == "_INBOX.sync")));
    assert!(effects.iter().any(|e| matches!(e, Effect::Advisory(Advisory::Nak { stream_seq: 1, .. }))));
    h.pull("_INBOX.b", "1");
    assert_eq!(h.deliveries()[0].deliveries, 2);
    // NAK with a delay: not before it.
    h.c.on_ack(h.now, &ds[1].reply, br#"-NAK {"delay":2000000000}"#, None, &mut h.r);
    h.pull("_INBOX.c", r#"{"batch":1,"expires":60000000000}"#);
    assert!(h.deliveries().is_empty());
    h.advance(2 * S);
    assert_eq!(h.deliveries()[0].stream_seq, 2);
    // WPI pushes the deadline out by ack_wait.
    h.advance(20 * S);
    h.c.on_ack(h.now, &ds[2].reply, b"+WPI", None, &mut h.r);
    h.pull("_INBOX.d", r#"{"batch":1,"expires":60000000000}"#);
    h.advance(15 * S);
    assert!(h.deliveries().iter().all(|d| d.stream_seq != 3), "WPI restarted the 30 s timer");
    // TERM: gone for good, with an advisory.
    h.c.on_ack(h.now, &ds[2].reply, b"+TERM not for me", None, &mut h.r);
    let effects = h.effects();
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Advisory(Advisory::Terminated { stream_seq: 3, reason, .. }) if reason == "not for me")
    ));
    assert!(!h.c.pending().any(|(s, _)| s == 3));
}

#[test]
fn next_acks_and_requests_more_on_the_reply() {
    let mut h = H::new(PULL);
    h.publish("orders.x");
    h.publish("orders.x");
    h.pull("_INBOX.a", "1");
    let d = h.deliveries().remove(0);
    h.c.on_ack(h.now, &d.reply, b"+NXT", Some("_INBOX.next"), &mut h.r);
    let effects = h.effects();
    assert!(!effects.iter().any(|e| matches!(e, Effect::AckReply { .. })));
    assert!(effects.iter().any(|e| matches!(e, Effect::Deliver(d) if d.to == "_INBOX.next" && d.stream_seq == 2)));
    assert_eq!(h.c.ack_floor().stream_seq, 1);
}

#[test]
fn max_ack_pending_gates_new_deliveries() {
    let mut h = H::new(r#"{"durable_name":"w","ack_policy":"explicit","max_ack_pending":2}"#);
    for _ in 0..4 {
        h.publish("orders.x");
    }
    h.pull("_INBOX.a", r#"{"batch":4,"expires":10000000000}"#);
    let ds = h.deliveries();
    assert_eq!(ds.len(), 2);
    h.ack(&ds[0], "");
    assert_eq!(h.deliveries().len(), 1, "one slot freed, one more delivered");
}

#[test]
fn inflight_window_and_node_account_push_back() {
    let node = Arc::new(Account::new(CONSUMER_INFLIGHT, 1_000_000));
    let opts = ConsumerOptions { inflight_window: 250, node_inflight: Some(node.clone()), ..Default::default() };
    let mut h = H::with(PULL, opts, &[]);
    for _ in 0..5 {
        h.publish_with("orders.x", b"", &[0u8; 100]);
    }
    h.pull("_INBOX.a", r#"{"batch":5,"expires":10000000000}"#);
    let first = h.deliveries();
    assert_eq!(first.len(), 2, "two 108-byte messages fill the 250-byte window");
    assert!(h.c.blocked_on_inflight());
    assert_eq!(h.c.inflight_bytes(), 216);
    assert_eq!(node.current(), 216);
    drop(first);
    assert_eq!(node.current(), 0);
    h.c.poll(h.now, &mut h.r);
    assert_eq!(h.deliveries().len(), 2);
    // The node-wide account pushes back too.
    let small = Arc::new(Account::new(CONSUMER_INFLIGHT, 50));
    let opts = ConsumerOptions { node_inflight: Some(small), ..Default::default() };
    let mut h = H::with(PULL, opts, &[]);
    h.publish_with("orders.x", b"", &[0u8; 100]);
    h.pull("_INBOX.a", "1");
    assert!(h.deliveries().is_empty() && h.c.blocked_on_inflight());
}

#[test]
fn push_flow_control_heartbeats_and_headers_only() {
    let opts = ConsumerOptions { flow_control_limit: 16 * 200, ..Default::default() };
    let cfg = r#"{"durable_name":"p","ack_policy":"explicit","deliver_subject":"deliver.p","flow_control":true,"idle_heartbeat":1000000000,"headers_only":true}"#;
    let mut h = H::with(cfg, opts, &[]);
    h.publish("orders.x");
    assert!(h.deliveries().is_empty(), "no subscriber yet");
    h.c.set_push_active(h.now, true, &mut h.r);
    let d = h.deliveries().remove(0);
    assert_eq!(d.to, "deliver.p");
    assert!(d.payload.is_empty());
    assert_eq!(d.headers, b"NATS/1.0\r\nNats-Msg-Size: 4\r\n\r\n");
    // maxpb starts at limit/16 = 200; past half of it a flow-control request goes out.
    for _ in 0..30 {
        h.publish_with("orders.x", b"", &[0u8; 20]);
    }
    let effects = h.effects();
    let fc = effects
        .iter()
        .find_map(|e| match e {
            Effect::Status { reply: Some(r), headers, .. }
                if headers == b"NATS/1.0 100 FlowControl Request\r\n\r\n" =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("flow control request");
    assert!(fc.starts_with("$JS.FC.ORDERS.p."));
    let sent = effects.iter().filter(|e| matches!(e, Effect::Deliver(_))).count();
    assert!(sent < 30, "stalled on flow control after {sent}");
    h.advance(S);
    let hb = h.statuses();
    assert_eq!(hb.len(), 1);
    assert!(hb[0].1.starts_with("NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: "));
    assert!(hb[0].1.contains(&format!("Nats-Consumer-Stalled: {fc}\r\n")));
    h.c.on_flow_control_reply(h.now, &fc, &mut h.r);
    assert!(!h.deliveries().is_empty(), "the answer resumes delivery");
}

#[test]
fn push_rate_limit_paces_deliveries() {
    let cfg = r#"{"durable_name":"p","ack_policy":"explicit","deliver_subject":"deliver.p","rate_limit_bps":800}"#;
    let mut h = H::new(cfg);
    h.c.set_push_active(h.now, true, &mut h.r);
    h.publish_with("orders.x", b"", &[0u8; 92]); // 100 bytes with the subject: 1 s at 800 bps
    h.publish_with("orders.x", b"", &[0u8; 92]);
    assert_eq!(h.deliveries().len(), 1);
    assert_eq!(h.c.next_deadline(), Some(h.now + S));
    h.advance(S);
    assert_eq!(h.deliveries().len(), 1);
}

#[test]
fn replay_original_keeps_the_gaps() {
    let mut h = H::with(
        r#"{"durable_name":"p","ack_policy":"explicit","deliver_subject":"d","replay_policy":"original"}"#,
        ConsumerOptions::default(),
        &["orders.a", "orders.b", "orders.c"],
    );
    h.c.set_push_active(h.now, true, &mut h.r);
    assert_eq!(h.deliveries().len(), 1);
    h.advance(S / 2);
    assert!(h.deliveries().is_empty());
    h.advance(S / 2);
    assert_eq!(h.deliveries().len(), 1, "stored 1 s apart, delivered 1 s apart");
}

#[test]
fn deliver_policies_pick_the_start() {
    let before = ["orders.a", "orders.b", "orders.a", "orders.c", "orders.b"];
    let start = |cfg: &str| {
        let mut h = H::with(cfg, ConsumerOptions::default(), &before);
        h.pull("_INBOX", "10");
        let seqs: Vec<u64> = h.deliveries().iter().map(|d| d.stream_seq).collect();
        (seqs, h.c.info(h.now).ack_floor.stream_seq)
    };
    assert_eq!(start(r#"{"name":"c","deliver_policy":"all"}"#).0, vec![1, 2, 3, 4, 5]);
    assert_eq!(start(r#"{"name":"c","deliver_policy":"new"}"#), (vec![], 5));
    assert_eq!(start(r#"{"name":"c","deliver_policy":"last","filter_subject":"orders.a"}"#).0, vec![3]);
    assert_eq!(start(r#"{"name":"c","deliver_policy":"by_start_sequence","opt_start_seq":4}"#).0, vec![4, 5]);
    assert_eq!(
        start(r#"{"name":"c","deliver_policy":"by_start_time","opt_start_time":"1970-01-01T00:00:03Z"}"#).0,
        vec![3, 4, 5]
    );
    assert_eq!(
        start(r#"{"name":"c","deliver_policy":"last_per_subject","filter_subjects":["orders.a","orders.b"]}"#).0,
        vec![3, 5]
    );
    let h = H::with(
        r#"{"name":"c","deliver_policy":"last_per_subject","filter_subject":"orders.*"}"#,
        ConsumerOptions::default(),
        &before,
    );
    assert_eq!(h.c.num_pending(), 3);
}

#[test]
fn last_per_subject_survives_removals_inside_its_range() {
    // Last of orders.a is 6, of orders.b is 7; 1..5 are older copies.
    let before = ["orders.a", "orders.b", "orders.a", "orders.b", "orders.a", "orders.a", "orders.b"];
    let mut h = H::with(
        r#"{"name":"c","deliver_policy":"last_per_subject","filter_subject":"orders.*"}"#,
        ConsumerOptions::default(),
        &before,
    );
    assert_eq!(h.c.num_pending(), 2);
    h.r.0.delete(7).unwrap();
    h.c.on_stream_remove(7, "orders.b");
    h.r.0.delete(3).unwrap();
    h.c.on_stream_remove(3, "orders.a");
    assert_eq!(h.c.num_pending(), 1);
    h.publish("orders.b");
    h.pull("_INBOX", "10");
    let seqs: Vec<u64> = h.deliveries().iter().map(|d| d.stream_seq).collect();
    assert_eq!(seqs, vec![6, 8], "older copies below the bound stay skipped");
    assert_eq!(h.c.num_pending(), 0);
}

#[test]
fn num_pending_follows_the_stream_without_rescans() {
    let mut h = H::new(r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.a"}"#);
    let a1 = h.publish("orders.a");
    h.publish("orders.b");
    let a2 = h.publish("orders.a");
    assert_eq!(h.c.num_pending(), 2);
    h.r.0.delete(a1).unwrap();
    h.c.on_stream_remove(a1, "orders.a");
    assert_eq!(h.c.num_pending(), 1);
    h.pull("_INBOX", "5");
    assert_eq!(h.deliveries()[0].stream_seq, a2);
    assert_eq!(h.c.num_pending(), 0);
    // A pending message that leaves the stream stops being pending.
    h.r.0.delete(a2).unwrap();
    h.c.on_stream_remove(a2, "orders.a");
    assert_eq!((h.c.num_ack_pending(), h.c.ack_floor().stream_seq), (0, 3));
}

#[test]
fn state_survives_a_restart() {
    let mut h = H::new(PULL);
    for _ in 0..4 {
        h.publish("orders.x");
    }
    h.pull("_INBOX", "3");
    let ds = h.deliveries();
    h.ack(&ds[1], "");
    let v = h.c.state_version();
    assert!(v > 0);
    let bytes = h.c.state().encode();
    let st = ConsumerState::decode(&bytes).unwrap();
    assert_eq!(st, h.c.state());
    assert!(ConsumerState::decode(&bytes[..bytes.len() - 1]).is_err());
    let cfg = h.c.config().clone();
    let mut c = Consumer::restore("ORDERS", cfg, h.c.created_ns(), &st, h.now, &mut h.r, ConsumerOptions::default());
    assert_eq!(c.pending().map(|(s, _)| s).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!((c.num_pending(), c.delivered().stream_seq, c.ack_floor().stream_seq), (1, 3, 0));
    c.on_pull_request(h.now, "_INBOX", b"5", &mut h.r);
    let seqs: Vec<u64> = c
        .drain_effects()
        .into_iter()
        .filter_map(|e| if let Effect::Deliver(d) = e { Some(d.stream_seq) } else { None })
        .collect();
    assert_eq!(seqs, vec![4]);
    c.tick(h.now + 30 * S, &mut h.r);
    c.on_pull_request(h.now + 30 * S, "_INBOX", b"5", &mut h.r);
    let seqs: Vec<u64> = c
        .drain_effects()
        .into_iter()
        .filter_map(|e| if let Effect::Deliver(d) = e { Some(d.stream_seq) } else { None })
        .collect();
    assert_eq!(seqs, vec![1, 3, 4], "unacked messages come back after ack_wait");
}

#[test]
fn ephemeral_inactivity_and_pause() {
    let mut h = H::new(r#"{"name":"eph","ack_policy":"explicit"}"#);
    assert_eq!(h.c.next_deadline(), Some(h.now + DEFAULT_EPHEMERAL_INACTIVE_NS));
    h.advance(DEFAULT_EPHEMERAL_INACTIVE_NS);
    assert!(h.effects().iter().any(|e| matches!(e, Effect::Inactive)));
    let mut h = H::new(PULL);
    assert_eq!(h.c.next_deadline(), None, "durables never expire by default");
    let until = h.now + 10 * S;
    assert_eq!(h.c.pause(h.now, Some(until), &mut h.r), (true, 10 * S));
    h.publish("orders.x");
    h.pull("_INBOX", r#"{"batch":1,"expires":60000000000}"#);
    assert!(h.deliveries().is_empty(), "paused");
    let info = serde_json::to_value(h.c.info(h.now)).unwrap();
    assert_eq!((info["paused"].clone(), info["pause_remaining"].clone()), (true.into(), (10 * S).into()));
    h.advance(10 * S);
    assert_eq!(h.deliveries().len(), 1);
}

#[test]
fn update_changes_filters_and_recounts() {
    let mut h = H::with(
        r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.a"}"#,
        ConsumerOptions::default(),
        &["orders.a", "orders.b", "orders.b"],
    );
    assert_eq!(h.c.num_pending(), 1);
    let new: ConsumerConfig =
        serde_json::from_str(r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.b"}"#).unwrap();
    let stream = h.stream.clone();
    h.c.update_config(h.now, &stream, new, &mut h.r).unwrap();
    assert_eq!(h.c.num_pending(), 2);
    let bad: ConsumerConfig = serde_json::from_str(r#"{"durable_name":"w","ack_policy":"all"}"#).unwrap();
    assert_eq!(h.c.update_config(h.now, &stream, bad, &mut h.r).unwrap_err().err_code(), 10012);
}

/// Counts the reads a consumer makes, to prove it does not scan the stream.
struct Counting {
    inner: StoreReader<MemStore>,
    loads: u64,
    counts: u64,
}

impl StreamReader for Counting {
    fn load(&mut self, seq: u64) -> Result<Option<crate::store::StoredMsg>, crate::store::StoreError> {
        self.loads += 1;
        self.inner.load(seq)
    }
    fn load_next(
        &mut self,
        filters: &[String],
        from_seq: u64,
    ) -> Result<Option<crate::store::StoredMsg>, crate::store::StoreError> {
        self.loads += 1;
        self.inner.load_next(filters, from_seq)
    }
    fn last_seq_matching(&mut self, filters: &[String]) -> Option<u64> {
        self.inner.last_seq_matching(filters)
    }
    fn last_per_subject(&mut self, filters: &[String]) -> Vec<u64> {
        self.inner.last_per_subject(filters)
    }
    fn seq_for_time(&mut self, ts_ns: i64) -> u64 {
        self.inner.seq_for_time(ts_ns)
    }
    fn first_seq(&self) -> u64 {
        self.inner.first_seq()
    }
    fn last_seq(&self) -> u64 {
        self.inner.last_seq()
    }
    fn num_pending(&mut self, filters: &[String], from_seq: u64) -> u64 {
        self.counts += 1;
        self.inner.num_pending(filters, from_seq)
    }
}

#[test]
fn creating_and_idling_never_scan_the_stream() {
    let mut store = MemStore::new(StoreLimits::default()).unwrap();
    for i in 0..1000 {
        store.append(&format!("orders.{}", i % 50), b"", b"x", i).unwrap();
    }
    let mut r = Counting { inner: StoreReader(store), loads: 0, counts: 0 };
    let cfg: ConsumerConfig =
        serde_json::from_str(r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.7"}"#).unwrap();
    let mut c = Consumer::create(&stream(), cfg, 0, &mut r, ConsumerOptions::default()).unwrap();
    assert_eq!((c.num_pending(), r.loads, r.counts), (20, 0, 1), "one count from the stream, no loads");
    c.on_pull_request(1, "_INBOX", b"100", &mut r);
    assert_eq!(c.drain_effects().len(), 20);
    assert_eq!(r.loads, 20, "one load per delivered message");
    // Caught up: further requests and stream growth on other subjects cost no reads.
    for i in 0..100 {
        c.on_stream_append(1001 + i, "orders.8");
        c.on_pull_request(2, "_INBOX", br#"{"batch":5,"no_wait":true}"#, &mut r);
    }
    assert_eq!((r.loads, r.counts), (20, 1));
}

// ----- proptest: random operations keep the invariants --------------------------------

#[derive(Clone, Debug)]
enum Op {
    Publish(u8),
    Pull { batch: u8, no_wait: bool, expires_s: u8 },
    Ack(u8),
    Nak(u8),
    Term(u8),
    Wpi(u8),
    Tick(u16),
    Release,
    Remove(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0u8..4).prop_map(Op::Publish),
        2 => (1u8..6, any::<bool>(), 0u8..5).prop_map(|(batch, no_wait, expires_s)| Op::Pull { batch, no_wait, expires_s }),
        3 => any::<u8>().prop_map(Op::Ack),
        1 => any::<u8>().prop_map(Op::Nak),
        1 => any::<u8>().prop_map(Op::Term),
        1 => any::<u8>().prop_map(Op::Wpi),
        2 => (0u16..4000).prop_map(Op::Tick),
        2 => Just(Op::Release),
        1 => any::<u8>().prop_map(Op::Remove),
    ]
}

struct Model {
    held: Vec<Delivery>,
    /// Deliveries the client may still ack: (ack subject, stream seq).
    outstanding: Vec<(String, u64)>,
    /// Delivered and not yet done.
    unacked: BTreeSet<u64>,
    done: BTreeMap<u64, DoneReason>,
    removed: BTreeSet<u64>,
    /// Flow-control requests not yet answered.
    fc: Vec<String>,
}

impl Model {
    fn absorb(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Deliver(d) => {
                    assert!(!self.done.contains_key(&d.stream_seq), "delivered {} after it was done", d.stream_seq);
                    self.unacked.insert(d.stream_seq);
                    self.outstanding.push((d.reply.clone(), d.stream_seq));
                    self.held.push(d);
                }
                Effect::Done { seq, reason } => {
                    self.unacked.remove(&seq);
                    self.done.insert(seq, reason);
                }
                Effect::Status { reply: Some(fc), .. } => self.fc.push(fc),
                _ => {}
            }
        }
    }

    fn pick(&self, i: u8) -> Option<String> {
        (!self.outstanding.is_empty()).then(|| self.outstanding[i as usize % self.outstanding.len()].0.clone())
    }
}

const SUBJECTS: [&str; 4] = ["orders.a", "orders.b", "orders.c.x", "other.z"];

fn answer_flow_control(h: &mut H, m: &mut Model) {
    for fc in std::mem::take(&mut m.fc) {
        h.c.on_flow_control_reply(h.now, &fc, &mut h.r);
    }
}

fn run_ops(policy: &str, filter: &str, ops: &[Op]) {
    run_ops_restart(policy, filter, ops, false)
}

fn run_ops_restart(policy: &str, filter: &str, ops: &[Op], restart: bool) {
    let cfg = format!(
        r#"{{"durable_name":"w","ack_policy":"{policy}","max_ack_pending":4,"max_deliver":5,"ack_wait":2000000000{filter}}}"#
    );
    let window = ConsumerOptions { inflight_window: 300, flow_control_limit: 16 * 16, ..Default::default() };
    let mut h = H::with(&cfg, window, &["orders.a", "orders.b"]);
    let mut m = Model {
        held: vec![],
        outstanding: vec![],
        unacked: BTreeSet::new(),
        done: BTreeMap::new(),
        removed: BTreeSet::new(),
        fc: Vec::new(),
    };
    h.c.set_push_active(h.now, true, &mut h.r);
    let mut reply = 0;
    let check = |h: &mut H, m: &mut Model| {
        m.absorb(h.c.drain_effects());
        let filters = h.c.filters().to_vec();
        let next = h.c.delivered().stream_seq + 1;
        assert_eq!(h.c.num_pending(), h.r.num_pending(&filters, next), "incremental num_pending");
        assert_eq!(h.c.num_ack_pending(), h.c.pending().count());
        assert_eq!(h.c.inflight_bytes(), m.held.iter().map(|d| d.charge.bytes()).sum::<u64>(), "inflight charge");
        let pending: BTreeSet<u64> = h.c.pending().map(|(s, _)| s).collect();
        for s in &m.unacked {
            assert!(pending.contains(s) || m.removed.contains(s), "delivered {s} is neither pending nor done");
        }
        let floor = h.c.ack_floor().stream_seq;
        assert!(pending.iter().all(|s| *s > floor), "floor {floor} above a pending message");
    };
    for op in ops {
        match op {
            Op::Publish(i) => {
                let seq = h.r.0.append(SUBJECTS[*i as usize], b"", b"payload", h.now).unwrap();
                h.c.on_stream_append(seq, SUBJECTS[*i as usize]);
                h.c.poll(h.now, &mut h.r);
            }
            Op::Pull { batch, no_wait, expires_s } => {
                reply += 1;
                let body = format!(r#"{{"batch":{batch},"no_wait":{no_wait},"expires":{}}}"#, *expires_s as i64 * S);
                h.pull(&format!("_INBOX.{reply}"), &body);
            }
            Op::Ack(i) | Op::Nak(i) | Op::Term(i) | Op::Wpi(i) => {
                if let Some(subject) = m.pick(*i) {
                    let body: &[u8] = match op {
                        Op::Ack(_) => b"+ACK",
                        Op::Nak(_) => b"-NAK",
                        Op::Term(_) => b"+TERM",
                        _ => b"+WPI",
                    };
                    h.c.on_ack(h.now, &subject, body, None, &mut h.r);
                }
            }
            Op::Tick(ms) => h.advance(*ms as i64 * 1_000_000),
            Op::Release => {
                m.held.clear();
                answer_flow_control(&mut h, &mut m);
                h.c.poll(h.now, &mut h.r);
            }
            Op::Remove(i) => {
                let st = h.r.0.state();
                if st.msgs > 0 {
                    let seq = st.first_seq + (*i as u64 % (st.last_seq - st.first_seq + 1));
                    if let Some(msg) = h.r.0.load(seq).unwrap() {
                        h.r.0.delete(seq).unwrap();
                        m.removed.insert(seq);
                        h.c.on_stream_remove(seq, &msg.subject);
                    }
                }
            }
        }
        check(&mut h, &mut m);
    }
    if restart {
        // Persist, "crash" (every loaded message and flow-control request is lost) and resume.
        m.held.clear();
        m.fc.clear();
        let st = ConsumerState::decode(&h.c.state().encode()).unwrap();
        assert_eq!(st, h.c.state());
        let (cfg, created) = (h.c.config().clone(), h.c.created_ns());
        let opts = ConsumerOptions { inflight_window: 300, flow_control_limit: 16 * 16, ..Default::default() };
        h.c = Consumer::restore("ORDERS", cfg, created, &st, h.now, &mut h.r, opts);
        h.c.set_push_active(h.now, true, &mut h.r);
        check(&mut h, &mut m);
    }
    // At least once: with acks succeeding from here on, every matching stored message is
    // delivered and acked (or was terminated / ran out of deliveries).
    for round in 0..200 {
        m.held.clear();
        answer_flow_control(&mut h, &mut m);
        h.advance(3 * S);
        reply += 1;
        h.pull(&format!("_INBOX.end{reply}"), r#"{"batch":10,"no_wait":true}"#);
        check(&mut h, &mut m);
        let subjects: Vec<String> = m.outstanding.drain(..).map(|(s, _)| s).collect();
        for s in subjects {
            h.c.on_ack(h.now, &s, b"", None, &mut h.r);
            check(&mut h, &mut m);
        }
        if h.c.num_pending() == 0 && h.c.num_ack_pending() == 0 {
            break;
        }
        assert!(round < 199, "consumer did not drain");
    }
    let filters = h.c.filters().to_vec();
    let mut seq = 1;
    while let Some(msg) = h.r.load_next(&filters, seq).unwrap() {
        seq = msg.seq + 1;
        if m.done.contains_key(&msg.seq) {
            continue;
        }
        panic!("stored message {} on {} never delivered and done", msg.seq, msg.subject);
    }
    assert_eq!(h.c.num_ack_pending(), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    #[test]
    fn random_operations_keep_invariants_explicit(ops in proptest::collection::vec(op(), 0..80), restart: bool) {
        run_ops_restart("explicit", "", &ops, restart);
    }

    #[test]
    fn random_operations_keep_invariants_filtered_all(ops in proptest::collection::vec(op(), 0..80)) {
        run_ops("all", r#","filter_subjects":["orders.a","orders.c.>"]"#, &ops);
    }

    #[test]
    fn random_operations_keep_invariants_push_flow_control(ops in proptest::collection::vec(op(), 0..80), restart: bool) {
        run_ops_restart("explicit", r#","deliver_subject":"deliver.w","flow_control":true,"idle_heartbeat":1000000000,"filter_subject":"orders.>""#, &ops, restart);
    }

    #[test]
    fn random_operations_keep_invariants_none(ops in proptest::collection::vec(op(), 0..60)) {
        run_ops("none", r#","filter_subject":"orders.*""#, &ops);
    }
}

mod priority;
