//! The harness: one run skeleton shared by every world.
//!
//! A run is a pure function of its [`RunInput`]. [`run`] builds a seeded madsim
//! runtime with the simulated disks and hands it to the world named by
//! `run.world` (see [`crate::worlds`]). The harness owns everything that is not
//! specific to a world:
//!
//! 1. **setup**: [`World::setup`] creates the nodes ([`Ctx::add_node`]) and clients;
//!    the harness then starts the ledger sampler;
//! 2. **safety phase**: the fault schedule drawn from the seed is applied at its times
//!    ([`Health`] of each node, partitions, slow links and disks, full disks; the world
//!    only reacts through [`World::on_crash`] and [`World::corrupt`]), then
//!    [`World::end_safety`];
//! 3. **heal** every fault, then **liveness**: [`World::converge`] must succeed within
//!    `run.liveness_ms`, then [`World::wind_down`];
//! 4. **quiescence**: after [`World::quiet_time`] without load every ledger account must
//!    be back to its baseline ([`World::over_baseline`]);
//! 5. **judgement**: [`World::finish`] hands the world's final state to its checkers;
//!    the event checkers run over the whole trace; every node is killed.
//!
//! A world declares the fault classes it supports ([`World::FAULTS`]); a config whose
//! fault mix could draw any other is refused by [`check_config`] before the run, so
//! every fault in a trace was really applied.

use crate::bugs::BugSet;
use crate::check::heap::{HeapReading, NodeHeap};
use crate::check::{self, Violation};
use crate::config::SimConfig;
use crate::disk::{SimDisk, SimDisks};
use crate::faultpoints::FaultPoints;
use crate::heap::{self, Heap, RunHeap};
use crate::net::SimNet;
use crate::node::{self, NodeNo};
use crate::workload::ClientStats;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use weir_core::mem::Ledger;
use weir_faults::{FaultClass, FaultKind, FaultSchedule};
use weir_traces::{Event, EventKind, EventSink, HARNESS, Recorder, Trace, TraceHeader};

/// Salt separating the fault-schedule RNG stream from the others.
const SCHEDULE_SALT: u64 = 0x5C4E_D01E;
/// Period of the ledger sampler.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

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
    /// The fault schedule to apply instead of drawing one from the seed (`--schedule
    /// FILE`); `None` draws it with [`schedule_for`]. The seed still drives everything else.
    pub schedule: Option<FaultSchedule>,
    /// Which fault points the run enables and how often they fire (default: the
    /// seed's swarm selection; see [`crate::faultpoints`]).
    pub fault_points: FaultPoints,
}

impl RunInput {
    /// The fault schedule this run applies: the given one, or the one its seed draws.
    pub fn schedule(&self) -> FaultSchedule {
        self.schedule.clone().unwrap_or_else(|| schedule_for(self.seed, &self.config))
    }
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
    /// Which fault points were enabled, by index in [`weir_core::fault::SITES`].
    pub fault_enabled: Vec<bool>,
    /// How often each fault point fired, by index in [`weir_core::fault::SITES`].
    pub fault_fired: Vec<u64>,
    /// Each node's counted heap against its ledger at the memory checkpoints (empty when
    /// the run did not get that far).
    pub heap: Vec<NodeHeap>,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// A simulated system the harness can run: how it is built, which faults it can
/// take, when it has recovered, and how its end state is judged. See the module doc
/// for when each method is called; a world lives in its own file under `worlds/`
/// and is listed once in [`crate::worlds::WORLDS`].
#[allow(async_fn_in_trait, reason = "worlds run on madsim's single-threaded executor; no Send bound wanted")]
pub trait World: Sized {
    /// The name that selects it (`run.world=NAME`).
    const NAME: &'static str;
    /// One line for listings.
    const DESCRIPTION: &'static str;
    /// The fault classes it can apply; configs that could draw others are refused.
    const FAULTS: &'static [FaultClass];

    /// Rules of its own on the config (beyond [`SimConfig::validate`]); `Err` says why.
    fn check_config(_cfg: &SimConfig) -> Result<(), String> {
        Ok(())
    }

    /// Create the nodes (each with [`Ctx::add_node`], numbered from 1 in order) and the
    /// client machines ([`Ctx::add_client_machine`]) and start the workload. Draw
    /// randomness only from `ctx.rng`.
    fn setup(ctx: &mut Ctx) -> Self;

