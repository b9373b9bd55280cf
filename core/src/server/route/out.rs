//! [`RouteOut`]: the bounded outbound queue of one route connection, and the
//! slow-route policy per traffic class (see the policy table in [`super`]).
//!
//! **What is charged.** Every queued frame holds a [`Charge`] on the node's
//! `route.outbound` ledger account for what it really costs: its buffer as the
//! allocator rounds it ([`frame_cost`]: a header word, then 16-byte steps, or whole pages
//! for large buffers), not only its encoded length; the queue's own backing storage (one
//! slot per frame it has room for) is charged as well, when it grows, and released when
//! it shrinks. The queue's cap compares against the same total, so a queue of
//! `max_pending_bytes` costs that much memory whatever the frame sizes (issue 9, fault
//! 10: empty messages once cost six times their charge). A frame taken off the queue for
//! writing stays charged until the write is done (its [`QueuedFrame`] is dropped); the
//! backing storage shrinks again once the queue is mostly empty (and is freed once
//! empty), so a burst does not leave its peak allocated.
//!
//! **Pressure.** Above half its cap the queue is *pressured*: the publishers whose
//! messages went to it are asked to wait ([`RouteOut::wait_room`], bounded by the
//! caller) until it drains below a quarter, as nats-server stalls producers feeding a
//! slow connection. Loss comes only once the cap is reached anyway. Every drop is
//! counted per route and per reason in [`RouteDrops`].

use crate::mem::{Account, Charge};
use serde::Serialize;
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
    /// The frame did not fit and was dropped (and counted); the route goes on.
    Dropped,
    /// The queue is closed (now or before); nothing queued.
    Closed,
}

/// Why a frame bound for a route was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// The route's queue was at its cap (`max_pending_bytes`).
    QueueFull,
    /// The node-wide `route.outbound` ledger account was at its limit.
    Memory,
    /// The frame would exceed the route frame limit (`server::frame::MAX_FRAME`).
    TooLarge,
    /// A queued Raft frame evicted to make room for a newer one.
    Evicted,
    /// Queued (or being written) when the connection ended: a stalled or dead peer,
    /// or an interest change that did not fit (the next connection resyncs interest).
    Closed,
}

impl DropReason {
    /// Every reason, in export order.
    pub const ALL: [DropReason; 5] =
        [DropReason::QueueFull, DropReason::Memory, DropReason::TooLarge, DropReason::Evicted, DropReason::Closed];

    /// The name used in `/varz` and as the `reason` label in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Memory => "memory",
            DropReason::TooLarge => "too_large",
            DropReason::Evicted => "evicted",
            DropReason::Closed => "closed",
        }
    }
}

/// Drop and stall counters of one route (one peer address), shared by its successive
/// connections so that they survive reconnects. Read them with [`RouteDrops::counts`].
#[derive(Debug, Default)]
pub struct RouteDrops {
    /// Core NATS messages dropped, by [`DropReason`] index.
    msgs: [AtomicU64; 5],
    /// Raft frames dropped, by [`DropReason`] index.
    raft: [AtomicU64; 5],
    /// Times a publisher waited for this route's queue to drain.
    stalls: AtomicU64,
    /// Waits that ended at their bound with the queue still pressured.
    stall_timeouts: AtomicU64,
}

/// Drop counts of one class, by reason (the JSON shape in `/varz`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReasonCounts {
    /// The route's queue was full.
    pub queue_full: u64,
    /// The node-wide `route.outbound` account was full.
    pub memory: u64,
    /// Over the route frame limit.
    pub too_large: u64,
    /// Evicted by newer frames (Raft only).
    pub evicted: u64,
    /// Queued when the connection ended.
    pub closed: u64,
}

impl ReasonCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::QueueFull => self.queue_full,
            DropReason::Memory => self.memory,
            DropReason::TooLarge => self.too_large,
            DropReason::Evicted => self.evicted,
            DropReason::Closed => self.closed,
        }
    }

    /// All reasons together.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.get(*r)).sum()
    }

    fn load(a: &[AtomicU64; 5]) -> ReasonCounts {
        let v = |r: DropReason| a[r as usize].load(Ordering::Relaxed);
        ReasonCounts {
            queue_full: v(DropReason::QueueFull),
            memory: v(DropReason::Memory),
            too_large: v(DropReason::TooLarge),
            evicted: v(DropReason::Evicted),
            closed: v(DropReason::Closed),
        }
    }
}

