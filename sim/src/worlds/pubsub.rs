//! The pub/sub world: clustered NATS servers (core pub/sub over routes) on simulated
//! nodes, and workload clients that speak the NATS client protocol to them.
//!
//! Publishers each use one server and publish unique values alternately to `ps.t0` and
//! `ps.t1`. Subscribers (plain and queue-group members, on every server) record each
//! delivery. The run has three parts: a safety phase under the fault schedule; after
//! healing, a wait (bounded by `liveness_ms`) until every route is up, every server
//! holds its peers' interest and every client is connected again; then a final
//! fault-free phase in which every message must reach every matching subscriber and
//! one member of each matching queue group. During the safety phase a watcher notes
//! when the cluster becomes whole and stops being whole, so every fault-free window
//! carries the same delivery requirement. [`check::pubsub_delivery`] judges the
//! history; memory is sampled from each server's ledger.

use crate::check::{
    self, CLUSTER_BROKEN, CLUSTER_WHOLE, FINAL_PHASE_END, FINAL_PHASE_START, SUB_DISCONNECTED, SUB_RESUBSCRIBED,
    SubSpec, Violation,
};
use crate::harness::{Ctx, World, begin_incarnation};
use crate::nats_client::NatsClient;
use crate::node::{self, NodeNo};
use crate::workload::ClientStats;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use weir_core::mem::{Ledger, names};
use weir_core::proto::{ByteStr, ClientOp, ServerOp};
use weir_core::server::nats::{ClusterConfig, Monitor, NatsConfig, NatsServer, RouteTarget};
use weir_faults::FaultClass;
use weir_traces::{EventKind, EventSink, HARNESS};

const CLIENT_PORT: u16 = 4222;
const ROUTE_PORT: u16 = 6222;
/// Length of the final fault-free phase.
const FINAL_MS: u64 = 3_000;
/// Time left for in-flight messages to arrive after the publishers stop.
const DRAIN_MS: u64 = 1_500;
/// Per-client outbound cap on the servers.
const CLIENT_MAX_PENDING: u64 = 1024 * 1024;
/// Limit of each server's `client.outbound` account.
const CLIENT_OUTBOUND_LIMIT: u64 = 8 * 1024 * 1024;
/// A route queue holding more than this is still draining a backlog.
const DRAINED_BYTES: u64 = 64 * 1024;
/// The servers' `max_payload` (see where it is set).
const MAX_PAYLOAD: usize = 32 * 1024;
/// Subscriber numbers start here (publishers are numbered from 0).
const FIRST_SUBSCRIBER: u32 = 1_000;

/// The subscriptions of a run on `nodes` servers: on every server a plain `ps.>` and a
/// member of group `all`; a second `all` member on n2; a plain `ps.t0` on n1; members
/// of group `odd` on `ps.t1` on every server but n1.
pub fn subscriptions(nodes: NodeNo) -> Vec<SubSpec> {
    let mut subs = Vec::new();
    let mut add = |node: NodeNo, subject: &str, queue: Option<&str>| {
        let client = FIRST_SUBSCRIBER + subs.len() as u32;
        subs.push(SubSpec { client, node, subject: subject.into(), queue: queue.map(Into::into) });
    };
    for n in node::all(nodes) {
        add(n, "ps.>", None);
        add(n, "ps.>", Some("all"));
        if n == 2 {
            add(n, "ps.>", Some("all"));
        }
        if n == 1 {
            add(n, "ps.t0", None);
        } else {
            add(n, "ps.t1", Some("odd"));
        }
    }
    subs
}

/// How many (subject, queue) interest pairs server `i` should hold for its peers.
fn expected_remote(subs: &[SubSpec], nodes: NodeNo, i: NodeNo) -> usize {
    node::all(nodes)
        .filter(|&j| j != i)
        .map(|j| subs.iter().filter(|s| s.node == j).map(|s| (&s.subject, &s.queue)).collect::<BTreeSet<_>>().len())
        .sum()
}

