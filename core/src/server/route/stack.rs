//! [`Routes`]: the async shell of the route stack (see [`super`] for the connection
//! model and the slow-route policy). One `Routes` per server; it owns the listener's
//! accept loop, one dialler per known peer address, and a table of the live
//! connections per peer, which decides which connections are accepted and where Raft
//! messages go.

use super::frame::{Hello, RouteFrame, RouteFrameRef, encode_hello, encode_raft};
use super::out::{Class, DropEvents, DropReason, QueuedFrame, RouteDropCounts, RouteDrops, RouteOut};
use super::{RouteConfig, RouteTarget};
use crate::mem::Account;
use crate::raft::{Envelope, NodeId};
use crate::server::frame::{self, FrameReader};
use crate::server::inbox::InboxTx;
use crate::server::link::{LinkStream, LinkWrap};
use crate::server::scope::ScopeHandle;
use crate::server::tls::RouteTls;
use crate::timer::{Deadline, Missed, Ticker, within};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, timeout};
use weir_traces::{EventKind, EventSink, NodeNo};

/// Most encoded bytes the writer takes off a queue for one batch, written with
/// vectored writes and one flush (a larger frame goes alone): one system call for many
/// small messages (see `frame::write_progressing`).
const WRITE_BATCH: usize = 64 * 1024;

/// Identifies one route connection (either direction), unique for the life of a server.
pub type RouteConnId = u64;

/// The pub/sub side of a server (its broker), as the route stack sees it. Calls are
/// synchronous and must not block; the stack has already decided that the connection
/// is the peer's only live one in its direction.
pub trait PubSubRoutes: Send + Sync + 'static {
    /// Our connection `conn` to peer `server_id` is up and `out` is its queue: queue the
    /// full interest snapshot and send interest changes and messages there from now on.
    fn out_open(&self, server_id: &str, conn: RouteConnId, out: &Arc<RouteOut>);
    /// Our connection `conn` to `server_id` ended.
    fn out_close(&self, server_id: &str, conn: RouteConnId);
    /// Peer `server_id` connected to us on `conn` (route address `addr`); any interest
    /// held for it is dropped, as the connection starts with a snapshot.
    fn in_open(&self, server_id: &str, conn: RouteConnId, addr: &str);
    /// Peer `server_id`'s connection `conn` to us ended: drop its interest.
    fn in_close(&self, server_id: &str, conn: RouteConnId);
    /// `Sub`, `Unsub`, `Msg` and `ClientUrl` frames from `server_id` on `conn`, in the
    /// order they came (those of one read from the socket, at most
    /// [`frame::READ_CHUNK`] bytes of them): apply them in order and leave `frames`
    /// empty. Handing them over together lets the broker apply many under one lock and
    /// wake each subscriber's writer once. An error (an invalid subject, say) ends the
    /// connection.
    fn frames(&self, server_id: &str, conn: RouteConnId, frames: &mut Vec<RouteFrame>) -> Result<(), String>;
}

/// Where inbound traffic goes. A server without a broker ignores pub/sub frames; one
/// without Raft ignores Raft frames.
#[derive(Clone, Default)]
pub struct Handlers {
    /// The broker.
    pub pubsub: Option<Arc<dyn PubSubRoutes>>,
    /// The Raft node's inbox; a full inbox (by count or by its `raft.inbox` bytes)
    /// pushes back on the connection.
    pub raft: Option<InboxTx>,
}

/// Who this server is on the routes, and whom it dials.
#[derive(Clone, Debug)]
pub struct RouteSetup {
    /// This server's id (fresh for each start, so a restarted server is a new peer).
    pub server_id: String,
    /// Cluster name; peers with another name are refused.
    pub cluster: String,
    /// This server's Raft node id and link-shaping number (0: none).
    pub node: NodeId,
    /// Routes to dial (may include our own address, which is detected and skipped).
    pub routes: Vec<RouteTarget>,
    /// Tuning.
    pub cfg: RouteConfig,
}

