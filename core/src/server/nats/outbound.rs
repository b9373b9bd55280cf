//! A client's outbound queue: bytes waiting for the writer task, bounded per client by
//! `max_pending` and charged to the node ledger's `client.outbound` account.
//!
//! Bytes stay charged from the moment they are queued until the writer has written
//! them (or the queue is aborted), so the ledger sees everything a client holds.
//!
//! **Who pays at the shared limit** (issue 9, fault 8). The per-client `max_pending`
//! is checked first: a client over it is a slow consumer. When the shared account is
//! full instead, the queues of one [`OutboundPool`] are looked at and the largest other
//! queues (each holding at least as much as the one being written to) are cut as slow
//! consumers until the bytes fit. The queue being written to is never cut for the
//! shared limit: if nothing larger can be cut, that one message is not queued to it
//! ([`Push::Dropped`]) and the client stays connected.
//!
//! Once the client has authenticated, its bytes are also charged to its NATS account's
//! `account.outbound` (the tenant, see [`Outbound::set_tenant`]); a push over the
//! tenant's limit makes this client a slow consumer, as `max_pending` does.

use super::stats::Stats;
use crate::mem::Account;
use crate::proto::{ServerOp, encode_server};
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{Notify, watch};

/// Largest buffer capacity a queue keeps for reuse after handing its bytes to the writer.
const MAX_KEPT_CAPACITY: usize = 256 * 1024;

/// Why a queue stopped taking bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Write out what is queued, then close (errors, shutdown, client EOF).
    Drain,
    /// Drop what is queued and close now (slow consumer, write failure).
    Abort,
}

/// Result of queueing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The queue was already closed; nothing queued.
    Closed,
    /// Over `max_pending`, or over the ledger account's limit outside a pool: the queue
    /// is now aborted.
    SlowConsumer,
    /// The shared account is full and no larger queue of the pool could be cut: this
    /// message was not queued, and the queue stays open.
    Dropped,
}

/// What [`Outbound::queue`] did.
enum Queued {
    Done(Push),
    /// The shared account could not take `n` more bytes (nothing queued).
    Full(u64),
}

#[derive(Debug)]
struct State {
    buf: BytesMut,
    /// Bytes in `buf` plus bytes handed to the writer and not yet released.
    pending: u64,
    /// What this queue holds charged to the account: `pending`, until an abort releases
    /// it all at once (the writer's chunk is dropped right after, uncharged).
    charged: u64,
    closed: Option<Closed>,
    /// Bytes were queued by [`Outbound::push_deferred`] and the writer is not woken yet.
    wake_due: bool,
    /// The NATS account's own ledger account, once the client is authenticated
    /// (see [`Outbound::set_tenant`]); bytes are charged to it as well as to `account`.
    tenant: Option<Arc<Account>>,
    /// The oldest `untenanted` of the `pending` bytes were queued before `tenant` was
    /// set and are charged to `account` only (the queue is FIFO, so they go first).
    untenanted: u64,
}

/// Writers to wake once a batch of deferred pushes is done (see [`Outbound::push_deferred`]).
#[derive(Debug, Default)]
pub struct Wakes(Vec<Arc<Outbound>>);

impl Wakes {
    /// Wake every recorded writer and forget them.
    pub fn wake_all(&mut self) {
        for out in self.0.drain(..) {
            out.wake();
        }
    }
}

/// The outbound side of one client connection.
#[derive(Debug)]
pub struct Outbound {
    state: Mutex<State>,
    /// Set once `state.closed` is; lets the publish path check without taking the lock.
    is_closed: AtomicBool,
    wake_writer: Notify,
    closed_tx: watch::Sender<Option<Closed>>,
    account: Arc<Account>,
    max_pending: u64,
    /// The pool this queue is a member of, and its key there.
    pool: Option<(Arc<OutboundPool>, u64)>,
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if let Some((pool, key)) = &self.pool {
            pool.members().remove(key);
        }
    }
}

/// The client queues sharing one ledger account, so that at the account's limit the
/// largest of them can be cut (see the module docs). Membership ends when a queue is
/// dropped.
#[derive(Debug, Default)]
pub struct OutboundPool {
    members: Mutex<BTreeMap<u64, Weak<Outbound>>>,
    next: AtomicU64,
    stats: Arc<Stats>,
}

impl OutboundPool {
    /// An empty pool counting the queues it cuts in `stats.slow_consumers` and the
    /// messages it could not queue in `stats.outbound_dropped`.
    pub fn new(stats: Arc<Stats>) -> OutboundPool {
        OutboundPool { members: Mutex::default(), next: AtomicU64::new(0), stats }
    }