#[derive(Clone)]
struct NodeShared {
    no: NodeNo,
    ledger: Arc<Ledger>,
    monitor: Arc<Mutex<Option<Monitor>>>,
    incarnation: Arc<AtomicU32>,
}

/// Shared by all clients of a run.
#[derive(Clone)]
struct Clients {
    sink: Arc<dyn EventSink>,
    payload: usize,
    rate: u32,
    timeout: Duration,
}

async fn publisher(
    p: Clients,
    id: u32,
    node: NodeNo,
    seed: u64,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let addr = node::addr(node, CLIENT_PORT);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let period = Duration::from_micros(1_000_000 / p.rate.max(1) as u64);
    let mut stats = ClientStats::default();
    let mut conn: Option<NatsClient> = None;
    let mut seq = 0u64;
    sleep(Duration::from_micros(rng.gen_range(0..=period.as_micros() as u64))).await;
    let mut next_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match NatsClient::connect(addr, p.timeout, "ps").await {
                Ok(c) => {
                    conn = Some(c);
                    ready.store(true, Ordering::Relaxed);
                }
                Err(_) => {
                    sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let value = check::pubsub_value(id, seq);
        seq += 1;
        stats.invoked += 1;
        p.sink.emit(node, EventKind::Publish { client: id, value });
        c.queue(&ClientOp::Pub {
            subject: ByteStr::from(check::pubsub_subject(value)),
            reply: None,
            payload: Bytes::from(check::pubsub_payload(value, p.payload)),
        });
        match timeout(p.timeout, c.flush()).await {
            Ok(Ok(())) => {}
            _ => {
                stats.failed += 1;
                ready.store(false, Ordering::Relaxed);
                conn = None;
            }
        }
        let jitter = rng.gen_range(0..=period.as_micros() as u64 / 4);
        next_at = (next_at + period + Duration::from_micros(jitter)).max(Instant::now());
        sleep_until(next_at).await;
    }
    stats
}

async fn subscriber(p: Clients, spec: SubSpec, ready: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> u64 {
    let addr = node::addr(spec.node, CLIENT_PORT);
    let mut received = 0u64;
    let mut conn: Option<NatsClient> = None;
    // Lost its connection since it last subscribed (noted, for the checker).
    let mut dropped = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match NatsClient::connect(addr, p.timeout, "ps").await {
                Ok(mut c) => {
                    c.queue(&ClientOp::Sub {
                        subject: ByteStr::from(spec.subject.as_str()),
                        queue: spec.queue.as_deref().map(ByteStr::from),
                        sid: ByteStr::from_static("1"),
                    });
                    if c.ping(p.timeout).await.is_ok() {
                        conn = Some(c);
                        ready.store(true, Ordering::Relaxed);
                        if std::mem::take(&mut dropped) {
                            let text = format!("{SUB_RESUBSCRIBED}{}", spec.client);
                            p.sink.emit(spec.node, EventKind::Note { text });
                        }
                    }
                }
                Err(_) => sleep(Duration::from_millis(100)).await,
            }
            continue;
        };
        match timeout(Duration::from_millis(100), c.next_op()).await {
            Err(_) => {}
            Ok(Ok(ServerOp::Msg { subject, payload, .. })) => {
                received += 1;
                let (value, intact) = match <[u8; 8]>::try_from(payload.get(..8).unwrap_or_default()) {
                    Ok(b) => {
                        let value = u64::from_be_bytes(b);
                        let intact = *subject == check::pubsub_subject(value)
                            && payload[..] == check::pubsub_payload(value, p.payload)[..];
                        (value, intact)
                    }
                    Err(_) => (0, false),
                };
                p.sink.emit(spec.node, EventKind::Deliver { client: spec.client, value, intact });
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                // The server closed it (a slow consumer, a crash) or the link broke:
                // what was queued for it is gone, and so is its interest until it is back.
                ready.store(false, Ordering::Relaxed);
                conn = None;
                dropped = true;
                p.sink.emit(spec.node, EventKind::Note { text: format!("{SUB_DISCONNECTED}{}", spec.client) });
            }
        }
    }
    received
}

