//! The simulated network between cluster nodes: our own in-memory byte pipe under
//! each route connection (and each Raft client connection), with per-link latency,
//! bandwidth and partitions. madsim's TCP only sets the connection up (connect,
//! accept, and one id from each end, see [`ShapedStream`]): [`SimNet::link_wrap`],
//! installed through `weir_core::server::link`, pairs the two ends of each socket and
//! carries the bytes itself. A client machine's links have only a small jitter and no
//! faults, as before.
//!
//! Why not madsim's TCP: every flushed write there is a packet through its network
//! model (a lock, several SipHash map lookups, an unbounded channel, a timer and a
//! stream poll), and it has neither per-link latency nor bandwidth, which an extra
//! task per socket added on top. A pipe write here is one copy into the peer's queue
//! and at most one timer; the reader copies straight out of it.
//!
//! The model, per direction of a connection:
//! - a write is accepted while fewer than [`SEND_BUFFER`] bytes are still on the wire
//!   (written, not yet arrived), else it waits: a slow link backs writes up into the
//!   route stack's bounded queue and, past its write deadline, ends the connection;
//! - each write arrives after the link's latency (base + extra of both ends + a small
//!   seeded jitter, as madsim's per-packet latency) and, under a bandwidth cap, after
//!   the link has sent everything written before it; arrivals never overtake (a byte
//!   stream);
//! - a partition (the harness clogs the link here and in madsim) holds every arrived
//!   byte, and end of stream, until the heal, as TCP retransmission would;
//! - dropping or shutting down one end delivers end of stream to the other after the
//!   bytes before it (a killed node's sockets close this way); writing to an end whose
//!   peer is gone fails with `ConnectionReset`.
//!
//! A paused node simply stops reading. The code under test is told none of this: it
//! sees only a byte stream that goes quiet, slow or errors, and must notice by its own
//! pings and deadlines. Everything runs on the simulation's one thread in a
//! deterministic order, so the same seed gives the same bytes at the same instants.

use crate::node::{self, NodeNo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until};
use weir_core::server::link::{LinkStream, LinkWrap};
use weir_core::timer::{Clock, Deadline};

/// The end of a connection on a machine that is not a cluster node (a client): its
/// links have only the jitter, no base latency, and no fault touches them.
const OUTSIDE: NodeNo = 0;

/// Bytes a [`ShapedStream`] accepts before a write waits (the socket send buffer).
pub const SEND_BUFFER: usize = 256 * 1024;

/// The per-write latency jitter, microseconds (madsim's per-packet latency, which
/// the route bytes paid before they had a pipe of their own).
const JITTER_US: std::ops::RangeInclusive<u64> = 20..=60;

#[derive(Debug)]
struct NetState {
    base_latency: BTreeMap<(NodeNo, NodeNo), Duration>,
    extra_latency: BTreeMap<NodeNo, Duration>,
    bandwidth: BTreeMap<NodeNo, u64>,
    link_free_at: BTreeMap<(NodeNo, NodeNo), Instant>,
    /// Partitioned links `from -> to`.
    clogged: BTreeSet<(NodeNo, NodeNo)>,
    /// Readers holding arrived bytes on a clogged link: woken at every unclog.
    held: Vec<Waker>,
    /// Pipes one end has made and the other has not yet found, by the two ends' ids
    /// (lower first).
    unpaired: BTreeMap<(u64, u64), Weak<Pipe>>,
    /// The id of the next socket end wrapped.
    next_id: u64,
    /// Draws each write's latency jitter.
    rng: ChaCha8Rng,
}

/// The simulated network's latency, bandwidth and partitions, shared by all nodes of
/// a run.
#[derive(Debug)]
pub struct SimNet {
    state: Mutex<NetState>,
}

impl Default for SimNet {
    fn default() -> Self {
        SimNet::new(0)
    }
}

