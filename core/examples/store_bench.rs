//! Store benchmark: the `FileStore` on the real disk (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release -p weir-core --example store_bench -- [--quick] [--only append,always,read,mem]
//! ```
//!
//! Sub-benchmarks:
//! - `append`: append throughput with `SyncPolicy::Interval` for 128 B and 4 KiB payloads;
//! - `always`: `SyncPolicy::Always` single appends and `append_batch` group commits, beside
//!   the disk's own fsync/fdatasync rate measured on a plain file in the same directory;
//! - `read`: reopen (recovery scan), then sequential `load(1..=last)` and `load_next` with a
//!   literal and a wildcard filter;
//! - `mem`: write then read a large 4 KiB-payload stream under a 64 MB store budget and report
//!   peak RSS, the ledger accounts' peaks and the in-memory index size.
//!
//! Data goes under `--dir` (default `target/bench-data`) and is deleted after each run.

// A benchmark reads the wall clock by design; it is not simulated code.
#![allow(clippy::disallowed_methods)]

use clap::Parser;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::disk::{Disk, RealDisk};
use weir_core::store::{FileStore, FileStoreConfig, MsgStore, NewMsg, StoreLimits, StoreMemory, SyncPolicy};

const SUBJECTS: [&str; 8] = ["bench.0", "bench.1", "bench.2", "bench.3", "bench.4", "bench.5", "bench.6", "bench.7"];

#[derive(Parser, Debug)]
#[command(about = "FileStore benchmark on the real disk")]
struct Args {
    /// Small sizes and short runs (a smoke run, figures are rough).
    #[arg(long)]
    quick: bool,
    /// Comma-separated sub-benchmarks: append, always, read, mem.
    #[arg(long, default_value = "append,always,read,mem")]
    only: String,
    /// Directory for the benchmark data (deleted after each run).
    #[arg(long, default_value = "target/bench-data")]
    dir: PathBuf,
    /// Sync interval of the `Interval` policy, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Seconds each `Always` configuration (and each raw fsync loop) runs.
    #[arg(long)]
    always_secs: Option<f64>,
    /// Megabytes of payload written by the memory benchmark.
    #[arg(long)]
    mem_mb: Option<u64>,
    /// Block size in bytes.
    #[arg(long, default_value_t = FileStoreConfig::default().block_size)]
    block_size: u64,
}

/// One result row.
struct Row {
    bench: String,
    config: String,
    msgs: u64,
    secs: f64,
    syncs: Option<u64>,
    payload_bytes: u64,
    note: String,
}

impl Row {
    fn print_header() {
        println!("| benchmark | config | msgs | time s | msgs/s | payload MB/s | syncs/s | note |");
        println!("|---|---|---:|---:|---:|---:|---:|---|");
    }

