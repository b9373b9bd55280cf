//! Subject index benchmark: the memory one subscription costs in the broker (the
//! subject index, the subscription table and the client's sid map together) and in the
//! bare [`SubIndex`], measured with a counting allocator (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release -p weir-core --example subindex_bench -- [--subs 200000]
//! ```
//!
//! Each workload subscribes `--subs` subscriptions from one client, then removes the
//! client. "live" is the bytes the program asked for; "chunks" rounds each allocation up
//! to a glibc malloc chunk (16-byte steps, at least 32 bytes, 8 bytes of header), which
//! is what the heap really holds. The bytes left after the client is removed must be 0.
//! nats-server's figure to compare with is ~1.05 KiB per subscription of RSS (issue 9).

// A benchmark reads the wall clock by design; it is not simulated code.
#![allow(clippy::disallowed_methods)]

use clap::Parser;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;
use weir_core::mem::Account;
use weir_core::proto::ByteStr;
use weir_core::server::nats::broker::Broker;
use weir_core::server::nats::outbound::Outbound;
use weir_core::subject::SubIndex;

/// The system allocator, counting live bytes requested and live glibc chunk bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static CHUNKS: AtomicI64 = AtomicI64::new(0);

fn chunk(size: usize) -> i64 {
    (((size + 8 + 15) & !15).max(32)) as i64
}

// SAFETY: every call is passed straight to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        CHUNKS.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        CHUNKS.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: as `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Parser, Debug)]
#[command(about = "Memory per subscription of the broker and the subject index")]
struct Args {
    /// Subscriptions per workload.
    #[arg(long, default_value_t = 200_000)]
    subs: usize,
}

/// The subject of subscription `i` in a workload.
type SubjectOf = fn(usize) -> String;

fn counters() -> (i64, i64) {
    (LIVE.load(Ordering::Relaxed), CHUNKS.load(Ordering::Relaxed))
}

fn row(name: &str, n: usize, before: (i64, i64), after: (i64, i64), left: (i64, i64), secs: f64) {
    let per = |a: i64, b: i64| (b - a) as f64 / n as f64;
    println!(
        "| {name} | {n} | {:.0} | {:.0} | {:.2} | {} |",
        per(before.0, after.0),
        per(before.1, after.1),
        secs,
        left.0 - before.0
    );
}

fn main() {
    let args = Args::parse();
    let n = args.subs;
    println!("| workload | subs | live B/sub | chunks B/sub | subscribe s | bytes left after removal |");
    println!("|---|---:|---:|---:|---:|---:|");
    let workloads: [(&str, SubjectOf); 2] = [
        ("literal `bench.sub.<i>`", |i| format!("bench.sub.{i}")),
        ("inbox `_INBOX.<22 chars>.<i>`", |i| format!("_INBOX.Jx8tQ2mK9pLr4vWb7nZc1d.{i}")),
    ];
    for (name, subject) in workloads {
        let subjects: Vec<String> = (0..n).map(subject).collect();

        // The broker: index, subscription table, sid map.
        let account = Arc::new(Account::new("client.outbound", 1 << 20));
        let mut broker = Broker::new(1, Arc::default());
        let id = broker.add_client(Arc::new(Outbound::new(account, 1 << 20)));
        let before = counters();
        let t = Instant::now();
        for (i, s) in subjects.iter().enumerate() {
            broker.subscribe(id, s, None, ByteStr::from(i.to_string())).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let after = counters();
        broker.remove_client(id);
        let left = counters();
        row(&format!("broker, {name}"), n, before, after, left, secs);
        drop(broker);
        // The bare index.
        let mut index = SubIndex::new();
        let before = counters();
        let t = Instant::now();
        let ids: Vec<_> = subjects.iter().enumerate().map(|(i, s)| index.insert(s, None, i as u64).unwrap()).collect();
        let secs = t.elapsed().as_secs_f64();
        let after = counters();
        let ids_bytes = (ids.capacity() * std::mem::size_of_val(&ids[0])) as i64;
        let after = (after.0 - ids_bytes, after.1 - chunk(ids_bytes as usize));
        for id in ids {
            index.remove(id);
        }
        let left = counters();
        row(&format!("index only, {name}"), n, before, after, left, secs);
    }
}
