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
//!
//! **What a pending message costs.** Deliveries are copied into the queue's last block
//! (64 KiB, [`BLOCK`]) while it has room for them, and a new block is started when it
//! has not, so a pending 1 KiB `MSG` costs its encoded bytes (~1,050 with the `MSG`
//! line) and a queue's slack is the unused end of its blocks (less than one message
//! each) plus its last block. Before, the queue was one buffer grown by doubling, so up
//! to half of a large queue's capacity was slack (issue 9: 500 churning connections
//! held 806 MB of messages in 1.07 GiB of RSS). The writer takes one block at a time
//! and frees it once written, so an emptied queue holds nothing.
//!
//! **Producers wait for a queue that falls behind** (issue 9, as nats-server stalls a
//! fast producer). A queue holding more than its stall mark ([`stall_mark`]: half of
//! `max_pending`, at most [`STALL_MARK`]) is *pressured* until it drains to half the
//! mark; a client whose publish went to a pressured queue stops applying its read
//! batch and waits for the queue to drain, with the broker lock released and bounded
//! by the server's `max_producer_stall` (see `server.rs`). When a wait runs out, the
//! queue is *unresponsive*: no producer waits for it again until it drains, so a
//! stalled subscriber costs each producer one bounded wait and is then cut at
//! `max_pending` as before, while a subscriber that reads, however slowly, gets
//! everything at the pace it reads.

use super::stats::Stats;
use crate::mem::Account;
use crate::proto::{ServerOp, encode_server};
use crate::watch;
use bytes::BytesMut;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// Capacity of a queue's blocks: deliveries are copied into the last block while it
/// has room (as nats-server copies them into 64 KiB buffers); a message larger than a
/// block gets a block of its own size.
pub const BLOCK: usize = 64 * 1024;

/// Room assumed for an op whose encoded size is not known in advance (INFO, -ERR, PONG).
const DEFAULT_HINT: usize = 1024;

/// Most bytes a queue may hold before its producers wait for it, whatever its
/// `max_pending`: a producer outruns the writers (it copies a message to every
/// subscriber in the time a writer sends one), so without a mark well below
/// `max_pending` the queues of healthy subscribers grew to hundreds of MiB in all (issue
/// 9: 500 churning connections filled 806 MB of the 1 GiB `client.outbound`).
pub const STALL_MARK: u64 = 256 * 1024;

/// The pending bytes above which a queue capped at `max_pending` makes its producers
/// wait: half of `max_pending` (nats-server's mark), at most [`STALL_MARK`].
pub fn stall_mark(max_pending: u64) -> u64 {
    (max_pending / 2).min(STALL_MARK)
}

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
    /// Bytes not yet handed to the writer, oldest first; deliveries go into the last block.
    blocks: VecDeque<BytesMut>,
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
    /// Over the stall mark and not yet drained to half of it: producers wait.
    pressured: bool,
    /// A producer's wait for this pressured queue ran out: no producer waits for it
    /// again until it drains (see the module docs).
    unresponsive: bool,
}

impl State {
    /// Bytes in `blocks`.
    fn queued(&self) -> u64 {
        self.blocks.iter().map(|b| b.len() as u64).sum()
    }
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
    /// Pending bytes above which producers wait ([`stall_mark`]).
    stall_at: u64,
    /// Whether producers should wait for this queue (pressured and not unresponsive);
    /// kept beside the state so that the publish path reads it without the lock.
    stalls: AtomicBool,
    /// `true` while producers need not wait (not pressured, or closed).
    room_tx: watch::Sender<bool>,
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
        let (room_tx, _) = watch::channel(true);
        Outbound {
            state: Mutex::new(State {
                blocks: VecDeque::new(),
                pending: 0,
                charged: 0,
                closed: None,
                wake_due: false,
                tenant: None,
                untenanted: 0,
                pressured: false,
                unresponsive: false,
            }),
            is_closed: AtomicBool::new(false),
            wake_writer: Notify::new(),
            closed_tx,
            account,
            max_pending,
            stall_at: stall_mark(max_pending),
            stalls: AtomicBool::new(false),
            room_tx,
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
        self.push_with(DEFAULT_HINT, |buf| encode_server(op, buf))
    }

    /// Queue what `encode` appends to the buffer (it may be called again after the pool
    /// made room); on overflow the client becomes a slow consumer. `hint` is at least
    /// what `encode` appends, if known (the block it goes into has that much room, so
    /// it is not grown; a larger append is still queued whole).
    pub fn push_with(&self, hint: usize, mut encode: impl FnMut(&mut BytesMut)) -> Push {
        let r = self.queue_or_relieve(hint, &mut encode, |_| {});
        if r == Push::Queued {
            self.wake_writer.notify_one();
        }
        r
    }

