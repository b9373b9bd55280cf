//! Stream API tests: create/info/names/delete, publish with the PubAck after the sync,
//! and nats-server's error codes.

use super::*;

#[test]
fn create_info_names_delete() {
    let mut h = Harness::new();
    let r = h.create_stream(r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.stream_create_response");
    assert_eq!(r["did_create"], true);
    assert_eq!(r["config"]["max_msgs"], -1);
    assert_eq!(r["cluster"]["leader"], "weir");
    // Idempotent re-create: same config answers the info without did_create.
    let again = h.api("$JS.API.STREAM.CREATE.ORDERS", r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    assert!(again.get("error").is_none() && again.get("did_create").is_none(), "{again}");
    let diff = h.api("$JS.API.STREAM.CREATE.ORDERS", r#"{"name":"ORDERS","subjects":["orders.new"]}"#);
    assert_eq!(err_code(&diff), 10058);
    let info = h.api("$JS.API.STREAM.INFO.ORDERS", "");
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.stream_info_response");
    assert_eq!((info["total"].as_u64(), info["offset"].as_u64(), info["limit"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(info["state"]["messages"], 0);
    let names = h.api("$JS.API.STREAM.NAMES", "");
    assert_eq!(names["streams"], serde_json::json!(["ORDERS"]));
    assert_eq!(names["total"], 1);
    let list = h.api("$JS.API.STREAM.LIST", "{}");
    assert_eq!(list["streams"][0]["config"]["name"], "ORDERS");
    let del = h.api("$JS.API.STREAM.DELETE.ORDERS", "{}");
    assert_eq!(del, serde_json::json!({"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}));
    let names = h.api("$JS.API.STREAM.NAMES", "{}");
    assert_eq!(names["streams"], Value::Null);
    assert!(h.disk.paths().iter().all(|p| !p.contains("ORDERS")), "{:?}", h.disk.paths());
    let info = h.api("$JS.API.STREAM.INFO.ORDERS", "");
    assert_eq!(err_code(&info), 10059);
    assert_eq!(info["error"]["description"], "stream not found");
    let j = h.api("$JS.API.INFO", "");
    assert_eq!(j["type"], "io.nats.jetstream.api.v1.account_info_response");
    assert_eq!(j["api"]["level"], API_LEVEL);
    assert!(j["api"]["errors"].as_u64().unwrap() >= 2);
}

#[test]
fn pub_ack_waits_for_the_group_commit() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.*"]}"#);
    assert!(h.js.wants("s.a") && !h.js.wants("t.a") && h.js.wants("$JS.API.INFO"));
    let outs = h.send("s.a", Some("_INBOX.1"), b"", b"one");
    assert!(outs.is_empty(), "no PubAck before the sync: {outs:?}");
    let outs2 = h.send("s.b", Some("_INBOX.2"), b"", b"two");
    assert!(outs2.is_empty());
    assert!(h.js.needs_sync());
    let acks = h.sync();
    assert_eq!(acks.len(), 2);
    assert_eq!((acks[0].to.as_str(), acks[0].payload.as_slice()), ("_INBOX.1", &br#"{"stream":"S","seq":1}"#[..]));
    assert_eq!((acks[1].to.as_str(), acks[1].payload.as_slice()), ("_INBOX.2", &br#"{"stream":"S","seq":2}"#[..]));
    assert!(!h.js.needs_sync());
    // Dedup: the same id answers the first sequence.
    let a = h.publish("s.a", b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n", b"3");
    let b = h.publish("s.a", b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n", b"3");
    assert_eq!((a["seq"].as_u64(), b["seq"].as_u64(), b["duplicate"].as_bool()), (Some(3), Some(3), Some(true)));
    // Errors answer at once with the JSPubAckResponse shape.
    let e = h.send("s.a", Some("_INBOX.e"), b"NATS/1.0\r\nNats-Expected-Last-Sequence: 1\r\n\r\n", b"x");
    assert_eq!(e[0].json()["error"]["err_code"], 10071);
    let info = h.api("$JS.API.STREAM.INFO.S", "{}");
    assert_eq!(info["state"]["messages"], 3);
}

#[test]
fn memory_streams_and_the_ack_before_store_bug_answer_at_once() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"M","subjects":["m"],"storage":"memory"}"#);
    let outs = h.send("m", Some("_INBOX.1"), b"", b"x");
    assert_eq!(outs[0].payload, br#"{"stream":"M","seq":1}"#);

    let mut cfg = JsConfig { store_dir: "d".into(), ..JsConfig::default() };
    cfg.bugs.ack_before_store = true;
    let mut h = Harness::with(cfg);
    h.create_stream(r#"{"name":"F","subjects":["f"]}"#);
    let outs = h.send("f", Some("_INBOX.1"), b"", b"x");
    assert_eq!(outs.len(), 1, "the bug acks before the sync");
    // ...and a crash before the sync loses the acknowledged message.
    h.restart(true);
    assert_eq!(h.api("$JS.API.STREAM.INFO.F", "")["state"]["messages"], 0);
}

#[test]
fn failed_sync_answers_errors_never_acks() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s"]}"#);
    h.publish("s", b"", b"kept");
    assert!(h.send("s", Some("_INBOX.1"), b"", b"lost").is_empty());
    h.disk.fail_sync.store(true, Ordering::Relaxed);
    let mut out = Vec::new();
    assert!(h.js.sync(h.now, &mut out).is_err());
    let outs = flatten(out);
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].json()["error"]["err_code"], 10077, "{:?}", outs[0].json());
    h.disk.fail_sync.store(false, Ordering::Relaxed);
    // The stream was reopened from what the disk holds.
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
}

#[test]
fn api_errors_as_nats_server() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a.>"]}"#);
    let cases = [
        ("$JS.API.STREAM.CREATE.B", "{", 10025),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"C","subjects":["b"]}"#, 10056),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["a.x"]}"#, 10065),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["b"],"num_replicas":3}"#, 10074),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["b..c"]}"#, 10052),
        ("$JS.API.STREAM.UPDATE.X", r#"{"name":"X"}"#, 10059),
        ("$JS.API.STREAM.PURGE.X", "", 10059),
        ("$JS.API.STREAM.MSG.GET.A", r#"{"seq":5}"#, 10037),
        ("$JS.API.STREAM.MSG.DELETE.A", r#"{"seq":5}"#, 10043),
        ("$JS.API.CONSUMER.INFO.A.nope", "", 10014),
        ("$JS.API.CONSUMER.INFO.X.nope", "", 10059),
        ("$JS.API.STREAM.INFO.A", "[1]", 10025),
    ];
    for (subject, body, code) in cases {
        let r = h.api(subject, body);
        assert_eq!(err_code(&r), code, "{subject} {body}: {r}");
    }
    let r3 = h.api("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["b"],"num_replicas":3}"#);
    assert_eq!(r3["error"]["description"], "replicas > 1 not supported in non-clustered mode");
    // An API subject nats-server does not serve gets no responders.
    let outs = h.send("$JS.API.STREAM.INFO", Some("_INBOX.x"), b"", b"");
    assert_eq!(outs[0].status(), Some(503));
}

#[test]
fn api_queue_overflow_is_answered_and_counted() {
    let mut h = Harness::with(JsConfig { store_dir: "d".into(), max_api_pending: 2, ..JsConfig::default() });
    let mut out = Vec::new();
    for i in 0..3 {
        let m = msg("$JS.API.INFO", Some(&format!("_INBOX.{i}")), b"", b"");
        h.js.queue_api(&m, &mut out);
    }
    let refused = flatten(std::mem::take(&mut out));
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].to.as_str(), err_code(&refused[0].json())), ("_INBOX.2", 10023));
    h.js.poll(h.now, &mut out);
    assert_eq!(flatten(out).len(), 2);
    let j = h.js.jsz();
    assert_eq!((j.api.total, j.api.errors, j.api.overflow), (3, 1, 1));
}