    fn print(&self) {
        let rate = self.msgs as f64 / self.secs;
        let mbs = self.payload_bytes as f64 / self.secs / 1e6;
        let syncs = self.syncs.map_or("–".to_string(), |s| format!("{:.0}", s as f64 / self.secs));
        println!(
            "| {} | {} | {} | {:.3} | {} | {:.1} | {} | {} |",
            self.bench,
            self.config,
            self.msgs,
            self.secs,
            human(rate),
            mbs,
            syncs,
            self.note
        );
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// A fresh, empty data directory.
fn fresh(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create bench dir");
    d
}

fn open(disk: &Arc<dyn Disk>, cfg: FileStoreConfig, mem: StoreMemory) -> FileStore {
    FileStore::open(disk.clone(), "stream", StoreLimits::default(), cfg, mem).expect("open store")
}

/// `VmHWM`/`VmRSS` of this process in bytes.
fn proc_status(key: &str) -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Reset the peak RSS (`VmHWM`) to the current RSS; false if the kernel refused.
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Append `n` messages of `size` bytes with the `Interval` policy, ticking with a monotonic clock.
fn write_interval(fs: &mut FileStore, n: u64, size: usize, start: Instant) {
    let payload = vec![0xa5u8; size];
    for i in 0..n {
        fs.append(SUBJECTS[(i % 8) as usize], b"", &payload, i as i64).expect("append");
        if i % 64 == 0 {
            fs.tick(start.elapsed()).expect("tick");
        }
    }
    fs.flush().expect("flush");
}

fn bench_append(args: &Args, rows: &mut Vec<Row>) {
    for (size, n) in
        [(128usize, if args.quick { 200_000 } else { 2_000_000 }), (4096, if args.quick { 20_000 } else { 200_000 })]
    {
        let dir = fresh(&args.dir, "append");
        let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&dir).expect("disk"));
        let cfg = FileStoreConfig {
            sync: SyncPolicy::Interval(Duration::from_millis(args.interval_ms)),
            block_size: args.block_size,
            ..Default::default()
        };
        let mut fs = open(&disk, cfg, StoreMemory::standalone(16 << 20, 48 << 20));
        let start = Instant::now();
        write_interval(&mut fs, n, size, start);
        let secs = start.elapsed().as_secs_f64();
        rows.push(Row {
            bench: "append".into(),
            config: format!("{size} B, sync=interval {} ms", args.interval_ms),
            msgs: n,
            secs,
            syncs: None,
            payload_bytes: n * size as u64,
            note: format!("{} blocks, final flush included", fs.block_count()),
        });
        drop(fs);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Run `f` (which returns messages done per call) until `secs` elapsed; returns (msgs, calls, secs).
fn run_for(secs: f64, mut f: impl FnMut(u64) -> u64) -> (u64, u64, f64) {
    let start = Instant::now();
    let (mut msgs, mut calls) = (0, 0);
    while start.elapsed().as_secs_f64() < secs {
        msgs += f(calls);
        calls += 1;
    }
    (msgs, calls, start.elapsed().as_secs_f64())
}

fn bench_always(args: &Args, rows: &mut Vec<Row>) {
    let secs = args.always_secs.unwrap_or(if args.quick { 0.5 } else { 3.0 });
    let size = 128usize;
    let payload = vec![0x5au8; size];
    let dir = fresh(&args.dir, "always");

    // The disk's own rate: append a small record, then fdatasync / fsync, on a plain file.
    for (name, data_only) in [("fdatasync", true), ("fsync", false)] {
        let path = dir.join(format!("raw-{name}"));
        let mut f = OpenOptions::new().create(true).append(true).open(&path).expect("raw file");
        let rec = [0x11u8; 176];
        let (n, _, t) = run_for(secs, |_| {
            f.write_all(&rec).expect("write");
            if data_only { f.sync_data() } else { f.sync_all() }.expect("sync");
            1
        });
        rows.push(Row {
            bench: "raw disk".into(),
            config: format!("176 B write + {name}, plain file"),
            msgs: n,
            secs: t,
            syncs: Some(n),
            payload_bytes: n * size as u64,
            note: "the disk's fsync rate".into(),
        });
        drop(f);
        let _ = fs::remove_file(&path);
    }

    for batch in [1usize, 16, 128, 1024] {
        let sdir = fresh(&dir, &format!("b{batch}"));
        let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&sdir).expect("disk"));
        let cfg = FileStoreConfig { sync: SyncPolicy::Always, block_size: args.block_size, ..Default::default() };
        let mut fs = open(&disk, cfg, StoreMemory::standalone(16 << 20, 48 << 20));
        let (n, calls, t) = if batch == 1 {
            run_for(secs, |i| {
                fs.append(SUBJECTS[(i % 8) as usize], b"", &payload, i as i64).expect("append");
                1
            })
        } else {
            let msgs: Vec<NewMsg<'_>> = (0..batch)
                .map(|i| NewMsg { subject: SUBJECTS[i % 8], headers: b"", payload: &payload, ts_ns: i as i64 })
                .collect();
            run_for(secs, |_| fs.append_batch(&msgs).expect("append_batch").len() as u64)
        };
        rows.push(Row {
            bench: "append sync=always".into(),
            config: if batch == 1 {
                format!("{size} B, single append")
            } else {
                format!("{size} B, append_batch({batch})")
            },
            msgs: n,
            secs: t,
            syncs: Some(calls),
            payload_bytes: n * size as u64,
            note: "one sync per call".into(),
        });
        drop(fs);
        let _ = fs::remove_dir_all(&sdir);
    }
    let _ = fs::remove_dir_all(&dir);
}

