//! Issue 9's server faults as a benchmark (not a test), over raw TCP so that the
//! client's own costs stay out of the figures:
//!
//! - **stall** (fault 2): one "heavy" connection holds `subs` subscriptions and then
//!   sends 100 no-responders requests, unsubscribes everything, subscribes again and
//!   closes; meanwhile a "probe" connection does PING/PONG round trips back to back, and
//!   the round trips are reported per phase (median, p99, max).
//! - **memory** (faults 6 and 7): the server's RSS idle, with the subscriptions (per
//!   subscription), and `settle` seconds after the heavy client left; then 500
//!   connections churn through shared subjects and the RSS is read again after `settle`.

// A benchmark reads the wall clock by design.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Options of the `faults` subcommand.
pub struct Options {
    /// host:port of the server's client port.
    pub addr: String,
    /// The server's process id, for RSS.
    pub pid: Option<u32>,
    /// Subscriptions of the heavy connection.
    pub subs: usize,
    /// Seconds to wait before reading the RSS after a load ends.
    pub settle: u64,
}

type Err = Box<dyn std::error::Error + Send + Sync>;

fn rss(pid: Option<u32>) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{}/statm", pid?)).ok()?;
    Some(statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * 4096)
}

fn mib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
}

async fn connect(addr: &str) -> Result<TcpStream, Err> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n").await?;
    Ok(s)
}

/// Read until `want` occurrences of `needle` have been seen in total.
async fn read_until(s: &mut TcpStream, needle: &[u8], want: usize) -> Result<(), Err> {
    let mut seen = 0;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while seen < want {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        tail.extend_from_slice(&buf[..n]);
        seen += tail.windows(needle.len()).filter(|w| *w == needle).count();
        let keep = tail.len().min(needle.len() - 1);
        tail.drain(..tail.len() - keep);
    }
    Ok(())
}

async fn sync(s: &mut TcpStream) -> Result<(), Err> {
    s.write_all(b"PING\r\n").await?;
    read_until(s, b"PONG\r\n", 1).await
}

/// Round trips of the probe, by phase.
#[derive(Default)]
struct Probe {
    phase: AtomicUsize,
    stop: AtomicBool,
    rtts: Mutex<Vec<(usize, Duration)>>,
}

async fn probe(addr: String, p: Arc<Probe>) -> Result<(), Err> {
    let mut s = connect(&addr).await?;
    sync(&mut s).await?;
    while !p.stop.load(Ordering::Relaxed) {
        let phase = p.phase.load(Ordering::Relaxed);
        let t = Instant::now();
        sync(&mut s).await?;
        p.rtts.lock().unwrap().push((phase, t.elapsed()));
    }
    Ok(())
}

async fn subscribe_all(s: &mut TcpStream, n: usize) -> Result<(), Err> {
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!("SUB heavy.{i} {i}\r\n"));
        if batch.len() > 32 * 1024 {
            s.write_all(batch.as_bytes()).await?;
            batch.clear();
        }
    }
    s.write_all(batch.as_bytes()).await?;
    sync(s).await
}

/// Run the benchmark and print markdown tables.
pub async fn run(o: &Options) -> Result<(), Err> {
    const PHASES: [&str; 6] =
        ["idle", "subscribe N", "100 no-responders requests", "unsubscribe N", "subscribe N again", "close with N"];
    let p = Arc::new(Probe::default());
    let prober = tokio::spawn(probe(o.addr.clone(), p.clone()));
    let set = |i: usize| p.phase.store(i, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss(o.pid);

    let mut heavy = connect(&o.addr).await?;
    heavy.write_all(b"SUB _INBOX.heavy.* inbox\r\n").await?;
    set(1);
    subscribe_all(&mut heavy, o.subs).await?;
    let rss_subs = rss(o.pid);

    set(2);
    let mut reqs = String::new();
    for k in 0..100 {
        reqs.push_str(&format!("PUB nobody.{k} _INBOX.heavy.{k} 0\r\n\r\n"));
    }
    let t = Instant::now();
    heavy.write_all(reqs.as_bytes()).await?;
    read_until(&mut heavy, b"HMSG _INBOX.heavy.", 100).await?;
    let nr_time = t.elapsed();

    set(3);
    let mut unsubs = String::new();
    for i in 0..o.subs {
        unsubs.push_str(&format!("UNSUB {i}\r\n"));
        if unsubs.len() > 32 * 1024 {
            heavy.write_all(unsubs.as_bytes()).await?;
            unsubs.clear();
        }
    }
    heavy.write_all(unsubs.as_bytes()).await?;
    sync(&mut heavy).await?;

    set(4);
    subscribe_all(&mut heavy, o.subs).await?;
    set(5);
    drop(heavy);
    // Let the server tear the connection down while the probe runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.stop.store(true, Ordering::Relaxed);
    prober.await??;

    println!("| phase (heavy client, N = {}) | probe PINGs | median | p99 | max |", o.subs);
    println!("|---|---:|---:|---:|---:|");
    let rtts = p.rtts.lock().unwrap().clone();
    for (i, name) in PHASES.iter().enumerate() {
        let mut d: Vec<Duration> = rtts.iter().filter(|(ph, _)| *ph == i).map(|(_, d)| *d).collect();
        d.sort();
        if d.is_empty() {
            println!("| {name} | 0 | - | - | - |");
            continue;
        }
        let q = |f: f64| d[((d.len() - 1) as f64 * f) as usize];
        println!("| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms |", d.len(), ms(q(0.5)), ms(q(0.99)), ms(q(1.0)));
    }
    println!("\n100 no-responders replies to the heavy client took {:.1} ms.\n", ms(nr_time));

    tokio::time::sleep(Duration::from_secs(o.settle)).await;
    let rss_left = rss(o.pid);

    // Churn: 500 connections on 10 shared subjects, each publishing 100 x 1 KiB, then all leave.
    let mut conns = Vec::new();
    for c in 0..500 {
        let mut s = connect(&o.addr).await?;
        s.write_all(format!("SUB shared.{} 1\r\nSUB own.{c} 2\r\n", c % 10).as_bytes()).await?;
        conns.push(s);
    }
    let body = "x".repeat(1024);
    for (c, s) in conns.iter_mut().enumerate() {
        let mut out = String::new();
        for k in 0..100 {
            out.push_str(&format!("PUB shared.{} {}\r\n{body}\r\n", (c + k) % 10, body.len()));
        }
        s.write_all(out.as_bytes()).await?;
    }
    for s in conns.iter_mut() {
        sync(s).await?;
    }
    let rss_churn_peak = rss(o.pid);
    drop(conns);
    tokio::time::sleep(Duration::from_secs(o.settle)).await;
    let rss_churn_left = rss(o.pid);

    let per_sub = match (rss_idle, rss_subs) {
        (Some(a), Some(b)) => format!("{:.2} KiB", (b.saturating_sub(a)) as f64 / 1024.0 / o.subs as f64),
        _ => "-".into(),
    };
    println!("| memory (RSS) | value |");
    println!("|---|---:|");
    println!("| idle | {} |", mib(rss_idle));
    println!("| with {} subscriptions | {} ({per_sub} per subscription) |", o.subs, mib(rss_subs));
    println!("| {} s after the heavy client left | {} |", o.settle, mib(rss_left));
    println!("| 500 churning connections, at the end | {} |", mib(rss_churn_peak));
    println!("| {} s after they left | {} |", o.settle, mib(rss_churn_left));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
