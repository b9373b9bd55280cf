//! The cluster harness: builds a seeded madsim world (nodes, client node, sim disks,
//! link shaping), runs the workload under the fault schedule (safety phase), heals
//! everything and demands convergence within a bound (liveness phase), then judges
//! the run with the checkers. A run is a pure function of its [`RunInput`].

use crate::check::{self, FinalReplica, Violation};
use crate::config::{SimConfig, World as SimWorld};
use crate::disk::SimDisks;
use crate::net::SimNet;
use crate::workload::{self, ClientParams, ClientStats, Recorded};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use weir_core::mem::{Ledger, names};
use weir_core::raft;
use weir_core::server::node::{self, NodeConfig, NodeEnv, NodeStatus};
use weir_core::server::route::RouteConfig;
use weir_core::store::STORE_INDEX;
use weir_core::testing::LogApp;
use weir_faults::{BugSet, FaultKind, FaultSchedule};
use weir_traces::{EventKind, EventSink, HARNESS, NodeNo, Recorder, Trace, TraceHeader};

const ROUTE_PORT: u16 = 6222;
const CLIENT_PORT: u16 = 7000;
/// Salt separating the fault-schedule RNG stream from the others.
const SCHEDULE_SALT: u64 = 0x5C4E_D01E;
/// Client id used by the harness's liveness probes.
const PROBE_CLIENT: u32 = u32::MAX;

/// Everything that determines a run.
#[derive(Clone, Debug)]
pub struct RunInput {
    /// Scenario name (recorded; the caller already turned it into `config`).
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The drawn configuration, overrides applied.
    pub config: SimConfig,
    /// Overrides as given (recorded in the trace header for replay).
    pub overrides: Vec<(String, String)>,
    /// Enabled known bugs.
    pub bugs: BugSet,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// Broken invariants (empty = pass).
    pub violations: Vec<Violation>,
    /// The trace.
    pub trace: Trace,
    /// Trace hash.
    pub hash: u64,
    /// Number of events recorded.
    pub event_count: u64,
    /// Virtual time simulated, in ms.
    pub sim_ms: u64,
    /// Client totals.
    pub clients: ClientStats,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The fault schedule a run with this seed and config uses.
pub fn schedule_for(seed: u64, cfg: &SimConfig) -> FaultSchedule {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SCHEDULE_SALT);
    FaultSchedule::generate(&mut rng, cfg.nodes, cfg.duration_ms, &cfg.faults)
}

/// The trace header for a run.
pub fn header_for(input: &RunInput) -> TraceHeader {
    TraceHeader {
        format_version: weir_traces::FORMAT_VERSION,
        weir_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: input.scenario.clone(),
        seed: input.seed,
        bugs: input.bugs.iter().map(|b| b.name().to_string()).collect(),
        overrides: input.overrides.clone(),
        config: input.config.line(),
    }
}

/// Run one simulation to completion.
pub fn run(input: &RunInput) -> RunReport {
    // Checkers read the events, so every run keeps them; a trace file is optional.
    let recorder = Recorder::new();
    let mut mcfg = madsim::Config::default();
    // Our own link layer adds latency; keep madsim's small and narrow.
    mcfg.net.send_latency = Duration::from_micros(20)..Duration::from_micros(60);
    let mut rt = Runtime::with_seed_and_config(input.seed, mcfg);
    rt.add_simulator::<SimDisks>();
    let limit = input.config.duration_ms + input.config.liveness_ms + 60_000;
    rt.set_time_limit(Duration::from_millis(limit));
    let world_input = input.clone();
    let rec = recorder.clone();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(move || {
        rt.block_on(async move {
            match world_input.config.world {
                SimWorld::Raft => world(world_input, rec).await,
                SimWorld::Pubsub => crate::pubsub::world(world_input, rec).await,
                SimWorld::Store => crate::store_world::world(world_input, rec).await,
            }
        })
    }));
    let (mut violations, sim_ms, clients) = match outcome {
        Ok(w) => (w.violations, w.sim_ms, w.clients),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            (vec![Violation { invariant: "no-panic", detail: msg }], limit, ClientStats::default())
        }
    };
    let events = recorder.take_events();
    violations.extend(check::all_event_checks(&events));
    let trace = Trace { header: header_for(input), events };
    RunReport { violations, hash: recorder.hash(), event_count: recorder.len() as u64, trace, sim_ms, clients }
}

