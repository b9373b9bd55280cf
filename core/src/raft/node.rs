//! The Raft state machine: state, public API, role transitions and [`Raft::ready`].
//!
//! The protocol handlers live in submodules: `election` (pre-vote, vote, timers),
//! `follower` (Append and InstallSnapshot on the receiving side) and `leader`
//! (replication, flow control, commit, check-quorum).

mod election;
mod follower;
mod leader;

use super::log::RaftLog;
use super::progress::Progress;
use super::{
    Config, Envelope, GroupId, HardState, Index, Message, NodeId, ProposeError, RaftAccounts, RaftEvent, Ready,
    Restored, Role, Snapshot, Term,
};
use crate::mem::Account;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// One member of a Raft group, as a pure state machine.
#[derive(Debug)]
pub struct Raft {
    cfg: Config,
    rng: ChaCha8Rng,
    pending: Arc<Account>,
    catchup: Arc<Account>,
    /// Latest time seen on any input; `ready()` has no clock of its own.
    now_ms: u64,

    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,

    /// When a non-leader next stands for election.
    election_deadline: u64,
    /// Last valid contact from the current leader (the lease starts here).
    leader_contact_ms: Option<u64>,
    /// Grants received in the current (pre-)election, self included.
    votes: BTreeSet<NodeId>,
    /// Follower: highest index verified to match the leader of this term.
    verified: Index,
    /// Follower: snapshot being received, data accumulated so far.
    incoming: Option<Snapshot>,

    /// Leader: one entry per other member.
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_due: u64,
    /// Leader: `(index, bytes)` of proposals charged to `raft.pending`, in index order.
    proposals: VecDeque<(Index, u64)>,
    /// Leader: new entries to push to followers at the next `ready()` (batches proposals).
    flush: bool,
    /// Leader: a send was held back because a node-wide account (`raft.catchup`) was
    /// full, or the no-op did not fit in `raft.log`: retry at every tick until it goes.
    held_back: bool,
    /// Leader: the no-op of this term is not in the log yet (`raft.log` was full).
    noop_missing: bool,

    /// Term and vote at boot: what `RaftBugs::votes_not_persisted` keeps writing.
    boot_hs: HardState,
    /// Last hard state handed out (durable once the shell persisted it).
    emitted_hs: HardState,
    reported_commit: Index,
    out_snapshot: Option<Snapshot>,
    restore: bool,
    msgs: Vec<Envelope>,
    events: Vec<RaftEvent>,
}

impl Raft {
    /// Build a member from its recovered state. `seed` seeds the election-timeout RNG;
    /// `accounts` are the ledger accounts it charges; `now_ms` is the current time.
    pub fn new(config: Config, restored: Restored, seed: u64, accounts: RaftAccounts, now_ms: u64) -> Raft {
        let hs = restored.hard_state;
        let RaftAccounts { pending, catchup, log } = accounts;
        let log = RaftLog::restore(restored.snapshot, restored.entries, hs.commit, log);
        let mut raft = Raft {
            cfg: config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            pending,
            catchup,
            now_ms,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: None,
            log,
            election_deadline: now_ms,
            leader_contact_ms: None,
            votes: BTreeSet::new(),
            verified: 0,
            incoming: None,
            progress: BTreeMap::new(),
            heartbeat_due: now_ms,
            proposals: VecDeque::new(),
            flush: false,
            held_back: false,
            noop_missing: false,
            boot_hs: hs,
            emitted_hs: hs,
            reported_commit: hs.commit,
            out_snapshot: None,
            restore: false,
            msgs: Vec::new(),
            events: Vec::new(),
        };
        raft.reset_election_timer(now_ms);
        raft
    }

    /// Advance time: elections, heartbeats, check-quorum, stalled-replication recovery.
    pub fn tick(&mut self, now_ms: u64) {
        self.observe(now_ms);
        if self.role == Role::Leader {
            self.tick_leader(now_ms);
        } else if now_ms >= self.election_deadline {
            self.campaign(now_ms);
        }
    }

