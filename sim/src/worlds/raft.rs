//! The Raft world: a Raft-replicated log cluster (the test log application) with
//! proposal clients that record a Jepsen-style history. After healing, a probe must
//! commit and every replica must apply up to it and agree; the checkers then compare
//! the history with the replicas' final logs ([`check::client_outcomes`]).

use crate::check::{self, FinalReplica, Violation};
use crate::config::SimConfig;
use crate::disk::SimDisks;
use crate::harness::{Ctx, World, begin_incarnation};
use crate::net::SimNet;
use crate::node::{self, NodeNo};
use crate::workload::{self, ClientParams, ClientStats, Recorded};
use madsim::runtime::NodeHandle;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weir_core::disk::FaultPoints;
use weir_core::mem::{Ledger, names};
use weir_core::raft;
use weir_core::server::node::{self as core_node, NodeConfig, NodeEnv, NodeStatus};
use weir_core::server::route::RouteConfig;
use weir_core::store::STORE_INDEX;
use weir_core::testing::LogApp;
use weir_core::timer::Deadline;
use weir_faults::FaultClass;
use weir_traces::EventKind;

const ROUTE_PORT: u16 = 6222;
const CLIENT_PORT: u16 = 7000;
/// Client id used by the liveness probes.
const PROBE_CLIENT: u32 = u32::MAX;
/// An account holding more than this after the load stopped has not drained.
const DRAINED_BYTES: u64 = 64 * 1024;
/// How long a node's supervisor waits before starting a process that stopped itself.
const SUPERVISOR_RESTART: Duration = Duration::from_millis(500);

/// What the harness and the checkers read of one node, kept across restarts.
#[derive(Clone)]
struct NodeShared {
    no: NodeNo,
    status: Arc<Mutex<NodeStatus>>,
    app: Arc<Mutex<LogApp>>,
    ledger: Ledger,
    incarnation: Arc<AtomicU32>,
}

/// The Raft log world (see the module doc).
pub struct RaftWorld {
    shared: Vec<NodeShared>,
    params: ClientParams,
    client_machine: NodeHandle,
    clients: Vec<JoinHandle<ClientStats>>,
    totals: ClientStats,
}

fn ledger_for(cfg: &SimConfig) -> Ledger {
    let mut accounts = vec![
        (names::RAFT_PENDING, cfg.raft.pending_limit),
        (names::RAFT_CATCHUP, cfg.raft.catchup_limit),
        (names::RAFT_INBOX, weir_core::mem::spec(names::RAFT_INBOX).default_limit),
        (names::RAFT_LOG, core_node::DEFAULT_RAFT_LOG_LIMIT),
        (names::ROUTE_OUTBOUND, cfg.route.outbound_limit),
    ];
    accounts.extend(core_node::raft_store_accounts());
    Ledger::new(&accounts)
}

