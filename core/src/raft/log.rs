//! In-memory log (entries after the snapshot).
//!
//! Besides the entries it tracks three cursors: `commit`, `applied` (handed to the
//! application) and `unstable_from` (first entry not yet handed out for persistence),
//! so that [`super::Raft::ready`] can emit exactly the new work.
//!
//! # Memory: the `raft.log` account
//!
//! Every entry held here is charged ([`Entry::size`] bytes) to the node's `raft.log`
//! ledger account, which all groups of a node share; the charge is released when the
//! entry leaves memory: compaction and snapshot install drop a prefix, a conflict
//! truncates a suffix, and dropping the log (group removed, node stopped) releases the
//! rest. So `charged == Σ size` over `entries` at all times ([`RaftLog::invariants`]).
//!
//! Growth is refused, never forced, on the two paths that add entries at runtime:
//! - **Leader** ([`RaftLog::append_new`]): a proposal that does not fit is refused and
//!   the caller answers `ProposeError::Backpressure`; a new leader whose no-op does not
//!   fit leads without it and retries on its next ticks (it cannot commit until then,
//!   which is what Raft requires anyway: only a current-term entry commits).
//! - **Follower** ([`RaftLog::try_append`]): entries are stored one by one while they
//!   fit; at the first that does not, the append stops and the follower acknowledges
//!   only the prefix it stored. The leader records that match, and resends the rest
//!   from there (immediately for the next window, or after the stall rule writes the
//!   in-flight data off): the follower is simply a slow follower, never a larger one.
//!
//! Why the follower's refusal does not wedge the group: what a follower holds is (a)
//! committed entries not yet compacted and (b) uncommitted entries that match some
//! leader. (a) shrinks because the shell compacts a group whose account is under
//! pressure as soon as it has applied entries (not only every `snapshot_every`), and a
//! follower's commit index advances from heartbeats without it storing anything new.
//! (b) is bounded by what leaders keep uncommitted, which `raft.pending` caps on each
//! leader; a stale uncommitted suffix is truncated (released) before a new leader's
//! entries are stored in its place, because conflicts are resolved before appending.
//! So as long as the `raft.log` limit exceeds the sum of the peers' `raft.pending`
//! limits plus one compaction interval, a refused append is retried into room. Below
//! that, groups still never exceed the limit (safety); they may stall (liveness), which
//! the simulator's liveness phase would report.
//!
//! Recovery ([`RaftLog::restore`]) charges what storage hands back unconditionally:
//! those entries were all charged before the crash under the same limit (storage only
//! persists entries this log accepted), so this does not grow memory past what the node
//! already held; it only shows over the limit if an operator lowered the limit.

use super::{Entry, Index, NodeId, Snapshot, SnapshotMeta, Term};
use crate::mem::Account;
use std::collections::VecDeque;
use std::sync::Arc;

/// Outcome of a follower's append attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AppendOutcome {
    /// The log matches the leader's up to this index.
    Matched(Index),
    /// `prev` did not match; retry at or below this index.
    Rejected(Index),
}

/// Entries after the snapshot, plus the commit/apply/persist cursors.
#[derive(Debug)]
pub(super) struct RaftLog {
    /// Latest snapshot, kept to serve lagging followers.
    snapshot: Option<Snapshot>,
    snap_index: Index,
    snap_term: Term,
    /// `entries[k].index == snap_index + 1 + k`.
    entries: VecDeque<Entry>,
    commit: Index,
    applied: Index,
    unstable_from: Index,
    /// The `raft.log` account and what this log has charged to it.
    account: Arc<Account>,
    charged: u64,
}

impl Drop for RaftLog {
    fn drop(&mut self) {
        self.account.release(self.charged);
    }
}