/// A snapshot of one route's [`RouteDrops`] (the JSON shape in `/varz`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouteDropCounts {
    /// Core NATS messages dropped, by reason.
    pub msgs: ReasonCounts,
    /// Raft frames dropped, by reason.
    pub raft: ReasonCounts,
    /// Times a publisher waited for the route's queue to drain (back-pressure applied).
    pub publisher_stalls: u64,
    /// Of those, waits that reached their bound (the publisher went on; drops follow
    /// only if the queue then fills).
    pub publisher_stall_timeouts: u64,
}

impl RouteDrops {
    /// Count one dropped frame of `class` for `reason`; returns the new count for that
    /// class and reason. Control frames are never dropped (the queue closes instead)
    /// and are counted with messages if a caller reports one.
    pub fn count(&self, class: Class, reason: DropReason) -> u64 {
        let row = if class == Class::Raft { &self.raft } else { &self.msgs };
        row[reason as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Count one publisher wait on this route; `timed_out` when it reached its bound.
    pub fn count_stall(&self, timed_out: bool) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        if timed_out {
            self.stall_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn counts(&self) -> RouteDropCounts {
        RouteDropCounts {
            msgs: ReasonCounts::load(&self.msgs),
            raft: ReasonCounts::load(&self.raft),
            publisher_stalls: self.stalls.load(Ordering::Relaxed),
            publisher_stall_timeouts: self.stall_timeouts.load(Ordering::Relaxed),
        }
    }
}

/// What a buffer of `capacity` bytes costs on the heap, as a general-purpose allocator
/// hands it out: a header word plus rounding to 16 bytes for small buffers, whole 4 KiB
/// pages for large ones. An estimate that errs high, so the ledger is not fooled by
/// many tiny frames.
pub fn frame_cost(capacity: usize) -> u64 {
    let c = capacity as u64;
    if c == 0 {
        0
    } else if c <= 4096 {
        (c + 16).next_multiple_of(16)
    } else {
        (c + 16).next_multiple_of(4096)
    }
}

struct Frame {
    bytes: Vec<u8>,
    class: Class,
    /// What this frame is charged ([`frame_cost`] of its buffer).
    charge: Charge,
}

/// Bytes of one slot of the queue's backing storage.
const SLOT: u64 = std::mem::size_of::<Frame>() as u64;
/// Slots the backing storage starts with, and keeps when shrinking a queue that is not
/// empty.
const MIN_SLOTS: usize = 16;

struct State {
    frames: VecDeque<Frame>,
    /// Charged cost of every queued frame.
    bytes: u64,
    /// Charged cost of the queued Raft frames (what eviction could free).
    raft_bytes: u64,
    /// Bytes charged for `frames`' backing storage (its capacity times [`SLOT`]).
    backing: u64,
    /// Above half the cap, until drained below a quarter (see the module doc).
    pressured: bool,
    closed: bool,
}

impl State {
    fn total(&self) -> u64 {
        self.bytes + self.backing
    }
}

/// The bounded outbound queue of one route connection.
pub struct RouteOut {
    state: Mutex<State>,
    wake: Notify,
    closed_tx: watch::Sender<bool>,
    /// `true` while the queue has room (not pressured, or closed).
    room_tx: watch::Sender<bool>,
    account: Arc<Account>,
    cap: u64,
    drops: Arc<RouteDrops>,
}

impl std::fmt::Debug for RouteOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteOut").field("cap", &self.cap).field("queued", &self.queued_bytes()).finish()
    }
}

impl RouteOut {
    /// An open, empty queue of at most `cap` bytes (charged cost, backing included)
    /// charging `account`, counting its drops in `drops` (the route's counters).
    pub fn new(account: Arc<Account>, cap: u64, drops: Arc<RouteDrops>) -> RouteOut {
        RouteOut {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                raft_bytes: 0,
                backing: 0,
                pressured: false,
                closed: false,
            }),
            wake: Notify::new(),
            closed_tx: watch::channel(false).0,
            room_tx: watch::channel(true).0,
            account,
            cap,
            drops,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This route's drop and stall counters.
    pub fn drops(&self) -> &Arc<RouteDrops> {
        &self.drops
    }

