//! The leader: replication with flow control, snapshots to laggards, commit, check-quorum.

use super::Raft;
use crate::raft::progress::{Progress, State};
use crate::raft::{Index, Message, NodeId, Role};

impl Raft {
    pub(super) fn tick_leader(&mut self, now_ms: u64) {
        // Whatever was held back is retried below; a send that still does not go sets it again.
        self.held_back = false;
        self.append_noop_if_missing();
        let max = self.cfg.election_timeout_ms.1;
        if self.cfg.check_quorum {
            let heard = self.progress.values().filter(|p| now_ms.saturating_sub(p.last_heard_ms) < max).count();
            if heard + 1 < self.quorum() {
                self.become_follower(now_ms, self.term, None);
                return;
            }
        }
        // Messages can vanish: whatever waited an election timeout for an answer is written off.
        for pr in self.progress.values_mut() {
            if pr.has_inflight() && now_ms.saturating_sub(pr.last_progress_ms) >= max {
                pr.become_probe(&self.catchup);
            }
        }
        if now_ms >= self.heartbeat_due {
            self.heartbeat_due = now_ms + self.cfg.heartbeat_interval_ms;
            for to in self.others() {
                self.heartbeat(to, now_ms);
            }
        }
        // Retry whatever the window or the account held back earlier.
        self.broadcast_append(now_ms);
    }

    fn heartbeat(&mut self, to: NodeId, now_ms: u64) {
        let Some(pr) = self.progress.get_mut(&to) else { return };
        if let State::Probe { .. } = pr.state {
            // In Probe the heartbeat is the probe itself (the previous one may be lost).
            pr.reset_inflight(&self.catchup);
            pr.state = State::Probe { paused: false };
            return self.send_append(to, now_ms);
        }
        // Point at the match index so the follower can verify (and commit) up to it.
        let (prev_index, prev_term) = match self.log.term(pr.match_index) {
            Some(t) => (pr.match_index, t),
            None => (0, 0),
        };
        let commit = self.log.commit().min(pr.match_index);
        let msg = Message::Append { prev_index, prev_term, entries: Vec::new(), commit };
        self.send(to, self.term, msg);
    }

    pub(super) fn broadcast_append(&mut self, now_ms: u64) {
        for to in self.others() {
            self.send_append(to, now_ms);
        }
    }

