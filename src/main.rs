//! `weir`: the production server, built from the same core as the simulation.
//!
//! `weir serve` runs a NATS core pub/sub server (client port, monitoring port);
//! `weir raft-node` runs a Raft-replicated log node and `weir propose` is a small client for it.

mod config;
mod monitor;
mod shutdown;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::disk::RealDisk;
use weir_core::raft;
use weir_core::server::client::ClientConn;
use weir_core::server::nats::{self, Auth, NatsConfig, NatsServer};
use weir_core::server::node::{self, NodeConfig, NodeEnv};
use weir_core::server::route::RouteConfig;
use weir_core::testing::payload;
use weir_traces::{EventKind, EventSink, NodeNo};

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: a clustered streaming broker")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `weir serve` flags, named like nats-server's where they overlap.
#[derive(clap::Args)]
struct ServeArgs {
    /// Host to listen on for clients [default: 127.0.0.1].
    #[arg(short = 'a', long = "addr", alias = "net")]
    addr: Option<String>,
    /// Client port [default: 4222].
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Monitoring HTTP port (/healthz, /varz, /metrics) on the same host; off unless set.
    #[arg(short = 'm', long = "http_port")]
    http_port: Option<u16>,
    /// Largest message a client may publish, e.g. 1048576 or 1MB [default: 1MB].
    #[arg(long = "max_payload", value_parser = config::parse_size)]
    max_payload: Option<u64>,
    /// Per-client outbound cap, e.g. 64MB; a client over it is a slow consumer [default: 64MB].
    #[arg(long = "max_pending", value_parser = config::parse_size)]
    max_pending: Option<u64>,
    /// Server name reported in INFO.
    #[arg(short = 'n', long = "server_name")]
    server_name: Option<String>,
    /// Token clients must send in CONNECT (`auth_token`).
    #[arg(long = "auth", value_name = "TOKEN")]
    auth: Option<String>,
    /// User clients must send in CONNECT (with --pass).
    #[arg(long)]
    user: Option<String>,
    /// Password for --user.
    #[arg(long)]
    pass: Option<String>,
    /// Config file (`key: value` lines; see README). Flags override it.
    #[arg(short = 'c', long)]
    config: Option<PathBuf>,
    /// Route listen address for clustering, `host:port` (a `nats://` prefix is accepted).
    #[arg(long = "cluster", value_name = "HOST:PORT")]
    cluster: Option<String>,
    /// Routes to other servers, comma-separated and/or repeated: `nats-route://host:port,...`.
    #[arg(long = "routes", value_name = "URLS", value_delimiter = ',')]
    routes: Vec<String>,
    /// Cluster name; servers with different names do not connect [default: weir].
    #[arg(long = "cluster_name")]
    cluster_name: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a NATS server (core pub/sub) that NATS clients can connect to.
    Serve(ServeArgs),
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let code = match Cli::parse().cmd {
        Cmd::Serve(args) => serve_nats(args).await,
        Cmd::RaftNode { id, cluster, client, routes, store_dir } => {
            raft_node(id, cluster, client, &routes, store_dir).await
        }
        Cmd::Propose { server, values } => propose(server, &values).await,
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
    };
    let env = NodeEnv {
        disk: Arc::new(disk),
        sink: Arc::new(LogSink),
        ledger: node::default_ledger(),
        shaper: None,
        seed: seed_from_os(),
        status: Arc::new(Mutex::new(Default::default())),
        app: Arc::new(Mutex::new(weir_core::testing::LogApp::default())),
    };
    tracing::info!(id, %cluster, %client, "weir node starting");
    node::run(cfg, env).await.map_err(|e| e.to_string())
}