    /// Queue one encoded frame of class `class`, applying the slow-route policy.
    pub fn push(&self, bytes: Vec<u8>, class: Class) -> RoutePush {
        let mut s = self.lock();
        if s.closed {
            return RoutePush::Closed;
        }
        let cost = frame_cost(bytes.capacity());
        // Backing storage to add if the queue is out of slots: it doubles (from MIN_SLOTS).
        let grow_to = (s.frames.len() == s.frames.capacity()).then(|| (s.frames.capacity() * 2).max(MIN_SLOTS));
        let extra = grow_to.map_or(0, |n| (n - s.frames.capacity()) as u64 * SLOT);
        let need = cost + extra;
        // Whether evicting every queued Raft frame would make room under the route's cap;
        // if not, evict nothing (the node-wide account may still refuse after evicting).
        let evictable = class != Class::Msg && s.total() - s.raft_bytes + need <= self.cap;
        let mut reason = DropReason::QueueFull;
        let charge = loop {
            let fits = need <= self.cap && s.total() + need <= self.cap;
            if fits {
                // A frame charge taken when the backing growth is refused is dropped
                // (released) at once.
                if let Some(c) = Charge::try_new(&self.account, cost)
                    && (extra == 0 || self.account.try_charge(extra))
                {
                    break Some(c);
                }
                reason = DropReason::Memory;
            }
            // Room can only come from evicting Raft frames, and messages evict nothing.
            if !evictable || s.raft_bytes == 0 {
                break None;
            }
            Self::evict_oldest_raft(&mut s);
            self.drops.count(Class::Raft, DropReason::Evicted);
        };
        let Some(charge) = charge else {
            if class == Class::Control {
                // Interest must not be lost: end the connection; the next one resyncs.
                self.close_locked(&mut s);
                drop(s);
                self.closed_tx.send_replace(true);
                self.wake.notify_one();
                return RoutePush::Closed;
            }
            let n = self.drops.count(class, reason);
            drop(s);
            // Logged at the 1st, 2nd, 4th, 8th... drop per route, class and reason:
            // every drop is counted, the log stays bounded.
            if n.is_power_of_two() {
                tracing::warn!(class = ?class, reason = reason.name(), dropped = n, "route frame dropped");
            }
            return RoutePush::Dropped;
        };
        if let Some(n) = grow_to {
            let len = s.frames.len();
            s.frames.reserve_exact(n - len);
            s.backing += extra;
            let actual = s.frames.capacity() as u64 * SLOT;
            if actual > s.backing {
                // The allocator gave more slots than asked: charge them too.
                self.account.force_charge(actual - s.backing);
                s.backing = actual;
            }
        }
        s.bytes += cost;
        if class == Class::Raft {
            s.raft_bytes += cost;
        }
        s.frames.push_back(Frame { bytes, class, charge });
        debug_assert!(s.raft_bytes <= s.bytes);
        if !s.pressured && s.total() > self.cap / 2 {
            s.pressured = true;
            // Under the state lock, so that the signal cannot overtake a drain's.
            self.room_tx.send_replace(false);
        }
        drop(s);
        self.wake.notify_one();
        RoutePush::Queued
    }

