//! The group host: one node's many Raft groups behind one pure multiplexer.
//!
//! A node takes part in many Raft groups at once (the test log today; later the meta
//! group and one group per replicated stream). [`RaftHost`] owns each member [`Raft`]
//! by [`GroupId`], routes every incoming [`Envelope`] to its group by `envelope.group`,
//! and hands the shell each group's [`Ready`] tagged with the group. Like `Raft` it is
//! pure: time comes in as an argument, effects go out as values, nothing here does I/O
//! or reads a clock, so it is tested without a runtime.
//!
//! **Why it reports a deadline.** With one group a shell can tick every few
//! milliseconds; with thousands that is thousands of wasted calls per tick, nearly all
//! of which do nothing (a follower's tick only matters at its election deadline, a
//! leader's at its next heartbeat or a timeout). Each group knows exactly when its next
//! tick can matter ([`Raft::next_deadline`]); the host reports the earliest of them
//! ([`RaftHost::next_deadline`]) so a shell can sleep until then, and
//! [`RaftHost::tick`] only ticks groups whose deadline has come. A tick before a
//! group's deadline is a no-op by construction (the Raft fuzz test checks this), so
//! skipping it changes nothing.
//!
//! **Groups and state machines.** Each group feeds exactly one applied state machine
//! (the [`super::StateMachine`] trait). The host does not own them: applying must wait
//! until the shell has made the ready's entries durable, which is I/O. The shell keeps
//! `group → (storage, state machine)` and, for each [`GroupReady`], in this order:
//! 1. persists its snapshot, hard state and entries (one fsync for the group's storage);
//! 2. restores the state machine if `restore` is set, then applies `committed` in order;
//! 3. only then sends `messages` (votes and acknowledgements promise durable state);
//! 4. compacts the group when its state machine is far enough ahead.
//!
//! Groups are independent: one group's ready never waits on another's, and the order
//! within a group is all Raft needs. The groups share the node's ledger accounts
//! ([`super::RaftAccounts`]), so the limits bound the node, not each group.

use super::{Config, Envelope, GroupId, Index, ProposeError, Raft, RaftAccounts, Ready, Restored};
use std::collections::BTreeMap;

/// One group's effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupReady {
    /// The group they belong to.
    pub group: GroupId,
    /// The effects, to be carried out in the order documented on [`Ready`].
    pub ready: Ready,
}

/// Why the host refused a call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No group with this id is hosted here.
    #[error("no raft group {0} on this node")]
    UnknownGroup(GroupId),
    /// A group with this id is already hosted.
    #[error("raft group {0} already exists on this node")]
    GroupExists(GroupId),
}

/// Many Raft groups of one node, multiplexed by group id.
#[derive(Debug)]
pub struct RaftHost {
    accounts: RaftAccounts,
    groups: BTreeMap<GroupId, Raft>,
    /// Messages dropped because their group is not hosted here.
    unknown_dropped: u64,
}

impl RaftHost {
    /// An empty host whose groups charge `accounts`.
    pub fn new(accounts: RaftAccounts) -> RaftHost {
        RaftHost { accounts, groups: BTreeMap::new(), unknown_dropped: 0 }
    }

    /// Host a member of group `config.group`, from its recovered state. `seed` seeds its
    /// election timer; `now_ms` is the current time.
    pub fn add_group(&mut self, config: Config, restored: Restored, seed: u64, now_ms: u64) -> Result<(), HostError> {
        let group = config.group;
        if self.groups.contains_key(&group) {
            return Err(HostError::GroupExists(group));
        }
        let raft = Raft::new(config, restored, seed, self.accounts.clone(), now_ms);
        self.groups.insert(group, raft);
        Ok(())
    }

    /// Stop hosting `group`. Its in-memory log and charges are released; its durable
    /// state is the shell's to keep or delete.
    pub fn remove_group(&mut self, group: GroupId) -> Result<(), HostError> {
        self.groups.remove(&group).map(drop).ok_or(HostError::UnknownGroup(group))
    }

    /// The member of `group`, for inspection.
    pub fn group(&self, group: GroupId) -> Option<&Raft> {
        self.groups.get(&group)
    }

    /// Ids of the hosted groups, in order.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// Messages dropped so far because no hosted group matched (a group removed here, or
    /// not created yet, while peers still talk to it).
    pub fn unknown_dropped(&self) -> u64 {
        self.unknown_dropped
    }

    /// Route a peer's message to its group. A message for a group not hosted here is
    /// counted ([`RaftHost::unknown_dropped`]) and dropped: Raft tolerates loss, and the
    /// sender retries once the group exists.
    pub fn step(&mut self, now_ms: u64, env: Envelope) -> Result<(), HostError> {
        match self.groups.get_mut(&env.group) {
            Some(raft) => {
                raft.step(now_ms, env);
                Ok(())
            }
            None => {
                self.unknown_dropped += 1;
                Err(HostError::UnknownGroup(env.group))
            }
        }
    }