async fn serve_nats(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => config::FileConfig::default(),
    };
    let host = args.addr.or(file.host).unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.port.or(file.port).unwrap_or(4222);
    let ip: std::net::IpAddr = host.parse().map_err(|e| format!("--addr '{host}': {e}"))?;
    let mut cfg = NatsConfig { listen: SocketAddr::new(ip, port), seed: seed_from_os(), ..NatsConfig::default() };
    if let Some(n) = args.server_name.or(file.server_name) {
        cfg.server_name = n;
    }
    if let Some(n) = args.max_payload.or(file.max_payload) {
        if n == 0 || n > 64 << 20 {
            return Err(format!("max_payload {n} must be between 1 and 64MB"));
        }
        cfg.max_payload = n as usize;
    }
    if let Some(n) = args.max_pending.or(file.max_pending) {
        if n < cfg.max_payload as u64 {
            return Err(format!("max_pending {n} must be at least max_payload {}", cfg.max_payload));
        }
        cfg.max_pending = n;
    }
    if let Some(d) = file.ping_interval {
        if d.is_zero() {
            return Err("ping_interval must be at least 1 second".into());
        }
        cfg.ping_interval = d;
    }
    if let Some(n) = file.ping_max {
        cfg.ping_max = n;
    }
    if let Some(d) = file.write_deadline {
        cfg.write_deadline = d;
    }
    cfg.auth = auth(args.auth.or(file.token), args.user.or(file.user), args.pass.or(file.password))?;
    let routes: Vec<String> = if args.routes.is_empty() { file.routes.clone() } else { args.routes.clone() };
    let cluster_listen = args.cluster.or(file.cluster);
    if let Some(listen) = cluster_listen {
        let listen = config::strip_scheme(&listen);
        let mut cc = nats::ClusterConfig {
            listen: tokio::net::lookup_host(listen)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("--cluster '{listen}' is not a host:port"))?,
            ..nats::ClusterConfig::default()
        };
        for r in routes.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            cc.routes.push(nats::RouteTarget::new(config::strip_scheme(r)));
        }
        if let Some(name) = args.cluster_name.or(file.cluster_name) {
            cc.name = name;
        }
        cfg.cluster = Some(cc);
    } else if !routes.is_empty() {
        return Err("--routes needs --cluster (the route listen address)".into());
    }
    let client_limit = cfg.max_outbound_total.max(cfg.max_pending);
    let ledger = match &cfg.cluster {
        Some(_) => nats::cluster_ledger(client_limit, nats::cluster::DEFAULT_ROUTE_OUTBOUND_TOTAL),
        None => nats::ledger(client_limit),
    };
    let server = NatsServer::bind(cfg, ledger).await.map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    if let Some(a) = server.cluster_addr() {
        tracing::info!(addr = %a, "cluster routes enabled");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(http_port) = args.http_port.or(file.http_port) {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, http_port))
            .await
            .map_err(|e| format!("cannot listen on monitoring port {host}:{http_port}: {e}"))?;
        tracing::info!(addr = %SocketAddr::new(ip, http_port), "monitoring listener ready");
        let mut rx = stop_rx.clone();
        tokio::spawn(monitor::serve(listener, server.monitor(), async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
    }
    tokio::spawn(async move {
        let signal = shutdown::signal().await;
        tracing::info!("{signal}: shutting down");
        stop_tx.send_replace(true);
    });
    let mut rx = stop_rx;
    server
        .run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await;
    Ok(())
}

/// Client credentials from a token, or a user and password (not both).
fn auth(token: Option<String>, user: Option<String>, pass: Option<String>) -> Result<Auth, String> {
    match (token, user, pass) {
        (None, None, None) => Ok(Auth::None),
        (Some(t), None, None) if !t.is_empty() => Ok(Auth::Token(t)),
        (None, Some(user), Some(pass)) if !user.is_empty() => Ok(Auth::User { user, pass }),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("use either a token or a user and password, not both".into())
        }
        (None, Some(_), None) | (None, None, Some(_)) => Err("a user needs a password and a password a user".into()),
        _ => Err("the token and the user must not be empty".into()),
    }
}

/// Production seeds its RNG from the OS; only the simulator fixes seeds.
fn seed_from_os() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

async fn propose(server: SocketAddr, values: &[u64]) -> Result<(), String> {
    let mut conn = ClientConn::connect(server).await.map_err(|e| format!("cannot connect to {server}: {e}"))?;
    for (i, &v) in values.iter().enumerate() {
        let outcome = conn.propose(i as u64, payload(v, 8)).await.map_err(|e| e.to_string())?;
        println!("{v}: {outcome:?}");
    }
    Ok(())
}
