//! Known-bug switches of the Raft state machine: each turns off one safeguard on
//! purpose so the simulator can prove its checkers catch the defect. All off in
//! production; the simulator's bug catalogue (`weir-sim`'s `bugs`) maps its CLI
//! names onto these fields.

/// Deliberately enabled Raft defects (the default, [`RaftBugs::NONE`], has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RaftBugs {
    /// Term and vote are never written to disk, so a restarted node can vote twice in a term.
    pub votes_not_persisted: bool,
    /// The leader commits entries as soon as it has them, without a quorum.
    pub commit_before_quorum: bool,
    /// The leader ignores the catch-up window and sends a lagging follower everything at once.
    pub unbounded_catchup: bool,
}

impl RaftBugs {
    /// No defects: the production setting.
    pub const NONE: RaftBugs =
        RaftBugs { votes_not_persisted: false, commit_before_quorum: false, unbounded_catchup: false };
}
