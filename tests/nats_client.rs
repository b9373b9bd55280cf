//! async-nats against an in-process `weir` NATS server (real tokio, loopback).
//!
//! With `NATS_SERVER_URL` set, the tests that need no server internals run against
//! that server instead (for example a real nats-server), so both can be compared;
//! the others return early.

#![cfg(not(madsim))]

mod common;

use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use common::{prefix, sync};
use futures::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server under test: an external one from `NATS_SERVER_URL`, or a fresh in-process one.
struct Target {
    url: String,
    local: Option<common::TestServer>,
}

impl Target {
    async fn new() -> Target {
        match common::external_url() {
            Some(url) => Target { url, local: None },
            None => {
                let s = common::start(common::config()).await;
                Target { url: s.url(), local: Some(s) }
            }
        }
    }

    async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url).await.expect("connect")
    }

    async fn stop(self) {
        if let Some(s) = self.local {
            s.stop().await;
        }
    }
}

/// Wait until the server has processed everything `c` sent so far (its SUBs, say).
///
/// async-nats's `flush` only writes the buffer out, so another connection's publish
/// can still overtake a SUB. A request to a subject nobody listens on comes back as
/// no-responders only after the server has handled every earlier op of `c`.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("timed out").expect("subscription ended")
}

/// Publish 6,000 messages of 8 KiB on `flood` to a healthy subscriber, flow-controlled
/// against it alone (a window of 64; stalled subscribers on `flood` are not waited
/// for), and assert it got every one. Returns the subscriber's and the publisher's
/// connections, still open.
async fn flood_a_healthy_subscriber(s: &common::TestServer) -> (async_nats::Client, async_nats::Client) {
    let good = async_nats::connect(s.url()).await.unwrap();
    let mut good_sub = good.subscribe("flood").await.unwrap();
    sync(&good).await;
    let publisher = async_nats::connect(s.url()).await.unwrap();
    const N: usize = 6000;
    const WINDOW: usize = 64;
    let payload = Bytes::from(vec![b'x'; 8 * 1024]);
    let (received_tx, mut received) = tokio::sync::watch::channel(0usize);
    let counter = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            tokio::time::timeout(Duration::from_secs(10), good_sub.next()).await.expect("good subscriber stalled");
            n += 1;
            received_tx.send_replace(n);
        }
        n
    });
    for i in 0..N {
        if i % 32 == 0 {
            publisher.flush().await.unwrap();
            let wait = received.wait_for(|&n| i < n + WINDOW);
            tokio::time::timeout(Duration::from_secs(10), wait).await.expect("good subscriber stalled").unwrap();
        }
        publisher.publish("flood", payload.clone()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(counter.await.unwrap(), N, "the healthy subscriber got every message");
    (good, publisher)
}

#[tokio::test]
async fn connect_and_pub_sub() {
    let t = Target::new().await;
    let (a, b) = (t.client().await, t.client().await);
    let subj = prefix("ps");
    let mut sub = a.subscribe(subj.clone()).await.unwrap();
    sync(&a).await;
    b.publish(subj.clone(), Bytes::from_static(b"hello")).await.unwrap();
    b.flush().await.unwrap();
    let m = next(&mut sub).await;
    assert_eq!(m.subject.as_str(), subj);
    assert_eq!(&m.payload[..], b"hello");
    t.stop().await;
}

#[tokio::test]
async fn wildcards() {
    let t = Target::new().await;
    let c = t.client().await;
    let p = prefix("wc");
    let mut star = c.subscribe(format!("{p}.*")).await.unwrap();
    let mut full = c.subscribe(format!("{p}.>")).await.unwrap();
    c.flush().await.unwrap();
    c.publish(format!("{p}.a"), "1".into()).await.unwrap();
    c.publish(format!("{p}.a.b"), "2".into()).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(next(&mut star).await.subject.as_str(), format!("{p}.a"));
    assert_eq!(next(&mut full).await.subject.as_str(), format!("{p}.a"));
    assert_eq!(next(&mut full).await.subject.as_str(), format!("{p}.a.b"));
    assert!(tokio::time::timeout(Duration::from_millis(200), star.next()).await.is_err(), "'*' matched two tokens");
    t.stop().await;
}

#[tokio::test]
async fn queue_group_delivers_each_message_to_one_member() {
    let t = Target::new().await;
    let subj = prefix("q");
    let mut counters = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = t.client().await;
        let mut sub = c.queue_subscribe(subj.clone(), "workers".into()).await.unwrap();
        sync(&c).await;
        counters.push(tokio::spawn(async move {
            let mut n = 0usize;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
                n += 1;
            }
            n
        }));
        clients.push(c);
    }
    let p = t.client().await;
    for i in 0..300 {
        p.publish(subj.clone(), format!("{i}").into()).await.unwrap();
    }
    p.flush().await.unwrap();
    let mut counts = Vec::new();
    for c in counters {
        counts.push(c.await.unwrap());
    }
    assert_eq!(counts.iter().sum::<usize>(), 300, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "a member got nothing: {counts:?}");
    t.stop().await;
}

