//! The route stall row (issue 9, fault 9): a publisher on server A sends to a
//! subscriber on server B at a fixed rate (or as fast as it can) while B is stopped
//! (SIGSTOP) for a while; reports how many messages were lost, how fast the publisher
//! went before, during and after the stall, and A's route drop counters from `/varz`
//! (weir only). Works against weir and nats-server clusters alike.

use crate::rows::{Error, connect};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to run.
pub struct Options {
    /// Publisher's server (A).
    pub pub_url: String,
    /// Subscriber's server (B).
    pub sub_url: String,
    /// B's process id, stopped for `stall` (no stall without it).
    pub stop_pid: Option<u32>,
    /// A's monitoring `host:port`, for its route drop counters.
    pub monitor: Option<String>,
    /// Messages per second (0: as fast as the client goes).
    pub rate: u64,
    /// Payload bytes.
    pub size: usize,
    /// Publishing time.
    pub secs: u64,
    /// When the stall starts, after publishing starts.
    pub stall_at: u64,
    /// How long B stays stopped.
    pub stall: u64,
}

/// The row's figures.
#[derive(Debug, Serialize)]
pub struct RouteReport {
    /// Messages published.
    pub sent: u64,
    /// Messages the subscriber received.
    pub received: u64,
    /// `100 * (sent - received) / sent`.
    pub loss_pct: f64,
    /// Publish rate (msg/s) before the stall, during it, and after it.
    pub rate_before: f64,
    /// See `rate_before`.
    pub rate_during: f64,
    /// See `rate_before`.
    pub rate_after: f64,
    /// A's `/varz` `cluster.route_drops` (weir), if a monitor was given.
    pub route_drops: Option<serde_json::Value>,
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

/// `/varz` of the server whose monitoring port is `monitor` (`host:port`), as JSON.
pub(crate) async fn varz(monitor: &str) -> Option<serde_json::Value> {
    let mut s = tokio::net::TcpStream::connect(monitor).await.ok()?;
    s.write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8(buf).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// Run the row.
pub async fn run(o: &Options) -> Result<RouteReport, Error> {
    let sub_client = connect(&o.sub_url, 1 << 20).await?;
    let mut sub = sub_client.subscribe("bench.route").await?;
    sub_client.flush().await?;
    // Let the interest cross the route (a benchmark, not a test: a fixed wait is fine).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    let counter = tokio::spawn(async move {
        while sub.next().await.is_some() {
            r2.fetch_add(1, Ordering::Relaxed);
        }
    });

    let a = connect(&o.pub_url, 1024).await?;
    let body = Bytes::from(vec![b'x'; o.size]);
    let start = Instant::now();
    let (stall_from, stall_to) = (Duration::from_secs(o.stall_at), Duration::from_secs(o.stall_at + o.stall));
    if let Some(pid) = o.stop_pid {
        tokio::spawn(async move {
            tokio::time::sleep_until((start + stall_from).into()).await;
            signal(pid, "STOP");
            tokio::time::sleep_until((start + stall_to).into()).await;
            signal(pid, "CONT");
        });
    }
    let end = Duration::from_secs(o.secs);
    let mut phase = [0u64; 3];
    let mut sent = 0u64;
    loop {
        let now = start.elapsed();
        if now >= end {
            break;
        }
        if o.rate > 0 {
            // Pace in 1 ms steps: catch up to where the rate says we should be.
            let due = (now.as_secs_f64() * o.rate as f64) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        a.publish("bench.route", body.clone()).await?;
        sent += 1;
        let p = if now < stall_from {
            0
        } else if now < stall_to && o.stop_pid.is_some() {
            1
        } else {
            2
        };
        phase[p] += 1;
    }
    a.flush().await?;
    // Wait until the subscriber has everything, or nothing new came for 3 s.
    let (mut last, mut quiet) = (received.load(Ordering::Relaxed), Instant::now());
    while last < sent && quiet.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received.load(Ordering::Relaxed);
        if now != last {
            (last, quiet) = (now, Instant::now());
        }
    }
    counter.abort();
    let received = received.load(Ordering::Relaxed);
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    let during = if o.stop_pid.is_some() { o.stall } else { 0 };
    let route_drops = match &o.monitor {
        Some(m) => varz(m).await.and_then(|v| v.get("cluster")?.get("route_drops").cloned()),
        None => None,
    };
    Ok(RouteReport {
        sent,
        received,
        loss_pct: 100.0 * sent.saturating_sub(received) as f64 / sent.max(1) as f64,
        rate_before: phase[0] as f64 / secs(stall_from.min(end)),
        rate_during: phase[1] as f64 / secs(Duration::from_secs(during)),
        rate_after: phase[2] as f64 / secs(end.saturating_sub(stall_from + Duration::from_secs(during))),
        route_drops,
    })
}