/// What a world hands back to [`run`].
pub(crate) struct World {
    /// Broken invariants found while running.
    pub(crate) violations: Vec<Violation>,
    /// Virtual time simulated, in ms.
    pub(crate) sim_ms: u64,
    /// Client totals.
    pub(crate) clients: ClientStats,
}

/// The per-node handles the harness keeps across restarts.
#[derive(Clone)]
struct NodeShared {
    no: NodeNo,
    status: Arc<Mutex<NodeStatus>>,
    app: Arc<Mutex<LogApp>>,
    ledger: Ledger,
    incarnation: Arc<AtomicU32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Up,
    Crashed,
    Paused,
}

/// The address of node `i` (1-based).
pub(crate) fn node_ip(i: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8))
}

fn node_config(cfg: &SimConfig, bugs: BugSet, i: u16) -> NodeConfig {
    let peers: Vec<(u64, SocketAddr)> =
        (1..=cfg.nodes).filter(|&j| j != i).map(|j| (j as u64, SocketAddr::new(node_ip(j), ROUTE_PORT))).collect();
    let mut rc = raft::Config::new(i as u64, (1..=cfg.nodes as u64).collect());
    rc.election_timeout_ms = (cfg.election_timeout_min_ms, cfg.election_timeout_max_ms);
    rc.heartbeat_interval_ms = cfg.heartbeat_ms;
    rc.max_append_bytes = cfg.max_append_bytes;
    rc.catchup_window_bytes = cfg.catchup_window_bytes;
    rc.snapshot_chunk_bytes = cfg.snapshot_chunk_bytes;
    rc.bugs = bugs;
    NodeConfig {
        id: i as u64,
        peers,
        route_listen: SocketAddr::new(node_ip(i), ROUTE_PORT),
        client_listen: SocketAddr::new(node_ip(i), CLIENT_PORT),
        data_dir: "raft".into(),
        raft: rc,
        route: RouteConfig {
            max_pending_bytes: cfg.route_max_pending,
            stall_timeout: Duration::from_millis(cfg.route_stall_ms),
            ..RouteConfig::default()
        },
        snapshot_every: cfg.snapshot_every,
        tick: Duration::from_millis(cfg.tick_ms),
        proposal_queue: 1024,
    }
}

fn ledger_for(cfg: &SimConfig) -> Ledger {
    let mut accounts = vec![
        (names::RAFT_PENDING, cfg.raft_pending_limit),
        (names::RAFT_CATCHUP, cfg.raft_catchup_limit),
        (names::RAFT_LOG, node::DEFAULT_RAFT_LOG_LIMIT),
        (names::ROUTE_OUTBOUND, cfg.route_outbound_limit),
    ];
    accounts.extend(node::raft_store_accounts());
    Ledger::new(&accounts)
}

