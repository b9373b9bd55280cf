//! In-memory log (entries after the snapshot).
//!
//! Besides the entries it tracks three cursors: `commit`, `applied` (handed to the
//! application) and `unstable_from` (first entry not yet handed out for persistence),
//! so that [`super::Raft::ready`] can emit exactly the new work.

use super::{Entry, Index, NodeId, Snapshot, SnapshotMeta, Term};
use std::collections::VecDeque;

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
}

impl RaftLog {
    /// A log recovered from durable state; everything given here is already persisted.
    pub(super) fn restore(snapshot: Option<Snapshot>, entries: Vec<Entry>, commit: Index) -> RaftLog {
        let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term));
        let mut log = RaftLog {
            snapshot,
            snap_index,
            snap_term,
            entries: VecDeque::new(),
            commit: 0,
            applied: snap_index,
            unstable_from: 0,
        };
        // Storage promises contiguity; keep only the contiguous run so a bad image cannot
        // break the index arithmetic everywhere else.
        for e in entries.into_iter().filter(|e| e.index > snap_index) {
            if e.index != log.last_index() + 1 {
                break;
            }
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

    /// Leader append of a new entry; returns its index.
    pub(super) fn append_new(&mut self, term: Term, data: Vec<u8>) -> Index {
        let index = self.last_index() + 1;
        self.entries.push_back(Entry { term, index, data });
        index
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
            self.entries.push_back(e.clone());
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
        let n = (index - self.snap_index) as usize;
        self.entries.drain(..n.min(self.entries.len()));
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
        let es = terms.iter().enumerate().map(|(k, &t)| e(t, k as Index + 1)).collect();
        RaftLog::restore(None, es, 0)
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
