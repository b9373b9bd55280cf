//! Elections: timers, pre-vote, vote, and becoming candidate or leader.

use super::Raft;
use crate::raft::progress::Progress;
use crate::raft::{Index, Message, NodeId, Role, Term};
use rand::Rng;

impl Raft {
    pub(super) fn reset_election_timer(&mut self, now_ms: u64) {
        let (lo, hi) = self.cfg.election_timeout_ms;
        let timeout = if hi > lo { self.rng.gen_range(lo..hi) } else { lo };
        self.election_deadline = now_ms + timeout;
    }

    /// Whether a leader is known and was heard from within the minimum election timeout.
    pub(super) fn in_lease(&self, now_ms: u64) -> bool {
        match self.leader {
            None => false,
            Some(l) if l == self.cfg.id => self.role == Role::Leader,
            Some(_) => self.leader_contact_ms.is_some_and(|t| now_ms < t + self.cfg.election_timeout_ms.0),
        }
    }

    pub(super) fn campaign(&mut self, now_ms: u64) {
        // A node outside the configuration must never disturb the group.
        if !self.cfg.peers.contains(&self.cfg.id) {
            self.reset_election_timer(now_ms);
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate(now_ms);
        } else {
            self.become_candidate(now_ms);
        }
    }

    fn become_pre_candidate(&mut self, now_ms: u64) {
        self.set_role(Role::PreCandidate, self.term);
        self.start_round(now_ms);
        if self.votes.len() >= self.quorum() {
            return self.become_candidate(now_ms);
        }
        let msg = Message::PreVote { last_index: self.log.last_index(), last_term: self.log.last_term() };
        for p in self.others() {
            self.send(p, self.term + 1, msg.clone());
        }
    }

    fn become_candidate(&mut self, now_ms: u64) {
        self.set_role(Role::Candidate, self.term + 1);
        self.vote = Some(self.cfg.id);
        self.start_round(now_ms);
        if self.votes.len() >= self.quorum() {
            return self.become_leader(now_ms);
        }
        let msg = Message::Vote { last_index: self.log.last_index(), last_term: self.log.last_term() };
        for p in self.others() {
            self.send(p, self.term, msg.clone());
        }
    }

    fn start_round(&mut self, now_ms: u64) {
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id);
        self.reset_election_timer(now_ms);
    }

    fn become_leader(&mut self, now_ms: u64) {
        self.set_role(Role::Leader, self.term);
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.incoming = None;
        let next = self.log.last_index() + 1;
        self.progress = self.others().into_iter().map(|p| (p, Progress::new(next, now_ms))).collect();
        self.heartbeat_due = now_ms + self.cfg.heartbeat_interval_ms;
        // The no-op lets entries from earlier terms commit (they only commit under a current-term entry).
        self.noop_missing = true;
        self.append_noop_if_missing();
        self.flush = true;
        self.maybe_commit();
    }

    pub(super) fn handle_pre_vote(
        &mut self,
        now_ms: u64,
        from: NodeId,
        cand_term: Term,
        last_index: Index,
        last_term: Term,
    ) {
        let granted = cand_term > self.term && self.log.is_up_to_date(last_index, last_term) && !self.in_lease(now_ms);
        // A grant is addressed to the term asked about; a refusal tells the candidate ours.
        let term = if granted { cand_term } else { self.term };
        self.send(from, term, Message::PreVoteResp { granted });
    }

    pub(super) fn handle_pre_vote_resp(&mut self, now_ms: u64, from: NodeId, resp_term: Term, granted: bool) {
        if self.role != Role::PreCandidate || resp_term != self.term + 1 || !granted {
            return;
        }
        self.votes.insert(from);
        if self.votes.len() >= self.quorum() {
            self.become_candidate(now_ms);
        }
    }

    pub(super) fn handle_vote(&mut self, now_ms: u64, from: NodeId, last_index: Index, last_term: Term) {
        let can_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        if granted {
            self.vote = Some(from);
            self.reset_election_timer(now_ms);
        }
        self.send(from, self.term, Message::VoteResp { granted });
    }

    pub(super) fn handle_vote_resp(&mut self, now_ms: u64, from: NodeId, granted: bool) {
        if self.role != Role::Candidate || !granted {
            return;
        }
        self.votes.insert(from);
        if self.votes.len() >= self.quorum() {
            self.become_leader(now_ms);
        }
    }
}