    /// Queue, and at the shared limit let the pool cut larger queues and try again.
    /// `queued` runs under the lock once the bytes are queued.
    fn queue_or_relieve(
        &self,
        hint: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
        mut queued: impl FnMut(&mut State),
    ) -> Push {
        let mut floor = None;
        loop {
            let mut s = self.lock();
            match self.queue(&mut s, hint, &mut *encode) {
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
    pub fn push_deferred(
        self: &Arc<Self>,
        hint: usize,
        mut encode: impl FnMut(&mut BytesMut),
        wakes: &mut Wakes,
    ) -> Push {
        let mut wake = false;
        let r = self.queue_or_relieve(hint, &mut encode, |s| {
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

    fn queue(&self, s: &mut State, hint: usize, encode: &mut dyn FnMut(&mut BytesMut)) -> Queued {
        if s.closed.is_some() {
            return Queued::Done(Push::Closed);
        }
        // Into the last block if it has room for `hint` bytes, else into a new one.
        let hint = hint.max(1);
        let fits = s.blocks.back().is_some_and(|b| b.capacity() - b.len() >= hint);
        if !fits {
            s.blocks.push_back(BytesMut::with_capacity(hint.max(BLOCK)));
        }
        let block = s.blocks.back_mut().expect("a block to append to");
        let before = block.len();
        encode(block);
        let n = (block.len() - before) as u64;
        let undo = |s: &mut State| {
            let block = s.blocks.back_mut().expect("the block appended to");
            block.truncate(before);
            if block.is_empty() {
                s.blocks.pop_back();
            }
        };
        // The client's own limit first: over it, the client is the offender.
        if s.pending + n > self.max_pending {
            undo(s);
            self.abort_locked(s);
            return Queued::Done(Push::SlowConsumer);
        }
        if !self.account.try_charge(n) {
            undo(s);
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
            undo(s);
            self.abort_locked(s);
            return Queued::Done(Push::SlowConsumer);
        }
        s.pending += n;
        s.charged += n;
        if !s.pressured && s.pending > self.stall_at {
            s.pressured = true;
            self.stalls.store(!s.unresponsive, Ordering::Release);
            self.room_tx.send_replace(false);
        }
        Queued::Done(Push::Queued)
    }

    /// Whether producers should wait for this queue before publishing more: it holds
    /// more than its stall mark and has not yet drained, and no wait for it has run out
    /// since (see the module docs). Read without the queue's lock.
    pub fn stalls_producers(&self) -> bool {
        self.stalls.load(Ordering::Acquire)
    }

    /// Wait until producers need not wait for this queue: it drained to half its stall
    /// mark, or it was aborted. Cancel-safe; the caller bounds the wait.
    pub async fn wait_room(&self) {
        let mut rx = self.room_tx.subscribe();
        let _ = rx.wait_for(|room| *room).await;
    }

    /// A producer's bounded wait for this queue ran out: if it is still pressured, no
    /// producer waits for it again until it drains. Returns whether it was still pressured.
    pub fn stall_ran_out(&self) -> bool {
        let mut s = self.lock();
        if !s.pressured || s.closed.is_some() {
            return false;
        }
        s.unresponsive = true;
        self.stalls.store(false, Ordering::Release);
        true
    }

    /// The queue drained or closed: producers need not wait any more.
    fn room_locked(&self, s: &mut State) {
        if s.pressured {
            s.pressured = false;
            s.unresponsive = false;
            self.stalls.store(false, Ordering::Release);
            self.room_tx.send_replace(true);
        }
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
        let dropped = s.queued();
        s.blocks = VecDeque::new();
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
        self.room_locked(s);
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

    /// The next chunk to write (the oldest block); `None` once the queue is closed and
    /// has nothing left to write.
    ///
    /// The chunk stays charged until [`Outbound::release`] is called with its length.
    /// The block goes with its chunk and is freed once written, so a queue keeps no
    /// buffer at a burst's size for the life of the connection (issue 9, fault 4).
    pub async fn next_chunk(&self) -> Option<BytesMut> {
        loop {
            {
                let mut s = self.lock();
                if let Some(block) = s.blocks.pop_front() {
                    if s.blocks.is_empty() && s.blocks.capacity() > 4 {
                        // The block list of a queue that held many goes back to small.
                        s.blocks = VecDeque::new();
                    }
                    return Some(block);
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
        let mut chunk = BytesMut::new();
        for b in std::mem::take(&mut self.lock().blocks) {
            chunk.extend_from_slice(&b);
        }
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
        if s.pending <= self.stall_at / 2 {
            self.room_locked(&mut s);
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

    /// Issue 9: small deliveries share 64 KiB blocks that never grow, so a pending 1 KiB
    /// message costs its encoded bytes and not a doubled buffer's slack; the writer
    /// takes the blocks oldest first.
    #[cfg(not(madsim))]
    #[test]
    fn deliveries_are_copied_into_blocks_that_do_not_grow() {
        let acct = Arc::new(Account::new("client.outbound", 64 << 20));
        let q = Outbound::new(acct.clone(), 64 << 20);
        let msg = |i: u32| format!("MSG s 1 1024\r\n{:01024}\r\n", i).into_bytes();
        let n = msg(0).len();
        for i in 0..1000 {
            let m = msg(i);
            assert_eq!(q.push_with(m.len(), |b| b.extend_from_slice(&m)), Push::Queued);
        }
        assert_eq!(acct.current(), 1000 * n as u64, "the ledger sees the encoded bytes");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (mut seen, mut blocks) = (Vec::new(), 0);
        while acct.current() > 0 {
            let chunk = rt.block_on(q.next_chunk()).unwrap();
            assert_eq!(chunk.capacity(), BLOCK, "a block is never grown");
            let last = acct.current() == chunk.len() as u64;
            assert!(last || chunk.len() > BLOCK - n, "a block is filled before the next starts");
            q.release(chunk.len() as u64);
            seen.extend_from_slice(&chunk);
            blocks += 1;
        }
        assert_eq!(blocks, 1000usize.div_ceil(BLOCK / n));
        let want: Vec<u8> = (0..1000).flat_map(msg).collect();
        assert!(seen == want, "the writer sees the messages in order");
        // A message larger than a block gets one of its own size.
        let big = vec![b'y'; 3 * BLOCK];
        assert_eq!(q.push_with(big.len(), |b| b.extend_from_slice(&big)), Push::Queued);
        let chunk = rt.block_on(q.next_chunk()).unwrap();
        assert_eq!((chunk.len(), chunk.capacity()), (big.len(), big.len()));
        q.release(chunk.len() as u64);
    }

    /// A queue past its stall mark makes producers wait until it drains to half the
    /// mark; once a wait for it ran out, producers stop waiting for it until it drains.
    #[cfg(not(madsim))]
    #[test]
    fn the_stall_mark_holds_producers_until_the_queue_drains() {
        let acct = Arc::new(Account::new("client.outbound", 64 << 20));
        let q = Outbound::new(acct, 1 << 20);
        assert_eq!(stall_mark(1 << 20), 256 * 1024);
        assert_eq!(stall_mark(64 << 10), 32 << 10, "half of a small max_pending");
        let kib = vec![b'x'; 1024];
        let push = |k: usize| {
            for _ in 0..k {
                assert_eq!(q.push_with(kib.len(), |b| b.extend_from_slice(&kib)), Push::Queued);
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let wait = |q: &Outbound| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(1), q.wait_room()).await.is_ok()
            })
        };
        // Writes one block (64 messages) and releases it.
        let write = |q: &Outbound| {
            let chunk = rt.block_on(q.next_chunk()).unwrap();
            q.release(chunk.len() as u64);
        };
        push(256);
        assert!(!q.stalls_producers(), "at the mark, not past it");
        push(1);
        assert!(q.stalls_producers());
        assert!(!wait(&q), "no room while pressured");
        // Drained to 129 KiB, just above half the mark: still pressured; then to 65 KiB.
        write(&q);
        write(&q);
        assert_eq!(q.pending(), 129 * 1024);
        assert!(q.stalls_producers() && !wait(&q));
        write(&q);
        assert!(!q.stalls_producers() && wait(&q));
        // Pressured again; a producer's wait runs out: nobody waits for it any more,
        // although it is still behind, until it drains and passes the mark again.
        push(200);
        assert!(q.stalls_producers());
        assert!(q.stall_ran_out());
        assert!(!q.stalls_producers());
        push(100);
        assert!(!q.stalls_producers(), "unresponsive until drained");
        while q.pending() > 128 * 1024 {
            write(&q);
        }
        push(200);
        assert!(q.stalls_producers(), "responsive again after draining");
        // An aborted queue lets its producers go.
        q.close(Closed::Abort);
        assert!(!q.stalls_producers() && wait(&q));
        assert!(!q.stall_ran_out());
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
        assert_eq!(big.push_with(400, bytes(400)), Push::Queued);
        assert_eq!(bigger.push_with(500, bytes(500)), Push::Queued);
        assert_eq!(healthy.push_with(50, bytes(50)), Push::Queued);
        assert_eq!(acct.current(), 950);
        // 100 more do not fit: the largest other queue goes, and the healthy one is served.
        assert_eq!(healthy.push_with(100, bytes(100)), Push::Queued);
        assert_eq!(bigger.closed(), Some(Closed::Abort));
        assert_eq!(big.closed(), None);
        assert_eq!(healthy.closed(), None);
        assert_eq!(acct.current(), 550);
        assert_eq!(stats.slow_consumers.load(Ordering::Relaxed), 1);
        // Now `big` is the largest writer: with nothing at least as large to cut, its
        // message is dropped and it stays open; the smaller healthy queue is not cut.
        assert_eq!(big.push_with(500, bytes(500)), Push::Dropped);
        assert_eq!((big.closed(), healthy.closed()), (None, None));
        assert_eq!(stats.outbound_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(acct.current(), 550);
        // The per-client limit still comes first.
        let small = Outbound::pooled(acct.clone(), 10, &pool);
        assert_eq!(small.push_with(20, bytes(20)), Push::SlowConsumer);
        drop((big, bigger, small));
        assert_eq!(pool.len(), 1, "dropped queues leave the pool");
    }
}