    /// Node `no` was just killed (before its `NodeCrash` event): drop what the world
    /// holds of the dead process.
    fn on_crash(&mut self, _ctx: &Ctx, _no: NodeNo) {}

    /// Damage node `no`'s durable data while it is down; returns what was done (recorded
    /// as a note). Called only for worlds that list [`FaultClass::Corrupt`].
    fn corrupt(&mut self, _ctx: &Ctx, no: NodeNo) -> String {
        unreachable!("world {} lists no corrupt fault but was asked to corrupt n{no}", Self::NAME)
    }

    /// The safety phase's time is up (faults are still in place): stop what runs only
    /// during it.
    async fn end_safety(&mut self, _ctx: &Ctx) {}

    /// Every fault is healed and every node is up: return once the world has
    /// converged, or `Err(why not)` once `deadline` passes.
    async fn converge(&mut self, ctx: &Ctx, deadline: Instant) -> Result<(), String>;

    /// After the liveness wait (`converged` says how it ended): stop the remaining load.
    async fn wind_down(&mut self, _ctx: &Ctx, _converged: bool) {}

    /// How long the world idles before the memory-baseline check.
    fn quiet_time(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Bytes of node `no`'s heap that the world keeps for its checkers rather than for
    /// the node's own work (e.g. the test log application's record of every applied
    /// value): the memory checker does not count them as the node's uncharged memory.
    fn checker_held(&self, _no: NodeNo) -> u64 {
        0
    }

    /// Whether `account` still holding `current` bytes after the quiet time breaks
    /// the memory baseline.
    fn over_baseline(&self, account: &str, current: u64) -> bool;

    /// Judge the final state: the world's own checkers' violations and client totals.
    /// `ctx.events()` holds the history so far.
    async fn finish(self, ctx: &mut Ctx) -> (Vec<Violation>, ClientStats);
}

/// A world as listed in the registry: its name, faults and entry points.
#[derive(Clone, Copy)]
pub struct WorldEntry {
    /// [`World::NAME`].
    pub name: &'static str,
    /// [`World::DESCRIPTION`].
    pub description: &'static str,
    /// [`World::FAULTS`].
    pub faults: &'static [FaultClass],
    check: fn(&SimConfig) -> Result<(), String>,
    drive: fn(RunInput, Recorder, Heap) -> WorldRun,
}

impl WorldEntry {
    /// The registry entry of world `W`.
    pub const fn of<W: World + 'static>() -> WorldEntry {
        WorldEntry {
            name: W::NAME,
            description: W::DESCRIPTION,
            faults: W::FAULTS,
            check: W::check_config,
            drive: drive_boxed::<W>,
        }
    }
}

/// One world's run, as the registry starts it.
type WorldRun = Pin<Box<dyn Future<Output = Outcome>>>;

fn drive_boxed<W: World + 'static>(input: RunInput, rec: Recorder, heap: Heap) -> WorldRun {
    Box::pin(drive::<W>(input, rec, heap))
}

/// Look a world up by name.
pub fn world(name: &str) -> Result<&'static WorldEntry, String> {
    crate::worlds::WORLDS.iter().find(|w| w.name == name).ok_or_else(|| {
        let names: Vec<&str> = crate::worlds::WORLDS.iter().map(|w| w.name).collect();
        format!("unknown world '{name}' (known: {})", names.join(", "))
    })
}

/// The faults a world of one server on the simulated disk supports: power cuts,
/// pauses, slow and full disks, corruption at rest.
pub const ONE_DISK_NODE_FAULTS: &[FaultClass] =
    &[FaultClass::Crash, FaultClass::Pause, FaultClass::SlowDisk, FaultClass::Corrupt, FaultClass::DiskFull];

/// `check_config` of a world that runs exactly one node.
pub fn one_node(cfg: &SimConfig) -> Result<(), String> {
    if cfg.run.nodes == 1 { Ok(()) } else { Err("runs one node (run.nodes=1)".into()) }
}

