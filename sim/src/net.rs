//! The simulated network between cluster nodes. madsim's TCP delivers every byte with
//! a small random latency and can clog links; it has no per-link latency and no
//! bandwidth. Both live here, as a wrap around each route socket
//! ([`SimNet::link_wrap`], installed through `weir_core::server::link`): bytes written
//! to a [`ShapedStream`] sit in a bounded send buffer (the socket's, so a slow link
//! backs writes up into the route stack's bounded queue and, past its write deadline,
//! ends the connection) and leave it after the link's latency, at the link's bandwidth.
//!
//! Partitions are madsim's clogged links (the harness clogs and unclogs them): bytes
//! sent over a clogged link wait, as TCP retransmits would, and arrive after the heal
//! unless the connection ended first. A paused node simply stops reading. The code
//! under test is told none of this: it sees only a byte stream that goes quiet, slow
//! or errors, and must notice by its own pings and deadlines.

use crate::node::{self, NodeNo};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};
use weir_core::server::link::{LinkStream, LinkWrap};

/// Bytes a [`ShapedStream`] accepts before a write waits (the socket send buffer).
pub const SEND_BUFFER: usize = 256 * 1024;

/// Most bytes the link task joins into one socket write (it joins only chunks that
/// are due at the same time).
const COALESCE_MAX: usize = 64 * 1024;

#[derive(Debug, Default)]
struct NetState {
    base_latency: BTreeMap<(NodeNo, NodeNo), Duration>,
    extra_latency: BTreeMap<NodeNo, Duration>,
    bandwidth: BTreeMap<NodeNo, u64>,
    link_free_at: BTreeMap<(NodeNo, NodeNo), Instant>,
}

/// The simulated network's latency and bandwidth, shared by all nodes of a run.
#[derive(Debug, Default)]
pub struct SimNet {
    state: Mutex<NetState>,
}

impl SimNet {
    /// A network with no shaping.
    pub fn new() -> Self {
        SimNet::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut NetState) -> R) -> R {
        f(&mut self.state.lock().expect("sim net poisoned"))
    }

    /// Set the base one-way latency of `from -> to`.
    pub fn set_base_latency(&self, from: NodeNo, to: NodeNo, d: Duration) {
        self.with(|s| s.base_latency.insert((from, to), d));
    }

    /// Extra latency on every link touching `node` (zero restores).
    pub fn set_extra_latency(&self, n: NodeNo, d: Duration) {
        self.with(|s| s.extra_latency.insert(n, d));
    }

    /// Bandwidth cap in bytes/s on links touching `node` (0 removes it).
    pub fn set_bandwidth(&self, n: NodeNo, bytes_per_sec: u64) {
        self.with(|s| s.bandwidth.insert(n, bytes_per_sec));
    }

    /// Remove all shaping except base latencies.
    pub fn reset_faults(&self) {
        self.with(|s| {
            s.extra_latency.clear();
            s.bandwidth.clear();
        });
    }

    /// One-way latency of `from -> to` now.
    fn delay(&self, from: NodeNo, to: NodeNo) -> Duration {
        self.with(|s| {
            let extra = |n| s.extra_latency.get(&n).copied().unwrap_or_default();
            s.base_latency.get(&(from, to)).copied().unwrap_or_default() + extra(from) + extra(to)
        })
    }

    /// How long sending `bytes` occupies `from -> to` from now, waiting for earlier
    /// bytes on the link included (zero without a bandwidth cap).
    fn pace(&self, from: NodeNo, to: NodeNo, bytes: usize) -> Duration {
        let now = Instant::now();
        self.with(|s| {
            let caps = [s.bandwidth.get(&from), s.bandwidth.get(&to)];
            let Some(bw) = caps.into_iter().flatten().copied().filter(|&b| b > 0).min() else {
                return Duration::ZERO;
            };
            let send = Duration::from_nanos((bytes as u64).saturating_mul(1_000_000_000) / bw);
            let free = s.link_free_at.get(&(from, to)).copied().unwrap_or(now).max(now);
            let done = free + send;
            s.link_free_at.insert((from, to), done);
            done - now
        })
    }

    /// The wrap a node's route stack runs its sockets through: a socket between two
    /// cluster nodes becomes a [`ShapedStream`]; any other is left as it is.
    pub fn link_wrap(self: &Arc<Self>) -> LinkWrap {
        let net = self.clone();
        Arc::new(move |stream: TcpStream| -> LinkStream {
            let ends = stream.local_addr().ok().zip(stream.peer_addr().ok());
            match ends.and_then(|(l, p)| node::from_ip(l.ip()).zip(node::from_ip(p.ip()))) {
                Some((from, to)) if from != to => Box::new(ShapedStream::new(stream, net.clone(), from, to)),
                _ => Box::new(stream),
            }
        })
    }
}

