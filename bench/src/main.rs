//! `weir-bench`: NATS core throughput, round trips and server memory, measured with
//! async-nats against any server, so that weir and nats-server can be compared on the
//! same machine with the same client (`scripts/bench-vs-nats-server`). A benchmark, not a test.

mod report;
mod rows;

use clap::{Parser, Subcommand};
use report::Report;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "weir-bench", about = "NATS core benchmarks against a running server")]
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
    };
    if let Err(e) = result {
        eprintln!("weir-bench: {e}");
        std::process::exit(1);
    }
}