impl SimNet {
    /// A network with no shaping; `seed` drives the latency jitter.
    pub fn new(seed: u64) -> Self {
        SimNet {
            state: Mutex::new(NetState {
                base_latency: BTreeMap::new(),
                extra_latency: BTreeMap::new(),
                bandwidth: BTreeMap::new(),
                link_free_at: BTreeMap::new(),
                clogged: BTreeSet::new(),
                held: Vec::new(),
                unpaired: BTreeMap::new(),
                next_id: 1,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
        }
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

    /// Cut (or restore) the link `from -> to`: arrived bytes wait until it is restored.
    pub fn set_clogged(&self, from: NodeNo, to: NodeNo, clogged: bool) {
        let held = self.with(|s| {
            if clogged {
                s.clogged.insert((from, to));
                Vec::new()
            } else if s.clogged.remove(&(from, to)) {
                std::mem::take(&mut s.held)
            } else {
                Vec::new()
            }
        });
        // Every held reader looks again; those on links still cut wait again.
        for w in held {
            w.wake();
        }
    }

    fn clogged(&self, from: NodeNo, to: NodeNo) -> bool {
        self.with(|s| s.clogged.contains(&(from, to)))
    }

    /// Remove all shaping except base latencies (partitions are healed separately).
    pub fn reset_faults(&self) {
        self.with(|s| {
            s.extra_latency.clear();
            s.bandwidth.clear();
        });
    }

    /// When `bytes` written on `from -> to` at `now` arrive: after the link has sent
    /// what was written before them (under a bandwidth cap), the latency and a jitter;
    /// never before `prev`, the previous write's (time, arrival) on the connection.
    /// Writes of one instant on an uncapped link arrive together, as one segment.
    fn arrival(
        &self,
        from: NodeNo,
        to: NodeNo,
        bytes: usize,
        now: Instant,
        prev: Option<(Instant, Instant)>,
    ) -> Instant {
        self.with(|s| {
            if from == OUTSIDE || to == OUTSIDE {
                if let Some((t, at)) = prev
                    && t == now
                {
                    return at;
                }
                let at = now + Duration::from_micros(s.rng.gen_range(JITTER_US));
                return prev.map_or(at, |p| at.max(p.1));
            }
            let caps = [s.bandwidth.get(&from), s.bandwidth.get(&to)];
            let cap = caps.into_iter().flatten().copied().filter(|&b| b > 0).min();
            let sent = match (cap, prev) {
                (None, Some((t, at))) if t == now => return at,
                (None, _) => now,
                (Some(bw), _) => {
                    let send = Duration::from_nanos((bytes as u64).saturating_mul(1_000_000_000) / bw);
                    let free = s.link_free_at.get(&(from, to)).copied().unwrap_or(now).max(now);
                    let done = free + send;
                    s.link_free_at.insert((from, to), done);
                    done
                }
            };
            let extra = |n| s.extra_latency.get(&n).copied().unwrap_or_default();
            let delay = s.base_latency.get(&(from, to)).copied().unwrap_or_default() + extra(from) + extra(to);
            let jitter = Duration::from_micros(s.rng.gen_range(JITTER_US));
            let at = sent + delay + jitter;
            prev.map_or(at, |p| at.max(p.1))
        })
    }

    /// A fresh socket end id.
    fn next_id(&self) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            s.next_id - 1
        })
    }

    /// The pipe between the socket ends `ids` (lower first): the one the other end
    /// made, or a new one.
    fn pair(&self, ids: (u64, u64)) -> Arc<Pipe> {
        self.with(|s| {
            s.unpaired.retain(|_, p| p.strong_count() > 0);
            if let Some(p) = s.unpaired.remove(&ids).and_then(|w| w.upgrade()) {
                return p;
            }
            let p = Arc::new(Pipe::default());
            s.unpaired.insert(ids, Arc::downgrade(&p));
            p
        })
    }

    /// The wrap a node's route stack runs its sockets through: a socket between two
    /// cluster nodes becomes a [`ShapedStream`]; any other is left as it is.
    pub fn link_wrap(self: &Arc<Self>) -> LinkWrap {
        let net = self.clone();
        Arc::new(move |stream: TcpStream| -> LinkStream {
            // A client machine's end is `OUTSIDE`; both ends of a connection must be
            // wrapped alike (each sends its id), which the worlds arrange.
            let end = |a: std::net::SocketAddr| node::from_ip(a.ip()).unwrap_or(OUTSIDE);
            match stream.local_addr().ok().zip(stream.peer_addr().ok()) {
                Some((l, p)) if end(l) != end(p) => Box::new(ShapedStream::new(stream, &net, end(l), end(p))),
                _ => Box::new(stream),
            }
        })
    }
}

/// One direction of a pipe.
#[derive(Default)]
struct Dir {
    /// Written bytes with their arrival times (non-decreasing), arrived or not, and
    /// not yet read.
    chunks: VecDeque<(Instant, Vec<u8>)>,
    /// How much of the front chunk was read.
    read: usize,
    /// The last write's time and arrival (the next may not arrive before it).
    last: Option<(Instant, Instant)>,
    /// The writing end closed: end of stream arrives at this time, after the bytes.
    fin_at: Option<Instant>,
    /// The reading end is gone: writes fail.
    reader_gone: bool,
    /// The reader waiting for bytes.
    reader: Option<Waker>,
    /// The timer that wakes the reader (see [`Alarm`]) and the instant it is set for.
    alarm: Option<(Pin<Box<Sleep>>, Option<Instant>)>,
}

