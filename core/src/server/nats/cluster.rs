//! Clustering of core pub/sub: the async shell around the broker's route state.
//!
//! Every server listens on a route port and dials each configured route (`--routes`).
//! A connection carries traffic one way, from the dialler (see [`super::route_out`]
//! for the frames and the handshake), so each pair of servers uses two connections.
//! A server also dials back a peer that dialled it, and dials the route addresses a
//! peer lists in its handshake answer, so servers configured with the same seed list
//! form a full mesh. Diallers of configured routes retry forever with backoff; those
//! started by dial-back or gossip stop once their connection ends (the peer, when it
//! returns, dials us or is learnt again).
//!
//! A connection ends on a socket error, end of stream, a write or held link that makes
//! no progress for `stall_timeout`, a receive side that hears nothing (not even a
//! `Ping`) for three ping intervals, an interest frame that does not fit the bounded
//! queue, or a cut link (simulator). The receiver then drops that peer's interest;
//! the dialler reconnects and starts again from a full interest snapshot.

use super::broker::{Message, RouteConnId};
use super::route_out::{Hello, RouteFrame, RouteOut};
use super::server::Shared;
use crate::mem::Account;
use crate::proto::ByteStr;
use crate::server::frame;
use crate::server::link::{Gate, LinkShaper};
use crate::server::scope::ScopeHandle;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// Default cap on one route's queued bytes.
pub const DEFAULT_ROUTE_MAX_PENDING: u64 = 32 * 1024 * 1024;
/// Default limit of the `route.outbound` ledger account (all routes together).
pub const DEFAULT_ROUTE_OUTBOUND_TOTAL: u64 = 256 * 1024 * 1024;

/// A route to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    /// `host:port` of the peer's route listener.
    pub addr: String,
    /// The peer's node number for link shaping (0 when unknown, as in production).
    pub node: u64,
}

impl RouteTarget {
    /// A route to `addr` with no link-shaping number.
    pub fn new(addr: impl Into<String>) -> RouteTarget {
        RouteTarget { addr: addr.into(), node: 0 }
    }
}

/// Route (cluster) settings of a NATS server.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Where peers dial us.
    pub listen: SocketAddr,
    /// Routes to dial (may include our own address, which is detected and skipped).
    pub routes: Vec<RouteTarget>,
    /// Cluster name; peers with another name are refused.
    pub name: String,
    /// Most bytes queued for one route; messages over it are dropped.
    pub max_pending: u64,
    /// A write, or a held link, making no progress for this long ends the connection.
    pub stall_timeout: Duration,
    /// Keepalive period; a receiver that hears nothing for three of these ends the connection.
    pub ping_interval: Duration,
    /// First redial delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest redial delay.
    pub max_backoff: Duration,
    /// This server's node number for link shaping (0 outside the simulator).
    pub node: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6222)),
            routes: Vec::new(),
            name: "weir".to_owned(),
            max_pending: DEFAULT_ROUTE_MAX_PENDING,
            stall_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            node: 0,
        }
    }
}

/// Per-server cluster state owned by the shell.
pub(super) struct Cluster {
    pub(super) cfg: ClusterConfig,
    /// The bound route address.
    pub(super) addr: SocketAddr,
    account: Arc<Account>,
    shaper: OnceLock<Arc<dyn LinkShaper>>,
    /// Addresses some dialler is responsible for (or that turned out to be us).
    dialling: Mutex<BTreeSet<String>>,
    next_conn: AtomicU64,
}