#[tokio::test]
async fn request_reply() {
    let t = Target::new().await;
    let (svc, cli) = (t.client().await, t.client().await);
    let subj = prefix("rr");
    let mut reqs = svc.subscribe(subj.clone()).await.unwrap();
    sync(&svc).await;
    let responder = tokio::spawn(async move {
        let m = next(&mut reqs).await;
        let reply = m.reply.expect("request has a reply subject");
        svc.publish(reply, [b"re: ".as_slice(), &m.payload].concat().into()).await.unwrap();
        svc.flush().await.unwrap();
    });
    let resp = tokio::time::timeout(Duration::from_secs(5), cli.request(subj, "ping".into())).await.unwrap().unwrap();
    assert_eq!(&resp.payload[..], b"re: ping");
    responder.await.unwrap();
    t.stop().await;
}

#[tokio::test]
async fn request_without_subscribers_gets_no_responders() {
    let t = Target::new().await;
    let c = t.client().await;
    let err = tokio::time::timeout(Duration::from_secs(5), c.request(prefix("nobody"), "x".into()))
        .await
        .expect("no-responders should answer at once")
        .unwrap_err();
    assert_eq!(err.kind(), RequestErrorKind::NoResponders);
    t.stop().await;
}

#[tokio::test]
async fn headers_round_trip() {
    let t = Target::new().await;
    let c = t.client().await;
    let subj = prefix("hdr");
    let mut sub = c.subscribe(subj.clone()).await.unwrap();
    c.flush().await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("X-Weir", "yes");
    h.append("Multi", "1");
    h.append("Multi", "2");
    c.publish_with_headers(subj, h, "body".into()).await.unwrap();
    c.flush().await.unwrap();
    let m = next(&mut sub).await;
    let got = m.headers.expect("headers");
    assert_eq!(got.get("X-Weir").map(|v| v.as_str()), Some("yes"));
    assert_eq!(got.get_all("Multi").map(|v| v.as_str().to_owned()).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(&m.payload[..], b"body");
    t.stop().await;
}

/// Fault 1 (issue 9): `HPUB s 0 5` from a raw client reaches an async-nats subscriber as
/// a plain message, and so does the next one, on the same connection (async-nats 0.51
/// used to take the `HMSG s 1 0 5` weir sent for a protocol error, reconnect and lose both).
#[tokio::test]
async fn empty_header_block_reaches_async_nats_without_a_reconnect() {
    let t = Target::new().await;
    let c = t.client().await;
    let subj = prefix("emptyhdr");
    let mut sub = c.subscribe(subj.clone()).await.unwrap();
    sync(&c).await;
    let addr = t.url.trim_start_matches("nats://").to_owned();
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let ops = format!(
        "CONNECT {{\"verbose\":false,\"headers\":true}}\r\nHPUB {subj} 0 5\r\nhello\r\nPUB {subj} 5\r\nafter\r\nPING\r\n"
    );
    raw.write_all(ops.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"PONG\r\n") {
        let mut b = [0u8; 512];
        let n = raw.read(&mut b).await.unwrap();
        assert!(n > 0, "publisher closed before PONG");
        seen.extend_from_slice(&b[..n]);
    }
    let first = next(&mut sub).await;
    assert_eq!((&first.payload[..], first.headers.is_none()), (&b"hello"[..], true));
    assert_eq!(&next(&mut sub).await.payload[..], b"after");
    assert_eq!(c.statistics().connects.load(std::sync::atomic::Ordering::Relaxed), 1, "the subscriber reconnected");
    t.stop().await;
}

#[tokio::test]
async fn unsubscribe_after_n() {
    let t = Target::new().await;
    let c = t.client().await;
    let subj = prefix("unsub");
    let mut sub = c.subscribe(subj.clone()).await.unwrap();
    sub.unsubscribe_after(2).await.unwrap();
    c.flush().await.unwrap();
    for i in 0..5 {
        c.publish(subj.clone(), format!("{i}").into()).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(&next(&mut sub).await.payload[..], b"0");
    assert_eq!(&next(&mut sub).await.payload[..], b"1");
    let end = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.expect("subscription should end");
    assert!(end.is_none());
    t.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_others_still_receive() {
    if common::external_url().is_some() {
        return; // needs a small max_pending and the server's counters
    }
    let mut cfg = common::config();
    // Far below what the flood sends the slow subscriber (48 MiB), far above what the
    // good one can have pending: the publisher stays at most WINDOW messages (512 KiB)
    // ahead of it, however loaded the machine is, so only the slow one can be cut.
    cfg.max_pending = 4 * 1024 * 1024;
    let s = common::start(cfg).await;

    // A raw subscriber that stops reading after its SUB is confirmed.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n").await.unwrap();
    slow.flush().await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("PONG") {
        let mut b = [0u8; 4096];
        let n = slow.read(&mut b).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&b[..n]);
    }

    let _clients = flood_a_healthy_subscriber(&s).await;

    assert!(s.monitor.varz().slow_consumers >= 1);
    // The server closed the slow socket: reading drains what was in flight, then ends.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut b = vec![0u8; 64 * 1024];
        loop {
            match slow.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow consumer was not disconnected");
    // The slow client's teardown runs on its own task (in steps, issue 9 fault 2), so
    // its socket can close before the broker forgets it: wait for that state.
    let forgotten = tokio::time::timeout(Duration::from_secs(10), async {
        while s.monitor.varz().connections != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        forgotten.is_ok(),
        "connections: {} (want the good client and the publisher)",
        s.monitor.varz().connections
    );
    s.stop().await;
}

/// A raw subscriber to `subject` that stops reading once its SUB is confirmed.
async fn stalled_subscriber(addr: std::net::SocketAddr, subject: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n").as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("PONG") {
        let mut b = [0u8; 4096];
        let n = c.read(&mut b).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&b[..n]);
    }
    c
}

/// Issue 9, fault 8: stalled subscribers that fill the server-wide `client.outbound`
/// limit pay for their own stall. Each may hold up to `max_pending` (4 MiB), five of
/// them more than the shared limit (6 MiB); the healthy subscriber (the publisher keeps
/// at most ~768 KiB ahead of it) must get every message and never be cut, however the
/// writes interleave, and every stalled one is cut.
#[tokio::test]
async fn stalled_subscribers_at_the_shared_limit_do_not_cut_a_healthy_one() {
    if common::external_url().is_some() {
        return; // needs the server's limits and counters
    }
    let mut cfg = common::config();
    cfg.max_pending = 4 * 1024 * 1024;
    cfg.max_outbound_total = 6 * 1024 * 1024;
    let s = common::start(cfg).await;
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(stalled_subscriber(s.addr, "flood").await);
    }
    let _clients = flood_a_healthy_subscriber(&s).await;
    let v = s.monitor.varz();
    assert_eq!(v.slow_consumers, 5, "each stalled subscriber was cut, and only they");
    let outbound = v.mem.iter().find(|a| a.name == "client.outbound").unwrap();
    assert!(outbound.peak <= outbound.limit, "{outbound:?}");
    s.stop().await;
}

#[tokio::test]
async fn client_reconnects_after_server_restart() {
    if common::external_url().is_some() {
        return; // restarts the server itself
    }
    let s = common::start(common::config()).await;
    let addr = s.addr;
    let c = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(s.url())
        .await
        .unwrap();
    let mut sub = c.subscribe("again").await.unwrap();
    c.flush().await.unwrap();
    s.stop().await;

    let mut cfg = common::config();
    cfg.listen = addr;
    let s = common::start(cfg).await;
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            // Publishes made while disconnected may be buffered or lost; keep trying until one arrives.
            let _ = c.publish("again", "back".into()).await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                return m;
            }
        }
    })
    .await
    .expect("no message after restart");
    assert_eq!(&got.payload[..], b"back");
    assert_eq!(c.connection_state(), async_nats::connection::State::Connected);
    s.stop().await;
}