/// Whether a run of `cfg` can be set up: the generic rules, a known world, the
/// world's own rules, and every fault class the mix could draw supported by it.
pub fn check_config(cfg: &SimConfig) -> Result<(), String> {
    cfg.validate()?;
    let w = world(&cfg.run.world)?;
    if let Some((class, field)) = cfg.faults.drawable().into_iter().find(|(c, _)| !w.faults.contains(c)) {
        let supported: Vec<&str> = w.faults.iter().map(|f| f.name()).collect();
        return Err(format!(
            "world '{}' does not support {class} faults, but faults.{field} > 0 could draw them (it supports: {})",
            w.name,
            if supported.is_empty() { "none".to_string() } else { supported.join(", ") }
        ));
    }
    (w.check)(cfg).map_err(|why| format!("world '{}': {why}", w.name))
}

/// The fault schedule a run with this seed and config uses.
pub fn schedule_for(seed: u64, cfg: &SimConfig) -> FaultSchedule {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SCHEDULE_SALT);
    FaultSchedule::generate(&mut rng, cfg.run.nodes, cfg.run.duration_ms, &cfg.faults)
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
        schedule: input.schedule.as_ref().map(crate::schedule::to_json),
        fault_points: input.fault_points.enabled_names(input.seed),
        fault_ppm: input.fault_points.ppm,
    }
}

/// What a world's run hands back to [`run`].
pub struct Outcome {
    violations: Vec<Violation>,
    sim_ms: u64,
    clients: ClientStats,
    heap: Vec<NodeHeap>,
}

/// Run one simulation to completion, on a thread of its own ([`on_fresh_thread`]). A
/// config that [`check_config`] refuses gives a report with a single `config` violation
/// and an empty trace.
pub fn run(input: &RunInput) -> RunReport {
    on_fresh_thread(|| run_on_this_thread(input))
}

/// Stack of the thread a simulation runs on (the simulated tasks run on it too).
const SIM_THREAD_STACK: usize = 32 << 20;

/// Run `f` on a new thread and return what it returns (a panic is passed on).
///
/// Why: a thread keeps state from one simulation to the next that no run can reset.
/// std seeds every `HashMap`'s hasher from per-thread keys, drawn once per thread and
/// stepped with each map; madsim derives those keys from the run's seed only on a
/// thread that has not drawn them yet, and its network keeps each node's sockets in a
/// `HashMap`, so the order in which a killed node's connections close (and so which
/// peer notices first) followed the keys an earlier run on the same thread left. The
/// fault points' per-thread selection is likewise fresh on a new thread. A sweep runs
/// thousands of simulations in one process: each gets a new thread, so the same input
/// gives the same run whatever ran before it.
pub fn on_fresh_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("weir-sim".into())
            .stack_size(SIM_THREAD_STACK)
            .spawn_scoped(s, f)
            .expect("spawn a simulation thread");
        h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// [`run`] on the calling thread. Only for a thread that has run no simulation (and
/// built no `HashMap`) before: see [`on_fresh_thread`].
pub fn run_on_this_thread(input: &RunInput) -> RunReport {
    // Checkers read the events, so every run keeps them; a trace file is optional.
    let recorder = Recorder::new();
    let entry = match check_config(&input.config).and_then(|()| world(&input.config.run.world)).and_then(|w| {
        match &input.schedule {
            Some(s) => crate::schedule::check(s, &input.config, w.faults).map(|()| w),
            None => Ok(w),
        }
    }) {
        Ok(e) => e,
        Err(detail) => {
            return RunReport {
                violations: vec![Violation { invariant: "config", detail }],
                trace: Trace { header: header_for(input), events: Vec::new() },
                hash: recorder.hash(),
                event_count: 0,
                sim_ms: 0,
                clients: ClientStats::default(),
                fault_enabled: input.fault_points.enabled(input.seed),
                fault_fired: vec![0; weir_core::fault::SITES.len()],
                heap: Vec::new(),
            };
        }
    };
    // Counting starts before the runtime exists, so madsim's node spans are followed.
    let run_heap = RunHeap::start();
    let heap = run_heap.heap();
    let mut mcfg = madsim::Config::default();
    // Our own link layer adds latency; keep madsim's small and narrow.
    mcfg.net.send_latency = Duration::from_micros(20)..Duration::from_micros(60);
    let mut rt = Runtime::with_seed_and_config(input.seed, mcfg);
    rt.add_simulator::<SimDisks>();
    let limit = input.config.run.duration_ms + input.config.run.liveness_ms + 60_000;
    rt.set_time_limit(Duration::from_millis(limit));
    let world_input = input.clone();
    let rec = recorder.clone();
    let fault_enabled = input.fault_points.enabled(input.seed);
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(move || rt.block_on((entry.drive)(world_input, rec, heap))));
    // Installed by `drive`; removed here even when the run panicked.
    let fault_fired = weir_core::fault::uninstall();
    let (mut violations, sim_ms, clients, heap) = match outcome {
        Ok(o) => (o.violations, o.sim_ms, o.clients, o.heap),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            (vec![Violation { invariant: "no-panic", detail: msg }], limit, ClientStats::default(), Vec::new())
        }
    };
    drop(run_heap);
    let events = recorder.take_events();
    violations.extend(check::all_event_checks(&events));
    let trace = Trace { header: header_for(input), events };
    RunReport {
        violations,
        hash: recorder.hash(),
        event_count: recorder.len() as u64,
        trace,
        sim_ms,
        clients,
        fault_enabled,
        fault_fired,
        heap,
    }
}