/// Create node `no` running the core node shell ([`core_node::run`]); every
/// (re)start builds its configuration and environment afresh. This is the one place
/// that knows the core node API.
fn start_node(ctx: &Ctx, ns: &NodeShared, net: &Arc<SimNet>, node_seed: u64) -> NodeHandle {
    let cfg = &ctx.cfg;
    let no = ns.no;
    let peers = node::all(cfg.run.nodes).filter(|&j| j != no).map(|j| (node::id(j), node::addr(j, ROUTE_PORT)));
    let mut rc = raft::Config::new(node::id(no), node::all(cfg.run.nodes).map(node::id).collect());
    rc.election_timeout_ms = (cfg.raft.election_timeout_min_ms, cfg.raft.election_timeout_max_ms);
    rc.heartbeat_interval_ms = cfg.raft.heartbeat_ms;
    rc.max_append_bytes = cfg.raft.max_append_bytes;
    rc.catchup_window_bytes = cfg.raft.catchup_window_bytes;
    rc.snapshot_chunk_bytes = cfg.raft.snapshot_chunk_bytes;
    rc.bugs = ctx.bugs.raft();
    let ncfg = NodeConfig {
        id: node::id(no),
        peers: peers.collect(),
        route_listen: node::addr(no, ROUTE_PORT),
        client_listen: node::addr(no, CLIENT_PORT),
        data_dir: "raft".into(),
        raft: rc,
        route: RouteConfig {
            max_pending_bytes: cfg.route.max_pending,
            stall_timeout: Duration::from_millis(cfg.route.stall_ms),
            ping_interval: Duration::from_millis(cfg.route.ping_ms),
            max_pings_out: cfg.route.max_pings_out,
            ..RouteConfig::default()
        },
        snapshot_every: cfg.raft.snapshot_every,
        tick: Duration::from_millis(cfg.raft.tick_ms),
        proposal_queue: 1024,
        propose_batch: Duration::from_micros(cfg.raft.propose_batch_us),
    };
    let (ns, sink, net) = (ns.clone(), ctx.sink.clone(), net.clone());
    ctx.handle
        .create_node()
        .name(format!("n{no}"))
        .ip(node::ip(no))
        .init(move || {
            let (ns, sink, net, ncfg) = (ns.clone(), sink.clone(), net.clone(), ncfg.clone());
            async move {
                loop {
                    *ns.status.lock().expect("status") = NodeStatus::default();
                    *ns.app.lock().expect("app") = LogApp::default();
                    let (_, seed) = begin_incarnation(&ns.incarnation, ns.no, &ns.ledger, &*sink, node_seed);
                    let disk = madsim::plugin::simulator::<SimDisks>().disk_for(madsim::plugin::node());
                    let env = NodeEnv {
                        disk: FaultPoints::wrap(disk.clone()),
                        sink: sink.clone(),
                        ledger: ns.ledger.clone(),
                        link_wrap: Some(net.link_wrap()),
                        seed,
                        status: ns.status.clone(),
                        app: ns.app.clone(),
                    };
                    let Err(e) = core_node::run(ncfg.clone(), env).await else { break };
                    // The process stopped itself (a disk error it cannot survive, as a Raft
                    // node must after a failed fsync); its supervisor starts it again. After
                    // a failed fsync the page cache is no witness of what the disk holds
                    // (fsyncgate): the kernel may have dropped the unwritten pages, or kept
                    // them readable while the disk never gets them. So the restarted node
                    // must trust only what was durable: it finds exactly that (a process
                    // exit otherwise keeps unsynced writes; this one cannot count on them).
                    disk.lose_unsynced();
                    sink.emit(ns.no, EventKind::Note { text: format!("process exited ({e}); supervisor restarts it") });
                    tokio::time::sleep(SUPERVISOR_RESTART).await;
                }
            }
        })
        .build()
}

impl World for RaftWorld {
    const NAME: &'static str = "raft";
    const DESCRIPTION: &'static str = "a Raft-replicated log cluster with proposal clients";
    const FAULTS: &'static [FaultClass] =
        &[FaultClass::Partition, FaultClass::Crash, FaultClass::Pause, FaultClass::SlowDisk, FaultClass::SlowLink];

    fn setup(ctx: &mut Ctx) -> Self {
        ctx.init_disks();
        let net = ctx.network();
        let mut shared = Vec::new();
        for no in node::all(ctx.cfg.run.nodes) {
            let ns = NodeShared {
                no,
                status: Arc::default(),
                app: Arc::default(),
                ledger: ledger_for(&ctx.cfg),
                incarnation: Arc::default(),
            };
            let node_seed: u64 = ctx.rng.r#gen();
            let h = start_node(ctx, &ns, &net, node_seed);
            let added = ctx.add_node(h, ns.ledger.clone());
            debug_assert_eq!(added, no);
            shared.push(ns);
        }
        let client_machine = ctx.add_client_machine("clients");
        let params = ClientParams {
            nodes: node::all(ctx.cfg.run.nodes).map(|no| node::addr(no, CLIENT_PORT)).collect(),
            rate: ctx.cfg.workload.rate_per_client,
            payload: ctx.cfg.workload.payload_bytes as usize,
            timeout: Duration::from_millis(ctx.cfg.workload.request_timeout_ms),
            sink: ctx.sink.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            wrap: Some(net.link_wrap()),
        };
        let mut clients = Vec::new();
        for id in 0..ctx.cfg.run.clients {
            let seed: u64 = ctx.rng.r#gen();
            clients.push(client_machine.spawn(workload::client_loop(params.clone(), id, seed)));
        }
        RaftWorld { shared, params, client_machine, clients, totals: ClientStats::default() }
    }