/// How long a fault's after-effects may outlast it: the time a route takes to give up
/// on a peer whose pings went unanswered during it (the dialer after `max_pings_out`
/// periods, the acceptor after three), plus one period.
fn settle(ctx: &Ctx) -> Duration {
    let route = &ctx.cfg.route;
    Duration::from_millis(route.ping_ms * (u64::from(route.max_pings_out.max(3)) + 2))
}

/// How often the watcher samples whether the cluster is whole.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// Notes [`CLUSTER_WHOLE`] and [`CLUSTER_BROKEN`] as the cluster's wholeness changes,
/// until `stop`; closes an open window when it stops.
async fn watcher(
    sink: Arc<dyn EventSink>,
    shared: Vec<NodeShared>,
    subs: Vec<SubSpec>,
    ready: Vec<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
) {
    let mut was_whole = false;
    while !stop.load(Ordering::Relaxed) {
        let now_whole = whole(&shared, &subs, &ready).is_ok();
        if now_whole != was_whole {
            let text = if now_whole { CLUSTER_WHOLE } else { CLUSTER_BROKEN };
            sink.emit(HARNESS, EventKind::Note { text: text.into() });
            was_whole = now_whole;
        }
        sleep(WATCH_EVERY).await;
    }
    if was_whole {
        sink.emit(HARNESS, EventKind::Note { text: CLUSTER_BROKEN.into() });
    }
}

/// The pub/sub world (see the module doc).
pub struct PubsubWorld {
    watch_stop: Arc<AtomicBool>,
    watch: Option<JoinHandle<()>>,
    shared: Vec<NodeShared>,
    subs: Vec<SubSpec>,
    ready: Vec<Arc<AtomicBool>>,
    pub_stop: Arc<AtomicBool>,
    sub_stop: Arc<AtomicBool>,
    pub_tasks: Vec<JoinHandle<ClientStats>>,
    sub_tasks: Vec<JoinHandle<u64>>,
    totals: ClientStats,
}

impl World for PubsubWorld {
    const NAME: &'static str = "pubsub";
    const DESCRIPTION: &'static str = "clustered NATS servers; clients publish and subscribe (core pub/sub)";
    const FAULTS: &'static [FaultClass] = &[FaultClass::Partition, FaultClass::Crash, FaultClass::SlowLink];