impl Dir {
    /// Make sure the reader is woken by `at` (one timer per instant, whoever asks).
    fn arm(&mut self, at: Instant, now: Instant, alarm: &Waker) {
        let (sleep, set) = self.alarm.get_or_insert_with(|| (Box::pin(sleep_until(at)), None));
        if let Some(t) = *set
            && t > now
            && t <= at
        {
            return;
        }
        sleep.as_mut().reset(at);
        if sleep.as_mut().poll(&mut Context::from_waker(alarm)).is_ready() {
            // Already due by the runtime's clock: wake the reader now (not through the
            // alarm, which would take this direction's lock again).
            *set = None;
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        } else {
            *set = Some(at);
        }
    }
}

/// Both directions of one connection; side `s` writes `dirs[s]` and reads `dirs[1 - s]`.
#[derive(Default)]
struct Pipe {
    dirs: [Mutex<Dir>; 2],
}

impl Pipe {
    fn dir(&self, i: usize) -> MutexGuard<'_, Dir> {
        self.dirs[i].lock().expect("pipe poisoned")
    }
}

/// The waker a direction's timer holds: it wakes whichever task reads the direction
/// when the timer fires (the reader may change; the registration need not).
struct Alarm {
    pipe: Weak<Pipe>,
    dir: usize,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(pipe) = self.pipe.upgrade() else { return };
        let w = {
            let mut d = pipe.dir(self.dir);
            if let Some((_, set)) = &mut d.alarm {
                *set = None;
            }
            d.reader.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// The pipe end a [`ShapedStream`] uses once it knows its peer.
struct End {
    pipe: Arc<Pipe>,
    /// The direction this end writes (it reads the other).
    side: usize,
    /// Wakes the reader of the direction this end writes.
    peer_alarm: Waker,
    /// Wakes this end's reader.
    own_alarm: Waker,
}

/// A route socket between two simulated nodes, carried by a [`Pipe`] shaped by the
/// [`SimNet`] (see the module doc).
///
/// Pairing: a socket's address pair does not name a connection (madsim hands out
/// ports again as soon as they are free, and a queued connection can be accepted
/// after its dialler gave up and dialled again from the same port), so each end
/// sends a fresh id over madsim's socket when it is wrapped; the first end to read
/// the other's id makes the pipe, the second finds it. Until then reads and writes
/// wait, as before a TCP handshake completes.
pub struct ShapedStream {
    end: Option<End>,
    net: Arc<SimNet>,
    from: NodeNo,
    to: NodeNo,
    /// This end's id and the peer's, as far as read.
    mine: u64,
    theirs: [u8; 8],
    theirs_len: usize,
    /// Tasks waiting for the pipe besides the one madsim's socket will wake.
    waiting: Vec<Waker>,
    /// Shut down before the pipe was found: close it once found.
    shut: bool,
    /// Writes not yet arrived: (arrival, bytes), and their total (the send buffer).
    on_wire: VecDeque<(Instant, usize)>,
    on_wire_bytes: usize,
    /// When a full send buffer has room again.
    room: Option<Deadline>,
    /// The madsim socket: carries the ids, then stays open for the connection's life.
    socket: TcpStream,
    /// Read on every poll (cheaper than `Instant::now()`, see [`Clock`]).
    clock: Clock,
}

impl ShapedStream {
    /// Shape `socket`, the `from -> to` connection: send this end's id on it (madsim's
    /// socket accepts a write at once).
    fn new(mut socket: TcpStream, net: &Arc<SimNet>, from: NodeNo, to: NodeNo) -> ShapedStream {
        let mine = net.next_id();
        let mut cx = Context::from_waker(Waker::noop());
        // A socket that fails here shows it when the peer's id is read.
        let _ = Pin::new(&mut socket).poll_write(&mut cx, &mine.to_le_bytes());
        let _ = Pin::new(&mut socket).poll_flush(&mut cx);
        ShapedStream {
            end: None,
            net: net.clone(),
            from,
            to,
            mine,
            theirs: [0; 8],
            theirs_len: 0,
            waiting: Vec::new(),
            shut: false,
            on_wire: VecDeque::new(),
            on_wire_bytes: 0,
            room: None,
            socket,
            clock: Clock::current(),
        }
    }

    /// The pipe end, once the peer's id has arrived; `UnexpectedEof` if the peer
    /// closed before sending it.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.end.is_none() {
            let mut rb = ReadBuf::new(&mut self.theirs[self.theirs_len..]);
            match Pin::new(&mut self.socket).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    if !self.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                        self.waiting.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed")));
                }
                Poll::Ready(Ok(())) => self.theirs_len += rb.filled().len(),
            }
            if self.theirs_len == self.theirs.len() {
                let theirs = u64::from_le_bytes(self.theirs);
                let (ids, side) = if self.mine < theirs { ((self.mine, theirs), 0) } else { ((theirs, self.mine), 1) };
                let pipe = self.net.pair(ids);
                let alarm = |dir| Waker::from(Arc::new(Alarm { pipe: Arc::downgrade(&pipe), dir }));
                self.end = Some(End { peer_alarm: alarm(side), own_alarm: alarm(1 - side), pipe, side });
                for w in self.waiting.drain(..) {
                    w.wake();
                }
                if self.shut {
                    self.finish();
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Close the direction this end writes: end of stream after the bytes written.
    fn finish(&mut self) {
        let Some(end) = &self.end else {
            self.shut = true;
            return;
        };
        let now = self.clock.now();
        let mut d = end.pipe.dir(end.side);
        if d.fin_at.is_none() {
            let at = self.net.arrival(self.from, self.to, 0, now, d.last);
            d.fin_at = Some(at);
            if d.reader.is_some() && d.chunks.is_empty() {
                d.arm(at, now, &end.peer_alarm);
            }
        }
    }
}

impl AsyncRead for ShapedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (from, to, net) = (this.from, this.to, this.net.clone());
        let end = match this.poll_end(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => this.end.as_ref().expect("paired"),
        };
        let now = this.clock.now();
        let mut d = end.pipe.dir(1 - end.side);
        let due = d.chunks.front().map(|c| c.0).or(d.fin_at);
        let Some(due) = due else {
            d.reader = Some(cx.waker().clone());
            return Poll::Pending;
        };
        if due > now {
            d.reader = Some(cx.waker().clone());
            d.arm(due, now, &end.own_alarm);
            return Poll::Pending;
        }
        if net.clogged(to, from) {
            drop(d);
            net.with(|s| s.held.push(cx.waker().clone()));
            return Poll::Pending;
        }
        // Everything that has arrived, as much as fits (an empty read is end of stream).
        while buf.remaining() > 0 {
            let read = d.read;
            let Some((at, chunk)) = d.chunks.front() else { break };
            if *at > now {
                break;
            }
            let n = (chunk.len() - read).min(buf.remaining());
            buf.put_slice(&chunk[read..read + n]);
            if read + n == chunk.len() {
                d.chunks.pop_front();
                d.read = 0;
            } else {
                d.read = read + n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ShapedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut now = this.clock.now();
        loop {
            while let Some(&(at, n)) = this.on_wire.front()
                && at <= now
            {
                this.on_wire.pop_front();
                this.on_wire_bytes -= n;
            }
            let Some(&(at, _)) = this.on_wire.front().filter(|_| this.on_wire_bytes >= SEND_BUFFER) else { break };
            // The send buffer is full: wait for its oldest bytes to arrive.
            let room = this.room.get_or_insert_with(|| Deadline::at(at));
            room.reset(at);
            if room.poll_expired(cx).is_pending() {
                return Poll::Pending;
            }
            now = this.clock.now();
        }
        let (from, to, net) = (this.from, this.to, this.net.clone());
        let end = match this.poll_end(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => this.end.as_ref().expect("paired"),
        };
        let mut d = end.pipe.dir(end.side);
        if d.reader_gone {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")));
        }
        if d.fin_at.is_some() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "write after shutdown")));
        }
        let n = buf.len().min(SEND_BUFFER - this.on_wire_bytes);
        let at = net.arrival(from, to, n, now, d.last);
        d.last = Some((now, at));
        let was_empty = d.chunks.is_empty();
        // Bytes on the wire are the simulated network's memory, not the writing node's
        // heap (the counting allocator, `crate::heap`).
        crate::heap::outside(|| match d.chunks.back_mut() {
            // Arriving together: one segment (one allocation, one wakeup).
            Some((t, chunk)) if *t == at => chunk.extend_from_slice(&buf[..n]),
            _ => d.chunks.push_back((at, buf[..n].to_vec())),
        });
        // A reader with nothing queued waits without a timer: give it one. (With bytes
        // queued, it is already armed for the front, and re-arms as it reads.)
        if was_empty && d.reader.is_some() {
            d.arm(at, now, &end.peer_alarm);
        }
        drop(d);
        crate::heap::outside(|| match this.on_wire.back_mut() {
            Some((t, bytes)) if *t == at => *bytes += n,
            _ => this.on_wire.push_back((at, n)),
        });
        this.on_wire_bytes += n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are the socket's, as after a real flush.
        if let Some(end) = &self.end
            && end.pipe.dir(end.side).reader_gone
        {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().finish();
        Poll::Ready(Ok(()))
    }
}

impl Drop for ShapedStream {
    fn drop(&mut self) {
        self.finish();
        let Some(end) = &self.end else { return };
        // Nobody reads the other direction any more: its writer gets a reset.
        let mut d = end.pipe.dir(1 - end.side);
        d.reader_gone = true;
        d.chunks.clear();
    }
}
