//! async-nats's JetStream API (streams, consumers, KV, object store) against an
//! in-process `weir` server with JetStream on a fresh store directory, or, with
//! `NATS_JS_SERVER_URL` set, against that server (`scripts/compat-nats-server` points it
//! at a nats-server started with `-js`), so both run the same cases.
//!
//! Every test uses its own stream names and subjects, so the tests can share one server.
//! They use only what a client can see: PubAcks, API replies (checked down to `code` and
//! `err_code`), deliveries and their ack metadata. The one exception is
//! `restart_keeps_everything`, which restarts the in-process server over the same store
//! directory and is skipped (with a printed note) against an external server.

#![cfg(not(madsim))]

mod common;

use async_nats::jetstream::{
    self, AckKind, Context,
    consumer::{self, AckPolicy, DeliverPolicy, pull, push},
    context::PublishErrorKind,
    kv, object_store,
    stream::{self, RetentionPolicy, StorageType},
};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use common::js::{Target, WAIT, weir_js_config};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, timeout};

/// A stream name unique to this process and test (no dots: names are single tokens).
fn sname(test: &str) -> String {
    format!("T{}_{}", std::process::id(), test.to_uppercase())
}

/// A subject prefix unique to this process and test.
fn subj(test: &str) -> String {
    common::prefix(&format!("js.{test}"))
}

/// A raw JetStream API request with a JSON (or deliberately bad) body; the reply parsed.
async fn api(c: &Client, subject: &str, body: &str) -> Value {
    let m = timeout(WAIT, c.request(subject.to_string(), Bytes::from(body.to_string())))
        .await
        .unwrap_or_else(|_| panic!("{subject}: timed out"))
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&m.payload)
        .unwrap_or_else(|e| panic!("{subject}: reply is not JSON ({e}): {:?}", String::from_utf8_lossy(&m.payload)))
}

/// `(code, err_code)` of an API error reply; panics (showing the reply) if it is no error.
fn err_codes(v: &Value) -> (u64, u64) {
    let e = &v["error"];
    assert!(e.is_object(), "expected an error reply, got {v}");
    (e["code"].as_u64().unwrap_or(0), e["err_code"].as_u64().unwrap_or(0))
}

/// The error description of an API error reply.
fn err_desc(v: &Value) -> String {
    v["error"]["description"].as_str().unwrap_or("").to_string()
}

/// Publish `payload` to `subject` with `headers` and return the raw PubAck JSON.
async fn pub_raw(c: &Client, subject: &str, headers: &[(&str, &str)], payload: &str) -> Value {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    let m = timeout(WAIT, c.request_with_headers(subject.to_string(), h, Bytes::from(payload.to_string())))
        .await
        .expect("publish timed out")
        .expect("publish");
    serde_json::from_slice(&m.payload).expect("PubAck JSON")
}

/// Wait until `check` returns `Ok`, polling; fails with its last complaint after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: still {e} after {WAIT:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The stream's message count and first sequence, from STREAM.INFO.
async fn stream_state(js: &Context, name: &str) -> (u64, u64) {
    let info = js.get_stream(name).await.expect("get stream").get_info().await.expect("stream info");
    (info.state.messages, info.state.first_sequence)
}

async fn publish(js: &Context, subject: &str, payload: &str) -> u64 {
    let ack = js.publish(subject.to_string(), Bytes::from(payload.to_string())).await.expect("publish").await;
    ack.expect("PubAck").sequence
}

fn file_stream(name: &str, subjects: &str) -> stream::Config {
    stream::Config { name: name.to_string(), subjects: vec![subjects.to_string()], ..Default::default() }
}

fn pull_durable(name: &str) -> pull::Config {
    pull::Config { durable_name: Some(name.to_string()), ..Default::default() }
}

/// Fetch with a wait: a batch of up to `n`, ending after `expires`.
async fn batch(c: &consumer::PullConsumer, n: usize, expires: Duration) -> Vec<jetstream::Message> {
    let b = c.batch().max_messages(n).expires(expires).messages().await.expect("batch request");
    timeout(expires + WAIT, b.map(|m| m.expect("batch message")).collect::<Vec<_>>()).await.expect("batch ended")
}

fn text(m: &jetstream::Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

/// Every stream name by async-nats's pager; on weir, if that fails as the known bug
/// (STREAM.NAMES refused `"subject":null`), by a raw STREAM.NAMES with `{}`.
async fn stream_names(t: &Target, test: &str, js: &Context, c: &Client) -> Vec<String> {
    let paged: Result<Vec<String>, _> = js.stream_names().try_collect().await;
    let bug = "STREAM.NAMES refuses async-nats's {\"offset\":0,\"subject\":null} (400/10025)";
    if t.known_weir_bug(test, paged.is_ok(), &format!("{bug}: {:?}", paged.as_ref().err())) {
        return paged.unwrap();
    }
    let v = api(c, "$JS.API.STREAM.NAMES", "{}").await;
    assert!(v["total"].as_u64().unwrap() <= 1024, "one page is enough here: {}", v["total"]);
    v["streams"].as_array().map_or(Vec::new(), |a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
}

#[tokio::test]
async fn stream_create_update_delete() {
    let test = "crud";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let cfg = stream::Config { max_messages: 100, ..file_stream(&name, &format!("{p}.>")) };
    let mut s = js.create_stream(cfg.clone()).await.expect("create");
    let info = s.info().await.unwrap().clone();
    assert_eq!(info.config.name, name);
    assert_eq!(info.config.subjects, vec![format!("{p}.>")]);
    assert_eq!(info.config.max_messages, 100);
    assert_eq!(info.config.retention, RetentionPolicy::Limits);
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.num_replicas, 1);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120), "default duplicate window");
    assert_eq!(info.config.max_bytes, -1);
    assert_eq!(info.config.max_messages_per_subject, -1);
    assert_eq!(info.state.messages, 0);

    // Creating again with the same config is fine; with another config it is 10058.
    js.create_stream(cfg.clone()).await.expect("idempotent create");
    let body = json!({"name": name, "subjects": [format!("{p}.>")], "max_msgs": 50}).to_string();
    let v = api(&c, &format!("$JS.API.STREAM.CREATE.{name}"), &body).await;
    assert_eq!(err_codes(&v), (400, 10058), "{v}");
    assert_eq!(err_desc(&v), "stream name already in use with a different configuration");

    // Update: allowed fields change, storage may not.
    let upd = stream::Config { max_messages: 200, description: Some("updated".into()), ..cfg.clone() };
    let info = js.update_stream(upd).await.expect("update");
    assert_eq!(info.config.max_messages, 200);
    assert_eq!(info.config.description.as_deref(), Some("updated"));
    let body = json!({"name": name, "subjects": [format!("{p}.>")], "storage": "memory"}).to_string();
    let v = api(&c, &format!("$JS.API.STREAM.UPDATE.{name}"), &body).await;
    assert_eq!(err_codes(&v), (500, 10052), "{v}");
    assert!(err_desc(&v).contains("storage type"), "{v}");
    // Updating a stream that does not exist is 10059.
    let v = api(&c, &format!("$JS.API.STREAM.UPDATE.{name}X"), &json!({"name": format!("{name}X")}).to_string()).await;
    assert_eq!(err_codes(&v), (404, 10059), "{v}");

    // It is listed, then deleted.
    let names = stream_names(&t, test, &js, &c).await;
    assert!(names.contains(&name), "{names:?}");
    assert!(js.delete_stream(&name).await.expect("delete").success);
    let v = api(&c, &format!("$JS.API.STREAM.INFO.{name}"), "").await;
    assert_eq!(err_codes(&v), (404, 10059), "{v}");
    let names = stream_names(&t, test, &js, &c).await;
    assert!(!names.contains(&name), "{names:?}");
    t.stop().await;
}

#[tokio::test]
async fn publish_gets_puback() {
    let test = "puback";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for (i, s) in ["a", "b", "a"].iter().enumerate() {
        let ack = js.publish(format!("{p}.{s}"), format!("m{i}").into()).await.unwrap().await.expect("PubAck");
        assert_eq!(ack.stream, name);
        assert_eq!(ack.sequence, i as u64 + 1);
        assert!(!ack.duplicate);
    }
    // The raw PubAck JSON.
    let v = pub_raw(&c, &format!("{p}.b"), &[], "raw").await;
    assert_eq!(v["stream"], json!(name));
    assert_eq!(v["seq"], json!(4));
    assert!(v.get("error").is_none(), "{v}");
    assert_ne!(v.get("duplicate"), Some(&json!(true)));

    let info = js.get_stream(&name).await.unwrap().get_info().await.unwrap();
    assert_eq!(info.state.messages, 4);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 4);
    assert_eq!(info.state.subjects_count, 2);

    // No stream for the subject: nobody answers.
    let err = js.publish(common::prefix("js.nostream"), "x".into()).await.unwrap().await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::StreamNotFound);
    t.stop().await;
}

#[tokio::test]
async fn dedup_by_msg_id() {
    let test = "dedup";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let send = |id: &'static str| {
        let js = js.clone();
        let s = format!("{p}.x");
        async move {
            let m = jetstream::message::PublishMessage::build().message_id(id).payload(Bytes::from(id));
            js.send_publish(s, m).await.unwrap().await.expect("PubAck")
        }
    };
    let a = send("a").await;
    assert_eq!((a.sequence, a.duplicate), (1, false));
    let a2 = send("a").await;
    assert_eq!((a2.sequence, a2.duplicate), (1, true), "duplicate answers the original sequence");
    let b = send("b").await;
    assert_eq!((b.sequence, b.duplicate), (2, false));
    let v = pub_raw(&c, &format!("{p}.x"), &[("Nats-Msg-Id", "b")], "again").await;
    assert_eq!(v["seq"], json!(2));
    assert_eq!(v["duplicate"], json!(true));
    assert_eq!(stream_state(&js, &name).await.0, 2);
    t.stop().await;
}

