//! `weir-bench`: NATS core throughput, round trips, JetStream publish/consume and server memory, measured with
//! async-nats against any server, so that weir and nats-server can be compared on the
//! same machine with the same client (`scripts/bench-vs-nats-server`). A benchmark, not a test.

mod faults;
mod js;
mod report;
mod route;
mod rows;

use clap::{Parser, Subcommand};
use report::Report;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "weir-bench", about = "NATS core and JetStream benchmarks against a running server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every row against one server and print the results as JSON.
    Run {
        /// The server's client URL.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        /// The server's process id, for its peak RSS (VmHWM in /proc/<pid>/status).
        #[arg(long)]
        pid: Option<u32>,
        /// Label for the results (a column header).
        #[arg(long, default_value = "server")]
        name: String,
        /// Messages per throughput run.
        #[arg(long, default_value_t = 1_000_000)]
        msgs: u64,
        /// Request/reply round trips per run.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Runs per row; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Run only one row: pub16, pub128, pubsub16, pubsub128 or reqrep (for profiling).
        #[arg(long)]
        only: Option<String>,
    },
    /// Run the JetStream rows (async publish 128 B to a file stream with a PubAck window,
    /// durable pull consume with acks in batches of 1,000) against one server; print JSON.
    Js {
        /// The server's client URL.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        /// The server's process id, for its peak RSS.
        #[arg(long)]
        pid: Option<u32>,
        /// Label for the results (a column header).
        #[arg(long, default_value = "server")]
        name: String,
        /// Messages per run.
        #[arg(long, default_value_t = 200_000)]
        msgs: u64,
        /// Outstanding PubAcks allowed (the publisher waits for the oldest beyond it).
        #[arg(long, default_value_t = 500)]
        window: usize,
        /// Runs; the best is reported.
        #[arg(long, default_value_t = 1)]
        runs: u32,
    },
    /// Issue 9's server faults, one part per run on a fresh server: other clients' PING
    /// round trips while one client with many subscriptions sends no-responders
    /// requests, unsubscribes, resubscribes, changes interest and closes (`stall`); the
    /// server's RSS during and after a load (`stall`, `churn`, `big`). Prints markdown.
    Faults {
        /// The server's client address (host:port).
        #[arg(long, default_value = "127.0.0.1:4222")]
        addr: String,
        /// The server's process id, for its RSS.
        #[arg(long)]
        pid: Option<u32>,
        /// Subscriptions of the heavy client.
        #[arg(long, default_value_t = 200_000)]
        subs: usize,
        /// Seconds after a load ends before the RSS is read.
        #[arg(long, default_value_t = 30)]
        settle: u64,
        /// The load.
        #[arg(long, value_enum, default_value = "stall")]
        part: faults::Part,
        /// The server's monitoring `host:port` (weir: allocator figures from `/varz`).
        #[arg(long)]
        monitor: Option<String>,
        /// Label of the memory row (server and allocator).
        #[arg(long, default_value = "server")]
        name: String,
        /// Before the load, run it at 1/100 scale and read a "warm" idle RSS 5 s later:
        /// the baseline of a server whose code for this load is paged in.
        #[arg(long)]
        warmup: bool,
    },
    /// Print the header of the `faults` memory rows.
    FaultsHeader {
        /// Seconds after a load ends before the RSS is read.
        #[arg(long, default_value_t = 30)]
        settle: u64,
    },
    /// Print a markdown table of `js` result files, one column per server name.
    JsTable {
        /// Result files.
        files: Vec<PathBuf>,
    },
    /// Route stall (issue 9, fault 9): publish on A to a subscriber on B while B is
    /// stopped (SIGSTOP) for `--stall` seconds; print loss and publish rates as JSON.
    RouteStall {
        /// Publisher's server (A).
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        pub_url: String,
        /// Subscriber's server (B).
        #[arg(long, default_value = "nats://127.0.0.1:4223")]
        sub_url: String,
        /// B's process id; without it nothing is stopped (the unthrottled-route case).
        #[arg(long)]
        stop_pid: Option<u32>,
        /// A's monitoring `host:port` (weir: route drop counters from `/varz`).
        #[arg(long)]
        monitor: Option<String>,
        /// Messages per second; 0 publishes as fast as the client can.
        #[arg(long, default_value_t = 60_000)]
        rate: u64,
        /// Payload bytes.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 20)]
        secs: u64,
        /// Seconds after the start when B is stopped.
        #[arg(long, default_value_t = 5)]
        stall_at: u64,
        /// Seconds B stays stopped.
        #[arg(long, default_value_t = 10)]
        stall: u64,
    },
    /// Print a markdown table with one column per results file from `run`.
    Table {
        /// Result files, one per server.
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() {
    let result = match Cli::parse().cmd {
        Cmd::Run { url, pid, name, msgs, requests, runs, only } => {
            let opts = rows::Options { url, msgs, requests, runs, only };
            rows::run_all(&opts, pid)
                .await
                .map(|r| println!("{}", Report { name, ..r }.to_json()))
                .map_err(|e| e.to_string())
        }
        Cmd::Table { files } => report::table(&files).map(|t| print!("{t}")),
        Cmd::Js { url, pid, name, msgs, window, runs } => {
            let opts = js::Options { url, msgs, window, runs };
            js::run_all(&opts, pid)
                .await
                .map(|r| println!("{}", serde_json::to_string(&js::JsReport { name, ..r }).unwrap_or_default()))
                .map_err(|e| e.to_string())
        }
        Cmd::RouteStall { pub_url, sub_url, stop_pid, monitor, rate, size, secs, stall_at, stall } => {
            let o = route::Options { pub_url, sub_url, stop_pid, monitor, rate, size, secs, stall_at, stall };
            route::run(&o)
                .await
                .map(|r| println!("{}", serde_json::to_string(&r).unwrap_or_default()))
                .map_err(|e| e.to_string())
        }
        Cmd::JsTable { files } => js::table(&files).map(|t| print!("{t}")),
        Cmd::Faults { addr, pid, subs, settle, part, monitor, name, warmup } => {
            let o = faults::Options { addr, pid, subs, settle, part, monitor, name, warmup };
            faults::run(&o).await.map_err(|e| e.to_string())
        }
        Cmd::FaultsHeader { settle } => {
            println!("{}", faults::mem_header(settle));
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("weir-bench: {e}");
        std::process::exit(1);
    }
}
