//! Log replication, conflicts and the commit rule.

use super::{Net, e};
use crate::raft::{Entry, Envelope, GroupId, HardState, Message, Restored, Role};

fn restored(term: u64, entries: Vec<Entry>) -> Restored {
    Restored { hard_state: HardState { term, vote: None, commit: 1 }, snapshot: None, entries }
}

#[test]
fn follower_truncates_a_conflicting_suffix_and_reemits_from_there() {
    let mut net =
        Net::with_state(3, |_| {}, |_| restored(2, vec![e(1, 1), e(1, 2), e(2, 3), e(2, 4)]), (1 << 20, 1 << 20));
    let f = net.node(3);
    f.ready();
    let new = vec![e(3, 3)];
    let append = Message::Append { prev_index: 2, prev_term: 1, entries: new.clone(), commit: 3 };
    f.step(10, Envelope { group: GroupId::TEST_LOG, from: 1, to: 3, term: 3, msg: append });
    let rd = f.ready();
    assert_eq!(rd.entries, new, "storage must be told to replace its suffix from index 3");
    assert_eq!(f.last_index(), 3);
    assert_eq!(rd.messages[0].msg, Message::AppendResp { success: true, index: 3 });
    assert_eq!(rd.committed, vec![e(1, 2), e(3, 3)]);
    assert_eq!(rd.hard_state, Some(HardState { term: 3, vote: None, commit: 3 }));
}

#[test]
fn follower_rejects_a_gap_with_its_last_index() {
    let mut net = Net::with_state(3, |_| {}, |_| restored(2, vec![e(1, 1), e(1, 2)]), (1 << 20, 1 << 20));
    let f = net.node(2);
    f.ready();
    let append = Message::Append { prev_index: 7, prev_term: 2, entries: vec![e(2, 8)], commit: 8 };
    f.step(10, Envelope { group: GroupId::TEST_LOG, from: 1, to: 2, term: 2, msg: append });
    let rd = f.ready();
    assert!(rd.entries.is_empty());
    assert_eq!(rd.messages[0].msg, Message::AppendResp { success: false, index: 2 });
}

#[test]
fn cluster_overwrites_a_divergent_follower() {
    // Nodes 1 and 2 hold a term-3 entry at 3; node 3 holds two stale term-2 entries there.
    let logs = |id| match id {
        3 => restored(2, vec![e(1, 1), e(1, 2), e(2, 3), e(2, 4)]),
        _ => restored(3, vec![e(1, 1), e(1, 2), e(3, 3)]),
    };
    let mut net = Net::with_state(3, |_| {}, logs, (1 << 20, 1 << 20));
    let leader = net.elect();
    assert_ne!(leader, 3, "node 3's log is not up to date");
    let idx = net.propose(leader, b"after".to_vec()).unwrap();
    net.advance(100); // a heartbeat carries the new commit index
    let truncated = net.readies[&3].iter().any(|rd| rd.entries.first().is_some_and(|x| x.index == 3));
    assert!(truncated, "node 3 must re-persist from the conflict point");
    for id in 1..=3 {
        let applied = &net.applied[&id];
        assert_eq!(applied.last().map(|x| x.index), Some(idx));
        assert_eq!(applied.iter().find(|x| x.index == 3), Some(&e(3, 3)), "node {id}");
    }
}