/// The send side of one shaped socket, shared by the stream and its link task.
#[derive(Default)]
struct SendQueue {
    /// Written chunks and the time each may leave (its arrival is madsim's business).
    chunks: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes written and not yet handed to the socket.
    bytes: usize,
    /// The stream was dropped or shut down: send what is queued, then close.
    closed: bool,
    /// The socket failed; every later write fails with this kind.
    failed: Option<io::ErrorKind>,
    /// A writer waiting for room.
    writer: Option<Waker>,
}

struct Link {
    q: Mutex<SendQueue>,
    wake: Notify,
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, SendQueue> {
        self.q.lock().expect("link queue poisoned")
    }
}

/// A route socket between two simulated nodes, shaped by the [`SimNet`]: reads pass
/// through; writes go to a bounded send buffer that a task drains into the socket
/// after the link's latency, at its bandwidth.
pub struct ShapedStream {
    rd: ReadHalf<TcpStream>,
    link: Arc<Link>,
    net: Arc<SimNet>,
    from: NodeNo,
    to: NodeNo,
}

impl ShapedStream {
    /// Shape `stream`, the `from -> to` socket; spawns its link task on the current node.
    pub fn new(stream: TcpStream, net: Arc<SimNet>, from: NodeNo, to: NodeNo) -> ShapedStream {
        let (rd, wr) = tokio::io::split(stream);
        let link = Arc::new(Link { q: Mutex::new(SendQueue::default()), wake: Notify::new() });
        // The send buffer and the bytes on the wire are the simulated kernel's and
        // network's memory, not the node's heap.
        tokio::spawn(crate::heap::Outside(drain(link.clone(), wr, net.clone(), from, to)));
        ShapedStream { rd, link, net, from, to }
    }
}

/// The link task: hand each chunk to the socket once its time has come, paced by the
/// bandwidth; ends when the stream is gone and everything is sent, or the socket fails.
async fn drain(link: Arc<Link>, mut wr: WriteHalf<TcpStream>, net: Arc<SimNet>, from: NodeNo, to: NodeNo) {
    loop {
        let head = {
            let q = link.lock();
            match q.chunks.front() {
                Some((at, _)) => Some(*at),
                None if q.closed => break,
                None => None,
            }
        };
        let Some(at) = head else {
            link.wake.notified().await;
            continue;
        };
        sleep_until(at).await;
        let chunk = {
            let mut q = link.lock();
            let Some((_, mut chunk)) = q.chunks.pop_front() else { continue };
            // Chunks whose time has come too leave in the same socket write, as TCP
            // sends queued bytes in one segment: one simulated packet (and one
            // delivery timer) instead of one per route frame.
            let now = Instant::now();
            while chunk.len() < COALESCE_MAX
                && let Some((t, _)) = q.chunks.front()
                && *t <= now
                && let Some((_, more)) = q.chunks.pop_front()
            {
                chunk.extend_from_slice(&more);
            }
            chunk
        };
        let pace = net.pace(from, to, chunk.len());
        if !pace.is_zero() {
            sleep(pace).await;
        }
        let sent = match wr.write_all(&chunk).await {
            Ok(()) => wr.flush().await,
            Err(e) => Err(e),
        };
        let mut q = link.lock();
        q.bytes -= chunk.len();
        if let Err(e) = sent {
            q.failed = Some(e.kind());
            q.chunks.clear();
            q.bytes = 0;
        }
        if let Some(w) = q.writer.take() {
            w.wake();
        }
        if q.failed.is_some() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

impl AsyncRead for ShapedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShapedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let at = Instant::now() + self.net.delay(self.from, self.to);
        let mut q = self.link.lock();
        if let Some(kind) = q.failed {
            return Poll::Ready(Err(io::Error::new(kind, "simulated link failed")));
        }
        if q.closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "write after shutdown")));
        }
        if q.bytes >= SEND_BUFFER {
            q.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(SEND_BUFFER - q.bytes);
        q.bytes += n;
        crate::heap::outside(|| q.chunks.push_back((at, buf[..n].to_vec())));
        drop(q);
        self.link.wake.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Bytes in the send buffer are the socket's, as after a real flush.
        match self.link.lock().failed {
            Some(kind) => Poll::Ready(Err(io::Error::new(kind, "simulated link failed"))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.link.lock().closed = true;
        self.link.wake.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for ShapedStream {
    fn drop(&mut self) {
        if let Ok(mut q) = self.link.q.lock() {
            q.closed = true;
        }
        self.link.wake.notify_one();
    }
}