    /// Remove the oldest queued Raft frame (there is one: `raft_bytes > 0`).
    fn evict_oldest_raft(s: &mut State) {
        let i = s.frames.iter().position(|f| f.class == Class::Raft).expect("raft_bytes > 0 means a Raft frame");
        let f = s.frames.remove(i).expect("position is in range");
        let cost = f.charge.bytes();
        s.bytes -= cost;
        s.raft_bytes -= cost;
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

    fn close_locked(&self, s: &mut State) {
        if !s.closed {
            for f in s.frames.iter().filter(|f| f.class != Class::Control) {
                self.drops.count(f.class, DropReason::Closed);
            }
        }
        s.closed = true;
        s.frames = VecDeque::new();
        s.bytes = 0;
        s.raft_bytes = 0;
        self.account.release(s.backing);
        s.backing = 0;
        s.pressured = false;
        // A closed queue holds nobody back.
        self.room_tx.send_replace(true);
    }

    /// Close the queue and release everything queued.
    pub fn close(&self) {
        self.close_locked(&mut self.lock());
        self.closed_tx.send_replace(true);
        self.wake.notify_one();
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Bytes charged now for queued frames and the queue's backing storage (frames
    /// taken off for writing excluded).
    pub fn queued_bytes(&self) -> u64 {
        self.lock().total()
    }

    /// Whether publishers feeding this queue should wait ([`RouteOut::wait_room`]).
    pub fn pressured(&self) -> bool {
        !*self.room_tx.borrow()
    }

    /// Wait until the queue is no longer pressured (drained below a quarter of its cap)
    /// or closed. Cancel-safe; the caller bounds the wait (see `server::nats`).
    pub async fn wait_room(&self) {
        let mut rx = self.room_tx.subscribe();
        let _ = rx.wait_for(|room| *room).await;
    }

    /// Check the queue's bookkeeping against its frames (O(queued frames); for tests
    /// and simulation checks).
    pub fn invariants(&self) {
        let s = self.lock();
        let total: u64 = s.frames.iter().map(|f| f.charge.bytes()).sum();
        let raft: u64 = s.frames.iter().filter(|f| f.class == Class::Raft).map(|f| f.charge.bytes()).sum();
        assert_eq!(s.bytes, total, "queued bytes match the frames");
        assert_eq!(s.raft_bytes, raft, "queued Raft bytes match the Raft frames");
        assert!(
            s.frames.iter().all(|f| f.charge.bytes() == frame_cost(f.bytes.capacity())),
            "frames charge their cost"
        );
        assert_eq!(s.backing, s.frames.capacity() as u64 * SLOT, "backing storage is charged slot for slot");
        assert!(s.total() <= self.cap || s.frames.len() <= 1, "queue within its cap");
        assert!(!s.closed || (s.frames.is_empty() && s.backing == 0), "a closed queue holds nothing");
        assert_eq!(s.pressured, !*self.room_tx.borrow(), "the room signal follows the state");
    }

    /// Take the front frame, releasing pressure and shrinking the backing storage as
    /// the queue drains.
    fn pop(&self, s: &mut State) -> Option<Frame> {
        let f = s.frames.pop_front()?;
        let cost = f.charge.bytes();
        s.bytes -= cost;
        if f.class == Class::Raft {
            s.raft_bytes -= cost;
        }
        // Shrink once the queue uses a quarter of its slots, to twice its length (and
        // to nothing once empty): the
        // memory of a burst comes back, and growth and shrinking cannot alternate on
        // every frame.
        let (len, cap) = (s.frames.len(), s.frames.capacity());
        if len == 0 {
            // Empty: give the storage back, so an idle route holds (and is charged) nothing.
            s.frames = VecDeque::new();
            self.account.release(s.backing);
            s.backing = 0;
        } else if cap > MIN_SLOTS && len * 4 <= cap {
            s.frames.shrink_to((len * 2).max(MIN_SLOTS));
            let now = s.frames.capacity() as u64 * SLOT;
            if now < s.backing {
                self.account.release(s.backing - now);
                s.backing = now;
            }
        }
        if s.pressured && s.total() <= self.cap / 4 {
            s.pressured = false;
            self.room_tx.send_replace(true);
        }
        Some(f)
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
                if let Some(f) = self.pop(&mut s) {
                    return Some(QueuedFrame { bytes: f.bytes, class: f.class, _charge: f.charge });
                }
            }
            // notify_one stores a permit, so a push between the check and here is not lost.
            self.wake.notified().await;
        }
    }

    /// The next frames, at least one and as many more as fit in `max_bytes` together
    /// (encoded length), for one write and one flush; `None` once closed. Each stays
    /// charged until its [`QueuedFrame`] is dropped.
    pub async fn next_batch(&self, max_bytes: usize) -> Option<Vec<QueuedFrame>> {
        let first = self.next().await?;
        let mut size = first.bytes.len();
        let mut batch = vec![first];
        let mut s = self.lock();
        while let Some(f) = s.frames.front()
            && size + f.bytes.len() <= max_bytes
        {
            size += f.bytes.len();
            let f = self.pop(&mut s).expect("a front frame");
            batch.push(QueuedFrame { bytes: f.bytes, class: f.class, _charge: f.charge });
        }
        Some(batch)
    }

    /// Wait until the queue is closed.
    pub async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Drop for RouteOut {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.account.release(s.backing);
        s.backing = 0;
    }
}

/// A frame taken off a [`RouteOut`]; its memory stays charged until it is dropped.
pub struct QueuedFrame {
    /// Encoded frame.
    pub bytes: Vec<u8>,
    /// Its traffic class (a frame whose write fails is counted as a drop of it).
    pub class: Class,
    _charge: Charge,
}

impl AsRef<[u8]> for QueuedFrame {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the queue's backing storage costs at its smallest.
    const BACKING: u64 = MIN_SLOTS as u64 * SLOT;

    fn queue(cap: u64, account_limit: u64) -> (Arc<Account>, RouteOut) {
        let account = Arc::new(Account::new("route.outbound", account_limit));
        (account.clone(), RouteOut::new(account, cap, Arc::default()))
    }

    fn frame(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n]
    }

