//! Held removals: removals caused by an append (limit evictions, a roll-up's purge)
//! that take effect on disk only once the caller says that append is durable.
//!
//! # Why
//!
//! Under [`SyncPolicy::Interval`](super::SyncPolicy) an append returns before it is
//! durable, and a caller doing group commit (the JetStream engine) answers it only
//! after the fsync. If that fsync fails, the append is refused, and whatever it caused
//! must not have happened: a KV put (`max_msgs_per_subject: 1`) answered with an error
//! must leave the key's previous value in place. Had the eviction's delete record been
//! written with the message, a reopen of the store (which reads back what the failed
//! fsync left, "fsyncgate") would keep it and lose the older message.
//!
//! # How
//!
//! With holding on ([`FileStore::hold_removals`]), such a removal is applied to the
//! index at once, so counts, limits, reads and `Discard::New` checks see the store as
//! nats-server shows it (the new message counted, the evicted one gone), but no delete
//! record is written. The message is *held*: its slot is kept here, its block is not
//! removed, and [`FileStore::held_load`]/[`FileStore::held_next`] still read it (for
//! readers that must not act on an eviction before it is durable: consumers). When the
//! caller knows the appends up to some sequence are durable it calls
//! [`FileStore::release_held`], which writes the delete records of the removals those
//! appends caused (after their messages in the log, so a crash at any point leaves a
//! consistent prefix: the durable appends' evictions are enforced again at open).
//!
//! An explicit removal of a held message (a delete, a purge matching it) writes its
//! delete record at once and ends the hold: that removal no longer depends on the
//! append. Delete records never cover a held message otherwise (ranges are split
//! around them). A store reopened after a failed fsync holds nothing: its held
//! messages are back as ordinary ones, unless the caller drops the refused appends at
//! open ([`FileStore::open_dropping`]) and so they are evicted again by nothing.
//!
//! Memory: a slot and the subject per held message, charged to `store.index` with the
//! index; as many as one group commit's appends evict, released by the next commit.

use super::file::{FileStore, Slot};
use super::{PurgeRequest, Result, StoredMsg};
use crate::subject::matches as subject_matches;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

/// A message removed from the index whose delete record waits for its cause.
#[derive(Clone, Debug)]
pub(super) struct Held {
    /// The append that caused the removal.
    pub cause: u64,
    /// Where its record is (in the block that holds `seq`).
    pub slot: Slot,
    /// Its subject.
    pub subject: Arc<str>,
}

/// The held messages of a store.
#[derive(Debug, Default)]
pub(super) struct HeldSet {
    /// Whether removals caused by appends are held at all.
    pub on: bool,
    /// By sequence.
    pub msgs: BTreeMap<u64, Held>,
    /// Bytes of their subjects (for the index charge).
    pub name_bytes: u64,
}

impl HeldSet {
    fn insert(&mut self, seq: u64, h: Held) {
        self.name_bytes += h.subject.len() as u64;
        if let Some(old) = self.msgs.insert(seq, h) {
            self.name_bytes -= old.subject.len() as u64;
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Held> {
        let h = self.msgs.remove(&seq)?;
        self.name_bytes -= h.subject.len() as u64;
        Some(h)
    }

    /// Whether a held message lies in `from..=to`.
    pub fn any_in(&self, from: u64, to: u64) -> bool {
        from <= to && self.msgs.range(from..=to).next().is_some()
    }

    /// `ranges` with every held sequence cut out (a delete record must not cover one).
    pub fn split(&self, ranges: Vec<RangeInclusive<u64>>) -> Vec<RangeInclusive<u64>> {
        if self.msgs.is_empty() {
            return ranges;
        }
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let mut from = *r.start();
            for (&h, _) in self.msgs.range(r.clone()) {
                if h > from {
                    out.push(from..=h - 1);
                }
                from = h + 1;
            }
            if from <= *r.end() {
                out.push(from..=*r.end());
            }
        }
        out
    }
}

impl FileStore {
    /// Hold the removals that appends cause (limit evictions, roll-up purges through
    /// [`MsgStore::purge_caused_by`](super::MsgStore::purge_caused_by)) until [`FileStore::release_held`] says the append
    /// is durable (see the module docs of `store::held`). Off by default: a store whose
    /// owner never releases must not hold. Turning it off releases everything held.
    pub fn hold_removals(&mut self, on: bool) -> Result<()> {
        self.held.on = on;
        if !on {
            self.release_held(u64::MAX)?;
        }
        Ok(())
    }

    /// Whether removals are held now.
    pub fn holds(&self) -> bool {
        self.held.on
    }

    /// Whether any message is held.
    pub fn has_held(&self) -> bool {
        !self.held.msgs.is_empty()
    }

    /// The held sequences, ascending.
    pub fn held_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.held.msgs.keys().copied()
    }

    /// A held message (removed from the store's view, its removal not yet durable).
    pub fn held_load(&mut self, seq: u64) -> Result<Option<StoredMsg>> {
        let Some(slot) = self.held.msgs.get(&seq).map(|h| h.slot) else { return Ok(None) };
        let bi = self.block_of(seq).expect("a held message's block is kept");
        self.read_msg(bi, seq, slot).map(Some)
    }

