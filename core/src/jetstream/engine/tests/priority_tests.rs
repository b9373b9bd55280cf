//! The consumer operations added with priority groups and 2.14: pinned pulls through the
//! engine, `CONSUMER.UNPIN`, `CONSUMER.RESET`, the PAUSE reply's shape, and the server's
//! `jetstream.limits` applied to new consumers.

use super::*;

const SEC: i64 = 1_000_000_000;

fn setup() -> Harness {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"S","subjects":["s.>"]}"#);
    h
}

fn pin_header(o: &Out) -> Option<String> {
    let h = String::from_utf8_lossy(&o.headers).to_string();
    h.lines().find_map(|l| l.strip_prefix("Nats-Pin-Id: ").map(str::to_string))
}

#[test]
fn pinned_pulls_unpin_and_info() {
    let mut h = setup();
    let c = h.api(
        "$JS.API.CONSUMER.CREATE.S.p",
        r#"{"stream_name":"S","config":{"durable_name":"p","ack_policy":"none","priority_policy":"pinned_client","priority_groups":["A"]}}"#,
    );
    assert_eq!(c["config"]["priority_timeout"], 120 * SEC, "{c}");
    assert_eq!(c["priority_groups"][0]["group"], "A");
    assert_eq!(c["priority_groups"][0]["pinned_ts"], "0001-01-01T00:00:00Z");
    h.publish("s.1", b"", b"x");
    let outs = h.send("$JS.API.CONSUMER.MSG.NEXT.S.p", Some("_INBOX.a"), b"", br#"{"batch":1,"group":"A"}"#);
    let d = outs.iter().find(|o| o.to == "_INBOX.a").expect("delivered");
    let pin = pin_header(d).expect("Nats-Pin-Id");
    let adv = outs.iter().find(|o| o.to == "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.p").expect("pinned advisory");
    assert_eq!(adv.json()["pinned_id"], pin.as_str());
    let info = h.api("$JS.API.CONSUMER.INFO.S.p", "");
    assert_eq!(info["priority_groups"][0]["pinned_client_id"], pin.as_str());

    // UNPIN: nats-server's checks in its order, then the pin is gone.
    let e = |h: &mut Harness, subj: &str, body: &str| err_code(&h.api(subj, body));
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.S.p", "{"), 10025);
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.S.p", "{}"), 10025);
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.S.p", r#"{"group":"a.b"}"#), 10162);
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.X.p", r#"{"group":"A"}"#), 10059);
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.S.q", r#"{"group":"A"}"#), 10014);
    assert_eq!(e(&mut h, "$JS.API.CONSUMER.UNPIN.S.p", r#"{"group":"B"}"#), 10160);
    let ok = h.api("$JS.API.CONSUMER.UNPIN.S.p", r#"{"group":"A"}"#);
    assert_eq!(ok, serde_json::json!({"type": "io.nats.jetstream.api.v1.consumer_unpin_response"}));
    let info = h.api("$JS.API.CONSUMER.INFO.S.p", "");
    assert!(info["priority_groups"][0].get("pinned_client_id").is_none(), "{info}");

    // A request still holding the old pin is refused on arrival only while a pin is held;
    // without one it queues and is ended with 423 Nats-Wrong-Pin-Id when served.
    let body = format!(r#"{{"batch":1,"expires":10000000000,"group":"A","id":"{pin}"}}"#);
    h.send("$JS.API.CONSUMER.MSG.NEXT.S.p", Some("_INBOX.b"), b"", body.as_bytes());
    let outs = h.publish_outs("s.2");
    let st = outs.iter().find(|o| o.to == "_INBOX.b").expect("status");
    assert!(String::from_utf8_lossy(&st.headers).starts_with("NATS/1.0 423 Nats-Wrong-Pin-Id\r\n"));
}

#[test]
fn reset_answers_like_nats_server() {
    let mut h = setup();
    for i in 0..5 {
        h.publish(&format!("s.{i}"), b"", b"x");
    }
    h.api(
        "$JS.API.CONSUMER.CREATE.S.c",
        r#"{"stream_name":"S","config":{"durable_name":"c","ack_policy":"explicit"}}"#,
    );
    let r = h.api("$JS.API.CONSUMER.RESET.S.c", r#"{"seq":3}"#);
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.consumer_reset_response");
    assert_eq!((r["reset_seq"].as_u64(), r["name"].as_str()), (Some(3), Some("c")), "{r}");
    assert_eq!((r["num_pending"].as_u64(), r["ack_floor"]["stream_seq"].as_u64()), (Some(3), Some(2)));
    assert_eq!(h.api("$JS.API.CONSUMER.RESET.S.c", "")["reset_seq"], 3, "empty: back to the ack floor");
    assert_eq!(err_code(&h.api("$JS.API.CONSUMER.RESET.S.c", "{")), 10025);
    h.api(
        "$JS.API.CONSUMER.CREATE.S.b",
        r#"{"stream_name":"S","config":{"durable_name":"b","deliver_policy":"by_start_sequence","opt_start_seq":3}}"#,
    );
    let e = h.api("$JS.API.CONSUMER.RESET.S.b", r#"{"seq":1}"#);
    assert_eq!((err_code(&e), e["error"]["description"].as_str()), (10204, Some("invalid reset: below start seq")));
    // No such consumer: nothing serves the subject (no responders), as nats-server.
    let outs = h.send("$JS.API.CONSUMER.RESET.S.nope", Some("_INBOX.r"), b"", b"");
    let r = outs.iter().find(|o| o.to == "_INBOX.r").expect("an answer");
    assert!(String::from_utf8_lossy(&r.headers).starts_with("NATS/1.0 503"));
}

#[test]
fn pause_reply_always_has_pause_until() {
    let mut h = setup();
    h.api("$JS.API.CONSUMER.CREATE.S.c", r#"{"stream_name":"S","config":{"durable_name":"c"}}"#);
    let until = crate::jetstream::format_rfc3339_nano(h.now + 60 * SEC);
    let p = h.api("$JS.API.CONSUMER.PAUSE.S.c", &format!(r#"{{"pause_until":"{until}"}}"#));
    assert_eq!((p["paused"].as_bool(), p["pause_until"].as_str()), (Some(true), Some(until.as_str())));
    assert!(p["pause_remaining"].as_i64().unwrap() > 59 * SEC);
    let r = h.api("$JS.API.CONSUMER.PAUSE.S.c", "");
    assert_eq!(
        r,
        serde_json::json!({"type":"io.nats.jetstream.api.v1.consumer_pause_response","paused":false,"pause_until":"0001-01-01T00:00:00Z"})
    );
}

#[test]
fn server_limits_reach_new_consumers() {
    let cfg = JsConfig {
        store_dir: "d".into(),
        consumer_limits: crate::consumer::ServerLimits { max_request_batch: 100, max_ack_pending: 0 },
        ..JsConfig::default()
    };
    let mut h = Harness::with(cfg);
    h.create_stream(r#"{"name":"S","subjects":["s.>"]}"#);
    let c = h.api("$JS.API.CONSUMER.CREATE.S.c", r#"{"stream_name":"S","config":{"durable_name":"c"}}"#);
    assert_eq!(c["config"]["max_batch"], 100);
    let e =
        h.api("$JS.API.CONSUMER.CREATE.S.d", r#"{"stream_name":"S","config":{"durable_name":"d","max_batch":500}}"#);
    assert_eq!(err_code(&e), 10125);
}
