//! `weir`: the production server, built from the same core as the simulation.
//!
//! `weir serve` runs a NATS core pub/sub server (client port, monitoring port);
//! `weir raft-node` runs a Raft-replicated log node and `weir propose` is a small client for it;
//! `weir stream ...` and `weir consumer ...` are JetStream admin commands for any NATS server.

mod admin;
#[cfg(not(madsim))]
mod alloc;
mod cli;
mod conf;
mod config;
mod logging;
mod monitor;
mod serve;
mod shutdown;
mod signal_cmd;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::disk::RealDisk;
use weir_core::raft;
use weir_core::server::client::ClientConn;
use weir_core::server::nats;
use weir_core::server::node::{self, NodeConfig, NodeEnv};
use weir_core::server::route::RouteConfig;
use weir_core::testing::payload;
use weir_traces::{EventKind, EventSink, NodeNo};

#[derive(Parser)]
#[command(
    name = "weir",
    about = "Weir: a clustered streaming broker",
    long_about = "Weir: a clustered streaming broker. With no subcommand and nats-server-style flags \
                  (`weir -p -1 -js`), `serve` is implied.",
    disable_version_flag = true
)]
struct Cli {
    /// Print weir's version and the NATS server level it advertises.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a NATS server (core pub/sub) that NATS clients can connect to.
    Serve(Box<cli::ServeArgs>),
    /// Run a Raft log node.
    RaftNode {
        /// This node's id (1-based, unique in the cluster).
        #[arg(long)]
        id: u64,
        /// Address peers dial (route port).
        #[arg(long, default_value = "127.0.0.1:6222")]
        cluster: SocketAddr,
        /// Address clients connect to.
        #[arg(long, default_value = "127.0.0.1:7222")]
        client: SocketAddr,
        /// A peer as `ID=HOST:PORT` (repeatable).
        #[arg(long = "routes", value_name = "ID=ADDR")]
        routes: Vec<String>,
        /// Data directory.
        #[arg(long, default_value = "./weir-data")]
        store_dir: PathBuf,
    },
    /// JetStream streams on any NATS server: ls, info, subjects, add, rm, purge.
    #[command(visible_alias = "str")]
    Stream(admin::StreamArgs),
    /// JetStream consumers on any NATS server: ls, info, add, rm.
    #[command(visible_alias = "con")]
    Consumer(admin::ConsumerArgs),
    /// Propose values to a node's log and print their commit indices.
    Propose {
        /// The node's client address.
        #[arg(long, default_value = "127.0.0.1:7222")]
        server: SocketAddr,
        /// Values to propose.
        values: Vec<u64>,
    },
}

/// Logs node events through `tracing`.
struct LogSink;

impl EventSink for LogSink {
    fn emit(&self, node: NodeNo, kind: EventKind) {
        match kind {
            EventKind::Applied { .. } | EventKind::RaftCommit { .. } => tracing::debug!(node, ?kind),
            _ => tracing::info!(node, ?kind),
        }
    }
}

fn parse_peer(s: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("peer '{s}' is not ID=HOST:PORT"))?;
    let id: u64 = id.parse().map_err(|_| format!("peer id '{id}' is not a number"))?;
    let addr: SocketAddr = addr.parse().map_err(|e| format!("peer address '{addr}': {e}"))?;
    Ok((id, addr))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args().collect()));
    let code = match cli.cmd {
        _ if cli.version => {
            println!("weir: v{} (NATS server level {})", nats::config::WEIR_VERSION, nats::config::NATS_SERVER_LEVEL);
            Ok(())
        }
        None => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            Ok(())
        }
        Some(Cmd::Serve(args)) if args.signal.is_some() => signal_cmd::run(args.signal.as_deref().unwrap_or_default()),
        Some(Cmd::Serve(args)) if args.test_config => match &args.config {
            // nats-server's -t: load everything a start would, bind nothing.
            Some(path) => serve::settings((*args).clone()).await.map(|_| {
                println!("weir: configuration file {} is valid", path.display());
            }),
            None => Err("must specify [-c, --config] option to check configuration file syntax".into()),
        },
        Some(Cmd::Serve(args)) => {
            // Before anything else: this may re-execute the process (see `alloc`).
            #[cfg(not(madsim))]
            alloc::disable_thread_cache();
            match serve::settings((*args).clone()).await {
                Ok(s) => match logging::init(s.log_file.as_deref(), s.log_level) {
                    Ok(()) => serve::run(s, *args).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Some(Cmd::RaftNode { id, cluster, client, routes, store_dir }) => {
            logging::init(None, "info").and(raft_node(id, cluster, client, &routes, store_dir).await)
        }
        Some(Cmd::Propose { server, values }) => propose(server, &values).await,
        Some(Cmd::Stream(args)) => admin::stream(args).await,
        Some(Cmd::Consumer(args)) => admin::consumer(args).await,
    };
    if let Err(e) = code {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn raft_node(
    id: u64,
    cluster: SocketAddr,
    client: SocketAddr,
    routes: &[String],
    store_dir: PathBuf,
) -> Result<(), String> {
    if id == 0 {
        return Err("--id must be at least 1".into());
    }
    let peers = routes.iter().map(|r| parse_peer(r)).collect::<Result<Vec<_>, _>>()?;
    if peers.iter().any(|p| p.0 == id) {
        return Err(format!("--routes lists this node's own id {id}"));
    }
    let disk = RealDisk::new(&store_dir).map_err(|e| format!("cannot use {}: {e}", store_dir.display()))?;
    let mut ids: Vec<u64> = peers.iter().map(|p| p.0).collect();
    ids.push(id);
    let cfg = NodeConfig {
        id,
        peers,
        route_listen: cluster,
        client_listen: client,
        data_dir: "raft".into(),
        raft: raft::Config::new(id, ids),
        route: RouteConfig::default(),
        snapshot_every: 10_000,
        tick: Duration::from_millis(10),
        proposal_queue: 4096,
        propose_batch: Duration::ZERO,
    };
    let env = NodeEnv {
        disk: Arc::new(disk),
        sink: Arc::new(LogSink),
        ledger: node::default_ledger(),
        link_wrap: None,
        seed: serve::seed_from_os(),
        status: Arc::new(Mutex::new(Default::default())),
        app: Arc::new(Mutex::new(weir_core::testing::LogApp::default())),
    };
    tracing::info!(id, %cluster, %client, "weir node starting");
    node::run(cfg, env).await.map_err(|e| e.to_string())
}

async fn propose(server: SocketAddr, values: &[u64]) -> Result<(), String> {
    let mut conn = ClientConn::connect(server).await.map_err(|e| format!("cannot connect to {server}: {e}"))?;
    for (i, &v) in values.iter().enumerate() {
        let outcome = conn.propose(i as u64, payload(v, 8)).await.map_err(|e| e.to_string())?;
        println!("{v}: {outcome:?}");
    }
    Ok(())
}
