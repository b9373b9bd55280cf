//! Flow control: proposal back-pressure (`raft.pending`) and the catch-up window (`raft.catchup`).

use super::Net;
use crate::raft::{ProposeError, RaftBugs, Restored};

#[test]
fn proposals_get_backpressure_when_pending_is_full_and_resume_after_commit() {
    // Room for exactly three 10-byte proposals (10 + 24 bytes each).
    let mut net = Net::with_state(3, |_| {}, |_| Restored::default(), (3 * 34, 1 << 20));
    let leader = net.elect();
    let now = net.now;
    let l = net.node(leader);
    assert_eq!(l.propose(now, vec![0; 2_000_000]), Err(ProposeError::TooLarge { size: 2_000_000, limit: 1 << 20 }));
    // No ready() in between: nothing is sent, so nothing can commit.
    for _ in 0..3 {
        l.propose(now, vec![1; 10]).unwrap();
    }
    assert_eq!(l.propose(now, vec![1; 10]), Err(ProposeError::Backpressure));
    assert_eq!(l.propose(now, vec![1; 10]), Err(ProposeError::Backpressure));
    let last = l.last_index();
    assert_eq!(net.pending[&leader].current(), 3 * 34);
    net.drain();
    assert_eq!(net.node(leader).commit_index(), last);
    assert_eq!(net.pending[&leader].current(), 0, "commit releases the charge");
    let now = net.now;
    assert_eq!(net.node(leader).propose(now, vec![1; 10]), Ok(last + 1));
}

#[test]
fn losing_leadership_releases_pending_charges() {
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    net.propose(leader, vec![1; 10]).unwrap();
    net.isolated.insert(leader);
    net.advance(1_000);
    assert_ne!(net.nodes[&leader].role(), crate::raft::Role::Leader, "check-quorum stepped it down");
    assert_eq!(net.pending[&leader].current(), 0);
    assert_eq!(net.catchup[&leader].current(), 0);
}

const ENTRY: usize = 200;
const ENTRIES: usize = 400;
const WINDOW: u64 = 4 * 1024;
const LIMIT: u64 = 16 * 1024;

/// One follower misses `ENTRIES` entries, then catches up; returns the leader's catch-up peak.
fn catch_up_peak(bugs: RaftBugs) -> u64 {
    let tweak = |c: &mut crate::raft::Config| {
        c.catchup_window_bytes = WINDOW;
        c.max_append_bytes = 1024;
        c.bugs = bugs;
    };
    let mut net = Net::with_state(3, tweak, |_| Restored::default(), (1 << 20, LIMIT));
    let leader = net.elect();
    let lag = if leader == 3 { 2 } else { 3 };
    net.isolated.insert(lag);
    for k in 0..ENTRIES {
        net.propose(leader, vec![k as u8; ENTRY]).unwrap();
        net.drain();
    }
    net.isolated.clear();
    let target = net.node(leader).last_index();
    net.advance_until(5_000, |n| n.nodes[&lag].commit_index() == target);
    assert_eq!(net.catchup[&leader].current(), 0, "all in-flight bytes were acknowledged and released");
    net.catchup[&leader].peak()
}

#[test]
fn catch_up_window_bounds_bytes_in_flight() {
    let backlog = (ENTRIES * (ENTRY + 24)) as u64;
    assert!(backlog > LIMIT * 4, "the backlog must dwarf the account for this test to mean anything");
    let peak = catch_up_peak(RaftBugs::NONE);
    // Two followers, each within its window.
    assert!(peak <= 2 * WINDOW, "peak {peak} exceeds two windows of {WINDOW}");
    assert!(peak > 0);
}

#[test]
fn unbounded_catchup_bug_blows_through_the_account() {
    let peak = catch_up_peak(RaftBugs { unbounded_catchup: true, ..RaftBugs::NONE });
    assert!(peak > LIMIT, "with the bug the peak ({peak}) should exceed the limit {LIMIT}");
}

#[test]
fn a_full_catchup_account_holds_back_sends_without_deadlock() {
    // The account is smaller than one window: try_charge failures must be retried later.
    let tweak = |c: &mut crate::raft::Config| {
        c.catchup_window_bytes = WINDOW;
        c.max_append_bytes = 1024;
    };
    let mut net = Net::with_state(3, tweak, |_| Restored::default(), (1 << 20, 1500));
    let leader = net.elect();
    for k in 0..50 {
        net.propose(leader, vec![k as u8; ENTRY]).unwrap();
    }
    let target = net.node(leader).last_index();
    net.advance_until(5_000, |n| (1..=3).all(|id| n.nodes[&id].commit_index() == target));
    assert!(net.catchup[&leader].peak() <= 1500);
}

#[test]
fn full_log_account_refuses_proposals_until_compaction() {
    // Each 10-byte proposal holds 34 bytes in the log; the no-op 24.
    let mut net = Net::with_limits(3, |_| {}, |_| Restored::default(), (1 << 20, 1 << 20, 24 + 3 * 34));
    let leader = net.elect();
    for _ in 0..3 {
        net.propose(leader, vec![1; 10]).unwrap();
    }
    assert_eq!(net.propose(leader, vec![1; 10]), Err(ProposeError::Backpressure));
    assert_eq!(net.pending[&leader].current(), 3 * 34, "a refused proposal holds no pending charge");
    net.drain();
    net.advance(100);
    assert_eq!(net.propose(leader, vec![1; 10]), Err(ProposeError::Backpressure), "committed is not compacted");
    let applied = net.node(leader).applied_index();
    net.node(leader).compact(applied, vec![]);
    assert_eq!(net.log[&leader].current(), 0, "compaction releases the log charge");
    assert!(net.propose(leader, vec![1; 10]).is_ok());
}

#[test]
fn follower_at_its_log_limit_does_not_grow_and_catches_up_after_room_returns() {
    const LIMIT: u64 = 4096;
    let mut net = Net::with_limits(3, |_| {}, |_| Restored::default(), (1 << 20, 1 << 20, LIMIT));
    let leader = net.elect();
    let slow = if leader == 3 { 2 } else { 3 };
    // Other groups on the slow node hold all but 200 bytes of its node-wide account.
    let others = LIMIT - net.log[&slow].current() - 200;
    assert!(net.log[&slow].try_charge(others));
    for k in 0..40u8 {
        net.propose(leader, vec![k; 40]).unwrap();
        net.drain();
        assert!(net.log[&slow].current() <= LIMIT, "the follower grew past its limit");
    }
    net.advance(500);
    let last = net.node(leader).last_index();
    assert_eq!(net.node(leader).commit_index(), last, "the other follower makes the quorum");
    let stuck = net.node(slow).last_index();
    assert!(stuck < last, "the full follower stored only what fit ({stuck} of {last})");
    assert!(net.log[&slow].peak() <= LIMIT);
    assert_eq!(net.nodes[&slow].role(), crate::raft::Role::Follower, "a full follower is not a failed one");
    // The full follower learned the commit index all the same, applied, and compacts.
    let applied = net.node(slow).applied_index();
    assert_eq!(applied, stuck);
    net.node(slow).compact(applied, vec![]);
    // The other groups compact too; the leader's retries now fit.
    net.log[&slow].release(others);
    net.advance(500);
    assert_eq!(net.node(slow).last_index(), last);
    assert_eq!(net.node(slow).applied_index(), last);
    assert!(net.log[&slow].peak() <= LIMIT);
}