/// A raw client with a small receive buffer (so that the kernel holds little of what the
/// server sends it), subscribed to `subject` once its SUB is confirmed.
async fn small_window_subscriber(addr: std::net::SocketAddr, subject: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8 * 1024).unwrap();
    let mut c = sock.connect(addr).await.unwrap();
    c.write_all(format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n").as_bytes()).await.unwrap();
    read_until(&mut c, b"PONG\r\n").await;
    c
}

/// Read from `c` until what it read ends with `end` (10 s at most).
async fn read_until(c: &mut TcpStream, end: &[u8]) {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.ends_with(end) {
            let mut b = [0u8; 4096];
            let n = c.read(&mut b).await.unwrap();
            assert!(n > 0, "connection closed");
            seen.extend_from_slice(&b[..n]);
        }
    });
    read.await.expect("timed out");
}

/// A raw publisher of `n` 1 KiB messages on `subject`, all written at once by a task of
/// its own, then a PING; the task gives the connection back once all is written.
async fn flood(addr: std::net::SocketAddr, subject: &str, n: usize) -> tokio::task::JoinHandle<TcpStream> {
    let mut p = TcpStream::connect(addr).await.unwrap();
    p.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await.unwrap();
    read_until(&mut p, b"PONG\r\n").await;
    let body = "x".repeat(1024);
    let mut out = String::new();
    for _ in 0..n {
        out.push_str(&format!("PUB {subject} 1024\r\n{body}\r\n"));
    }
    out.push_str("PING\r\n");
    tokio::spawn(async move {
        p.write_all(out.as_bytes()).await.unwrap();
        p
    })
}