/// Whether a node is running, killed or frozen (as the harness made it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Running.
    Up,
    /// Killed (its unsynced writes are lost); restarted by a `Restart` fault or at heal.
    Crashed,
    /// Frozen; resumed by a `Resume` fault or at heal.
    Paused,
}

/// A cluster node as the harness tracks it.
struct SimNode {
    no: NodeNo,
    handle: NodeHandle,
    ledger: Ledger,
    health: Health,
}

/// What a world builds on and the harness's view of the nodes. Passed to every
/// [`World`] method.
pub struct Ctx {
    /// The run's configuration.
    pub cfg: SimConfig,
    /// The run's seed.
    pub seed: u64,
    /// Enabled known bugs (map them with [`BugSet::raft`] / [`BugSet::store`]).
    pub bugs: BugSet,
    /// Virtual time zero of the run.
    pub start: Instant,
    /// Where events go, stamped with time since `start`.
    pub sink: Arc<dyn EventSink>,
    /// The madsim runtime.
    pub handle: Handle,
    /// The run's RNG, seeded from the run seed; draw from it only in [`World::setup`].
    pub rng: ChaCha8Rng,
    rec: Recorder,
    net: Option<Arc<SimNet>>,
    disks: Option<Arc<SimDisks>>,
    nodes: Vec<SimNode>,
    machines: Vec<NodeHandle>,
    /// madsim node id -> node number, for recording where a fault point fired.
    node_nos: Arc<Mutex<BTreeMap<madsim::task::NodeId, NodeNo>>>,
    /// The run's per-node heap counters.
    heap: Heap,
    /// Nodes crashed now (read by the ledger sampler).
    down: Arc<Mutex<BTreeSet<NodeNo>>>,
    /// When each node was last killed, in ms from the start.
    last_crash_ms: BTreeMap<NodeNo, u64>,
}

impl Ctx {
    fn new(input: &RunInput, rec: &Recorder, heap: Heap) -> Ctx {
        let start = Instant::now();
        // Every event reads the clock: through a `Clock`, not `Instant::now()` (see there).
        let clock = weir_core::timer::Clock::current();
        Ctx {
            cfg: input.config.clone(),
            seed: input.seed,
            bugs: input.bugs,
            start,
            sink: Arc::new(SimulatorSink(rec.sink(move || clock.now().duration_since(start).as_micros() as u64))),
            handle: Handle::current(),
            rng: ChaCha8Rng::seed_from_u64(input.seed),
            rec: rec.clone(),
            net: None,
            disks: None,
            nodes: Vec::new(),
            machines: Vec::new(),
            node_nos: Arc::default(),
            heap,
            down: Arc::default(),
            last_crash_ms: BTreeMap::new(),
        }
    }

    /// Seed the simulated disks and give them this run's configuration (draws one
    /// value from `rng`). Worlds whose nodes use disks call it first in `setup`; the
    /// harness then slows, fills and heals them.
    pub fn init_disks(&mut self) -> Arc<SimDisks> {
        let disks = madsim::plugin::simulator::<SimDisks>();
        disks.set_seed(self.rng.r#gen());
        disks.set_default_config(disk_config(&self.cfg));
        self.disks = Some(disks.clone());
        disks
    }

    /// Start the world's only node, a server on the simulated disk (node 1, named `n1`
    /// at its node address): `init` runs it on every start and restart, `ledger` is the
    /// one the sampler reads. Returns its disk ([`Ctx::init_disks`] must have been
    /// called). The one-node worlds (store, js) share it with [`one_node`] and
    /// [`ONE_DISK_NODE_FAULTS`].
    pub fn add_disk_node<F: Future + 'static>(
        &mut self,
        ledger: Ledger,
        init: impl Fn() -> F + Send + Sync + 'static,
    ) -> Arc<SimDisk> {
        let h = self.handle.create_node().name("n1").ip(node::ip(1)).init(init).build();
        let disk = self.disks.as_ref().expect("init_disks before add_disk_node").disk_for(h.id());
        self.add_node(h, ledger);
        disk
    }

