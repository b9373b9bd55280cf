//! Routes: the node-to-node links that carry Raft traffic.
//!
//! Each node dials every peer once and sends on that connection only; it receives
//! on the connections peers dial to it. Frames are [`RouteFrame`]s (see `frame`).
//!
//! **Bounded outbound.** Frames for a peer wait in a [`RouteQueue`] whose bytes are
//! charged to the node's `route.outbound` ledger account and capped per route.
//! **Slow-route policy:** when a frame does not fit, the *oldest* queued frames are
//! dropped to make room (Raft tolerates loss, and the newest heartbeat or append is
//! worth more than a stale one); if the frame alone exceeds the cap it is dropped.
//! If the queue has stayed non-empty without any write completing for
//! `stall_timeout`, the connection is treated as dead: it is closed, the queue is
//! cleared (its memory released) and the peer is redialled. Nothing grows without
//! bound, and drops are counted in [`RouteStats`].

use super::frame;
use super::link::{Gate, LinkShaper};
use super::scope::ScopeHandle;
use crate::mem::{Account, Charge};
use crate::raft::{Envelope, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// What travels on a route.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RouteFrame {
    /// First frame on a connection: who is dialling.
    Hello {
        /// The dialling node.
        from: NodeId,
    },
    /// A Raft message.
    Raft(Envelope),
}

/// The borrowed twin of [`RouteFrame`] (same variants, same encoding) so that sending
/// does not clone a message's entries just to serialise them.
#[derive(Serialize)]
enum RouteFrameRef<'a> {
    #[allow(dead_code, reason = "exists only to keep the variant order identical to RouteFrame")]
    Hello {
        from: NodeId,
    },
    Raft(&'a Envelope),
}

/// Route tuning.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Most bytes queued for one peer.
    pub max_pending_bytes: u64,
    /// A queue that makes no progress for this long closes its connection.
    pub stall_timeout: Duration,
    /// First redial delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest redial delay.
    pub max_backoff: Duration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            max_pending_bytes: 4 * 1024 * 1024,
            stall_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Counters for one route.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Frames written to the socket.
    pub sent: AtomicU64,
    /// Frames dropped by the slow-route policy (queue full or stalled).
    pub dropped_full: AtomicU64,
    /// Frames dropped because the link was cut.
    pub dropped_cut: AtomicU64,
    /// Connections established.
    pub connects: AtomicU64,
}

struct Queued {
    bytes: Vec<u8>,
    not_before: Instant,
    _charge: Charge,
}

/// The bounded outbound queue of one route.
pub struct RouteQueue {
    inner: Mutex<VecDeque<Queued>>,
    queued_bytes: AtomicU64,
    notify: Notify,
    /// When a write last completed (or the connection last started).
    last_progress: Mutex<Instant>,
    /// Wakes a writer stuck in a socket write once the stall rule fires.
    abort: Notify,
    stall_timeout: Duration,
    account: Arc<Account>,
    cap: u64,
    /// Counters.
    pub stats: RouteStats,
}

impl RouteQueue {
    fn new(account: Arc<Account>, cap: u64, stall_timeout: Duration) -> Self {
        RouteQueue {
            inner: Mutex::new(VecDeque::new()),
            queued_bytes: AtomicU64::new(0),
            notify: Notify::new(),
            last_progress: Mutex::new(Instant::now()),
            abort: Notify::new(),
            stall_timeout,
            account,
            cap,
            stats: RouteStats::default(),
        }
    }

