//! The route wire format and a route's bounded outbound queue (synchronous parts of
//! clustering; the sockets live in [`super::cluster`]).
//!
//! **Wire format.** A route connection carries length-prefixed bincode frames (see
//! `server::frame`): `len: u32 LE`, then a bincode-2 [`RouteFrame`]. Connections are
//! one-way: the dialling node sends, the accepting node only answers the handshake.
//! Every pair of nodes therefore has two connections, one per direction.
//!
//! 1. Dialler sends [`RouteFrame::Hello`] (server id, cluster name, advertised route
//!    address, sim node number).
//! 2. Acceptor answers with its own `Hello`, with `accepted` false when it refuses the
//!    connection (another live connection from the same server, a different cluster
//!    name, or a connection to itself) and `known` listing the route addresses of the
//!    peers it knows, which the dialler also dials (gossip, so seed-only configs form
//!    a full mesh).
//! 3. Dialler sends its whole current interest as [`RouteFrame::Sub`] frames, then
//!    interest changes (`Sub`/`Unsub`, one per local (subject, queue) pair going from
//!    zero subscriptions to one and back), messages ([`RouteFrame::Msg`]) and
//!    [`RouteFrame::Ping`] keepalives.
//!
//! A `Msg` is delivered by the receiver only to its own clients: to every matching
//! plain subscription, and to one local member of each queue group named in
//! `queues`. It is never forwarded to another route (full mesh, one hop).
//!
//! **Bounded queue.** [`RouteOut`] holds the frames of one connection, charged to the
//! `route.outbound` ledger account and capped per route. A message that does not fit
//! is dropped (core NATS is at-most-once) and counted. An interest frame must never be
//! lost, so when one does not fit the queue is closed instead: the connection ends,
//! the receiver drops all of this node's interest, and the next connection starts with
//! a full interest snapshot.

use crate::mem::{Account, Charge};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The handshake both sides send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's server id.
    pub server_id: String,
    /// The sender's cluster name.
    pub cluster: String,
    /// Host of the sender's route listener, or `None` when it listens on all addresses
    /// (the receiver then uses the connection's source address).
    pub route_host: Option<String>,
    /// Port of the sender's route listener.
    pub route_port: u16,
    /// The sender's node number for link shaping (0 outside the simulator).
    pub node: u64,
    /// In the acceptor's answer: whether the connection is accepted.
    pub accepted: bool,
    /// In the acceptor's answer: route addresses (`host:port`) of the peers it knows.
    pub known: Vec<String>,
}

/// What travels on a route connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteFrame {
    /// Handshake (first frame each way).
    Hello(Hello),
    /// The sender now has interest in `subject` (for `queue`, if given).
    Sub {
        /// Subject pattern.
        subject: String,
        /// Queue group.
        queue: Option<String>,
    },
    /// The sender no longer has interest in `subject`/`queue`.
    Unsub {
        /// Subject pattern.
        subject: String,
        /// Queue group.
        queue: Option<String>,
    },
    /// A message for the receiver's local subscribers.
    Msg {
        /// Subject.
        subject: String,
        /// Reply subject.
        reply: Option<String>,
        /// Raw header block.
        #[serde(with = "serde_bytes")]
        headers: Option<Vec<u8>>,
        /// Body.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// Queue groups for which the receiver delivers to one local member.
        queues: Vec<String>,
    },
    /// Keepalive.
    Ping,
}

/// Borrowed twin of [`RouteFrame`] (same variants in the same order, same encoding),
/// so that sending a message does not copy it into owned strings first.
#[derive(Serialize)]
enum RouteFrameRef<'a> {
    #[allow(dead_code, reason = "keeps the variant order identical to RouteFrame")]
    Hello(&'a Hello),
    Sub {
        subject: &'a str,
        queue: Option<&'a str>,
    },
    Unsub {
        subject: &'a str,
        queue: Option<&'a str>,
    },
    Msg {
        subject: &'a str,
        reply: Option<&'a str>,
        headers: Option<&'a serde_bytes::Bytes>,
        payload: &'a serde_bytes::Bytes,
        queues: &'a [&'a str],
    },
}

