//! The JetStream world (`js-single`): one NATS server with JetStream on the simulated
//! disk, and clients that speak the JetStream API over the NATS protocol
//! ([`crate::jsclient`]).
//!
//! Setup creates one file stream per entry of `js.streams` (retention limits, interest or
//! workqueue; limits streams get `js.max_msgs`, `js.max_bytes`,
//! `js.max_per_subject`), each with a durable pull consumer on the whole stream and, but
//! for workqueue streams (one consumer per subject there), a push consumer filtered to
//! one subject. Publishers send unique values ([`check::js::js_value`]) with PubAck,
//! some with `Nats-Msg-Id` (retried with the same id after a timeout, and sometimes
//! re-sent after their ack); consumers ack, nak, term or ignore deliveries (redelivered
//! after `ack_wait`) in shuffled order, as double acks so the server's answer is
//! recorded; a sampler records consumer and stream info and deletes now and then. Every
//! client drops its connection now and then (`js.disconnect_pct`).
//!
//! The harness cuts power (the server restarts over the same disk, losing what was not
//! synced, sometimes leaving torn writes), damages stream blocks while the node is down,
//! fills the disk, slows it and pauses the server. After healing, consumers ack
//! everything until every consumer has nothing pending (liveness); memory must drain
//! (`consumer.inflight`, and `stream.dedup` once the duplicate window has passed); then
//! a last power cut and restart, and everything is read back and judged by
//! [`check::js::js_outcomes`].

use super::scratch::{recover_copy, torn_tail};
use crate::check::Violation;
use crate::check::js::{
    self as jscheck, ConsumerSpec, JsFinalMsg, JsFinalStream, JsSpec, Retention, StreamSpec, js_msg_id, js_payload,
    js_prefix, js_subject, js_value, js_value_of,
};
use crate::config::SimConfig;
use crate::disk::{SimDisk, SimDisks};
use crate::harness::{Ctx, ONE_DISK_NODE_FAULTS, World, begin_incarnation, one_node};
use crate::jsclient::{JsClient, PubOutcome, StreamReq};
use crate::node::{self, NodeNo};
use crate::workload::ClientStats;
use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use weir_core::disk::Disk;
use weir_core::jetstream::engine::{JsBugs, layout};
use weir_core::mem::{Ledger, names};
use weir_core::server::nats::{JetStreamOptions, NatsConfig, NatsServer};
use weir_core::store::FileStoreConfig;
use weir_faults::FaultClass;
use weir_traces::{AckKind, EventKind, EventSink, HARNESS, JsEvent};

const CLIENT_PORT: u16 = 4222;
/// The only node.
const NODE: NodeNo = 1;
/// The store directory on the node's disk.
const STORE_DIR: &str = "js";
/// Wall-clock time of the run's start (message timestamps are this plus virtual time).
const EPOCH_NS: i64 = 1_764_460_800_000_000_000;
/// How long a pull request waits for messages.
const PULL_EXPIRES: Duration = Duration::from_millis(300);
/// Period of the sampler.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// `max_ack_pending` of every consumer.
const MAX_ACK_PENDING: u64 = 256;
/// Per-client outbound cap and the `client.outbound` limit on the server.
const CLIENT_MAX_PENDING: u64 = 1024 * 1024;
const CLIENT_OUTBOUND_LIMIT: u64 = 8 * 1024 * 1024;
/// Limits of the store's own accounts.
const STORE_BUFFERS_LIMIT: u64 = 4 * 1024 * 1024;
const STORE_CACHE_LIMIT: u64 = 4 * 1024 * 1024;
const STORE_INDEX_LIMIT: u64 = 16 * 1024 * 1024;

/// The name of stream number `i`.
fn stream_name(i: usize) -> String {
    format!("S{i}")
}

