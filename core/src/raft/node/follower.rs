//! The receiving side of replication: Append and InstallSnapshot.

use super::Raft;
use crate::raft::log::AppendOutcome;
use crate::raft::{Entry, Index, Message, NodeId, Role, Snapshot, SnapshotMeta, Term};

impl Raft {
    /// Accept `from` as the leader of the current term; `false` if we cannot (we lead it ourselves).
    fn accept_leader(&mut self, now_ms: u64, from: NodeId) -> bool {
        match self.role {
            // Two leaders in one term only happen under known bugs; never follow the other one.
            Role::Leader => return false,
            Role::PreCandidate | Role::Candidate => self.become_follower(now_ms, self.term, Some(from)),
            Role::Follower => {}
        }
        self.leader = Some(from);
        self.leader_contact_ms = Some(now_ms);
        self.reset_election_timer(now_ms);
        true
    }

    pub(super) fn handle_append(
        &mut self,
        now_ms: u64,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
        leader_commit: Index,
    ) {
        if !self.accept_leader(now_ms, from) {
            return;
        }
        let resp = match self.log.try_append(prev_index, prev_term, entries) {
            AppendOutcome::Matched(index) => {
                self.verified = self.verified.max(index);
                self.log.commit_to(leader_commit.min(self.verified));
                Message::AppendResp { success: true, index }
            }
            AppendOutcome::Rejected(hint) => Message::AppendResp { success: false, index: hint },
        };
        self.send(from, self.term, resp);
    }

    pub(super) fn handle_snapshot_chunk(
        &mut self,
        now_ms: u64,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Vec<u8>,
        done: bool,
    ) {
        // `last_index + 1` must exist for the log after it.
        if meta.last_index == Index::MAX || !self.accept_leader(now_ms, from) {
            return;
        }
        let last_index = meta.last_index;
        let reply = |next_offset: u64, done: bool| Message::InstallSnapshotResp { last_index, next_offset, done };
        if last_index <= self.log.commit() {
            // We already hold everything it covers: tell the leader to move on.
            self.incoming = None;
            let end = offset.saturating_add(chunk.len() as u64);
            return self.send(from, self.term, reply(end, true));
        }
        if self.incoming.as_ref().is_none_or(|s| s.meta != meta) {
            self.incoming = None;
            if offset != 0 {
                return self.send(from, self.term, reply(0, false));
            }
            self.incoming = Some(Snapshot { meta, data: Vec::new() });
        }
        let Some(inc) = self.incoming.as_mut() else { return };
        let have = inc.data.len() as u64;
        if offset != have {
            // Out of order or duplicate: say where to resume.
            return self.send(from, self.term, reply(have, false));
        }
        inc.data.extend_from_slice(&chunk);
        let have = inc.data.len() as u64;
        if !done {
            return self.send(from, self.term, reply(have, false));
        }
        let Some(snap) = self.incoming.take() else { return };
        self.log.install(snap.clone());
        self.verified = self.verified.max(last_index);
        self.out_snapshot = Some(snap);
        self.restore = true;
        self.send(from, self.term, reply(have, true));
    }
}