/// What the stack knows about one peer server.
#[derive(Debug, Default)]
struct Peer {
    /// Its Raft node id (0: none), from its handshake.
    node: NodeId,
    /// Its route address, from its handshake.
    addr: Option<String>,
    /// Our live connection to it.
    out: Option<(RouteConnId, Arc<RouteOut>)>,
    /// Its live connection to us.
    inbound: Option<RouteConnId>,
}

/// One route's drop counters as `/varz`, `/metrics` and `/routez` show them
/// ([`Routes::route_drops`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RouteDropStat {
    /// The route address we dial (stable across the peer's restarts).
    pub addr: String,
    /// The server id of the peer last connected at `addr`.
    pub server_id: String,
    /// Its Raft node id (0: none).
    pub node: NodeId,
    /// Whether our connection to it is up now.
    pub connected: bool,
    /// Drops and publisher stalls on this route since this server started.
    #[serde(flatten)]
    pub drops: RouteDropCounts,
}

/// A route's counters and who answered there last.
#[derive(Debug)]
struct DropsEntry {
    drops: Arc<RouteDrops>,
    server_id: String,
    node: NodeId,
}

/// Counters of the route stack.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Connections we dialled that came up.
    pub connects: AtomicU64,
    /// Frames written.
    pub frames_sent: AtomicU64,
    /// Raft messages dropped because no connection to their destination was up.
    pub raft_unrouted: AtomicU64,
    /// Connections we dialled that ended because pings went unanswered.
    pub stale: AtomicU64,
    /// Connections we dialled that ended because a write made no progress in time.
    pub stalled: AtomicU64,
}

/// The route stack of one server.
pub struct Routes {
    setup: RouteSetup,
    /// The bound route address.
    addr: SocketAddr,
    account: Arc<Account>,
    wrap: OnceLock<LinkWrap>,
    events: OnceLock<Arc<dyn EventSink>>,
    /// Route TLS, when configured: every connection is TLS from its first byte.
    tls: OnceLock<Arc<RouteTls>>,
    /// Addresses some dialler is responsible for (or that turned out to be us).
    dialling: Mutex<BTreeSet<String>>,
    next_conn: AtomicU64,
    /// Peers by server id.
    peers: Mutex<BTreeMap<String, Peer>>,
    /// Drop counters per dialled route address (bounded by the addresses we dial).
    drops: Mutex<BTreeMap<String, DropsEntry>>,
    /// Encoded `Ping` and `Pong` frames.
    ping: Vec<u8>,
    pong: Vec<u8>,
    /// Counters.
    pub stats: RouteStats,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Routes {
    /// A stack for a server whose route listener is bound at `addr`, charging queued
    /// bytes to `account` (`route.outbound`).
    pub fn new(setup: RouteSetup, addr: SocketAddr, account: Arc<Account>) -> Routes {
        Routes {
            setup,
            addr,
            account,
            wrap: OnceLock::new(),
            events: OnceLock::new(),
            tls: OnceLock::new(),
            dialling: Mutex::new(BTreeSet::new()),
            next_conn: AtomicU64::new(1),
            peers: Mutex::new(BTreeMap::new()),
            drops: Mutex::new(BTreeMap::new()),
            ping: frame::encode(&RouteFrameRef::Ping).expect("ping encodes"),
            pong: frame::encode(&RouteFrameRef::Pong).expect("pong encodes"),
            stats: RouteStats::default(),
        }
    }

    /// Run every route connection on `wrap(socket)` (the simulator's network model,
    /// see [`crate::server::link`]); call before [`Routes::start`].
    pub fn set_link_wrap(&self, wrap: LinkWrap) {
        let _ = self.wrap.set(wrap);
    }

    /// Record why each of our route connections ended, as a `Note` event of this
    /// server's node (the simulator's traces); call before [`Routes::start`].
    pub fn set_events(&self, sink: Arc<dyn EventSink>) {
        let _ = self.events.set(sink);
    }

    /// Run every route connection over TLS (see [`crate::server::tls`]); call before
    /// [`Routes::start`]. Peers must have route TLS too.
    pub fn set_tls(&self, tls: Arc<RouteTls>) {
        let _ = self.tls.set(tls);
    }

    /// The accepting side of a new connection: TLS if configured, else the socket through
    /// the link wrap.
    async fn secure_inbound(&self, stream: TcpStream) -> io::Result<LinkStream> {
        match self.tls.get() {
            Some(t) => {
                let _ = stream.set_nodelay(true);
                Ok(Box::new(t.accept(stream).await?))
            }
            None => Ok(self.link(stream)),
        }
    }

    /// The dialling side of a new connection to `addr` (TLS, or the link wrap: the
    /// simulator has no TLS).
    async fn secure_outbound(&self, stream: TcpStream, addr: &str) -> io::Result<LinkStream> {
        match self.tls.get() {
            Some(t) => {
                let _ = stream.set_nodelay(true);
                Ok(Box::new(t.connect(stream, addr).await?))
            }
            None => Ok(self.link(stream)),
        }
    }

    /// The bound route address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.setup.cluster
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        &self.setup.server_id
    }