/// The streams and consumers a config asks for.
pub fn streams_of(cfg: &SimConfig) -> Vec<StreamSpec> {
    let js = &cfg.js;
    // Subject, headers and the store's per-record overhead, generously.
    let max_record_bytes = u64::from(cfg.workload.payload_bytes) + 160;
    js.streams
        .split(',')
        .enumerate()
        .map(|(i, r)| {
            let retention = match r {
                "interest" => Retention::Interest,
                "workqueue" => Retention::WorkQueue,
                _ => Retention::Limits,
            };
            let limits = retention == Retention::Limits;
            let mut consumers = vec![ConsumerSpec { name: "pull".into(), filter: None, pull: true }];
            if retention != Retention::WorkQueue {
                let filter = format!("{}.1", js_prefix(i as u32));
                consumers.push(ConsumerSpec { name: "push".into(), filter: Some(filter), pull: false });
            }
            StreamSpec {
                name: stream_name(i),
                retention,
                max_msgs: if limits { js.max_msgs } else { 0 },
                max_bytes: if limits { js.max_bytes } else { 0 },
                max_per_subject: if limits { js.max_per_subject } else { 0 },
                dedup_window_us: js.dedup_window_ms * 1_000,
                max_record_bytes,
                consumers,
            }
        })
        .collect()
}

fn stream_req(i: usize, s: &StreamSpec) -> StreamReq {
    StreamReq {
        name: s.name.clone(),
        subjects: vec![format!("{}.>", js_prefix(i as u32))],
        retention: s.retention.name(),
        max_msgs: s.max_msgs,
        max_bytes: s.max_bytes,
        max_per_subject: s.max_per_subject,
        duplicate_window_ns: s.dedup_window_us * 1_000,
    }
}

/// The push consumer's deliver subject.
fn deliver_subject(stream: &str, consumer: &str) -> String {
    format!("dlv.{stream}.{consumer}")
}

/// What the server's incarnations and the clients share.
#[derive(Clone)]
struct Shared {
    cfg: SimConfig,
    sink: Arc<dyn EventSink>,
    streams: Arc<Vec<StreamSpec>>,
    ledger: Arc<Ledger>,
    incarnation: Arc<AtomicU32>,
    start: Instant,
    node_seed: u64,
    bugs: JsBugs,
    timeout: Duration,
    /// Streams and consumers exist: publishers may start.
    ready: Arc<AtomicBool>,
    /// The safety phase is over: publishers stop.
    stop_pub: Arc<AtomicBool>,
    /// Consumers ack everything from now on.
    drain: Arc<AtomicBool>,
    /// Every client stops.
    stop_all: Arc<AtomicBool>,
    /// Connections made so far: each gets its own inbox, so a late reply to a request of
    /// an earlier connection never reaches a later one.
    connections: Arc<AtomicU64>,
}

impl Shared {
    fn emit(&self, e: JsEvent) {
        self.sink.emit(HARNESS, EventKind::Js(e));
    }

    fn addr(&self) -> std::net::SocketAddr {
        node::addr(NODE, CLIENT_PORT)
    }