    /// The earliest time at which [`Raft::tick`] may have something to do: a tick
    /// before it changes nothing, so a shell may sleep until then (or skip ticks that
    /// come earlier). `step`, `propose` and `compact` can move it, so ask again after them.
    pub fn next_deadline(&self) -> u64 {
        if self.role != Role::Leader {
            return self.election_deadline;
        }
        if self.held_back {
            return self.now_ms;
        }
        let max = self.cfg.election_timeout_ms.1;
        let mut due = self.heartbeat_due;
        for pr in self.progress.values() {
            // Check-quorum counts a peer as heard until `last_heard + max`.
            let silent_at = pr.last_heard_ms.saturating_add(max);
            if self.cfg.check_quorum && silent_at > self.now_ms {
                due = due.min(silent_at);
            }
            // In-flight data is written off `max` after the last progress.
            if pr.has_inflight() {
                due = due.min(pr.last_progress_ms.saturating_add(max));
            }
        }
        due
    }

    /// The group this member belongs to.
    pub fn group(&self) -> GroupId {
        self.cfg.group
    }

    /// Bytes of entries held in memory (charged to `raft.log`).
    pub fn log_bytes(&self) -> u64 {
        self.log.bytes()
    }

    /// Check internal consistency; panics with a description when broken. O(peers)
    /// (plus full walks of the log under `cfg(test)`), so the node shell runs it after
    /// every turn in simulated builds.
    pub fn invariants(&self) {
        self.log.invariants();
        assert!(self.cfg.peers.contains(&self.cfg.id) || self.role != Role::Leader, "non-member leads");
        if self.role == Role::Leader {
            assert_eq!(self.leader, Some(self.cfg.id), "leader does not know itself as leader");
            for (id, pr) in &self.progress {
                assert!(pr.match_index <= self.log.last_index(), "match of {id} past the log");
            }
        } else {
            assert!(self.progress.is_empty(), "non-leader keeps follower progress");
            assert!(self.proposals.is_empty(), "non-leader holds proposal charges");
        }
        // O(proposals): only where runs are small.
        #[cfg(test)]
        {
            let pending: u64 = self.proposals.iter().map(|p| p.1).sum();
            assert!(pending <= self.pending.current(), "proposal charges exceed the raft.pending account");
        }
    }

    /// Handle a message from a peer.
    pub fn step(&mut self, now_ms: u64, env: Envelope) {
        self.observe(now_ms);
        if env.group != self.cfg.group
            || env.to != self.cfg.id
            || env.from == self.cfg.id
            || !self.cfg.peers.contains(&env.from)
        {
            return;
        }
        if env.term > self.term {
            match &env.msg {
                // Pre-vote traffic never moves terms: that is its whole point.
                Message::PreVote { .. } | Message::PreVoteResp { .. } => {}
                // A live leader's followers ignore a disruptive (e.g. rejoining) candidate.
                Message::Vote { .. } if self.cfg.check_quorum && self.in_lease(now_ms) => return,
                Message::Append { .. } | Message::InstallSnapshot { .. } => {
                    self.become_follower(now_ms, env.term, Some(env.from))
                }
                _ => self.become_follower(now_ms, env.term, None),
            }
        } else if env.term < self.term {
            self.reply_to_stale(env);
            return;
        }
        let (from, term) = (env.from, env.term);
        match env.msg {
            Message::PreVote { last_index, last_term } => {
                self.handle_pre_vote(now_ms, from, term, last_index, last_term)
            }
            Message::PreVoteResp { granted } => self.handle_pre_vote_resp(now_ms, from, term, granted),
            Message::Vote { last_index, last_term } => self.handle_vote(now_ms, from, last_index, last_term),
            Message::VoteResp { granted } => self.handle_vote_resp(now_ms, from, granted),
            Message::Append { prev_index, prev_term, entries, commit } => {
                self.handle_append(now_ms, from, prev_index, prev_term, &entries, commit)
            }
            Message::AppendResp { success, index } => self.handle_append_resp(now_ms, from, success, index),
            Message::InstallSnapshot { meta, offset, chunk, done } => {
                self.handle_snapshot_chunk(now_ms, from, meta, offset, chunk, done)
            }
            Message::InstallSnapshotResp { last_index, next_offset, done } => {
                self.handle_snapshot_resp(now_ms, from, last_index, next_offset, done)
            }
        }
    }

