//! A client connection's read buffer, charged to the ledger's `client.buffers` account
//! and shrunk back after a burst (issue 9, fault 4).
//!
//! The buffer holds what was read and not yet parsed. It grows while a message larger
//! than a read arrives (the parser needs a whole message in one piece), and a grown
//! buffer used to stay at its peak for the life of the connection, charged to nothing:
//! 40 clients that each sent one 8 MB message kept 300 MiB. Now its capacity is charged
//! after every change, and once what it holds fits a normal read again it is replaced by
//! a normal-sized one.
//!
//! At the account's limit two rules keep every connection live:
//!
//! - **The base is always granted.** The first [`READ_CHUNK`] of a buffer is charged even
//!   past the limit, so a connection can always read its next control line (a PING, an
//!   UNSUB) whatever the others hold. The overshoot is bounded: at most [`READ_CHUNK`]
//!   per connection, and connections are capped by `max_connections`, so the account
//!   never exceeds `limit + READ_CHUNK × max_connections`; it is charged (the ledger's
//!   peak shows it), not hidden.
//! - **Growth past the base never waits without bound.** When a growth is refused, the
//!   largest holder of the account is shed: it gets `-ERR 'maximum client buffers
//!   exceeded'` and is closed (logged at warn, counted in [`ReadBufs::shed`]). The asking
//!   connection counts with the size it asks for, so it may be the one shed. Otherwise it
//!   waits until the victim's buffer is released (a [`Notify`], no polling) and tries
//!   again. Each round removes one holder, so the wait ends. Shedding the largest rather
//!   than failing the asker after a timeout is the rule `client.outbound` already follows
//!   (its largest queues are cut at the limit): it needs no timer, it frees the most
//!   memory per connection closed, and it picks the offender, not whoever asked last.
//!   Without it, holders all partway through messages larger than their buffers would
//!   wait for one another forever.

use super::outbound::{Closed, Outbound};
use crate::mem::Account;
use crate::proto::ServerOp;
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Read size, and the capacity a buffer shrinks back to (the base that is always granted).
pub const READ_CHUNK: usize = 64 * 1024;

/// The `-ERR` text of a connection shed at the `client.buffers` limit (worded as
/// nats-server's "maximum ... exceeded" errors; nats-server itself has no shared
/// read-buffer budget).
pub const ERR_BUFFERS_EXCEEDED: &str = "maximum client buffers exceeded";

/// One holder of the account: its charge and the queue to close it by.
#[derive(Debug)]
struct Holder {
    charged: u64,
    out: Arc<Outbound>,
    /// Already told to close; its charge is on its way back.
    shed: bool,
}

/// The `client.buffers` account shared by every connection's [`ReadBuf`]: who holds
/// what, so that at the limit the largest can be shed, and a wake-up for connections
/// waiting for room.
#[derive(Debug)]
pub struct ReadBufs {
    account: Arc<Account>,
    holders: Mutex<BTreeMap<u64, Holder>>,
    freed: Notify,
    shed: AtomicU64,
}

impl ReadBufs {
    /// Buffers charging `account` (normally the ledger's `client.buffers`).
    pub fn new(account: Arc<Account>) -> Arc<ReadBufs> {
        Arc::new(ReadBufs {
            account,
            holders: Mutex::new(BTreeMap::new()),
            freed: Notify::new(),
            shed: AtomicU64::new(0),
        })
    }