#[tokio::test]
async fn expected_headers_errors() {
    let test = "expect";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let (a, b) = (format!("{p}.a"), format!("{p}.b"));
    let v = pub_raw(&c, &a, &[("Nats-Msg-Id", "m1")], "1").await;
    assert_eq!(v["seq"], json!(1));
    let v = pub_raw(&c, &b, &[("Nats-Msg-Id", "m2")], "2").await;
    assert_eq!(v["seq"], json!(2));

    // Nats-Expected-Last-Sequence
    let v = pub_raw(&c, &a, &[("Nats-Expected-Last-Sequence", "1")], "x").await;
    assert_eq!(err_codes(&v), (400, 10071), "{v}");
    assert_eq!(err_desc(&v), "wrong last sequence: 2");
    let v = pub_raw(&c, &a, &[("Nats-Expected-Last-Sequence", "2")], "3").await;
    assert_eq!(v["seq"], json!(3), "{v}");
    // The typed client maps it to WrongLastSequence.
    let m = jetstream::message::PublishMessage::build().expected_last_sequence(1).payload("y".into());
    let err = js.send_publish(a.clone(), m).await.unwrap().await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::WrongLastSequence);

    // Nats-Expected-Stream
    let v = pub_raw(&c, &a, &[("Nats-Expected-Stream", "NOPE")], "x").await;
    assert_eq!(err_codes(&v), (400, 10060), "{v}");
    assert_eq!(err_desc(&v), "expected stream does not match");
    let v = pub_raw(&c, &a, &[("Nats-Expected-Stream", name.as_str())], "4").await;
    assert_eq!(v["seq"], json!(4), "{v}");

    // Nats-Expected-Last-Msg-Id (the last message, seq 4, has no id)
    let v = pub_raw(&c, &a, &[("Nats-Msg-Id", "m5")], "5").await;
    assert_eq!(v["seq"], json!(5), "{v}");
    let v = pub_raw(&c, &a, &[("Nats-Expected-Last-Msg-Id", "m1")], "x").await;
    assert_eq!(err_codes(&v), (400, 10070), "{v}");
    assert_eq!(err_desc(&v), "wrong last msg ID: m5");
    let v = pub_raw(&c, &a, &[("Nats-Expected-Last-Msg-Id", "m5")], "6").await;
    assert_eq!(v["seq"], json!(6), "{v}");

    // Nats-Expected-Last-Subject-Sequence: b's last is 2; a fresh subject's is 0.
    let v = pub_raw(&c, &b, &[("Nats-Expected-Last-Subject-Sequence", "1")], "x").await;
    assert_eq!(err_codes(&v), (400, 10071), "{v}");
    assert_eq!(err_desc(&v), "wrong last sequence: 2");
    let v = pub_raw(&c, &b, &[("Nats-Expected-Last-Subject-Sequence", "2")], "7").await;
    assert_eq!(v["seq"], json!(7), "{v}");
    let v = pub_raw(&c, &format!("{p}.c"), &[("Nats-Expected-Last-Subject-Sequence", "0")], "8").await;
    assert_eq!(v["seq"], json!(8), "{v}");
    let v = pub_raw(&c, &format!("{p}.c"), &[("Nats-Expected-Last-Subject-Sequence", "0")], "x").await;
    assert_eq!(err_codes(&v), (400, 10071), "{v}");

    // None of the refused messages was stored.
    let info = js.get_stream(&name).await.unwrap().get_info().await.unwrap();
    assert_eq!((info.state.messages, info.state.last_sequence), (8, 8));
    t.stop().await;
}

#[tokio::test]
async fn pull_fetch_batch_messages_with_acks() {
    let test = "pull";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for i in 0..10 {
        publish(&js, &format!("{p}.x"), &format!("{i}")).await;
    }
    let c: consumer::PullConsumer = s.create_consumer(pull_durable("worker")).await.expect("consumer");
    assert_eq!(c.cached_info().num_pending, 10);
    assert_eq!(c.cached_info().config.ack_policy, AckPolicy::Explicit);
    assert_eq!(c.cached_info().config.ack_wait, Duration::from_secs(30), "default ack_wait");
    assert_eq!(c.cached_info().config.max_ack_pending, 1000, "default max_ack_pending");

    // fetch: no wait, what is there now.
    let got: Vec<_> = c.fetch().max_messages(4).messages().await.unwrap().map(|m| m.unwrap()).collect().await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["0", "1", "2", "3"]);
    for (i, m) in got.iter().enumerate() {
        let info = m.info().unwrap();
        assert_eq!(info.stream, name);
        assert_eq!(info.consumer, "worker");
        assert_eq!(info.stream_sequence, i as u64 + 1);
        assert_eq!(info.consumer_sequence, i as u64 + 1);
        assert_eq!(info.delivered, 1);
        assert_eq!(info.pending, 10 - (i as u64 + 1));
        m.double_ack().await.expect("double ack");
    }
    let mut c = c;
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 4);
    assert_eq!(info.delivered.stream_sequence, 4);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 6);

    // batch: waits up to expires.
    let got = batch(&c, 4, Duration::from_secs(2)).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["4", "5", "6", "7"]);
    for m in &got {
        m.ack().await.unwrap();
    }
    // messages: an endless stream of pulls.
    let mut ms = c.messages().await.unwrap();
    for want in ["8", "9"] {
        let m = timeout(WAIT, ms.next()).await.expect("message").unwrap().unwrap();
        assert_eq!(text(&m), want);
        m.double_ack().await.unwrap();
    }
    drop(ms);
    let info = c.info().await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 10);
    assert_eq!(info.ack_floor.consumer_sequence, 10);
    assert_eq!(info.delivered.stream_sequence, 10);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_redelivered, 0);
    // Nothing left: a no-wait fetch ends empty.
    let rest: Vec<_> = c.fetch().max_messages(5).messages().await.unwrap().collect().await;
    assert!(rest.is_empty(), "{} more", rest.len());
    t.stop().await;
}

