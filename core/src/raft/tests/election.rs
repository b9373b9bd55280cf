//! Elections, pre-vote and leases.

use super::Net;
use crate::raft::{Envelope, GroupId, Message, ProposeError, Role};

#[test]
fn three_nodes_elect_exactly_one_leader() {
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    net.advance(2_000);
    assert_eq!(net.leaders_now(), vec![leader], "leadership must be stable on a perfect network");
    let term = net.node(leader).term();
    for id in 1..=3 {
        let n = net.node(id);
        assert_eq!(n.term(), term);
        assert_eq!(n.leader(), Some(leader));
        if id != leader {
            assert_eq!(n.role(), Role::Follower);
        }
    }
    assert_eq!(net.leaders.len(), 1, "one election, one term with a leader");
    net.assert_election_safety();
    // The leader's no-op committed everywhere.
    for id in 1..=3 {
        assert_eq!(net.applied[&id].len(), 1);
        assert!(net.applied[&id][0].data.is_empty());
    }
}

#[test]
fn single_node_leads_immediately_on_timeout() {
    let mut net = Net::new(1, |_| {});
    net.advance(600);
    assert_eq!(net.node(1).role(), Role::Leader);
    let idx = net.propose(1, b"x".to_vec()).unwrap();
    net.drain();
    assert_eq!(net.node(1).commit_index(), idx);
}

#[test]
fn followers_refuse_proposals_with_a_hint() {
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    let f = if leader == 1 { 2 } else { 1 };
    let now = net.now;
    assert_eq!(net.node(f).propose(now, vec![1]), Err(ProposeError::NotLeader { leader: Some(leader) }));
}

/// Partition one follower for many election timeouts, then heal: returns (leader, term before, term after).
fn rejoin(pre_vote: bool) -> (Vec<u64>, u64, u64, u64) {
    let mut net = Net::new(3, |c| {
        c.pre_vote = pre_vote;
        c.check_quorum = pre_vote;
    });
    let leader = net.elect();
    let term = net.node(leader).term();
    let lone = if leader == 3 { 1 } else { 3 };
    net.isolated.insert(lone);
    net.advance(5_000);
    let lone_term = net.node(lone).term();
    net.isolated.clear();
    net.advance(3_000);
    assert_eq!(net.leaders_now().len(), 1);
    net.assert_election_safety();
    (net.leaders_now(), term, lone_term, net.node(leader).term())
}

#[test]
fn pre_vote_stops_a_rejoining_node_from_raising_the_term() {
    let (leaders, before, lone_term, after) = rejoin(true);
    assert_eq!(lone_term, before, "an isolated pre-candidate must not bump its term");
    assert_eq!(after, before, "the healthy cluster's term must not move");
    assert_eq!(leaders.len(), 1);
}

#[test]
fn without_pre_vote_a_rejoining_node_disrupts_the_term() {
    // Control for the test above: the same schedule without pre-vote does move the term.
    let (_, before, lone_term, after) = rejoin(false);
    assert!(lone_term > before + 3);
    assert!(after > before, "the rejoining node forced a new election");
}

#[test]
fn followers_in_lease_ignore_higher_term_votes() {
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    let term = net.node(leader).term();
    let f = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - f;
    let now = net.now;
    let vote = Message::Vote { last_index: 100, last_term: term + 5 };
    net.node(f).step(now, Envelope { group: GroupId::TEST_LOG, from: other, to: f, term: term + 5, msg: vote });
    let rd = net.node(f).ready();
    assert!(rd.messages.is_empty() && rd.hard_state.is_none(), "vote must be ignored in lease: {rd:?}");
    assert_eq!(net.node(f).term(), term);
}

#[test]
fn pre_votes_are_refused_in_lease_and_to_stale_logs() {
    let mut net = Net::new(3, |_| {});
    let leader = net.elect();
    let (term, last) = (net.node(leader).term(), net.node(leader).last_index());
    let f = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - f;
    let ask = |last_index, last_term| Envelope {
        group: GroupId::TEST_LOG,
        from: other,
        to: f,
        term: term + 1,
        msg: Message::PreVote { last_index, last_term },
    };
    let answer = |net: &mut Net, at, env| {
        net.node(f).step(at, env);
        let rd = net.node(f).ready();
        assert!(rd.hard_state.is_none(), "a pre-vote never changes term or vote");
        rd.messages.into_iter().map(|m| (m.term, m.msg)).collect::<Vec<_>>()
    };
    let now = net.now;
    // The leader was just heard from: refuse, and tell the candidate our term.
    assert_eq!(answer(&mut net, now, ask(last, term)), vec![(term, Message::PreVoteResp { granted: false })]);
    // One minimum election timeout of silence later the lease is over: grant, for term + 1.
    let later = now + 300;
    assert_eq!(answer(&mut net, later, ask(last, term)), vec![(term + 1, Message::PreVoteResp { granted: true })]);
    // ...but never to a log that is behind ours.
    assert_eq!(answer(&mut net, later, ask(last - 1, term)), vec![(term, Message::PreVoteResp { granted: false })]);
    assert_eq!(net.node(f).term(), term);
}

#[test]
fn pre_vote_response_does_not_change_term() {
    let mut net = Net::new(3, |_| {});
    let now = net.now;
    let resp = Message::PreVoteResp { granted: false };
    net.node(1).step(now, Envelope { group: GroupId::TEST_LOG, from: 2, to: 1, term: 9, msg: resp });
    assert_eq!(net.node(1).term(), 0);
    assert!(net.node(1).ready().hard_state.is_none());
}

#[test]
fn a_vote_is_granted_once_per_term_and_persisted_before_the_reply() {
    let mut net = Net::new(3, |c| c.pre_vote = false);
    let vote = |from| Envelope {
        group: GroupId::TEST_LOG,
        from,
        to: 1,
        term: 1,
        msg: Message::Vote { last_index: 0, last_term: 0 },
    };
    net.node(1).step(0, vote(2));
    net.node(1).step(0, vote(3));
    let rd = net.node(1).ready();
    assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((1, Some(2))));
    let grants: Vec<_> = rd.messages.iter().map(|m| (m.to, m.msg.clone())).collect();
    assert_eq!(grants, vec![(2, Message::VoteResp { granted: true }), (3, Message::VoteResp { granted: false })]);
}

#[test]
fn votes_not_persisted_bug_keeps_boot_term_and_vote() {
    let mut net = Net::new(3, |c| {
        c.pre_vote = false;
        c.bugs.votes_not_persisted = true;
    });
    let vote = Envelope {
        group: GroupId::TEST_LOG,
        from: 2,
        to: 1,
        term: 4,
        msg: Message::Vote { last_index: 0, last_term: 0 },
    };
    net.node(1).step(0, vote);
    let rd = net.node(1).ready();
    assert!(rd.hard_state.is_none(), "term/vote must not reach the disk under the bug");
    assert_eq!(rd.messages[0].msg, Message::VoteResp { granted: true });
}
