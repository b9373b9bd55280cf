//! Three `weir serve` processes on loopback form a cluster: an async-nats subscriber
//! on C receives what a publisher on A sends, and keeps receiving after B is killed.
//! Conditions are polled through each process's `/varz`; every child is killed when
//! the test ends, pass or fail.

#![cfg(not(madsim))]

mod common;

use bytes::Bytes;
use common::procs::{cluster, get_json};
use futures::StreamExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn cluster_field(http: u16, field: &str) -> Option<u64> {
    get_json(http, "/varz").await?.get("cluster")?.get(field)?.as_u64()
}

/// Poll until `field` of `/varz`'s cluster section equals `want`.
async fn until_field(what: &str, http: u16, field: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = cluster_field(http, field).await;
        if got == Some(want) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what} (last {field} = {got:?})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("timed out").expect("subscription ended")
}

#[tokio::test]
async fn three_processes_route_messages_and_survive_losing_one() {
    let (ports, mut procs) = cluster(3, "proc-test", &[]);
    for (i, p) in ports.iter().enumerate() {
        until_field(&format!("n{} to have 2 routes", i + 1), p.http, "routes", 2).await;
    }

    let a = async_nats::connect(format!("nats://127.0.0.1:{}", ports[0].client)).await.expect("connect to A");
    let c = async_nats::connect(format!("nats://127.0.0.1:{}", ports[2].client)).await.expect("connect to C");
    let mut sub = c.subscribe("proc.>").await.unwrap();
    c.flush().await.unwrap();
    until_field("A to learn C's interest", ports[0].http, "remote_subs", 1).await;
    for i in 0..20 {
        a.publish(format!("proc.{i}"), Bytes::from(format!("m{i}"))).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..20 {
        let m = next(&mut sub).await;
        assert_eq!(m.subject.as_str(), format!("proc.{i}"));
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }

    // Lose B: A and C drop their routes to it, and A -> C traffic goes on.
    procs.kill(1);
    until_field("A to drop B", ports[0].http, "routes", 1).await;
    until_field("C to drop B", ports[2].http, "routes", 1).await;
    for i in 0..20 {
        a.publish(format!("proc.after.{i}"), Bytes::from(format!("n{i}"))).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..20 {
        let m = next(&mut sub).await;
        assert_eq!(m.payload, Bytes::from(format!("n{i}")), "A -> C after B died");
    }
    let received = cluster_field(ports[2].http, "route_in_msgs").await;
    assert_eq!(received, Some(40), "C received every message over its route from A");
}