    /// Connect (retrying every 100 ms) unless `stop` is set first.
    async fn connect(&self, name: &str, stop: &AtomicBool) -> Option<JsClient> {
        while !stop.load(Ordering::Relaxed) {
            let n = self.connections.fetch_add(1, Ordering::Relaxed);
            if let Ok(c) = JsClient::connect(self.addr(), self.timeout, &format!("{name}.{n}")).await {
                return Some(c);
            }
            sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// One incarnation of the server.
async fn node_main(sh: Shared) {
    let (_, seed) = begin_incarnation(&sh.incarnation, NODE, &sh.ledger, &*sh.sink, sh.node_seed);
    let disk: Arc<dyn Disk> = madsim::plugin::simulator::<SimDisks>().disk_for(madsim::plugin::node());
    let disk = weir_core::disk::FaultPoints::wrap(disk);
    let mut jso = JetStreamOptions::new(disk, STORE_DIR, EPOCH_NS + sh.start.elapsed().as_nanos() as i64);
    jso.engine.store_dir = STORE_DIR.into();
    jso.engine.bugs = sh.bugs;
    jso.engine.file_store.block_size = sh.cfg.store.block_size;
    let cfg = NatsConfig {
        listen: sh.addr(),
        server_name: "n1".into(),
        max_pending: CLIENT_MAX_PENDING,
        max_outbound_total: CLIENT_OUTBOUND_LIMIT,
        write_deadline: Duration::from_secs(2),
        jetstream: Some(jso),
        seed,
        ..NatsConfig::default()
    };
    let server = loop {
        match NatsServer::bind(cfg.clone(), sh.ledger.clone()).await {
            Ok(s) => break s,
            // The port of the previous incarnation may still be closing; anything else
            // (a ledger without the engine's accounts, a bad config) is the world's bug.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("the JetStream server cannot start: {e}"),
        }
    };
    server.run(std::future::pending()).await;
}

/// Create every stream and consumer (idempotently, retrying), then open the gate.
async fn create_all(sh: Shared) {
    let mut conn: Option<JsClient> = None;
    while !sh.stop_all.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = sh.connect("setup", &sh.stop_all).await;
        }
        let Some(c) = conn.as_mut() else { return };
        match try_create_all(&sh, c).await {
            Ok(true) => {
                sh.ready.store(true, Ordering::Relaxed);
                return;
            }
            Ok(false) => sleep(Duration::from_millis(200)).await,
            Err(_) => conn = None,
        }
    }
}

/// One round of [`create_all`]: `Ok(false)` if the server refused something (noted).
async fn try_create_all(sh: &Shared, c: &mut JsClient) -> std::io::Result<bool> {
    let ack_wait = Duration::from_millis(sh.cfg.js.ack_wait_ms);
    for (i, s) in sh.streams.iter().enumerate() {
        if let Err(e) = c.create_stream(&stream_req(i, s)).await? {
            sh.sink.emit(HARNESS, EventKind::Note { text: format!("create stream {}: {e}", s.name) });
            return Ok(false);
        }
        for cs in &s.consumers {
            let dlv = (!cs.pull).then(|| deliver_subject(&s.name, &cs.name));
            let r = c
                .create_consumer(&s.name, &cs.name, cs.filter.as_deref(), dlv.as_deref(), ack_wait, MAX_ACK_PENDING)
                .await?;
            if let Err(e) = r {
                sh.sink.emit(HARNESS, EventKind::Note { text: format!("create consumer {}/{}: {e}", s.name, cs.name) });
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn wait_ready(sh: &Shared) -> bool {
    while !sh.ready.load(Ordering::Relaxed) {
        if sh.stop_all.load(Ordering::Relaxed) {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Publishes unique values at the configured rate until the safety phase ends.
async fn publisher(sh: Shared, id: u32, seed: u64) -> ClientStats {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = ClientStats::default();
    if !wait_ready(&sh).await {
        return stats;
    }
    let js = &sh.cfg.js;
    let period = Duration::from_micros(1_000_000 / u64::from(sh.cfg.workload.rate_per_client.max(1)));
    let len = sh.cfg.workload.payload_bytes as usize;
    let window = Duration::from_millis(js.dedup_window_ms);
    let name = format!("p{id}");
    let mut conn: Option<JsClient> = None;
    let mut recent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut n = 0u64;
    sleep(Duration::from_micros(rng.gen_range(0..=period.as_micros() as u64))).await;
    let mut next_at = Instant::now();
    while !sh.stop_pub.load(Ordering::Relaxed) {
        while recent.front().is_some_and(|(_, t)| t.elapsed() > window / 2) {
            recent.pop_front();
        }
        let resend = !recent.is_empty() && rng.gen_range(0..100) < js.resend_pct;
        let (value, msg_id) = if resend {
            (recent[rng.gen_range(0..recent.len())].0, true)
        } else {
            let stream = rng.gen_range(0..sh.streams.len()) as u32;
            n += 1;
            (js_value(id, stream, n), rng.gen_range(0..100) < js.msg_id_pct)
        };
        let stream = stream_name(jscheck::js_stream_of(value) as usize);
        let attempts = if msg_id { 3 } else { 1 };
        for attempt in 0..attempts {
            if conn.is_none() {
                conn = sh.connect(&name, &sh.stop_pub).await;
            }
            let Some(c) = conn.as_mut() else { break };
            if attempt == 0 || msg_id {
                stats.invoked += u64::from(attempt == 0);
            }
            sh.emit(JsEvent::Publish { client: id, value, stream: stream.clone(), msg_id });
            let id_header = msg_id.then(|| js_msg_id(value));
            let out = c.publish(&js_subject(value), id_header.as_deref(), Bytes::from(js_payload(value, len))).await;
            match out {
                PubOutcome::Ack(a) => {
                    stats.ok += 1;
                    sh.emit(JsEvent::PubAck { client: id, value, seq: a.seq, duplicate: a.duplicate });
                    if msg_id && !resend {
                        recent.push_back((value, Instant::now()));
                        if recent.len() > 64 {
                            recent.pop_front();
                        }
                    }
                    break;
                }
                PubOutcome::Fail(reason) => {
                    stats.failed += 1;
                    sh.emit(JsEvent::PubFail { client: id, value, reason });
                    break;
                }
                PubOutcome::Unknown(reason) => {
                    stats.unknown += 1;
                    sh.emit(JsEvent::PubUnknown { client: id, value, reason });
                    conn = None;
                }
            }
        }
        if rng.gen_range(0..100) < js.disconnect_pct {
            conn = None;
        }
        let jitter = rng.gen_range(0..=period.as_micros() as u64 / 4);
        next_at = (next_at + period + Duration::from_micros(jitter)).max(Instant::now());
        sleep_until(next_at).await;
    }
    stats
}

/// What a consumer does with one delivery.
fn choose(sh: &Shared, rng: &mut ChaCha8Rng) -> Option<AckKind> {
    if sh.drain.load(Ordering::Relaxed) {
        return Some(AckKind::Ack);
    }
    let js = &sh.cfg.js;
    let x = rng.gen_range(0..100);
    if x < js.nak_pct {
        Some(AckKind::Nak)
    } else if x < js.nak_pct + js.term_pct {
        Some(AckKind::Term)
    } else if x < js.nak_pct + js.term_pct + js.skip_pct {
        None
    } else {
        Some(AckKind::Ack)
    }
}

/// Record a batch of deliveries and answer them in shuffled order; `false` if the
/// connection broke.
async fn answer(
    sh: &Shared,
    c: &mut JsClient,
    rng: &mut ChaCha8Rng,
    stream: &str,
    consumer: &str,
    mut batch: Vec<(crate::nats_client::Msg, crate::jsclient::AckMeta)>,
) -> bool {
    let len = sh.cfg.workload.payload_bytes as usize;
    for (m, meta) in &batch {
        let value = js_value_of(&m.payload).unwrap_or(0);
        let intact = m.subject == js_subject(value) && m.payload[..] == js_payload(value, len)[..];
        sh.emit(JsEvent::Deliver {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            value,
            intact,
            stream_seq: meta.stream_seq,
            consumer_seq: meta.consumer_seq,
            delivered: meta.delivered,
        });
    }
    batch.shuffle(rng);
    for (m, meta) in &batch {
        let Some(kind) = choose(sh, rng) else { continue };
        let Some(reply) = m.reply.as_deref() else { continue };
        let ack = |confirmed| JsEvent::Ack {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            stream_seq: meta.stream_seq,
            kind,
            confirmed,
        };
        sh.emit(ack(false));
        match c.ack(reply, kind).await {
            Ok(true) => sh.emit(ack(true)),
            Ok(false) => {}
            Err(_) => return false,
        }
    }
    true
}

/// A pull consumer's client: fetch, record, answer, until told to stop.
async fn puller(sh: Shared, stream: String, consumer: String, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if !wait_ready(&sh).await {
        return;
    }
    let name = format!("{stream}-{consumer}");
    let mut conn: Option<JsClient> = None;
    while !sh.stop_all.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = sh.connect(&name, &sh.stop_all).await;
        }
        let Some(c) = conn.as_mut() else { return };
        let batch = match c.fetch(&stream, &consumer, sh.cfg.js.batch, PULL_EXPIRES).await {
            Ok(b) => b,
            Err(_) => {
                conn = None;
                continue;
            }
        };
        let empty = batch.is_empty();
        if !answer(&sh, c, &mut rng, &stream, &consumer, batch).await {
            conn = None;
            continue;
        }
        c.nats.drop_stale_replies();
        if rng.gen_range(0..100) < sh.cfg.js.disconnect_pct {
            conn = None;
        }
        if empty {
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A push consumer's client: subscribe to the deliver subject, record and answer.
async fn pusher(sh: Shared, stream: String, consumer: String, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if !wait_ready(&sh).await {
        return;
    }
    let name = format!("{stream}-{consumer}");
    let subject = deliver_subject(&stream, &consumer);
    let mut conn: Option<JsClient> = None;
    while !sh.stop_all.load(Ordering::Relaxed) {
        if conn.is_none() {
            let Some(mut c) = sh.connect(&name, &sh.stop_all).await else { return };
            c.nats.sub(&subject, "push");
            if c.nats.ping(sh.timeout).await.is_err() {
                continue;
            }
            conn = Some(c);
        }
        let c = conn.as_mut().expect("connected above");
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut batch = Vec::new();
        let mut broken = false;
        while (batch.len() as u64) < sh.cfg.js.batch {
            match c.nats.next_msg(deadline).await {
                Ok(Some(m)) if m.sid == "push" => {
                    if let Some(meta) = m.reply.as_deref().and_then(crate::jsclient::parse_ack_subject) {
                        batch.push((m, meta));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken || !answer(&sh, c, &mut rng, &stream, &consumer, batch).await {
            conn = None;
            continue;
        }
        if rng.gen_range(0..100) < sh.cfg.js.disconnect_pct {
            conn = None;
        }
    }
}

/// Sample every consumer's and stream's info; on limits streams, delete now and then.
/// Returns what still keeps a consumer busy (`None`: every consumer is idle).
async fn sample(sh: &Shared, c: &mut JsClient, rng: Option<&mut ChaCha8Rng>) -> std::io::Result<Option<String>> {
    let mut busy = None;
    let mut deletes = Vec::new();
    for s in sh.streams.iter() {
        for cs in &s.consumers {
            let st = c.consumer_info(&s.name, &cs.name).await?;
            if busy.is_none() && (st.num_pending > 0 || st.num_ack_pending > 0) {
                busy = Some(format!(
                    "{}/{} has {} pending and {} unacked (delivered up to {}, ack floor {})",
                    s.name,
                    cs.name,
                    st.num_pending,
                    st.num_ack_pending,
                    st.delivered_stream_seq,
                    st.ack_floor_stream_seq
                ));
            }
            sh.emit(JsEvent::ConsumerInfo {
                stream: s.name.clone(),
                consumer: cs.name.clone(),
                delivered_stream_seq: st.delivered_stream_seq,
                ack_floor_stream_seq: st.ack_floor_stream_seq,
                num_ack_pending: st.num_ack_pending,
                num_pending: st.num_pending,
            });
        }
        let st = c.stream_info(&s.name).await?;
        sh.emit(JsEvent::StreamInfo {
            stream: s.name.clone(),
            msgs: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            last_seq: st.last_seq,
            subjects: st.subjects,
            lost: st.lost,
        });
        if s.retention == Retention::Limits && st.msgs > 0 {
            deletes.push((s.name.clone(), st.first_seq, st.last_seq));
        }
    }
    if let Some(rng) = rng
        && !deletes.is_empty()
        && rng.gen_range(0..100) < sh.cfg.js.delete_pct
    {
        let (stream, first, last) = deletes[rng.gen_range(0..deletes.len())].clone();
        let seq = rng.gen_range(first..=last);
        sh.emit(JsEvent::Delete { stream: stream.clone(), seq, done: false });
        if c.delete(&stream, seq).await? {
            sh.emit(JsEvent::Delete { stream, seq, done: true });
        }
    }
    Ok(busy)
}

async fn sampler(sh: Shared, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if !wait_ready(&sh).await {
        return;
    }
    let mut conn: Option<JsClient> = None;
    while !sh.stop_all.load(Ordering::Relaxed) {
        sleep(SAMPLE_EVERY).await;
        if conn.is_none() {
            conn = sh.connect("sampler", &sh.stop_all).await;
        }
        let Some(c) = conn.as_mut() else { return };
        let deleting = !sh.drain.load(Ordering::Relaxed);
        if sample(&sh, c, deleting.then_some(&mut rng)).await.is_err() {
            conn = None;
        }
    }
}

/// The JetStream world (see the module doc).
pub struct JsWorld {
    sh: Shared,
    disk: Arc<SimDisk>,
    fault_rng: ChaCha8Rng,
    /// The clients' machine (the harness's own task has no network address).
    machine: madsim::runtime::NodeHandle,
    pub_tasks: Vec<JoinHandle<ClientStats>>,
    other_tasks: Vec<JoinHandle<()>>,
    /// Sequences lost to injected damage, per stream number (found by recovering a copy).
    lost: Arc<Mutex<BTreeMap<usize, BTreeSet<u64>>>>,
    caught_up: bool,
}

impl World for JsWorld {
    const NAME: &'static str = "js";
    const DESCRIPTION: &'static str =
        "one NATS server with JetStream on the simulated disk; clients publish with PubAck and consume with acks";
    const FAULTS: &'static [FaultClass] = ONE_DISK_NODE_FAULTS;

    fn check_config(cfg: &SimConfig) -> Result<(), String> {
        one_node(cfg)
    }

    fn setup(ctx: &mut Ctx) -> Self {
        ctx.init_disks();
        let cfg = ctx.cfg.clone();
        let ledger = Arc::new(Ledger::new(&[
            (names::CLIENT_OUTBOUND, CLIENT_OUTBOUND_LIMIT),
            (names::STREAM_DEDUP, cfg.js.dedup_limit),
            (names::CONSUMER_INFLIGHT, cfg.js.inflight_limit),
            (names::STORE_INDEX, STORE_INDEX_LIMIT),
            (names::STORE_BUFFERS, STORE_BUFFERS_LIMIT),
            (names::STORE_CACHE, STORE_CACHE_LIMIT),
            (names::STREAM_PENDING, weir_core::mem::spec(names::STREAM_PENDING).default_limit),
            // The server charges these whenever its ledger has them; without them here
            // connections' read buffers and subscriptions would count as uncharged heap.
            (names::CLIENT_BUFFERS, weir_core::mem::spec(names::CLIENT_BUFFERS).default_limit),
            (names::CLIENT_SUBS, weir_core::mem::spec(names::CLIENT_SUBS).default_limit),
        ]));
        let sh = Shared {
            streams: Arc::new(streams_of(&cfg)),
            sink: ctx.sink.clone(),
            ledger,
            incarnation: Arc::default(),
            start: ctx.start,
            node_seed: ctx.rng.r#gen(),
            bugs: ctx.bugs.js(),
            timeout: Duration::from_millis(cfg.workload.request_timeout_ms),
            ready: Arc::default(),
            stop_pub: Arc::default(),
            drain: Arc::default(),
            stop_all: Arc::default(),
            connections: Arc::default(),
            cfg,
        };
        let sh2 = sh.clone();
        let disk = ctx.add_disk_node(Ledger::clone(&sh.ledger), move || node_main(sh2.clone()));

        let machine = ctx.add_client_machine("clients");
        let mut other_tasks = vec![machine.spawn(create_all(sh.clone()))];
        let mut pub_tasks = Vec::new();
        for id in 0..sh.cfg.run.clients {
            pub_tasks.push(machine.spawn(publisher(sh.clone(), id, ctx.rng.r#gen())));
        }
        for s in sh.streams.iter() {
            for c in &s.consumers {
                let (st, cn, seed) = (s.name.clone(), c.name.clone(), ctx.rng.r#gen());
                other_tasks.push(if c.pull {
                    machine.spawn(puller(sh.clone(), st, cn, seed))
                } else {
                    machine.spawn(pusher(sh.clone(), st, cn, seed))
                });
            }
        }
        other_tasks.push(machine.spawn(sampler(sh.clone(), ctx.rng.r#gen())));
        JsWorld {
            sh,
            disk,
            fault_rng: ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x0015_DA7A),
            machine,
            pub_tasks,
            other_tasks,
            lost: Arc::default(),
            caught_up: false,
        }
    }

    fn corrupt(&mut self, _ctx: &Ctx, _no: NodeNo) -> String {
        let (desc, lost) = corrupt(&self.disk, &self.sh, &mut self.fault_rng);
        if let Some((stream, seqs)) = lost {
            self.lost.lock().expect("lost").entry(stream).or_default().extend(seqs);
        }
        desc
    }

    async fn end_safety(&mut self, _ctx: &Ctx) {
        self.sh.stop_pub.store(true, Ordering::Relaxed);
    }

    /// Every consumer has delivered and had acked everything.
    async fn converge(&mut self, _ctx: &Ctx, deadline: Instant) -> Result<(), String> {
        self.sh.drain.store(true, Ordering::Relaxed);
        let r = self.machine.spawn(caught_up(self.sh.clone(), deadline)).await.unwrap_or_else(|e| Err(e.to_string()));
        self.caught_up = r.is_ok();
        r
    }

    async fn wind_down(&mut self, _ctx: &Ctx, _converged: bool) {
        self.sh.stop_pub.store(true, Ordering::Relaxed);
        self.sh.stop_all.store(true, Ordering::Relaxed);
        for t in self.other_tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Past the duplicate window, so expired dedup entries are gone.
    fn quiet_time(&self) -> Duration {
        Duration::from_millis(self.sh.cfg.js.dedup_window_ms) + Duration::from_millis(1_500)
    }

    fn over_baseline(&self, account: &str, current: u64) -> bool {
        current > 0 && (account == names::CONSUMER_INFLIGHT || account == names::STREAM_DEDUP)
    }

    /// A final power cut, a restart, and everything read back.
    async fn finish(mut self, ctx: &mut Ctx) -> (Vec<Violation>, ClientStats) {
        let mut stats = ClientStats::default();
        for t in self.pub_tasks.drain(..) {
            stats += t.await.unwrap_or_default();
        }
        ctx.kill(NODE);
        ctx.sink.emit(NODE, EventKind::NodeCrash);
        sleep(Duration::from_millis(100)).await;
        ctx.handle.restart(ctx.node_handle(NODE).id());
        let finals = self.machine.spawn(final_read(self.sh.clone())).await.unwrap_or_else(|e| Err(e.to_string()));
        let mut violations = Vec::new();
        let finals = match finals {
            Ok(mut f) => {
                let lost = self.lost.lock().expect("lost");
                for (i, seqs) in lost.iter() {
                    if let Some(fs) = f.get_mut(*i) {
                        fs.lost.extend(seqs.iter().copied());
                    }
                }
                f
            }
            Err(e) => {
                violations.push(Violation { invariant: "recoverable", detail: e });
                Vec::new()
            }
        };
        let spec = JsSpec {
            streams: self.sh.streams.to_vec(),
            payload_len: self.sh.cfg.workload.payload_bytes as usize,
            caught_up: self.caught_up,
        };
        if !finals.is_empty() {
            violations.extend(jscheck::js_outcomes(&ctx.events(), &spec, &finals));
        }
        (violations, stats)
    }
}

/// Sample consumers until every one has nothing pending or unacked.
async fn caught_up(sh: Shared, deadline: Instant) -> Result<(), String> {
    let never = AtomicBool::new(false);
    let mut conn: Option<JsClient> = None;
    let mut last = String::from("the server never answered");
    while Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
        if !sh.ready.load(Ordering::Relaxed) {
            last = "streams and consumers were never created".into();
            continue;
        }
        if conn.is_none() {
            conn = tokio::time::timeout(sh.timeout, sh.connect("converge", &never)).await.ok().flatten();
        }
        let Some(c) = conn.as_mut() else { continue };
        match sample(&sh, c, None).await {
            Ok(None) => return Ok(()),
            Ok(Some(busy)) => last = busy,
            Err(e) => {
                last = format!("info request failed: {e}");
                conn = None;
            }
        }
    }
    Err(format!("consumers did not catch up after healing: {last}"))
}

/// After the final restart: every stream's messages, read with MSG.GET.
async fn final_read(sh: Shared) -> Result<Vec<JsFinalStream>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("no connection");
    while Instant::now() < deadline {
        let n = sh.connections.fetch_add(1, Ordering::Relaxed);
        let Ok(mut c) = JsClient::connect(sh.addr(), sh.timeout, &format!("final.{n}")).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        match read_all(&sh, &mut c).await {
            Ok(f) => return Ok(f),
            Err(e) => last = e,
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(format!("could not read the streams back after the final restart: {last}"))
}

async fn read_all(sh: &Shared, c: &mut JsClient) -> Result<Vec<JsFinalStream>, String> {
    let mut out = Vec::new();
    for s in sh.streams.iter() {
        let st = c.stream_info(&s.name).await.map_err(|e| format!("{} info: {e}", s.name))?;
        sh.emit(JsEvent::StreamInfo {
            stream: s.name.clone(),
            msgs: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            last_seq: st.last_seq,
            subjects: st.subjects.clone(),
            lost: st.lost.clone(),
        });
        let mut msgs = Vec::with_capacity(st.msgs as usize);
        let mut seq = st.first_seq.max(1);
        while seq <= st.last_seq {
            match c.get_next(&s.name, seq).await.map_err(|e| format!("{} get {seq}: {e}", s.name))? {
                Some(m) => {
                    seq = m.seq + 1;
                    msgs.push(JsFinalMsg { seq: m.seq, subject: m.subject, payload: m.payload });
                }
                None => break,
            }
        }
        out.push(JsFinalStream { last_seq: st.last_seq, bytes: st.bytes, msgs, lost: st.lost });
    }
    Ok(out)
}

/// Damage a stream's message blocks while the node is down: flip a bit or cut a rolled
/// block. The newest block's last good record is spared, and so is whatever follows it
/// (the garbage of a torn write the crash kept): damage to that record is
/// indistinguishable from a torn write and recovery rightly cuts it off as one. Where
/// the newest block ends in such garbage the guard is measured from where the garbage
/// begins, found by recovering a scratch copy of the undamaged image (seed 870 of
/// `js-single-crashes` flipped a bit in the last acknowledged message, just before
/// the torn tail, so its loss went unreported). Returns what was done and the
/// sequences a recovery of the damaged image reports lost (found on a scratch copy, so
/// the node's own recovery still meets the damage).
fn corrupt(disk: &SimDisk, sh: &Shared, rng: &mut ChaCha8Rng) -> (String, Option<(usize, Vec<u64>)>) {
    let i = rng.gen_range(0..sh.streams.len());
    let dir = layout::msgs_dir(STORE_DIR, &sh.streams[i].name);
    let prefix = format!("{dir}/");
    let mut blocks: Vec<(u64, String)> = disk
        .durable_file_names()
        .into_iter()
        .filter_map(|f| {
            let name = f.strip_prefix(&prefix)?;
            Some((name.strip_suffix(".blk")?.parse().ok()?, f.clone()))
        })
        .collect();
    blocks.sort();
    let Some(newest) = blocks.last().map(|b| b.0) else { return (format!("corrupt: no block in {dir}"), None) };
    let (index, path) = blocks[rng.gen_range(0..blocks.len())].clone();
    let len = disk.durable_contents(&path).map_or(0, |d| d.len() as u64);
    let guard = if index == newest {
        torn_tail(disk, &dir, FileStoreConfig::default(), index, len) + u64::from(sh.cfg.workload.payload_bytes) + 160
    } else {
        0
    };
    if len <= guard + 64 {
        return (format!("corrupt: {path} too short to damage ({len} bytes)"), None);
    }
    let desc = if index != newest && rng.gen_bool(0.3) {
        let cut = rng.gen_range(64..len);
        disk.truncate_durable(&path, cut).expect("block exists");
        format!("corrupt: cut {path} from {len} to {cut} bytes")
    } else {
        let offset = rng.gen_range(64..len - guard);
        let bit = rng.gen_range(0..8u8);
        disk.flip_bit(&path, offset, bit).expect("offset inside the file");
        format!("corrupt: flipped bit {bit} at {path}:{offset}")
    };
    (desc, Some((i, lost_in_copy(disk, &dir))))
}

/// Recover a copy of `dir`'s durable files on a scratch disk and return the sequences
/// its recovery reports lost.
fn lost_in_copy(disk: &SimDisk, dir: &str) -> Vec<u64> {
    recover_copy(disk, dir, FileStoreConfig::default())
        .map_or_else(Vec::new, |r| r.lost.iter().flat_map(|l| l.seqs.clone()).collect())
}
