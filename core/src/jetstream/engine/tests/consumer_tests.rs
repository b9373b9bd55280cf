//! Consumer tests: pull (batch, no_wait, expires, max_bytes), acks of every kind,
//! redelivery after ack_wait, push with heartbeats and flow control, the consumer
//! APIs, and interest/workqueue retention.

use super::*;

const SEC: i64 = 1_000_000_000;

fn setup(stream: &str) -> Harness {
    let mut h = Harness::new();
    h.create_stream(stream);
    h
}

fn create_consumer(h: &mut Harness, subject: &str, body: &str) -> Value {
    let r = h.api(subject, body);
    assert!(r.get("error").is_none(), "{r}");
    r
}

fn next(h: &mut Harness, stream: &str, consumer: &str, inbox: &str, body: &str) -> Vec<Out> {
    let mut outs = h.send(&format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"), Some(inbox), b"", body.as_bytes());
    outs.extend(h.sync());
    outs
}

fn deliveries(outs: &[Out], to: &str) -> Vec<Out> {
    outs.iter()
        .filter(|o| o.to == to && o.reply.as_deref().is_some_and(|r| r.starts_with("$JS.ACK.")))
        .cloned()
        .collect()
}

fn ack(h: &mut Harness, reply: &str, body: &str, sync_reply: Option<&str>) -> Vec<Out> {
    let mut outs = h.send(reply, sync_reply, b"", body.as_bytes());
    outs.extend(h.sync());
    outs
}

#[test]
fn durable_pull_fetch_and_ack() {
    let mut h = setup(r#"{"name":"S","subjects":["s.>"]}"#);
    for i in 0..3 {
        h.publish(&format!("s.{i}"), b"", b"x");
    }
    let r = create_consumer(
        &mut h,
        "$JS.API.CONSUMER.CREATE.S.w",
        r#"{"stream_name":"S","config":{"durable_name":"w","ack_policy":"explicit"},"action":"create"}"#,
    );
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.consumer_create_response");
    assert_eq!((r["name"].as_str(), r["num_pending"].as_u64()), (Some("w"), Some(3)));
    assert_eq!(r["config"]["max_waiting"], 512);
    let outs = next(&mut h, "S", "w", "_INBOX.p", r#"{"batch":10,"expires":5000000000}"#);
    let d = deliveries(&outs, "_INBOX.p");
    assert_eq!(d.len(), 3, "{outs:?}");
    assert_eq!(d[0].subject, "s.0");
    let r0 = d[0].reply.clone().unwrap();
    assert!(r0.starts_with("$JS.ACK.S.w.1.1.1.") && r0.ends_with(".2"), "{r0}");
    for o in &d {
        ack(&mut h, o.reply.as_ref().unwrap(), "+ACK", None);
    }
    let info = h.api("$JS.API.CONSUMER.INFO.S.w", "{}");
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.consumer_info_response");
    assert_eq!((info["num_ack_pending"].as_u64(), info["ack_floor"]["stream_seq"].as_u64()), (Some(0), Some(3)));
    assert_eq!(info["num_waiting"], 1, "the request still waits for 7 more");
    // A new message goes to the waiting request once durable (after the sync).
    let mut outs = h.send("s.9", Some("_INBOX.pub"), b"", b"late");
    assert!(deliveries(&outs, "_INBOX.p").is_empty(), "nothing is delivered before the sync");
    outs.extend(h.sync());
    assert_eq!(deliveries(&outs, "_INBOX.p").len(), 1);
    // The request expires with a 408 carrying the pending counts.
    let outs = h.advance(6 * SEC);
    let st = outs.iter().find(|o| o.to == "_INBOX.p").expect("408");
    assert_eq!(st.status(), Some(408));
    assert!(
        String::from_utf8_lossy(&st.headers).contains("Nats-Pending-Messages: 6"),
        "{:?}",
        String::from_utf8_lossy(&st.headers)
    );
}

#[test]
fn no_wait_and_missing_consumers() {
    let mut h = setup(r#"{"name":"S","subjects":["s"]}"#);
    create_consumer(
        &mut h,
        "$JS.API.CONSUMER.DURABLE.CREATE.S.d",
        r#"{"stream_name":"S","config":{"durable_name":"d","ack_policy":"explicit"}}"#,
    );
    let outs = next(&mut h, "S", "d", "_INBOX.n", r#"{"batch":1,"no_wait":true}"#);
    assert_eq!(outs[0].status(), Some(404));
    let outs = next(&mut h, "S", "nope", "_INBOX.n", "1");
    assert_eq!(outs[0].status(), Some(503), "no such consumer: no responders");
    // Subject rules of the create APIs.
    let r = h.api("$JS.API.CONSUMER.DURABLE.CREATE.S.x", r#"{"stream_name":"S","config":{"durable_name":"y"}}"#);
    assert_eq!(err_code(&r), 10017);
    let r = h.api("$JS.API.CONSUMER.DURABLE.CREATE.S.x", r#"{"stream_name":"S","config":{}}"#);
    assert_eq!(err_code(&r), 10018);
    let r = h.api("$JS.API.CONSUMER.CREATE.S", r#"{"stream_name":"S","config":{"durable_name":"y"}}"#);
    assert_eq!(err_code(&r), 10020);
    let r = h.api("$JS.API.CONSUMER.CREATE.S.c.s", r#"{"stream_name":"S","config":{"filter_subject":"t"}}"#);
    assert_eq!(err_code(&r), 10131);
    let r = h.api("$JS.API.CONSUMER.CREATE.S.c", r#"{"stream_name":"T","config":{}}"#);
    assert_eq!(err_code(&r), 10056);
    let r = h.api("$JS.API.CONSUMER.CREATE.S.c", r#"{"stream_name":"S"}"#);
    assert_eq!(err_code(&r), 10078);
    let r = h.api(
        "$JS.API.CONSUMER.CREATE.S.d",
        r#"{"stream_name":"S","config":{"durable_name":"d","ack_policy":"none"},"action":"create"}"#,
    );
    assert_eq!(err_code(&r), 10148);
    let r = h.api(
        "$JS.API.CONSUMER.CREATE.S.e",
        r#"{"stream_name":"S","config":{"ack_policy":"explicit"},"action":"update"}"#,
    );
    assert_eq!(err_code(&r), 10149);
    // Ephemeral with a generated name.
    let r = create_consumer(
        &mut h,
        "$JS.API.CONSUMER.CREATE.S",
        r#"{"stream_name":"S","config":{"ack_policy":"explicit"}}"#,
    );
    assert_eq!(r["name"].as_str().unwrap().len(), 8);
}

#[test]
fn ack_kinds_and_redelivery() {
    let mut h = setup(r#"{"name":"S","subjects":["s"]}"#);
    for _ in 0..4 {
        h.publish("s", b"", b"x");
    }
    create_consumer(
        &mut h,
        "$JS.API.CONSUMER.CREATE.S.c",
        r#"{"stream_name":"S","config":{"durable_name":"c","ack_policy":"explicit","ack_wait":2000000000,"max_deliver":3}}"#,
    );
    let d = deliveries(&next(&mut h, "S", "c", "_INBOX.a", r#"{"batch":4,"expires":60000000000}"#), "_INBOX.a");
    assert_eq!(d.len(), 4);
    let reply = |i: usize| d[i].reply.clone().unwrap();
    // AckSync: +ACK with a reply subject is answered with an empty message.
    let outs = ack(&mut h, &reply(0), "+ACK", Some("_INBOX.acked"));
    assert!(outs.iter().any(|o| o.to == "_INBOX.acked" && o.payload.is_empty()));
    ack(&mut h, &reply(1), "+TERM not wanted", None);
    ack(&mut h, &reply(2), r#"-NAK {"delay":5000000000}"#, None);
    ack(&mut h, &reply(3), "+WPI", None);
    // A new pull request: after ack_wait seq 4 is redelivered (WPI reset its timer to 2s);
    // seq 3 waits for its 5 s NAK delay.
    let _ = next(&mut h, "S", "c", "_INBOX.b", r#"{"batch":5,"expires":60000000000}"#);
    let outs = h.advance(2 * SEC + 1);
    let d2 = deliveries(&outs, "_INBOX.b");
    assert_eq!(d2.len(), 1, "{outs:?}");
    assert!(d2[0].reply.as_ref().unwrap().starts_with("$JS.ACK.S.c.2.4."), "{:?}", d2[0].reply);
    let outs = h.advance(3 * SEC);
    let d3 = deliveries(&outs, "_INBOX.b");
    assert!(d3.iter().any(|o| o.reply.as_ref().unwrap().starts_with("$JS.ACK.S.c.2.3.")), "{outs:?}");
    let info = h.api("$JS.API.CONSUMER.INFO.S.c", "");
    assert_eq!(info["ack_floor"]["stream_seq"], 2);
    assert_eq!(info["num_redelivered"], 2);
    // +NXT acks and asks for more on the ack's reply subject.
    let r4 = d2[0].reply.clone().unwrap();
    let outs = ack(&mut h, &r4, "+NXT", Some("_INBOX.nxt"));
    let _ = outs;
    let info = h.api("$JS.API.CONSUMER.INFO.S.c", "");
    assert_eq!(info["num_ack_pending"], 1, "{info}");
}

#[test]
fn push_consumer_with_heartbeats_and_flow_control() {
    let mut h = setup(r#"{"name":"S","subjects":["s"]}"#);
    h.publish("s", b"", b"one");
    let mut out = Vec::new();
    h.now += 1;
    let body = r#"{"stream_name":"S","config":{"durable_name":"p","deliver_subject":"deliver.p","ack_policy":"explicit","idle_heartbeat":1000000000,"flow_control":true}}"#;
    h.js.on_message(h.now, &msg("$JS.API.CONSUMER.CREATE.S.p", Some("_INBOX.c"), b"", body.as_bytes()), &mut out);
    assert!(out.iter().any(|o| matches!(o, JsOut::Watch { subject, watch: true } if subject == "deliver.p")));
    assert_eq!(h.js.watched_subjects(), vec!["deliver.p".to_string()]);
    let outs = flatten(out);
    assert!(deliveries(&outs, "deliver.p").is_empty(), "no interest yet");
    let mut out = Vec::new();
    h.js.on_interest(h.now, "deliver.p", true, &mut out);
    let outs = flatten(out);
    assert_eq!(deliveries(&outs, "deliver.p").len(), 1);
    let outs = h.advance(SEC + 1);
    let hb = outs.iter().find(|o| o.to == "deliver.p").expect("heartbeat");
    assert_eq!(hb.status(), Some(100));
    let info = h.api("$JS.API.CONSUMER.INFO.S.p", "");
    assert_eq!(info["push_bound"], true);
    // Deleting it stops the watch.
    let mut out = Vec::new();
    h.js.on_message(h.now, &msg("$JS.API.CONSUMER.DELETE.S.p", Some("_INBOX.d"), b"", b""), &mut out);
    assert!(out.iter().any(|o| matches!(o, JsOut::Watch { watch: false, .. })));
}

#[test]
fn consumer_names_list_pause_delete() {
    let mut h = setup(r#"{"name":"S","subjects":["s"]}"#);
    for n in ["a", "b"] {
        create_consumer(
            &mut h,
            &format!("$JS.API.CONSUMER.CREATE.S.{n}"),
            &format!(r#"{{"stream_name":"S","config":{{"durable_name":"{n}"}}}}"#),
        );
    }
    let names = h.api("$JS.API.CONSUMER.NAMES.S", "");
    assert_eq!(names["consumers"], serde_json::json!(["a", "b"]));
    assert_eq!((names["total"].as_u64(), names["limit"].as_u64()), (Some(2), Some(1024)));
    let list = h.api("$JS.API.CONSUMER.LIST.S", r#"{"offset":1}"#);
    assert_eq!(list["consumers"].as_array().unwrap().len(), 1);
    assert_eq!(list["consumers"][0]["name"], "b");
    let until = crate::jetstream::format_rfc3339_nano(h.now + 60 * SEC);
    let p = h.api("$JS.API.CONSUMER.PAUSE.S.a", &format!(r#"{{"pause_until":"{until}"}}"#));
    assert_eq!(p["type"], "io.nats.jetstream.api.v1.consumer_pause_response");
    assert_eq!(p["paused"], true, "{p}");
    let info = h.api("$JS.API.CONSUMER.INFO.S.a", "");
    assert_eq!(info["paused"], true);
    let d = h.api("$JS.API.CONSUMER.DELETE.S.a", "");
    assert_eq!(d["success"], true);
    assert_eq!(err_code(&h.api("$JS.API.CONSUMER.DELETE.S.a", "")), 10014);
    assert_eq!(h.api("$JS.API.STREAM.INFO.S", "")["state"]["consumer_count"], 1);
}

#[test]
fn workqueue_removes_on_ack() {
    let mut h = setup(r#"{"name":"W","subjects":["w.>"],"retention":"workqueue"}"#);
    create_consumer(
        &mut h,
        "$JS.API.CONSUMER.CREATE.W.c",
        r#"{"stream_name":"W","config":{"durable_name":"c","ack_policy":"explicit"}}"#,
    );
    let r = h.api(
        "$JS.API.CONSUMER.CREATE.W.d",
        r#"{"stream_name":"W","config":{"durable_name":"d","ack_policy":"explicit"}}"#,
    );
    assert_eq!(err_code(&r), 10099);
    h.publish("w.1", b"", b"job");
    h.publish("w.2", b"", b"job");
    let d = deliveries(&next(&mut h, "W", "c", "_INBOX.w", r#"{"batch":2}"#), "_INBOX.w");
    assert_eq!(d.len(), 2);
    ack(&mut h, d[0].reply.as_ref().unwrap(), "", None);
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!((info["state"]["messages"].as_u64(), info["state"]["first_seq"].as_u64()), (Some(1), Some(2)));
}

#[test]
fn interest_retention_and_consumer_delete_releases() {
    let mut h = setup(r#"{"name":"I","subjects":["i"],"retention":"interest"}"#);
    // No consumer: the sequence is used, nothing kept.
    let a = h.publish("i", b"", b"lost");
    assert_eq!(a["seq"], 1);
    for n in ["a", "b"] {
        create_consumer(
            &mut h,
            &format!("$JS.API.CONSUMER.CREATE.I.{n}"),
            &format!(r#"{{"stream_name":"I","config":{{"durable_name":"{n}","ack_policy":"explicit"}}}}"#),
        );
    }
    h.publish("i", b"", b"m2");
    h.publish("i", b"", b"m3");
    assert_eq!(h.api("$JS.API.STREAM.INFO.I", "")["state"]["messages"], 2);
    let d = deliveries(&next(&mut h, "I", "a", "_INBOX.a", r#"{"batch":2}"#), "_INBOX.a");
    for o in &d {
        ack(&mut h, o.reply.as_ref().unwrap(), "+ACK", None);
    }
    assert_eq!(h.api("$JS.API.STREAM.INFO.I", "")["state"]["messages"], 2, "b still holds them");
    let db = deliveries(&next(&mut h, "I", "b", "_INBOX.b", r#"{"batch":1}"#), "_INBOX.b");
    ack(&mut h, db[0].reply.as_ref().unwrap(), "+ACK", None);
    assert_eq!(h.api("$JS.API.STREAM.INFO.I", "")["state"]["messages"], 1);
    // Deleting b releases what only it held.
    h.api("$JS.API.CONSUMER.DELETE.I.b", "");
    assert_eq!(h.api("$JS.API.STREAM.INFO.I", "")["state"]["messages"], 0);
}

#[test]
fn inactive_ephemeral_is_removed_with_its_files() {
    let mut h = setup(r#"{"name":"S","subjects":["s"]}"#);
    let r = create_consumer(
        &mut h,
        "$JS.API.CONSUMER.CREATE.S.eph",
        r#"{"stream_name":"S","config":{"name":"eph","ack_policy":"explicit","inactive_threshold":1000000000}}"#,
    );
    assert_eq!(r["name"], "eph");
    let meta = layout::consumer_meta("data", "S", "eph");
    assert!(h.disk.exists(&meta));
    h.advance(2 * SEC);
    assert_eq!(err_code(&h.api("$JS.API.CONSUMER.INFO.S.eph", "")), 10014);
    assert!(!h.disk.exists(&meta), "the consumer's files go with it");
}

#[test]
fn push_flow_control_stalls_and_resumes_on_the_reply() {
    let mut h = setup(r#"{"name":"S","subjects":["s"],"storage":"memory"}"#);
    let body = r#"{"stream_name":"S","config":{"durable_name":"p","deliver_subject":"dp","ack_policy":"none","idle_heartbeat":5000000000,"flow_control":true}}"#;
    create_consumer(&mut h, "$JS.API.CONSUMER.CREATE.S.p", body);
    let mut out = Vec::new();
    h.js.on_interest(h.now, "dp", true, &mut out);
    let big = vec![b'x'; 700 * 1024];
    let mut outs = Vec::new();
    for _ in 0..4 {
        outs.extend(h.send("s", None, b"", &big));
    }
    let delivered =
        outs.iter().filter(|o| o.to == "dp" && o.reply.as_deref().is_some_and(|r| r.starts_with("$JS.ACK."))).count();
    let fc = outs
        .iter()
        .find(|o| o.to == "dp" && o.reply.as_deref().is_some_and(|r| r.starts_with("$JS.FC.S.p.")))
        .expect("flow control request");
    assert_eq!(fc.status(), Some(100));
    assert_eq!(delivered, 3, "the fourth waits for the flow-control reply");
    let reply = fc.reply.clone().unwrap();
    let outs = h.send(&reply, None, b"", b"");
    let more =
        outs.iter().filter(|o| o.to == "dp" && o.reply.as_deref().is_some_and(|r| r.starts_with("$JS.ACK."))).count();
    assert_eq!(more, 1, "the reply releases the stalled delivery");
}