#[test]
fn commit_needs_a_quorum_and_a_current_term_entry() {
    // Figure 8 of the Raft paper. Node 1 (term 4) holds a term-2 entry at index 2 that
    // node 5 (term 3) contradicts. Node 1 gets it onto a majority, but must not commit
    // it until an entry of its own term is also on a majority, because node 5 could
    // still win an election and overwrite it.
    let logs = |id| match id {
        1 | 2 => restored(3, vec![e(1, 1), e(2, 2)]),
        // Node 5 led term 3 and has since seen term 4 (node 1's election).
        5 => restored(4, vec![e(1, 1), e(3, 2)]),
        _ => restored(3, vec![e(1, 1)]),
    };
    let tweak = |c: &mut crate::raft::Config| {
        // The classic protocol: leases would (rightly) keep node 5 out for longer.
        c.pre_vote = false;
        c.check_quorum = false;
        c.max_append_bytes = 1; // one entry per Append, so index 3 can be held back alone
        c.election_timeout_ms = match c.id {
            1 => (100, 101),
            5 => (5_000, 5_001),
            _ => (20_000, 20_001),
        };
    };
    let mut net = Net::with_state(5, tweak, logs, (1 << 20, 1 << 20));
    // Index 3 (node 1's no-op) is stripped from every Append, and node 5 hears nothing.
    net.tamper = Some(Box::new(|m| {
        if let Message::Append { entries, .. } = &mut m.msg {
            entries.retain(|x| x.index < 3);
        }
        m.to != 5
    }));
    assert_eq!(net.elect(), 1);
    net.advance(200);
    assert!(net.readies[&3].iter().any(|rd| rd.entries.contains(&e(2, 2))), "index 2 reached node 3");
    assert_eq!(net.node(1).commit_index(), 1, "a majority holds index 2, but it is from an older term");

    // Node 1 fails; node 5 wins with its longer term-3 log and overwrites index 2.
    net.tamper = None;
    net.isolated.insert(1);
    net.advance_until(10_000, |n| n.nodes[&5].role() == Role::Leader);
    net.isolated.clear();
    net.advance(2_000);
    net.assert_election_safety();
    for id in 1..=5 {
        let at2: Vec<_> = net.applied[&id].iter().filter(|x| x.index == 2).collect();
        assert_eq!(at2, vec![&e(3, 2)], "node {id} applied the wrong entry at index 2");
    }
}

#[test]
fn leader_commits_once_its_own_entry_is_on_a_majority() {
    let logs = |id| match id {
        1 | 2 => restored(3, vec![e(1, 1), e(2, 2)]),
        _ => restored(3, vec![e(1, 1)]),
    };
    let tweak = |c: &mut crate::raft::Config| {
        c.election_timeout_ms = if c.id == 1 { (100, 101) } else { (20_000, 20_001) };
    };
    let mut net = Net::with_state(3, tweak, logs, (1 << 20, 1 << 20));
    net.isolated.insert(3);
    assert_eq!(net.elect(), 1);
    assert_eq!(net.node(1).commit_index(), 3, "no-op at 3 on nodes 1 and 2 commits index 2 with it");
}

#[test]
fn stale_rejects_of_pipelined_appends_get_one_probe_not_one_each() {
    const PIPELINED: usize = 20;
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    let f = if leader == 3 { 2 } else { 3 };
    let matched = net.node(leader).last_index();
    assert_eq!(net.node(f).last_index(), matched);
    // The leader pipelines one append per ready(); the first one to `f` is lost, so `f`
    // rejects every later one with the same hint (its last index).
    let mut to_f = Vec::new();
    for k in 0..PIPELINED {
        net.propose(leader, vec![k as u8; 10]).unwrap();
        let rd = net.node(leader).ready();
        to_f.extend(rd.messages.into_iter().filter(|m| m.to == f && matches!(m.msg, Message::Append { .. })));
    }
    assert_eq!(to_f.len(), PIPELINED, "one pipelined append per ready");
    let now = net.now;
    for m in to_f.into_iter().skip(1) {
        net.node(f).step(now, m);
    }
    let rejects = net.node(f).ready().messages;
    assert_eq!(rejects.len(), PIPELINED - 1);
    assert!(rejects.iter().all(|m| m.msg == Message::AppendResp { success: false, index: matched }));
    for m in rejects {
        net.node(leader).step(now, m);
    }
    let probes: Vec<_> = net
        .node(leader)
        .ready()
        .messages
        .into_iter()
        .filter(|m| m.to == f && matches!(m.msg, Message::Append { .. }))
        .collect();
    assert_eq!(probes.len(), 1, "one probe answers all stale rejects");
    let Message::Append { prev_index, .. } = &probes[0].msg else { unreachable!() };
    assert_eq!(*prev_index, matched, "the probe starts right after what the follower holds");
    // The probe (and what follows it) still catches the follower up.
    for m in probes {
        net.node(f).step(now, m);
    }
    let last = net.node(leader).last_index();
    net.advance_until(2_000, |n| n.nodes[&f].last_index() == last);
}
