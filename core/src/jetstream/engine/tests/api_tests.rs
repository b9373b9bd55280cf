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
    assert!(r.get("cluster").is_none(), "nats-server's create reply has no cluster: {r}");
    assert_eq!(
        (r["state"]["first_seq"].as_u64(), r["state"]["first_ts"].as_str()),
        (Some(0), Some("0001-01-01T00:00:00Z"))
    );
    // Idempotent re-create: same config answers the info without did_create.
    let again = h.api("$JS.API.STREAM.CREATE.ORDERS", r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    assert!(again.get("error").is_none() && again.get("did_create").is_none(), "{again}");
    let diff = h.api("$JS.API.STREAM.CREATE.ORDERS", r#"{"name":"ORDERS","subjects":["orders.new"]}"#);
    assert_eq!(err_code(&diff), 10058);
    let info = h.api("$JS.API.STREAM.INFO.ORDERS", "");
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.stream_info_response");
    assert_eq!((info["total"].as_u64(), info["offset"].as_u64(), info["limit"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(info["state"]["messages"], 0);
    assert_eq!(info["cluster"]["leader"], "weir");
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
fn a_commit_in_flight_acks_only_what_it_covers() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s"]}"#);
    h.api(
        "$JS.API.CONSUMER.CREATE.S.c",
        r#"{"stream_name":"S","config":{"durable_name":"c","ack_policy":"explicit"}}"#,
    );
    assert!(h.send("s", Some("_INBOX.a"), b"", b"1").is_empty());
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    assert!(h.js.begin_sync(h.now, &mut out).unwrap().is_none(), "one commit at a time");
    // A publish while the fsyncs run (the shell has released the lock) waits for the next commit.
    assert!(h.send("s", Some("_INBOX.b"), b"", b"2").is_empty());
    let done = job.run(&*h.disk);
    h.js.end_sync(h.now, done, &mut out).unwrap();
    let acked: Vec<String> = flatten(out).into_iter().map(|o| o.to).collect();
    assert_eq!(acked, ["_INBOX.a"]);
    let info = h.api("$JS.API.CONSUMER.INFO.S.c", "");
    assert_eq!(info["num_pending"], 1, "only the committed message is shown: {info}");
    // An inline sync ends a commit in flight itself; its late end is ignored.
    assert!(h.send("s", Some("_INBOX.c"), b"", b"3").is_empty());
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    assert!(h.send("s", Some("_INBOX.d"), b"", b"4").is_empty());
    let acked: Vec<String> = h.sync().into_iter().map(|o| o.to).collect();
    assert_eq!(acked, ["_INBOX.c", "_INBOX.d"]);
    let late = job.run(&*h.disk);
    h.js.end_sync(h.now, late, &mut out).unwrap();
    assert!(out.is_empty() && !h.js.needs_sync());
    h.restart(true);
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 4);
}

#[test]
fn an_unsynced_publish_in_a_commit_in_flight_is_lost_by_a_crash_unacknowledged() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s"]}"#);
    assert!(h.send("s", Some("_INBOX.a"), b"", b"1").is_empty());
    let mut out = Vec::new();
    let _job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    assert!(out.is_empty());
    h.restart(true);
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 0);
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
    // The reopen's own sync failed as well; it is retried once the disk works.
    h.advance(crate::jetstream::engine::REOPEN_RETRY_NS);
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

#[test]
fn a_full_pending_account_runs_the_group_commit_inline() {
    use crate::mem::names::*;
    let limits: Vec<(&'static str, u64)> = ACCOUNTS
        .iter()
        .map(|a| (*a, if *a == STREAM_PENDING { 3 * (PENDING_ENTRY_COST as u64 + 20) } else { 64 << 20 }))
        .collect();
    let ledger = Arc::new(Ledger::new(&limits));
    let pending = ledger.account(STREAM_PENDING);
    let mut h = Harness::with_ledger(JsConfig { store_dir: "d".into(), ..JsConfig::default() }, ledger);
    h.create_stream(r#"{"name":"S","subjects":["s"]}"#);
    let mut acked = 0;
    for i in 0..10 {
        acked += h.send("s", Some(&format!("_INBOX.{i}")), b"", b"x").len();
        assert!(pending.current() <= pending.limit(), "stream.pending over its limit");
    }
    assert!(acked >= 6, "the full account forced group commits inline ({acked} acks before the sync)");
    acked += h.sync().len();
    assert_eq!(acked, 10);
    assert_eq!(pending.current(), 0, "stream.pending drains at the sync");
}

/// The exchange in `../shared/reference/trace-js-async-nats.txt` (async-nats 0.51 against
/// nats-server 2.15.1): the same requests get replies with the same fields and values,
/// apart from times, the server name and nats-server's `_nats.*` metadata.
#[test]
fn async_nats_trace_replies_match() {
    let mut h = Harness::new();
    let del = h.api("$JS.API.STREAM.DELETE.BENCH_RS", "{}");
    assert_eq!(
        del.to_string(),
        r#"{"error":{"code":404,"description":"stream not found","err_code":10059},"type":"io.nats.jetstream.api.v1.stream_delete_response"}"#
    );
    let created = h.api(
        "$JS.API.STREAM.CREATE.BENCH_RS",
        r#"{"name":"BENCH_RS","max_bytes":0,"max_msgs":0,"max_msgs_per_subject":0,"discard":"old","subjects":["bench.js.w3.>"],"retention":"limits","max_consumers":0,"max_age":0,"storage":"file","num_replicas":0,"consumer_limits":null}"#,
    );
    let want: Value = serde_json::from_str(r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"BENCH_RS","subjects":["bench.js.w3.>"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false},"created":"X","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"X","did_create":true}"#).unwrap();
    let mut got = created.clone();
    got["created"] = "X".into();
    got["ts"] = "X".into();
    assert_eq!(got, want);
    for i in 0..3 {
        let a = h.publish(&format!("bench.js.w3.{i}"), b"", b"xxxxxxxx");
        assert_eq!(a.to_string(), format!(r#"{{"seq":{},"stream":"BENCH_RS"}}"#, i + 1));
    }
    let info = h.api("$JS.API.STREAM.INFO.BENCH_RS", "null");
    assert_eq!(info["state"]["num_subjects"], 3);
    assert_eq!((info["total"].as_u64(), info["state"]["first_seq"].as_u64()), (Some(0), Some(1)));
    let c = h.api(
        "$JS.API.CONSUMER.CREATE.BENCH_RS.bench_rs",
        r#"{"action":"","config":{"ack_policy":"explicit","deliver_policy":"all","durable_name":"bench_rs","max_ack_pending":-1,"replay_policy":"instant"},"stream_name":"BENCH_RS"}"#,
    );
    let want: Value = serde_json::from_str(r#"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"BENCH_RS","name":"bench_rs","created":"X","config":{"durable_name":"bench_rs","name":"bench_rs","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":-1,"num_replicas":0},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":3,"ts":"X"}"#).unwrap();
    let mut got = c.clone();
    got["created"] = "X".into();
    got["ts"] = "X".into();
    assert_eq!(got, want);
    let mut outs = h.send(
        "$JS.API.CONSUMER.MSG.NEXT.BENCH_RS.bench_rs",
        Some("_INBOX.n"),
        b"",
        br#"{"batch":10,"expires":5000000000,"max_bytes":0,"min_pending":null,"min_ack_pending":null,"group":null,"priority":null}"#,
    );
    outs.extend(h.sync());
    let replies: Vec<String> = outs.iter().filter(|o| o.to == "_INBOX.n").map(|o| o.reply.clone().unwrap()).collect();
    assert_eq!(replies.len(), 3);
    for (i, r) in replies.iter().enumerate() {
        let t: Vec<&str> = r.split('.').collect();
        assert_eq!(t.len(), 9, "{r}");
        assert_eq!(
            (t[2], t[3], t[4], t[5], t[6], t[8]),
            ("BENCH_RS", "bench_rs", "1", &*(i + 1).to_string(), &*(i + 1).to_string(), &*(2 - i).to_string())
        );
        h.send(r, None, b"", b"");
    }
    h.sync();
    let info = h.api("$JS.API.CONSUMER.INFO.BENCH_RS.bench_rs", "{}");
    assert_eq!((info["ack_floor"]["stream_seq"].as_u64(), info["num_waiting"].as_u64()), (Some(3), Some(1)));
    let d = h.api("$JS.API.CONSUMER.DELETE.BENCH_RS.bench_rs", "{}");
    assert_eq!(d.to_string(), r#"{"success":true,"type":"io.nats.jetstream.api.v1.consumer_delete_response"}"#);
}

#[test]
fn null_fields_read_as_zero_values() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s"],"allow_direct":true}"#);
    h.publish("s", b"", b"x");
    let r = h.api("$JS.API.STREAM.MSG.GET.S", r#"{"seq":1,"last_by_subj":null,"next_by_subj":null}"#);
    assert_eq!(r["message"]["seq"], 1, "{r}");
    let r = h.api("$JS.API.STREAM.PURGE.S", r#"{"filter":null,"keep":null}"#);
    assert_eq!(r["purged"], 1, "{r}");
}

#[test]
fn update_purge_get_delete() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.*"],"allow_direct":true}"#);
    for i in 0..6 {
        h.publish(&format!("s.{}", i % 2), b"", format!("m{i}").as_bytes());
    }
    // Update: a lower max_msgs evicts at once; changing storage is refused.
    let u = h.api("$JS.API.STREAM.UPDATE.S", r#"{"name":"S","subjects":["s.*","t"],"allow_direct":true,"max_msgs":5}"#);
    assert_eq!(u["type"], "io.nats.jetstream.api.v1.stream_update_response");
    assert_eq!((u["config"]["max_msgs"].as_i64(), u["state"]["messages"].as_u64()), (Some(5), Some(5)), "{u}");
    assert!(h.js.wants("t"));
    let bad = h.api("$JS.API.STREAM.UPDATE.S", r#"{"name":"S","subjects":["s.*"],"storage":"memory"}"#);
    assert_eq!(err_code(&bad), 10052);
    // Get by sequence, last by subject, next by subject.
    let g = h.api("$JS.API.STREAM.MSG.GET.S", r#"{"seq":2}"#);
    assert_eq!(g["type"], "io.nats.jetstream.api.v1.stream_msg_get_response");
    assert_eq!((g["message"]["subject"].as_str(), g["message"]["data"].as_str()), (Some("s.1"), Some("bTE=")));
    let g = h.api("$JS.API.STREAM.MSG.GET.S", r#"{"last_by_subj":"s.0"}"#);
    assert_eq!(g["message"]["seq"], 5);
    let g = h.api("$JS.API.STREAM.MSG.GET.S", r#"{"next_by_subj":"s.1","seq":3}"#);
    assert_eq!(g["message"]["seq"], 4);
    // Direct get, JSON form by sequence.
    let mut outs = h.send("$JS.API.DIRECT.GET.S", Some("_INBOX.d"), b"", br#"{"seq":3}"#);
    outs.extend(h.sync());
    assert_eq!(outs[0].payload, b"m2");
    // Delete, then info with deleted details and per-subject counts.
    let d = h.api("$JS.API.STREAM.MSG.DELETE.S", r#"{"seq":3}"#);
    assert_eq!(d["success"], true);
    let i = h.api("$JS.API.STREAM.INFO.S", r#"{"deleted_details":true,"subjects_filter":"s.*"}"#);
    assert_eq!(i["state"]["deleted"], serde_json::json!([3]));
    // s.0 held 1, 3, 5 (1 evicted, 3 deleted); s.1 holds 2, 4, 6.
    assert_eq!(i["state"]["subjects"], serde_json::json!({"s.0": 1, "s.1": 3}));
    assert_eq!(i["total"], 2);
    // Purge keeping one per subject filter, then everything.
    let p = h.api("$JS.API.STREAM.PURGE.S", r#"{"filter":"s.1","keep":1}"#);
    assert_eq!((p["success"].as_bool(), p["purged"].as_u64()), (Some(true), Some(2)));
    let p = h.api("$JS.API.STREAM.PURGE.S", "");
    assert_eq!(p["purged"], 2);
    let i = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!((i["state"]["messages"].as_u64(), i["state"]["first_seq"].as_u64()), (Some(0), Some(7)));
}

#[test]
fn names_and_list_filter_by_subject() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a.>"]}"#);
    h.create_stream(r#"{"name":"B","subjects":["b.*"]}"#);
    let n = h.api("$JS.API.STREAM.NAMES", r#"{"subject":"b.x"}"#);
    assert_eq!(n["streams"], serde_json::json!(["B"]));
    let n = h.api("$JS.API.STREAM.NAMES", r#"{"subject":null}"#);
    assert_eq!(n["streams"], serde_json::json!(["A", "B"]), "a null subject is no filter");
    let l = h.api("$JS.API.STREAM.LIST", r#"{"subject":"a.q.r"}"#);
    assert_eq!((l["total"].as_u64(), l["streams"][0]["config"]["name"].as_str()), (Some(1), Some("A")));
    assert_eq!(l["streams"].as_array().unwrap().len(), 1);
}
