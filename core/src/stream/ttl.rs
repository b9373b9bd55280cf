//! Per-message TTL deadlines (`Nats-TTL`, with `allow_msg_ttl`): which stored sequence
//! must go at which time. Entries are charged to the same ledger account as the dedup
//! window (`stream.dedup`, the stream's per-message time indexes), [`ENTRY_COST`] bytes
//! each; at the limit the publish is refused (429/10167), never an entry dropped. An
//! entry whose message already left (limits, purge, delete) stays until its deadline,
//! when the delete finds nothing; so entries are bounded by the account, not by the
//! stored messages.

use crate::mem::{Account, Charge};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Bytes charged per deadline (a B-tree entry of two words plus node overhead).
pub const ENTRY_COST: u64 = 48;

/// Deadlines as `(deadline_ns, seq)`.
#[derive(Debug)]
pub struct TtlIndex {
    set: BTreeSet<(i64, u64)>,
    account: Arc<Account>,
    charged: u64,
}

impl TtlIndex {
    /// An empty index charging `account`.
    pub fn new(account: Arc<Account>) -> Self {
        TtlIndex { set: BTreeSet::new(), account, charged: 0 }
    }

    /// Number of deadlines held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether one more entry can be charged now.
    pub fn has_room(&self) -> bool {
        self.account.available() >= ENTRY_COST
    }

    /// Charge the account for one entry ahead of [`TtlIndex::insert_charged`] (`None`
    /// when it is full).
    pub fn reserve(&self) -> Option<Charge> {
        Charge::try_new(&self.account, ENTRY_COST)
    }

    /// Record that `seq` expires at `deadline_ns` with a charge from [`TtlIndex::reserve`].
    pub fn insert_charged(&mut self, deadline_ns: i64, seq: u64, charge: Charge) {
        if self.set.insert((deadline_ns, seq)) {
            self.charged += charge.keep();
        }
    }

    /// Record that `seq` expires at `deadline_ns`; `false` when the account is full.
    pub fn insert(&mut self, deadline_ns: i64, seq: u64) -> bool {
        if self.set.contains(&(deadline_ns, seq)) {
            return true;
        }
        if !self.account.try_charge(ENTRY_COST) {
            return false;
        }
        self.charged += ENTRY_COST;
        self.set.insert((deadline_ns, seq));
        true
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<i64> {
        self.set.first().map(|(d, _)| *d)
    }

    /// Take the sequences due at `now_ns` (deadline `<= now_ns`), oldest first.
    pub fn take_due(&mut self, now_ns: i64) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(d, seq)) = self.set.first()
            && d <= now_ns
        {
            self.set.pop_first();
            self.charged -= ENTRY_COST;
            self.account.release(ENTRY_COST);
            due.push(seq);
        }
        due
    }

    /// Check the charge matches the contents.
    pub fn invariants(&self) {
        assert_eq!(self.set.len() as u64 * ENTRY_COST, self.charged, "ttl charge differs from its contents");
        assert!(self.account.current() >= self.charged, "ttl account holds less than the index charged");
    }
}

impl Drop for TtlIndex {
    fn drop(&mut self) {
        self.account.release(self.charged);
    }
}
