//! The store's buffer pool: every block read or write buffer is charged to the
//! `store.buffers` ledger account, whose limit is the pool's hard cap.
//!
//! A request that does not fit first drops the pool's idle buffers, then is refused
//! (`None`): callers that asked for a large buffer as an optimisation (a whole block at
//! recovery, a read-ahead window) fall back to a smaller one; callers that need the bytes
//! report [`StoreError::NoMemory`](super::StoreError::NoMemory). Idle buffers are kept up to a
//! byte budget for reuse and dropped by [`BufferPool::trim`].
//!
//! Known-bug switches: `unbounded` charges past the cap (`force_charge`) instead of
//! refusing, so callers always get their large buffers; `leak` never returns the charge
//! of read buffers handed back through [`BufferPool::finish_read`].

use crate::mem::{Account, Charge};
use std::sync::Arc;

/// A buffer from the pool; its capacity is charged to `store.buffers` while it lives.
#[derive(Debug)]
pub struct PoolBuf {
    data: Vec<u8>,
    charge: Charge,
}

impl PoolBuf {
    /// The buffer (empty when taken; do not grow it past its capacity).
    pub fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Bytes charged for this buffer.
    pub fn charged(&self) -> u64 {
        self.charge.bytes()
    }
}

/// A byte-capped pool of buffers charged to a ledger account.
#[derive(Debug)]
pub struct BufferPool {
    account: Arc<Account>,
    idle: Vec<PoolBuf>,
    idle_bytes: u64,
    max_idle: u64,
    unbounded: bool,
    leak: bool,
}

impl BufferPool {
    /// A pool charging `account`, keeping at most `max_idle` idle bytes for reuse.
    pub fn new(account: Arc<Account>, max_idle: u64) -> Self {
        BufferPool { account, idle: Vec::new(), idle_bytes: 0, max_idle, unbounded: false, leak: false }
    }

    /// Turn the known-bug switches on or off.
    pub fn set_bugs(&mut self, unbounded: bool, leak: bool) {
        self.unbounded = unbounded;
        self.leak = leak;
    }

    /// The account charged.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Idle bytes kept for reuse.
    pub fn idle_bytes(&self) -> u64 {
        self.idle_bytes
    }

    /// Drop every idle buffer.
    pub fn trim(&mut self) {
        self.idle.clear();
        self.idle_bytes = 0;
    }

    /// Charge `n` bytes, dropping idle buffers if needed; `None` when over the cap.
    fn charge(&mut self, n: usize) -> Option<Charge> {
        let n = n as u64;
        if let Some(c) = Charge::try_new(&self.account, n) {
            return Some(c);
        }
        self.trim();
        if let Some(c) = Charge::try_new(&self.account, n) {
            return Some(c);
        }
        self.unbounded.then(|| Charge::force(&self.account, n))
    }

    /// An empty buffer of capacity at least `min`, or `None` when the cap refuses it.
    pub fn take(&mut self, min: usize) -> Option<PoolBuf> {
        let best = (0..self.idle.len())
            .filter(|&i| self.idle[i].data.capacity() >= min)
            .min_by_key(|&i| self.idle[i].data.capacity());
        if let Some(i) = best {
            let b = self.idle.swap_remove(i);
            self.idle_bytes -= b.charge.bytes();
            return Some(b);
        }
        let charge = self.charge(min)?;
        Some(PoolBuf { data: Vec::with_capacity(min), charge })
    }

    /// Hand a buffer back: kept for reuse if the idle budget allows, else freed.
    pub fn put(&mut self, mut b: PoolBuf) {
        b.data.clear();
        let fits = b.data.capacity() as u64 <= b.charge.bytes();
        if fits && self.idle_bytes + b.charge.bytes() <= self.max_idle {
            self.idle_bytes += b.charge.bytes();
            self.idle.push(b);
        }
    }

    /// Reserve `n` bytes for a read whose buffer the disk allocates; `None` over the cap.
    pub fn reserve(&mut self, n: usize) -> Option<Charge> {
        self.charge(n)
    }

    /// The read that `c` was reserved for is over.
    pub fn finish_read(&mut self, c: Charge) {
        if self.leak {
            // Known bug `buffer_leak`: the reservation is never returned to the account.
            std::mem::forget(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_refuses_then_trims_idle() {
        let acct = Arc::new(Account::new("store.buffers", 100));
        let mut p = BufferPool::new(acct.clone(), 100);
        let a = p.take(60).unwrap();
        assert!(p.take(60).is_none());
        p.put(a);
        assert_eq!(acct.current(), 60);
        let b = p.take(80).unwrap();
        assert_eq!(acct.current(), 80);
        drop(b);
        assert_eq!(acct.current(), 0);
        p.set_bugs(true, false);
        let _x = p.take(90).unwrap();
        let _y = p.take(90).unwrap();
        assert!(acct.peak() > acct.limit());
    }
}