#[tokio::test]
async fn pull_request_status_messages() {
    let test = "pullstatus";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let _: consumer::PullConsumer = s.create_consumer(pull_durable("w")).await.expect("consumer");
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{name}.w");
    let inbox = c.new_inbox();
    let mut sub = c.subscribe(inbox.clone()).await.unwrap();
    // no_wait on an empty stream: 404 No Messages.
    c.publish_with_reply(next.clone(), inbox.clone(), r#"{"batch":1,"no_wait":true}"#.into()).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.status.map(u16::from), Some(404), "{m:?}");
    // expires passes: 408 Request Timeout.
    c.publish_with_reply(next.clone(), inbox.clone(), r#"{"batch":1,"expires":200000000}"#.into()).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.status.map(u16::from), Some(408), "{m:?}");
    // A message: delivered on the request's reply subject with the $JS.ACK reply.
    publish(&js, &format!("{p}.x"), "hello").await;
    c.publish_with_reply(next.clone(), inbox.clone(), r#"{"batch":1,"expires":5000000000}"#.into()).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.status, None, "{m:?}");
    assert_eq!(m.subject.as_str(), format!("{p}.x"));
    assert_eq!(&m.payload[..], b"hello");
    let reply = m.reply.expect("ack reply").to_string();
    assert!(reply.starts_with(&format!("$JS.ACK.{name}.w.1.1.1.")), "{reply}");
    assert_eq!(reply.split('.').count(), 9, "{reply}");
    // AckSync: the server answers the ack.
    let r = timeout(WAIT, c.request(reply, "+ACK".into())).await.unwrap().expect("ack answered");
    assert!(r.payload.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn push_consumer_heartbeats_and_flow_control() {
    let test = "push";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let deliver = c.new_inbox();
    let mut sub = c.subscribe(deliver.clone()).await.unwrap();
    common::sync(&c).await;
    let cfg = push::Config {
        durable_name: Some("pusher".into()),
        deliver_subject: deliver.clone(),
        idle_heartbeat: Duration::from_millis(200),
        flow_control: true,
        ack_policy: AckPolicy::None,
        ..Default::default()
    };
    let _: consumer::PushConsumer = s.create_consumer(cfg).await.expect("push consumer");
    // Idle: heartbeats.
    let hb = timeout(WAIT, sub.next()).await.expect("heartbeat").unwrap();
    assert_eq!(hb.status.map(u16::from), Some(100), "{hb:?}");
    assert_eq!(hb.description.as_deref(), Some("Idle Heartbeat"));
    // Load: every message arrives, in order; flow-control requests are answered.
    let n = 400usize;
    let body = Bytes::from(vec![b'x'; 4096]);
    for _ in 0..n {
        js.publish(format!("{p}.x"), body.clone()).await.unwrap();
    }
    js.wait_for_acks().await;
    let (mut seen, mut fc) = (0usize, 0usize);
    while seen < n {
        let m = timeout(WAIT, sub.next()).await.unwrap_or_else(|_| panic!("stalled after {seen} of {n}")).unwrap();
        match m.status.map(u16::from) {
            Some(100) if m.description.as_deref() == Some("FlowControl Request") => {
                fc += 1;
                c.publish(m.reply.expect("FC reply subject"), Bytes::new()).await.unwrap();
            }
            Some(100) => {}
            other => {
                assert_eq!(other, None, "{m:?}");
                seen += 1;
                // Ack none still carries the $JS.ACK metadata: token 5 is the stream sequence.
                let reply = m.reply.expect("ack metadata").to_string();
                let sseq: u64 = reply.split('.').nth(5).and_then(|t| t.parse().ok()).expect("stream seq");
                assert_eq!(sseq, seen as u64, "{reply}");
            }
        }
    }
    assert!(fc >= 1, "no flow-control request in {n} messages of 4 KiB");
    t.stop().await;
}

#[tokio::test]
async fn redelivery_after_ack_wait() {
    let test = "ackwait";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    publish(&js, &format!("{p}.x"), "once").await;
    let cfg = pull::Config { ack_wait: Duration::from_millis(500), ..pull_durable("slow") };
    let mut c: consumer::PullConsumer = s.create_consumer(cfg).await.unwrap();
    let first = batch(&c, 1, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].info().unwrap().delivered, 1);
    // Not acked: it comes again after ack_wait.
    let again = batch(&c, 1, Duration::from_secs(5)).await;
    assert_eq!(again.len(), 1);
    let i = again[0].info().unwrap();
    assert_eq!((i.stream_sequence, i.delivered), (1, 2));
    assert_eq!(text(&again[0]), "once");
    again[0].double_ack().await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_redelivered, 0, "acked: no longer counted as redelivered-pending");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 1);
    t.stop().await;
}

#[tokio::test]
async fn nak_with_delay_and_without() {
    let test = "nak";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    publish(&js, &format!("{p}.x"), "n").await;
    let c: consumer::PullConsumer = s.create_consumer(pull_durable("naker")).await.unwrap();
    let m = batch(&c, 1, Duration::from_secs(2)).await.pop().expect("first delivery");
    // -NAK: redelivered at once (well within ack_wait's 30 s).
    m.ack_with(AckKind::Nak(None)).await.unwrap();
    let m = batch(&c, 1, Duration::from_secs(5)).await.pop().expect("redelivery after -NAK");
    assert_eq!(m.info().unwrap().delivered, 2);
    // -NAK {"delay":1s}: not before the delay.
    let delay = Duration::from_secs(1);
    let t0 = Instant::now();
    m.ack_with(AckKind::Nak(Some(delay))).await.unwrap();
    let m = batch(&c, 1, Duration::from_secs(5)).await.pop().expect("redelivery after delayed -NAK");
    assert!(t0.elapsed() >= delay, "redelivered {:?} after a NAK delayed by {delay:?}", t0.elapsed());
    assert_eq!(m.info().unwrap().delivered, 3);
    assert_eq!(m.info().unwrap().stream_sequence, 1);
    m.double_ack().await.unwrap();
    t.stop().await;
}

#[tokio::test]
async fn term_stops_redelivery() {
    let test = "term";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    publish(&js, &format!("{p}.x"), "poison").await;
    let cfg = pull::Config { ack_wait: Duration::from_millis(300), ..pull_durable("termer") };
    let mut c: consumer::PullConsumer = s.create_consumer(cfg).await.unwrap();
    let m = batch(&c, 1, Duration::from_secs(2)).await.pop().expect("delivery");
    m.double_ack_with(AckKind::Term).await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 1);
    // Well past ack_wait, nothing comes back; the next message does.
    assert!(batch(&c, 1, Duration::from_secs(1)).await.is_empty(), "terminated message redelivered");
    publish(&js, &format!("{p}.x"), "good").await;
    let m = batch(&c, 1, Duration::from_secs(5)).await.pop().expect("next message");
    assert_eq!((text(&m).as_str(), m.info().unwrap().stream_sequence), ("good", 2));
    t.stop().await;
}

#[tokio::test]
async fn max_deliver_limits_redeliveries() {
    let test = "maxdeliver";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    publish(&js, &format!("{p}.x"), "m").await;
    let cfg = pull::Config { ack_wait: Duration::from_millis(300), max_deliver: 2, ..pull_durable("md") };
    let mut c: consumer::PullConsumer = s.create_consumer(cfg).await.unwrap();
    assert_eq!(c.cached_info().config.max_deliver, 2);
    let m = batch(&c, 1, Duration::from_secs(2)).await.pop().expect("1st delivery");
    assert_eq!(m.info().unwrap().delivered, 1);
    let m = batch(&c, 1, Duration::from_secs(5)).await.pop().expect("2nd delivery");
    assert_eq!(m.info().unwrap().delivered, 2);
    assert!(batch(&c, 1, Duration::from_millis(1500)).await.is_empty(), "delivered a 3rd time with max_deliver 2");
    let info = c.info().await.unwrap();
    assert_eq!(info.delivered.stream_sequence, 1);
    assert_eq!(info.num_pending, 0);
    t.stop().await;
}

#[tokio::test]
async fn workqueue_retention() {
    let test = "wq";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let cfg = stream::Config { retention: RetentionPolicy::WorkQueue, ..file_stream(&name, &format!("{p}.>")) };
    let s = js.create_stream(cfg).await.expect("create");
    let w: consumer::PullConsumer =
        s.create_consumer(pull::Config { filter_subject: format!("{p}.a"), ..pull_durable("wa") }).await.unwrap();
    // A second consumer on the same subjects is refused (10100), an unfiltered one next to a
    // filtered one too (10099); so is ack none on a pull (10084).
    let body = json!({"stream_name": name, "config": {"durable_name": "wa2", "filter_subject": format!("{p}.a"), "ack_policy": "explicit"}});
    let v = api(&c, &format!("$JS.API.CONSUMER.CREATE.{name}.wa2"), &body.to_string()).await;
    assert_eq!(err_codes(&v), (400, 10100), "{v}");
    let body = json!({"stream_name": name, "config": {"durable_name": "wall", "ack_policy": "explicit"}});
    let v = api(&c, &format!("$JS.API.CONSUMER.CREATE.{name}.wall"), &body.to_string()).await;
    assert_eq!(err_codes(&v), (400, 10099), "{v}");
    assert_eq!(err_desc(&v), "multiple non-filtered consumers not allowed on workqueue stream");
    let body = json!({"stream_name": name, "config": {"durable_name": "wb", "filter_subject": format!("{p}.b"), "ack_policy": "none"}});
    let v = api(&c, &format!("$JS.API.CONSUMER.CREATE.{name}.wb"), &body.to_string()).await;
    assert_eq!(err_codes(&v), (400, 10084), "{v}");

    for i in 0..3 {
        publish(&js, &format!("{p}.a"), &format!("{i}")).await;
    }
    assert_eq!(stream_state(&js, &name).await, (3, 1));
    let got = batch(&w, 3, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 3);
    got[1].double_ack().await.unwrap();
    eventually("workqueue removes the acked message", || async {
        let s = stream_state(&js, &name).await;
        if s == (2, 1) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    got[0].double_ack().await.unwrap();
    got[2].double_ack().await.unwrap();
    eventually("workqueue empties", || async {
        let s = stream_state(&js, &name).await;
        if s.0 == 0 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    let info = js.get_stream(&name).await.unwrap().get_info().await.unwrap();
    assert_eq!((info.state.first_sequence, info.state.last_sequence), (4, 3));
    t.stop().await;
}

#[tokio::test]
async fn interest_retention() {
    let test = "interest";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let cfg = stream::Config { retention: RetentionPolicy::Interest, ..file_stream(&name, &format!("{p}.>")) };
    let s = js.create_stream(cfg).await.expect("create");
    // No consumer: acknowledged but not kept.
    assert_eq!(publish(&js, &format!("{p}.x"), "nobody").await, 1);
    eventually("no interest, no message", || async {
        let s = stream_state(&js, &name).await;
        if s.0 == 0 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    let a: consumer::PullConsumer = s.create_consumer(pull_durable("a")).await.unwrap();
    let b: consumer::PullConsumer = s.create_consumer(pull_durable("b")).await.unwrap();
    publish(&js, &format!("{p}.x"), "1").await;
    publish(&js, &format!("{p}.x"), "2").await;
    assert_eq!(stream_state(&js, &name).await.0, 2);
    for m in batch(&a, 2, Duration::from_secs(2)).await {
        m.double_ack().await.unwrap();
    }
    assert_eq!(stream_state(&js, &name).await.0, 2, "b has not acked yet");
    let bm = batch(&b, 2, Duration::from_secs(2)).await;
    assert_eq!(bm.len(), 2);
    bm[0].double_ack().await.unwrap();
    eventually("acked by both: removed", || async {
        let s = stream_state(&js, &name).await;
        if s == (1, 3) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    // Deleting b releases what only b held.
    assert!(s.delete_consumer("b").await.unwrap().success);
    eventually("consumer deleted: released", || async {
        let s = stream_state(&js, &name).await;
        if s.0 == 0 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn purge_all_subject_keep() {
    let test = "purge";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for i in 0..10 {
        publish(&js, &format!("{p}.{}", if i % 2 == 0 { "a" } else { "b" }), &format!("{i}")).await;
    }
    for i in 0..5 {
        publish(&js, &format!("{p}.c"), &format!("c{i}")).await;
    }
    let r = s.purge().filter(format!("{p}.a")).await.expect("purge subject");
    assert!(r.success);
    assert_eq!(r.purged, 5);
    assert_eq!(stream_state(&js, &name).await, (10, 2));
    let r = s.purge().filter(format!("{p}.c")).keep(2).await.expect("purge filter keep");
    assert_eq!(r.purged, 3);
    let r = s.purge().keep(3).await.expect("purge keep");
    assert_eq!(r.purged, 4);
    assert_eq!(stream_state(&js, &name).await, (3, 10));
    let last = s.get_last_raw_message_by_subject(&format!("{p}.c")).await.unwrap();
    assert_eq!(last.sequence, 15);
    let r = s.purge().sequence(14).await.expect("purge up to a sequence");
    assert_eq!(r.purged, 1, "purge below seq 14 (only 10 is left there)");
    let r = s.purge().await.expect("purge all");
    assert_eq!(r.purged, 2);
    let info = js.get_stream(&name).await.unwrap().get_info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence, info.state.last_sequence), (0, 16, 15));
    // Sequences go on after a purge.
    assert_eq!(publish(&js, &format!("{p}.a"), "after").await, 16);
    t.stop().await;
}

#[tokio::test]
async fn message_get_and_delete() {
    let test = "msgget";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let mut h = HeaderMap::new();
    h.insert("X-Test", "yes");
    js.publish(format!("{p}.a"), "one".into()).await.unwrap().await.unwrap();
    js.publish_with_headers(format!("{p}.b"), h, "two".into()).await.unwrap().await.unwrap();
    js.publish(format!("{p}.a"), "three".into()).await.unwrap().await.unwrap();

    let m = s.get_raw_message(2).await.expect("get 2");
    assert_eq!((m.subject.as_str(), m.sequence, &m.payload[..]), (format!("{p}.b").as_str(), 2, &b"two"[..]));
    assert_eq!(m.headers.get("X-Test").map(|v| v.as_str()), Some("yes"));
    let m = s.get_last_raw_message_by_subject(&format!("{p}.a")).await.expect("last by subject");
    assert_eq!((m.sequence, &m.payload[..]), (3, &b"three"[..]));
    let m =
        s.raw_message_builder().next_by_subject(format!("{p}.a")).sequence(2).send().await.expect("next by subject");
    assert_eq!(m.sequence, 3);
    // The raw reply: base64 data, the subject and sequence.
    let v = api(&c, &format!("$JS.API.STREAM.MSG.GET.{name}"), r#"{"seq":1}"#).await;
    assert_eq!(v["message"]["seq"], json!(1), "{v}");
    assert_eq!(v["message"]["subject"], json!(format!("{p}.a")));
    assert_eq!(v["message"]["data"], json!("b25l"), "base64 of 'one'");

    assert!(s.delete_message(2).await.expect("delete 2"));
    let v = api(&c, &format!("$JS.API.STREAM.MSG.GET.{name}"), r#"{"seq":2}"#).await;
    assert_eq!(err_codes(&v), (404, 10037), "{v}");
    assert_eq!(err_desc(&v), "no message found");
    let v = api(&c, &format!("$JS.API.STREAM.MSG.GET.{name}"), &json!({"last_by_subj": format!("{p}.b")}).to_string())
        .await;
    assert_eq!(err_codes(&v), (404, 10037), "{v}");
    let v = api(&c, &format!("$JS.API.STREAM.MSG.DELETE.{name}"), r#"{"seq":2}"#).await;
    assert_eq!(v["error"]["code"], json!(400), "deleting again: {v}");
    let info = js.get_stream(&name).await.unwrap().get_info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence, info.state.last_sequence), (2, 1, 3));
    t.stop().await;
}

#[tokio::test]
async fn direct_get() {
    let test = "direct";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let cfg = stream::Config { allow_direct: true, ..file_stream(&name, &format!("{p}.>")) };
    let s = js.create_stream(cfg).await.expect("create");
    publish(&js, &format!("{p}.a"), "1").await;
    publish(&js, &format!("{p}.b"), "2").await;
    publish(&js, &format!("{p}.a"), "3").await;
    let m = s.direct_get(2).await.expect("direct get 2");
    assert_eq!((m.subject.as_str(), m.sequence, &m.payload[..]), (format!("{p}.b").as_str(), 2, &b"2"[..]));
    let m = s.direct_get_last_for_subject(format!("{p}.a")).await.expect("direct last");
    assert_eq!((m.sequence, &m.payload[..]), (3, &b"3"[..]));
    let m = s.direct_get_next_for_subject(format!("{p}.a"), Some(2)).await.expect("direct next");
    assert_eq!(m.sequence, 3);
    // Raw: headers name the stream, sequence and subject; a miss is a 404 status.
    let r =
        timeout(WAIT, c.request(format!("$JS.API.DIRECT.GET.{name}"), r#"{"seq":1}"#.into())).await.unwrap().unwrap();
    let h = r.headers.expect("direct get headers");
    assert_eq!(h.get("Nats-Stream").map(|v| v.as_str()), Some(name.as_str()));
    assert_eq!(h.get("Nats-Sequence").map(|v| v.as_str()), Some("1"));
    assert_eq!(h.get("Nats-Subject").map(|v| v.to_string()), Some(format!("{p}.a")));
    assert!(h.get("Nats-Time-Stamp").is_some());
    assert_eq!(&r.payload[..], b"1");
    let r = timeout(WAIT, c.request(format!("$JS.API.DIRECT.GET.{name}.{p}.b"), Bytes::new())).await.unwrap().unwrap();
    assert_eq!(r.headers.unwrap().get("Nats-Sequence").map(|v| v.as_str()), Some("2"));
    let r =
        timeout(WAIT, c.request(format!("$JS.API.DIRECT.GET.{name}"), r#"{"seq":99}"#.into())).await.unwrap().unwrap();
    assert_eq!(r.status.map(u16::from), Some(404), "{r:?}");
    // Without allow_direct nobody answers.
    let other = format!("{name}_NODIRECT");
    js.create_stream(file_stream(&other, &format!("{p}nd.>"))).await.expect("create");
    let e = timeout(WAIT, c.request(format!("$JS.API.DIRECT.GET.{other}"), r#"{"seq":1}"#.into())).await.unwrap();
    assert_eq!(e.unwrap_err().kind(), async_nats::client::RequestErrorKind::NoResponders);
    t.stop().await;
}

#[tokio::test]
async fn kv_put_get_delete_watch_history() {
    let test = "kv";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let bucket = sname(test);
    let kv = js
        .create_key_value(kv::Config { bucket: bucket.clone(), history: 5, ..Default::default() })
        .await
        .expect("create bucket");
    let st = kv.status().await.unwrap();
    assert_eq!(st.history(), 5);
    assert_eq!(st.bucket(), bucket);
    let mut watch = kv.watch_all().await.expect("watch");
    assert_eq!(kv.put("k", "v1".into()).await.unwrap(), 1);
    assert_eq!(kv.put("k", "v2".into()).await.unwrap(), 2);
    assert_eq!(kv.put("j", "w".into()).await.unwrap(), 3);
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    let e = kv.entry("k").await.unwrap().expect("entry");
    assert_eq!((e.revision, e.operation), (2, kv::Operation::Put));
    // Update with the wrong revision fails; with the right one succeeds.
    assert!(kv.update("k", "v3".into(), 1).await.is_err());
    assert_eq!(kv.update("k", "v3".into(), 2).await.unwrap(), 4);
    assert!(kv.create("k", "x".into()).await.is_err(), "create over an existing key");
    kv.delete("k").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), None);
    let hist: Vec<_> = kv.history("k").await.unwrap().map(|e| e.unwrap()).collect().await;
    let ops: Vec<_> =
        hist.iter().map(|e| (e.revision, e.operation, String::from_utf8_lossy(&e.value).into_owned())).collect();
    assert_eq!(
        ops,
        [
            (1, kv::Operation::Put, "v1".into()),
            (2, kv::Operation::Put, "v2".into()),
            (4, kv::Operation::Put, "v3".into()),
            (5, kv::Operation::Delete, String::new())
        ]
    );
    // The watcher saw every change in order.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = timeout(WAIT, watch.next()).await.expect("watch entry").unwrap().unwrap();
        seen.push((e.key.clone(), e.revision, e.operation));
    }
    assert_eq!(
        seen,
        [
            ("k".to_string(), 1, kv::Operation::Put),
            ("k".to_string(), 2, kv::Operation::Put),
            ("j".to_string(), 3, kv::Operation::Put),
            ("k".to_string(), 4, kv::Operation::Put),
            ("k".to_string(), 5, kv::Operation::Delete)
        ]
    );
    let keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    assert_eq!(keys, ["j"]);
    // History is capped at 5 per key.
    for i in 0..7 {
        kv.put("h", format!("{i}").into()).await.unwrap();
    }
    let hist: Vec<_> = kv.history("h").await.unwrap().map(|e| e.unwrap()).collect().await;
    assert_eq!(
        hist.iter().map(|e| String::from_utf8_lossy(&e.value).into_owned()).collect::<Vec<_>>(),
        ["2", "3", "4", "5", "6"]
    );
    t.stop().await;
}

#[tokio::test]
async fn object_store_put_get_list() {
    let test = "obj";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let bucket = sname(test);
    let os = js
        .create_object_store(object_store::Config { bucket: bucket.clone(), ..Default::default() })
        .await
        .expect("create");
    // Bigger than one chunk (128 KiB), not a multiple of it.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let info = os.put("big", &mut big.as_slice()).await.expect("put big");
    assert_eq!(info.size, big.len());
    assert_eq!(info.chunks, 3);
    os.put("small", &mut &b"hello"[..]).await.expect("put small");
    let mut o = os.get("big").await.expect("get");
    let mut got = Vec::new();
    o.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got == big, "object content differs");
    let mut names: Vec<String> = os.list().await.unwrap().map(|i| i.unwrap().name).collect().await;
    names.sort();
    assert_eq!(names, ["big", "small"]);
    os.delete("small").await.unwrap();
    let names: Vec<String> = os.list().await.unwrap().map(|i| i.unwrap().name).collect().await;
    assert_eq!(names, ["big"]);
    assert!(os.get("small").await.is_err());
    t.stop().await;
}

#[tokio::test]
async fn invalid_configs_get_server_errors() {
    let test = "invalid";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let create = |n: &str| format!("$JS.API.STREAM.CREATE.{n}");
    // Name in the subject and body differ.
    let v = api(&c, &create(&name), &json!({"name": "OTHER", "subjects": [format!("{p}.x")]}).to_string()).await;
    assert_eq!(err_codes(&v), (400, 10056), "{v}");
    // Malformed JSON.
    let v = api(&c, &create(&name), "{not json").await;
    assert_eq!(err_codes(&v), (400, 10025), "{v}");
    // duplicate_window longer than max_age.
    let body = json!({"name": name, "subjects": [format!("{p}.x")], "max_age": 1_000_000_000u64, "duplicate_window": 5_000_000_000u64});
    let v = api(&c, &create(&name), &body.to_string()).await;
    assert_eq!(err_codes(&v), (500, 10052), "{v}");
    // Negative max_age.
    let body = json!({"name": name, "subjects": [format!("{p}.x")], "max_age": -1});
    let v = api(&c, &create(&name), &body.to_string()).await;
    assert_eq!(err_codes(&v), (500, 10052), "{v}");
    // Replicas > 1 on one server.
    let body = json!({"name": name, "subjects": [format!("{p}.x")], "num_replicas": 3});
    let v = api(&c, &create(&name), &body.to_string()).await;
    assert_eq!(err_codes(&v), (500, 10074), "{v}");
    assert_eq!(err_desc(&v), "replicas > 1 not supported in non-clustered mode");
    // Overlapping subjects with another stream.
    js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let body = json!({"name": format!("{name}2"), "subjects": [format!("{p}.x.*")]});
    let v = api(&c, &create(&format!("{name}2")), &body.to_string()).await;
    assert_eq!(err_codes(&v), (400, 10065), "{v}");
    assert_eq!(err_desc(&v), "subjects overlap with an existing stream");
    // The typed client gets the same error.
    let err = js.create_stream(file_stream(&format!("{name}2"), &format!("{p}.x.*"))).await.unwrap_err();
    match err.kind() {
        async_nats::jetstream::context::CreateStreamErrorKind::JetStream(e) => {
            assert_eq!((e.code(), e.error_code().0), (400, 10065))
        }
        other => panic!("{other:?}"),
    }

    // Consumers.
    let ccreate = |cn: &str| format!("$JS.API.CONSUMER.CREATE.{name}.{cn}");
    let v = api(
        &c,
        &ccreate("c1"),
        &json!({"stream_name": name, "config": {"durable_name": "c2", "ack_policy": "explicit"}}).to_string(),
    )
    .await;
    assert_eq!(v["error"]["code"], json!(400), "durable_name differs from the subject's name: {v}");
    let v = api(&c, &ccreate("c1"), &json!({"stream_name": "OTHER", "config": {"name": "c1"}}).to_string()).await;
    assert_eq!(err_codes(&v), (400, 10056), "{v}");
    let v = api(
        &c,
        &ccreate("c1"),
        &json!({"stream_name": name, "config": {"name": "c1", "deliver_policy": "by_start_sequence"}}).to_string(),
    )
    .await;
    assert_eq!(err_codes(&v), (400, 10094), "by_start_sequence without opt_start_seq: {v}");
    let v = api(
        &c,
        &ccreate("c1"),
        &json!({"stream_name": name, "config": {"name": "c1", "flow_control": true}}).to_string(),
    )
    .await;
    assert_eq!(v["error"]["code"], json!(400), "flow control on a pull consumer: {v}");
    let v = api(&c, &ccreate("c1"), "{bad").await;
    assert_eq!(err_codes(&v), (400, 10025), "{v}");
    // create vs update actions.
    let v = api(
        &c,
        &ccreate("c1"),
        &json!({"stream_name": name, "action": "update", "config": {"name": "c1", "ack_policy": "explicit"}})
            .to_string(),
    )
    .await;
    assert_eq!(err_codes(&v), (400, 10149), "{v}");
    let ok = api(
        &c,
        &ccreate("c1"),
        &json!({"stream_name": name, "action": "create", "config": {"name": "c1", "ack_policy": "explicit"}})
            .to_string(),
    )
    .await;
    assert_eq!(ok["name"], json!("c1"), "{ok}");
    let v = api(&c, &ccreate("c1"), &json!({"stream_name": name, "action": "create", "config": {"name": "c1", "ack_policy": "explicit", "max_deliver": 3}}).to_string()).await;
    assert_eq!(err_codes(&v), (400, 10148), "{v}");
    t.stop().await;
}

#[tokio::test]
async fn unknown_stream_and_consumer_errors() {
    let test = "unknown";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    for api_subject in [
        format!("$JS.API.STREAM.INFO.{name}"),
        format!("$JS.API.STREAM.DELETE.{name}"),
        format!("$JS.API.STREAM.PURGE.{name}"),
        format!("$JS.API.STREAM.MSG.GET.{name}"),
        format!("$JS.API.CONSUMER.INFO.{name}.c"),
        format!("$JS.API.CONSUMER.NAMES.{name}"),
    ] {
        let body = if api_subject.contains("MSG.GET") { r#"{"seq":1}"# } else { "" };
        let v = api(&c, &api_subject, body).await;
        assert_eq!(err_codes(&v), (404, 10059), "{api_subject}: {v}");
        assert_eq!(err_desc(&v), "stream not found", "{api_subject}");
    }
    let v = api(
        &c,
        &format!("$JS.API.CONSUMER.CREATE.{name}.c"),
        &json!({"stream_name": name, "config": {"name": "c"}}).to_string(),
    )
    .await;
    assert_eq!(err_codes(&v), (404, 10059), "{v}");
    let err = js.get_stream(&name).await.unwrap_err();
    match err.kind() {
        async_nats::jetstream::context::GetStreamErrorKind::JetStream(e) => {
            assert_eq!((e.code(), e.error_code().0), (404, 10059))
        }
        other => panic!("{other:?}"),
    }

    js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for api_subject in [format!("$JS.API.CONSUMER.INFO.{name}.nope"), format!("$JS.API.CONSUMER.DELETE.{name}.nope")] {
        let v = api(&c, &api_subject, "").await;
        assert_eq!(err_codes(&v), (404, 10014), "{api_subject}: {v}");
        assert_eq!(err_desc(&v), "consumer not found");
    }
    t.stop().await;
}

#[tokio::test]
async fn restart_keeps_everything() {
    let test = "restart";
    let Some(t) = Target::new(test).await else { return };
    let Some((server, dir)) = t.local else {
        println!("SKIP {test}: needs an in-process server to restart (external server at {})", t.url);
        return;
    };
    let name = sname(test);
    let p = subj(test);
    {
        let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
        for i in 1..=5 {
            let m =
                jetstream::message::PublishMessage::build().message_id(format!("id{i}")).payload(format!("{i}").into());
            js.send_publish(format!("{p}.x"), m).await.unwrap().await.unwrap();
        }
        let c: consumer::PullConsumer = s.create_consumer(pull_durable("keep")).await.unwrap();
        let got = batch(&c, 3, Duration::from_secs(2)).await;
        got[0].double_ack().await.unwrap();
        got[1].double_ack().await.unwrap();
        let kv = js.create_key_value(kv::Config { bucket: format!("{name}_KV"), ..Default::default() }).await.unwrap();
        kv.put("k", "persisted".into()).await.unwrap();
    }
    server.stop().await;
    let server = common::start(weir_js_config(&dir)).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let info = js.get_stream(&name).await.expect("stream after restart").get_info().await.unwrap();
    assert_eq!((info.state.messages, info.state.first_sequence, info.state.last_sequence), (5, 1, 5));
    let s = js.get_stream(&name).await.unwrap();
    assert_eq!(&s.get_raw_message(4).await.unwrap().payload[..], b"4");
    let mut c: consumer::PullConsumer = s.get_consumer("keep").await.expect("consumer after restart");
    let ci = c.info().await.unwrap().clone();
    assert_eq!(ci.ack_floor.stream_sequence, 2);
    assert_eq!(ci.delivered.stream_sequence, 3);
    assert_eq!(ci.num_pending, 2);
    // Dedup ids survive too.
    let m = jetstream::message::PublishMessage::build().message_id("id2").payload("again".into());
    let ack = js.send_publish(format!("{p}.x"), m).await.unwrap().await.unwrap();
    assert_eq!((ack.sequence, ack.duplicate), (2, true));
    let kv = js.get_key_value(format!("{name}_KV")).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"persisted"[..]));
    // The unacked third message comes next (after ack_wait) or the fourth; both are fine,
    // but never the acked first two.
    let m = batch(&c, 1, Duration::from_secs(2)).await;
    assert!(m.iter().all(|m| m.info().unwrap().stream_sequence >= 3), "acked message redelivered after restart");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn account_info_and_listing() {
    let test = "listing";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for cn in ["c2", "c1"] {
        let _: consumer::PullConsumer = s.create_consumer(pull_durable(cn)).await.unwrap();
    }
    publish(&js, &format!("{p}.a"), "1").await;
    publish(&js, &format!("{p}.b"), "2").await;
    publish(&js, &format!("{p}.a"), "3").await;
    let acct = js.query_account().await.expect("$JS.API.INFO");
    assert!(acct.streams >= 1 && acct.consumers >= 2, "{acct:?}");
    let v = api(&c, "$JS.API.INFO", "").await;
    assert_eq!(v["type"], json!("io.nats.jetstream.api.v1.account_info_response"), "{v}");
    assert!(v["api"]["level"].as_u64().is_some(), "api.level: {v}");
    // STREAM.LIST and NAMES filtered by a subject (raw: the server may hold many streams),
    // with another stream present that the filter must leave out.
    js.create_stream(file_stream(&format!("{name}_OTHER"), &format!("{p}other.>"))).await.expect("create other");
    let body = json!({"subject": format!("{p}.a")}).to_string();
    let v = api(&c, "$JS.API.STREAM.LIST", &body).await;
    let bug = format!("STREAM.LIST ignores the subject filter: total {} (want 1)", v["total"]);
    t.known_weir_bug(test, v["total"] == json!(1), &bug);
    let ours: Vec<&Value> =
        v["streams"].as_array().expect("streams").iter().filter(|i| i["config"]["name"] == json!(name)).collect();
    assert_eq!(ours.len(), 1, "{v}");
    assert_eq!(ours[0]["state"]["messages"], json!(3));
    let v = api(&c, "$JS.API.STREAM.NAMES", &body).await;
    assert_eq!(v["streams"], json!([name]), "{v}");
    // Consumer names and list, sorted by name.
    let names: Vec<String> = s.consumer_names().map(|n| n.unwrap()).collect().await;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["c1", "c2"]);
    let infos: Vec<_> = s.consumers().map(|i| i.unwrap()).collect().await;
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.num_pending == 3 && i.stream_name == name), "{infos:?}");
    // Which stream has a subject; per-subject counts.
    assert_eq!(js.stream_by_subject(format!("{p}.zz")).await.expect("by subject"), name);
    let mut s = js.get_stream(&name).await.unwrap();
    let info = s.info_with_subjects(format!("{p}.>")).await.unwrap().collect::<Vec<_>>().await;
    let mut counts: Vec<(String, usize)> = info.into_iter().map(|r| r.unwrap()).collect();
    counts.sort();
    assert_eq!(counts, [(format!("{p}.a"), 2), (format!("{p}.b"), 1)]);
    assert_eq!(s.info().await.unwrap().state.consumer_count, 2);
    t.stop().await;
}

#[tokio::test]
async fn limits_and_discard_policies() {
    let test = "limits";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    // max_msgs with discard old: the oldest go.
    let old = format!("{name}_OLD");
    js.create_stream(stream::Config { max_messages: 3, ..file_stream(&old, &format!("{p}.old.>")) }).await.unwrap();
    for i in 0..5 {
        publish(&js, &format!("{p}.old.x"), &format!("{i}")).await;
    }
    assert_eq!(stream_state(&js, &old).await, (3, 3));
    // discard new: the newcomer is refused.
    let new = format!("{name}_NEW");
    let cfg = stream::Config {
        max_messages: 2,
        discard: stream::DiscardPolicy::New,
        ..file_stream(&new, &format!("{p}.new.>"))
    };
    js.create_stream(cfg).await.unwrap();
    publish(&js, &format!("{p}.new.x"), "1").await;
    publish(&js, &format!("{p}.new.x"), "2").await;
    let v = pub_raw(&c, &format!("{p}.new.x"), &[], "3").await;
    assert_eq!(err_codes(&v), (503, 10077), "{v}");
    assert_eq!(err_desc(&v), "maximum messages exceeded");
    assert_eq!(stream_state(&js, &new).await, (2, 1));
    // max_msgs_per_subject: one per subject kept.
    let per = format!("{name}_PER");
    js.create_stream(stream::Config { max_messages_per_subject: 1, ..file_stream(&per, &format!("{p}.per.>")) })
        .await
        .unwrap();
    for s in ["a", "a", "b", "a"] {
        publish(&js, &format!("{p}.per.{s}"), s).await;
    }
    let st = js.get_stream(&per).await.unwrap().get_info().await.unwrap().state;
    assert_eq!((st.messages, st.first_sequence, st.last_sequence), (2, 3, 4));
    // max_msg_size: too big is refused.
    let size = format!("{name}_SIZE");
    js.create_stream(stream::Config { max_message_size: 10, ..file_stream(&size, &format!("{p}.size.>")) })
        .await
        .unwrap();
    publish(&js, &format!("{p}.size.x"), "0123456789").await;
    let v = pub_raw(&c, &format!("{p}.size.x"), &[], "0123456789A").await;
    assert_eq!(err_codes(&v), (400, 10054), "{v}");
    assert_eq!(err_desc(&v), "message size exceeds maximum allowed");
    // max_bytes with discard old keeps the total under the limit.
    let bytes = format!("{name}_BYTES");
    js.create_stream(stream::Config { max_bytes: 1000, ..file_stream(&bytes, &format!("{p}.bytes.>")) }).await.unwrap();
    for _ in 0..20 {
        publish(&js, &format!("{p}.bytes.x"), &"x".repeat(100)).await;
    }
    let st = js.get_stream(&bytes).await.unwrap().get_info().await.unwrap().state;
    assert!(st.bytes <= 1000 && st.messages >= 1 && st.last_sequence == 20, "{st:?}");
    t.stop().await;
}

#[tokio::test]
async fn max_age_expires_messages() {
    let test = "maxage";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let info = js
        .create_stream(stream::Config { max_age: Duration::from_secs(1), ..file_stream(&name, &format!("{p}.>")) })
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(1), "duplicate window lowered to max_age");
    publish(&js, &format!("{p}.x"), "1").await;
    publish(&js, &format!("{p}.x"), "2").await;
    eventually("messages expire after max_age", || async {
        let s = stream_state(&js, &name).await;
        if s == (0, 3) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn rollup_and_deny_flags() {
    let test = "rollup";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    js.create_stream(stream::Config { allow_rollup: true, ..file_stream(&name, &format!("{p}.r.>")) }).await.unwrap();
    for s in ["a", "a", "b", "a"] {
        publish(&js, &format!("{p}.r.{s}"), s).await;
    }
    let v = pub_raw(&c, &format!("{p}.r.a"), &[("Nats-Rollup", "sub")], "a-total").await;
    assert_eq!(v["seq"], json!(5), "{v}");
    let st = js.get_stream(&name).await.unwrap().get_info().await.unwrap().state;
    assert_eq!((st.messages, st.first_sequence), (2, 3), "b (3) and the roll-up (5) remain");
    let v = pub_raw(&c, &format!("{p}.r.c"), &[("Nats-Rollup", "all")], "everything").await;
    assert_eq!(v["seq"], json!(6), "{v}");
    assert_eq!(stream_state(&js, &name).await, (1, 6));
    let v = pub_raw(&c, &format!("{p}.r.c"), &[("Nats-Rollup", "bogus")], "x").await;
    assert_eq!(err_codes(&v).1, 10111, "{v}");
    // Without allow_rollup_hdrs a roll-up is refused.
    let plain = format!("{name}_PLAIN");
    js.create_stream(file_stream(&plain, &format!("{p}.p.>"))).await.unwrap();
    let v = pub_raw(&c, &format!("{p}.p.a"), &[("Nats-Rollup", "sub")], "x").await;
    assert_eq!(err_codes(&v), (500, 10111), "{v}");
    assert_eq!(err_desc(&v), "rollup not permitted");
    // deny_delete / deny_purge.
    let deny = format!("{name}_DENY");
    let cfg = stream::Config { deny_delete: true, deny_purge: true, ..file_stream(&deny, &format!("{p}.d.>")) };
    let s = js.create_stream(cfg).await.unwrap();
    publish(&js, &format!("{p}.d.a"), "x").await;
    let v = api(&c, &format!("$JS.API.STREAM.MSG.DELETE.{deny}"), r#"{"seq":1}"#).await;
    assert_eq!(err_codes(&v), (500, 10057), "{v}");
    assert_eq!(err_desc(&v), "message delete not permitted");
    let v = api(&c, &format!("$JS.API.STREAM.PURGE.{deny}"), "").await;
    assert_eq!(err_codes(&v), (500, 10110), "{v}");
    assert_eq!(err_desc(&v), "stream purge not permitted");
    assert_eq!(stream_state(&js, &deny).await, (1, 1));
    drop(s);
    // sealed: no more messages, no purge.
    let sealed = format!("{name}_SEALED");
    let cfg = file_stream(&sealed, &format!("{p}.s.>"));
    js.create_stream(cfg.clone()).await.unwrap();
    publish(&js, &format!("{p}.s.a"), "x").await;
    let info = js.update_stream(stream::Config { sealed: true, ..cfg }).await.expect("seal");
    assert!(info.config.sealed);
    let v = pub_raw(&c, &format!("{p}.s.a"), &[], "y").await;
    assert_eq!(err_codes(&v), (400, 10109), "publish to a sealed stream: {v}");
    assert_eq!(err_desc(&v), "invalid operation on sealed stream");
    let v = api(&c, &format!("$JS.API.STREAM.PURGE.{sealed}"), "").await;
    assert_eq!(err_codes(&v), (400, 10109), "purge of a sealed stream: {v}");
    assert_eq!(stream_state(&js, &sealed).await, (1, 1));
    t.stop().await;
}

#[tokio::test]
async fn deliver_policies_and_filters() {
    let test = "deliver";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for sub in ["a", "b", "a", "b", "c"] {
        publish(&js, &format!("{p}.{sub}"), sub).await;
    }
    let seqs = |ms: Vec<jetstream::Message>| ms.iter().map(|m| m.info().unwrap().stream_sequence).collect::<Vec<_>>();
    let mk = |n: &str, deliver_policy: DeliverPolicy| pull::Config { deliver_policy, ..pull_durable(n) };
    let last: consumer::PullConsumer = s.create_consumer(mk("last", DeliverPolicy::Last)).await.unwrap();
    let new: consumer::PullConsumer = s.create_consumer(mk("new", DeliverPolicy::New)).await.unwrap();
    let from3: consumer::PullConsumer =
        s.create_consumer(mk("from3", DeliverPolicy::ByStartSequence { start_sequence: 3 })).await.unwrap();
    let lps: consumer::PullConsumer = s
        .create_consumer(pull::Config { filter_subject: format!("{p}.>"), ..mk("lps", DeliverPolicy::LastPerSubject) })
        .await
        .unwrap();
    let multi: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            filter_subjects: vec![format!("{p}.a"), format!("{p}.c")],
            ..pull_durable("multi")
        })
        .await
        .unwrap();
    assert_eq!(multi.cached_info().num_pending, 3);
    assert_eq!(from3.cached_info().num_pending, 3);
    publish(&js, &format!("{p}.a"), "a6").await;
    let w = Duration::from_millis(1500);
    assert_eq!(seqs(batch(&last, 10, w).await), [5, 6]);
    assert_eq!(seqs(batch(&new, 10, w).await), [6]);
    assert_eq!(seqs(batch(&from3, 10, w).await), [3, 4, 5, 6]);
    assert_eq!(seqs(batch(&lps, 10, w).await), [3, 4, 5, 6], "last per subject a=3, b=4, c=5 at creation, then a=6");
    assert_eq!(seqs(batch(&multi, 10, w).await), [1, 3, 5, 6]);
    // A filter_subject and filter_subjects together is refused (10136? 400).
    let c = t.client().await;
    let body = json!({"stream_name": name, "config": {"name": "both", "filter_subject": format!("{p}.a"), "filter_subjects": [format!("{p}.b")]}});
    let v = api(&c, &format!("$JS.API.CONSUMER.CREATE.{name}.both"), &body.to_string()).await;
    assert_eq!(err_codes(&v).0, 400, "{v}");
    t.stop().await;
}

#[tokio::test]
async fn ack_all_and_max_ack_pending() {
    let test = "ackall";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for i in 0..5 {
        publish(&js, &format!("{p}.x"), &format!("{i}")).await;
    }
    // ack all: acking the third acks the first two as well.
    let mut all: consumer::PullConsumer =
        s.create_consumer(pull::Config { ack_policy: AckPolicy::All, ..pull_durable("all") }).await.unwrap();
    let got = batch(&all, 3, Duration::from_secs(2)).await;
    got[2].double_ack().await.unwrap();
    let info = all.info().await.unwrap();
    assert_eq!((info.ack_floor.stream_sequence, info.num_ack_pending), (3, 0));
    // max_ack_pending 2: no more than two outstanding.
    let cap: consumer::PullConsumer =
        s.create_consumer(pull::Config { max_ack_pending: 2, ..pull_durable("cap") }).await.unwrap();
    let got = batch(&cap, 5, Duration::from_secs(1)).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["0", "1"]);
    for m in &got {
        m.double_ack().await.unwrap();
    }
    let got = batch(&cap, 5, Duration::from_secs(1)).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["2", "3"]);
    t.stop().await;
}

#[tokio::test]
async fn ephemeral_consumer_goes_away_when_inactive() {
    let test = "ephemeral";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let cfg = pull::Config { inactive_threshold: Duration::from_millis(500), ..Default::default() };
    let e: consumer::PullConsumer = s.create_consumer(cfg).await.expect("ephemeral");
    let cname = e.cached_info().name.clone();
    assert!(!cname.is_empty());
    assert_eq!(e.cached_info().config.durable_name, None);
    assert_eq!(e.cached_info().config.inactive_threshold, Duration::from_millis(500));
    eventually("inactive ephemeral removed", || async {
        let v = api(&c, &format!("$JS.API.CONSUMER.INFO.{name}.{cname}"), "").await;
        if v.get("error").map(|_| err_codes(&v)) == Some((404, 10014)) { Ok(()) } else { Err(v.to_string()) }
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn memory_stream_and_headers_only() {
    let test = "memory";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let cfg = stream::Config { storage: StorageType::Memory, ..file_stream(&name, &format!("{p}.>")) };
    let s = js.create_stream(cfg).await.expect("create");
    assert_eq!(js.get_stream(&name).await.unwrap().get_info().await.unwrap().config.storage, StorageType::Memory);
    let mut h = HeaderMap::new();
    h.insert("X-Kind", "memo");
    js.publish_with_headers(format!("{p}.x"), h, "hello".into()).await.unwrap().await.unwrap();
    let c: consumer::PullConsumer =
        s.create_consumer(pull::Config { headers_only: true, ..pull_durable("ho") }).await.unwrap();
    let m = batch(&c, 1, Duration::from_secs(2)).await.pop().expect("delivery");
    assert!(m.payload.is_empty(), "headers_only delivered a body");
    let h = m.headers.as_ref().expect("headers");
    assert_eq!(h.get("Nats-Msg-Size").map(|v| v.as_str()), Some("5"));
    assert_eq!(h.get("X-Kind").map(|v| v.as_str()), Some("memo"));
    t.stop().await;
}

#[tokio::test]
async fn consumer_update_and_pause() {
    let test = "cupdate";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let _: consumer::PullConsumer = s.create_consumer(pull_durable("u")).await.unwrap();
    let upd = pull::Config { description: Some("changed".into()), max_ack_pending: 50, ..pull_durable("u") };
    let info = s.update_consumer(upd).await.expect("update").cached_info().clone();
    assert_eq!((info.config.description.as_deref(), info.config.max_ack_pending), (Some("changed"), 50));
    let bad = pull::Config { deliver_policy: DeliverPolicy::New, ..pull_durable("u") };
    assert!(s.update_consumer(bad).await.is_err(), "deliver_policy may not change");
    // PAUSE until far ahead, then resume.
    let v = api(&c, &format!("$JS.API.CONSUMER.PAUSE.{name}.u"), r#"{"pause_until":"2099-01-01T00:00:00Z"}"#).await;
    assert_eq!(v["paused"], json!(true), "{v}");
    let ci = api(&c, &format!("$JS.API.CONSUMER.INFO.{name}.u"), "").await;
    assert_eq!(ci["paused"], json!(true), "{ci}");
    let v = api(&c, &format!("$JS.API.CONSUMER.PAUSE.{name}.u"), "{}").await;
    assert_eq!(v["paused"], json!(false), "{v}");
    let ci = api(&c, &format!("$JS.API.CONSUMER.INFO.{name}.u"), "").await;
    assert_ne!(ci["paused"], json!(true), "{ci}");
    t.stop().await;
}

#[tokio::test]
async fn pull_max_bytes_and_ordered_consumer() {
    let test = "ordered";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for i in 0..5 {
        publish(&js, &format!("{p}.x"), &format!("{i}{}", "x".repeat(100))).await;
    }
    let _: consumer::PullConsumer = s.create_consumer(pull_durable("mb")).await.unwrap();
    let inbox = c.new_inbox();
    let mut sub = c.subscribe(inbox.clone()).await.unwrap();
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{name}.mb");
    c.publish_with_reply(next, inbox, r#"{"batch":1,"max_bytes":10,"expires":2000000000}"#.into()).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.status.map(u16::from), Some(409), "{m:?}");
    assert_eq!(m.description.as_deref(), Some("Message Size Exceeds MaxBytes"));
    // An ordered consumer (async-nats recreates it as needed) sees every message in order.
    let o = s.create_consumer(pull::OrderedConfig::default()).await.expect("ordered");
    let mut ms = o.messages().await.unwrap();
    for i in 0..5 {
        let m = timeout(WAIT, ms.next()).await.expect("ordered message").unwrap().unwrap();
        assert!(text(&m).starts_with(&format!("{i}x")), "{}", text(&m));
    }
    t.stop().await;
}

#[tokio::test]
async fn per_message_ttl() {
    let test = "ttl";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    js.create_stream(stream::Config { allow_message_ttl: true, ..file_stream(&name, &format!("{p}.>")) })
        .await
        .unwrap();
    let v = pub_raw(&c, &format!("{p}.x"), &[("Nats-TTL", "1s")], "short").await;
    assert_eq!(v["seq"], json!(1), "{v}");
    publish(&js, &format!("{p}.x"), "forever").await;
    eventually("the TTL message expires, the other stays", || async {
        let s = stream_state(&js, &name).await;
        if s == (1, 2) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;
    // Without allow_msg_ttl a TTL header is refused.
    let plain = format!("{name}_PLAIN");
    js.create_stream(file_stream(&plain, &format!("{p}plain.>"))).await.unwrap();
    let v = pub_raw(&c, &format!("{p}plain.x"), &[("Nats-TTL", "1s")], "x").await;
    assert_eq!(err_codes(&v).0, 400, "{v}");
    t.stop().await;
}

/// Seconds since the Unix epoch by this machine's clock (server timestamps are checked against it).
fn unix_now() -> i64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "a test outside the simulation compares server timestamps with the wall clock"
    )]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn api_response_shapes_and_timestamps() {
    let test = "shapes";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    // STREAM.CREATE: the create response with did_create, config, created, state, ts.
    let v = api(
        &c,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        &json!({"name": name, "subjects": [format!("{p}.>")]}).to_string(),
    )
    .await;
    assert_eq!(v["type"], json!("io.nats.jetstream.api.v1.stream_create_response"), "{v}");
    assert_eq!(v["did_create"], json!(true), "{v}");
    for k in ["config", "created", "state", "ts"] {
        assert!(v.get(k).is_some(), "stream create response lacks {k}: {v}");
    }
    // STREAM.INFO is paged: total/offset/limit always present.
    let v = api(&c, &format!("$JS.API.STREAM.INFO.{name}"), "").await;
    assert_eq!(v["type"], json!("io.nats.jetstream.api.v1.stream_info_response"), "{v}");
    for k in ["total", "offset", "limit"] {
        assert!(v.get(k).is_some(), "stream info lacks {k}: {v}");
    }
    assert_eq!(v["state"]["first_ts"], json!("0001-01-01T00:00:00Z"), "an empty stream's first_ts: {v}");
    // The PubAck is exactly {stream, seq}.
    let v = pub_raw(&c, &format!("{p}.x"), &[], "x").await;
    let mut k = keys(&v);
    k.sort();
    assert_eq!(k, ["seq", "stream"], "{v}");
    // Timestamps are wall-clock time (within 5 minutes of this machine's clock).
    let now = unix_now();
    let s = js.get_stream(&name).await.unwrap();
    let info = s.get_info().await.unwrap();
    assert!((info.created.unix_timestamp() - now).abs() < 300, "created {:?}", info.created);
    assert!((info.state.last_timestamp.unix_timestamp() - now).abs() < 300, "last_ts {:?}", info.state.last_timestamp);
    let m = s.get_raw_message(1).await.unwrap();
    assert!((m.time.unix_timestamp() - now).abs() < 300, "message time {:?}", m.time);
    let cons: consumer::PullConsumer = s.create_consumer(pull_durable("shape")).await.unwrap();
    let d = batch(&cons, 1, Duration::from_secs(2)).await.pop().expect("delivery");
    assert!((d.info().unwrap().published.unix_timestamp() - now).abs() < 300, "ack-subject timestamp");
    // CONSUMER.INFO and the delete responses.
    let v = api(&c, &format!("$JS.API.CONSUMER.INFO.{name}.shape"), "").await;
    assert_eq!(v["type"], json!("io.nats.jetstream.api.v1.consumer_info_response"), "{v}");
    for k in [
        "stream_name",
        "name",
        "created",
        "config",
        "delivered",
        "ack_floor",
        "num_ack_pending",
        "num_redelivered",
        "num_waiting",
        "num_pending",
        "ts",
    ] {
        assert!(v.get(k).is_some(), "consumer info lacks {k}: {v}");
    }
    let v = api(&c, &format!("$JS.API.CONSUMER.DELETE.{name}.shape"), "").await;
    assert_eq!(
        (v["type"].clone(), v["success"].clone()),
        (json!("io.nats.jetstream.api.v1.consumer_delete_response"), json!(true)),
        "{v}"
    );
    let v = api(&c, &format!("$JS.API.STREAM.DELETE.{name}"), "").await;
    assert_eq!(
        (v["type"].clone(), v["success"].clone()),
        (json!("io.nats.jetstream.api.v1.stream_delete_response"), json!(true)),
        "{v}"
    );
    t.stop().await;
}

// ----- consumer-side features of 2.11-2.14: priority groups, pause reply, reset, limits -----

/// Send a raw pull request `body` for `consumer` of `stream` with reply `inbox`.
async fn raw_pull(c: &Client, stream: &str, consumer: &str, inbox: &str, body: &str) {
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
    c.publish_with_reply(next, inbox.to_string(), body.to_string().into()).await.unwrap();
    c.flush().await.unwrap();
}

#[tokio::test]
async fn priority_groups_pinned_overflow_prioritized() {
    let test = "priogroups";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");

    // pinned_client: the client's group stream gets the pin on its messages; info shows it;
    // UNPIN drops it.
    let mut pinned: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("pinned".into()),
            ack_policy: AckPolicy::None,
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec!["A".into()],
            priority_timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .await
        .expect("pinned consumer");
    assert_eq!(pinned.cached_info().config.priority_timeout, Duration::from_secs(5));
    publish(&js, &format!("{p}.1"), "one").await;
    let mut msgs = pinned.stream().group("A").expires(Duration::from_millis(500)).messages().await.unwrap();
    let m = timeout(WAIT, msgs.next()).await.expect("pinned message").unwrap().unwrap();
    let pin = m.headers.as_ref().and_then(|h| h.get("Nats-Pin-Id")).expect("Nats-Pin-Id").to_string();
    let info = pinned.info().await.unwrap().clone();
    assert_eq!(info.priority_groups[0].group, "A");
    assert_eq!(info.priority_groups[0].pinned_client_id.as_deref(), Some(pin.as_str()));
    drop(msgs);
    s.unpin_consumer("pinned", "A").await.expect("unpin");
    assert_eq!(pinned.info().await.unwrap().priority_groups[0].pinned_client_id, None);
    // A request carrying another pin while one is held: 423.
    let inbox = c.new_inbox();
    let mut sub = c.subscribe(inbox.clone()).await.unwrap();
    raw_pull(&c, &name, "pinned", &inbox, r#"{"batch":1,"expires":2000000000,"group":"A"}"#).await;
    publish(&js, &format!("{p}.2"), "two").await;
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert!(m.headers.as_ref().and_then(|h| h.get("Nats-Pin-Id")).is_some(), "{m:?}");
    raw_pull(&c, &name, "pinned", &inbox, r#"{"batch":1,"expires":2000000000,"group":"A","id":"other"}"#).await;
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.status.map(u16::from), Some(423), "{m:?}");
    // The group must be one of the consumer's.
    raw_pull(&c, &name, "pinned", &inbox, r#"{"batch":1,"expires":2000000000,"group":"B"}"#).await;
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(
        (m.status.map(u16::from), m.description.as_deref()),
        (Some(400), Some("Bad Request - Invalid Priority Group"))
    );

    // overflow: a request with min_pending waits until that many messages are pending.
    let s2 = js.create_stream(file_stream(&format!("{name}O"), &format!("{p}o.>"))).await.expect("create");
    let _: consumer::PullConsumer = s2
        .create_consumer(pull::Config {
            durable_name: Some("over".into()),
            priority_policy: consumer::PriorityPolicy::Overflow,
            priority_groups: vec!["A".into()],
            ..Default::default()
        })
        .await
        .expect("overflow consumer");
    let inbox = c.new_inbox();
    let mut sub = c.subscribe(inbox.clone()).await.unwrap();
    raw_pull(
        &c,
        &format!("{name}O"),
        "over",
        &inbox,
        r#"{"batch":1,"expires":5000000000,"group":"A","min_pending":3}"#,
    )
    .await;
    publish(&js, &format!("{p}o.1"), "1").await;
    publish(&js, &format!("{p}o.2"), "2").await;
    assert!(timeout(Duration::from_millis(300), sub.next()).await.is_err(), "2 pending is below the mark");
    publish(&js, &format!("{p}o.3"), "3").await;
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!((m.status, &m.payload[..]), (None, &b"1"[..]));

    // prioritized: the lower priority is served first.
    let s3 = js.create_stream(file_stream(&format!("{name}P"), &format!("{p}p.>"))).await.expect("create");
    let _: consumer::PullConsumer = s3
        .create_consumer(pull::Config {
            durable_name: Some("prio".into()),
            priority_policy: consumer::PriorityPolicy::Prioritized,
            priority_groups: vec!["A".into()],
            ..Default::default()
        })
        .await
        .expect("prioritized consumer");
    let (low, high) = (c.new_inbox(), c.new_inbox());
    let mut low_sub = c.subscribe(low.clone()).await.unwrap();
    let mut high_sub = c.subscribe(high.clone()).await.unwrap();
    raw_pull(&c, &format!("{name}P"), "prio", &low, r#"{"batch":1,"expires":5000000000,"group":"A","priority":5}"#)
        .await;
    raw_pull(&c, &format!("{name}P"), "prio", &high, r#"{"batch":1,"expires":5000000000,"group":"A","priority":0}"#)
        .await;
    publish(&js, &format!("{p}p.1"), "first").await;
    let m = timeout(WAIT, high_sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"first");
    publish(&js, &format!("{p}p.2"), "second").await;
    let m = timeout(WAIT, low_sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"second");
    t.stop().await;
}

#[tokio::test]
async fn pause_reply_and_resume() {
    let test = "pausereply";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let mut c: consumer::PullConsumer = s.create_consumer(pull_durable("w")).await.expect("consumer");
    let until = async_nats::datetime::add_std_duration(async_nats::datetime::now(), Duration::from_secs(30)).unwrap();
    let r = s.pause_consumer("w", until).await.expect("pause reply decodes");
    assert!(r.paused);
    assert!(r.pause_remaining.is_some_and(|d| d > Duration::from_secs(20)), "{:?}", r.pause_remaining);
    assert!(c.info().await.unwrap().paused);
    let r = s.resume_consumer("w").await.expect("resume reply decodes");
    assert!(!r.paused);
    assert!(!c.info().await.unwrap().paused);
    t.stop().await;
}

#[tokio::test]
async fn consumer_reset_moves_the_start() {
    let test = "creset";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    for i in 1..=5 {
        publish(&js, &format!("{p}.{i}"), &format!("m{i}")).await;
    }
    let mut c: consumer::PullConsumer = s.create_consumer(pull_durable("w")).await.expect("consumer");
    let r = c.reset(Some(4)).await.expect("reset");
    assert_eq!((r.reset_seq, r.info.num_pending, r.info.ack_floor.stream_sequence), (4, 2, 3));
    let got = batch(&c, 1, Duration::from_secs(2)).await;
    assert_eq!(text(&got[0]), "m4");
    got[0].double_ack().await.unwrap();
    assert_eq!(c.reset(None).await.expect("reset to the floor").reset_seq, 5);
    let b: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("b".into()),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: 3 },
            ..Default::default()
        })
        .await
        .expect("consumer b");
    drop(b);
    let e = s.reset_consumer("b", Some(1)).await.expect_err("below the start sequence");
    assert_eq!(e.kind(), stream::ConsumerResetErrorKind::InvalidReset);
    t.stop().await;
}

#[tokio::test]
async fn server_limits_cap_pull_consumers() {
    let test = "srvlimits";
    // nats-server here runs without `jetstream { limits { } }`; the case needs weir's config.
    if std::env::var("NATS_JS_SERVER_URL").is_ok_and(|u| !u.is_empty()) {
        println!("SKIP {test}: needs a server started with jetstream.limits.max_request_batch");
        return;
    }
    let dir = common::js::fresh_store_dir(test);
    let mut cfg = weir_js_config(&dir);
    if let Some(j) = cfg.jetstream.as_mut() {
        j.engine.consumer_limits = weir_core::consumer::ServerLimits { max_request_batch: 100, max_ack_pending: 0 };
    }
    let server = common::start(cfg).await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connect"));
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.expect("create");
    let c: consumer::PullConsumer = s.create_consumer(pull_durable("w")).await.expect("consumer");
    assert_eq!(c.cached_info().config.max_batch, 100);
    let e = s
        .create_consumer(pull::Config { durable_name: Some("x".into()), max_batch: 500, ..Default::default() })
        .await
        .expect_err("over the server's max_request_batch");
    assert!(e.to_string().contains("10125"), "{e}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mirrors_and_sources() {
    let test = "mirror";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let origin = sname(test);
    let p = subj(test);
    js.create_stream(file_stream(&origin, &format!("{p}.>"))).await.unwrap();
    publish(&js, &format!("{p}.a"), "skipped").await;
    publish(&js, &format!("{p}.b"), "data").await;
    // A mirror from sequence 2: no subjects of its own, the origin's sequences.
    let mirror = format!("{origin}_M");
    let source = |name: &str| stream::Source { name: name.to_string(), ..Default::default() };
    let m = js
        .create_stream(stream::Config {
            name: mirror.clone(),
            mirror: Some(stream::Source { start_sequence: Some(2), ..source(&origin) }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(m.cached_info().config.subjects.is_empty(), "{:?}", m.cached_info().config.subjects);
    let cons = m.create_consumer(pull_durable("m")).await.unwrap();
    let got = batch(&cons, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!((text(&got[0]), got[0].info().unwrap().stream_sequence), ("data".to_string(), 2));
    eventually("the mirror reports its origin with no lag", || async {
        let info = js.get_stream(&mirror).await.unwrap().get_info().await.unwrap();
        match info.mirror {
            Some(mi) if mi.name == origin && mi.lag == 0 && mi.active.is_some() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Sources: one filtered, one mapped; each copy names its origin and sequence.
    let sourced = format!("{origin}_S");
    let s = js
        .create_stream(stream::Config {
            name: sourced.clone(),
            sources: Some(vec![
                stream::Source { filter_subject: Some(format!("{p}.b")), ..source(&origin) },
                stream::Source {
                    subject_transforms: vec![stream::SubjectTransform {
                        source: format!("{p}.a"),
                        destination: format!("{p}x.a"),
                    }],
                    ..source(&origin)
                },
            ]),
            ..Default::default()
        })
        .await
        .unwrap();
    let cons = s.create_consumer(pull_durable("s")).await.unwrap();
    let got = batch(&cons, 2, Duration::from_secs(5)).await;
    let mut seen: Vec<(String, String, String)> = got
        .iter()
        .map(|m| {
            let h = m.headers.as_ref().and_then(|h| h.get("Nats-Stream-Source")).map(|v| v.to_string());
            (m.subject.to_string(), text(m), h.unwrap_or_default())
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_str()), (format!("{p}.b").as_str(), "data"));
    // nats-server 2.15 writes `<origin> <seq> <filter> <dest> <subject> <ident>`; weir
    // the same without the ident.
    let fields = |h: &str| h.split(' ').take(5).collect::<Vec<_>>().join(" ");
    assert_eq!(fields(&seen[0].2), format!("{origin} 2 {p}.b > {p}.b"), "{seen:?}");
    assert_eq!((seen[1].0.as_str(), seen[1].1.as_str()), (format!("{p}x.a").as_str(), "skipped"));
    assert_eq!(fields(&seen[1].2), format!("{origin} 1 {p}.a {p}x.a {p}.a"), "{seen:?}");
    let info = js.get_stream(&sourced).await.unwrap().get_info().await.unwrap();
    assert_eq!(info.sources.len(), 2, "{:?}", info.sources);
    // A mirror refuses subjects (400/10034).
    let c = t.client().await;
    let bad = api(
        &c,
        &format!("$JS.API.STREAM.CREATE.{origin}_X"),
        &json!({"name": format!("{origin}_X"), "subjects": [format!("{p}y")], "mirror": {"name": origin}}).to_string(),
    )
    .await;
    assert_eq!(err_codes(&bad), (400, 10034), "{bad}");
    t.stop().await;
}

#[tokio::test]
async fn subject_transform_and_republish() {
    let test = "republish";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js
        .create_stream(stream::Config {
            subject_transform: Some(stream::SubjectTransform {
                source: format!("{p}.in.>"),
                destination: format!("{p}.stored.>"),
            }),
            ..file_stream(&name, &format!("{p}.in.>"))
        })
        .await
        .unwrap();
    publish(&js, &format!("{p}.in.x"), "one").await;
    assert_eq!(s.get_raw_message(1).await.unwrap().subject.as_str(), format!("{p}.stored.x"));
    // Republish: every stored message also goes out on the mapped subject.
    let rp = format!("{name}_RP");
    js.create_stream(stream::Config {
        republish: Some(stream::Republish { source: ">".into(), destination: format!("{p}rp.>"), headers_only: false }),
        ..file_stream(&rp, &format!("{p}r.>"))
    })
    .await
    .unwrap();
    let mut sub = c.subscribe(format!("{p}rp.>")).await.unwrap();
    common::sync(&c).await;
    publish(&js, &format!("{p}r.x"), "hello").await;
    let m = timeout(WAIT, sub.next()).await.expect("republished").unwrap();
    assert_eq!(m.subject.as_str(), format!("{p}rp.{p}r.x"));
    assert_eq!(&m.payload[..], b"hello");
    let h = m.headers.expect("republish headers");
    assert_eq!(h.get("Nats-Stream").map(|v| v.to_string()), Some(rp.clone()));
    assert_eq!(h.get("Nats-Subject").map(|v| v.to_string()), Some(format!("{p}r.x")));
    assert_eq!(h.get("Nats-Sequence").map(|v| v.to_string()), Some("1".to_string()));
    assert!(h.get("Nats-Time-Stamp").is_some());
    assert_eq!(h.get("Nats-Last-Sequence").map(|v| v.to_string()), Some("0".to_string()));
    // `Nats-Last-Sequence` is the subject's previous sequence (0 for its first).
    publish(&js, &format!("{p}r.y"), "two").await;
    publish(&js, &format!("{p}r.x"), "three").await;
    let m2 = timeout(WAIT, sub.next()).await.expect("republished").unwrap();
    let m3 = timeout(WAIT, sub.next()).await.expect("republished").unwrap();
    let last =
        |m: &async_nats::Message| m.headers.as_ref().and_then(|h| h.get("Nats-Last-Sequence")).map(|v| v.to_string());
    assert_eq!((last(&m2), last(&m3)), (Some("0".to_string()), Some("1".to_string())));
    // A destination inside the stream's own subjects is a cycle (10052).
    let cyc = format!("{name}_CY");
    let bad = api(
        &c,
        &format!("$JS.API.STREAM.CREATE.{cyc}"),
        &json!({"name": cyc, "subjects": [format!("{p}c.>")], "republish": {"src": ">", "dest": format!("{p}c.>")}})
            .to_string(),
    )
    .await;
    assert_eq!(err_codes(&bad).1, 10052, "{bad}");
    t.stop().await;
}

#[tokio::test]
async fn subject_delete_markers_after_max_age() {
    let test = "markers";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let name = sname(test);
    let p = subj(test);
    let s = js
        .create_stream(stream::Config {
            allow_message_ttl: true,
            allow_direct: true,
            subject_delete_marker_ttl: Some(Duration::from_secs(1)),
            max_age: Duration::from_secs(1),
            ..file_stream(&name, &format!("{p}.>"))
        })
        .await
        .unwrap();
    publish(&js, &format!("{p}.k"), "v").await;
    eventually("max_age leaves a MaxAge marker on the subject", || async {
        match s.direct_get_last_for_subject(format!("{p}.k")).await {
            Ok(m) if m.headers.get("Nats-Marker-Reason").map(|v| v.to_string()).as_deref() == Some("MaxAge") => {
                if m.payload.is_empty() { Ok(()) } else { Err(format!("payload {:?}", m.payload)) }
            }
            Ok(m) => Err(format!("headers {:?}", m.headers)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn stream_update_below_consumer_limits() {
    let test = "climits";
    let Some(t) = Target::new(test).await else { return };
    let js = t.js().await;
    let c = t.client().await;
    let name = sname(test);
    let p = subj(test);
    let s = js.create_stream(file_stream(&name, &format!("{p}.>"))).await.unwrap();
    s.create_consumer(pull_durable("name")).await.unwrap();
    let body = json!({"name": name, "subjects": [format!("{p}.>")],
        "consumer_limits": {"inactive_threshold": 2_000_000_000u64, "max_ack_pending": 10}});
    let r = api(&c, &format!("$JS.API.STREAM.UPDATE.{name}"), &body.to_string()).await;
    assert_eq!(err_codes(&r), (500, 10069), "{r}");
    assert_eq!(err_desc(&r), "change to limits violates consumers: name", "{r}");
    t.stop().await;
}
