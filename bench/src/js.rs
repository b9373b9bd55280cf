//! JetStream rows: async publish of 128-byte messages to a file stream with a window of
//! outstanding PubAcks, then a durable pull consumer reading the same messages back in
//! batches of 1,000 and acking each one. Both are timed to the server's confirmation: the
//! publish to the last PubAck, the consume until the consumer's info shows every message
//! acknowledged (nothing pending, nothing awaiting an ack).

use crate::rows::{Error, connect};
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Stream and consumer names (recreated on every run).
const STREAM: &str = "WEIRBENCH";
const SUBJECT: &str = "weirbench.js";
const CONSUMER: &str = "bench";
/// Messages asked for per pull request.
pub const BATCH: usize = 1_000;

/// What to run.
pub struct Options {
    /// Client URL.
    pub url: String,
    /// Messages per run.
    pub msgs: u64,
    /// Outstanding PubAcks the publisher allows before it waits for the oldest.
    pub window: usize,
    /// Runs (the best counts).
    pub runs: u32,
}

/// One server's JetStream results.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JsReport {
    /// Column label.
    pub name: String,
    /// The version in INFO.
    pub version: String,
    /// Async publish, 128 B, file stream: messages per second (to the last PubAck).
    pub pub_128: f64,
    /// Durable pull consume with explicit acks, batch 1,000: messages per second.
    pub consume: f64,
    /// Messages per run.
    pub msgs: u64,
    /// The PubAck window.
    pub window: usize,
    /// Peak RSS of the server process, KiB.
    pub peak_rss_kib: Option<u64>,
}

async fn publish(js: &jetstream::Context, n: u64, window: usize) -> Result<f64, Error> {
    let payload = Bytes::from(vec![b'x'; 128]);
    let mut acks = VecDeque::with_capacity(window);
    let start = Instant::now();
    for _ in 0..n {
        if acks.len() >= window {
            let ack: jetstream::context::PublishAckFuture = acks.pop_front().expect("window is not empty");
            ack.await?;
        }
        acks.push_back(js.publish(SUBJECT, payload.clone()).await?);
    }
    while let Some(ack) = acks.pop_front() {
        ack.await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn consume(js: &jetstream::Context, n: u64) -> Result<f64, Error> {
    let s = js.get_stream(STREAM).await?;
    let mut c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    let start = Instant::now();
    let mut got = 0u64;
    while got < n {
        let mut batch = c.batch().max_messages(BATCH).expires(Duration::from_secs(5)).messages().await?;
        let before = got;
        while let Some(m) = batch.next().await {
            m?.ack().await?;
            got += 1;
        }
        if got == before {
            return Err(format!("consumer stalled after {got} of {n} messages").into());
        }
    }
    // Done when the server has every ack.
    loop {
        let info = c.info().await?;
        if info.num_ack_pending == 0 && info.num_pending == 0 && info.ack_floor.stream_sequence >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("acks not all applied: {info:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One run: a fresh file stream, publish `n`, consume them back.
async fn run_once(js: &jetstream::Context, opts: &Options) -> Result<(f64, f64), Error> {
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECT.into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let p = publish(js, opts.msgs, opts.window).await?;
    eprintln!("  js pub128: {p:.0}/s");
    let c = consume(js, opts.msgs).await?;
    eprintln!("  js consume: {c:.0}/s");
    js.delete_stream(STREAM).await?;
    Ok((p, c))
}

/// Every JetStream row against `opts.url`, best of `opts.runs`; `pid` is the server's.
pub async fn run_all(opts: &Options, pid: Option<u32>) -> Result<JsReport, Error> {
    let client = connect(&opts.url, 4 * BATCH).await?;
    let version = client.server_info().version;
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(opts.window.max(1))
        .backpressure_on_inflight(true)
        .build(client);
    let (mut pub_128, mut consume) = (0f64, 0f64);
    for _ in 0..opts.runs.max(1) {
        let (p, c) = run_once(&js, opts).await?;
        pub_128 = pub_128.max(p);
        consume = consume.max(c);
    }
    Ok(JsReport {
        name: String::new(),
        version,
        pub_128,
        consume,
        msgs: opts.msgs,
        window: opts.window,
        peak_rss_kib: pid.and_then(crate::rows::peak_rss_kib),
    })
}

fn rate(v: f64) -> String {
    if v >= 1e6 { format!("{:.2} M/s", v / 1e6) } else { format!("{:.1} k/s", v / 1e3) }
}

/// A markdown table, one column per server name (files with the same name, from repeated
/// rounds, are merged keeping each row's best and the highest peak RSS), and a ratio
/// column of the first server against each other one.
pub fn table(files: &[std::path::PathBuf]) -> Result<String, String> {
    let mut reports: Vec<JsReport> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r = serde_json::from_str::<JsReport>(text.trim()).map_err(|e| format!("{}: {e}", f.display()))?;
        match reports.iter_mut().find(|x| x.name == r.name) {
            Some(x) => {
                x.pub_128 = x.pub_128.max(r.pub_128);
                x.consume = x.consume.max(r.consume);
                x.peak_rss_kib = x.peak_rss_kib.max(r.peak_rss_kib);
            }
            None => reports.push(r),
        }
    }
    type Cell = fn(&JsReport) -> f64;
    let rows: [(&str, Cell); 3] = [
        ("JS async publish, 128 B, file stream", |r| r.pub_128),
        ("JS durable pull consume + ack, batch 1000", |r| r.consume),
        ("server peak RSS (MiB)", |r| r.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0)),
    ];
    let mut s = String::from("| row |");
    for r in &reports {
        s.push_str(&format!(" {} {} ({} msgs, window {}) |", r.name, r.version, r.msgs, r.window));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(reports.len()));
    s.push('\n');
    for (i, (label, cell)) in rows.iter().enumerate() {
        s.push_str(&format!("| {label} |"));
        for r in &reports {
            let v = cell(r);
            let shown = if i == 2 { if v.is_nan() { "?".into() } else { format!("{v:.1} MiB") } } else { rate(v) };
            match reports.first().map(cell).filter(|_| reports.len() > 1 && !std::ptr::eq(r, &reports[0])) {
                Some(first) if v > 0.0 && first.is_finite() => {
                    s.push_str(&format!(" {shown} ({} {:.2}×) |", reports[0].name, first / v))
                }
                _ => s.push_str(&format!(" {shown} |")),
            }
        }
        s.push('\n');
    }
    Ok(s)
}