    fn counts(q: &RouteOut) -> RouteDropCounts {
        q.drops().counts()
    }

    #[test]
    fn frame_cost_rounds_like_an_allocator() {
        assert_eq!(frame_cost(0), 0);
        assert_eq!(frame_cost(1), 32);
        assert_eq!(frame_cost(16), 32);
        assert_eq!(frame_cost(17), 48);
        assert_eq!(frame_cost(5000), 8192);
        assert!(frame_cost(17_000_000) >= 17_000_000);
    }

    #[test]
    fn full_queue_drops_messages_but_closes_on_interest() {
        let c60 = frame_cost(60);
        let (account, q) = queue(BACKING + c60 + 40, 100_000);
        assert_eq!(q.push_msg(frame(60, 0)), RoutePush::Queued);
        assert_eq!(account.current(), BACKING + c60, "the frame's cost and the backing storage are charged");
        assert_eq!(q.push_msg(frame(60, 0)), RoutePush::Dropped);
        assert_eq!(counts(&q).msgs.queue_full, 1);
        assert_eq!(q.push_control(frame(8, 0)), RoutePush::Queued);
        q.invariants();
        assert_eq!(q.push_control(frame(30, 0)), RoutePush::Closed);
        assert!(q.is_closed());
        q.invariants();
        assert_eq!(counts(&q).msgs.closed, 1, "the queued message is counted as lost with its connection");
        assert_eq!(account.current(), 0, "closing releases everything");
        assert_eq!(q.push_msg(frame(1, 0)), RoutePush::Closed);
        assert_eq!(q.push_raft(frame(1, 0)), RoutePush::Closed);
    }

    #[test]
    fn raft_frames_evict_the_oldest_raft_frames_only() {
        let (c40, c20) = (frame_cost(40), frame_cost(20));
        let (account, q) = queue(BACKING + c40 + 3 * c20, 100_000);
        assert_eq!(q.push_msg(frame(40, 9)), RoutePush::Queued);
        for i in 0..5u8 {
            assert_eq!(q.push_raft(frame(20, i)), RoutePush::Queued);
        }
        // The two oldest Raft frames made room; the message stays.
        assert_eq!(q.queued_bytes(), BACKING + c40 + 3 * c20);
        assert_eq!(counts(&q).raft.evicted, 2);
        q.invariants();
        // A message finds no room and evicts nothing.
        assert_eq!(q.push_msg(frame(10, 8)), RoutePush::Dropped);
        // A Raft frame larger than all queued Raft frames together is dropped itself.
        assert_eq!(q.push_raft(frame(200, 7)), RoutePush::Dropped);
        assert_eq!(counts(&q).raft.queue_full, 1);
        assert_eq!(q.queued_bytes(), BACKING + c40 + 3 * c20, "nothing was evicted for a frame that cannot fit");
        assert_eq!(account.current(), q.queued_bytes());
        q.invariants();
    }

    #[test]
    fn interest_evicts_raft_frames_before_closing() {
        let c = frame_cost(50);
        let (account, q) = queue(BACKING + 2 * c, 100_000);
        assert_eq!(q.push_raft(frame(50, 1)), RoutePush::Queued);
        assert_eq!(q.push_raft(frame(50, 2)), RoutePush::Queued);
        assert_eq!(q.push_control(frame(50, 3)), RoutePush::Queued);
        assert_eq!(counts(&q).raft.evicted, 1);
        q.invariants();
        assert_eq!(q.push_control(frame(50, 4)), RoutePush::Queued);
        assert_eq!(q.push_control(frame(50, 5)), RoutePush::Closed);
        assert_eq!(account.current(), 0);
    }

    #[cfg(not(madsim))]
    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[cfg(not(madsim))]
    #[test]
    fn written_frames_release_their_charge() {
        let (account, q) = queue(100_000, 100_000);
        q.push_raft(frame(30, 1));
        q.push_msg(frame(20, 2));
        let f = rt().block_on(q.next()).unwrap();
        assert_eq!(f.bytes[0], 1, "frames leave in order");
        assert_eq!(q.queued_bytes(), BACKING + frame_cost(20));
        assert_eq!(account.current(), BACKING + frame_cost(20) + frame_cost(30), "a frame being written stays charged");
        drop(f);
        assert_eq!(account.current(), BACKING + frame_cost(20), "a written frame releases its charge");
        q.invariants();
        for i in 0..4u8 {
            q.push_msg(frame(20, 3 + i));
        }
        let b = rt().block_on(q.next_batch(60)).unwrap();
        assert_eq!(
            b.iter().map(|f| f.bytes[0]).collect::<Vec<_>>(),
            [2, 3, 4],
            "a batch takes frames in order up to its size"
        );
        let b = rt().block_on(q.next_batch(1)).unwrap();
        assert_eq!(b.len(), 1, "a batch holds at least one frame");
        q.invariants();
    }

