//! Restart tests over the in-memory disk: streams, messages, consumers and their ack
//! state survive a restart; unsynced publishes (never acknowledged) are lost by a crash;
//! a corrupt stream is reported and the others open; KV-style use.

use super::*;

const SEC: i64 = 1_000_000_000;

fn ack_replies(outs: &[Out], to: &str) -> Vec<String> {
    outs.iter().filter(|o| o.to == to).filter_map(|o| o.reply.clone()).filter(|r| r.starts_with("$JS.ACK.")).collect()
}

fn fetch(h: &mut Harness, inbox: &str, batch: u32) -> Vec<String> {
    let body = format!(r#"{{"batch":{batch},"expires":1000000000}}"#);
    let mut outs = h.send("$JS.API.CONSUMER.MSG.NEXT.S.c", Some(inbox), b"", body.as_bytes());
    outs.extend(h.sync());
    ack_replies(&outs, inbox)
}

#[test]
fn streams_messages_consumers_and_ack_state_survive_restart() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.>"],"duplicate_window":60000000000}"#);
    h.create_stream(r#"{"name":"M","subjects":["m"],"storage":"memory"}"#);
    h.api(
        "$JS.API.CONSUMER.CREATE.S.c",
        r#"{"stream_name":"S","config":{"durable_name":"c","ack_policy":"explicit","ack_wait":5000000000}}"#,
    );
    for i in 1..=5 {
        h.publish(&format!("s.{i}"), format!("NATS/1.0\r\nNats-Msg-Id: id{i}\r\n\r\n").as_bytes(), b"x");
    }
    h.publish("m", b"", b"gone after restart");
    let got = fetch(&mut h, "_INBOX.1", 3);
    assert_eq!(got.len(), 3);
    for r in &got[..2] {
        h.send(r, None, b"", b"+ACK");
    }
    h.sync();
    // An unsynced publish is never acknowledged and does not survive a crash.
    assert!(h.send("s.6", Some("_INBOX.x"), b"", b"unsynced").is_empty());
    h.restart(true);
    assert!(h.notes.is_empty(), "{:?}", h.notes);
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!((info["state"]["messages"].as_u64(), info["state"]["last_seq"].as_u64()), (Some(5), Some(5)));
    let m = h.api("$JS.API.STREAM.INFO.M", "");
    assert_eq!(m["state"]["messages"], 0, "memory streams come back empty");
    let c = h.api("$JS.API.CONSUMER.INFO.S.c", "");
    assert_eq!(c["ack_floor"]["stream_seq"], 2, "{c}");
    assert_eq!(c["delivered"]["stream_seq"], 3);
    assert_eq!((c["num_ack_pending"].as_u64(), c["num_pending"].as_u64()), (Some(1), Some(2)));
    // The dedup window survived: a retried id answers its first sequence.
    let dup = h.publish("s.1", b"NATS/1.0\r\nNats-Msg-Id: id1\r\n\r\n", b"x");
    assert_eq!((dup["seq"].as_u64(), dup["duplicate"].as_bool()), (Some(1), Some(true)));
    // Seq 3 is redelivered after its ack wait, then 4 and 5 follow.
    h.advance(6 * SEC);
    let got = fetch(&mut h, "_INBOX.2", 3);
    assert!(got[0].starts_with("$JS.ACK.S.c.2.3."), "{got:?}");
    assert_eq!(got.len(), 3);
}

#[test]
fn corrupt_stream_is_reported_and_the_rest_opens() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"GOOD","subjects":["g"]}"#);
    h.create_stream(r#"{"name":"BAD","subjects":["b"]}"#);
    h.api("$JS.API.CONSUMER.CREATE.GOOD.c", r#"{"stream_name":"GOOD","config":{"durable_name":"c"}}"#);
    h.publish("g", b"", b"x");
    let meta = layout::stream_meta("data", "BAD");
    let mut bytes = h.disk.read(&meta).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    h.disk.put(&meta, &bytes);
    let cstate = layout::consumer_meta("data", "GOOD", "c");
    h.disk.put(&cstate, b"garbage");
    h.restart(false);
    assert_eq!(h.notes.len(), 2, "{:?}", h.notes);
    assert!(h.notes.iter().any(|n| n.stream == "BAD" && n.text.contains("checksum mismatch")), "{:?}", h.notes);
    assert!(h.notes.iter().any(|n| n.consumer.as_deref() == Some("c")), "{:?}", h.notes);
    assert_eq!(h.api("$JS.API.STREAM.INFO.GOOD", "")["state"]["messages"], 1);
    let names = h.api("$JS.API.STREAM.NAMES", "");
    assert_eq!(names["streams"], serde_json::json!(["BAD", "GOOD"]));
    let list = h.api("$JS.API.STREAM.LIST", "");
    assert!(list["offline"]["BAD"].as_str().unwrap().contains("corrupt"), "{list}");
    assert!(h.js.jsz().failed_streams.contains_key("BAD"));
    assert_eq!(err_code(&h.api("$JS.API.STREAM.CREATE.BAD", r#"{"name":"BAD","subjects":["b"]}"#)), 10051);
    // Damage reads the same every time: the open is not tried again.
    h.notes.clear();
    h.advance(60 * SEC);
    assert!(h.js.failed_streams().contains_key("BAD"));
    assert!(h.js.take_notes().is_empty(), "a damaged stream was opened again");
    // The operator can delete it, then create it afresh.
    assert_eq!(h.api("$JS.API.STREAM.DELETE.BAD", "")["success"], true);
    h.create_stream(r#"{"name":"BAD","subjects":["b"]}"#);
}

#[test]
fn kv_bucket_put_get_delete_history_and_watch() {
    let mut h = Harness::new();
    // What async-nats' create_key_value sends (history 3).
    h.create_stream(
        r#"{"name":"KV_b","subjects":["$KV.b.>"],"max_msgs_per_subject":3,"discard":"new","allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"max_age":0,"max_bytes":-1,"max_msgs":-1,"num_replicas":1,"duplicate_window":120000000000}"#,
    );
    for v in ["1", "2", "3", "4"] {
        h.publish("$KV.b.k", b"", v.as_bytes());
    }
    let get = |h: &mut Harness, key: &str| {
        let mut outs = h.send(&format!("$JS.API.DIRECT.GET.KV_b.$KV.b.{key}"), Some("_INBOX.g"), b"", b"");
        outs.extend(h.sync());
        outs.into_iter().find(|o| o.to == "_INBOX.g").expect("direct get reply")
    };
    let r = get(&mut h, "k");
    assert_eq!(r.payload, b"4");
    let hdrs = String::from_utf8_lossy(&r.headers).to_string();
    assert!(hdrs.contains("Nats-Sequence: 4") && hdrs.contains("Nats-Subject: $KV.b.k"), "{hdrs}");
    assert_eq!(get(&mut h, "missing").status(), Some(404));
    // History keeps 3 per key.
    let info = h.api("$JS.API.STREAM.INFO.KV_b", r#"{"subjects_filter":"$KV.b.>"}"#);
    assert_eq!(info["state"]["subjects"]["$KV.b.k"], 3);
    // Delete (a marker) and purge (a roll-up marker).
    h.publish("$KV.b.k", b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n", b"");
    assert!(String::from_utf8_lossy(&get(&mut h, "k").headers).contains("KV-Operation: DEL"));
    let p = h.publish("$KV.b.k", b"NATS/1.0\r\nKV-Operation: PURGE\r\nNats-Rollup: sub\r\n\r\n", b"");
    assert!(p.get("error").is_none(), "{p}");
    let info = h.api("$JS.API.STREAM.INFO.KV_b", r#"{"subjects_filter":"$KV.b.>"}"#);
    assert_eq!(info["state"]["subjects"]["$KV.b.k"], 1);
    // JSON direct get of the last message by subject (nats-py without the subject form).
    let mut outs = h.send("$JS.API.DIRECT.GET.KV_b", Some("_INBOX.j"), b"", br#"{"last_by_subj":"$KV.b.k"}"#);
    outs.extend(h.sync());
    assert!(String::from_utf8_lossy(&outs[0].headers).contains("KV-Operation: PURGE"));
    // A watcher: an ordered push consumer, last per subject.
    h.publish("$KV.b.other", b"", b"o");
    let body = r#"{"stream_name":"KV_b","config":{"deliver_policy":"last_per_subject","ack_policy":"none","deliver_subject":"_INBOX.w","filter_subject":"$KV.b.>","flow_control":true,"idle_heartbeat":5000000000,"mem_storage":true,"num_replicas":1,"headers_only":false}}"#;
    h.api("$JS.API.CONSUMER.CREATE.KV_b", body);
    let mut out = Vec::new();
    h.js.on_interest(h.now, "_INBOX.w", true, &mut out);
    let outs = flatten(out);
    let subjects: Vec<&str> =
        outs.iter().filter(|o| o.to == "_INBOX.w" && o.reply.is_some()).map(|o| o.subject.as_str()).collect();
    assert_eq!(subjects, vec!["$KV.b.k", "$KV.b.other"]);
    // The bucket and its watcher's config come back after a restart.
    h.restart(false);
    assert_eq!(get(&mut h, "other").payload, b"o");
}

#[test]
fn object_store_put_get_list_delete() {
    let mut h = Harness::new();
    // What async-nats' create_object_store sends.
    h.create_stream(
        r#"{"name":"OBJ_b","subjects":["$O.b.C.>","$O.b.M.>"],"max_age":0,"max_bytes":-1,"storage":"file","num_replicas":1,"discard":"new","allow_rollup_hdrs":true,"allow_direct":true}"#,
    );
    // put: chunks, then the meta message rolled up on its subject.
    for chunk in ["aa", "bb", "c"] {
        let a = h.publish("$O.b.C.NUID1", b"", chunk.as_bytes());
        assert!(a.get("error").is_none(), "{a}");
    }
    let meta = br#"{"name":"f","bucket":"b","nuid":"NUID1","size":5,"chunks":3}"#;
    let a = h.publish("$O.b.M.Zg==", b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n", meta);
    assert!(a.get("error").is_none(), "{a}");
    // get: the meta by direct get, then the chunks through an ordered consumer.
    let mut outs = h.send("$JS.API.DIRECT.GET.OBJ_b.$O.b.M.Zg==", Some("_INBOX.m"), b"", b"");
    outs.extend(h.sync());
    assert_eq!(outs[0].payload, meta);
    let body = r#"{"stream_name":"OBJ_b","config":{"name":"ord1","deliver_policy":"all","ack_policy":"none","max_deliver":1,"filter_subject":"$O.b.C.NUID1","deliver_subject":"_INBOX.o","flow_control":true,"idle_heartbeat":5000000000,"mem_storage":true,"num_replicas":1}}"#;
    h.api("$JS.API.CONSUMER.CREATE.OBJ_b.ord1.$O.b.C.NUID1", body);
    let mut out = Vec::new();
    h.js.on_interest(h.now, "_INBOX.o", true, &mut out);
    let data: Vec<u8> =
        flatten(out).into_iter().filter(|o| o.to == "_INBOX.o" && o.reply.is_some()).flat_map(|o| o.payload).collect();
    assert_eq!(data, b"aabbc");
    // list: last meta per subject.
    let body = r#"{"stream_name":"OBJ_b","config":{"name":"ls","deliver_policy":"last_per_subject","ack_policy":"none","filter_subject":"$O.b.M.>","deliver_subject":"_INBOX.l","mem_storage":true}}"#;
    h.api("$JS.API.CONSUMER.CREATE.OBJ_b.ls.$O.b.M.>", body);
    let mut out = Vec::new();
    h.js.on_interest(h.now, "_INBOX.l", true, &mut out);
    assert_eq!(flatten(out).iter().filter(|o| o.to == "_INBOX.l" && o.reply.is_some()).count(), 1);
    // delete: a deleted meta rolled up, then the chunks purged.
    h.publish("$O.b.M.Zg==", b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n", br#"{"name":"f","deleted":true}"#);
    let p = h.api("$JS.API.STREAM.PURGE.OBJ_b", r#"{"filter":"$O.b.C.NUID1"}"#);
    assert_eq!(p["purged"], 3);
    let i = h.api("$JS.API.STREAM.INFO.OBJ_b", "");
    assert_eq!(i["state"]["messages"], 1);
}

#[test]
fn stream_info_counts_appended_messages_before_their_sync() {
    // As nats-server, STREAM.INFO counts a message from its append, not from its PubAck:
    // here the append waits for the group commit's fsync, and INFO in between counts it
    // (consumers do not see it yet). A crash before the fsync loses it, and the count.
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.>"]}"#);
    h.publish("s.1", b"", b"one");
    let outs = h.send("s.2", Some("_INBOX.pub"), b"", b"two");
    assert!(outs.iter().all(|o| o.to != "_INBOX.pub"), "PubAck before the sync: {outs:?}");
    let outs = h.send("$JS.API.STREAM.INFO.S", Some("_INBOX.info"), b"", b"");
    let info = outs.iter().find(|o| o.to == "_INBOX.info").expect("INFO answered without a sync").json();
    assert_eq!(info["state"]["messages"], 2, "{info}");
    assert_eq!(info["state"]["last_seq"], 2, "{info}");
    h.restart(true);
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "the unsynced message is lost in the crash: {info}");
}

/// A stream `S` with a durable pull consumer `c` that acked seq 1 of 3 (synced).
fn stream_with_acked_consumer() -> Harness {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.>"],"duplicate_window":60000000000}"#);
    h.api(
        "$JS.API.CONSUMER.CREATE.S.c",
        r#"{"stream_name":"S","config":{"durable_name":"c","ack_policy":"explicit","ack_wait":5000000000}}"#,
    );
    for i in 1..=3 {
        h.publish(&format!("s.{i}"), b"", b"x");
    }
    let got = fetch(&mut h, "_INBOX.1", 2);
    h.send(&got[0], None, b"", b"+ACK");
    h.sync();
    h
}

/// `S` is in service with its 3 messages and `c` with its ack floor 1.
fn assert_recovered(h: &mut Harness) {
    assert!(!h.js.failed_streams().contains_key("S"), "{:?}", h.js.failed_streams());
    let info = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 3, "{info}");
    let c = h.api("$JS.API.CONSUMER.INFO.S.c", "");
    assert_eq!(c["ack_floor"]["stream_seq"], 1, "the consumer or its acks were lost: {c}");
}

/// A disk read that fails at start (EIO) may be transient: the stream is out of
/// service, then opened again, instead of staying out until the next restart
/// (`js-single-crashes` seed 0 with every fault point on: `disk.read.fail` while
/// the store of S1 opened kept S1 missing through the liveness phase).
#[test]
fn a_stream_whose_store_read_failed_at_start_is_opened_again() {
    let mut h = stream_with_acked_consumer();
    h.disk.fail_next_read(&layout::msgs_dir("data", "S"));
    h.restart(false);
    assert!(h.notes.iter().any(|n| n.stream == "S" && n.text.contains("os error 5")), "{:?}", h.notes);
    assert!(h.js.failed_streams().contains_key("S"));
    let offline = h.api("$JS.API.STREAM.LIST", "");
    assert!(offline["offline"]["S"].is_string(), "{offline}");
    assert!(h.js.next_deadline().is_some(), "no retry scheduled");
    h.advance(REOPEN_RETRY_NS);
    assert_recovered(&mut h);
}

/// A consumer whose files the disk failed to read is not dropped (nor its ack state
/// reset): the stream's open is retried.
#[test]
fn a_consumer_read_failure_at_start_retries_the_stream_instead_of_dropping_the_consumer() {
    for path in [layout::consumer_meta("data", "S", "c"), layout::consumer_state("data", "S", "c")] {
        let mut h = stream_with_acked_consumer();
        h.disk.fail_next_read(&path);
        h.restart(false);
        assert!(h.js.failed_streams().contains_key("S"), "{path}: {:?}", h.notes);
        h.advance(REOPEN_RETRY_NS);
        assert_recovered(&mut h);
    }
}

/// A failed listing of the streams directory is tried again, and no stream is
/// created meanwhile (a create of an unlisted stream's name would clear its files).
#[test]
fn a_failed_listing_of_the_streams_is_tried_again() {
    let mut h = stream_with_acked_consumer();
    h.disk.fail_next_read(&layout::streams_dir("data"));
    h.restart(false);
    assert!(h.notes.iter().any(|n| n.text.contains("cannot list")), "{:?}", h.notes);
    let r = h.api("$JS.API.STREAM.CREATE.S", r#"{"name":"S","subjects":["s.>"]}"#);
    assert_eq!(err_code(&r), 10077, "{r}");
    h.advance(REOPEN_RETRY_NS);
    assert_recovered(&mut h);
    h.create_stream(r#"{"name":"T","subjects":["t"]}"#);
}

/// Attempts that keep failing are spaced out: 0.5 s, 1 s, 2 s, ... up to 32 s.
#[test]
fn reopen_attempts_back_off() {
    let mut h = stream_with_acked_consumer();
    h.disk.fail_next_read(&layout::msgs_dir("data", "S"));
    h.restart(false);
    for pause in [REOPEN_RETRY_NS, 2 * REOPEN_RETRY_NS] {
        assert_eq!(h.js.next_deadline(), Some(h.now + pause));
        h.disk.fail_next_read(&layout::msgs_dir("data", "S"));
        h.advance(pause);
        assert!(h.js.failed_streams().contains_key("S"));
    }
    assert_eq!(h.js.next_deadline(), Some(h.now + 4 * REOPEN_RETRY_NS));
    assert_eq!(reopen_backoff(40), REOPEN_RETRY_MAX_NS);
    h.advance(4 * REOPEN_RETRY_NS);
    assert_recovered(&mut h);
}
