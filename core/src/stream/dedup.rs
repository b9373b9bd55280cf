//! The `Nats-Msg-Id` dedup window of a stream: which ids were stored, at which
//! sequence and time, so that a retry inside `duplicate_window` is answered with the
//! original sequence instead of being stored twice.
//!
//! Memory is bounded by the ledger account `stream.dedup`: every entry is charged
//! [`entry_cost`] bytes. When the account cannot hold a new entry the publish is
//! **refused** (the caller answers 429 / 10167 "too many requests", a retryable
//! error) rather than an old id evicted early: evicting would silently break the
//! promise "no duplicate within the window" that clients and the checker rely on,
//! while a refusal is visible and the client retries once ids expire. Expired ids
//! (older than the window) are dropped on every publish and tick, returning their
//! memory; purging a subject drops its ids (unlike nats-server, issue #6782).

use crate::mem::{Account, Charge};
use crate::subject::matches as subject_matches;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::mem::names::STREAM_DEDUP;

/// Fixed bytes charged per entry besides its id and subject (two map nodes, seq, time).
const ENTRY_OVERHEAD: u64 = 96;

/// Bytes one entry is charged: its id twice (both maps hold it), its subject and a
/// fixed overhead for the map nodes.
pub fn entry_cost(id: &str, subject: &str) -> u64 {
    2 * id.len() as u64 + subject.len() as u64 + ENTRY_OVERHEAD
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    seq: u64,
    ts_ns: i64,
    subject: String,
}

/// The dedup index: ids by name and by `(time, seq)`, both always holding the same set.
#[derive(Debug)]
pub struct Dedup {
    by_id: BTreeMap<String, Entry>,
    by_time: BTreeMap<(i64, u64), String>,
    account: Arc<Account>,
    charged: u64,
}

impl Dedup {
    /// An empty index charging `account`.
    pub fn new(account: Arc<Account>) -> Self {
        Dedup { by_id: BTreeMap::new(), by_time: BTreeMap::new(), account, charged: 0 }
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Bytes this index holds on its account.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// The sequence stored under `id`, if it is in the window.
    pub fn lookup(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).map(|e| e.seq)
    }

    /// Highest sequence held (0 when empty).
    pub fn lookup_max_seq(&self) -> u64 {
        self.by_id.values().map(|e| e.seq).max().unwrap_or(0)
    }

    /// Time of the oldest entry (for the next expiry deadline).
    pub fn oldest_ts(&self) -> Option<i64> {
        self.by_time.keys().next().map(|(ts, _)| *ts)
    }

    /// Whether an entry for `id`/`subject` can be charged now.
    pub fn can_insert(&self, id: &str, subject: &str) -> bool {
        self.account.available() >= entry_cost(id, subject)
    }

    /// Charge the account for an entry for `id`/`subject` ahead of [`Dedup::insert_charged`]
    /// (`None` when it cannot hold one), so that the message is stored only once its
    /// entry is paid for.
    pub fn reserve(&self, id: &str, subject: &str) -> Option<Charge> {
        Charge::try_new(&self.account, entry_cost(id, subject))
    }

    /// Record `id` for the message `seq` stored at `ts_ns` with a charge from
    /// [`Dedup::reserve`] for the same id and subject; an older entry for the same id
    /// is replaced.
    pub fn insert_charged(&mut self, id: &str, subject: &str, seq: u64, ts_ns: i64, charge: Charge) {
        self.remove_id(id);
        debug_assert_eq!(charge.bytes(), entry_cost(id, subject), "the reservation was for this entry");
        self.charged += charge.keep();
        self.by_time.insert((ts_ns, seq), id.to_string());
        self.by_id.insert(id.to_string(), Entry { seq, ts_ns, subject: subject.to_string() });
    }

    /// Record `id` for the message `seq` stored at `ts_ns`. `false` (nothing recorded)
    /// when the account cannot hold it. An older entry for the same id is replaced.
    pub fn insert(&mut self, id: &str, subject: &str, seq: u64, ts_ns: i64) -> bool {
        self.remove_id(id);
        let cost = entry_cost(id, subject);
        if !self.account.try_charge(cost) {
            return false;
        }
        self.charged += cost;
        self.by_time.insert((ts_ns, seq), id.to_string());
        self.by_id.insert(id.to_string(), Entry { seq, ts_ns, subject: subject.to_string() });
        true
    }

    fn remove_id(&mut self, id: &str) -> bool {
        let Some(e) = self.by_id.remove(id) else { return false };
        self.by_time.remove(&(e.ts_ns, e.seq));
        let cost = entry_cost(id, &e.subject);
        self.charged -= cost;
        self.account.release(cost);
        true
    }