    fn setup(ctx: &mut Ctx) -> Self {
        let net = ctx.network();
        let cfg = ctx.cfg.clone();
        let nodes = cfg.run.nodes;
        let mut shared = Vec::new();
        for i in node::all(nodes) {
            let ns = NodeShared {
                no: i,
                // The server charges connections' read buffers and subscriptions whenever
                // its ledger has those accounts: without them here they would count as
                // uncharged heap.
                ledger: Arc::new(Ledger::new(&[
                    (names::CLIENT_OUTBOUND, CLIENT_OUTBOUND_LIMIT),
                    (names::ROUTE_OUTBOUND, cfg.route.outbound_limit),
                    (names::CLIENT_BUFFERS, weir_core::mem::spec(names::CLIENT_BUFFERS).default_limit),
                    (names::CLIENT_SUBS, weir_core::mem::spec(names::CLIENT_SUBS).default_limit),
                ])),
                monitor: Arc::default(),
                incarnation: Arc::default(),
            };
            let ncfg = NatsConfig {
                listen: node::addr(i, CLIENT_PORT),
                server_name: format!("n{i}"),
                max_pending: CLIENT_MAX_PENDING,
                max_outbound_total: CLIENT_OUTBOUND_LIMIT,
                // Small enough that the smallest drawn route queue (128 KiB) holds the
                // largest message: a server refuses a route that could not (issue 9,
                // fault 3). The workload's payloads are far smaller.
                max_payload: MAX_PAYLOAD,
                write_deadline: Duration::from_secs(2),
                cluster: Some(ClusterConfig {
                    listen: node::addr(i, ROUTE_PORT),
                    routes: node::all(nodes)
                        .filter(|&j| j != i)
                        .map(|j| RouteTarget { addr: node::addr(j, ROUTE_PORT).to_string(), node: node::id(j) })
                        .collect(),
                    name: "sim".into(),
                    max_pending: cfg.route.max_pending,
                    stall_timeout: Duration::from_millis(cfg.route.stall_ms),
                    ping_interval: Duration::from_millis(cfg.route.ping_ms),
                    max_pings_out: cfg.route.max_pings_out,
                    min_backoff: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(500),
                    node: node::id(i),
                    ..ClusterConfig::default()
                }),
                ..NatsConfig::default()
            };
            let node_seed: u64 = ctx.rng.r#gen();
            let bugs = ctx.bugs.broker();
            let (ns2, sink2, net2) = (ns.clone(), ctx.sink.clone(), net.clone());
            let h = ctx
                .handle
                .create_node()
                .name(format!("n{i}"))
                .ip(node::ip(i))
                .init(move || {
                    let (ns, sink, net, ncfg) = (ns2.clone(), sink2.clone(), net2.clone(), ncfg.clone());
                    async move {
                        let (_, seed) = begin_incarnation(&ns.incarnation, ns.no, &ns.ledger, &*sink, node_seed);
                        let cfg = NatsConfig { seed, ..ncfg };
                        let server = loop {
                            match NatsServer::bind(cfg.clone(), ns.ledger.clone()).await {
                                Ok(s) => break s,
                                Err(_) => sleep(Duration::from_millis(50)).await,
                            }
                        };
                        server.set_link_wrap(net.link_wrap());
                        server.set_broker_bugs(bugs);
                        server.set_route_events(sink.clone());
                        *ns.monitor.lock().expect("monitor") = Some(server.monitor());
                        server.run(std::future::pending()).await;
                    }
                })
                .build();
            ctx.add_node(h, Ledger::clone(&ns.ledger));
            shared.push(ns);
        }

        // Clients.
        let client_machine = ctx.add_client_machine("clients");
        let params = Clients {
            sink: ctx.sink.clone(),
            payload: cfg.workload.payload_bytes as usize,
            rate: cfg.workload.rate_per_client,
            timeout: Duration::from_millis(cfg.workload.request_timeout_ms),
        };
        let subs = subscriptions(nodes);
        let (pub_stop, sub_stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let mut ready = Vec::new();
        let mut sub_tasks = Vec::new();
        for s in &subs {
            let r = Arc::new(AtomicBool::new(false));
            ready.push(r.clone());
            sub_tasks.push(client_machine.spawn(subscriber(params.clone(), s.clone(), r, sub_stop.clone())));
        }
        let mut pub_tasks = Vec::new();
        for id in 0..cfg.run.clients {
            let r = Arc::new(AtomicBool::new(false));
            ready.push(r.clone());
            let node = node::round_robin(u64::from(id), nodes);
            let seed: u64 = ctx.rng.r#gen();
            pub_tasks.push(client_machine.spawn(publisher(params.clone(), id, node, seed, r, pub_stop.clone())));
        }
        let watch_stop = Arc::new(AtomicBool::new(false));
        let watch =
            tokio::spawn(watcher(ctx.sink.clone(), shared.clone(), subs.clone(), ready.clone(), watch_stop.clone()));
        PubsubWorld {
            watch_stop,
            watch: Some(watch),
            shared,
            subs,
            ready,
            pub_stop,
            sub_stop,
            pub_tasks,
            sub_tasks,
            totals: ClientStats::default(),
        }
    }

    /// The fault-free windows end with the safety phase.
    async fn end_safety(&mut self, _ctx: &Ctx) {
        self.watch_stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watch.take() {
            let _ = w.await;
        }
    }

    fn on_crash(&mut self, _ctx: &Ctx, no: NodeNo) {
        // Drop the dead server's state now, before a restart resets the ledger.
        self.shared[node::index(no)].monitor.lock().expect("monitor").take();
    }

    /// Every route is up, every server holds its peers' interest, every client is
    /// connected again, and the healed faults' after-effects are over: a route whose
    /// pings went unanswered during the last partition gives up within the settle time.
    async fn converge(&mut self, ctx: &Ctx, deadline: Instant) -> Result<(), String> {
        let settled_at = Instant::now() + settle(ctx);
        loop {
            match whole(&self.shared, &self.subs, &self.ready) {
                Ok(()) if Instant::now() >= settled_at => return Ok(()),
                Ok(()) if Instant::now() >= deadline => return Ok(()),
                Ok(()) => sleep(Duration::from_millis(20)).await,
                Err(why) if Instant::now() >= deadline => return Err(format!("after healing: {why}")),
                Err(_) => sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// A final fault-free phase (if converged) in which every message must be
    /// delivered, then the publishers stop and, once in-flight messages drained, the
    /// subscribers.
    async fn wind_down(&mut self, ctx: &Ctx, converged: bool) {
        if converged {
            ctx.sink.emit(HARNESS, EventKind::Note { text: FINAL_PHASE_START.into() });
            sleep(Duration::from_millis(FINAL_MS)).await;
            ctx.sink.emit(HARNESS, EventKind::Note { text: FINAL_PHASE_END.into() });
        }
        self.pub_stop.store(true, Ordering::Relaxed);
        for t in self.pub_tasks.drain(..) {
            self.totals += t.await.unwrap_or_default();
        }
        sleep(Duration::from_millis(DRAIN_MS)).await;
        self.sub_stop.store(true, Ordering::Relaxed);
        // For pub/sub, `invoked`/`failed` count publishes and `ok` counts deliveries.
        for t in self.sub_tasks.drain(..) {
            self.totals.ok += t.await.unwrap_or_default();
        }
    }

    fn over_baseline(&self, _account: &str, current: u64) -> bool {
        current > DRAINED_BYTES
    }

    async fn finish(self, ctx: &mut Ctx) -> (Vec<Violation>, ClientStats) {
        let settle_us = settle(ctx).as_micros() as u64;
        let violations = check::pubsub_delivery(&ctx.events(), &self.subs, settle_us);
        for n in &self.shared {
            n.monitor.lock().expect("monitor").take();
        }
        (violations, self.totals)
    }
}

/// Whether every server has all its routes and its peers' interest, every route queue
/// has drained, and every client is connected; otherwise why not.
fn whole(shared: &[NodeShared], subs: &[SubSpec], ready: &[Arc<AtomicBool>]) -> Result<(), String> {
    let nodes = NodeNo::try_from(shared.len()).expect("at most 9 nodes");
    for n in shared {
        let Some(v) = n.monitor.lock().expect("monitor").as_ref().map(Monitor::varz) else {
            return Err(format!("n{} is not serving", n.no));
        };
        let remote = v.cluster.as_ref().map_or(0, |c| c.remote_subs);
        let want = expected_remote(subs, nodes, n.no);
        if v.routes != usize::from(nodes) - 1 || remote != want {
            return Err(format!("n{} has {} routes and {remote} of {want} remote interests", n.no, v.routes));
        }
        let queued = n.ledger.account(names::ROUTE_OUTBOUND).current();
        if queued > DRAINED_BYTES {
            return Err(format!("n{} still has {queued} route bytes queued", n.no));
        }
    }
    match ready.iter().position(|r| !r.load(Ordering::Relaxed)) {
        Some(i) => Err(format!("client #{i} is not connected")),
        None => Ok(()),
    }
}