    /// Tick every group whose deadline has come (see the module doc).
    pub fn tick(&mut self, now_ms: u64) {
        for raft in self.groups.values_mut() {
            if raft.next_deadline() <= now_ms {
                raft.tick(now_ms);
            }
        }
    }

    /// The earliest time any group needs a tick (`None` with no groups). Sleep until
    /// then; anything that arrives earlier (a message, a proposal) may move it, so ask
    /// again after feeding input.
    pub fn next_deadline(&self) -> Option<u64> {
        self.groups.values().map(Raft::next_deadline).min()
    }

    /// Propose `data` to `group` (its leader only; see [`Raft::propose`]).
    pub fn propose(&mut self, now_ms: u64, group: GroupId, data: Vec<u8>) -> Result<Index, ProposeError> {
        match self.groups.get_mut(&group) {
            Some(raft) => raft.propose(now_ms, data),
            None => Err(ProposeError::NoSuchGroup { group }),
        }
    }

    /// Record `group`'s state machine snapshot `data` as of `index` (see [`Raft::compact`]).
    pub fn compact(&mut self, group: GroupId, index: Index, data: Vec<u8>) -> Result<(), HostError> {
        let raft = self.groups.get_mut(&group).ok_or(HostError::UnknownGroup(group))?;
        raft.compact(index, data);
        Ok(())
    }

    /// Take every group's effects, in group order, leaving out groups with nothing to do.
    pub fn ready(&mut self) -> Vec<GroupReady> {
        self.groups
            .iter_mut()
            .filter_map(|(&group, raft)| {
                let ready = raft.ready();
                (!ready.is_empty()).then_some(GroupReady { group, ready })
            })
            .collect()
    }

    /// Take one group's effects.
    pub fn ready_of(&mut self, group: GroupId) -> Result<Ready, HostError> {
        Ok(self.groups.get_mut(&group).ok_or(HostError::UnknownGroup(group))?.ready())
    }