    /// Send `to` whatever its state and window allow.
    pub(super) fn send_append(&mut self, to: NodeId, now_ms: u64) {
        let unbounded = self.cfg.bugs.unbounded_catchup;
        let window = self.cfg.catchup_window_bytes;
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&to) else { return };
        match pr.state {
            State::Probe { paused: true } => return,
            State::Snapshot(_) => return self.send_snapshot(to, now_ms),
            _ => {}
        }
        pr.next_index = pr.next_index.max(pr.match_index + 1).min(last + 1);
        if pr.next_index <= self.log.snap_index() {
            pr.become_snapshot(&self.catchup, self.log.snap_index());
            return self.send_snapshot(to, now_ms);
        }
        loop {
            let probing = matches!(pr.state, State::Probe { .. });
            if !probing && pr.next_index > last {
                return;
            }
            let room = if unbounded { u64::MAX } else { window.saturating_sub(pr.inflight_bytes()) };
            if room == 0 && !probing {
                return;
            }
            let mut entries = self.log.slice(pr.next_index, room.min(self.cfg.max_append_bytes));
            let bytes: u64 = entries.iter().map(|e| e.size()).sum();
            // A single entry larger than the window may only travel alone.
            if !unbounded && pr.has_inflight() && pr.inflight_bytes() + bytes > window {
                return;
            }
            let prev_index = pr.next_index - 1;
            let key = prev_index + entries.len() as u64;
            if !pr.charge(&self.catchup, key, bytes, unbounded, now_ms) {
                self.held_back = true;
                if !probing {
                    return;
                }
                // The account is full: still probe, without entries, so the follower keeps
                // hearing from us and the match point is still found.
                entries.clear();
            }
            let prev_term = self.log.term(prev_index).unwrap_or(0);
            let msg = Message::Append { prev_index, prev_term, entries, commit: self.log.commit() };
            self.msgs.push(crate::raft::Envelope {
                group: self.cfg.group,
                from: self.cfg.id,
                to,
                term: self.term,
                msg,
            });
            if probing {
                pr.state = State::Probe { paused: true };
                return;
            }
            pr.next_index = key + 1;
        }
    }

    fn send_snapshot(&mut self, to: NodeId, now_ms: u64) {
        let unbounded = self.cfg.bugs.unbounded_catchup;
        let window = self.cfg.catchup_window_bytes;
        let chunk_bytes = self.cfg.snapshot_chunk_bytes.max(1);
        let Some(pr) = self.progress.get_mut(&to) else { return };
        let Some(snap) = self.log.snapshot() else {
            // Unreachable (a compacted log always has its snapshot); fall back to probing.
            return pr.become_probe(&self.catchup);
        };
        let State::Snapshot(mut s) = pr.state else { return };
        if s.last_index != snap.meta.last_index {
            // A newer snapshot replaced the one being sent: start over with it.
            pr.become_snapshot(&self.catchup, snap.meta.last_index);
            let State::Snapshot(fresh) = pr.state else { return };
            s = fresh;
        }
        let total = snap.data.len() as u64;
        // An empty snapshot is still one (empty, final) chunk.
        while s.sent < total || (total == 0 && !pr.has_inflight()) {
            let end = (s.sent + chunk_bytes).min(total);
            let len = end - s.sent;
            if !unbounded && pr.has_inflight() && pr.inflight_bytes() + len > window {
                break;
            }
            if !pr.charge(&self.catchup, end, len, unbounded, now_ms) {
                self.held_back = true;
                break;
            }
            let msg = Message::InstallSnapshot {
                meta: snap.meta.clone(),
                offset: s.sent,
                chunk: snap.data[s.sent as usize..end as usize].to_vec(),
                done: end == total,
            };
            self.msgs.push(crate::raft::Envelope {
                group: self.cfg.group,
                from: self.cfg.id,
                to,
                term: self.term,
                msg,
            });
            s.sent = end;
            if total == 0 {
                break;
            }
        }
        pr.state = State::Snapshot(s);
    }

    pub(super) fn handle_append_resp(&mut self, now_ms: u64, from: NodeId, success: bool, index: Index) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.last_heard_ms = now_ms;
        if success {
            // Clamp: a follower can only claim what we have (anything else is a known-bug artefact).
            let index = index.min(last);
            let advanced = pr.update_match(index);
            pr.release_through(&self.catchup, index, now_ms);
            match pr.state {
                // The probe matched but the follower stored none of what is beyond it: its
                // `raft.log` is full. Wait for the next heartbeat (which re-probes) instead
                // of ping-ponging a window of entries it will refuse.
                State::Probe { .. } if !advanced && index < last => {
                    pr.state = State::Probe { paused: true };
                    return;
                }
                State::Probe { .. } => {
                    pr.next_index = pr.match_index + 1;
                    pr.become_replicate(&self.catchup);
                }
                State::Snapshot(s) if pr.match_index >= s.last_index => pr.become_replicate(&self.catchup),
                _ => {}
            }
            if advanced {
                self.maybe_commit();
            }
        } else {
            // A hint below the match point answers an old message: the log there is verified.
            if index < pr.match_index || matches!(pr.state, State::Snapshot(_)) {
                return;
            }
            // While probing, a reject of the probe at `next_index - 1` always hints below it
            // (the follower lacks or mismatches that index). A hint at or past it is stale:
            // it answers one of the pipelined appends sent before we backed off, and the
            // probe already in flight (or the next heartbeat's) covers it. Answering each
            // such reject with another probe sent one full probe per stale reject (as
            // etcd/raft-rs drop rejects that do not match the probe).
            if matches!(pr.state, State::Probe { .. }) && index.saturating_add(1) >= pr.next_index {
                return;
            }
            let next = pr.next_index.saturating_sub(1).min(index.saturating_add(1)).max(pr.match_index + 1);
            pr.become_probe(&self.catchup);
            pr.next_index = next;
        }
        self.send_append(from, now_ms);
    }

    pub(super) fn handle_snapshot_resp(
        &mut self,
        now_ms: u64,
        from: NodeId,
        last_index: Index,
        next_offset: u64,
        done: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.last_heard_ms = now_ms;
        let sending = match pr.state {
            State::Snapshot(s) if s.last_index == last_index => Some(s),
            _ => None,
        };
        if done {
            // Even a late "done" proves the follower holds everything up to `last_index`.
            let advanced = pr.update_match(last_index.min(last));
            if sending.is_some() {
                pr.become_probe(&self.catchup);
            }
            if advanced {
                self.maybe_commit();
            }
            return self.send_append(from, now_ms);
        }
        let Some(mut s) = sending else { return };
        let total = self.log.snapshot().map_or(0, |snap| snap.data.len() as u64);
        let next_offset = next_offset.min(total);
        if next_offset > s.acked {
            s.acked = next_offset;
            s.sent = s.sent.max(next_offset);
            pr.release_through(&self.catchup, next_offset, now_ms);
        } else if next_offset < s.sent {
            // The follower dropped a chunk (gap, reorder or restart): resend from where it is.
            pr.reset_inflight(&self.catchup);
            s.acked = next_offset;
            s.sent = next_offset;
        }
        pr.state = State::Snapshot(s);
        self.send_snapshot(from, now_ms);
    }

    /// Advance the commit index to what a quorum holds (current-term entries only).
    pub(super) fn maybe_commit(&mut self) {
        let last = self.log.last_index();
        let target = if self.cfg.bugs.commit_before_quorum {
            last
        } else {
            let mut matched: Vec<Index> = self.progress.values().map(|p: &Progress| p.match_index).collect();
            matched.push(last);
            matched.sort_unstable_by(|a, b| b.cmp(a));
            let q = matched.get(self.quorum() - 1).copied().unwrap_or(0);
            // Figure 8: an older-term entry is only committed by a current-term entry above it.
            if self.log.term(q) != Some(self.term) {
                return;
            }
            q
        };
        if self.log.commit_to(target) {
            let commit = self.log.commit();
            while let Some(&(index, bytes)) = self.proposals.front() {
                if index > commit {
                    break;
                }
                self.pending.release(bytes);
                self.proposals.pop_front();
            }
        }
    }

    /// A leader needs an entry of its own term before anything commits (the no-op
    /// appended on election). If `raft.log` had no room for it, try again now.
    pub(super) fn append_noop_if_missing(&mut self) {
        if self.role != Role::Leader || !self.noop_missing {
            return;
        }
        if self.log.append_new(self.term, Vec::new()).is_some() {
            self.noop_missing = false;
            self.flush = true;
            self.maybe_commit();
        } else {
            self.held_back = true;
        }
    }

    /// Leadership is gone: forget followers and release every charge they and proposals held.
    pub(super) fn release_leadership(&mut self) {
        for pr in self.progress.values_mut() {
            pr.reset_inflight(&self.catchup);
        }
        self.progress.clear();
        for (_, bytes) in self.proposals.drain(..) {
            self.pending.release(bytes);
        }
        self.flush = false;
        self.held_back = false;
        self.noop_missing = false;
    }
}