/// Encode an interest change (`sub` true for `Sub`) as one frame.
pub fn encode_interest(sub: bool, subject: &str, queue: Option<&str>) -> Vec<u8> {
    let f = if sub { RouteFrameRef::Sub { subject, queue } } else { RouteFrameRef::Unsub { subject, queue } };
    super::super::frame::encode(&f).expect("interest frames are small")
}

/// Encode a message frame; `None` if it exceeds the frame limit.
pub fn encode_msg(
    subject: &str,
    reply: Option<&str>,
    headers: Option<&Bytes>,
    payload: &Bytes,
    queues: &[&str],
) -> Option<Vec<u8>> {
    let f = RouteFrameRef::Msg {
        subject,
        reply,
        headers: headers.map(|h| serde_bytes::Bytes::new(h)),
        payload: serde_bytes::Bytes::new(payload),
        queues,
    };
    super::super::frame::encode(&f).ok()
}

/// Result of queueing a frame on a [`RouteOut`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutePush {
    /// Queued.
    Queued,
    /// A message that did not fit was dropped; the route goes on.
    Dropped,
    /// The queue is closed (now or before); nothing queued.
    Closed,
}

struct Frame {
    bytes: Vec<u8>,
    not_before: Instant,
    _charge: Charge,
}

struct State {
    frames: VecDeque<Frame>,
    bytes: u64,
    closed: bool,
}

/// The bounded outbound queue of one route connection.
pub struct RouteOut {
    state: Mutex<State>,
    wake: Notify,
    closed_tx: watch::Sender<bool>,
    account: Arc<Account>,
    cap: u64,
    /// Delay added to each frame's earliest send time (link latency in the simulator).
    delay: Box<dyn Fn(usize) -> std::time::Duration + Send + Sync>,
    /// Messages dropped because the queue or the ledger account was full.
    pub dropped: AtomicU64,
}

impl std::fmt::Debug for RouteOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteOut").field("cap", &self.cap).field("queued", &self.queued_bytes()).finish()
    }
}

impl RouteOut {
    /// An open, empty queue of at most `cap` bytes charging `account`.
    pub fn new(account: Arc<Account>, cap: u64) -> RouteOut {
        RouteOut::with_delay(account, cap, Box::new(|_| std::time::Duration::ZERO))
    }

