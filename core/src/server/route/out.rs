//! [`RouteOut`]: the bounded outbound queue of one route connection, and the
//! slow-route policy per traffic class (see the policy table in [`super`]).
//!
//! Every queued frame holds a [`Charge`] on the node's `route.outbound` ledger
//! account, and the queue holds at most `cap` bytes. A frame taken off the queue for
//! writing stays charged until the write is done (its [`QueuedFrame`] is dropped).

use crate::mem::{Account, Charge};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

/// The traffic class of a frame, which decides what happens when it does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Pub/sub interest (`Sub`/`Unsub`) and keepalives: never dropped. If it does not
    /// fit even after evicting queued Raft frames, the queue closes (the connection
    /// ends and the next one resyncs interest from a snapshot).
    Control,
    /// A core NATS message (at-most-once): dropped if it does not fit; evicts nothing.
    Msg,
    /// A Raft message: evicts the oldest queued Raft frames to fit; dropped if even
    /// that does not make room.
    Raft,
}

/// Result of queueing a frame on a [`RouteOut`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutePush {
    /// Queued.
    Queued,
    /// The frame did not fit and was dropped; the route goes on.
    Dropped,
    /// The queue is closed (now or before); nothing queued.
    Closed,
}

/// Drop counters of one route connection.
#[derive(Debug, Default)]
pub struct RouteOutStats {
    /// Messages dropped because the queue or the ledger account was full.
    pub msgs_dropped: AtomicU64,
    /// Raft frames dropped: new ones that did not fit, and old ones evicted by newer.
    pub raft_dropped: AtomicU64,
}

struct Frame {
    bytes: Vec<u8>,
    class: Class,
    _charge: Charge,
}

struct State {
    frames: VecDeque<Frame>,
    /// Bytes of every queued frame.
    bytes: u64,
    /// Bytes of the queued Raft frames (what eviction could free).
    raft_bytes: u64,
    closed: bool,
}

/// The bounded outbound queue of one route connection.
pub struct RouteOut {
    state: Mutex<State>,
    wake: Notify,
    closed_tx: watch::Sender<bool>,
    account: Arc<Account>,
    cap: u64,
    /// Drop counters.
    pub stats: RouteOutStats,
}

impl std::fmt::Debug for RouteOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteOut").field("cap", &self.cap).field("queued", &self.queued_bytes()).finish()
    }
}

