//! Issue 9's server faults as a benchmark (not a test), over raw TCP so that the
//! client's own costs stay out of the figures. One part per run, on a fresh server:
//!
//! - **stall** (fault 2): one "heavy" connection holds `subs` subscriptions and then
//!   sends 100 no-responders requests, unsubscribes everything, subscribes again, makes
//!   10,000 interest changes (SUB + UNSUB of a new subject) and closes; meanwhile a
//!   "probe" connection does PING/PONG round trips back to back, and the round trips are
//!   reported per phase (median, p99, max). The heavy client's leaving is also the
//!   first memory load (faults 6 and 7): RSS per subscription, and RSS after it left.
//! - **churn** (fault 7): 500 connections subscribe to 10 shared subjects, each
//!   publishes 100 × 1 KiB, then all leave.
//! - **big** (fault 4): 40 connections each publish one 8,000,000-byte message (the
//!   server must allow it: `max_payload` ≥ 8 MB) and then idle, still connected.
//!
//! A memory load reports the idle RSS before it, the highest RSS sampled during it
//! (every 100 ms), the RSS `settle` seconds after it ended, and the first time the RSS
//! was back within 20% of idle (the aim for fault 7); with `--monitor` also the
//! server's `/varz` figures then (weir: `allocator` and `read_buffers_shed`). Idle and
//! after are also split into anonymous and file-backed memory: what the allocator can
//! give back, and the code and data of the binary that the load paged in. With
//! `--warmup`, the load first runs at 1/100 of its scale and a "warm" idle RSS is read
//! 5 s later: the baseline of a server that has run this load's code before.

// A benchmark reads the wall clock by design.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which load a `faults` run applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// PING latency while one client with `subs` subscriptions works; RSS after it left.
    Stall,
    /// 500 connections churn through shared subjects.
    Churn,
    /// 40 connections each publish one 8 MB message, then idle.
    Big,
}

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
    /// The load.
    pub part: Part,
    /// The server's monitoring `host:port`, for `/varz` figures.
    pub monitor: Option<String>,
    /// Label of the memory row (server and allocator).
    pub name: String,
    /// Run the load at 1/100 scale first and report the idle RSS after it too.
    pub warmup: bool,
}

type Err = Box<dyn std::error::Error + Send + Sync>;

fn rss(pid: Option<u32>) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{}/statm", pid?)).ok()?;
    Some(statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * 4096)
}

/// Resident memory split as the kernel counts it (`/proc/PID/status`): anonymous
/// (the heap and stacks, what an allocator can give back) and file-backed (the
/// binary's and libraries' code and data paged in, which the kernel drops only under
/// memory pressure), in bytes.
#[derive(Clone, Copy)]
struct Split {
    anon: u64,
    file: u64,
}

fn split(pid: Option<u32>) -> Option<Split> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some(Split { anon: kib("RssAnon:")?, file: kib("RssFile:")? + kib("RssShmem:").unwrap_or(0) })
}