    /// The account charged.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Connections shed at the limit so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// A wake-up that fires when some buffer gives its charge back. Enable it before the
    /// [`ReadBuf::prepare`] it follows, so that a release in between is not missed.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Holder>> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_charge(&self, id: u64, charged: u64) {
        if let Some(h) = self.lock().get_mut(&id) {
            h.charged = charged;
        }
    }

    fn release(&self, bytes: u64) {
        if bytes > 0 {
            self.account.release(bytes);
            self.freed.notify_waiters();
        }
    }

    /// Holder `id` was refused a growth to `wanted` bytes: shed the largest holder
    /// (`id` counting as `wanted`), unless one shed earlier is still giving its charge
    /// back (then its release is the room to wait for).
    fn shed_for(&self, id: u64, wanted: u64) {
        let victim = {
            let mut holders = self.lock();
            if holders.values().any(|h| h.shed) {
                return;
            }
            let size = |k: u64, h: &Holder| if k == id { wanted.max(h.charged) } else { h.charged };
            // Largest first; on a tie the asker, then the lowest id (a deterministic pick).
            let Some((&k, _)) = holders.iter().max_by_key(|&(&k, h)| (size(k, h), k == id, std::cmp::Reverse(k)))
            else {
                return;
            };
            let h = holders.get_mut(&k).expect("picked from the map");
            h.shed = true;
            (k, h.charged, h.out.clone())
        };
        let (k, charged, out) = victim;
        self.shed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            client = k,
            asked_by = id,
            held = charged,
            limit = self.account.limit(),
            "client.buffers limit reached: closing the connection holding the largest read buffer"
        );
        out.push(&ServerOp::Err(ERR_BUFFERS_EXCEEDED.to_owned()));
        out.close(Closed::Drain);
    }
}

/// What [`ReadBuf::prepare`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// There is room for the next read.
    Ready,
    /// The growth was refused and a holder was shed (maybe this one: its queue is then
    /// closed): wait for [`ReadBufs::freed`] or the close, then prepare again.
    Wait,
}

/// A connection's read buffer and what it has charged.
#[derive(Debug)]
pub struct ReadBuf {
    buf: BytesMut,
    charged: u64,
    /// The shared account and this buffer's key in it (none: uncharged, as in unit tests).
    pool: Option<(Arc<ReadBufs>, u64)>,
}

impl ReadBuf {
    /// An empty, uncharged buffer (unit tests).
    pub fn uncharged() -> ReadBuf {
        ReadBuf { buf: BytesMut::new(), charged: 0, pool: None }
    }

    /// An empty buffer of connection `id` charging `pool`; `out` is closed if it is shed.
    pub fn new(pool: Arc<ReadBufs>, id: u64, out: Arc<Outbound>) -> ReadBuf {
        pool.lock().insert(id, Holder { charged: 0, out, shed: false });
        ReadBuf { buf: BytesMut::new(), charged: 0, pool: Some((pool, id)) }
    }

    /// The bytes read and not yet parsed.
    pub fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes charged for this buffer now.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// Shrink a buffer grown by a burst, make room for the next read and charge the
    /// capacity. [`Prepared::Wait`] means the account refused the growth: do not read
    /// until a later call returns [`Prepared::Ready`] (the room is reserved but not used
    /// meanwhile).
    pub fn prepare(&mut self) -> Prepared {
        self.shrink();
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        if self.settle() {
            return Prepared::Ready;
        }
        if let Some((pool, id)) = &self.pool {
            pool.shed_for(*id, self.buf.capacity() as u64);
        }
        Prepared::Wait
    }

    /// Replace a buffer of more than twice the normal capacity by a normal one once
    /// what it holds fits in half a normal read.
    ///
    /// The decision uses the charge, not `capacity()`: once the parser has split ops off
    /// the front, `capacity()` counts only the tail, while the allocation (which the
    /// next reserve would reclaim whole) is still the grown one.
    fn shrink(&mut self) {
        if self.charged <= 2 * READ_CHUNK as u64 || self.buf.len() > READ_CHUNK / 2 {
            return;
        }
        let mut small = BytesMut::with_capacity(READ_CHUNK);
        small.extend_from_slice(&self.buf);
        self.buf = small;
        let freed = self.charged;
        self.charged = 0;
        if let Some((pool, id)) = &self.pool {
            pool.set_charge(*id, 0);
            pool.release(freed);
        }
    }