fn bench_read(args: &Args, rows: &mut Vec<Row>) {
    for (size, n) in
        [(128usize, if args.quick { 200_000 } else { 2_000_000 }), (4096, if args.quick { 20_000 } else { 200_000 })]
    {
        let dir = fresh(&args.dir, "read");
        let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&dir).expect("disk"));
        let cfg = FileStoreConfig {
            sync: SyncPolicy::Interval(Duration::from_millis(args.interval_ms)),
            block_size: args.block_size,
            ..Default::default()
        };
        let mem = || StoreMemory::standalone(16 << 20, 48 << 20);
        let mut fs = open(&disk, cfg.clone(), mem());
        write_interval(&mut fs, n, size, Instant::now());
        fs.close().expect("close");

        let start = Instant::now();
        let mut fs =
            FileStore::open(disk.clone(), "stream", StoreLimits::default(), cfg.clone(), mem()).expect("reopen");
        let t = start.elapsed().as_secs_f64();
        assert!(fs.recovery().is_clean());
        rows.push(Row {
            bench: "open".into(),
            config: format!("{size} B, recovery scan"),
            msgs: n,
            secs: t,
            syncs: None,
            payload_bytes: n * size as u64,
            note: format!("{} blocks", fs.block_count()),
        });

        let start = Instant::now();
        let mut bytes = 0u64;
        for seq in 1..=n {
            let m = fs.load(seq).expect("load").expect("stored");
            bytes += m.payload.len() as u64;
        }
        rows.push(Row {
            bench: "read".into(),
            config: format!("{size} B, load(1..=last)"),
            msgs: n,
            secs: start.elapsed().as_secs_f64(),
            syncs: None,
            payload_bytes: bytes,
            note: "page cache warm, store cache cold".into(),
        });

        for (filter, expect) in [("bench.3", n / 8), ("bench.*", n)] {
            let mut fs =
                FileStore::open(disk.clone(), "stream", StoreLimits::default(), cfg.clone(), mem()).expect("reopen");
            let start = Instant::now();
            let (mut got, mut bytes, mut from) = (0u64, 0u64, 1u64);
            while let Some(m) = fs.load_next(filter, from).expect("load_next") {
                got += 1;
                bytes += m.payload.len() as u64;
                from = m.seq + 1;
            }
            assert_eq!(got, expect);
            rows.push(Row {
                bench: "read".into(),
                config: format!("{size} B, load_next(\"{filter}\")"),
                msgs: got,
                secs: start.elapsed().as_secs_f64(),
                syncs: None,
                payload_bytes: bytes,
                note: format!("matches 1/{}", n / expect),
            });
        }
        drop(fs);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Memory figures of the `mem` benchmark.
struct MemReport {
    lines: Vec<(String, String)>,
}

