//! A client's outbound queue: bytes waiting for the writer task, bounded per client by
//! `max_pending` and charged to the node ledger's `client.outbound` account.
//!
//! Bytes stay charged from the moment they are queued until the writer has written
//! them (or the queue is aborted), so the ledger sees everything a client holds.

use crate::mem::Account;
use crate::proto::{ServerOp, encode_server};
use bytes::BytesMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

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
    /// Over `max_pending` or the ledger account's limit: the queue is now aborted.
    SlowConsumer,
}

#[derive(Debug)]
struct State {
    buf: BytesMut,
    /// Bytes in `buf` plus bytes handed to the writer and not yet released.
    pending: u64,
    closed: Option<Closed>,
    /// Bytes were queued by [`Outbound::push_deferred`] and the writer is not woken yet.
    wake_due: bool,
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
}

impl Outbound {
    /// An open, empty queue capped at `max_pending` bytes, charging `account`.
    pub fn new(account: Arc<Account>, max_pending: u64) -> Outbound {
        let (closed_tx, _) = watch::channel(None);
        Outbound {
            state: Mutex::new(State { buf: BytesMut::new(), pending: 0, closed: None, wake_due: false }),
            is_closed: AtomicBool::new(false),
            wake_writer: Notify::new(),
            closed_tx,
            account,
            max_pending,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encode `op` onto the queue; on overflow the client becomes a slow consumer.
    pub fn push(&self, op: &ServerOp) -> Push {
        self.push_with(|buf| encode_server(op, buf))
    }

    /// Queue what `encode` appends to the buffer; on overflow the client becomes a slow consumer.
    pub fn push_with(&self, encode: impl FnOnce(&mut BytesMut)) -> Push {
        let r = self.queue(&mut self.lock(), encode);
        if r == Push::Queued {
            self.wake_writer.notify_one();
        }
        r
    }

    /// Like [`Outbound::push_with`], but the writer is woken later, by `wakes`.
    ///
    /// A publisher's read batch queues many messages; waking each subscriber's writer once
    /// per batch (as nats-server flushes its clients after each read) makes fewer, larger writes.
    pub fn push_deferred(self: &Arc<Self>, encode: impl FnOnce(&mut BytesMut), wakes: &mut Wakes) -> Push {
        let mut s = self.lock();
        let r = self.queue(&mut s, encode);
        if r == Push::Queued && !s.wake_due {
            s.wake_due = true;
            wakes.0.push(self.clone());
        }
        r
    }

    fn queue(&self, s: &mut State, encode: impl FnOnce(&mut BytesMut)) -> Push {
        if s.closed.is_some() {
            return Push::Closed;
        }
        let before = s.buf.len();
        encode(&mut s.buf);
        let n = (s.buf.len() - before) as u64;
        if s.pending + n > self.max_pending || !self.account.try_charge(n) {
            s.buf.truncate(before);
            self.abort_locked(s);
            return Push::SlowConsumer;
        }
        s.pending += n;
        Push::Queued
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
        s.pending -= dropped;
        self.account.release(dropped);
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
        let mut s = self.lock();
        let chunk = s.buf.split();
        s.pending -= chunk.len() as u64;
        self.account.release(chunk.len() as u64);
        chunk
    }

    /// The writer is done with `n` bytes from a chunk (written or not).
    pub fn release(&self, n: u64) {
        let mut s = self.lock();
        s.pending -= n;
        self.account.release(n);
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
}