    async fn end_safety(&mut self, _ctx: &Ctx) {
        self.params.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            self.totals += c.await.unwrap_or_default();
        }
    }

    /// A leader must commit a probe, and every replica must apply up to it and agree.
    async fn converge(&mut self, _ctx: &Ctx, deadline: Instant) -> Result<(), String> {
        converge(&self.params, &self.client_machine, &self.shared, deadline).await
    }

    fn checker_held(&self, no: NodeNo) -> u64 {
        // The test application records every applied value for the outcome checker, and
        // its Raft snapshots (which the node keeps to send to followers) encode that
        // record: both follow the history's length, not the load.
        let app = self.shared[node::index(no)].app.lock().expect("app");
        let snapshot = crate::heap::outside(|| app.snapshot().len());
        (app.values.capacity() * std::mem::size_of::<(u64, u64)>() + snapshot) as u64
    }

    fn over_baseline(&self, account: &str, current: u64) -> bool {
        // `store.index` holds the Raft log's index and `raft.log` its entries (both since
        // the last snapshot): they follow the log, not the load, and have their own limits.
        (account != STORE_INDEX && account != names::RAFT_LOG && current > DRAINED_BYTES)
            || (account == names::RAFT_PENDING && current > 0)
    }

    async fn finish(self, ctx: &mut Ctx) -> (Vec<Violation>, ClientStats) {
        let finals: Vec<FinalReplica> =
            self.shared.iter().map(|n| FinalReplica { node: n.no, app: n.app.lock().expect("app").clone() }).collect();
        (check::client_outcomes(&ctx.events(), &finals), self.totals)
    }
}

/// After healing: a leader must commit a probe, and every replica must apply up to it
/// and agree, before `deadline`.
async fn converge(
    params: &ClientParams,
    client_machine: &NodeHandle,
    shared: &[NodeShared],
    deadline: Instant,
) -> Result<(), String> {
    let mut attempt = 0u64;
    let nodes = NodeNo::try_from(shared.len()).expect("at most 9 nodes");
    let probe_index = loop {
        if Instant::now() >= deadline {
            return Err(format!("no probe committed after healing; nodes: {}", describe(shared)));
        }
        let leader = shared
            .iter()
            .filter_map(|n| {
                let s = n.status.lock().expect("status");
                (s.role == Some(raft::Role::Leader)).then_some((s.term, n.no))
            })
            .max();
        let target = leader.map(|l| l.1).unwrap_or_else(|| node::round_robin(attempt, nodes));
        let value = workload::value_for(PROBE_CLIENT, attempt);
        attempt += 1;
        let p = params.clone();
        let r = client_machine
            .spawn(async move {
                let mut conn = None;
                let mut deadline = Deadline::after(p.timeout);
                workload::request(&p, PROBE_CLIENT, &mut conn, target, value, &mut deadline).await
            })
            .await;
        if let Ok(Recorded::Ok(index)) = r {
            break index;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        let agreed = {
            let apps: Vec<(u64, u64)> = shared
                .iter()
                .map(|n| {
                    let a = n.app.lock().expect("app");
                    (a.applied, a.digest)
                })
                .collect();
            apps.iter().all(|a| a.0 >= probe_index && *a == apps[0])
        };
        if agreed {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("replicas did not converge on probe index {probe_index}; nodes: {}", describe(shared)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn describe(shared: &[NodeShared]) -> String {
    shared
        .iter()
        .map(|n| {
            let s = n.status.lock().expect("status").clone();
            let a = n.app.lock().expect("app");
            format!(
                "n{}[{:?} term {} commit {} applied {} digest {:016x}{}]",
                n.no,
                s.role,
                s.term,
                s.commit,
                a.applied,
                a.digest,
                s.fatal.map(|f| format!(" FATAL {f}")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}