    fn members(&self) -> MutexGuard<'_, BTreeMap<u64, Weak<Outbound>>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of queues in the pool.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether the pool has no queues.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cut the largest queues other than `target` that hold at least `floor` bytes, largest
    /// first (ties: the oldest), until `account` can take `need` bytes. Returns whether it can.
    /// Called with no queue's lock held.
    fn relieve(&self, target: &Outbound, account: &Account, need: u64, floor: u64) -> bool {
        loop {
            if account.available() >= need {
                return true;
            }
            let members: Vec<Arc<Outbound>> = self.members().values().filter_map(Weak::upgrade).collect();
            let victim = members
                .iter()
                .filter(|o| !std::ptr::eq(Arc::as_ptr(o), target) && !o.is_closed())
                .map(|o| (o.pending(), o))
                .filter(|(p, _)| *p > 0 && *p >= floor)
                .fold(None::<(u64, &Arc<Outbound>)>, |best, (p, o)| match best {
                    Some((bp, _)) if bp >= p => best,
                    _ => Some((p, o)),
                });
            let Some((pending, victim)) = victim else { return false };
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pending, "slow consumer: the shared outbound limit is reached, closing the largest queue");
            victim.close(Closed::Abort);
        }
    }
}

impl Outbound {
    /// An open, empty queue capped at `max_pending` bytes, charging `account`.
    pub fn new(account: Arc<Account>, max_pending: u64) -> Outbound {
        let (closed_tx, _) = watch::channel(None);
        Outbound {
            state: Mutex::new(State {
                buf: BytesMut::new(),
                pending: 0,
                charged: 0,
                closed: None,
                wake_due: false,
                tenant: None,
                untenanted: 0,
            }),
            is_closed: AtomicBool::new(false),
            wake_writer: Notify::new(),
            closed_tx,
            account,
            max_pending,
            pool: None,
        }
    }