    /// Raise the charge to the buffer's capacity if it grew; false if the growth past
    /// the base was refused. The base ([`READ_CHUNK`]) is always charged, even past the
    /// limit (see the module comment). The charge only comes down when
    /// [`ReadBuf::shrink`] replaces the buffer.
    fn settle(&mut self) -> bool {
        let cap = self.buf.capacity() as u64;
        if cap <= self.charged {
            return true;
        }
        let Some((pool, id)) = &self.pool else {
            self.charged = cap;
            return true;
        };
        let base = cap.min(READ_CHUNK as u64);
        if self.charged < base {
            // Granted whatever the limit: bounded by READ_CHUNK × max_connections.
            pool.account.force_charge(base - self.charged);
            self.charged = base;
        }
        let granted = cap <= self.charged || pool.account.try_charge(cap - self.charged);
        if granted {
            self.charged = cap;
        }
        pool.set_charge(*id, self.charged);
        granted
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let Some((pool, id)) = &self.pool {
            pool.lock().remove(id);
            pool.release(self.charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pool: &Arc<ReadBufs>, id: u64) -> (ReadBuf, Arc<Outbound>) {
        let out = Arc::new(Outbound::new(Arc::new(Account::new("client.outbound", 1 << 20)), 1 << 20));
        (ReadBuf::new(pool.clone(), id, out.clone()), out)
    }

    /// Fill the spare room of `rb` as a read would (a message larger than the buffer).
    fn fill(rb: &mut ReadBuf) {
        let spare = rb.bytes().capacity() - rb.bytes().len();
        rb.bytes().extend_from_slice(&vec![b'x'; spare]);
    }

    /// Issue 9, fault 4: a buffer grown for an 8 MB message is charged while it is
    /// needed and goes back to a normal read's size (and charge) once parsed.
    #[test]
    fn a_burst_is_charged_and_shrinks_back() {
        let pool = ReadBufs::new(Arc::new(Account::new("client.buffers", 32 << 20)));
        let account = pool.account().clone();
        let (mut rb, _out) = holder(&pool, 1);
        assert_eq!(rb.prepare(), Prepared::Ready);
        assert_eq!(account.current(), READ_CHUNK as u64);
        // A large message arrives, read after read.
        while rb.bytes().len() < 8 << 20 {
            assert_eq!(rb.prepare(), Prepared::Ready);
            let spare = rb.bytes().capacity() - rb.bytes().len();
            let n = spare.min((8 << 20) - rb.bytes().len());
            rb.bytes().extend_from_slice(&vec![b'x'; n]);
            assert_eq!(account.current(), rb.bytes().capacity() as u64, "the capacity is charged");
        }
        assert!(account.current() >= 8 << 20);
        // Parsed (split off and dropped), with a small remainder of the next op left.
        drop(rb.bytes().split_to((8 << 20) - 10));
        assert_eq!(rb.prepare(), Prepared::Ready);
        assert_eq!(rb.bytes().len(), 10);
        assert_eq!(rb.bytes().capacity(), READ_CHUNK);
        assert_eq!(account.current(), READ_CHUNK as u64);
        assert_eq!(rb.charged(), READ_CHUNK as u64);
        drop(rb);
        assert_eq!(account.current(), 0);
        assert_eq!(pool.shed(), 0);
    }

    /// Liveness (a): a connection with no buffer yet gets its base even when the account
    /// is full, so it can still read a PING; the overshoot is charged, not hidden.
    #[test]
    fn the_base_is_granted_past_the_limit() {
        let pool = ReadBufs::new(Arc::new(Account::new("client.buffers", READ_CHUNK as u64)));
        let (mut a, _oa) = holder(&pool, 1);
        let (mut b, ob) = holder(&pool, 2);
        assert_eq!(a.prepare(), Prepared::Ready);
        assert_eq!(b.prepare(), Prepared::Ready, "the base is granted at the limit");
        assert_eq!(pool.account().current(), 2 * READ_CHUNK as u64);
        assert_eq!(pool.account().peak(), 2 * READ_CHUNK as u64, "the overshoot shows in the peak");
        assert!(!ob.is_closed());
        // A growth past the base is refused; the asker is the largest and is shed.
        fill(&mut b);
        assert_eq!(b.prepare(), Prepared::Wait);
        assert_eq!(ob.closed(), Some(Closed::Drain));
        assert_eq!(ob.pending(), format!("-ERR '{ERR_BUFFERS_EXCEEDED}'\r\n").len() as u64);
        assert_eq!(pool.shed(), 1);
        drop((a, b));
        assert_eq!(pool.account().current(), 0);
    }

    /// Liveness (b): two connections each partway through a message larger than their
    /// buffers, at a limit that cannot hold both growths. Before, both waited for the
    /// other forever; now the largest is shed (once, even if the other asks again
    /// before the charge is back) and the other finishes its message.
    #[test]
    fn holders_partway_through_large_messages_shed_the_largest() {
        let limit = 4 * READ_CHUNK as u64;
        let pool = ReadBufs::new(Arc::new(Account::new("client.buffers", limit)));
        let (mut a, oa) = holder(&pool, 1);
        let (mut b, ob) = holder(&pool, 2);
        for rb in [&mut a, &mut b] {
            assert_eq!(rb.prepare(), Prepared::Ready);
            fill(rb);
            assert_eq!(rb.prepare(), Prepared::Ready, "the first growth fits");
            fill(rb);
        }
        assert_eq!(pool.account().current(), limit);
        // `a` asks to grow: it would be the largest, so it is the one shed.
        assert_eq!(a.prepare(), Prepared::Wait);
        assert_eq!((oa.closed(), ob.closed()), (Some(Closed::Drain), None));
        // `b` asks before `a` has given its charge back: nobody else is shed.
        assert_eq!(b.prepare(), Prepared::Wait);
        assert_eq!((pool.shed(), ob.is_closed()), (1, false));
        // `a`'s connection ends; `b` grows and can take the rest of its message.
        drop(a);
        assert_eq!(b.prepare(), Prepared::Ready);
        assert!(b.charged() > 2 * READ_CHUNK as u64);
        assert!(pool.account().peak() <= limit, "growth never passes the limit");
        drop(b);
        assert_eq!(pool.account().current(), 0);
    }

    /// The largest holder other than the asker is shed when it is larger than what the
    /// asker wants.
    #[test]
    fn a_larger_other_holder_is_shed_for_the_asker() {
        let limit = 5 * READ_CHUNK as u64;
        let pool = ReadBufs::new(Arc::new(Account::new("client.buffers", limit)));
        let (mut big, obig) = holder(&pool, 1);
        assert_eq!(big.prepare(), Prepared::Ready);
        while big.charged() < 4 * READ_CHUNK as u64 {
            fill(&mut big);
            assert_eq!(big.prepare(), Prepared::Ready);
        }
        let (mut small, osmall) = holder(&pool, 2);
        assert_eq!(small.prepare(), Prepared::Ready);
        fill(&mut small);
        assert_eq!(small.prepare(), Prepared::Wait);
        assert_eq!((obig.closed(), osmall.closed()), (Some(Closed::Drain), None));
        drop(big);
        assert_eq!(small.prepare(), Prepared::Ready);
        assert_eq!(pool.shed(), 1);
    }

    /// Uncharged buffers (no pool) always get their room.
    #[test]
    fn an_uncharged_buffer_is_always_ready() {
        let mut rb = ReadBuf::uncharged();
        for _ in 0..4 {
            assert_eq!(rb.prepare(), Prepared::Ready);
            fill(&mut rb);
        }
        assert!(rb.charged() >= 4 * READ_CHUNK as u64);
    }
}
