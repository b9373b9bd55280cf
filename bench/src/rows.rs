//! The measurements: publish-only, publish to one subscriber, sequential request/reply,
//! and the server's peak RSS. Every row ends with a server round trip, so it times what
//! the server has processed, not what the client has buffered.

use crate::report::Report;
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What to run against which server.
pub struct Options {
    /// Client URL.
    pub url: String,
    /// Messages per throughput run.
    pub msgs: u64,
    /// Round trips per request/reply run.
    pub requests: u64,
    /// Runs per row (the best counts).
    pub runs: u32,
    /// Run only the row with this key (`pub16`, `pub128`, `pubsub16`, `pubsub128`, `reqrep`).
    pub only: Option<String>,
}

/// Messages a publisher may be ahead of its subscriber, so that neither the server's
/// per-client cap (64 MiB) nor async-nats's subscription buffer overflows.
const WINDOW: u64 = 50_000;
/// The subscriber reports progress every this many messages.
const STEP: u64 = 1_000;

/// Any error of a row.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Connect, retrying for up to 10 s while the server starts.
pub async fn connect(url: &str, sub_capacity: usize) -> Result<async_nats::Client, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match async_nats::ConnectOptions::new().subscription_capacity(sub_capacity).connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Return once the server has processed everything `c` sent: a request nobody answers
/// comes back as no-responders only after the server has handled `c`'s earlier ops.
async fn round_trip(c: &async_nats::Client) -> Result<(), Error> {
    match c.request("bench.sync.nobody", Bytes::new()).await {
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err("bench.sync.nobody has a responder".into()),
    }
}

async fn pub_only(url: &str, size: usize, n: u64) -> Result<f64, Error> {
    let c = connect(url, 1024).await?;
    let payload = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    for _ in 0..n {
        c.publish("bench.pub", payload.clone()).await?;
    }
    round_trip(&c).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn pub_sub(url: &str, size: usize, n: u64) -> Result<f64, Error> {
    let sub_client = connect(url, (WINDOW + 2 * STEP) as usize).await?;
    let mut sub = sub_client.subscribe("bench.ps").await?;
    round_trip(&sub_client).await?;
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let (r, p) = (received.clone(), progress.clone());
    let reader = tokio::spawn(async move {
        for k in 1..=n {
            match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
                Ok(Some(_)) => {}
                _ => return Err(format!("subscriber stalled after {} of {n} messages", k - 1)),
            }
            if k % STEP == 0 || k == n {
                r.store(k, Ordering::Release);
                p.notify_one();
            }
        }
        Ok(Instant::now())
    });
    let publisher = connect(url, 1024).await?;
    let payload = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    for sent in 0..n {
        while sent - received.load(Ordering::Acquire) >= WINDOW {
            progress.notified().await;
        }
        publisher.publish("bench.ps", payload.clone()).await?;
    }
    publisher.flush().await?;
    let end = reader.await??;
    drop(sub_client);
    Ok(n as f64 / (end - start).as_secs_f64())
}

async fn request_reply(url: &str, n: u64) -> Result<f64, Error> {
    let svc = connect(url, 1024).await?;
    let mut reqs = svc.subscribe("bench.rr").await?;
    round_trip(&svc).await?;
    let responder = tokio::spawn(async move {
        while let Some(m) = reqs.next().await {
            if let Some(reply) = m.reply {
                let _ = svc.publish(reply, m.payload).await;
            }
        }
    });
    let cli = connect(url, 1024).await?;
    let payload = Bytes::from(vec![b'x'; 16]);
    let start = Instant::now();
    for _ in 0..n {
        cli.request("bench.rr", payload.clone()).await?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    responder.abort();
    Ok(rate)
}

/// Peak resident set size (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Best (highest) of `opts.runs` runs of `row`; 0 if `opts.only` names another row.
async fn best<F, Fut>(opts: &Options, key: &str, mut row: F) -> Result<f64, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<f64, Error>>,
{
    if opts.only.as_deref().is_some_and(|o| o != key) {
        return Ok(0.0);
    }
    let mut best = 0f64;
    for _ in 0..opts.runs.max(1) {
        let v = row().await?;
        eprintln!("  {key}: {v:.0}/s");
        best = best.max(v);
    }
    Ok(best)
}

/// Run every row against the server at `opts.url`; `pid` is the server's process.
pub async fn run_all(opts: &Options, pid: Option<u32>) -> Result<Report, Error> {
    let (url, n) = (opts.url.as_str(), opts.msgs);
    let version = connect(url, 1024).await?.server_info().version;
    Ok(Report {
        name: String::new(),
        version,
        pub_16: best(opts, "pub16", || pub_only(url, 16, n)).await?,
        pub_128: best(opts, "pub128", || pub_only(url, 128, n)).await?,
        pubsub_16: best(opts, "pubsub16", || pub_sub(url, 16, n / 2)).await?,
        pubsub_128: best(opts, "pubsub128", || pub_sub(url, 128, n / 2)).await?,
        req_rep: best(opts, "reqrep", || request_reply(url, opts.requests)).await?,
        peak_rss_kib: pid.and_then(peak_rss_kib),
    })
}