    /// Every entry as `(id, subject, seq, ts_ns)`, oldest first (to carry the window
    /// into another index, see [`super::Stream::adopt_dedup`]).
    pub fn entries(&self) -> Vec<(String, String, u64, i64)> {
        self.by_time
            .iter()
            .filter_map(|(&(ts, seq), id)| self.by_id.get(id).map(|e| (id.clone(), e.subject.clone(), seq, ts)))
            .collect()
    }

    /// Drop the entries of the sequences in `seqs` (publishes that were refused after
    /// all); returns how many.
    pub fn forget_seqs(&mut self, seqs: &[u64]) -> usize {
        let gone: Vec<String> =
            self.by_id.iter().filter(|(_, e)| seqs.contains(&e.seq)).map(|(id, _)| id.clone()).collect();
        gone.iter().filter(|id| self.remove_id(id)).count()
    }

    /// Drop the oldest entry; `false` if there was none.
    pub fn pop_oldest(&mut self) -> bool {
        self.pop_oldest_ts().is_some()
    }

    /// Drop the oldest entry and return the time it was stored at (`None`: empty).
    pub fn pop_oldest_ts(&mut self) -> Option<i64> {
        let (&(ts, _), id) = self.by_time.iter().next()?;
        let id = id.clone();
        self.remove_id(&id).then_some(ts)
    }

    /// Drop entries stored at or before `cutoff_ns` (outside the window); returns how many.
    pub fn expire(&mut self, cutoff_ns: i64) -> usize {
        let old: Vec<String> = self.by_time.range(..=(cutoff_ns, u64::MAX)).map(|(_, id)| id.clone()).collect();
        old.iter().filter(|id| self.remove_id(id)).count()
    }

    /// Drop entries whose subject matches `filter` (all if `None`) and whose sequence
    /// is below `below_seq`: what a purge removed. Returns how many.
    pub fn purge(&mut self, filter: Option<&str>, below_seq: u64) -> usize {
        let gone: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.seq < below_seq && filter.is_none_or(|f| subject_matches(f, &e.subject)))
            .map(|(id, _)| id.clone())
            .collect();
        gone.iter().filter(|id| self.remove_id(id)).count()
    }

    /// Move the ids out, charges and all, leaving this index empty (charging the same
    /// account).
    pub fn take(&mut self) -> Dedup {
        let empty = Dedup::new(self.account.clone());
        std::mem::replace(self, empty)
    }

    /// Drop everything (returns the memory).
    pub fn clear(&mut self) {
        while self.pop_oldest() {}
    }

    /// Check the two maps agree and the charge matches the contents (the walk of the
    /// entries only when [`crate::checks::walk`] allows it).
    pub fn invariants(&self) {
        assert_eq!(self.by_id.len(), self.by_time.len(), "dedup maps differ in size");
        assert!(self.account.current() >= self.charged, "dedup account holds less than the index charged");
        if !crate::checks::walk(self.by_time.len()) {
            return;
        }
        let mut cost = 0;
        for ((ts, seq), id) in &self.by_time {
            let e = self.by_id.get(id).unwrap_or_else(|| panic!("dedup id {id} missing from by_id"));
            assert_eq!((e.ts_ns, e.seq), (*ts, *seq), "dedup entry {id} disagrees between maps");
            cost += entry_cost(id, &e.subject);
        }
        assert_eq!(cost, self.charged, "dedup charge differs from its contents");
    }
}

impl Drop for Dedup {
    fn drop(&mut self) {
        self.account.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_expires_purges_and_refuses_at_limit() {
        let acct = Arc::new(Account::new(STREAM_DEDUP, 3 * entry_cost("id-1", "a.b")));
        let mut d = Dedup::new(acct.clone());
        assert!(d.insert("id-1", "a.b", 1, 10));
        assert!(d.insert("id-2", "a.c", 2, 20));
        assert!(d.insert("id-3", "a.b", 3, 30));
        assert!(!d.can_insert("id-4", "a.b"));
        assert!(!d.insert("id-4", "a.b", 4, 40), "full account refuses");
        d.invariants();
        assert_eq!(d.expire(10), 1);
        assert_eq!(d.lookup("id-1"), None);
        assert_eq!(d.purge(Some("a.b"), u64::MAX), 1);
        assert_eq!((d.lookup("id-2"), d.lookup("id-3")), (Some(2), None));
        d.invariants();
        assert_eq!(acct.current(), entry_cost("id-2", "a.c"));
        drop(d);
        assert_eq!(acct.current(), 0);
    }
}
