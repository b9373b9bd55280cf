//! async-nats's JetStream API against an in-process `weir serve -js` (real tokio, a real
//! disk in a temporary directory): stream create, publish with PubAck, dedup by
//! `Nats-Msg-Id`, pull fetch and ack, a push consumer, restart over the same store, and
//! the `/jsz` shape. The broad client suites are elsewhere (branch `jsclients`); these
//! check the server wiring.

#![cfg(not(madsim))]

mod common;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::future::IntoFuture;
use std::time::Duration;
use weir_core::server::nats::jsz::JszOptions;

const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("{what} timed out"))
}

fn stream_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_publish_dedup_and_info() {
    let dir = common::store_dir("publish");
    let server = common::start(common::js_config(&dir)).await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut s = within("create", js.create_stream(stream_config("ORDERS", &["orders.>"]))).await.unwrap();

    let ack = within("publish", async { js.publish("orders.1", "one".into()).await.unwrap().await }).await.unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence, ack.duplicate), ("ORDERS", 1, false));

    let with_id = |id: &str| {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id);
        h
    };
    let a = within("publish id", async {
        js.publish_with_headers("orders.2", with_id("m-1"), "two".into()).await.unwrap().await
    })
    .await
    .unwrap();
    let b = within("publish dup", async {
        js.publish_with_headers("orders.2", with_id("m-1"), "two again".into()).await.unwrap().await
    })
    .await
    .unwrap();
    assert_eq!((a.sequence, a.duplicate), (2, false));
    assert_eq!((b.sequence, b.duplicate), (2, true), "a duplicate id gets the first sequence back");

    let info = within("info", s.info()).await.unwrap();
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.last_sequence, 2);

    let j = server.monitor.jsz(JszOptions::from_query("consumers=true"));
    assert_eq!((j.streams, j.messages), (1, 2));
    assert!(j.stats.api.total >= 2, "API requests are counted: {:?}", j.stats.api);
    let v = serde_json::to_value(&j).unwrap();
    assert_eq!(v["account_details"][0]["name"], "$G");
    assert_eq!(v["account_details"][0]["stream_detail"][0]["name"], "ORDERS");
    assert_eq!(v["account_details"][0]["stream_detail"][0]["state"]["messages"], 2);
    assert_eq!(v["config"]["store_dir"], dir.join("jetstream").display().to_string());
    let varz = serde_json::to_value(server.monitor.varz()).unwrap();
    assert_eq!(varz["jetstream"]["stats"]["api"]["level"], j.stats.api.level);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn pull_fetch_ack_and_restart_keeps_messages_and_ack_floor() {
    let dir = common::store_dir("restart");
    let server = common::start(common::js_config(&dir)).await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let s = within("create", js.create_stream(stream_config("EVENTS", &["ev.*"]))).await.unwrap();
    for i in 1..=5 {
        within("publish", async { js.publish(format!("ev.{i}"), format!("m{i}").into()).await.unwrap().await })
            .await
            .unwrap();
    }
    let c = within(
        "consumer",
        s.create_consumer(consumer::pull::Config { durable_name: Some("worker".into()), ..Default::default() }),
    )
    .await
    .unwrap();
    let mut batch = within("fetch", c.fetch().max_messages(3).messages()).await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = within("next", batch.next()).await {
        let m = m.unwrap();
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
        within("ack", m.double_ack()).await.unwrap();
    }
    assert_eq!(got, ["m1", "m2", "m3"]);
    let mut c = c;
    let info = within("consumer info", c.info()).await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 2);
    server.stop().await;

    // A new server over the same directory: the stream, its messages and the consumer's
    // ack floor are back, and the next fetch starts after what was acked.
    let server = common::start(common::js_config(&dir)).await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut s = within("get stream", js.get_stream("EVENTS")).await.unwrap();
    let info = within("info", s.info()).await.unwrap();
    assert_eq!((info.state.messages, info.state.last_sequence), (5, 5));
    let mut c: consumer::PullConsumer = within("get consumer", s.get_consumer("worker")).await.unwrap();
    let info = within("consumer info", c.info()).await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 3, "the ack floor survives a restart");
    let mut batch =
        within("fetch", c.fetch().max_messages(5).expires(Duration::from_millis(500)).messages()).await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = within("next", batch.next()).await {
        let m = m.unwrap();
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
        m.ack().await.unwrap();
    }
    assert_eq!(got, ["m4", "m5"]);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn push_consumer_delivers_to_its_subject() {
    let dir = common::store_dir("push");
    let server = common::start(common::js_config(&dir)).await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let s = within("create", js.create_stream(stream_config("PUSH", &["push.>"]))).await.unwrap();
    for i in 1..=3 {
        within("publish", async { js.publish("push.a", format!("p{i}").into()).await.unwrap().await }).await.unwrap();
    }
    let c: consumer::PushConsumer = within(
        "consumer",
        s.create_consumer(consumer::push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: "deliver.pusher".into(),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut msgs = within("messages", c.messages()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = within("push message", msgs.next()).await.expect("stream ended").unwrap();
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
        m.ack().await.unwrap();
    }
    assert_eq!(got, ["p1", "p2", "p3"]);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn info_advertises_jetstream_and_plain_servers_do_not() {
    let dir = common::store_dir("info");
    let server = common::start(common::js_config(&dir)).await;
    let client = async_nats::connect(server.url()).await.unwrap();
    assert!(client.server_info().jetstream);
    server.stop().await;
    let plain = common::start(common::config()).await;
    let client = async_nats::connect(plain.url()).await.unwrap();
    assert!(!client.server_info().jetstream);
    assert!(plain.monitor.jsz(JszOptions::default()).disabled);
    plain.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_corrupt_stream_is_reported_and_the_rest_starts() {
    let dir = common::store_dir("corrupt");
    let server = common::start(common::js_config(&dir)).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    within("create A", js.create_stream(stream_config("A", &["a"]))).await.unwrap();
    within("create B", js.create_stream(stream_config("B", &["b"]))).await.unwrap();
    within("publish", async { js.publish("b", "kept".into()).await.unwrap().await }).await.unwrap();
    server.stop().await;

    let meta = dir.join("jetstream/$G/streams/A.meta");
    let mut bytes = std::fs::read(&meta).expect("stream A's metadata file");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x55;
    std::fs::write(&meta, bytes).unwrap();

    let server = common::start(common::js_config(&dir)).await;
    let j = server.monitor.jsz(JszOptions::from_query("streams=true"));
    let streams = &j.account_details[0].stream_detail;
    let a = streams.iter().find(|s| s.name == "A").expect("the damaged stream is listed");
    assert!(a.error.as_deref().is_some_and(|e| e.contains("A.meta")), "{a:?}");
    let b = streams.iter().find(|s| s.name == "B").expect("the sound stream is in service");
    assert_eq!((b.error.as_deref(), b.state.messages), (None, 1));
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let ack = within("publish to B", async { js.publish("b", "more".into()).await.unwrap().await }).await.unwrap();
    assert_eq!(ack.sequence, 2);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real disk that counts fsyncs of message blocks (files under a stream's `msgs/`).
struct CountingDisk {
    inner: weir_core::disk::RealDisk,
    block_syncs: std::sync::atomic::AtomicU64,
}

impl weir_core::disk::Disk for CountingDisk {
    fn read(&self, p: &str) -> std::io::Result<Vec<u8>> {
        self.inner.read(p)
    }
    fn read_at(&self, p: &str, o: u64, l: usize) -> std::io::Result<Vec<u8>> {
        self.inner.read_at(p, o, l)
    }
    fn append(&self, p: &str, d: &[u8]) -> std::io::Result<u64> {
        self.inner.append(p, d)
    }
    fn write_file(&self, p: &str, d: &[u8]) -> std::io::Result<()> {
        self.inner.write_file(p, d)
    }
    fn truncate(&self, p: &str, l: u64) -> std::io::Result<()> {
        self.inner.truncate(p, l)
    }
    fn sync(&self, p: &str) -> std::io::Result<()> {
        if p.contains("/msgs/") {
            self.block_syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.sync(p)
    }
    fn sync_dir(&self, d: &str) -> std::io::Result<()> {
        self.inner.sync_dir(d)
    }
    fn rename(&self, f: &str, t: &str) -> std::io::Result<()> {
        self.inner.rename(f, t)
    }
    fn remove(&self, p: &str) -> std::io::Result<()> {
        self.inner.remove(p)
    }
    fn list(&self, d: &str) -> std::io::Result<Vec<String>> {
        self.inner.list(d)
    }
    fn len(&self, p: &str) -> std::io::Result<u64> {
        self.inner.len(p)
    }
}

/// Pipelined publishes are group-committed: every one is acknowledged, with far fewer
/// fsyncs of the message blocks than publishes (one fsync covers every append since the
/// last, so the batches grow with the backlog).
#[tokio::test]
async fn pipelined_publishes_share_fsyncs() {
    let dir = common::store_dir("group");
    let disk = std::sync::Arc::new(CountingDisk {
        inner: weir_core::disk::RealDisk::new(&dir).unwrap(),
        block_syncs: Default::default(),
    });
    let mut cfg = common::js_config(&dir);
    cfg.jetstream.as_mut().unwrap().disk = disk.clone();
    let server = common::start(cfg).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    within("create", js.create_stream(stream_config("G", &["g"]))).await.unwrap();
    let n = 400u64;
    let mut acks = Vec::new();
    for _ in 0..n {
        acks.push(within("publish", js.publish("g", bytes::Bytes::from_static(&[7; 128]))).await.unwrap());
    }
    let mut seqs = Vec::new();
    for a in acks {
        seqs.push(within("ack", a.into_future()).await.unwrap().sequence);
    }
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "every publish acknowledged, in order");
    let syncs = disk.block_syncs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{syncs} block fsyncs for {n} pipelined publishes");
    assert!(syncs > 0, "acknowledged messages were fsynced");
    assert!(syncs * 4 <= n, "{syncs} block fsyncs for {n} publishes: no group commit");
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 9, fault 1, in JetStream: a message published with an empty header block
/// (`HPUB s 0 5`) is stored without headers, so a consumer delivers it as a plain `MSG`
/// and a message get shows no `hdrs`, as nats-server does (raw TCP: clients never send
/// an empty block themselves).
#[tokio::test]
async fn an_empty_header_block_is_stored_and_delivered_without_headers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = common::store_dir("emptyhdr");
    let server = common::start(common::js_config(&dir)).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let s = within("create", js.create_stream(stream_config("EMPTYHDR", &["eh.>"]))).await.unwrap();
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut seen = Vec::new();
    let until = async |raw: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, needle: &str| {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let mut b = [0u8; 4096];
            let n = within(needle, raw.read(&mut b)).await.unwrap();
            assert!(n > 0, "closed; got {}", String::from_utf8_lossy(seen));
            seen.extend_from_slice(&b[..n]);
        }
    };
    raw.write_all(b"CONNECT {\"headers\":true,\"verbose\":false}\r\nSUB ack.eh 1\r\nSUB dlv.eh 2\r\n").await.unwrap();
    raw.write_all(b"HPUB eh.a ack.eh 0 5\r\nhello\r\n").await.unwrap();
    until(&mut raw, &mut seen, "\"seq\":1").await;
    within(
        "consumer",
        s.create_consumer(consumer::push::Config {
            deliver_subject: "dlv.eh".into(),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    until(&mut raw, &mut seen, "hello\r\n").await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    let delivery = text.lines().find(|l| l.contains("eh.a 2 ")).unwrap_or_else(|| panic!("no delivery: {text}"));
    assert!(delivery.starts_with("MSG eh.a 2 $JS.ACK.EMPTYHDR.") && delivery.ends_with(" 5"), "{delivery}");
    let got = within("get", s.get_raw_message(1)).await.unwrap();
    assert!(got.headers.is_empty(), "{:?}", got.headers);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
