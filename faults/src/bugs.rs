//! Known-bug switches: deliberately re-enabled failure modes that prove the checkers
//! have teeth. Each bug names a real class of defect; a sweep must catch every one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One deliberately injectable defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// Raft term and vote are never written to disk, so a restarted node can vote twice in a term.
    VotesNotPersisted,
    /// The Raft leader commits entries as soon as it has them, without a quorum.
    CommitBeforeQuorum,
    /// The Raft leader ignores the catch-up window and sends a lagging follower everything at once.
    UnboundedCatchup,
    /// The file store acknowledges an append before syncing it (the sync happens at the next write).
    LazyFsync,
    /// The store's buffer pool charges past its cap instead of refusing.
    UnboundedBufferPool,
    /// Store message reads never return their buffer's charge to the pool's account.
    BufferLeak,
}

impl Bug {
    /// Every known bug, in a stable order.
    pub const ALL: [Bug; 6] = [
        Bug::VotesNotPersisted,
        Bug::CommitBeforeQuorum,
        Bug::UnboundedCatchup,
        Bug::LazyFsync,
        Bug::UnboundedBufferPool,
        Bug::BufferLeak,
    ];

    /// The CLI name of the bug.
    pub fn name(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => "votes-not-persisted",
            Bug::CommitBeforeQuorum => "commit-before-quorum",
            Bug::UnboundedCatchup => "unbounded-catchup",
            Bug::LazyFsync => "lazy-fsync",
            Bug::UnboundedBufferPool => "unbounded-buffer-pool",
            Bug::BufferLeak => "buffer-leak",
        }
    }

    /// A one-line description for `weir-sim bugs`.
    pub fn describe(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => {
                "Raft term and vote are not persisted; a restarted node may vote twice in one term"
            }
            Bug::CommitBeforeQuorum => "the Raft leader commits without a quorum; acknowledged entries can be lost",
            Bug::UnboundedCatchup => {
                "the Raft catch-up window is ignored; bytes in flight to a lagging follower exceed raft.catchup"
            }
            Bug::LazyFsync => {
                "the file store acknowledges appends before fsync; a power cut loses acknowledged messages"
            }
            Bug::UnboundedBufferPool => {
                "the store's buffer pool charges past its cap (whole blocks at recovery); store.buffers exceeds its limit"
            }
            Bug::BufferLeak => "store reads never return their buffer charge; store.buffers stays above baseline",
        }
    }

    /// The scenario in which a sweep is expected to catch this bug.
    pub fn catching_scenario(self) -> &'static str {
        match self {
            Bug::VotesNotPersisted => "raft-crashes",
            Bug::CommitBeforeQuorum => "raft-partitions",
            Bug::UnboundedCatchup => "raft-slow-follower",
            Bug::LazyFsync | Bug::UnboundedBufferPool | Bug::BufferLeak => "store-crashes",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL.iter().copied().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}' (known: {})", names.join(", "))
        })
    }
}

/// The set of bugs enabled for a run (empty in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BugSet(u32);

impl BugSet {
    /// No bugs: the production setting.
    pub const NONE: BugSet = BugSet(0);

    /// Whether `bug` is enabled.
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }

    /// This set with `bug` added.
    pub fn with(self, bug: Bug) -> BugSet {
        BugSet(self.0 | (1 << bug as u32))
    }

    /// The enabled bugs in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.has(*b))
    }

    /// Whether no bug is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Bug> for BugSet {
    fn from_iter<T: IntoIterator<Item = Bug>>(iter: T) -> Self {
        iter.into_iter().fold(BugSet::NONE, BugSet::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>().unwrap(), b);
        }
        assert!("no-such-bug".parse::<Bug>().unwrap_err().contains("unknown bug"));
    }

    #[test]
    fn set_membership() {
        let s: BugSet = [Bug::UnboundedCatchup].into_iter().collect();
        assert!(s.has(Bug::UnboundedCatchup));
        assert!(!s.has(Bug::VotesNotPersisted));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Bug::UnboundedCatchup]);
    }
}