/// Samples ledgers into the trace when they change.
#[derive(Default)]
pub(crate) struct Sampler {
    last: BTreeMap<(NodeNo, &'static str), (u64, u64)>,
}

impl Sampler {
    /// Record node `no`'s accounts that changed since the last sample.
    pub(crate) fn sample(&mut self, sink: &dyn EventSink, no: NodeNo, ledger: &Ledger) {
        for s in ledger.sample() {
            let key = (no, s.name);
            if self.last.get(&key) != Some(&(s.current, s.peak)) {
                self.last.insert(key, (s.current, s.peak));
                sink.emit(
                    no,
                    EventKind::Ledger { account: s.name.to_string(), current: s.current, peak: s.peak, limit: s.limit },
                );
            }
        }
    }
}

/// What every world starts from: its configuration, start time, trace sink, runtime
/// handle and the run's main RNG stream.
pub(crate) struct Setup {
    /// The run's configuration.
    pub(crate) cfg: SimConfig,
    /// Virtual time zero of the run.
    pub(crate) start: Instant,
    /// Where events go, stamped with time since `start`.
    pub(crate) sink: Arc<dyn EventSink>,
    /// The madsim runtime.
    pub(crate) handle: Handle,
    /// The run's RNG, seeded from the run seed.
    pub(crate) rng: ChaCha8Rng,
}

impl Setup {
    /// Start a world for `input`, recording into `rec`.
    pub(crate) fn new(input: &RunInput, rec: &Recorder) -> Setup {
        let start = Instant::now();
        Setup {
            cfg: input.config.clone(),
            start,
            sink: Arc::new(rec.sink(move || start.elapsed().as_micros() as u64)),
            handle: Handle::current(),
            rng: ChaCha8Rng::seed_from_u64(input.seed),
        }
    }

    /// Seed the simulated disks and give them this run's configuration.
    pub(crate) fn init_disks(&mut self) -> Arc<SimDisks> {
        let disks = madsim::plugin::simulator::<SimDisks>();
        disks.set_seed(self.rng.r#gen());
        disks.set_default_config(disk_config(&self.cfg));
        disks
    }

    /// A network between the nodes with a random base latency per directed link.
    pub(crate) fn network(&mut self) -> Arc<SimNet> {
        let net = Arc::new(SimNet::new());
        let n = self.cfg.nodes as u64;
        for a in 1..=n {
            for b in (1..=n).filter(|&b| b != a) {
                let us = self.rng.gen_range(self.cfg.link_latency_us_min..=self.cfg.link_latency_us_max);
                net.set_base_latency(a, b, Duration::from_micros(us));
            }
        }
        net
    }
}

/// The seed of a node's `inc`-th incarnation: every restart gets fresh randomness.
pub(crate) fn incarnation_seed(node_seed: u64, inc: u32) -> u64 {
    node_seed ^ (inc as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

async fn world(input: RunInput, rec: Recorder) -> World {
    let mut setup = Setup::new(&input, &rec);
    let disks = setup.init_disks();
    let net = setup.network();
    let Setup { cfg, start, sink, handle, mut rng } = setup;

    let mut shared = Vec::new();
    let mut handles: Vec<NodeHandle> = Vec::new();
    for i in 1..=cfg.nodes {
        let ns = NodeShared {
            no: i,
            status: Arc::default(),
            app: Arc::default(),
            ledger: ledger_for(&cfg),
            incarnation: Arc::default(),
        };
        let ncfg = node_config(&cfg, input.bugs, i);
        let node_seed: u64 = rng.r#gen();
        let (ns2, sink2, net2) = (ns.clone(), sink.clone(), net.clone());
        let h = handle
            .create_node()
            .name(format!("n{i}"))
            .ip(node_ip(i))
            .init(move || {
                let (ns, sink, net, ncfg) = (ns2.clone(), sink2.clone(), net2.clone(), ncfg.clone());
                async move {
                    let inc = ns.incarnation.fetch_add(1, Ordering::Relaxed);
                    ns.ledger.reset();
                    *ns.status.lock().expect("status") = NodeStatus::default();
                    *ns.app.lock().expect("app") = LogApp::default();
                    sink.emit(ns.no, EventKind::NodeStart { incarnation: inc });
                    let disk = madsim::plugin::simulator::<SimDisks>().disk_for(madsim::plugin::node());
                    let env = NodeEnv {
                        disk,
                        sink,
                        ledger: ns.ledger.clone(),
                        shaper: Some(net),
                        seed: incarnation_seed(node_seed, inc),
                        status: ns.status.clone(),
                        app: ns.app.clone(),
                    };
                    let _ = node::run(ncfg, env).await;
                }
            })
            .build();
        handles.push(h);
        shared.push(ns);
    }

    let client_node = handle.create_node().name("clients").ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1))).build();
    let stop = Arc::new(AtomicBool::new(false));
    let params = ClientParams {
        nodes: (1..=cfg.nodes).map(|i| SocketAddr::new(node_ip(i), CLIENT_PORT)).collect(),
        rate: cfg.rate_per_client,
        payload: cfg.payload_bytes as usize,
        timeout: Duration::from_millis(cfg.request_timeout_ms),
        sink: sink.clone(),
        stop: stop.clone(),
    };
    let mut clients = Vec::new();
    for id in 0..cfg.clients {
        let seed: u64 = rng.r#gen();
        clients.push(client_node.spawn(workload::client_loop(params.clone(), id, seed)));
    }

