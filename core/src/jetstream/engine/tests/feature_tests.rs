//! Stream-side feature tests: mirrors and sources (positions, headers, restart, info),
//! subject transforms, republish, subject delete markers, stream updates below a
//! consumer's limits, and the account API counter.

use super::*;

const SEC: i64 = 1_000_000_000;

/// Sync until nothing waits (sourced copies need their own group commit).
fn settle(h: &mut Harness) -> Vec<Out> {
    let mut outs = Vec::new();
    for _ in 0..10 {
        if !h.js.needs_sync() {
            break;
        }
        outs.extend(h.sync());
    }
    outs
}

/// `(seq, subject, payload, headers)` of stream `s`'s message at `seq`, if any.
fn get(h: &mut Harness, s: &str, seq: u64) -> Option<(u64, String, String, String)> {
    let r = h.api(&format!("$JS.API.STREAM.MSG.GET.{s}"), &format!(r#"{{"seq":{seq}}}"#));
    let m = r.get("message")?;
    let b64 = |v: &Value| {
        v.as_str()
            .map(|s| String::from_utf8(crate::jetstream::base64::decode_base64(s).unwrap()).unwrap())
            .unwrap_or_default()
    };
    Some((m["seq"].as_u64()?, m["subject"].as_str()?.to_string(), b64(&m["data"]), b64(&m["hdrs"])))
}

#[test]
fn mirror_keeps_sequences_and_resumes_after_restart() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"O","subjects":["events"]}"#);
    h.publish("events", b"", b"skipped");
    h.publish("events", b"", b"data");
    let r = h.create_stream(r#"{"name":"M","mirror":{"name":"O","opt_start_seq":2}}"#);
    assert!(r["config"].get("subjects").is_none(), "a mirror has no subjects: {r}");
    settle(&mut h);
    assert_eq!(get(&mut h, "M", 1), None);
    let (seq, subject, data, _) = get(&mut h, "M", 2).unwrap();
    assert_eq!((seq, subject.as_str(), data.as_str()), (2, "events", "data"));
    let info = h.api("$JS.API.STREAM.INFO.M", "");
    assert_eq!(info["mirror"]["name"], "O");
    assert_eq!(info["mirror"]["lag"], 0);
    assert!(info["mirror"]["active"].as_i64().unwrap() >= 0, "{info}");
    // After a restart the mirror goes on from its last sequence (no copy twice).
    h.restart(false);
    h.publish("events", b"", b"three");
    settle(&mut h);
    let st = h.api("$JS.API.STREAM.INFO.M", "")["state"].clone();
    assert_eq!((st["messages"].as_u64(), st["last_seq"].as_u64()), (Some(2), Some(3)), "{st}");
    assert_eq!(get(&mut h, "M", 3).unwrap().2, "three");
    // Config rules: a mirror cannot take subjects or change its origin.
    let bad = h.api("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"mirror":{"name":"O"}}"#);
    assert_eq!(err_code(&bad), 10034);
    let upd = h.api("$JS.API.STREAM.UPDATE.M", r#"{"name":"M","mirror":{"name":"Other"}}"#);
    assert_eq!(err_code(&upd), 10052);
}

#[test]
fn mirror_promoted_after_its_origin_is_gone() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"source","subjects":["test"]}"#);
    h.create_stream(r#"{"name":"mirror","mirror":{"name":"source"}}"#);
    h.publish("test", b"", b"data");
    settle(&mut h);
    h.api("$JS.API.STREAM.DELETE.source", "");
    assert_eq!(h.api("$JS.API.STREAM.INFO.mirror", "")["mirror"]["active"], -1);
    let r = h.api("$JS.API.STREAM.UPDATE.mirror", r#"{"name":"mirror","subjects":["test"]}"#);
    assert!(r.get("error").is_none() && r.get("mirror").is_none(), "{r}");
    assert_eq!(h.publish("test", b"", b"data")["seq"], 2);
}

#[test]
fn sources_filter_map_and_mark_their_copies() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a.>"]}"#);
    h.create_stream(r#"{"name":"B","subjects":["b.>"]}"#);
    h.publish("a.1", b"", b"skipped");
    h.publish("a.2", b"", b"one");
    h.publish("b.x", b"", b"two");
    h.publish("b.y", b"", b"filtered out");
    h.create_stream(
        r#"{"name":"S","storage":"memory","sources":[{"name":"A","opt_start_seq":2},{"name":"B","subject_transforms":[{"src":"b.x","dest":"from.b.x"}]}]}"#,
    );
    settle(&mut h);
    let st = h.api("$JS.API.STREAM.INFO.S", "");
    assert_eq!(st["state"]["messages"], 2, "{st}");
    assert_eq!(st["sources"].as_array().unwrap().len(), 2);
    let (_, subject, data, hdrs) = get(&mut h, "S", 1).unwrap();
    assert_eq!((subject.as_str(), data.as_str()), ("a.2", "one"));
    assert!(hdrs.contains("Nats-Stream-Source: A 2 > > a.2"), "{hdrs}");
    let (_, subject, _, hdrs) = get(&mut h, "S", 2).unwrap();
    assert_eq!(subject, "from.b.x");
    assert!(hdrs.contains("Nats-Stream-Source: B 1 b.x from.b.x b.x"), "{hdrs}");
    // New origin messages flow as they become durable; a restart resumes from the
    // headers (no duplicate, nothing missed).
    h.publish("a.3", b"", b"three");
    settle(&mut h);
    assert_eq!(h.api("$JS.API.STREAM.INFO.S", "")["state"]["messages"], 3);
}

#[test]
fn file_sources_resume_from_their_headers_after_restart() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a.>"]}"#);
    h.create_stream(r#"{"name":"S","sources":[{"name":"A"}]}"#);
    for i in 0..3 {
        h.publish(&format!("a.{i}"), b"", b"x");
    }
    settle(&mut h);
    h.restart(true);
    h.publish("a.9", b"", b"after");
    settle(&mut h);
    let st = h.api("$JS.API.STREAM.INFO.S", "")["state"].clone();
    assert_eq!(st["messages"], 4, "{st}");
    assert!(get(&mut h, "S", 4).unwrap().3.contains("Nats-Stream-Source: A 4 > > a.9"));
}

#[test]
fn many_messages_are_pumped_in_batches() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a"],"storage":"memory"}"#);
    let n = super::super::sources::BATCH_MSGS * 2 + 5;
    for _ in 0..n {
        h.send("a", None, b"", b"x");
    }
    h.create_stream(r#"{"name":"S","storage":"memory","sources":[{"name":"A"}]}"#);
    // Each pump moves a bounded batch; the engine asks for a tick to go on.
    for _ in 0..10 {
        if h.js.next_deadline().is_none() {
            break;
        }
        h.advance(1);
    }
    assert_eq!(h.api("$JS.API.STREAM.INFO.S", "")["state"]["messages"], n as u64);
}

#[test]
fn subject_transform_and_republish() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"origin","subjects":["test"],"subject_transform":{"src":">","dest":"transformed.>"}}"#);
    assert_eq!(h.publish("test", b"", b"data")["seq"], 1);
    assert_eq!(get(&mut h, "origin", 1).unwrap().1, "transformed.test");
    let bad = h.api("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subject_transform":{"src":"a.*","dest":"b.$2"}}"#);
    assert_eq!(err_code(&bad), 10052);

    h.create_stream(r#"{"name":"R","subjects":["source.>"],"republish":{"src":">","dest":"dest.>"}}"#);
    let outs = h.send("source.1", Some("_INBOX.p"), b"NATS/1.0\r\nK: v\r\n\r\n", b"hello");
    let rp = outs.iter().find(|o| o.to == "dest.source.1").expect("republished at store time");
    assert_eq!(rp.payload, b"hello");
    let hdrs = String::from_utf8(rp.headers.clone()).unwrap();
    assert!(
        hdrs.starts_with("NATS/1.0\r\nK: v\r\nNats-Stream: R\r\nNats-Subject: source.1\r\nNats-Sequence: 1\r\n"),
        "{hdrs}"
    );
    assert!(hdrs.contains("Nats-Last-Sequence: 0\r\n"), "{hdrs}");
    h.send("source.2", None, b"", b"x");
    let outs = h.send("source.1", None, b"", b"again");
    let rp = outs.iter().find(|o| o.to == "dest.source.1").unwrap();
    let hdrs = String::from_utf8(rp.headers.clone()).unwrap();
    assert!(hdrs.contains("Nats-Sequence: 3\r\n") && hdrs.contains("Nats-Last-Sequence: 1\r\n"), "{hdrs}");
    let cycle =
        h.api("$JS.API.STREAM.CREATE.C", r#"{"name":"C","subjects":["c.>"],"republish":{"src":">","dest":"c.>"}}"#);
    assert_eq!(cycle["error"]["description"], "stream configuration for republish destination forms a cycle");
}

#[test]
fn direct_get_replaces_republished_headers() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"K","subjects":["k.>"],"allow_direct":true}"#);
    let hdr = b"NATS/1.0\r\nNats-Stream: R\r\nNats-Sequence: 7\r\nX: y\r\n\r\n";
    h.publish("k.a", hdr, b"v");
    let outs = h.send("$JS.API.DIRECT.GET.K", Some("_INBOX.d"), b"", br#"{"seq":1}"#);
    let d = outs.iter().find(|o| o.to == "_INBOX.d").unwrap();
    let text = String::from_utf8(d.headers.clone()).unwrap();
    assert!(
        text.contains("X: y") && text.contains("Nats-Sequence: 1\r\n") && !text.contains("Nats-Sequence: 7"),
        "{text}"
    );
    assert_eq!(text.matches("Nats-Stream:").count(), 1, "{text}");
}

#[test]
fn max_age_leaves_subject_delete_markers() {
    let mut h = Harness::new();
    h.create_stream(
        r#"{"name":"E","subjects":["e.>"],"allow_msg_ttl":true,"allow_direct":true,"subject_delete_marker_ttl":2000000000,"max_age":2000000000}"#,
    );
    h.publish("e.data", b"NATS/1.0\r\nNats-TTL: 20\r\n\r\n", b"data");
    h.publish("e.data", b"", b"data");
    h.advance(2 * SEC + 1);
    h.sync();
    let outs = h.send("$JS.API.DIRECT.GET.E.e.data", Some("_INBOX.d"), b"", b"");
    let d = outs.iter().find(|o| o.to == "_INBOX.d").unwrap();
    let text = String::from_utf8(d.headers.clone()).unwrap();
    assert!(text.contains("Nats-Marker-Reason: MaxAge") && text.contains("Nats-TTL: 2s"), "{text}");
    assert!(d.payload.is_empty());
    assert_eq!(h.api("$JS.API.STREAM.INFO.E", "")["state"]["messages"], 1);
    // The marker goes after its own TTL and leaves no marker of its own.
    h.advance(2 * SEC + 1);
    h.sync();
    assert_eq!(h.api("$JS.API.STREAM.INFO.E", "")["state"]["messages"], 0);
}

#[test]
fn update_below_a_consumers_limits_is_refused() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"events","subjects":["events"]}"#);
    let c = h.api(
        "$JS.API.CONSUMER.DURABLE.CREATE.events.name",
        r#"{"stream_name":"events","config":{"durable_name":"name","ack_policy":"explicit"}}"#,
    );
    assert!(c.get("error").is_none(), "{c}");
    let r = h.api(
        "$JS.API.STREAM.UPDATE.events",
        r#"{"name":"events","subjects":["events"],"consumer_limits":{"inactive_threshold":2000000000,"max_ack_pending":10}}"#,
    );
    assert_eq!((r["error"]["code"].as_u64(), err_code(&r)), (Some(500), 10069));
    assert_eq!(r["error"]["description"], "change to limits violates consumers: name");
    let ok = h.api(
        "$JS.API.STREAM.UPDATE.events",
        r#"{"name":"events","subjects":["events"],"consumer_limits":{"max_ack_pending":5000}}"#,
    );
    assert!(ok.get("error").is_none(), "{ok}");
}