    /// Propose `data` (leader only). Returns the index it will commit at, if it commits.
    pub fn propose(&mut self, now_ms: u64, data: Vec<u8>) -> Result<Index, ProposeError> {
        self.observe(now_ms);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        let size = data.len() as u64;
        if size > self.cfg.max_proposal_bytes {
            return Err(ProposeError::TooLarge { size, limit: self.cfg.max_proposal_bytes });
        }
        let index = self.log.last_index() + 1;
        let bytes = super::Entry { term: self.term, index, data: Vec::new() }.size() + size;
        if !self.pending.try_charge(bytes) {
            return Err(ProposeError::Backpressure);
        }
        if self.log.append_new(self.term, data).is_none() {
            self.pending.release(bytes);
            return Err(ProposeError::Backpressure);
        }
        self.proposals.push_back((index, bytes));
        self.flush = true;
        self.maybe_commit();
        Ok(index)
    }

    /// The application took a snapshot `data` of its state as of `index` (≤ applied):
    /// record it (for followers that need it) and drop log entries up to `index`.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        if let Some(snap) = self.log.compact(index, data, &self.cfg.peers) {
            self.out_snapshot = Some(snap);
            // A follower whose next entry was just compacted away moves to snapshot
            // transfer at the next send attempt: make the next tick due.
            self.held_back |= self.role == Role::Leader;
        }
    }

    /// Take the effects produced since the last call.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader && std::mem::take(&mut self.flush) {
            self.broadcast_append(self.now_ms);
        }
        let commit = self.log.commit();
        let hs = if self.cfg.bugs.votes_not_persisted {
            HardState { term: self.boot_hs.term, vote: self.boot_hs.vote, commit }
        } else {
            HardState { term: self.term, vote: self.vote, commit }
        };
        let hard_state = (hs != self.emitted_hs).then_some(hs);
        self.emitted_hs = hs;
        if commit != self.reported_commit {
            self.reported_commit = commit;
            self.events.push(RaftEvent::CommitAdvanced { commit });
        }
        Ready {
            snapshot: self.out_snapshot.take(),
            restore: std::mem::take(&mut self.restore),
            hard_state,
            entries: self.log.take_unstable(),
            committed: self.log.take_committed(),
            messages: std::mem::take(&mut self.msgs),
            events: std::mem::take(&mut self.events),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// Known leader of the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Commit index.
    pub fn commit_index(&self) -> Index {
        self.log.commit()
    }
    /// Highest index handed out in `Ready::committed` (or covered by a restored snapshot).
    pub fn applied_index(&self) -> Index {
        self.log.applied()
    }
    /// Last index in the log (or the snapshot's last index if the log is empty).
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }
    /// Last index covered by the current snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.log.snap_index()
    }
    /// Number of entries held in memory.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    fn observe(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn send(&mut self, to: NodeId, term: Term, msg: Message) {
        self.msgs.push(Envelope { group: self.cfg.group, from: self.cfg.id, to, term, msg });
    }

    fn quorum(&self) -> usize {
        self.cfg.peers.len() / 2 + 1
    }

    fn others(&self) -> Vec<NodeId> {
        self.cfg.peers.iter().copied().filter(|&p| p != self.cfg.id).collect()
    }

    /// Record a role and/or term change, with its event.
    fn set_role(&mut self, role: Role, term: Term) {
        if (role, term) == (self.role, self.term) {
            return;
        }
        if term != self.term {
            self.term = term;
            self.vote = None;
            self.verified = 0;
        }
        if self.role == Role::Leader && role != Role::Leader {
            self.release_leadership();
            self.events.push(RaftEvent::LostLeadership);
        }
        self.role = role;
        self.events.push(RaftEvent::RoleChanged { term, role });
    }

    fn become_follower(&mut self, now_ms: u64, term: Term, leader: Option<NodeId>) {
        self.set_role(Role::Follower, term);
        self.leader = leader;
        self.votes.clear();
        if leader.is_some() {
            self.leader_contact_ms = Some(now_ms);
        }
        self.reset_election_timer(now_ms);
    }

    /// A stale peer learns our term: stale leaders step down, stale pre-candidates stop.
    fn reply_to_stale(&mut self, env: Envelope) {
        let msg = match env.msg {
            Message::Append { .. } | Message::InstallSnapshot { .. } => {
                Message::AppendResp { success: false, index: self.log.last_index() }
            }
            Message::PreVote { .. } => Message::PreVoteResp { granted: false },
            _ => return,
        };
        self.send(env.from, self.term, msg);
    }
}