impl Cluster {
    pub(super) fn new(cfg: ClusterConfig, addr: SocketAddr, account: Arc<Account>) -> Cluster {
        Cluster {
            cfg,
            addr,
            account,
            shaper: OnceLock::new(),
            dialling: Mutex::new(BTreeSet::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    pub(super) fn set_shaper(&self, shaper: Arc<dyn LinkShaper>) {
        let _ = self.shaper.set(shaper);
    }

    fn shaper(&self) -> Option<&dyn LinkShaper> {
        self.shaper.get().map(|s| &**s)
    }

    /// Host we advertise: the listen IP unless it is unspecified.
    fn route_host(&self) -> Option<String> {
        (!self.addr.ip().is_unspecified()).then(|| self.addr.ip().to_string())
    }

    fn own_addr(&self) -> String {
        self.addr.to_string()
    }

    fn hello(&self, server_id: &str, accepted: bool, known: Vec<String>) -> Hello {
        Hello {
            server_id: server_id.to_owned(),
            cluster: self.cfg.name.clone(),
            route_host: self.route_host(),
            route_port: self.addr.port(),
            node: self.cfg.node,
            accepted,
            known,
        }
    }

    fn conn_id(&self) -> RouteConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn idle_timeout(&self) -> Duration {
        self.cfg.ping_interval * 3
    }

    fn cut(&self, to: u64) -> bool {
        to != 0 && self.shaper().is_some_and(|s| s.gate(self.cfg.node, to) == Gate::Drop)
    }
}

fn cluster(shared: &Shared) -> &Cluster {
    shared.cluster.as_ref().expect("cluster tasks run only on clustered servers")
}

/// Start the route listener's accept loop and one dialler per configured route.
pub(super) fn start(shared: &Arc<Shared>, listener: TcpListener, scope: &ScopeHandle) {
    let c = cluster(shared);
    tracing::info!(addr = %c.addr, cluster = %c.cfg.name, routes = c.cfg.routes.len(), "route listener ready");
    scope.spawn(accept_loop(shared.clone(), listener, scope.clone()));
    for t in &c.cfg.routes {
        ensure_dialler(shared, scope, t.addr.clone(), t.node, false);
    }
}

/// Start a dialler for `addr` unless one exists (or `addr` is known to be us).
fn ensure_dialler(shared: &Arc<Shared>, scope: &ScopeHandle, addr: String, node: u64, implicit: bool) {
    let c = cluster(shared);
    if addr == c.own_addr() || !c.dialling.lock().expect("dialling").insert(addr.clone()) {
        return;
    }
    scope.spawn(dial_loop(shared.clone(), scope.clone(), addr, node, implicit));
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, scope: ScopeHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (shared, s2) = (shared.clone(), scope.clone());
                scope.spawn(async move {
                    if let Err(e) = inbound(&shared, stream, peer, &s2).await {
                        tracing::debug!(%peer, "inbound route closed: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "route accept failed");
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Read one frame within `limit`; end of stream and silence are errors.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> io::Result<RouteFrame> {
    match timeout(limit, frame::read::<RouteFrame, _>(rd, buf)).await {
        Ok(Ok(Some(f))) => Ok(f),
        Ok(Ok(None)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "route closed")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "route silent")),
    }
}

/// Serve a connection a peer dialled: handshake, then apply its interest and messages.
async fn inbound(shared: &Arc<Shared>, mut stream: TcpStream, peer: SocketAddr, scope: &ScopeHandle) -> io::Result<()> {
    let c = cluster(shared);
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let RouteFrame::Hello(hello) = read_frame(&mut stream, &mut buf, c.idle_timeout()).await? else {
        return Err(invalid("route did not start with Hello"));
    };
    let addr = format!("{}:{}", hello.route_host.clone().unwrap_or_else(|| peer.ip().to_string()), hello.route_port);
    let conn = c.conn_id();
    let me = &shared.server_id;
    let accepted = if hello.server_id == *me {
        false
    } else if hello.cluster != c.cfg.name {
        tracing::warn!(%peer, theirs = %hello.cluster, ours = %c.cfg.name, "route from another cluster refused");
        false
    } else {
        shared.broker().route_in_open(&hello.server_id, conn, addr.clone())
    };
    let known = if accepted { shared.broker().known_routes() } else { Vec::new() };
    frame::write(&mut stream, &RouteFrame::Hello(c.hello(me, accepted, known))).await?;
    if !accepted {
        return Ok(());
    }
    tracing::info!(peer = %addr, server_id = %hello.server_id, "inbound route up");
    ensure_dialler(shared, scope, addr.clone(), hello.node, true);
    let r = receive(shared, &mut stream, &hello.server_id, conn, &mut buf).await;
    shared.broker().route_in_close(&hello.server_id, conn);
    tracing::info!(peer = %addr, "inbound route down");
    r
}

async fn receive(
    shared: &Shared,
    stream: &mut TcpStream,
    server_id: &str,
    conn: RouteConnId,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let idle = cluster(shared).idle_timeout();
    loop {
        match read_frame(stream, buf, idle).await? {
            RouteFrame::Sub { subject, queue } => {
                shared.broker().route_interest(server_id, conn, true, subject, queue).map_err(invalid)?
            }
            RouteFrame::Unsub { subject, queue } => {
                shared.broker().route_interest(server_id, conn, false, subject, queue).map_err(invalid)?
            }
            RouteFrame::Msg { subject, reply, headers, payload, queues } => {
                let msg = Message {
                    subject: ByteStr::from(subject),
                    reply: reply.map(ByteStr::from),
                    headers: headers.map(Bytes::from),
                    payload: Bytes::from(payload),
                };
                shared.broker().route_msg(server_id, conn, &msg, &queues);
            }
            RouteFrame::Ping => {}
            RouteFrame::Hello(_) => return Err(invalid("unexpected Hello")),
        }
    }
}

/// How a dial attempt ended.
enum Attempt {
    /// Could not connect or handshake.
    Failed,
    /// The address is this server.
    Myself,
    /// The peer refused (duplicate connection or other cluster).
    Refused,
    /// Connected, then the connection ended.
    Ended,
}

async fn dial_loop(shared: Arc<Shared>, scope: ScopeHandle, addr: String, node: u64, implicit: bool) {
    let c = cluster(&shared);
    let mut backoff = c.cfg.min_backoff;
    loop {
        let attempt = dial_once(&shared, &scope, &addr, node).await;
        match attempt {
            Attempt::Myself => {
                tracing::debug!(%addr, "route points at this server; not dialling it");
                // Stays in `dialling`, so that gossip does not start it again.
                return;
            }
            Attempt::Ended => backoff = c.cfg.min_backoff,
            Attempt::Refused => backoff = c.cfg.max_backoff,
            Attempt::Failed => {}
        }
        if implicit {
            break;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(c.cfg.max_backoff);
    }
    c.dialling.lock().expect("dialling").remove(&addr);
}

async fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{addr} resolves to nothing"));
    for a in tokio::net::lookup_host(addr).await? {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn dial_once(shared: &Arc<Shared>, scope: &ScopeHandle, addr: &str, node: u64) -> Attempt {
    let c = cluster(shared);
    if c.cut(node) {
        return Attempt::Failed;
    }
    let handshake = async {
        let mut stream = connect(addr).await?;
        let _ = stream.set_nodelay(true);
        frame::write(&mut stream, &RouteFrame::Hello(c.hello(&shared.server_id, true, Vec::new()))).await?;
        let mut buf = Vec::new();
        match read_frame(&mut stream, &mut buf, c.idle_timeout()).await? {
            RouteFrame::Hello(h) => Ok((stream, h)),
            _ => Err(invalid("route answer was not Hello")),
        }
    };
    let (stream, hello) = match timeout(c.idle_timeout(), handshake).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(%addr, "route dial failed: {e}");
            return Attempt::Failed;
        }
        Err(_) => return Attempt::Failed,
    };
    if hello.server_id == shared.server_id {
        return Attempt::Myself;
    }
    if !hello.accepted {
        return Attempt::Refused;
    }
    for known in hello.known.iter().filter(|k| **k != c.own_addr()) {
        ensure_dialler(shared, scope, known.clone(), 0, true);
    }
    let peer_node = hello.node;
    let out = Arc::new(match shared.cluster.as_ref().and_then(|c| c.shaper.get().cloned()) {
        Some(s) if peer_node != 0 => {
            let me = c.cfg.node;
            RouteOut::with_delay(c.account.clone(), c.cfg.max_pending, Box::new(move |n| s.delay(me, peer_node, n)))
        }
        _ => RouteOut::new(c.account.clone(), c.cfg.max_pending),
    });
    let conn = c.conn_id();
    if !shared.broker().route_out_open(&hello.server_id, conn, out.clone()) {
        return Attempt::Refused;
    }
    tracing::info!(%addr, server_id = %hello.server_id, "route up");
    if let Err(e) = pump(c, stream, &out, peer_node).await {
        tracing::info!(%addr, "route down: {e}");
    }
    shared.broker().route_out_close(&hello.server_id, conn);
    out.close();
    Attempt::Ended
}

/// Write `out`'s frames to the peer, with keepalives, until something ends the connection.
async fn pump(c: &Cluster, stream: TcpStream, out: &RouteOut, peer: u64) -> io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let ping = frame::encode(&RouteFrame::Ping).expect("ping encodes");
    let mut ticker = tokio::time::interval_at(Instant::now() + c.cfg.ping_interval, c.cfg.ping_interval);
    let mut scratch = [0u8; 64];
    loop {
        // `biased` keeps the simulation deterministic (an unbiased select draws from
        // tokio's thread-local RNG); the rarely ready branches come first so that a
        // busy queue cannot starve them.
        tokio::select! {
            biased;
            _ = out.wait_closed() => return Err(io::Error::other("route queue closed")),
            r = rd.read(&mut scratch) => {
                return match r {
                    Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the route")),
                    Ok(_) => Err(invalid("peer sent data on a send-only route")),
                    Err(e) => Err(e),
                };
            }
            _ = ticker.tick() => {
                out.push_control(ping.clone());
            }
            f = out.next() => {
                let Some(f) = f else { return Err(io::Error::other("route queue closed")) };
                if f.not_before > Instant::now() {
                    sleep_until(f.not_before).await;
                }
                gate(c, peer).await?;
                if let Some(s) = c.shaper().filter(|_| peer != 0) {
                    let pace = s.pace(c.cfg.node, peer, f.bytes.len());
                    if !pace.is_zero() {
                        sleep(pace).await;
                    }
                }
                write(c, &mut wr, &f.bytes).await?;
            }
        }
    }
}

/// Wait while the simulated link holds traffic; a cut link ends the connection.
async fn gate(c: &Cluster, peer: u64) -> io::Result<()> {
    let Some(s) = c.shaper().filter(|_| peer != 0) else { return Ok(()) };
    let since = Instant::now();
    loop {
        match s.gate(c.cfg.node, peer) {
            Gate::Open => return Ok(()),
            Gate::Drop => return Err(io::Error::new(io::ErrorKind::ConnectionReset, "link cut")),
            Gate::Hold if since.elapsed() >= c.cfg.stall_timeout => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "route stalled (link held)"));
            }
            Gate::Hold => sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(c: &Cluster, wr: &mut W, bytes: &[u8]) -> io::Result<()> {
    match timeout(c.cfg.stall_timeout, frame::write_raw(wr, bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "route write stalled")),
    }
}
