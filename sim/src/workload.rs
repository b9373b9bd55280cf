//! Workload clients: each proposes unique values to the cluster at a steady rate and
//! records a Jepsen-style history (invoke, then ok / fail / unknown) in the trace.

use crate::node::{self, NodeNo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_core::server::client::{ClientConn, Outcome};
use weir_core::server::link::LinkWrap;
use weir_core::testing::payload;
use weir_core::timer::{Deadline, within};
use weir_traces::{EventKind, EventSink, HARNESS};

/// What one client did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests issued.
    pub invoked: u64,
    /// Acknowledged as committed.
    pub ok: u64,
    /// Definitely failed.
    pub failed: u64,
    /// Outcome unknown.
    pub unknown: u64,
}

impl std::ops::AddAssign for ClientStats {
    fn add_assign(&mut self, o: ClientStats) {
        self.invoked += o.invoked;
        self.ok += o.ok;
        self.failed += o.failed;
        self.unknown += o.unknown;
    }
}

/// Parameters shared by all clients of a run.
#[derive(Clone)]
pub struct ClientParams {
    /// Client port of every node, index 0 = node 1.
    pub nodes: Vec<SocketAddr>,
    /// Requests per second.
    pub rate: u32,
    /// Payload bytes.
    pub payload: usize,
    /// Request timeout.
    pub timeout: Duration,
    /// Where history goes.
    pub sink: Arc<dyn EventSink>,
    /// Set when the safety phase ends.
    pub stop: Arc<AtomicBool>,
    /// The network model each connection runs through (the nodes' client ports use
    /// the same one).
    pub wrap: Option<LinkWrap>,
}

/// The value client `id` proposes as its `n`-th request: unique across the run.
pub fn value_for(id: u32, n: u64) -> u64 {
    ((id as u64 + 1) << 40) | n
}

/// The outcome of one request as recorded.
pub enum Recorded {
    /// Committed at this index.
    Ok(u64),
    /// Definitely not committed; the node hinted this leader.
    Fail(Option<NodeNo>),
    /// Unknown.
    Unknown,
}

/// Propose `value` to node `target` over `conn`, recording the history. `deadline`
/// is the client's own, reused across its requests (one timer per timeout period
/// rather than per request; see `weir_core::timer`); each request moves it to
/// `p.timeout` from its start.
pub async fn request(
    p: &ClientParams,
    client: u32,
    conn: &mut Option<ClientConn>,
    target: NodeNo,
    value: u64,
    deadline: &mut Deadline,
) -> Recorded {
    let sink = &p.sink;
    let addr = p.nodes[node::index(target)];
    if conn.is_none() {
        deadline.reset(tokio::time::Instant::now() + p.timeout);
        match within(deadline, ClientConn::connect_with(addr, p.wrap.as_ref())).await {
            Ok(Ok(c)) => *conn = Some(c),
            _ => {
                // Nothing was sent: this is not an operation, just a failed attempt.
                return Recorded::Fail(None);
            }
        }
    }
    let c = conn.as_mut().expect("connected above");
    sink.emit(HARNESS, EventKind::ClientInvoke { client, value, target });
    deadline.reset(tokio::time::Instant::now() + p.timeout);
    let res = within(deadline, c.propose(value, payload(value, p.payload))).await;
    let fail = |reason: String| EventKind::ClientFail { client, value, reason };
    match res {
        Ok(Ok(Outcome::Committed { index })) => {
            sink.emit(HARNESS, EventKind::ClientOk { client, value, index });
            Recorded::Ok(index)
        }
        Ok(Ok(Outcome::NotLeader { leader })) => {
            sink.emit(HARNESS, fail(format!("not leader (hint {leader:?})")));
            Recorded::Fail(leader.and_then(node::from_id))
        }
        Ok(Ok(Outcome::Backpressure)) => {
            sink.emit(HARNESS, fail("backpressure".into()));
            Recorded::Fail(Some(target))
        }
        Ok(Ok(Outcome::TooLarge)) => {
            sink.emit(HARNESS, fail("too large".into()));
            Recorded::Fail(None)
        }
        Ok(Ok(Outcome::Failed { reason })) => {
            sink.emit(HARNESS, fail(reason));
            Recorded::Fail(None)
        }
        Ok(Ok(Outcome::Unknown { reason })) => {
            sink.emit(HARNESS, EventKind::ClientUnknown { client, value, reason });
            *conn = None;
            Recorded::Unknown
        }
        Ok(Err(e)) => {
            sink.emit(HARNESS, EventKind::ClientUnknown { client, value, reason: format!("io: {e}") });
            *conn = None;
            Recorded::Unknown
        }
        Err(_) => {
            sink.emit(HARNESS, EventKind::ClientUnknown { client, value, reason: "timeout".into() });
            *conn = None;
            Recorded::Unknown
        }
    }
}

/// A node drawn uniformly from `1..=n_nodes` (drawn as a `u64`, as traces were recorded).
fn random_node(rng: &mut ChaCha8Rng, n_nodes: u64) -> NodeNo {
    NodeNo::try_from(rng.gen_range(1..=n_nodes)).expect("a node number")
}

/// Run client `id` until `p.stop` is set.
pub async fn client_loop(p: ClientParams, id: u32, seed: u64) -> ClientStats {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_nodes = p.nodes.len() as u64;
    let mut target = random_node(&mut rng, n_nodes);
    let mut conn: Option<ClientConn> = None;
    let mut stats = ClientStats::default();
    let period = Duration::from_micros(1_000_000 / p.rate.max(1) as u64);
    // Stagger the clients so they do not fire in lockstep.
    tokio::time::sleep(Duration::from_micros(rng.gen_range(0..period.as_micros() as u64 + 1))).await;
    let mut n = 0u64;
    // Open-loop pacing: requests start on a schedule, not a fixed pause after each
    // response, so the offered load does not sag when latency rises.
    let mut next_at = tokio::time::Instant::now();
    let mut deadline = Deadline::after(p.timeout);
    while !p.stop.load(Ordering::Relaxed) {
        let value = value_for(id, n);
        n += 1;
        let prev = target;
        match request(&p, id, &mut conn, target, value, &mut deadline).await {
            Recorded::Ok(_) => {
                stats.invoked += 1;
                stats.ok += 1;
            }
            Recorded::Fail(hint) => {
                stats.invoked += 1;
                stats.failed += 1;
                target = match hint {
                    Some(h) if (1..=n_nodes).contains(&u64::from(h)) => h,
                    _ => random_node(&mut rng, n_nodes),
                };
            }
            Recorded::Unknown => {
                stats.invoked += 1;
                stats.unknown += 1;
                target = random_node(&mut rng, n_nodes);
            }
        }
        if target != prev {
            conn = None;
        }
        let jitter = rng.gen_range(0..=period.as_micros() as u64 / 4);
        next_at = (next_at + period + Duration::from_micros(jitter)).max(tokio::time::Instant::now());
        tokio::time::sleep_until(next_at).await;
    }
    stats
}