    /// Queue `bytes` to be written no earlier than `not_before`, applying the slow-route policy.
    fn push(&self, bytes: Vec<u8>, not_before: Instant) {
        let len = bytes.len() as u64;
        // The stall rule is checked by senders, so a writer blocked in the socket needs no
        // timer of its own (one timer per frame would be costly and mostly cancelled).
        let stalled = Instant::now().saturating_duration_since(*self.last_progress.lock().expect("poisoned"))
            >= self.stall_timeout;
        if stalled && self.queued_bytes() > 0 {
            self.abort.notify_one();
        }
        let mut q = self.inner.lock().expect("route queue poisoned");
        if len > self.cap {
            self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        loop {
            let fits_route = self.queued_bytes.load(Ordering::Relaxed) + len <= self.cap;
            if fits_route && let Some(charge) = Charge::try_new(&self.account, len) {
                self.queued_bytes.fetch_add(len, Ordering::Relaxed);
                q.push_back(Queued { bytes, not_before, _charge: charge });
                break;
            }
            match q.pop_front() {
                Some(old) => {
                    self.queued_bytes.fetch_sub(old.bytes.len() as u64, Ordering::Relaxed);
                    self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    // The node-wide account is full because of other routes: drop this frame.
                    self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        drop(q);
        self.notify.notify_one();
    }

    fn front_deadline(&self) -> Option<Instant> {
        self.inner.lock().expect("route queue poisoned").front().map(|f| f.not_before)
    }

    fn pop(&self) -> Option<Queued> {
        let f = self.inner.lock().expect("route queue poisoned").pop_front()?;
        self.queued_bytes.fetch_sub(f.bytes.len() as u64, Ordering::Relaxed);
        Some(f)
    }

    fn clear(&self) -> usize {
        let mut q = self.inner.lock().expect("route queue poisoned");
        let n = q.len();
        q.clear();
        self.queued_bytes.store(0, Ordering::Relaxed);
        n
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }
}

/// All outbound routes of one node.
pub struct Routes {
    me: NodeId,
    queues: Vec<(NodeId, Arc<RouteQueue>)>,
    shaper: Option<Arc<dyn LinkShaper>>,
}

impl Routes {
    /// Start one dialler per peer (`peers` excludes `me`), in `scope`.
    pub fn start(
        scope: &ScopeHandle,
        me: NodeId,
        peers: &[(NodeId, SocketAddr)],
        cfg: &RouteConfig,
        account: Arc<Account>,
        shaper: Option<Arc<dyn LinkShaper>>,
    ) -> Routes {
        let mut queues = Vec::new();
        for &(peer, addr) in peers {
            let q = Arc::new(RouteQueue::new(account.clone(), cfg.max_pending_bytes, cfg.stall_timeout));
            scope.spawn(dial_loop(me, peer, addr, q.clone(), cfg.clone(), shaper.clone()));
            queues.push((peer, q));
        }
        Routes { me, queues, shaper }
    }

    /// Queue a Raft message for its destination (dropped if the destination is unknown).
    pub fn send(&self, env: &Envelope) {
        let Some((_, q)) = self.queues.iter().find(|(p, _)| *p == env.to) else { return };
        let bytes = match frame::encode(&RouteFrameRef::Raft(env)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(to = env.to, "route frame not encodable: {e}");
                return;
            }
        };
        let delay = self.shaper.as_ref().map(|s| s.delay(self.me, env.to, bytes.len())).unwrap_or_default();
        q.push(bytes, Instant::now() + delay);
    }

    /// The queue for `peer`, for inspection.
    pub fn queue(&self, peer: NodeId) -> Option<&Arc<RouteQueue>> {
        self.queues.iter().find(|(p, _)| *p == peer).map(|(_, q)| q)
    }
}

async fn dial_loop(
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    q: Arc<RouteQueue>,
    cfg: RouteConfig,
    shaper: Option<Arc<dyn LinkShaper>>,
) {
    let mut backoff = cfg.min_backoff;
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
                // Frames that cannot be delivered still age out through the stall rule.
                expire_if_stalled(&q, &cfg);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.max_backoff);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if frame::write(&mut stream, &RouteFrame::Hello { from: me }).await.is_err() {
            tokio::time::sleep(backoff).await;
            continue;
        }
        q.stats.connects.fetch_add(1, Ordering::Relaxed);
        *q.last_progress.lock().expect("poisoned") = Instant::now();
        backoff = cfg.min_backoff;
        if let Err(e) = pump(me, peer, &mut stream, &q, &cfg, shaper.as_deref()).await {
            tracing::debug!(me, peer, "route closed: {e}");
        }
    }
}

/// Drop everything queued if the queue has been stuck for `stall_timeout`.
fn expire_if_stalled(q: &RouteQueue, cfg: &RouteConfig) {
    if let Some(head) = q.front_deadline()
        && Instant::now().saturating_duration_since(head) >= cfg.stall_timeout
    {
        let n = q.clear();
        q.stats.dropped_full.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Write queued frames to `stream` until an error or a stall.
async fn pump(
    me: NodeId,
    peer: NodeId,
    stream: &mut TcpStream,
    q: &RouteQueue,
    cfg: &RouteConfig,
    shaper: Option<&dyn LinkShaper>,
) -> std::io::Result<()> {
    loop {
        let Some(not_before) = q.front_deadline() else {
            q.notify.notified().await;
            continue;
        };
        let now = Instant::now();
        if not_before > now {
            tokio::time::sleep_until(not_before).await;
            continue;
        }
        match shaper.map(|s| s.gate(me, peer)).unwrap_or(Gate::Open) {
            Gate::Open => {}
            Gate::Drop => {
                if q.pop().is_some() {
                    q.stats.dropped_cut.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            Gate::Hold => {
                if now.saturating_duration_since(not_before) >= cfg.stall_timeout {
                    let n = q.clear();
                    q.stats.dropped_full.fetch_add(n as u64, Ordering::Relaxed);
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "route stalled"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        }
        let Some(f) = q.pop() else { continue };
        let pace = shaper.map(|s| s.pace(me, peer, f.bytes.len())).unwrap_or_default();
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        tokio::select! {
            biased;
            r = frame::write_raw(stream, &f.bytes) => {
                r?;
                q.stats.sent.fetch_add(1, Ordering::Relaxed);
                *q.last_progress.lock().expect("poisoned") = Instant::now();
            }
            _ = q.abort.notified() => {
                let n = q.clear();
                q.stats.dropped_full.fetch_add(n as u64, Ordering::Relaxed);
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "route write stalled"));
            }
        }
    }
}

/// Accept peer connections on `listener` and forward their Raft messages to `inbox`.
pub async fn accept_loop(scope: ScopeHandle, listener: TcpListener, inbox: mpsc::Sender<Envelope>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let inbox = inbox.clone();
        scope.spawn(async move {
            let _ = receive(stream, inbox).await;
        });
    }
}

async fn receive(mut stream: TcpStream, inbox: mpsc::Sender<Envelope>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let from = match frame::read::<RouteFrame, _>(&mut stream, &mut buf).await? {
        Some(RouteFrame::Hello { from }) => from,
        _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "route did not start with Hello")),
    };
    while let Some(f) = frame::read::<RouteFrame, _>(&mut stream, &mut buf).await? {
        match f {
            RouteFrame::Raft(env) if env.from == from => {
                // A full inbox pushes back on this connection instead of growing.
                if inbox.send(env).await.is_err() {
                    return Ok(());
                }
            }
            _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected route frame")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(cap: u64, account_limit: u64) -> (Arc<Account>, RouteQueue) {
        let account = Arc::new(Account::new("route.outbound", account_limit));
        let q = RouteQueue::new(account.clone(), cap, Duration::from_secs(5));
        (account, q)
    }

    #[test]
    fn full_queue_drops_oldest_and_stays_within_cap() {
        let (account, q) = queue(100, 1_000);
        let now = Instant::now();
        for i in 0..10u8 {
            q.push(vec![i; 30], now);
        }
        // 3 frames of 30 bytes fit under 100; the 7 oldest were dropped.
        assert_eq!(q.queued_bytes(), 90);
        assert_eq!(account.current(), 90);
        assert_eq!(q.stats.dropped_full.load(Ordering::Relaxed), 7);
        assert_eq!(q.pop().unwrap().bytes[0], 7, "the newest frames survive");
        assert_eq!(account.current(), 60, "popping releases the charge");
    }

    #[test]
    fn oversized_frame_is_dropped_and_node_account_is_respected() {
        let (account, q) = queue(100, 50);
        let now = Instant::now();
        q.push(vec![0; 101], now);
        assert_eq!(q.queued_bytes(), 0);
        q.push(vec![1; 40], now);
        // Fits the route cap but not the node-wide account (40 + 40 > 50): oldest goes.
        q.push(vec![2; 40], now);
        assert_eq!(account.current(), 40);
        assert_eq!(account.peak(), 40);
        assert_eq!(q.stats.dropped_full.load(Ordering::Relaxed), 2);
        assert_eq!(q.clear(), 1);
        assert_eq!(account.current(), 0, "clearing releases everything");
    }
}