/// Issue 9: a fast producer waits for a subscriber that reads, however slowly, instead
/// of filling its queue until it is cut (as nats-server stalls fast producers). The
/// subscriber's `max_pending` (512 KiB) is a sixteenth of what the producer sends it at
/// once; it gets every message, is never cut, and its queue stays near the stall mark.
#[tokio::test]
async fn a_fast_producer_waits_for_a_slow_reading_subscriber() {
    if common::external_url().is_some() {
        return; // needs the server's limits and counters
    }
    const N: usize = 8 * 1024;
    let mut cfg = common::config();
    cfg.max_pending = 512 * 1024;
    // Long enough that the subscriber's reads always end a wait, however loaded the machine.
    cfg.max_producer_stall = Duration::from_secs(30);
    let s = common::start(cfg).await;
    let mut sub = small_window_subscriber(s.addr, "flow").await;
    let producer = flood(s.addr, "flow", N).await;
    // The subscriber reads 16 KiB at a time with a pause between reads (pacing, not
    // synchronisation: it is the slow reader under test).
    let want = N * b"MSG flow 1 1024\r\n".len() + N * (1024 + 2);
    let mut got = 0;
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut b = vec![0u8; 16 * 1024];
        while got < want {
            let n = sub.read(&mut b).await.unwrap();
            assert!(n > 0, "the slow subscriber was cut after {got} of {want} bytes");
            got += n;
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });
    read.await.expect("timed out");
    assert_eq!(got, want, "every message, nothing else");
    read_until(&mut producer.await.unwrap(), b"PONG\r\n").await;
    let v = s.monitor.varz();
    assert_eq!(v.slow_consumers, 0);
    assert!(v.producer_stalls > 0, "the producer waited");
    assert_eq!(v.producer_stall_timeouts, 0);
    let outbound = v.mem.iter().find(|a| a.name == "client.outbound").unwrap();
    // The stall mark (256 KiB) plus what one read batch of the producer can add.
    assert!(outbound.peak <= 256 * 1024 + 2 * 64 * 1024, "{outbound:?}");
    s.stop().await;
}