    /// Like [`Outbound::new`], as a member of `pool`: at the account's limit, larger
    /// queues of the pool are cut before this one gives up a message.
    pub fn pooled(account: Arc<Account>, max_pending: u64, pool: &Arc<OutboundPool>) -> Arc<Outbound> {
        let key = pool.next.fetch_add(1, Ordering::Relaxed);
        let mut out = Outbound::new(account, max_pending);
        out.pool = Some((pool.clone(), key));
        let out = Arc::new(out);
        pool.members().insert(key, Arc::downgrade(&out));
        out
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encode `op` onto the queue; on overflow the client becomes a slow consumer.
    pub fn push(&self, op: &ServerOp) -> Push {
        self.push_with(|buf| encode_server(op, buf))
    }

    /// Queue what `encode` appends to the buffer (it may be called again after the pool
    /// made room); on overflow the client becomes a slow consumer.
    pub fn push_with(&self, mut encode: impl FnMut(&mut BytesMut)) -> Push {
        let r = self.queue_or_relieve(&mut encode, |_| {});
        if r == Push::Queued {
            self.wake_writer.notify_one();
        }
        r
    }

    /// Queue, and at the shared limit let the pool cut larger queues and try again.
    /// `queued` runs under the lock once the bytes are queued.
    fn queue_or_relieve(&self, encode: &mut dyn FnMut(&mut BytesMut), mut queued: impl FnMut(&mut State)) -> Push {
        let mut floor = None;
        loop {
            let mut s = self.lock();
            match self.queue(&mut s, &mut *encode) {
                Queued::Done(r) => {
                    if r == Push::Queued {
                        queued(&mut s);
                    }
                    return r;
                }
                Queued::Full(n) => {
                    let floor = *floor.get_or_insert(s.pending + n);
                    drop(s);
                    let Some((pool, _)) = &self.pool else { unreachable!("Full only inside a pool") };
                    if !pool.relieve(self, &self.account, n, floor) {
                        pool.stats.outbound_dropped.fetch_add(1, Ordering::Relaxed);
                        return Push::Dropped;
                    }
                }
            }
        }
    }

    /// Like [`Outbound::push_with`], but the writer is woken later, by `wakes`.
    ///
    /// A publisher's read batch queues many messages; waking each subscriber's writer once
    /// per batch (as nats-server flushes its clients after each read) makes fewer, larger writes.
    pub fn push_deferred(self: &Arc<Self>, mut encode: impl FnMut(&mut BytesMut), wakes: &mut Wakes) -> Push {
        let mut wake = false;
        let r = self.queue_or_relieve(&mut encode, |s| {
            if !s.wake_due {
                s.wake_due = true;
                wake = true;
            }
        });
        if wake {
            wakes.0.push(self.clone());
        }
        r
    }

    fn queue(&self, s: &mut State, encode: &mut dyn FnMut(&mut BytesMut)) -> Queued {
        if s.closed.is_some() {
            return Queued::Done(Push::Closed);
        }
        let before = s.buf.len();
        encode(&mut s.buf);
        let n = (s.buf.len() - before) as u64;
        // The client's own limit first: over it, the client is the offender.
        if s.pending + n > self.max_pending {
            s.buf.truncate(before);
            self.abort_locked(s);
            return Queued::Done(Push::SlowConsumer);
        }
        if !self.account.try_charge(n) {
            s.buf.truncate(before);
            if self.pool.is_some() {
                return Queued::Full(n);
            }
            self.abort_locked(s);
            return Queued::Done(Push::SlowConsumer);
        }
        // The client's NATS account (its tenant) has its own limit: over it, this client
        // is the offender, as with `max_pending`.
        if s.tenant.as_ref().is_some_and(|t| !t.try_charge(n)) {
            self.account.release(n);
            s.buf.truncate(before);
            self.abort_locked(s);
            return Queued::Done(Push::SlowConsumer);
        }
        s.pending += n;
        s.charged += n;
        Queued::Done(Push::Queued)
    }

    fn wake(&self) {
        self.lock().wake_due = false;
        self.wake_writer.notify_one();
    }

    /// Stop taking bytes; `Drain` still lets the writer flush what is queued.
    pub fn close(&self, how: Closed) {
        let mut s = self.lock();
        match (how, s.closed) {
            (_, Some(Closed::Abort)) => return,
            (Closed::Abort, _) => self.abort_locked(&mut s),
            (Closed::Drain, _) => {
                s.closed = Some(Closed::Drain);
                self.is_closed.store(true, Ordering::Release);
            }
        }
        let closed = s.closed;
        drop(s);
        self.closed_tx.send_replace(closed);
        self.wake_writer.notify_one();
    }

    fn abort_locked(&self, s: &mut State) {
        let dropped = s.buf.len() as u64;
        s.buf = BytesMut::new();
        // The dropped bytes are the newest: the tenant's share first.
        let tenant_share = dropped.min(s.pending - s.untenanted);
        if let Some(t) = &s.tenant {
            t.release(tenant_share);
        }
        s.untenanted -= dropped - tenant_share;
        s.pending -= dropped;
        // The writer's chunk (if any) is dropped as soon as it sees the abort; its bytes
        // are released now, so that a pool cutting this queue gets the room at once.
        self.account.release(s.charged);
        s.charged = 0;
        s.closed = Some(Closed::Abort);
        self.is_closed.store(true, Ordering::Release);
        self.closed_tx.send_replace(Some(Closed::Abort));
        self.wake_writer.notify_one();
    }

    /// How the queue was closed, if it was.
    pub fn closed(&self) -> Option<Closed> {
        self.lock().closed
    }

    /// Whether the queue is closed (either way), without taking its lock.
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Bytes queued or being written.
    pub fn pending(&self) -> u64 {
        self.lock().pending
    }

    /// Wait until the queue is closed (either way).
    pub async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|c| c.is_some()).await;
    }

    /// Wait until the queue is aborted, so that a writer blocked on a stalled socket can give up.
    pub async fn wait_aborted(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|c| *c == Some(Closed::Abort)).await;
    }

    /// The next chunk to write; `None` once the queue is closed and has nothing left to write.
    ///
    /// The chunk stays charged until [`Outbound::release`] is called with its length.
    pub async fn next_chunk(&self) -> Option<BytesMut> {
        loop {
            {
                let mut s = self.lock();
                if !s.buf.is_empty() {
                    // A buffer grown by a burst goes with its chunk (and is freed once
                    // written) rather than being reused at its peak size for the life of
                    // the connection (issue 9, fault 4).
                    if s.buf.capacity() > MAX_KEPT_CAPACITY {
                        return Some(std::mem::take(&mut s.buf));
                    }
                    return Some(s.buf.split());
                }
                if s.closed.is_some() {
                    return None;
                }
            }
            // notify_one stores a permit, so a push between the check and here is not lost.
            self.wake_writer.notified().await;
        }
    }

    /// Take what is queued (for unit tests, which have no writer task); releases its charge.
    #[cfg(test)]
    pub(crate) fn take_queued(&self) -> BytesMut {
        let chunk = self.lock().buf.split();
        self.release(chunk.len() as u64);
        chunk
    }

    /// The writer is done with `n` bytes from a chunk (written or not).
    pub fn release(&self, n: u64) {
        let mut s = self.lock();
        s.pending -= n;
        let charged = n.min(s.charged);
        s.charged -= charged;
        self.account.release(charged);
        let old = n.min(s.untenanted);
        s.untenanted -= old;
        if let Some(t) = &s.tenant {
            t.release(n - old);
        }
    }

    /// Charge from now on also `tenant`, the client's NATS account's share of client
    /// memory (set when the client authenticates; a later call moves the charge).
    /// Bytes already queued stay charged to the server-wide account only.
    pub fn set_tenant(&self, tenant: Arc<Account>) {
        let mut s = self.lock();
        if let Some(old) = s.tenant.take() {
            old.release(s.pending - s.untenanted);
        }
        s.untenanted = s.pending;
        s.tenant = Some(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_len() -> u64 {
        let mut b = BytesMut::new();
        encode_server(&ServerOp::Ping, &mut b);
        b.len() as u64
    }

    #[test]
    fn over_max_pending_aborts_and_releases() {
        let acct = Arc::new(Account::new("client.outbound", 1 << 20));
        let q = Outbound::new(acct.clone(), 3 * ping_len());
        for _ in 0..3 {
            assert_eq!(q.push(&ServerOp::Ping), Push::Queued);
        }
        assert_eq!(acct.current(), 3 * ping_len());
        assert_eq!(q.push(&ServerOp::Ping), Push::SlowConsumer);
        assert_eq!(q.closed(), Some(Closed::Abort));
        assert_eq!(acct.current(), 0);
        assert_eq!(q.push(&ServerOp::Ping), Push::Closed);
    }

    #[test]
    fn ledger_limit_also_makes_a_slow_consumer() {
        let acct = Arc::new(Account::new("client.outbound", ping_len()));
        let q = Outbound::new(acct.clone(), 1 << 20);
        assert_eq!(q.push(&ServerOp::Ping), Push::Queued);
        assert_eq!(q.push(&ServerOp::Pong), Push::SlowConsumer);
        assert_eq!(acct.current(), 0);
    }

    #[cfg(not(madsim))]
    #[test]
    fn drain_keeps_queued_bytes_until_released() {
        let acct = Arc::new(Account::new("client.outbound", 1 << 20));
        let q = Outbound::new(acct.clone(), 1 << 20);
        q.push(&ServerOp::Ok);
        q.close(Closed::Drain);
        assert_eq!(q.push(&ServerOp::Ok), Push::Closed);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let chunk = rt.block_on(q.next_chunk()).unwrap();
        assert_eq!(&chunk[..], b"+OK\r\n");
        assert_eq!(acct.current(), 5);
        q.release(chunk.len() as u64);
        assert_eq!(acct.current(), 0);
        assert!(rt.block_on(q.next_chunk()).is_none());
    }

    /// Issue 9, fault 8: at the shared limit the largest other queue is cut, never the
    /// one being written to; with nothing larger to cut, the message is dropped for the
    /// writer's client, which stays open.
    #[test]
    fn the_shared_limit_cuts_the_largest_other_queue_not_the_one_written_to() {
        let acct = Arc::new(Account::new("client.outbound", 1000));
        let stats = Arc::new(Stats::default());
        let pool = Arc::new(OutboundPool::new(stats.clone()));
        let (big, bigger, healthy) = (
            Outbound::pooled(acct.clone(), 1 << 20, &pool),
            Outbound::pooled(acct.clone(), 1 << 20, &pool),
            Outbound::pooled(acct.clone(), 1 << 20, &pool),
        );
        let bytes = |n: usize| move |b: &mut BytesMut| b.extend_from_slice(&vec![b'x'; n]);
        assert_eq!(big.push_with(bytes(400)), Push::Queued);
        assert_eq!(bigger.push_with(bytes(500)), Push::Queued);
        assert_eq!(healthy.push_with(bytes(50)), Push::Queued);
        assert_eq!(acct.current(), 950);
        // 100 more do not fit: the largest other queue goes, and the healthy one is served.
        assert_eq!(healthy.push_with(bytes(100)), Push::Queued);
        assert_eq!(bigger.closed(), Some(Closed::Abort));
        assert_eq!(big.closed(), None);
        assert_eq!(healthy.closed(), None);
        assert_eq!(acct.current(), 550);
        assert_eq!(stats.slow_consumers.load(Ordering::Relaxed), 1);
        // Now `big` is the largest writer: with nothing at least as large to cut, its
        // message is dropped and it stays open; the smaller healthy queue is not cut.
        assert_eq!(big.push_with(bytes(500)), Push::Dropped);
        assert_eq!((big.closed(), healthy.closed()), (None, None));
        assert_eq!(stats.outbound_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(acct.current(), 550);
        // The per-client limit still comes first.
        let small = Outbound::pooled(acct.clone(), 10, &pool);
        assert_eq!(small.push_with(bytes(20)), Push::SlowConsumer);
        drop((big, bigger, small));
        assert_eq!(pool.len(), 1, "dropped queues leave the pool");
    }
}