    /// Like [`RouteOut::new`], with each frame held back by `delay(frame bytes)`.
    pub fn with_delay(
        account: Arc<Account>,
        cap: u64,
        delay: Box<dyn Fn(usize) -> std::time::Duration + Send + Sync>,
    ) -> RouteOut {
        RouteOut {
            state: Mutex::new(State { frames: VecDeque::new(), bytes: 0, closed: false }),
            wake: Notify::new(),
            closed_tx: watch::channel(false).0,
            account,
            cap,
            delay,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: Vec<u8>, must: bool) -> RoutePush {
        let not_before = Instant::now() + (self.delay)(bytes.len());
        let mut s = self.lock();
        if s.closed {
            return RoutePush::Closed;
        }
        let len = bytes.len() as u64;
        let charge = (s.bytes + len <= self.cap).then(|| Charge::try_new(&self.account, len)).flatten();
        let Some(charge) = charge else {
            if must {
                // Interest must not be lost: end the connection; the next one resyncs.
                Self::close_locked(&mut s);
                drop(s);
                self.closed_tx.send_replace(true);
                self.wake.notify_one();
                return RoutePush::Closed;
            }
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return RoutePush::Dropped;
        };
        s.bytes += len;
        s.frames.push_back(Frame { bytes, not_before, _charge: charge });
        drop(s);
        self.wake.notify_one();
        RoutePush::Queued
    }

    /// Queue a message frame; it is dropped if it does not fit.
    pub fn push_msg(&self, bytes: Vec<u8>) -> RoutePush {
        self.push(bytes, false)
    }

    /// Queue an interest or control frame; if it does not fit the queue closes.
    pub fn push_control(&self, bytes: Vec<u8>) -> RoutePush {
        self.push(bytes, true)
    }

    fn close_locked(s: &mut State) {
        s.closed = true;
        s.frames.clear();
        s.bytes = 0;
    }

    /// Close the queue and release everything queued.
    pub fn close(&self) {
        Self::close_locked(&mut self.lock());
        self.closed_tx.send_replace(true);
        self.wake.notify_one();
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The next frame and the time it may be written; `None` once closed. The frame's
    /// bytes stay charged until the returned [`QueuedFrame`] is dropped.
    pub async fn next(&self) -> Option<QueuedFrame> {
        loop {
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(f) = s.frames.pop_front() {
                    s.bytes -= f.bytes.len() as u64;
                    return Some(QueuedFrame { bytes: f.bytes, not_before: f.not_before, _charge: f._charge });
                }
            }
            // notify_one stores a permit, so a push between the check and here is not lost.
            self.wake.notified().await;
        }
    }

    /// Wait until the queue is closed.
    pub async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// A frame taken off a [`RouteOut`]; its memory stays charged until it is dropped.
pub struct QueuedFrame {
    /// Encoded frame.
    pub bytes: Vec<u8>,
    /// Earliest time it may be written.
    pub not_before: Instant,
    _charge: Charge,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::frame;

    #[test]
    fn ref_encoding_matches_owned() {
        let b =
            encode_msg("a.b", Some("r"), Some(&Bytes::from_static(b"h")), &Bytes::from_static(b"xy"), &["q"]).unwrap();
        let f: RouteFrame = frame::decode(&b[4..]).unwrap();
        assert_eq!(
            f,
            RouteFrame::Msg {
                subject: "a.b".into(),
                reply: Some("r".into()),
                headers: Some(b"h".to_vec()),
                payload: b"xy".to_vec(),
                queues: vec!["q".into()]
            }
        );
        let s: RouteFrame = frame::decode(&encode_interest(false, "x.>", Some("g"))[4..]).unwrap();
        assert_eq!(s, RouteFrame::Unsub { subject: "x.>".into(), queue: Some("g".into()) });
        let h = Hello {
            server_id: "N".into(),
            cluster: "c".into(),
            route_host: None,
            route_port: 1,
            node: 0,
            accepted: true,
            known: vec![],
        };
        let e = frame::encode(&RouteFrameRef::Hello(&h)).unwrap();
        assert_eq!(frame::decode::<RouteFrame>(&e[4..]).unwrap(), RouteFrame::Hello(h));
    }

    #[test]
    fn full_queue_drops_messages_but_closes_on_interest() {
        let account = Arc::new(Account::new("route.outbound", 1_000));
        let q = RouteOut::new(account.clone(), 100);
        assert_eq!(q.push_msg(vec![0; 60]), RoutePush::Queued);
        assert_eq!(q.push_msg(vec![0; 60]), RoutePush::Dropped);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(account.current(), 60);
        assert_eq!(q.push_control(vec![0; 30]), RoutePush::Queued);
        assert_eq!(q.push_control(vec![0; 30]), RoutePush::Closed);
        assert!(q.is_closed());
        assert_eq!(account.current(), 0, "closing releases everything");
        assert_eq!(q.push_msg(vec![0; 1]), RoutePush::Closed);
    }

    #[test]
    fn node_account_limit_applies() {
        let account = Arc::new(Account::new("route.outbound", 50));
        let q = RouteOut::new(account.clone(), 1_000);
        assert_eq!(q.push_msg(vec![0; 40]), RoutePush::Queued);
        assert_eq!(q.push_msg(vec![0; 40]), RoutePush::Dropped);
        assert_eq!(account.peak(), 40);
    }
}