/// Issue 9: a subscriber that stops reading holds its producer for one bounded wait
/// (`max_producer_stall`), is not waited for again, and is cut at `max_pending`; the
/// producer goes on.
#[tokio::test]
async fn a_stalled_subscriber_is_cut_after_the_producer_stall() {
    if common::external_url().is_some() {
        return; // needs the server's limits and counters
    }
    let mut cfg = common::config();
    cfg.max_pending = 512 * 1024;
    cfg.max_producer_stall = Duration::from_millis(50);
    let s = common::start(cfg).await;
    let mut stalled = small_window_subscriber(s.addr, "flow").await;
    // 16 MiB: far more than the kernel's socket buffers and max_pending hold together.
    let producer = flood(s.addr, "flow", 16 * 1024).await;
    read_until(&mut producer.await.unwrap(), b"PONG\r\n").await;
    let v = s.monitor.varz();
    assert_eq!(v.slow_consumers, 1, "the stalled subscriber was cut");
    // One bounded wait, then it is not waited for again (waiting on it for every read
    // batch until the cut would make several; two leave room for the kernel taking a
    // little more of what was queued once).
    assert!((1..=2).contains(&v.producer_stall_timeouts), "{} waits ran out", v.producer_stall_timeouts);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut b = vec![0u8; 64 * 1024];
        loop {
            match stalled.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    assert!(closed.await.is_ok(), "the stalled subscriber was not disconnected");
    s.stop().await;
}

/// Issue 9: a producer waiting for a stalled subscriber does not hold the broker lock:
/// other clients publish and receive meanwhile. The stalled subscriber's leaving ends
/// the wait.
#[tokio::test]
async fn a_stalled_producer_does_not_hold_up_other_clients() {
    if common::external_url().is_some() {
        return; // needs the server's limits and counters
    }
    let mut cfg = common::config();
    cfg.max_pending = 16 * 1024 * 1024;
    // Far longer than the test: only the subscriber's leaving can end the wait.
    cfg.max_producer_stall = Duration::from_secs(600);
    let s = common::start(cfg).await;
    let stalled = small_window_subscriber(s.addr, "flow").await;
    let producer = flood(s.addr, "flow", 8 * 1024).await;
    let waiting = tokio::time::timeout(Duration::from_secs(10), async {
        while s.monitor.varz().producer_stalls == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    waiting.await.expect("the producer never waited");
    // Others go on while it waits.
    let c = async_nats::connect(s.url()).await.unwrap();
    let mut sub = c.subscribe("other").await.unwrap();
    sync(&c).await;
    c.publish("other", "hi".into()).await.unwrap();
    assert_eq!(&next(&mut sub).await.payload[..], b"hi");
    let v = s.monitor.varz();
    assert_eq!((v.producer_stall_timeouts, v.slow_consumers), (0, 0), "the producer is still waiting");
    // The stalled subscriber leaves: its queue is aborted and the producer goes on.
    drop(stalled);
    read_until(&mut producer.await.unwrap(), b"PONG\r\n").await;
    s.stop().await;
}