fn bench_mem(args: &Args, rows: &mut Vec<Row>) -> MemReport {
    let total_mb = args.mem_mb.unwrap_or(if args.quick { 256 } else { 2048 });
    let size = 4096usize;
    let subj_len = SUBJECTS[0].len();
    let rec = (48 + subj_len + size) as u64;
    let n = (total_mb << 20) / size as u64;
    let dir = fresh(&args.dir, "mem");
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&dir).expect("disk"));
    let (pool_cap, cache_cap) = (16u64 << 20, 48u64 << 20);
    let mem = StoreMemory::standalone(pool_cap, cache_cap);
    let cfg = FileStoreConfig {
        sync: SyncPolicy::Interval(Duration::from_millis(args.interval_ms)),
        block_size: args.block_size,
        cache_bytes: cache_cap,
        ..Default::default()
    };
    let reset = reset_peak_rss();
    let rss0 = proc_status("VmRSS:");
    let mut fs = open(&disk, cfg, mem.clone());
    let start = Instant::now();
    write_interval(&mut fs, n, size, start);
    let wsecs = start.elapsed().as_secs_f64();
    let hwm_write = proc_status("VmHWM:");
    rows.push(Row {
        bench: "mem: write".into(),
        config: format!("{size} B, {} MiB, 64 MB budget", total_mb),
        msgs: n,
        secs: wsecs,
        syncs: None,
        payload_bytes: n * size as u64,
        note: format!("{} blocks", fs.block_count()),
    });
    let wrote = start.elapsed();
    let start = Instant::now();
    for seq in 1..=n {
        let m = fs.load(seq).expect("load").expect("stored");
        assert_eq!(m.payload.len(), size);
        if seq % 256 == 0 {
            fs.tick(wrote + start.elapsed()).expect("tick");
        }
    }
    let rsecs = start.elapsed().as_secs_f64();
    let hwm = proc_status("VmHWM:");
    rows.push(Row {
        bench: "mem: read".into(),
        config: format!("{size} B, load(1..=last)"),
        msgs: n,
        secs: rsecs,
        syncs: None,
        payload_bytes: n * size as u64,
        note: "after the write, same store".into(),
    });
    let index = fs.index_bytes();
    let per_msg = index as f64 / n as f64;
    let n128 = (total_mb << 20) / (48 + subj_len as u64 + 128);
    let lines = vec![
        ("stream".to_string(), format!("{n} msgs × {size} B payload ({} on disk, {rec} B records)", mib(n * rec))),
        (
            "store budget".to_string(),
            format!("store.buffers cap {} + store.cache cap {}", mib(pool_cap), mib(cache_cap)),
        ),
        ("RSS before".to_string(), mib(rss0)),
        (
            "peak RSS (VmHWM), write phase".to_string(),
            format!("{}{}", mib(hwm_write), if reset { "" } else { " (VmHWM not reset: whole process)" }),
        ),
        ("peak RSS (VmHWM), write + read".to_string(), mib(hwm)),
        ("peak RSS above start".to_string(), mib(hwm.saturating_sub(rss0))),
        (
            "store.buffers peak / limit".to_string(),
            format!("{} / {}", mib(mem.buffers.peak()), mib(mem.buffers.limit())),
        ),
        ("store.cache peak / limit".to_string(), format!("{} / {}", mib(mem.cache.peak()), mib(mem.cache.limit()))),
        ("index_bytes()".to_string(), format!("{} ({per_msg:.1} B/msg)", mib(index))),
        (
            format!("index at 128 B payloads ({} MiB → {n128} msgs)", total_mb),
            format!("≈ {} (12 B/slot)", mib(n128 * 12)),
        ),
    ];
    drop(fs);
    let _ = fs::remove_dir_all(&dir);
    MemReport { lines }
}

fn main() {
    let args = Args::parse();
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();
    fs::create_dir_all(&args.dir).expect("create bench dir");
    let mut rows = Vec::new();
    let mut mem = None;
    // The memory run goes first so that its peak RSS is not inflated by earlier runs.
    if only.contains(&"mem") {
        mem = Some(bench_mem(&args, &mut rows));
    }
    if only.contains(&"append") {
        bench_append(&args, &mut rows);
    }
    if only.contains(&"always") {
        bench_always(&args, &mut rows);
    }
    if only.contains(&"read") {
        bench_read(&args, &mut rows);
    }
    let _ = fs::remove_dir_all(&args.dir);
    println!();
    Row::print_header();
    for r in &rows {
        r.print();
    }
    if let Some(m) = mem {
        println!();
        println!("| memory | value |");
        println!("|---|---|");
        for (k, v) in m.lines {
            println!("| {k} | {v} |");
        }
    }
}
