//! Per-follower replication progress, as the leader sees it.
//!
//! Every byte sent and not yet acknowledged is recorded here and charged to the
//! `raft.catchup` account, so the window is enforced against real memory and every
//! path that forgets in-flight data (ack, reject, stall, step-down) releases the charge.

use super::Index;
use crate::mem::Account;
use std::collections::VecDeque;

/// How the leader currently feeds this follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Looking for the match point: one Append at a time; `paused` until an answer or heartbeat.
    Probe {
        /// An Append is outstanding.
        paused: bool,
    },
    /// Match point known: Appends are pipelined up to the window.
    Replicate,
    /// Sending the snapshot at `last_index` in chunks.
    Snapshot(SnapSend),
}

/// Position in a snapshot transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SnapSend {
    /// Which snapshot.
    pub last_index: Index,
    /// Next byte offset to send.
    pub sent: u64,
    /// Bytes the follower has confirmed.
    pub acked: u64,
}

/// One follower.
#[derive(Debug)]
pub(super) struct Progress {
    pub match_index: Index,
    pub next_index: Index,
    pub state: State,
    /// Time of the last acknowledged progress (or of the first send after an idle spell).
    pub last_progress_ms: u64,
    /// Time of the last message from this follower in the current term (check-quorum).
    pub last_heard_ms: u64,
    /// `(key, bytes)`: key is the last entry index of an Append, or the end offset of a chunk.
    inflight: VecDeque<(u64, u64)>,
    inflight_bytes: u64,
}

impl Progress {
    pub(super) fn new(next_index: Index, now_ms: u64) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: State::Probe { paused: false },
            last_progress_ms: now_ms,
            last_heard_ms: now_ms,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
        }
    }

    pub(super) fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes
    }

    pub(super) fn has_inflight(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Charge `bytes` for a message identified by `key`; `false` (nothing charged) means
    /// the account is full and the caller must not send now. `force` is the known-bug path.
    pub(super) fn charge(&mut self, account: &Account, key: u64, bytes: u64, force: bool, now_ms: u64) -> bool {
        if force {
            account.force_charge(bytes);
        } else if !account.try_charge(bytes) {
            return false;
        }
        if self.inflight.is_empty() {
            // The stall clock measures how long we have been waiting for an answer.
            self.last_progress_ms = now_ms;
        }
        self.inflight.push_back((key, bytes));
        self.inflight_bytes += bytes;
        true
    }

    /// Release everything with `key <= through`; returns whether anything was released.
    pub(super) fn release_through(&mut self, account: &Account, through: u64, now_ms: u64) -> bool {
        let mut freed = 0;
        // Keys grow along the queue except after a resend; scan all to stay correct anyway.
        self.inflight.retain(|&(k, b)| {
            let done = k <= through;
            if done {
                freed += b;
            }
            !done
        });
        if freed > 0 {
            account.release(freed);
            self.inflight_bytes -= freed;
            self.last_progress_ms = now_ms;
        }
        freed > 0
    }

    /// Forget everything in flight (it may be lost) and release its charge.
    pub(super) fn reset_inflight(&mut self, account: &Account) {
        if self.inflight_bytes > 0 {
            account.release(self.inflight_bytes);
        }
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    /// Back to probing from just after the match point.
    pub(super) fn become_probe(&mut self, account: &Account) {
        self.reset_inflight(account);
        self.state = State::Probe { paused: false };
        self.next_index = self.match_index + 1;
    }

    /// Start pipelining after a successful probe.
    pub(super) fn become_replicate(&mut self, account: &Account) {
        self.reset_inflight(account);
        self.state = State::Replicate;
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    /// Start sending the snapshot at `last_index` from the beginning.
    pub(super) fn become_snapshot(&mut self, account: &Account, last_index: Index) {
        self.reset_inflight(account);
        self.state = State::Snapshot(SnapSend { last_index, sent: 0, acked: 0 });
    }

    /// Record a confirmed match at `index`; returns whether it advanced.
    pub(super) fn update_match(&mut self, index: Index) -> bool {
        self.next_index = self.next_index.max(index + 1);
        if index > self.match_index {
            self.match_index = index;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_released_on_ack_and_reset() {
        let acct = Account::new("t", 100);
        let mut p = Progress::new(1, 0);
        assert!(p.charge(&acct, 5, 40, false, 10));
        assert!(p.charge(&acct, 9, 40, false, 20));
        assert!(!p.charge(&acct, 12, 40, false, 30));
        assert_eq!((acct.current(), p.inflight_bytes(), p.last_progress_ms), (80, 80, 10));
        assert!(p.release_through(&acct, 5, 50));
        assert!(!p.release_through(&acct, 5, 60));
        assert_eq!((acct.current(), p.last_progress_ms), (40, 50));
        p.become_probe(&acct);
        assert_eq!((acct.current(), p.inflight_bytes(), p.next_index), (0, 0, 1));
        p.charge(&acct, 1, 500, true, 70);
        assert_eq!(acct.peak(), 500);
    }
}