#[test]
fn account_info_counts_a_request_after_answering_it() {
    let mut h = Harness::new();
    assert_eq!(h.api("$JS.API.INFO", "")["api"]["total"], 0);
    assert_eq!(h.api("$JS.API.INFO", "")["api"]["total"], 1);
}

#[test]
fn markers_for_many_subjects_come_in_bounded_steps() {
    let mut h = Harness::new();
    h.create_stream(
        r#"{"name":"E","subjects":["e.>"],"storage":"memory","subject_delete_marker_ttl":1000000000,"max_age":1000000000}"#,
    );
    let n = crate::stream::MARKER_CHUNK * 2 + 7;
    for i in 0..n {
        h.send(&format!("e.{i}"), None, b"", b"x");
    }
    h.send("e.0", None, b"", b"second on e.0");
    h.advance(SEC + 1_000_000_000);
    // Every subject lost its last message to max_age: one marker each, nothing else left.
    let st = h.api("$JS.API.STREAM.INFO.E", "")["state"].clone();
    assert_eq!((st["messages"].as_u64(), st["num_subjects"].as_u64()), (Some(n as u64), Some(n as u64)), "{st}");
}

#[test]
fn source_cycles_are_refused() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"A","subjects":["a"]}"#);
    h.create_stream(r#"{"name":"B","sources":[{"name":"A"}]}"#);
    h.create_stream(r#"{"name":"C","sources":[{"name":"B"}]}"#);
    let r = h.api("$JS.API.STREAM.UPDATE.A", r#"{"name":"A","subjects":["a"],"sources":[{"name":"C"}]}"#);
    assert_eq!((err_code(&r), r["error"]["description"].as_str()), (10052, Some("stream sources form a cycle")));
    // A source whose origin does not exist yet is fine.
    h.create_stream(r#"{"name":"D","sources":[{"name":"LATER"}]}"#);
    let r = h.api("$JS.API.STREAM.CREATE.LATER", r#"{"name":"LATER","sources":[{"name":"D"}]}"#);
    assert_eq!(err_code(&r), 10052);
}