    /// Check every group's invariants and that each sits under its own id.
    pub fn invariants(&self) {
        let mut log = 0;
        for (id, raft) in &self.groups {
            assert_eq!(*id, raft.group(), "group hosted under the wrong id");
            raft.invariants();
            log += raft.log_bytes();
        }
        assert!(log <= self.accounts.log.current(), "groups hold more log than raft.log is charged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Message, NodeId, Role};

    /// Three hosts (nodes 1..=3), each hosting the same `groups`, over a perfect network.
    struct Cluster {
        hosts: BTreeMap<NodeId, RaftHost>,
        now: u64,
        delivered: Vec<Envelope>,
        committed: BTreeMap<(NodeId, GroupId), Vec<Vec<u8>>>,
    }

    impl Cluster {
        fn new(groups: &[u64], log_limit: u64) -> Cluster {
            let mut hosts = BTreeMap::new();
            for id in 1..=3 {
                let mut host = RaftHost::new(RaftAccounts::with_limits(1 << 20, 1 << 20, log_limit));
                for &g in groups {
                    let mut cfg = Config::new(id, vec![1, 2, 3]);
                    cfg.group = GroupId(g);
                    host.add_group(cfg, Restored::default(), 100 * g + id, 0).unwrap();
                }
                hosts.insert(id, host);
            }
            Cluster { hosts, now: 0, delivered: Vec::new(), committed: BTreeMap::new() }
        }

        fn host(&mut self, id: NodeId) -> &mut RaftHost {
            self.hosts.get_mut(&id).unwrap()
        }

        /// Deliver every message until quiet.
        fn drain(&mut self) {
            loop {
                let mut out = Vec::new();
                for (&id, host) in &mut self.hosts {
                    for gr in host.ready() {
                        for m in &gr.ready.messages {
                            assert_eq!(m.group, gr.group, "a group's ready carries only its own messages");
                        }
                        let c = self.committed.entry((id, gr.group)).or_default();
                        c.extend(gr.ready.committed.iter().map(|e| e.data.clone()));
                        out.extend(gr.ready.messages);
                    }
                    host.invariants();
                }
                if out.is_empty() {
                    return;
                }
                for m in out {
                    self.delivered.push(m.clone());
                    let now = self.now;
                    let to = m.to;
                    self.host(to).step(now, m).unwrap();
                }
            }
        }

        /// Jump from deadline to deadline until `until`, as a deadline-driven shell would.
        fn run_until(&mut self, until: u64) {
            loop {
                let next = self.hosts.values().filter_map(RaftHost::next_deadline).min().unwrap();
                if next > until {
                    self.now = until;
                    return;
                }
                self.now = self.now.max(next);
                let now = self.now;
                for host in self.hosts.values_mut() {
                    host.tick(now);
                }
                self.drain();
            }
        }

        fn leader(&self, g: u64) -> Option<NodeId> {
            let leaders: Vec<NodeId> = self
                .hosts
                .iter()
                .filter(|(_, h)| h.group(GroupId(g)).unwrap().role() == Role::Leader)
                .map(|(&id, _)| id)
                .collect();
            assert!(leaders.len() <= 1, "two leaders of g{g}: {leaders:?}");
            leaders.first().copied()
        }
    }

    #[test]
    fn groups_elect_and_commit_independently_routed_by_group() {
        let mut c = Cluster::new(&[1, 2, 7], 1 << 20);
        c.run_until(2_000);
        let leaders: Vec<NodeId> = [1, 2, 7].iter().map(|&g| c.leader(g).expect("a leader per group")).collect();
        // Every group ran its own election: the traffic of each carries its own id.
        for g in [1, 2, 7] {
            assert!(c.delivered.iter().any(|m| m.group == GroupId(g) && matches!(m.msg, Message::Vote { .. })));
        }
        let now = c.now;
        let l2 = leaders[1];
        let idx = c.host(l2).propose(now, GroupId(2), b"only-in-g2".to_vec()).unwrap();
        c.drain();
        // Followers learn the commit index from the next heartbeat.
        c.run_until(now + 200);
        for id in 1..=3 {
            let g2 = &c.committed[&(id, GroupId(2))];
            assert!(g2.iter().any(|d| d == b"only-in-g2"), "n{id} did not apply the g2 proposal");
            assert!(c.hosts[&id].group(GroupId(2)).unwrap().commit_index() >= idx);
            for g in [1, 7] {
                assert!(c.committed[&(id, GroupId(g))].iter().all(|d| d.is_empty()), "g{g} saw g2's entry");
            }
        }
        // A proposal to a group that is not hosted is refused, not misrouted.
        assert_eq!(c.host(l2).propose(now, GroupId(9), vec![1]), Err(ProposeError::NoSuchGroup { group: GroupId(9) }));
    }

    #[test]
    fn unknown_group_is_counted_and_dropped() {
        let mut c = Cluster::new(&[1], 1 << 20);
        let env = Envelope { group: GroupId(5), from: 2, to: 1, term: 1, msg: Message::VoteResp { granted: true } };
        assert_eq!(c.host(1).step(0, env), Err(HostError::UnknownGroup(GroupId(5))));
        assert_eq!(c.hosts[&1].unknown_dropped(), 1);
        assert!(c.host(1).ready().is_empty(), "a dropped message has no effect");
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.group = GroupId(1);
        assert_eq!(c.host(1).add_group(cfg, Restored::default(), 1, 0), Err(HostError::GroupExists(GroupId(1))));
        c.host(1).remove_group(GroupId(1)).unwrap();
        assert_eq!(c.host(1).next_deadline(), None);
        assert_eq!(c.host(1).remove_group(GroupId(1)), Err(HostError::UnknownGroup(GroupId(1))));
    }

    #[test]
    fn deadline_is_the_earliest_group_and_early_ticks_do_nothing() {
        let mut c = Cluster::new(&[1, 2], 1 << 20);
        let host = c.host(1);
        let d1 = host.group(GroupId(1)).unwrap().next_deadline();
        let d2 = host.group(GroupId(2)).unwrap().next_deadline();
        assert_eq!(host.next_deadline(), Some(d1.min(d2)));
        assert!(d1 > 0 && d2 > 0, "followers wait an election timeout");
        // Ticking just before the earliest deadline changes nothing.
        host.tick(d1.min(d2) - 1);
        assert!(host.ready().is_empty());
        // At the deadline, exactly the due group acts.
        let (first, other) = if d1 <= d2 { (GroupId(1), GroupId(2)) } else { (GroupId(2), GroupId(1)) };
        host.tick(d1.min(d2));
        let readies = host.ready();
        assert_eq!(readies.iter().map(|r| r.group).collect::<Vec<_>>(), vec![first]);
        assert_eq!(host.group(other).unwrap().role(), Role::Follower);
        assert_ne!(host.group(first).unwrap().role(), Role::Follower);
        // Once a group leads, its deadline is its heartbeat (or sooner), not an election.
        c.run_until(3_000);
        let l = c.leader(1).unwrap();
        let now = c.now;
        let hb = c.hosts[&l].group(GroupId(1)).unwrap().next_deadline();
        assert!(hb > now && hb <= now + 50, "leader deadline {hb} at {now}");
    }

    #[test]
    fn groups_share_the_log_account_and_removal_releases_it() {
        let mut c = Cluster::new(&[1, 2], 1 << 20);
        c.run_until(2_000);
        let acct = c.hosts[&1].accounts.log.clone();
        let held = acct.current();
        let sum: u64 = [1, 2].iter().map(|&g| c.hosts[&1].group(GroupId(g)).unwrap().log_bytes()).sum();
        assert!(held > 0);
        assert_eq!(held, sum, "one node-wide account for every group");
        let g1 = c.hosts[&1].group(GroupId(1)).unwrap().log_bytes();
        c.host(1).remove_group(GroupId(1)).unwrap();
        assert_eq!(acct.current(), held - g1);
    }
}