    #[test]
    fn node_account_limit_applies() {
        let c = frame_cost(40);
        let (account, q) = queue(1_000_000, BACKING + c + 10);
        assert_eq!(q.push_msg(frame(40, 0)), RoutePush::Queued);
        assert_eq!(q.push_msg(frame(40, 0)), RoutePush::Dropped);
        assert_eq!(counts(&q).msgs.memory, 1, "counted as a memory drop, not a full queue");
        assert_eq!(account.peak(), BACKING + c);
        // A Raft frame over the node-wide limit evicts this route's older Raft frames.
        let (account, q) = queue(1_000_000, BACKING + c + 10);
        q.push_raft(frame(40, 1));
        assert_eq!(q.push_raft(frame(40, 2)), RoutePush::Queued);
        assert_eq!(account.current(), BACKING + c);
        assert_eq!(account.peak(), BACKING + c);
        assert_eq!(q.push_raft(frame(1_000_001, 0)), RoutePush::Dropped, "a frame over the cap is dropped");
    }

    /// Issue 9, fault 10, with its input: a "32 MiB" route queue filled with empty
    /// messages. Each queued frame is charged at least its buffer's allocation and its
    /// slot in the queue, so the queue's real memory stays within the cap; once drained
    /// the backing storage shrinks back and the ledger returns to (almost) zero.
    #[cfg(not(madsim))]
    #[test]
    fn empty_messages_are_charged_what_they_cost_and_released_when_drained() {
        use bytes::Bytes;
        let cap = 32 * 1024 * 1024;
        let (account, q) = queue(cap, 256 * 1024 * 1024);
        let mut queued = 0u64;
        let mut real = 0u64;
        loop {
            let f = super::super::encode_msg("$G", "foo", None, None, &Bytes::new(), &[]).unwrap();
            let (len, capacity) = (f.len() as u64, f.capacity() as u64);
            match q.push_msg(f) {
                RoutePush::Queued => {
                    queued += 1;
                    // What the heap really holds for it: the buffer and its queue slot.
                    real += capacity.max(len) + SLOT;
                }
                _ => break,
            }
        }
        q.invariants();
        assert!(queued > 10_000, "the queue took {queued} frames");
        assert!(account.current() <= cap, "the charge stays within the cap");
        assert!(real <= account.current(), "charged {} for {real} bytes of frames and slots", account.current());
        assert!(counts(&q).msgs.queue_full == 1 && counts(&q).msgs.memory == 0);
        let rt = rt();
        for _ in 0..queued {
            drop(rt.block_on(q.next()).unwrap());
        }
        q.invariants();
        assert_eq!(account.current(), 0, "drained: the frames and the queue's storage are released");
        q.close();
        assert_eq!(account.current(), 0);
    }

    /// Above half its cap the queue is pressured, and stays so until drained below a
    /// quarter; a waiter is released then (and by closing).
    #[cfg(not(madsim))]
    #[test]
    fn pressure_starts_at_half_and_ends_below_a_quarter() {
        let c = frame_cost(1000);
        let (_account, q) = queue(BACKING + 8 * c, 1 << 30);
        let rt = rt();
        let mut n = 0;
        while !q.pressured() {
            assert_eq!(q.push_msg(frame(1000, 0)), RoutePush::Queued);
            n += 1;
        }
        assert!(q.queued_bytes() > q.cap / 2 && n <= 5, "pressured past half the cap after {n} frames");
        q.invariants();
        let mut waits = 0;
        while q.pressured() {
            let waiter = rt.block_on(async { tokio::time::timeout(std::time::Duration::ZERO, q.wait_room()).await });
            assert!(waiter.is_err(), "a pressured queue keeps publishers waiting");
            drop(rt.block_on(q.next()).unwrap());
            waits += 1;
        }
        assert!(q.queued_bytes() <= q.cap / 4, "released only below a quarter (after {waits} frames left)");
        rt.block_on(q.wait_room());
        q.invariants();
        while q.push_msg(frame(1000, 0)) == RoutePush::Queued {}
        assert!(q.pressured());
        q.close();
        rt.block_on(q.wait_room());
    }
}