    /// A network between the nodes with a random base latency per directed link
    /// (drawn from `rng`). Worlds whose nodes talk over routes call it in `setup`; the
    /// harness then partitions, slows and heals it.
    pub fn network(&mut self) -> Arc<SimNet> {
        let net = Arc::new(SimNet::new(self.rng.r#gen()));
        let n = self.cfg.run.nodes;
        for a in node::all(n) {
            for b in node::all(n).filter(|&b| b != a) {
                let us = self.rng.gen_range(self.cfg.net.latency_us_min..=self.cfg.net.latency_us_max);
                net.set_base_latency(a, b, Duration::from_micros(us));
            }
        }
        self.net = Some(net.clone());
        net
    }

    /// Register the next cluster node (numbered from 1 in call order): its madsim
    /// handle and the ledger the sampler reads. Returns its number.
    pub fn add_node(&mut self, handle: NodeHandle, ledger: Ledger) -> NodeNo {
        let no = NodeNo::try_from(self.nodes.len() + 1).expect("config allows at most 9 nodes");
        self.node_nos.lock().expect("node numbers").insert(handle.id(), no);
        self.heap.attach(heap::madsim_index(handle.id()), no);
        self.nodes.push(SimNode { no, handle, ledger, health: Health::Up });
        no
    }

    /// A machine for clients (not a cluster node, never faulted), killed at the end.
    pub fn add_client_machine(&mut self, name: &str) -> NodeHandle {
        let h = self.handle.create_node().name(name).ip(node::client_ip()).build();
        self.machines.push(h.clone());
        h
    }

    /// Node `no`'s madsim handle.
    pub fn node_handle(&self, no: NodeNo) -> &NodeHandle {
        &self.nodes[node::index(no)].handle
    }

    /// Node `no`'s health.
    pub fn health(&self, no: NodeNo) -> Health {
        self.nodes[node::index(no)].health
    }

    /// Node `no`'s simulated disk ([`Ctx::init_disks`] must have been called).
    pub fn disk(&self, no: NodeNo) -> Arc<SimDisk> {
        self.disks.as_ref().expect("the world uses disks").disk_for(self.node_handle(no).id())
    }

    /// Kill node `no` now (a power cut), outside the fault schedule.
    pub fn kill(&mut self, no: NodeNo) {
        let n = &mut self.nodes[node::index(no)];
        self.handle.kill(n.handle.id());
        n.health = Health::Crashed;
        self.down.lock().expect("down nodes").insert(no);
        self.last_crash_ms.insert(no, self.start.elapsed().as_millis() as u64);
    }

    /// The history recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.rec.events()
    }

    /// Clog (or unclog) the link `from -> to`: a partition, which the nodes must notice
    /// on their own (bytes wait on the link as under TCP retransmission). Route bytes
    /// travel on our pipe ([`SimNet`]); madsim's link is clogged too, so that new
    /// connections cannot be set up across the cut.
    fn clog(&self, from: NodeNo, to: NodeNo, clogged: bool) {
        self.net().set_clogged(from, to, clogged);
        let (a, b) = (self.node_handle(from).id(), self.node_handle(to).id());
        let madnet = madsim::net::NetSim::current();
        if clogged { madnet.clog_link(a, b) } else { madnet.unclog_link(a, b) }
    }

    /// Unclog every link between cluster nodes.
    fn unclog_all(&self) {
        let n = self.cfg.run.nodes;
        for a in node::all(n) {
            for b in node::all(n).filter(|&b| b != a) {
                self.clog(a, b, false);
            }
        }
    }

    fn net(&self) -> &SimNet {
        self.net.as_deref().expect("world supports network faults but made no network")
    }

    /// Apply one scheduled fault (validated as supported by the world).
    fn apply<W: World>(&mut self, world: &mut W, kind: &FaultKind, direct: &mut Sampler) {
        match kind {
            FaultKind::Partition { side } => {
                for &a in side {
                    for b in node::all(self.cfg.run.nodes).filter(|b| !side.contains(b)) {
                        self.clog(a, b, true);
                        self.clog(b, a, true);
                    }
                }
            }
            FaultKind::PartitionOneWay { from, to } => self.clog(*from, *to, true),
            FaultKind::Heal => self.unclog_all(),
            FaultKind::Crash { node } => {
                if self.health(*node) == Health::Up {
                    // Sample first: the restart zeroes the ledger and a peak must not escape.
                    let n = &self.nodes[node::index(*node)];
                    direct.sample(&*self.sink, n.no, &n.ledger);
                    self.kill(*node);
                    world.on_crash(self, *node);
                    self.sink.emit(*node, EventKind::NodeCrash);
                }
            }
            FaultKind::Restart { node } => {
                if self.health(*node) == Health::Crashed {
                    self.handle.restart(self.node_handle(*node).id());
                    self.nodes[node::index(*node)].health = Health::Up;
                    self.down.lock().expect("down nodes").remove(node);
                }
            }
            FaultKind::Pause { node } => {
                if self.health(*node) == Health::Up {
                    // Its sockets stay open and its peers' bytes wait unread.
                    self.handle.pause(self.node_handle(*node).id());
                    self.nodes[node::index(*node)].health = Health::Paused;
                }
            }
            FaultKind::Resume { node } => {
                if self.health(*node) == Health::Paused {
                    self.handle.resume(self.node_handle(*node).id());
                    self.nodes[node::index(*node)].health = Health::Up;
                }
            }
            FaultKind::SlowDisk { node, latency_ms } => {
                self.disk(*node).set_extra_latency(Duration::from_millis(*latency_ms));
            }
            FaultKind::SlowLink { node, latency_ms, bytes_per_sec } => {
                self.net().set_extra_latency(*node, Duration::from_millis(*latency_ms));
                self.net().set_bandwidth(*node, *bytes_per_sec);
            }
            FaultKind::Corrupt { node } => {
                // Damage at rest: only while the node is down.
                if self.health(*node) == Health::Crashed {
                    let text = world.corrupt(self, *node);
                    self.sink.emit(HARNESS, EventKind::Note { text });
                }
            }
            FaultKind::DiskFull { node, full } => {
                let disk = self.disk(*node);
                let mut dc = disk.config();
                dc.capacity_bytes = full.then(|| disk.used_bytes());
                disk.set_config(dc);
            }
        }
    }

    /// End every fault: links, disks, and crashed or paused nodes.
    fn heal(&mut self) {
        self.sink.emit(HARNESS, EventKind::Note { text: "liveness phase: faults healed".into() });
        // Fault points fire in the safety phase only, like every other fault.
        weir_core::fault::set_enabled(false);
        if let Some(net) = &self.net {
            net.reset_faults();
            self.unclog_all();
        }
        for i in 0..self.nodes.len() {
            let (no, id, health) = (self.nodes[i].no, self.nodes[i].handle.id(), self.nodes[i].health);
            if self.disks.is_some() {
                let disk = self.disk(no);
                let mut dc = disk.config();
                dc.capacity_bytes = None;
                disk.set_config(dc);
                disk.set_extra_latency(Duration::ZERO);
            }
            match health {
                Health::Crashed => {
                    self.handle.restart(id);
                    self.sink.emit(HARNESS, EventKind::Fault { desc: format!("restart n{no} (heal)") });
                }
                Health::Paused => {
                    self.handle.resume(id);
                    self.sink.emit(HARNESS, EventKind::Fault { desc: format!("resume n{no} (heal)") });
                }
                Health::Up => {}
            }
            self.nodes[i].health = Health::Up;
            self.down.lock().expect("down nodes").remove(&no);
        }
    }

    /// Kill every node and client machine so their tasks are dropped now: madsim does
    /// not free tasks still parked on timers or sockets when the runtime is dropped,
    /// and a sweep runs thousands of worlds in one process.
    fn kill_all(&self) {
        for n in &self.nodes {
            self.handle.kill(n.handle.id());
        }
        for m in &self.machines {
            self.handle.kill(m.id());
        }
    }
}

/// The simulated disk every node gets.
pub(crate) fn disk_config(cfg: &SimConfig) -> crate::disk::SimDiskConfig {
    crate::disk::SimDiskConfig {
        write_latency: Duration::from_micros(cfg.disk.write_us),
        sync_latency: Duration::from_micros(cfg.disk.sync_us),
        torn_write_prob: cfg.disk.torn_write_prob,
        ..Default::default()
    }
}

/// Start the next incarnation of node `no` the same way in every world: count it in
/// `counter`, zero the node's `ledger` (a dead process holds no memory) and record
/// `NodeStart`. Returns the incarnation number and its seed (derived from `node_seed`).
pub fn begin_incarnation(
    counter: &AtomicU32,
    no: NodeNo,
    ledger: &Ledger,
    sink: &dyn EventSink,
    node_seed: u64,
) -> (u32, u64) {
    let inc = counter.fetch_add(1, Ordering::Relaxed);
    ledger.reset();
    sink.emit(no, EventKind::NodeStart { incarnation: inc });
    (inc, incarnation_seed(node_seed, inc))
}

/// The seed of a node's `inc`-th incarnation: every restart gets fresh randomness.
fn incarnation_seed(node_seed: u64, inc: u32) -> u64 {
    node_seed ^ u64::from(inc).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Node `n`'s heap reading now.
fn heap_reading<W: World>(ctx: &Ctx, world: &W, n: &SimNode) -> HeapReading {
    HeapReading { heap: ctx.heap.live(n.no), ledger: ledger_total(&n.ledger), held: world.checker_held(n.no) }
}

/// The sum of a ledger's accounts, in bytes.
fn ledger_total(ledger: &Ledger) -> u64 {
    ledger.sample().iter().map(|a| a.current).sum()
}

/// The run's event sink as nodes see it: what a node records becomes the simulator's
/// memory, not the node's (the event is copied outside the node and the node's copy
/// freed), so trace growth is not counted as the node's heap.
struct SimulatorSink<S>(S);

impl<S: EventSink> EventSink for SimulatorSink<S> {
    fn emit(&self, node: NodeNo, kind: EventKind) {
        heap::outside(|| self.0.emit(node, kind.clone()));
    }
}

/// Samples ledgers into the trace when they change.
#[derive(Default)]
struct Sampler {
    last: BTreeMap<(NodeNo, &'static str), (u64, u64)>,
    /// Each node's baseline heap reading: of the samples in [`check::heap::BASELINE_MS`]
    /// taken while it was up, the one with the most uncharged heap.
    heap_baseline: BTreeMap<NodeNo, HeapReading>,
    /// The largest heap seen per node.
    heap_peak: BTreeMap<NodeNo, i64>,
}

impl Sampler {
    /// Read node `no`'s counted heap (`at_ms` into the run; `down` if it is crashed).
    /// Reading adds no event and no timer: the run is the same with or without it.
    fn heap_sample(&mut self, at_ms: u64, heap: Heap, no: NodeNo, ledger: &Ledger, down: bool) {
        let live = heap.live(no);
        let peak = self.heap_peak.entry(no).or_default();
        *peak = (*peak).max(live);
        if check::heap::BASELINE_MS.contains(&at_ms) && !down {
            let r = HeapReading { heap: live, ledger: ledger_total(ledger), held: 0 };
            let base = self.heap_baseline.entry(no).or_insert(r);
            if r.uncharged() > base.uncharged() {
                *base = r;
            }
        }
    }

    /// Record node `no`'s accounts that changed since the last sample.
    fn sample(&mut self, sink: &dyn EventSink, no: NodeNo, ledger: &Ledger) {
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

/// Install the run's fault-point selection on this thread (the one that runs the
/// simulation); each firing is recorded as a note on the node where it fired.
fn install_fault_points(input: &RunInput, ctx: &Ctx) {
    let (sink, nos) = (ctx.sink.clone(), ctx.node_nos.clone());
    weir_core::fault::install(weir_core::fault::Selection {
        enabled: input.fault_points.enabled(input.seed),
        ppm: input.fault_points.ppm,
        seed: FaultPoints::fire_seed(input.seed),
        on_fire: Box::new(move |site| {
            let no = nos.lock().expect("node numbers").get(&madsim::plugin::node()).copied().unwrap_or(HARNESS);
            sink.emit(no, EventKind::Note { text: format!("fault point {site} fired") });
        }),
    });
}

/// The run skeleton (see the module doc).
async fn drive<W: World>(input: RunInput, rec: Recorder, heap: Heap) -> Outcome {
    let mut ctx = Ctx::new(&input, &rec, heap);
    install_fault_points(&input, &ctx);
    let mut world = W::setup(&mut ctx);

    // Ledger sampler.
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let nodes: Vec<(NodeNo, Ledger)> = ctx.nodes.iter().map(|n| (n.no, n.ledger.clone())).collect();
        let (sink, stop, start, down) = (ctx.sink.clone(), sampler_stop.clone(), ctx.start, ctx.down.clone());
        tokio::spawn(async move {
            let mut s = Sampler::default();
            while !stop.load(Ordering::Relaxed) {
                for (no, ledger) in &nodes {
                    s.sample(&*sink, *no, ledger);
                    let is_down = down.lock().expect("down nodes").contains(no);
                    s.heap_sample(start.elapsed().as_millis() as u64, heap, *no, ledger, is_down);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            s
        })
    };

    // Safety phase: apply the schedule.
    let schedule = input.schedule();
    let mut direct = Sampler::default();
    for ev in &schedule.events {
        tokio::time::sleep_until(ctx.start + Duration::from_millis(ev.at_ms)).await;
        ctx.sink.emit(HARNESS, EventKind::Fault { desc: ev.kind.to_string() });
        ctx.apply(&mut world, &ev.kind, &mut direct);
    }
    tokio::time::sleep_until(ctx.start + Duration::from_millis(ctx.cfg.run.duration_ms)).await;
    world.end_safety(&ctx).await;
    // A node killed since the baseline window opened is a new process whose reading now
    // is its recovery, not what the load left: it is judged after the quiet time only.
    // So is one that started again on its own (a process that stopped itself on a disk
    // error and was restarted by its supervisor, which the schedule does not know of:
    // raft-slow-follower seed 75 restarted n1 a millisecond before this reading).
    let restarted: BTreeSet<NodeNo> = ctx
        .events()
        .iter()
        .filter(|e| {
            matches!(e.kind, EventKind::NodeStart { .. }) && e.time_us >= check::heap::BASELINE_MS.start * 1_000
        })
        .map(|e| e.node)
        .collect();
    let after_load: BTreeMap<NodeNo, HeapReading> = ctx
        .nodes
        .iter()
        .filter(|n| n.health != Health::Crashed && !restarted.contains(&n.no))
        .filter(|n| ctx.last_crash_ms.get(&n.no).is_none_or(|&t| t < check::heap::BASELINE_MS.start))
        .map(|n| (n.no, heap_reading(&ctx, &world, n)))
        .collect();

    // Liveness phase: every fault ends; the world must converge within the bound.
    ctx.heal();
    let mut violations = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(ctx.cfg.run.liveness_ms);
    let converged = match world.converge(&ctx, deadline).await {
        Ok(()) => true,
        Err(detail) => {
            violations.push(Violation { invariant: "liveness", detail });
            false
        }
    };
    world.wind_down(&ctx, converged).await;

    // Quiescence: with no load, memory must return to baseline.
    tokio::time::sleep(world.quiet_time()).await;
    sampler_stop.store(true, Ordering::Relaxed);
    let mut s = sampler.await.expect("sampler task");
    let heap_figures: Vec<NodeHeap> = ctx
        .nodes
        .iter()
        .map(|n| NodeHeap {
            node: n.no,
            baseline: s.heap_baseline.get(&n.no).copied(),
            after_load: after_load.get(&n.no).copied(),
            after_quiet: Some(heap_reading(&ctx, &world, n)),
            peak_heap: s.heap_peak.get(&n.no).copied().unwrap_or_default(),
        })
        .collect();
    violations.extend(check::heap::uncharged_memory(&heap_figures, check::heap::UNCHARGED_LIMIT));
    for n in &ctx.nodes {
        s.sample(&*ctx.sink, n.no, &n.ledger);
        for a in n.ledger.sample() {
            if world.over_baseline(a.name, a.current) {
                violations.push(Violation {
                    invariant: "memory-baseline",
                    detail: format!("n{} {} holds {} bytes after the load stopped", n.no, a.name, a.current),
                });
            }
        }
    }

    let (v, clients) = world.finish(&mut ctx).await;
    violations.extend(v);
    ctx.kill_all();
    Outcome { violations, sim_ms: ctx.start.elapsed().as_millis() as u64, clients, heap: heap_figures }
}