fn split_text(s: Option<Split>) -> String {
    s.map_or("-".into(), |s| format!("{} + {}", mib(Some(s.anon)), mib(Some(s.file))))
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

/// Read until `want` occurrences of `needle` have been seen in total; fails on `-ERR`.
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
        if tail.windows(4).any(|w| w == b"-ERR") {
            return Err(String::from_utf8_lossy(&tail).trim().to_owned().into());
        }
        let keep = tail.len().min(needle.len().max(4) - 1);
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

/// Write `lines` in batches of about 32 KiB, then sync.
async fn send_batched(s: &mut TcpStream, lines: impl Iterator<Item = String>) -> Result<(), Err> {
    let mut batch = String::new();
    for l in lines {
        batch.push_str(&l);
        if batch.len() > 32 * 1024 {
            s.write_all(batch.as_bytes()).await?;
            batch.clear();
        }
    }
    s.write_all(batch.as_bytes()).await?;
    sync(s).await
}

async fn subscribe_all(s: &mut TcpStream, n: usize) -> Result<(), Err> {
    send_batched(s, (0..n).map(|i| format!("SUB heavy.{i} {i}\r\n"))).await
}

/// The highest RSS seen while a load runs, sampled every 100 ms.
struct Peak {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    fn start(pid: Option<u32>) -> Peak {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(rss(pid).unwrap_or(0)));
        let (s, m) = (stop.clone(), max.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(rss(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Peak { stop, max, task }
    }

    async fn finish(self, pid: Option<u32>) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        pid.map(|_| self.max.load(Ordering::Relaxed).max(rss(pid).unwrap_or(0)))
    }
}

/// One memory load's figures.
struct MemRow {
    load: String,
    idle: Idle,
    during: Option<u64>,
    after: Option<u64>,
    after_split: Option<Split>,
    back_after: Option<f64>,
    back_after_warm: Option<f64>,
    varz: String,
}

/// The server's memory before a load: fresh from start, and (with `--warmup`) after the
/// same load at a small scale has come and gone, so that the code it runs is paged in.
#[derive(Clone, Copy)]
struct Idle {
    fresh: Option<u64>,
    fresh_split: Option<Split>,
    warm: Option<u64>,
}

/// What [`settle`] saw: the RSS at the end, and the seconds until the RSS first was
/// within 20% of the fresh and of the warm idle RSS.
struct Settled {
    after: Option<u64>,
    after_split: Option<Split>,
    back: Option<f64>,
    back_warm: Option<f64>,
}

/// Sample the RSS every 250 ms for `settle` seconds after a load ended at `ended`.
async fn settle(o: &Options, idle: Idle, ended: Instant) -> Settled {
    let (mut back, mut back_warm) = (None, None);
    let end = ended + Duration::from_secs(o.settle);
    let within =
        |base: Option<u64>, now: Option<u64>| matches!((base, now), (Some(i), Some(n)) if n as f64 <= i as f64 * 1.2);
    loop {
        let now = rss(o.pid);
        if back.is_none() && within(idle.fresh, now) {
            back = Some(ended.elapsed().as_secs_f64());
        }
        if back_warm.is_none() && within(idle.warm, now) {
            back_warm = Some(ended.elapsed().as_secs_f64());
        }
        if Instant::now() >= end {
            return Settled { after: now, after_split: split(o.pid), back, back_warm };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `/varz` figures that explain a memory row (weir's allocator and read-buffer
/// sheds; nothing for a server without them).
async fn varz_note(o: &Options) -> String {
    let Some(m) = &o.monitor else { return String::new() };
    let Some(v) = crate::route::varz(m).await else { return String::new() };
    let mut note = String::new();
    if let Some(a) = v.get("allocator") {
        let f = |k: &str| a.get(k).and_then(|x| x.as_u64()).map(|b| mib(Some(b))).unwrap_or("-".into());
        let name = a.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        let _ = write!(
            note,
            "{name}: allocated {}, resident {}, retained {}",
            f("allocated"),
            f("resident"),
            f("retained")
        );
    }
    if let Some(s) = v.get("read_buffers_shed").and_then(|s| s.as_u64()) {
        let _ = write!(note, "; read buffers shed {s}");
    }
    note
}

impl MemRow {
    fn print(&self, name: &str) {
        let back = |t: Option<f64>, base: Option<u64>| match (t, base) {
            (Some(t), _) => format!("{t:.1} s"),
            (None, Some(_)) => "no".into(),
            (None, None) => "-".into(),
        };
        println!(
            "| {} | {name} | {} ({}) | {} | {} | {} ({}) | {} | {} | {} |",
            self.load,
            mib(self.idle.fresh),
            split_text(self.idle.fresh_split),
            mib(self.idle.warm),
            mib(self.during),
            mib(self.after),
            split_text(self.after_split),
            back(self.back_after, self.idle.fresh),
            back(self.back_after_warm, self.idle.warm),
            self.varz
        );
    }
}

/// The header of [`MemRow`] tables. RSS figures in parentheses are anonymous +
/// file-backed.
pub fn mem_header(settle: u64) -> String {
    format!(
        "| load | server | idle RSS (anon + file) | warm idle RSS | RSS during | RSS {settle} s after (anon + file) | back within 20% of idle after | of warm idle | /varz then |\n|---|---|---:|---:|---:|---:|---:|---:|---|"
    )
}

/// Run the part and print markdown: the stall part its latency table and a memory row,
/// the others a memory row (see [`mem_header`]).
pub async fn run(o: &Options) -> Result<(), Err> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut idle = Idle { fresh: rss(o.pid), fresh_split: split(o.pid), warm: None };
    if o.warmup {
        warm_up(o).await?;
        tokio::time::sleep(Duration::from_secs(WARM_SETTLE)).await;
        idle.warm = rss(o.pid);
    }
    let row = match o.part {
        Part::Stall => stall(o, idle).await?,
        Part::Churn => churn(o, idle).await?,
        Part::Big => big(o, idle).await?,
    };
    row.print(&o.name);
    Ok(())
}

/// Seconds between the warm-up and reading the warm idle RSS.
const WARM_SETTLE: u64 = 5;

/// The part's load at 1/100 of its scale and without the probe: its code runs and its
/// small memory is given back before the warm idle RSS is read.
async fn warm_up(o: &Options) -> Result<(), Err> {
    match o.part {
        Part::Stall => {
            let mut heavy = connect(&o.addr).await?;
            heavy.write_all(b"SUB _INBOX.heavy.* inbox\r\n").await?;
            let subs = (o.subs / 100).max(1);
            subscribe_all(&mut heavy, subs).await?;
            heavy.write_all(b"PUB nobody.0 _INBOX.heavy.0 0\r\n\r\n").await?;
            read_until(&mut heavy, b"HMSG _INBOX.heavy.", 1).await?;
            send_batched(&mut heavy, (0..subs).map(|i| format!("UNSUB {i}\r\n"))).await?;
            sync(&mut heavy).await?;
        }
        Part::Churn => drop(churn_load(&o.addr, 5).await?),
        Part::Big => drop(big_load(&o.addr, 1).await?),
    }
    Ok(())
}

async fn stall(o: &Options, idle: Idle) -> Result<MemRow, Err> {
    const PHASES: [&str; 7] = [
        "idle",
        "subscribe N",
        "100 no-responders requests",
        "unsubscribe N",
        "subscribe N again",
        "10,000 interest changes (SUB + UNSUB) holding N",
        "close with N (first 2 s)",
    ];
    let p = Arc::new(Probe::default());
    let prober = tokio::spawn(probe(o.addr.clone(), p.clone()));
    let set = |i: usize| p.phase.store(i, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut heavy = connect(&o.addr).await?;
    heavy.write_all(b"SUB _INBOX.heavy.* inbox\r\n").await?;
    set(1);
    subscribe_all(&mut heavy, o.subs).await?;
    let with_subs = rss(o.pid);

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
    send_batched(&mut heavy, (0..o.subs).map(|i| format!("UNSUB {i}\r\n"))).await?;
    set(4);
    subscribe_all(&mut heavy, o.subs).await?;
    set(5);
    let base = o.subs + 1;
    send_batched(&mut heavy, (0..10_000).map(|k| format!("SUB change.{k} {}\r\nUNSUB {}\r\n", base + k, base + k)))
        .await?;
    let peak = rss(o.pid).max(with_subs);
    set(6);
    drop(heavy);
    let ended = Instant::now();
    // The probe goes on while the server tears the connection down.
    let stopper = {
        let p = p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            p.stop.store(true, Ordering::Relaxed);
        })
    };
    let settled = settle(o, idle, ended).await;
    stopper.await?;
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
    let per_sub = match (idle.fresh, with_subs) {
        (Some(a), Some(b)) => format!("{:.2} KiB", (b.saturating_sub(a)) as f64 / 1024.0 / o.subs as f64),
        _ => "-".into(),
    };
    println!(
        "\n100 no-responders replies to the heavy client took {:.1} ms; RSS with {} subscriptions {} ({per_sub} per subscription).\n",
        ms(nr_time),
        o.subs,
        mib(with_subs)
    );
    let varz = varz_note(o).await;
    Ok(MemRow::new(format!("a client with {} subscriptions leaves", o.subs), idle, peak, settled, varz))
}

impl MemRow {
    fn new(load: String, idle: Idle, during: Option<u64>, s: Settled, varz: String) -> MemRow {
        MemRow {
            load,
            idle,
            during,
            after: s.after,
            after_split: s.after_split,
            back_after: s.back,
            back_after_warm: s.back_warm,
            varz,
        }
    }
}

async fn churn(o: &Options, idle: Idle) -> Result<MemRow, Err> {
    let peak = Peak::start(o.pid);
    drop(churn_load(&o.addr, 500).await?);
    let during = peak.finish(o.pid).await;
    let settled = settle(o, idle, Instant::now()).await;
    let varz = varz_note(o).await;
    Ok(MemRow::new("500 connections churn".into(), idle, during, settled, varz))
}

/// `n` connections on 10 shared subjects: each publishes 100 x 1 KiB to them and reads
/// what the others on its subject send (with 500, ~5,000 messages each) until its PONG;
/// all at once. Returns the connections, still open.
async fn churn_load(addr: &str, n: usize) -> Result<Vec<TcpStream>, Err> {
    let mut tasks = Vec::new();
    for c in 0..n {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(&addr).await?;
            let body = "x".repeat(1024);
            let mut out = format!("SUB shared.{} 1\r\nSUB own.{c} 2\r\n", c % 10);
            for k in 0..100 {
                out.push_str(&format!("PUB shared.{} {}\r\n{body}\r\n", (c + k) % 10, body.len()));
            }
            s.write_all(out.as_bytes()).await?;
            sync(&mut s).await?;
            Ok::<_, Err>(s)
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await??);
    }
    Ok(conns)
}

async fn big(o: &Options, idle: Idle) -> Result<MemRow, Err> {
    let peak = Peak::start(o.pid);
    let (conns, refused) = big_load(&o.addr, 40).await?;
    let during = peak.finish(o.pid).await;
    // The connections stay open and idle while the RSS settles.
    let settled = settle(o, idle, Instant::now()).await;
    let mut varz = varz_note(o).await;
    if !refused.is_empty() {
        let _ = write!(varz, "; {} of 40 connections refused: {}", refused.len(), refused[0]);
    }
    drop(conns);
    Ok(MemRow::new("40 connections publish 8 MB each, then idle".into(), idle, during, settled, varz))
}

/// `n` connections each publish one 8,000,000-byte message; returns them, still open,
/// and the errors of those the server refused.
async fn big_load(addr: &str, n: usize) -> Result<(Vec<TcpStream>, Vec<String>), Err> {
    const SIZE: usize = 8_000_000;
    let payload = vec![b'x'; SIZE];
    let mut conns = Vec::new();
    let mut refused = Vec::new();
    for c in 0..n {
        let mut s = connect(addr).await?;
        s.write_all(format!("PUB big.{c} {SIZE}\r\n").as_bytes()).await?;
        s.write_all(&payload).await?;
        s.write_all(b"\r\n").await?;
        conns.push(s);
    }
    for s in conns.iter_mut() {
        if let Err(e) = sync(s).await {
            refused.push(e.to_string());
        }
    }
    Ok((conns, refused))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