impl RaftLog {
    /// A log recovered from durable state; everything given here is already persisted.
    /// Its entries are charged to `account` (see the module doc for why unconditionally).
    pub(super) fn restore(
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        commit: Index,
        account: Arc<Account>,
    ) -> RaftLog {
        let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term));
        let mut log = RaftLog {
            snapshot,
            snap_index,
            snap_term,
            entries: VecDeque::new(),
            commit: 0,
            applied: snap_index,
            unstable_from: 0,
            account,
            charged: 0,
        };
        // Storage promises contiguity; keep only the contiguous run so a bad image cannot
        // break the index arithmetic everywhere else.
        for e in entries.into_iter().filter(|e| e.index > snap_index) {
            if e.index != log.last_index() + 1 {
                break;
            }
            log.account.force_charge(e.size());
            log.charged += e.size();
            log.entries.push_back(e);
        }
        log.commit = commit.max(snap_index).min(log.last_index());
        log.unstable_from = log.last_index() + 1;
        log
    }

    pub(super) fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    pub(super) fn snap_index(&self) -> Index {
        self.snap_index
    }
    pub(super) fn commit(&self) -> Index {
        self.commit
    }
    pub(super) fn applied(&self) -> Index {
        self.applied
    }
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
    /// Bytes of entries held (what this log has charged to `raft.log`).
    pub(super) fn bytes(&self) -> u64 {
        self.charged
    }

    /// Check the log's internal consistency; panics with a description if it is broken.
    /// O(1) outside unit tests (the ends of the log); the unit tests also walk every entry.
    pub(super) fn invariants(&self) {
        if let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) {
            assert_eq!(first.index, self.snap_index + 1, "log does not start after the snapshot");
            assert_eq!(last.index, self.snap_index + self.entries.len() as Index, "log entries not contiguous");
        }
        assert!(self.charged >= 24 * self.entries.len() as u64, "raft.log charge below the entries held");
        #[cfg(test)]
        {
            for (k, e) in self.entries.iter().enumerate() {
                assert_eq!(e.index, self.snap_index + 1 + k as Index, "log entries not contiguous");
            }
            let sum: u64 = self.entries.iter().map(Entry::size).sum();
            assert_eq!(sum, self.charged, "raft.log charge differs from the entries held");
        }
        assert!(self.commit <= self.last_index(), "commit {} past last {}", self.commit, self.last_index());
        assert!(self.applied <= self.commit.max(self.snap_index), "applied past commit");
        assert!(self.snap_index <= self.applied, "snapshot past applied");
    }

    /// Store `e` at the end if the account has room for it.
    fn push(&mut self, e: Entry) -> bool {
        if !self.account.try_charge(e.size()) {
            return false;
        }
        self.charged += e.size();
        self.entries.push_back(e);
        true
    }

    /// Release the charge of entries being dropped.
    fn uncharge<'a>(account: &Account, charged: &mut u64, gone: impl Iterator<Item = &'a Entry>) {
        let bytes: u64 = gone.map(Entry::size).sum();
        account.release(bytes);
        *charged -= bytes;
    }
    pub(super) fn last_index(&self) -> Index {
        self.snap_index + self.entries.len() as Index
    }
    pub(super) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snap_term, |e| e.term)
    }

    /// Term at `i`, if known (index 0 always has term 0; compacted indices are unknown).
    pub(super) fn term(&self, i: Index) -> Option<Term> {
        if i == self.snap_index {
            Some(self.snap_term)
        } else if i == 0 {
            Some(0)
        } else {
            self.entry(i).map(|e| e.term)
        }
    }

    fn entry(&self, i: Index) -> Option<&Entry> {
        let k = i.checked_sub(self.snap_index + 1)?;
        self.entries.get(usize::try_from(k).ok()?)
    }

    /// Whether a log ending at `(last_index, last_term)` is at least as up to date as this one.
    pub(super) fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Leader append of a new entry; returns its index, or `None` (nothing appended)
    /// if `raft.log` has no room for it.
    pub(super) fn append_new(&mut self, term: Term, data: Vec<u8>) -> Option<Index> {
        let index = self.last_index() + 1;
        self.push(Entry { term, index, data }).then_some(index)
    }

    /// Entries from `from` on, at least one if any exist, then as many as fit in `max_bytes`.
    pub(super) fn slice(&self, from: Index, max_bytes: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let Some(start) = from.checked_sub(self.snap_index + 1) else { return out };
        for e in self.entries.iter().skip(start as usize) {
            if !out.is_empty() && bytes + e.size() > max_bytes {
                break;
            }
            bytes += e.size();
            out.push(e.clone());
        }
        out
    }

    /// Follower append: check `prev`, then add `entries`, truncating a conflicting suffix.
    /// Committed entries are never replaced: a batch starting below the commit index is
    /// answered from the commit index instead (even when a known bug made it diverge).
    /// Entries that do not fit in `raft.log` are not stored: the answer then covers only
    /// the stored prefix (see the module doc).
    pub(super) fn try_append(&mut self, prev_index: Index, prev_term: Term, entries: &[Entry]) -> AppendOutcome {
        // Everything up to the commit index (which covers the snapshot) already matches any
        // current leader, so a batch starting below it has nothing to teach us.
        if prev_index < self.commit {
            return AppendOutcome::Matched(self.commit);
        }
        match self.term(prev_index) {
            Some(t) if t == prev_term => {}
            Some(_) => return AppendOutcome::Rejected(self.conflict_hint(prev_index, prev_term)),
            None => return AppendOutcome::Rejected(self.last_index().min(prev_index.saturating_sub(1))),
        }
        for (k, e) in entries.iter().enumerate() {
            // A malformed batch (not contiguous from prev) is ignored from that point on.
            if e.index != prev_index + 1 + k as Index {
                return AppendOutcome::Matched(prev_index + k as Index);
            }
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    self.truncate_from(e.index);
                }
                None => {}
            }
            if !self.push(e.clone()) {
                return AppendOutcome::Matched(prev_index + k as Index);
            }
            self.unstable_from = self.unstable_from.min(e.index);
        }
        AppendOutcome::Matched(prev_index + entries.len() as Index)
    }

    /// Largest index at or below `prev_index - 1` whose term is `<= prev_term`: every index
    /// above it is certainly mismatched, so the leader may skip a whole conflicting term.
    fn conflict_hint(&self, prev_index: Index, prev_term: Term) -> Index {
        let mut i = prev_index.min(self.last_index()).saturating_sub(1);
        while i > self.snap_index && self.term(i).is_some_and(|t| t > prev_term) {
            i -= 1;
        }
        i
    }

    fn truncate_from(&mut self, i: Index) {
        debug_assert!(i > self.commit, "truncating committed entry {i} (commit {})", self.commit);
        let keep = i.saturating_sub(self.snap_index + 1) as usize;
        Self::uncharge(&self.account, &mut self.charged, self.entries.range(keep.min(self.entries.len())..));
        self.entries.truncate(keep);
        self.unstable_from = self.unstable_from.min(i);
    }

    /// Raise the commit index (never lowers it); returns whether it moved.
    pub(super) fn commit_to(&mut self, i: Index) -> bool {
        let i = i.min(self.last_index());
        if i > self.commit {
            self.commit = i;
            true
        } else {
            false
        }
    }

    /// Entries not yet handed out for persistence.
    pub(super) fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from.max(self.snap_index + 1);
        let out = self.slice(from, u64::MAX);
        self.unstable_from = self.last_index() + 1;
        out
    }

    /// Committed entries not yet handed to the application.
    pub(super) fn take_committed(&mut self) -> Vec<Entry> {
        if self.commit <= self.applied {
            return Vec::new();
        }
        let out: Vec<Entry> =
            self.slice(self.applied + 1, u64::MAX).into_iter().take_while(|e| e.index <= self.commit).collect();
        self.applied = self.commit;
        out
    }

    /// Record a local snapshot at `index` (≤ applied) and drop the entries it covers.
    pub(super) fn compact(&mut self, index: Index, data: Vec<u8>, peers: &[NodeId]) -> Option<Snapshot> {
        if index <= self.snap_index || index > self.applied {
            return None;
        }
        let last_term = self.term(index)?;
        let snap = Snapshot { meta: SnapshotMeta { last_index: index, last_term, peers: peers.to_vec() }, data };
        self.drop_through(index, last_term);
        self.snapshot = Some(snap.clone());
        Some(snap)
    }

    /// Install a snapshot received from the leader: keep the suffix after it only if the
    /// entry at its index matches (log matching), otherwise discard the whole log.
    pub(super) fn install(&mut self, snap: Snapshot) {
        let (index, term) = (snap.meta.last_index, snap.meta.last_term);
        if self.term(index) == Some(term) {
            self.drop_through(index, term);
        } else {
            Self::uncharge(&self.account, &mut self.charged, self.entries.iter());
            self.entries.clear();
            self.snap_index = index;
            self.snap_term = term;
        }
        self.unstable_from = self.unstable_from.max(index + 1).min(self.last_index() + 1);
        self.commit = self.commit.max(index).min(self.last_index());
        self.applied = index;
        self.snapshot = Some(snap);
    }

    fn drop_through(&mut self, index: Index, term: Term) {
        let n = ((index - self.snap_index) as usize).min(self.entries.len());
        Self::uncharge(&self.account, &mut self.charged, self.entries.range(..n));
        self.entries.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
        self.unstable_from = self.unstable_from.max(index + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: Term, index: Index) -> Entry {
        Entry { term, index, data: vec![index as u8] }
    }

    fn log_of(terms: &[Term]) -> RaftLog {
        log_with_limit(terms, 1 << 20).0
    }

    /// A log of `terms` whose `raft.log` account has `limit` bytes (each test entry is 25).
    fn log_with_limit(terms: &[Term], limit: u64) -> (RaftLog, Arc<Account>) {
        let account = Arc::new(Account::new("raft.log", limit));
        let es = terms.iter().enumerate().map(|(k, &t)| e(t, k as Index + 1)).collect();
        (RaftLog::restore(None, es, 0, account.clone()), account)
    }

    #[test]
    fn every_held_entry_is_charged_and_every_way_out_releases() {
        let (mut log, acct) = log_with_limit(&[1, 1, 2, 2], 1000);
        assert_eq!(acct.current(), 4 * 25, "recovered entries are charged");
        // A conflicting suffix is released before the leader's entries are charged.
        assert_eq!(log.try_append(2, 1, &[e(3, 3)]), AppendOutcome::Matched(3));
        assert_eq!(acct.current(), 3 * 25);
        assert_eq!(log.append_new(3, vec![0; 10]), Some(4));
        assert_eq!(acct.current(), 3 * 25 + 34);
        log.commit_to(4);
        log.take_committed();
        log.compact(2, vec![], &[1]).unwrap();
        assert_eq!(acct.current(), 25 + 34, "compaction releases the prefix");
        let other = Snapshot { meta: SnapshotMeta { last_index: 9, last_term: 5, peers: vec![] }, data: vec![] };
        log.install(other);
        assert_eq!(acct.current(), 0, "a snapshot that replaces the log releases all of it");
        log.invariants();
        assert_eq!(log.append_new(5, vec![]), Some(10));
        drop(log);
        assert_eq!(acct.current(), 0, "dropping the log (group removed) releases the rest");
    }

    #[test]
    fn leader_append_is_refused_at_the_limit() {
        let (mut log, acct) = log_with_limit(&[1, 1], 60);
        assert_eq!(log.append_new(1, vec![0; 10]), None, "50 + 34 > 60");
        assert_eq!((log.last_index(), acct.current()), (2, 50));
        assert_eq!(log.append_new(1, vec![]), None, "50 + 24 > 60");
        log.commit_to(2);
        log.take_committed();
        log.compact(2, vec![], &[1]);
        assert_eq!(log.append_new(1, vec![0; 10]), Some(3), "compaction made room");
        log.invariants();
    }

    #[test]
    fn follower_at_the_limit_stores_and_acknowledges_only_a_prefix() {
        // Room for 3 entries of 25 bytes.
        let (mut log, acct) = log_with_limit(&[1], 80);
        let batch: Vec<Entry> = (2..=6).map(|i| e(1, i)).collect();
        assert_eq!(log.try_append(1, 1, &batch), AppendOutcome::Matched(3), "only 2 and 3 fit");
        assert_eq!((log.last_index(), acct.current()), (3, 75));
        assert_eq!(log.take_unstable().len(), 2, "only stored entries are persisted");
        // The leader resends from 4: still no room, nothing stored, nothing lost.
        assert_eq!(log.try_append(3, 1, &batch[2..]), AppendOutcome::Matched(3));
        assert!(acct.current() <= acct.limit());
        // Once the prefix commits and the shell compacts, the retry goes through.
        log.commit_to(3);
        log.take_committed();
        log.compact(3, vec![], &[1]);
        assert_eq!(log.try_append(3, 1, &batch[2..]), AppendOutcome::Matched(6));
        assert_eq!(acct.current(), 75);
        log.invariants();
    }

    #[test]
    fn conflict_truncates_suffix_and_marks_it_unstable() {
        let mut log = log_of(&[1, 1, 2, 2]);
        assert!(log.take_unstable().is_empty());
        let out = log.try_append(2, 1, &[e(3, 3)]);
        assert_eq!(out, AppendOutcome::Matched(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.take_unstable(), vec![e(3, 3)]);
    }

    #[test]
    fn matching_stale_append_keeps_longer_log() {
        let mut log = log_of(&[1, 1, 1, 1]);
        assert_eq!(log.try_append(1, 1, &[e(1, 2)]), AppendOutcome::Matched(2));
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn reject_hint_skips_conflicting_term() {
        let log = log_of(&[1, 1, 4, 4, 4, 4]);
        // Leader has term 2 at index 6; follower's term-4 run is all wrong.
        assert_eq!(log.conflict_hint(6, 2), 2);
        let mut log = log;
        assert_eq!(log.try_append(6, 2, &[]), AppendOutcome::Rejected(2));
        assert_eq!(log.try_append(9, 2, &[]), AppendOutcome::Rejected(6));
    }

    #[test]
    fn compact_and_install_keep_matching_suffix() {
        let mut log = log_of(&[1, 1, 2, 2, 2]);
        log.commit_to(4);
        assert_eq!(log.take_committed().len(), 4);
        let s = log.compact(3, vec![9], &[1, 2]).unwrap();
        assert_eq!((s.meta.last_index, s.meta.last_term), (3, 2));
        assert_eq!(log.len(), 2);
        assert_eq!(log.term(2), None);
        assert_eq!(log.term(3), Some(2));
        let snap = Snapshot { meta: SnapshotMeta { last_index: 4, last_term: 2, peers: vec![] }, data: vec![] };
        log.install(snap);
        assert_eq!((log.len(), log.last_index(), log.applied()), (1, 5, 4));
        let other = Snapshot { meta: SnapshotMeta { last_index: 7, last_term: 3, peers: vec![] }, data: vec![] };
        log.install(other);
        assert_eq!((log.len(), log.last_index(), log.commit()), (0, 7, 7));
        assert!(log.take_unstable().is_empty());
        assert!(log.take_committed().is_empty());
    }

    #[test]
    fn slice_respects_byte_limit_but_sends_one() {
        let log = log_of(&[1, 1, 1]);
        assert_eq!(log.slice(1, 0).len(), 1);
        assert_eq!(log.slice(1, 50).len(), 2);
        assert_eq!(log.slice(4, 1000).len(), 0);
    }
}
