//! The block cache: windows of block files (immutable, since blocks are append-only),
//! charged to the `store.cache` ledger account, capped in bytes (least recently used
//! windows are evicted first) and dropped after an idle period measured on the caller's
//! clock ([`BlockCache::expire`]). With nothing read for `expiry`, the cache is empty
//! and its account back at zero.

use crate::mem::{Account, Charge};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct Entry {
    data: Vec<u8>,
    _charge: Charge,
    lru: u64,
    used_at: Duration,
}

/// Cached windows of block files, keyed by `(block index, start offset)`.
#[derive(Debug)]
pub struct BlockCache {
    account: Arc<Account>,
    cap: u64,
    expiry: Duration,
    entries: BTreeMap<(u64, u64), Entry>,
    bytes: u64,
    clock: u64,
    now: Duration,
}

impl BlockCache {
    /// A cache charging `account`, holding at most `cap` bytes, dropping windows idle for `expiry`.
    pub fn new(account: Arc<Account>, cap: u64, expiry: Duration) -> Self {
        BlockCache { account, cap, expiry, entries: BTreeMap::new(), bytes: 0, clock: 0, now: Duration::ZERO }
    }

    /// Bytes cached.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of cached windows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes `[off, off + len)` of block `block`, if one window holds them all.
    pub fn get(&mut self, block: u64, off: u64, len: usize) -> Option<&[u8]> {
        let (&(b, start), e) = self.entries.range_mut(..=(block, off)).next_back()?;
        if b != block || start + (e.data.len() as u64) < off + len as u64 {
            return None;
        }
        self.clock += 1;
        e.lru = self.clock;
        e.used_at = self.now;
        let from = (off - start) as usize;
        Some(&e.data[from..from + len])
    }

    fn evict_lru(&mut self) -> bool {
        let Some(key) = self.entries.iter().min_by_key(|(_, e)| e.lru).map(|(k, _)| *k) else { return false };
        let e = self.entries.remove(&key).expect("present");
        self.bytes -= e.data.len() as u64;
        true
    }

    /// Cache `data` as the window of block `block` starting at `off` (silently skipped
    /// when it cannot fit under the cap or the account's limit).
    pub fn insert(&mut self, block: u64, off: u64, data: Vec<u8>) {
        let n = data.len() as u64;
        if n == 0 || n > self.cap {
            return;
        }
        if let Some(old) = self.entries.remove(&(block, off)) {
            self.bytes -= old.data.len() as u64;
        }
        while self.bytes + n > self.cap {
            self.evict_lru();
        }
        let charge = loop {
            if let Some(c) = Charge::try_new(&self.account, n) {
                break c;
            }
            if !self.evict_lru() {
                return;
            }
        };
        self.clock += 1;
        self.bytes += n;
        self.entries.insert((block, off), Entry { data, _charge: charge, lru: self.clock, used_at: self.now });
    }

    /// Forget every window of `block` (the block file is gone).
    pub fn remove_block(&mut self, block: u64) {
        let keys: Vec<(u64, u64)> = self.entries.range((block, 0)..=(block, u64::MAX)).map(|(k, _)| *k).collect();
        for k in keys {
            let e = self.entries.remove(&k).expect("present");
            self.bytes -= e.data.len() as u64;
        }
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Advance the clock to `now` and drop windows unused for the expiry period.
    pub fn expire(&mut self, now: Duration) {
        self.now = self.now.max(now);
        let (now, expiry) = (self.now, self.expiry);
        let before = self.entries.len();
        self.entries.retain(|_, e| now.saturating_sub(e.used_at) < expiry);
        if self.entries.len() != before {
            self.bytes = self.entries.values().map(|e| e.data.len() as u64).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_lru_and_expiry() {
        let acct = Arc::new(Account::new("store.cache", 1000));
        let mut c = BlockCache::new(acct.clone(), 120, Duration::from_secs(10));
        c.insert(1, 0, vec![1; 60]);
        c.insert(1, 100, vec![2; 30]);
        assert_eq!(c.get(1, 10, 5), Some(&[1u8; 5][..]));
        c.insert(2, 0, vec![3; 50]); // evicts the LRU window (block 1 @ 100)
        assert!(c.get(1, 100, 1).is_none());
        assert_eq!(acct.current(), 110);
        c.expire(Duration::from_secs(5));
        assert_eq!(c.len(), 2);
        c.expire(Duration::from_secs(10));
        assert!(c.is_empty());
        assert_eq!(acct.current(), 0);
    }
}
