//! Issue 9, route faults 3 and 9, with real `weir serve` processes on loopback:
//!
//! - fault 3: with `--max_payload 20MB`, a 17,000,000-byte message published on A
//!   reaches a subscriber on B, and a request with such a payload gets its responder's
//!   answer (not a 503);
//! - fault 9: while B is stopped (SIGSTOP), a publisher on A feeding B's route is made
//!   to wait instead of losing messages; after B resumes, every message arrives, and A's
//!   `/varz` and `/metrics` show the stalls and zero drops, per route and reason.
//!
//! Conditions are polled through `/varz` (no sleeps as synchronisation, no timing
//! assertions); every child is killed when a test ends, pass or fail.

#![cfg(all(not(madsim), unix))]

mod common;

use bytes::Bytes;
use common::procs::{PROC_WAIT, Ports, cluster, free_port, get, get_json};
use futures::StreamExt;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = PROC_WAIT;

async fn varz(http: u16) -> Option<serde_json::Value> {
    get_json(http, "/varz").await
}

/// Poll `/varz` until `test` holds for it.
async fn until(what: &str, http: u16, test: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = varz(http).await;
        if let Some(v) = v.as_ref().filter(|v| test(v)) {
            return v.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last /varz: {v:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cluster_u64(v: &serde_json::Value, field: &str) -> u64 {
    v["cluster"][field].as_u64().unwrap_or(u64::MAX)
}

/// The one route's drop entry in A's `/varz`.
fn route_entry(v: &serde_json::Value) -> serde_json::Value {
    let drops = v["cluster"]["route_drops"].as_array().expect("route_drops is exported");
    assert_eq!(drops.len(), 1, "one route, one entry: {drops:?}");
    drops[0].clone()
}

fn total_msg_drops(entry: &serde_json::Value) -> u64 {
    entry["msgs"].as_object().expect("msgs by reason").values().map(|v| v.as_u64().unwrap()).sum()
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("timed out").expect("subscription ended")
}

/// Issue 9, fault 3, with its input: `--max_payload 20MB`, 17,000,000 bytes from A to B.
#[tokio::test]
async fn a_17_mb_message_crosses_the_route_and_a_request_gets_its_reply() {
    let (ports, _procs) = cluster(2, "big-test", &["--max_payload", "20MB"]);
    for p in &ports {
        until("2 servers to connect", p.http, |v| cluster_u64(v, "routes") == 1).await;
    }
    let connect = |p: &Ports| async_nats::connect(format!("nats://127.0.0.1:{}", p.client));
    let a = connect(&ports[0]).await.expect("connect to A");
    let b = connect(&ports[1]).await.expect("connect to B");
    assert_eq!(a.server_info().max_payload, 20 << 20);
    let mut sub = b.subscribe("big").await.unwrap();
    let mut svc = b.subscribe("svc").await.unwrap();
    b.flush().await.unwrap();
    until("A to learn B's interest", ports[0].http, |v| cluster_u64(v, "remote_subs") == 2).await;

    let body: Bytes = (0..17_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    a.publish("big", body.clone()).await.unwrap();
    a.flush().await.unwrap();
    let m = next(&mut sub).await;
    assert_eq!(m.payload.len(), 17_000_000);
    assert!(m.payload == body, "the payload arrives intact");

    let responder = tokio::spawn(async move {
        let req = next(&mut svc).await;
        assert_eq!(req.payload.len(), 17_000_000);
        b.publish(req.reply.expect("a request has a reply subject"), Bytes::from_static(b"done")).await.unwrap();
        b.flush().await.unwrap();
        b
    });
    let reply = tokio::time::timeout(WAIT, a.request("svc", body)).await.expect("request timed out");
    assert_eq!(reply.expect("a responder exists: no 503").payload, Bytes::from_static(b"done"));
    let _b = responder.await.unwrap();

    let v = varz(ports[0].http).await.unwrap();
    assert_eq!(total_msg_drops(&route_entry(&v)), 0, "nothing dropped on the route: {v}");
}

/// A server refuses at start a `max_payload` over what it can carry anywhere.
#[test]
fn a_max_payload_over_the_limit_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "-p", &free_port().to_string(), "--max_payload", "65MB"])
        .args(["--cluster", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("run weir");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_payload"), "the error names the setting: {err}");
}

/// Issue 9, fault 9: a stalled peer slows the publisher instead of losing messages.
#[tokio::test]
async fn a_stalled_peer_slows_the_publisher_and_loses_nothing() {
    const N: usize = 600;
    const SIZE: usize = 64 * 1024;
    let (ports, procs) = cluster(2, "stall-test", &[]);
    for p in &ports {
        until("2 servers to connect", p.http, |v| cluster_u64(v, "routes") == 1).await;
    }
    let a = async_nats::connect(format!("nats://127.0.0.1:{}", ports[0].client)).await.expect("connect to A");
    let b = async_nats::connect(format!("nats://127.0.0.1:{}", ports[1].client)).await.expect("connect to B");
    let mut sub = b.subscribe("stall.>").await.unwrap();
    b.flush().await.unwrap();
    until("A to learn B's interest", ports[0].http, |v| cluster_u64(v, "remote_subs") == 1).await;

    // Stop B: its route stops reading, A's queue to it fills past half its 32 MiB cap
    // (600 x 64 KiB = 37.5 MiB is more than the queue and the socket buffers hold).
    procs.signal(1, "STOP");
    let publisher = tokio::spawn(async move {
        let body = Bytes::from(vec![7u8; SIZE]);
        for i in 0..N {
            a.publish(format!("stall.{i}"), body.clone()).await.unwrap();
        }
        a.flush().await.unwrap();
        a
    });
    let v = until("A to stall its publisher", ports[0].http, |v| {
        v["cluster"]["route_drops"]
            .as_array()
            .is_some_and(|d| d.iter().any(|r| r["publisher_stalls"].as_u64() > Some(0)))
    })
    .await;
    assert_eq!(total_msg_drops(&route_entry(&v)), 0, "the publisher waits before anything is dropped: {v}");
    procs.signal(1, "CONT");

    let _a = tokio::time::timeout(WAIT, publisher).await.expect("publisher finished").unwrap();
    for i in 0..N {
        let m = next(&mut sub).await;
        assert_eq!(m.subject.as_str(), format!("stall.{i}"), "every message arrives, in order");
    }
    let v = varz(ports[0].http).await.unwrap();
    let entry = route_entry(&v);
    assert_eq!(total_msg_drops(&entry), 0, "no message dropped: {entry}");
    assert!(entry["publisher_stalls"].as_u64().unwrap() > 0);
    let metrics = get(ports[0].http, "/metrics").await.unwrap();
    let addr = entry["addr"].as_str().unwrap();
    for reason in ["queue_full", "memory", "too_large", "closed"] {
        let line = format!("weir_route_dropped_total{{route=\"{addr}\",class=\"msg\",reason=\"{reason}\"}} 0");
        assert!(metrics.contains(&line), "/metrics has `{line}`:\n{metrics}");
    }
    assert!(metrics.contains(&format!("weir_route_publisher_stalls_total{{route=\"{addr}\"}}")));
}