    // Ledger sampler.
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (shared, sink, stop) = (shared.clone(), sink.clone(), sampler_stop.clone());
        tokio::spawn(async move {
            let mut s = Sampler::default();
            while !stop.load(Ordering::Relaxed) {
                for n in &shared {
                    s.sample(&*sink, n.no, &n.ledger);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s
        })
    };

    // Safety phase: apply the schedule.
    let schedule = schedule_for(input.seed, &cfg);
    let mut state = vec![Liveness::Up; cfg.nodes as usize + 1];
    let mut sampler_direct = Sampler::default();
    for ev in &schedule.events {
        tokio::time::sleep_until(start + Duration::from_millis(ev.at_ms)).await;
        sink.emit(HARNESS, EventKind::Fault { desc: ev.kind.to_string() });
        apply_fault(&ev.kind, &handle, &handles, &shared, &net, &mut state, &*sink, &mut sampler_direct);
    }
    tokio::time::sleep_until(start + Duration::from_millis(cfg.duration_ms)).await;
    stop.store(true, Ordering::Relaxed);
    let mut totals = ClientStats::default();
    for c in clients {
        totals += c.await.unwrap_or_default();
    }

    // Liveness phase: every fault ends; the cluster must converge within the bound.
    sink.emit(HARNESS, EventKind::Note { text: "liveness phase: faults healed".into() });
    net.reset_faults();
    for i in 1..=cfg.nodes {
        let h = &handles[i as usize - 1];
        match state[i as usize] {
            Liveness::Crashed => {
                handle.restart(h.id());
                sink.emit(HARNESS, EventKind::Fault { desc: format!("restart n{i} (heal)") });
            }
            Liveness::Paused => {
                handle.resume(h.id());
                sink.emit(HARNESS, EventKind::Fault { desc: format!("resume n{i} (heal)") });
            }
            Liveness::Up => {}
        }
        state[i as usize] = Liveness::Up;
        disks.disk_for(h.id()).set_extra_latency(Duration::ZERO);
    }
    let mut violations = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(cfg.liveness_ms);
    match converge(&params, &client_node, &shared, deadline).await {
        Ok(()) => {}
        Err(detail) => violations.push(Violation { invariant: "liveness", detail }),
    }

    // Quiescence: with no load, memory must return to baseline.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    sampler_stop.store(true, Ordering::Relaxed);
    let mut s = sampler.await.expect("sampler task");
    for n in &shared {
        s.sample(&*sink, n.no, &n.ledger);
        for a in n.ledger.sample() {
            // `store.index` holds the Raft log's index and `raft.log` its entries (both
            // since the last snapshot): they follow the log, not the load, and have limits.
            let held = a.name != STORE_INDEX && a.name != names::RAFT_LOG && a.current > 64 * 1024;
            if held || (a.name == names::RAFT_PENDING && a.current > 0) {
                violations.push(Violation {
                    invariant: "memory-baseline",
                    detail: format!("n{} {} holds {} bytes after the load stopped", n.no, a.name, a.current),
                });
            }
        }
    }
    let finals: Vec<FinalReplica> =
        shared.iter().map(|n| FinalReplica { node: n.no, app: n.app.lock().expect("app").clone() }).collect();
    violations.extend(check::client_outcomes(&rec.events(), &finals));
    // Kill every node so their tasks are dropped now: madsim does not free tasks that
    // are still parked on timers or sockets when the runtime is dropped, and a sweep
    // runs thousands of worlds in one process.
    for h in &handles {
        handle.kill(h.id());
    }
    handle.kill(client_node.id());
    World { violations, sim_ms: start.elapsed().as_millis() as u64, clients: totals }
}

/// The simulated disk every node gets.
pub(crate) fn disk_config(cfg: &SimConfig) -> crate::disk::SimDiskConfig {
    crate::disk::SimDiskConfig {
        write_latency: Duration::from_micros(cfg.disk_write_us),
        sync_latency: Duration::from_micros(cfg.disk_sync_us),
        torn_write_prob: cfg.torn_write_prob,
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_fault(
    kind: &FaultKind,
    handle: &Handle,
    handles: &[NodeHandle],
    shared: &[NodeShared],
    net: &SimNet,
    state: &mut [Liveness],
    sink: &dyn EventSink,
    sampler: &mut Sampler,
) {
    let id = |n: u16| handles[n as usize - 1].id();
    let nodes = handles.len() as u16;
    match kind {
        FaultKind::Partition { side } => {
            for &a in side {
                for b in (1..=nodes).filter(|b| !side.contains(b)) {
                    net.cut(a as u64, b as u64);
                    net.cut(b as u64, a as u64);
                }
            }
        }
        FaultKind::PartitionOneWay { from, to } => net.cut(*from as u64, *to as u64),
        FaultKind::Heal => net.heal(),
        FaultKind::Crash { node } => {
            if state[*node as usize] == Liveness::Up {
                // Sample first: the restart zeroes the ledger and a peak must not escape.
                let n = &shared[*node as usize - 1];
                sampler.sample(sink, n.no, &n.ledger);
                handle.kill(id(*node));
                sink.emit(*node, EventKind::NodeCrash);
                state[*node as usize] = Liveness::Crashed;
            }
        }
        FaultKind::Restart { node } => {
            if state[*node as usize] == Liveness::Crashed {
                handle.restart(id(*node));
                state[*node as usize] = Liveness::Up;
            }
        }
        FaultKind::Pause { node } => {
            if state[*node as usize] == Liveness::Up {
                handle.pause(id(*node));
                net.set_held(*node as u64, true);
                state[*node as usize] = Liveness::Paused;
            }
        }
        FaultKind::Resume { node } => {
            if state[*node as usize] == Liveness::Paused {
                handle.resume(id(*node));
                net.set_held(*node as u64, false);
                state[*node as usize] = Liveness::Up;
            }
        }
        FaultKind::SlowDisk { node, latency_ms } => {
            madsim::plugin::simulator::<SimDisks>()
                .disk_for(id(*node))
                .set_extra_latency(Duration::from_millis(*latency_ms));
        }
        FaultKind::SlowLink { node, latency_ms, bytes_per_sec } => {
            net.set_extra_latency(*node as u64, Duration::from_millis(*latency_ms));
            net.set_bandwidth(*node as u64, *bytes_per_sec);
        }
        // Config validation keeps these out of the Raft world (its storage cannot repair damage).
        FaultKind::Corrupt { .. } | FaultKind::DiskFull { .. } => {
            unreachable!("{kind} in the Raft world")
        }
    }
}

/// After healing: a leader must commit a probe, and every replica must apply up to it
/// and agree, before `deadline`.
async fn converge(
    params: &ClientParams,
    client_node: &NodeHandle,
    shared: &[NodeShared],
    deadline: Instant,
) -> Result<(), String> {
    let mut attempt = 0u64;
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
        let target = leader.map(|l| l.1 as u64).unwrap_or(attempt % shared.len() as u64 + 1);
        let value = workload::value_for(PROBE_CLIENT, attempt);
        attempt += 1;
        let p = params.clone();
        let r = client_node
            .spawn(async move {
                let mut conn = None;
                workload::request(&p, PROBE_CLIENT, &mut conn, target, value).await
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