    /// The first held sequence at or after `from` whose subject matches `filter`.
    pub fn held_next(&self, filter: &str, from: u64) -> Option<u64> {
        let all = filter == ">";
        self.held.msgs.range(from..).find(|(_, h)| all || subject_matches(filter, &h.subject)).map(|(s, _)| *s)
    }

    /// The appends up to `upto` are durable: write the delete records of the removals
    /// they caused (unsynced, after their messages) and end those holds. Returns how
    /// many were released. On a failed write the holds stay, to be released again.
    pub fn release_held(&mut self, upto: u64) -> Result<u64> {
        let result = self.release_unchecked(upto);
        self.end_call(result)
    }

    fn release_unchecked(&mut self, upto: u64) -> Result<u64> {
        let seqs: BTreeSet<u64> = self.held.msgs.iter().filter(|(_, h)| h.cause <= upto).map(|(s, _)| *s).collect();
        self.unhold(&seqs)
    }

    /// Make `seqs` (held) ordinary removals: write their delete records, then drop the
    /// holds (their blocks may then go). On a failed write the holds stay.
    pub(super) fn unhold(&mut self, seqs: &BTreeSet<u64>) -> Result<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.check_writable()?;
        let taken: Vec<(u64, Held)> = seqs.iter().filter_map(|&s| self.held.remove(s).map(|h| (s, h))).collect();
        let ranges = self.dead_ranges(seqs);
        match self.write_deletes(ranges) {
            Ok(_) => {
                self.drop_empty_prefix();
                self.commit()?;
                Ok(taken.len() as u64)
            }
            Err(e) => {
                for (s, h) in taken {
                    self.held.insert(s, h);
                }
                Err(e)
            }
        }
    }

    /// Ranges covering exactly `seqs` (none of them live) and the dead sequences between.
    fn dead_ranges(&self, seqs: &BTreeSet<u64>) -> Vec<RangeInclusive<u64>> {
        let mut out: Vec<RangeInclusive<u64>> = Vec::new();
        for &s in seqs {
            if let Some(r) = out.last_mut()
                && self.next_live(*r.end() + 1).is_none_or(|q| q > s)
            {
                *r = *r.start()..=s;
                continue;
            }
            out.push(s..=s);
        }
        out
    }

    /// Remove the live messages `seqs` from the index on account of the append `cause`:
    /// held when holding is on, else written at once. Returns how many were removed.
    pub(super) fn remove_caused_by(&mut self, seqs: &BTreeSet<u64>, cause: u64) -> Result<u64> {
        if !self.held.on {
            let ranges = self.coalesce(seqs);
            return self.write_deletes(ranges);
        }
        let mut n = 0;
        for &seq in seqs {
            let Some((_, slot)) = self.live_slot(seq) else { continue };
            let subject = self.subject_name(slot.subj);
            self.held.insert(seq, Held { cause, slot, subject });
            n += self.delete_range_mem(seq, seq);
        }
        Ok(n)
    }

    /// Purge as `req` says on account of the append `cause` (a roll-up; the trait's
    /// [`MsgStore::purge_caused_by`](super::MsgStore::purge_caused_by)): the purged
    /// messages are held like evictions. Returns how many were removed.
    pub(super) fn purge_caused_unchecked(&mut self, req: &PurgeRequest, cause: u64) -> Result<u64> {
        if !self.held.on {
            return self.purge_unchecked(req);
        }
        let seqs = self.purge_selection(req)?;
        if seqs.is_empty() {
            return Ok(0);
        }
        self.check_writable()?;
        let n = self.remove_caused_by(&seqs, cause)?;
        self.drop_empty_prefix();
        self.commit()?;
        Ok(n)
    }

    /// Held messages a purge of `req` (`to`: its last sequence) removes for good.
    pub(super) fn held_matching(&self, req: &PurgeRequest, to: u64) -> BTreeSet<u64> {
        let filter = req.filter.as_deref().filter(|f| *f != ">");
        self.held
            .msgs
            .range(..=to)
            .filter(|(_, h)| filter.is_none_or(|f| subject_matches(f, &h.subject)))
            .map(|(s, _)| *s)
            .collect()
    }

    /// Check the held messages against the index (part of [`FileStore::invariants`]):
    /// each is dead in a block still present, and older than its cause.
    pub(super) fn check_held(&self) {
        for (&seq, h) in &self.held.msgs {
            assert!(seq < h.cause && h.cause <= self.last_seq, "held seq {seq} with cause {}", h.cause);
            let bi = self.block_of(seq).unwrap_or_else(|| panic!("held seq {seq} has no block"));
            let b = &self.blocks[bi];
            assert_eq!(b.slots[(seq - b.base - 1) as usize].len, 0, "held seq {seq} is live");
        }
        let bytes: u64 = self.held.msgs.values().map(|h| h.subject.len() as u64).sum();
        assert_eq!(bytes, self.held.name_bytes, "held subjects' bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FileStoreConfig, MsgStore, StoreLimits, StoreMemory, SyncPolicy};
    use super::*;
    use crate::disk::{Disk, RealDisk};
    use std::time::Duration;

    /// A real disk in a fresh temporary directory, removed when the guard drops.
    fn disk(name: &str) -> (Arc<dyn Disk>, TempDir) {
        let root = std::env::temp_dir().join(format!("weir-held-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        (Arc::new(RealDisk::new(root.clone()).unwrap()), TempDir(root))
    }

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(disk: &Arc<dyn Disk>, drop: &[u64]) -> FileStore {
        let limits = StoreLimits { max_msgs_per_subject: Some(1), ..Default::default() };
        let cfg = FileStoreConfig { sync: SyncPolicy::Interval(Duration::from_secs(3600)), ..Default::default() };
        let mem = StoreMemory::standalone(u64::MAX, u64::MAX);
        let mut fs = FileStore::open_dropping(disk.clone(), "s", limits, cfg, mem, drop).unwrap();
        fs.hold_removals(true).unwrap();
        fs
    }

    fn last(fs: &mut FileStore) -> Option<Vec<u8>> {
        fs.load_last("k").unwrap().map(|m| m.payload)
    }

    #[test]
    fn an_eviction_is_held_until_released_and_a_dropped_cause_evicts_nothing() {
        let (d, _dir) = disk("drop");
        let mut fs = open(&d, &[]);
        fs.append("k", b"", b"v1", 1).unwrap();
        fs.flush().unwrap();
        fs.append("k", b"", b"v2", 2).unwrap();
        // Counted as nats-server shows it; the evicted message is still readable as held.
        assert_eq!((fs.state().msgs, fs.state().first_seq), (1, 2));
        assert_eq!(fs.held_seqs().collect::<Vec<_>>(), [1]);
        assert_eq!(fs.held_load(1).unwrap().map(|m| m.payload), Some(b"v1".to_vec()));
        assert_eq!(fs.held_next("k", 0), Some(1));
        // Written and synced (as a failed fsync may leave it), but refused: the reopen
        // drops seq 2 before the limits apply, so v1 stays.
        fs.flush().unwrap();
        drop(fs);
        let mut fs = open(&d, &[2]);
        assert_eq!(last(&mut fs), Some(b"v1".to_vec()));
        assert_eq!(fs.state().last_seq, 2, "the refused sequence stays spent");
        drop(fs);
        let mut fs = open(&d, &[]);
        assert_eq!(last(&mut fs), Some(b"v1".to_vec()), "the drop was durable");
    }

    #[test]
    fn a_released_eviction_is_written_and_an_explicit_delete_ends_a_hold() {
        let (d, _dir) = disk("release");
        let mut fs = open(&d, &[]);
        fs.append("k", b"", b"v1", 1).unwrap();
        fs.append("k", b"", b"v2", 2).unwrap();
        fs.append("k", b"", b"v3", 3).unwrap();
        assert_eq!(fs.held_seqs().collect::<Vec<_>>(), [1, 2]);
        // A delete of a held message writes its record now: it stays gone whatever
        // becomes of the append that evicted it.
        assert!(fs.delete(1).unwrap());
        assert_eq!(fs.held_seqs().collect::<Vec<_>>(), [2]);
        assert_eq!(fs.release_held(2).unwrap(), 0, "seq 2's cause is seq 3");
        assert_eq!(fs.release_held(3).unwrap(), 1);
        assert!(!fs.has_held());
        assert_eq!(fs.held_load(2).unwrap(), None);
        fs.flush().unwrap();
        drop(fs);
        let mut fs = open(&d, &[]);
        assert_eq!((fs.state().msgs, last(&mut fs)), (1, Some(b"v3".to_vec())));
    }

    #[test]
    fn a_hold_keeps_the_block_and_ranges_never_cover_a_held_message() {
        let (d, _dir) = disk("ranges");
        let mut fs = open(&d, &[]);
        fs.set_limits(StoreLimits { max_msgs: Some(2), ..Default::default() }).unwrap();
        for (i, s) in ["a", "b", "c"].iter().enumerate() {
            fs.append(s, b"", b"x", i as i64).unwrap();
        }
        // Seq 3 evicted seq 1 (held); purging "b" must not write a record over seq 1.
        assert_eq!(fs.held_seqs().collect::<Vec<_>>(), [1]);
        assert_eq!(fs.purge(&PurgeRequest::subject("b")).unwrap(), 1);
        assert_eq!(fs.held_seqs().collect::<Vec<_>>(), [1]);
        assert_eq!(fs.held.split(vec![1..=3]), vec![2..=3]);
        fs.flush().unwrap();
        drop(fs);
        // Refused seq 3: seq 1 comes back, seq 2 stays purged.
        let mut fs = open(&d, &[3]);
        assert_eq!(fs.load(1).unwrap().map(|m| m.subject), Some("a".to_string()));
        assert_eq!(fs.load(2).unwrap(), None);
    }
}