impl RouteOut {
    /// An open, empty queue of at most `cap` bytes charging `account`.
    pub fn new(account: Arc<Account>, cap: u64) -> RouteOut {
        RouteOut {
            state: Mutex::new(State { frames: VecDeque::new(), bytes: 0, raft_bytes: 0, closed: false }),
            wake: Notify::new(),
            closed_tx: watch::channel(false).0,
            account,
            cap,
            stats: RouteOutStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue one encoded frame of class `class`, applying the slow-route policy.
    pub fn push(&self, bytes: Vec<u8>, class: Class) -> RoutePush {
        let mut s = self.lock();
        if s.closed {
            return RoutePush::Closed;
        }
        let len = bytes.len() as u64;
        // Whether evicting every queued Raft frame would make room under the route's cap;
        // if not, evict nothing (the node-wide account may still refuse after evicting).
        let evictable = class != Class::Msg && s.bytes - s.raft_bytes + len <= self.cap;
        let charge = loop {
            let fits = len <= self.cap && s.bytes + len <= self.cap;
            if let Some(c) = fits.then(|| Charge::try_new(&self.account, len)).flatten() {
                break Some(c);
            }
            // Room can only come from evicting Raft frames, and messages evict nothing.
            if !evictable || s.raft_bytes == 0 {
                break None;
            }
            Self::evict_oldest_raft(&mut s);
            self.stats.raft_dropped.fetch_add(1, Ordering::Relaxed);
        };
        let Some(charge) = charge else {
            match class {
                Class::Msg => self.stats.msgs_dropped.fetch_add(1, Ordering::Relaxed),
                Class::Raft => self.stats.raft_dropped.fetch_add(1, Ordering::Relaxed),
                Class::Control => {
                    // Interest must not be lost: end the connection; the next one resyncs.
                    Self::close_locked(&mut s);
                    drop(s);
                    self.closed_tx.send_replace(true);
                    self.wake.notify_one();
                    return RoutePush::Closed;
                }
            };
            return RoutePush::Dropped;
        };
        s.bytes += len;
        if class == Class::Raft {
            s.raft_bytes += len;
        }
        s.frames.push_back(Frame { bytes, class, _charge: charge });
        debug_assert!(s.bytes <= self.cap && s.raft_bytes <= s.bytes);
        drop(s);
        self.wake.notify_one();
        RoutePush::Queued
    }

    /// Remove the oldest queued Raft frame (there is one: `raft_bytes > 0`).
    fn evict_oldest_raft(s: &mut State) {
        let i = s.frames.iter().position(|f| f.class == Class::Raft).expect("raft_bytes > 0 means a Raft frame");
        let f = s.frames.remove(i).expect("position is in range");
        let len = f.bytes.len() as u64;
        s.bytes -= len;
        s.raft_bytes -= len;
    }

    /// Queue a message frame; it is dropped if it does not fit.
    pub fn push_msg(&self, bytes: Vec<u8>) -> RoutePush {
        self.push(bytes, Class::Msg)
    }

    /// Queue an interest or keepalive frame; if it does not fit the queue closes.
    pub fn push_control(&self, bytes: Vec<u8>) -> RoutePush {
        self.push(bytes, Class::Control)
    }

    /// Queue a Raft frame, evicting older Raft frames if needed.
    pub fn push_raft(&self, bytes: Vec<u8>) -> RoutePush {
        self.push(bytes, Class::Raft)
    }

    fn close_locked(s: &mut State) {
        s.closed = true;
        s.frames.clear();
        s.bytes = 0;
        s.raft_bytes = 0;
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

    /// Check the queue's bookkeeping against its frames (O(queued frames); for tests
    /// and simulation checks).
    pub fn invariants(&self) {
        let s = self.lock();
        let total: u64 = s.frames.iter().map(|f| f.bytes.len() as u64).sum();
        let raft: u64 = s.frames.iter().filter(|f| f.class == Class::Raft).map(|f| f.bytes.len() as u64).sum();
        assert_eq!(s.bytes, total, "queued bytes match the frames");
        assert_eq!(s.raft_bytes, raft, "queued Raft bytes match the Raft frames");
        assert!(s.bytes <= self.cap, "queue within its cap");
        assert!(!s.closed || s.frames.is_empty(), "a closed queue holds nothing");
    }

    /// The next frame; `None` once closed. The frame's
    /// bytes stay charged until the returned [`QueuedFrame`] is dropped.
    pub async fn next(&self) -> Option<QueuedFrame> {
        loop {
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(f) = s.frames.pop_front() {
                    let len = f.bytes.len() as u64;
                    s.bytes -= len;
                    if f.class == Class::Raft {
                        s.raft_bytes -= len;
                    }
                    return Some(QueuedFrame { bytes: f.bytes, _charge: f._charge });
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
    _charge: Charge,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(cap: u64, account_limit: u64) -> (Arc<Account>, RouteOut) {
        let account = Arc::new(Account::new("route.outbound", account_limit));
        (account.clone(), RouteOut::new(account, cap))
    }

    #[test]
    fn full_queue_drops_messages_but_closes_on_interest() {
        let (account, q) = queue(100, 1_000);
        assert_eq!(q.push_msg(vec![0; 60]), RoutePush::Queued);
        assert_eq!(q.push_msg(vec![0; 60]), RoutePush::Dropped);
        assert_eq!(q.stats.msgs_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(account.current(), 60);
        assert_eq!(q.push_control(vec![0; 30]), RoutePush::Queued);
        q.invariants();
        assert_eq!(q.push_control(vec![0; 30]), RoutePush::Closed);
        assert!(q.is_closed());
        q.invariants();
        assert_eq!(account.current(), 0, "closing releases everything");
        assert_eq!(q.push_msg(vec![0; 1]), RoutePush::Closed);
        assert_eq!(q.push_raft(vec![0; 1]), RoutePush::Closed);
    }

    #[test]
    fn raft_frames_evict_the_oldest_raft_frames_only() {
        let (account, q) = queue(100, 1_000);
        assert_eq!(q.push_msg(vec![9; 40]), RoutePush::Queued);
        for i in 0..5u8 {
            assert_eq!(q.push_raft(vec![i; 20]), RoutePush::Queued);
        }
        // 40 + 3 * 20 = 100: the two oldest Raft frames made room; the message stays.
        assert_eq!(q.queued_bytes(), 100);
        assert_eq!(q.stats.raft_dropped.load(Ordering::Relaxed), 2);
        q.invariants();
        // A message finds no room and evicts nothing.
        assert_eq!(q.push_msg(vec![8; 10]), RoutePush::Dropped);
        // A Raft frame larger than all queued Raft frames together is dropped itself.
        assert_eq!(q.push_raft(vec![7; 61]), RoutePush::Dropped);
        assert_eq!(q.queued_bytes(), 100, "nothing was evicted for a frame that cannot fit");
        assert_eq!(account.current(), 100);
        q.invariants();
    }

    #[test]
    fn interest_evicts_raft_frames_before_closing() {
        let (account, q) = queue(100, 1_000);
        assert_eq!(q.push_raft(vec![1; 50]), RoutePush::Queued);
        assert_eq!(q.push_raft(vec![2; 50]), RoutePush::Queued);
        assert_eq!(q.push_control(vec![3; 30]), RoutePush::Queued);
        assert_eq!(q.queued_bytes(), 80);
        assert_eq!(q.stats.raft_dropped.load(Ordering::Relaxed), 1);
        q.invariants();
        // Only control frames left to evict nothing: the next big one closes the queue.
        assert_eq!(q.push_control(vec![4; 60]), RoutePush::Queued);
        assert_eq!(q.push_control(vec![5; 60]), RoutePush::Closed);
        assert_eq!(account.current(), 0);
    }

    #[cfg(not(madsim))]
    #[test]
    fn written_frames_release_their_charge() {
        let (account, q) = queue(100, 1_000);
        q.push_raft(vec![1; 30]);
        q.push_msg(vec![2; 20]);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let f = rt.block_on(q.next()).unwrap();
        assert_eq!(f.bytes[0], 1, "frames leave in order");
        assert_eq!(q.queued_bytes(), 20);
        assert_eq!(account.current(), 50, "a frame being written stays charged");
        drop(f);
        assert_eq!(account.current(), 20, "a written frame releases its charge");
        q.invariants();
    }

    #[test]
    fn node_account_limit_applies() {
        let (account, q) = queue(1_000, 50);
        assert_eq!(q.push_msg(vec![0; 40]), RoutePush::Queued);
        assert_eq!(q.push_msg(vec![0; 40]), RoutePush::Dropped);
        assert_eq!(account.peak(), 40);
        // A Raft frame over the node-wide limit evicts this route's older Raft frames.
        let (account, q) = queue(1_000, 50);
        q.push_raft(vec![1; 40]);
        assert_eq!(q.push_raft(vec![2; 40]), RoutePush::Queued);
        assert_eq!(account.current(), 40);
        assert_eq!(account.peak(), 40);
        assert_eq!(q.push_raft(vec![0; 1_001]), RoutePush::Dropped, "a frame over the cap is dropped");
    }
}