    /// Start the accept loop on `listener` and one dialler per configured route, in `scope`.
    pub fn start(self: &Arc<Self>, scope: &ScopeHandle, listener: TcpListener, handlers: Handlers) {
        tracing::info!(addr = %self.addr, cluster = %self.setup.cluster, routes = self.setup.routes.len(), "route listener ready");
        scope.spawn(self.clone().accept_loop(listener, scope.clone(), handlers.clone()));
        for t in &self.setup.routes {
            self.ensure_dialler(scope, &handlers, t.addr.clone(), false);
        }
    }

    /// Queue a Raft message on the live connection to `env.to`; dropped (and counted)
    /// when there is none, and subject to the Raft row of the slow-route policy.
    pub fn send(&self, env: &Envelope) {
        let out = {
            let peers = self.peers();
            peers.values().filter(|p| p.node == env.to).filter_map(|p| p.out.as_ref()).max_by_key(|o| o.0).cloned()
        };
        let Some((_, out)) = out else {
            self.stats.raft_unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if crate::fault_point!("raft.send.drop") {
            // Lost before it reached the queue, as when the route went down just now.
            self.stats.raft_unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match encode_raft(env) {
            Some(bytes) => {
                out.push_raft(bytes);
            }
            None => {
                let n = out.drops().count(Class::Raft, DropReason::TooLarge);
                tracing::warn!(to = env.to, dropped = n, "raft message exceeds the route frame limit; dropped");
            }
        }
    }

    /// Every route's drop and publisher-stall counters, by dialled address (the
    /// accessor `/varz`, `/metrics` and `/routez` share).
    pub fn route_drops(&self) -> Vec<RouteDropStat> {
        let up: BTreeSet<String> =
            self.peers().iter().filter(|(_, p)| p.out.is_some()).map(|(k, _)| k.clone()).collect();
        let drops = self.drops.lock().unwrap_or_else(|e| e.into_inner());
        drops
            .iter()
            .map(|(addr, e)| RouteDropStat {
                addr: addr.clone(),
                server_id: e.server_id.clone(),
                node: e.node,
                connected: up.contains(&e.server_id),
                drops: e.drops.counts(),
            })
            .collect()
    }

    /// The drop counters of the route at `addr`, now answered by `hello`'s server.
    fn drops_for(&self, addr: &str, hello: &Hello) -> Arc<RouteDrops> {
        let mut drops = self.drops.lock().unwrap_or_else(|e| e.into_inner());
        let e = drops.entry(addr.to_owned()).or_insert_with(|| DropsEntry {
            drops: Arc::default(),
            server_id: String::new(),
            node: 0,
        });
        e.server_id = hello.server_id.clone();
        e.node = hello.node;
        e.drops.clone()
    }

    /// How long a publisher waits at most for a pressured route queue to drain (see
    /// [`RouteConfig::max_publisher_stall`]).
    pub fn max_publisher_stall(&self) -> Duration {
        self.cfg().max_publisher_stall
    }

    /// Node ids of the peers we have a live connection to.
    pub fn connected_nodes(&self) -> Vec<NodeId> {
        self.peers().values().filter(|p| p.out.is_some()).map(|p| p.node).collect()
    }

    /// Close every outbound queue (shutdown); their connections end.
    pub fn close_all(&self) {
        for out in self.peers().values().filter_map(|p| p.out.as_ref().map(|o| o.1.clone())) {
            out.close();
        }
    }

    fn peers(&self) -> MutexGuard<'_, BTreeMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Host we advertise: the listen IP unless it is unspecified.
    fn route_host(&self) -> Option<String> {
        (!self.addr.ip().is_unspecified()).then(|| self.addr.ip().to_string())
    }

    fn own_addr(&self) -> String {
        self.addr.to_string()
    }

    fn hello(&self, accepted: bool, known: Vec<String>) -> Hello {
        Hello {
            server_id: self.setup.server_id.clone(),
            cluster: self.setup.cluster.clone(),
            route_host: self.route_host(),
            route_port: self.addr.port(),
            node: self.setup.node,
            accepted,
            known,
        }
    }

    fn conn_id(&self) -> RouteConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn cfg(&self) -> &RouteConfig {
        &self.setup.cfg
    }

    fn idle_timeout(&self) -> Duration {
        self.cfg().ping_interval * 3
    }

    /// The stream a route connection runs on: the socket, through the wrap if any.
    fn link(&self, stream: TcpStream) -> LinkStream {
        let _ = stream.set_nodelay(true);
        match self.wrap.get() {
            Some(w) => w(stream),
            None => Box::new(stream),
        }
    }

    /// Register `conn` as `server_id`'s inbound connection; false if it already has one.
    fn in_open(&self, h: &Hello, conn: RouteConnId, addr: &str) -> bool {
        let mut peers = self.peers();
        let p = peers.entry(h.server_id.clone()).or_default();
        if p.inbound.is_some() {
            return false;
        }
        p.inbound = Some(conn);
        p.node = h.node;
        p.addr = Some(addr.to_owned());
        true
    }

    fn in_close(&self, server_id: &str, conn: RouteConnId) {
        let mut peers = self.peers();
        if let Some(p) = peers.get_mut(server_id)
            && p.inbound == Some(conn)
        {
            p.inbound = None;
            if p.out.is_none() {
                peers.remove(server_id);
            }
        }
    }

    /// Register `out` as our connection to `server_id`; false if a live one exists.
    fn out_open(&self, h: &Hello, conn: RouteConnId, out: &Arc<RouteOut>) -> bool {
        let mut peers = self.peers();
        let p = peers.entry(h.server_id.clone()).or_default();
        if p.out.as_ref().is_some_and(|(_, o)| !o.is_closed()) {
            return false;
        }
        p.node = h.node;
        p.out = Some((conn, out.clone()));
        true
    }

    fn out_close(&self, server_id: &str, conn: RouteConnId) {
        let mut peers = self.peers();
        if let Some(p) = peers.get_mut(server_id)
            && p.out.as_ref().is_some_and(|(c, _)| *c == conn)
        {
            p.out = None;
            if p.inbound.is_none() {
                peers.remove(server_id);
            }
        }
    }

    /// Route addresses of the peers connected to us, for gossip.
    fn known_routes(&self) -> Vec<String> {
        self.peers().values().filter(|p| p.inbound.is_some()).filter_map(|p| p.addr.clone()).collect()
    }

    /// Start a dialler for `addr` unless one exists (or `addr` is known to be us).
    fn ensure_dialler(self: &Arc<Self>, scope: &ScopeHandle, h: &Handlers, addr: String, implicit: bool) {
        if addr == self.own_addr() || !self.dialling.lock().unwrap_or_else(|e| e.into_inner()).insert(addr.clone()) {
            return;
        }
        scope.spawn(self.clone().dial_loop(scope.clone(), h.clone(), addr, implicit));
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, scope: ScopeHandle, h: Handlers) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let (me, s2, h2) = (self.clone(), scope.clone(), h.clone());
                    scope.spawn(async move {
                        if let Err(e) = me.inbound(&h2, stream, peer, &s2).await {
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

    /// Serve a connection a peer dialled: handshake, then hand its frames on.
    async fn inbound(
        self: &Arc<Self>,
        h: &Handlers,
        stream: TcpStream,
        peer: SocketAddr,
        scope: &ScopeHandle,
    ) -> io::Result<()> {
        let mut stream = self.secure_inbound(stream).await?;
        let mut reader = FrameReader::new();
        let RouteFrame::Hello(hello) = read_frame(&mut stream, &mut reader, self.idle_timeout()).await? else {
            return Err(invalid("route did not start with Hello"));
        };
        let addr =
            format!("{}:{}", hello.route_host.clone().unwrap_or_else(|| peer.ip().to_string()), hello.route_port);
        let conn = self.conn_id();
        let accepted = if hello.server_id == self.setup.server_id {
            false
        } else if hello.cluster != self.setup.cluster {
            tracing::warn!(%peer, theirs = %hello.cluster, ours = %self.setup.cluster, "route from another cluster refused");
            false
        } else {
            self.in_open(&hello, conn, &addr)
        };
        if accepted && let Some(ps) = &h.pubsub {
            ps.in_open(&hello.server_id, conn, &addr);
        }
        let known = if accepted { self.known_routes() } else { Vec::new() };
        // Bounded like every other route write: a dialler that stopped reading must not
        // hold the slot registered above.
        let answered = self.write(&mut stream, &encode_hello(&self.hello(accepted, known))).await;
        if !accepted {
            return answered;
        }
        // From here on every exit goes through the release below: the slot is the
        // peer's one inbound connection, and a registration left behind when the answer
        // fails (the dialler gave up on its handshake and closed, say) would refuse all
        // of that peer's later connections for as long as both servers live.
        let r = match answered {
            Ok(()) => {
                tracing::info!(peer = %addr, server_id = %hello.server_id, node = hello.node, "inbound route up");
                self.ensure_dialler(scope, h, addr.clone(), true);
                self.receive(h, &mut stream, &hello, conn, &mut reader).await
            }
            Err(e) => Err(e),
        };
        if let Some(ps) = &h.pubsub {
            ps.in_close(&hello.server_id, conn);
        }
        self.in_close(&hello.server_id, conn);
        tracing::info!(peer = %addr, "inbound route down");
        r
    }

    /// Read the peer's frames and hand them on; answer its pings. The pongs go out from
    /// a writer beside the reader, never from the read loop (as nats-server's read loop
    /// queues its PONG for the write loop): a pong write that makes no progress must not
    /// hold off the peer's messages and interest behind it. Pings that arrive while a pong
    /// is being written are answered by one pong (the dialler counts any pong as the
    /// answer to every ping it has out), so the writer holds at most one pending pong.
    /// The connection ends when either side ends: the read fails, or a pong write fails
    /// or stalls for `stall_timeout`.
    async fn receive(
        &self,
        h: &Handlers,
        stream: &mut LinkStream,
        hello: &Hello,
        conn: RouteConnId,
        reader: &mut FrameReader,
    ) -> io::Result<()> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let ping = Notify::new();
        let pongs = async {
            loop {
                ping.notified().await;
                self.write(&mut wr, &self.pong).await?;
            }
        };
        let frames = async {
            let idle = self.idle_timeout();
            // One deadline for the connection's life, moved before each read from the
            // socket: the peer must send something every `idle`; one timer per silence
            // period instead of one per frame (see `crate::timer`).
            let mut silent = Deadline::after(idle);
            // Pub/sub frames of the current read, handed to the broker together (in
            // order, and before any other frame behind them is acted on).
            let mut pubsub: Vec<RouteFrame> = Vec::new();
            let apply = |pubsub: &mut Vec<RouteFrame>| match &h.pubsub {
                Some(ps) => ps.frames(&hello.server_id, conn, pubsub).map_err(invalid),
                None => {
                    pubsub.clear();
                    Ok(())
                }
            };
            loop {
                // Every whole frame already read first, then one read for more: one
                // system call brings many small frames.
                let Some(f) = reader.take::<RouteFrame>()? else {
                    apply(&mut pubsub)?;
                    silent.reset(Instant::now() + idle);
                    fill_by(&mut rd, reader, &mut silent).await?;
                    continue;
                };
                match f {
                    f @ (RouteFrame::Sub { .. }
                    | RouteFrame::Unsub { .. }
                    | RouteFrame::Msg { .. }
                    | RouteFrame::ClientUrl { .. }) => pubsub.push(f),
                    RouteFrame::Raft(env) => {
                        apply(&mut pubsub)?;
                        if env.from != hello.node || hello.node == 0 {
                            return Err(invalid(format!(
                                "raft message from {} on the route of node {}",
                                env.from, hello.node
                            )));
                        }
                        // A full inbox pushes back on this connection instead of growing.
                        if let Some(inbox) = &h.raft
                            && inbox.send(env).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                    // The dialler counts unanswered pings (as nats-server's routes do);
                    // a reply that cannot be written in time ends the connection.
                    RouteFrame::Ping => ping.notify_one(),
                    RouteFrame::Hello(_) | RouteFrame::Pong => {
                        return Err(invalid("unexpected frame on an inbound route"));
                    }
                }
            }
        };
        // Dropping the other half at the end is safe: a half-read frame or a half-written
        // pong dies with the connection.
        tokio::select! {
            biased;
            r = pongs => r,
            r = frames => r,
        }
    }

    async fn dial_loop(self: Arc<Self>, scope: ScopeHandle, h: Handlers, addr: String, implicit: bool) {
        let mut backoff = self.cfg().min_backoff;
        loop {
            match self.dial_once(&scope, &h, &addr).await {
                Attempt::Myself => {
                    tracing::debug!(%addr, "route points at this server; not dialling it");
                    // Stays in `dialling`, so that gossip does not start it again.
                    return;
                }
                Attempt::Ended => backoff = self.cfg().min_backoff,
                Attempt::Refused => backoff = self.cfg().max_backoff,
                Attempt::Failed => {}
            }
            if implicit {
                break;
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(self.cfg().max_backoff);
        }
        self.dialling.lock().unwrap_or_else(|e| e.into_inner()).remove(&addr);
    }

    async fn dial_once(self: &Arc<Self>, scope: &ScopeHandle, h: &Handlers, addr: &str) -> Attempt {
        let handshake = async {
            let mut stream = self.secure_outbound(connect(addr).await?, addr).await?;
            frame::write_raw(&mut stream, &encode_hello(&self.hello(true, Vec::new()))).await?;
            let mut reader = FrameReader::new();
            match read_frame(&mut stream, &mut reader, self.idle_timeout()).await? {
                RouteFrame::Hello(h) => Ok((stream, h, reader)),
                _ => Err(invalid("route answer was not Hello")),
            }
        };
        let (stream, hello, reader) = match timeout(self.idle_timeout(), handshake).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::debug!(%addr, "route dial failed: {e}");
                return Attempt::Failed;
            }
            Err(_) => return Attempt::Failed,
        };
        if hello.server_id == self.setup.server_id {
            return Attempt::Myself;
        }
        if !hello.accepted {
            return Attempt::Refused;
        }
        for known in hello.known.iter().filter(|k| **k != self.own_addr()) {
            self.ensure_dialler(scope, h, known.clone(), true);
        }
        let peer = hello.node;
        let events = self.events.get().map(|sink| DropEvents {
            sink: sink.clone(),
            me: NodeNo::try_from(self.setup.node).unwrap_or(0),
            peer: NodeNo::try_from(peer).unwrap_or(0),
        });
        let out = Arc::new(
            RouteOut::new(self.account.clone(), self.cfg().max_pending_bytes, self.drops_for(addr, &hello))
                .with_events(events),
        );
        let conn = self.conn_id();
        if !self.out_open(&hello, conn, &out) {
            return Attempt::Refused;
        }
        if let Some(ps) = &h.pubsub {
            ps.out_open(&hello.server_id, conn, &out);
        }
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%addr, server_id = %hello.server_id, node = peer, "route up");
        if let Err(e) = self.pump(stream, reader, &out).await {
            tracing::info!(%addr, "route down: {e}");
            if let Some(sink) = self.events.get() {
                let me = NodeNo::try_from(self.setup.node).unwrap_or(0);
                sink.emit(me, EventKind::Note { text: format!("route to n{peer} down: {e}") });
            }
        }
        if let Some(ps) = &h.pubsub {
            ps.out_close(&hello.server_id, conn);
        }
        self.out_close(&hello.server_id, conn);
        out.close();
        Attempt::Ended
    }

    /// Write `out`'s frames to the peer, with keepalives, until something ends the
    /// connection: the queue closing, the peer closing or erroring, a write making no
    /// progress for `stall_timeout`, or more than `max_pings_out` pings unanswered when
    /// the next one is due (nats-server's "Stale Connection"). A cut or dead link is
    /// noticed only this way, as on real sockets.
    async fn pump(&self, stream: LinkStream, mut inbox: FrameReader, out: &RouteOut) -> io::Result<()> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let every = self.cfg().ping_interval;
        let max_out = self.cfg().max_pings_out;
        // After a slow write the ticks it held up must not fire back to back: a burst
        // would count pings as unanswered before the peer had a chance to answer them.
        let mut ticker = Ticker::starting_at(Instant::now() + every, every, Missed::Skip);
        let mut pings_out: u32 = 0;
        // What the peer sends back (only pongs) is read with `FrameReader::fill`, which
        // is cancel-safe under `select!` (a whole-frame read is not).
        loop {
            // `biased` keeps the simulation deterministic (an unbiased select draws from
            // tokio's thread-local RNG); the rarely ready branches come first so that a
            // busy queue cannot starve them.
            tokio::select! {
                biased;
                _ = out.wait_closed() => return Err(io::Error::other("route queue closed")),
                r = inbox.fill(&mut rd) => {
                    match r {
                        Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the route")),
                        Ok(_) => {
                            while let Some(f) = inbox.take::<RouteFrame>()? {
                                match f {
                                    RouteFrame::Pong => pings_out = 0,
                                    _ => return Err(invalid("peer sent a frame other than Pong on a send-only route")),
                                }
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ = ticker.tick() => {
                    if pings_out >= max_out {
                        self.stats.stale.fetch_add(1, Ordering::Relaxed);
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("stale connection: {pings_out} pings unanswered"),
                        ));
                    }
                    pings_out += 1;
                    out.push_control(self.ping.clone());
                }
                b = out.next_batch(WRITE_BATCH) => {
                    let Some(batch) = b else { return Err(io::Error::other("route queue closed")) };
                    if let Err(e) = self.write_batch(&mut wr, &batch).await {
                        // What was being written is lost with the connection: count it.
                        for f in batch.iter().filter(|f| f.class != Class::Control) {
                            out.drops().count(f.class, DropReason::Closed);
                        }
                        return Err(e);
                    }
                    self.stats.frames_sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// Write `batch` and flush once. Only a write that makes *no progress* for
    /// `stall_timeout` ends the connection (the deadline moves on with every byte the
    /// peer takes), as nats-server keeps a route whose writes are slow but moving (its
    /// `write_timeout: retry` for routes): a peer paused for a while (a GC pause, a
    /// stopped process, a busy disk) keeps its route and its subscribers' interest, and
    /// the bounded queue with the publisher stall ("Publishers first") absorbs the gap.
    async fn write_batch<W: AsyncWrite + Unpin>(&self, wr: &mut W, batch: &[QueuedFrame]) -> io::Result<()> {
        let r = frame::write_progressing(wr, batch, self.cfg().stall_timeout).await;
        if r.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::TimedOut) {
            self.stats.stalled.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    async fn write<W: AsyncWrite + Unpin>(&self, wr: &mut W, bytes: &[u8]) -> io::Result<()> {
        if crate::fault_point!("route.write.fail") {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        if crate::fault_point!("route.write.stall") {
            // A write that makes no progress for the stall timeout ends the way a real
            // stall does; if the simulator heals its faults first, the write goes on.
            let until = Instant::now() + self.cfg().stall_timeout;
            while crate::fault::active() && Instant::now() < until {
                sleep(STALL_POLL.min(until - Instant::now())).await;
            }
            if Instant::now() >= until {
                self.stats.stalled.fetch_add(1, Ordering::Relaxed);
                return Err(io::Error::new(io::ErrorKind::TimedOut, "route write stalled"));
            }
        }
        match timeout(self.cfg().stall_timeout, frame::write_raw(wr, bytes)).await {
            Ok(r) => r,
            Err(_) => {
                self.stats.stalled.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::new(io::ErrorKind::TimedOut, "route write stalled"))
            }
        }
    }
}

/// How often a stall injected by the `route.write.stall` fault point checks whether the
/// simulator healed its faults.
const STALL_POLL: Duration = Duration::from_millis(10);

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

/// Read one frame within `limit` (the handshake); end of stream and silence are errors.
/// Bytes read past it stay in `reader` for the connection's next frames.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    reader: &mut FrameReader,
    limit: Duration,
) -> io::Result<RouteFrame> {
    let mut deadline = Deadline::after(limit);
    loop {
        if let Some(f) = reader.take()? {
            return Ok(f);
        }
        fill_by(rd, reader, &mut deadline).await?;
    }
}

/// Read more into `reader` before `deadline`; end of stream and silence are errors.
async fn fill_by<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    reader: &mut FrameReader,
    deadline: &mut Deadline,
) -> io::Result<()> {
    match within(deadline, reader.fill(rd)).await {
        Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "route closed")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "route silent")),
    }
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

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    /// A socket whose writes all fail, as when the dialler closed before our answer.
    struct WritesFail(TcpStream);

    impl AsyncRead for WritesFail {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for WritesFail {
        fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, _buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn hello_from(server_id: &str) -> Vec<u8> {
        encode_hello(&Hello {
            server_id: server_id.into(),
            cluster: "c".into(),
            route_host: Some("127.0.0.1".into()),
            // Nothing listens on port 1: the dial-back an accepted route starts fails at once.
            route_port: 1,
            node: 2,
            accepted: true,
            known: Vec::new(),
        })
    }

    /// The raft-swarm seeds 411 and 957: a peer's dial reached a paused server, the peer
    /// gave up on the handshake and closed, and the resumed server's answer then failed.
    /// The server must release the inbound slot it registered for that peer; before the
    /// fix it kept it, refused every later connection of the peer, and so heard nothing
    /// from it (nor from the Raft leader behind it) for the rest of the run.
    #[tokio::test]
    async fn failed_hello_answer_releases_the_inbound_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let setup = RouteSetup {
            server_id: "A".into(),
            cluster: "c".into(),
            node: 1,
            routes: Vec::new(),
            cfg: RouteConfig::default(),
        };
        let routes = Arc::new(Routes::new(setup, addr, Arc::new(Account::new("route.outbound", 1 << 20))));
        // Only the first accepted connection has a broken send side.
        let wrapped = Arc::new(AtomicUsize::new(0));
        routes.set_link_wrap(Arc::new(move |s: TcpStream| -> LinkStream {
            if wrapped.fetch_add(1, Ordering::Relaxed) == 0 { Box::new(WritesFail(s)) } else { Box::new(s) }
        }));
        let scope = crate::server::scope::Scope::new();
        routes.start(&scope.handle(), listener, Handlers::default());

        let mut first = TcpStream::connect(addr).await.unwrap();
        frame::write_raw(&mut first, &hello_from("B")).await.unwrap();
        // The server ends the connection once its answer failed (after releasing the slot).
        let mut buf = Vec::new();
        assert!(frame::read::<RouteFrame, _>(&mut first, &mut buf).await.map_or(true, |f| f.is_none()));

        let mut second = TcpStream::connect(addr).await.unwrap();
        frame::write_raw(&mut second, &hello_from("B")).await.unwrap();
        let answer = frame::read::<RouteFrame, _>(&mut second, &mut buf).await.unwrap();
        let Some(RouteFrame::Hello(h)) = answer else { panic!("expected a Hello answer, got {answer:?}") };
        assert!(h.accepted, "the peer's new connection was refused: its failed one still holds the slot");
    }
}
