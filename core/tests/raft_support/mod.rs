//! A deterministic in-memory cluster driver for the Raft state machine (tests only).
//!
//! N nodes, a seeded network (delay, drop, duplicate, hence reorder), partitions,
//! crashes that rebuild a node from exactly what it persisted, and virtual time in
//! small steps. Safety is checked while the run goes (election safety, state-machine
//! safety, apply order) and at the end (log matching, acknowledged proposals present
//! exactly once everywhere, replicas equal, ledger back to baseline). Liveness: after
//! every fault heals, a proposal must commit within a bounded virtual time.
//!
//! A run returns `Err(violation)` instead of panicking, so bug-hunting tests can look
//! for a seed that fails.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use weir_core::mem::Account;
use weir_core::raft::RaftAccounts;
use weir_core::raft::{
    Config, Entry, Envelope, HardState, Index, NodeId, Raft, RaftBugs, RaftEvent, Ready, Restored, Role, Snapshot, Term,
};

/// Virtual time per step.
const STEP_MS: u64 = 5;

/// What a run does to the cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Group size.
    pub nodes: u64,
    /// Known bugs to enable.
    pub bugs: RaftBugs,
    /// Raft pre-vote.
    pub pre_vote: bool,
    /// Raft check-quorum.
    pub check_quorum: bool,
    /// Election timeout range.
    pub election_timeout_ms: (u64, u64),
    /// Virtual time with faults before everything heals.
    pub chaos_ms: u64,
    /// Per-message drop probability during chaos.
    pub p_drop: f64,
    /// Per-message duplication probability during chaos.
    pub p_dup: f64,
    /// Message delay is uniform in `1..=max_delay_ms`.
    pub max_delay_ms: u64,
    /// Expected crashes per node per second of chaos.
    pub crash_rate: f64,
    /// Longest downtime of a crashed node.
    pub max_down_ms: u64,
    /// Expected partitions per second of chaos.
    pub partition_rate: f64,
    /// A client proposes this often (to whoever leads).
    pub propose_every_ms: u64,
    /// Nodes compact once this many entries were applied since their snapshot, or as
    /// soon as anything is applied while `raft.log` is over three quarters full.
    pub compact_every: u64,
    /// Limit of each node's `raft.log` account (entries held in memory). The default is
    /// tight: above the peers' `raft.pending` limits plus a compaction interval, as
    /// `raft/log.rs` argues liveness needs, so followers do hit it under faults.
    pub log_limit: u64,
    /// After healing, a proposal must commit within this much virtual time.
    pub liveness_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            bugs: RaftBugs::NONE,
            pre_vote: true,
            check_quorum: true,
            election_timeout_ms: (150, 300),
            chaos_ms: 3_000,
            p_drop: 0.05,
            p_dup: 0.05,
            max_delay_ms: 20,
            crash_rate: 0.5,
            max_down_ms: 600,
            partition_rate: 0.7,
            propose_every_ms: 15,
            compact_every: 16,
            log_limit: 3 * 4096 + 16 * 300,
            liveness_ms: 5_000,
        }
    }
}

/// What a successful run saw (so tests can check that the faults really happened).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Node crashes.
    pub crashes: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Terms that had a leader.
    pub leader_terms: u64,
    /// Proposals acknowledged to the client.
    pub acked: u64,
    /// Snapshots restored from a leader.
    pub installs: u64,
    /// Virtual time from healing to the first acknowledged proposal.
    pub recovery_ms: u64,
    /// Final applied length.
    pub applied: u64,
}

/// A node's disk, updated from each Ready exactly as `RaftStorage::persist` does.
#[derive(Clone, Debug, Default)]
struct Durable {
    hs: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Durable {
    fn snap(&self) -> (Index, Term) {
        self.snapshot.as_ref().map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term))
    }

    fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snap().0, |e| e.index)
    }

    fn term_at(&self, i: Index) -> Option<Term> {
        let (si, st) = self.snap();
        if i == si {
            return Some(st);
        }
        self.entries.iter().find(|e| e.index == i).map(|e| e.term)
    }

    fn persist(&mut self, rd: &Ready) -> Result<(), String> {
        let (si, last) = match &rd.snapshot {
            Some(s) => {
                let (si, st) = (s.meta.last_index, s.meta.last_term);
                if si < self.snap().0 {
                    return Err(format!("snapshot at {si} older than stored {}", self.snap().0));
                }
                (si, if si <= self.last_index() && self.term_at(si) == Some(st) { self.last_index() } else { si })
            }
            None => (self.snap().0, self.last_index()),
        };
        if let Some(w) = rd.entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(format!("entries not contiguous: {} then {}", w[0].index, w[1].index));
        }
        let es: Vec<Entry> = rd.entries.iter().filter(|e| e.index > si).cloned().collect();
        if let Some(f) = es.first()
            && f.index > last + 1
        {
            return Err(format!("entries start at {} but the log ends at {last}", f.index));
        }
        if let Some(s) = &rd.snapshot {
            if last > s.meta.last_index {
                self.entries.retain(|e| e.index > si);
            } else {
                self.entries.clear();
            }
            self.snapshot = Some(s.clone());
        }
        if let Some(hs) = rd.hard_state {
            self.hs = hs;
        }
        if let Some(f) = es.first() {
            self.entries.retain(|e| e.index < f.index);
            self.entries.extend(es);
        }
        Ok(())
    }

    fn restored(&self) -> Restored {
        Restored { hard_state: self.hs, snapshot: self.snapshot.clone(), entries: self.entries.clone() }
    }
}

/// The application state: every applied entry, in order. Snapshots encode all of it.
fn encode(app: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in app {
        out.extend_from_slice(&e.term.to_le_bytes());
        out.extend_from_slice(&e.index.to_le_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

fn decode(mut b: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 20 {
            return Err("truncated snapshot".into());
        }
        let term = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let index = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")) as usize;
        let data = b.get(20..20 + len).ok_or("truncated snapshot entry")?.to_vec();
        out.push(Entry { term, index, data });
        b = &b[20 + len..];
    }
    Ok(out)
}

struct SimNode {
    cfg: Config,
    raft: Option<Raft>,
    durable: Durable,
    app: Vec<Entry>,
    /// Proposals waiting for their entry to apply here: index -> payload.
    waiters: BTreeMap<Index, Vec<u8>>,
    pending: Arc<Account>,
    catchup: Arc<Account>,
    log: Arc<Account>,
    incarnation: u64,
    down_until: u64,
}

/// A whole simulated run.
pub struct Sim {
    cfg: SimConfig,
    seed: u64,
    rng: ChaCha8Rng,
    now: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    /// In-flight messages by (delivery time, sequence number).
    net: BTreeMap<(u64, u64), Envelope>,
    seq: u64,
    /// Partition: the side each node is on (empty = no partition) and when it ends.
    sides: BTreeMap<NodeId, bool>,
    partition_until: u64,
    faults: bool,
    /// Every entry ever applied anywhere, by index: all must agree.
    chosen: BTreeMap<Index, Entry>,
    leaders: BTreeMap<Term, BTreeSet<NodeId>>,
    acked: BTreeSet<Vec<u8>>,
    next_payload: u64,
    next_propose_at: u64,
    report: Report,
}

impl Sim {
    /// A cluster for `seed`.
    pub fn new(seed: u64, cfg: SimConfig) -> Sim {
        let mut nodes = BTreeMap::new();
        for id in 1..=cfg.nodes {
            let mut rc = Config::new(id, (1..=cfg.nodes).collect());
            rc.election_timeout_ms = cfg.election_timeout_ms;
            rc.heartbeat_interval_ms = 30;
            rc.max_append_bytes = 256;
            rc.catchup_window_bytes = 2048;
            rc.max_proposal_bytes = 256;
            rc.snapshot_chunk_bytes = 200;
            rc.pre_vote = cfg.pre_vote;
            rc.check_quorum = cfg.check_quorum;
            rc.bugs = cfg.bugs;
            let node = SimNode {
                cfg: rc,
                raft: None,
                durable: Durable::default(),
                app: Vec::new(),
                waiters: BTreeMap::new(),
                pending: Arc::new(Account::new("raft.pending", 4096)),
                catchup: Arc::new(Account::new("raft.catchup", 8192)),
                log: Arc::new(Account::new("raft.log", cfg.log_limit)),
                incarnation: 0,
                down_until: 0,
            };
            nodes.insert(id, node);
        }
        let mut sim = Sim {
            cfg,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            nodes,
            net: BTreeMap::new(),
            seq: 0,
            sides: BTreeMap::new(),
            partition_until: 0,
            faults: true,
            chosen: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acked: BTreeSet::new(),
            next_payload: 0,
            next_propose_at: 0,
            report: Report::default(),
        };
        let ids: Vec<NodeId> = sim.nodes.keys().copied().collect();
        for id in ids {
            sim.start(id);
        }
        sim
    }

    /// Run the whole schedule: chaos, heal, liveness, quiescence, final checks.
    pub fn run(mut self) -> Result<Report, String> {
        let r = self.run_inner();
        r.map_err(|e| format!("seed {}: t={}ms: {e}", self.seed, self.now))
    }

    fn run_inner(&mut self) -> Result<Report, String> {
        while self.now < self.cfg.chaos_ms {
            self.inject_faults();
            self.maybe_propose()?;
            self.step()?;
        }
        self.heal()?;
        let healed = self.now;
        let acked_before = self.acked.len();
        while self.acked.len() == acked_before {
            if self.now - healed > self.cfg.liveness_ms {
                return Err(format!("liveness: nothing committed within {} ms of healing", self.cfg.liveness_ms));
            }
            self.maybe_propose()?;
            self.step()?;
        }
        self.report.recovery_ms = self.now - healed;
        let quiet_by = self.now + self.cfg.liveness_ms;
        while !self.quiescent() {
            if self.now > quiet_by {
                return Err("replicas did not converge after healing".into());
            }
            self.step()?;
        }
        // Let the last acknowledgements land before judging the ledger.
        for _ in 0..100 {
            self.step()?;
        }
        self.final_checks()?;
        self.report.leader_terms = self.leaders.len() as u64;
        self.report.acked = self.acked.len() as u64;
        Ok(self.report.clone())
    }

    fn start(&mut self, id: NodeId) {
        let seed = self.rng.r#gen::<u64>();
        let now = self.now;
        let n = self.nodes.get_mut(&id).expect("node");
        n.pending.reset();
        n.catchup.reset();
        n.log.reset();
        n.app = match &n.durable.snapshot {
            Some(s) => decode(&s.data).expect("own snapshot decodes"),
            None => Vec::new(),
        };
        n.waiters.clear();
        n.incarnation += 1;
        let accounts = RaftAccounts { pending: n.pending.clone(), catchup: n.catchup.clone(), log: n.log.clone() };
        n.raft = Some(Raft::new(n.cfg.clone(), n.durable.restored(), seed, accounts, now));
    }

    fn crash(&mut self, id: NodeId, down_ms: u64) {
        let n = self.nodes.get_mut(&id).expect("node");
        // Dropping the Raft loses all volatile state; the disk keeps what was persisted.
        n.raft = None;
        n.down_until = self.now + down_ms;
        self.report.crashes += 1;
    }

    fn inject_faults(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let per_step = STEP_MS as f64 / 1000.0;
        for &id in &ids {
            let n = &self.nodes[&id];
            if n.raft.is_none() {
                if self.now >= n.down_until {
                    self.start(id);
                }
            } else if self.rng.gen_bool((self.cfg.crash_rate * per_step).min(1.0)) {
                let down = self.rng.gen_range(0..=self.cfg.max_down_ms);
                self.crash(id, down);
            }
        }
        if !self.sides.is_empty() && self.now >= self.partition_until {
            self.sides.clear();
        }
        if self.sides.is_empty() && self.rng.gen_bool((self.cfg.partition_rate * per_step).min(1.0)) {
            for &id in &ids {
                let side = self.rng.gen_bool(0.5);
                self.sides.insert(id, side);
            }
            self.partition_until = self.now + self.rng.gen_range(100..=1500);
            self.report.partitions += 1;
        }
    }

    fn heal(&mut self) -> Result<(), String> {
        self.faults = false;
        self.sides.clear();
        let down: Vec<NodeId> = self.nodes.iter().filter(|(_, n)| n.raft.is_none()).map(|(&id, _)| id).collect();
        for id in down {
            self.start(id);
        }
        Ok(())
    }

    fn cut(&self, a: NodeId, b: NodeId) -> bool {
        match (self.sides.get(&a), self.sides.get(&b)) {
            (Some(x), Some(y)) => x != y,
            _ => false,
        }
    }

    /// One virtual-time step: deliver due messages, tick everyone, process readies.
    fn step(&mut self) -> Result<(), String> {
        self.now += STEP_MS;
        let now = self.now;
        while let Some(entry) = self.net.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let env = entry.remove();
            if self.cut(env.from, env.to) {
                continue;
            }
            if let Some(raft) = self.nodes.get_mut(&env.to).and_then(|n| n.raft.as_mut()) {
                raft.step(now, env);
            }
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
                raft.tick(now);
            }
            self.process(id)?;
        }
        Ok(())
    }

    /// Carry out a node's Ready like the shell: persist, restore, apply, then send.
    fn process(&mut self, id: NodeId) -> Result<(), String> {
        loop {
            let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else { return Ok(()) };
            let rd = raft.ready();
            if rd.is_empty() {
                return Ok(());
            }
            let n = self.nodes.get_mut(&id).expect("node");
            n.durable.persist(&rd).map_err(|e| format!("node {id}: storage refused a Ready: {e}"))?;
            if rd.restore {
                let s = rd.snapshot.as_ref().ok_or("restore without a snapshot")?;
                n.app = decode(&s.data)?;
                if n.app.last().map_or(0, |e| e.index) != s.meta.last_index {
                    return Err(format!("node {id}: snapshot at {} holds a different state", s.meta.last_index));
                }
                n.waiters.retain(|&i, _| i > s.meta.last_index);
                self.report.installs += 1;
                let app = n.app.clone();
                for e in &app {
                    self.choose(id, e)?;
                }
            }
            for e in &rd.committed {
                let n = self.nodes.get_mut(&id).expect("node");
                let expect = n.app.last().map_or(0, |x| x.index) + 1;
                if e.index != expect {
                    return Err(format!("node {id}: committed index {} but expected {expect}", e.index));
                }
                n.app.push(e.clone());
                if let Some(w) = n.waiters.remove(&e.index)
                    && w == e.data
                {
                    self.acked.insert(w);
                }
                self.choose(id, e)?;
            }
            for ev in &rd.events {
                match ev {
                    RaftEvent::RoleChanged { term, role: Role::Leader } => {
                        let ls = self.leaders.entry(*term).or_default();
                        ls.insert(id);
                        if ls.len() > 1 {
                            return Err(format!("election safety: term {term} has leaders {ls:?}"));
                        }
                    }
                    RaftEvent::LostLeadership => self.nodes.get_mut(&id).expect("node").waiters.clear(),
                    _ => {}
                }
            }
            for env in rd.messages {
                self.send(env);
            }
            let n = self.nodes.get_mut(&id).expect("node");
            for acct in [&n.pending, &n.catchup, &n.log] {
                if acct.peak() > acct.limit() {
                    return Err(format!(
                        "node {id}: {} peaked at {} over its limit {}",
                        acct.name(),
                        acct.peak(),
                        acct.limit()
                    ));
                }
            }
            let applied = n.app.last().map_or(0, |e| e.index);
            let raft = n.raft.as_mut().expect("up");
            raft.invariants();
            let pressure = n.log.current() > n.log.limit() / 4 * 3;
            let due = applied >= raft.snapshot_index() + self.cfg.compact_every;
            if due || (pressure && applied > raft.snapshot_index()) {
                raft.compact(applied, encode(&n.app));
            }
        }
    }

    /// State-machine safety: whatever any node applies at an index, every node applies.
    fn choose(&mut self, id: NodeId, e: &Entry) -> Result<(), String> {
        match self.chosen.get(&e.index) {
            Some(c) if c != e => Err(format!(
                "state-machine safety: node {id} applied (term {}, {:?}) at index {} but (term {}, {:?}) was applied before",
                e.term,
                String::from_utf8_lossy(&e.data),
                e.index,
                c.term,
                String::from_utf8_lossy(&c.data)
            )),
            Some(_) => Ok(()),
            None => {
                self.chosen.insert(e.index, e.clone());
                Ok(())
            }
        }
    }

    fn send(&mut self, env: Envelope) {
        if self.faults && (self.cut(env.from, env.to) || self.rng.gen_bool(self.cfg.p_drop)) {
            return;
        }
        let copies = if self.faults && self.rng.gen_bool(self.cfg.p_dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.gen_range(1..=self.cfg.max_delay_ms.max(1));
            self.seq += 1;
            self.net.insert((at, self.seq), env.clone());
        }
    }

    fn maybe_propose(&mut self) -> Result<(), String> {
        if self.now < self.next_propose_at {
            return Ok(());
        }
        self.next_propose_at = self.now + self.cfg.propose_every_ms;
        let now = self.now;
        let leader = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| n.raft.as_ref().filter(|r| r.role() == Role::Leader).map(|r| (r.term(), id)))
            .max();
        let Some((_, id)) = leader else { return Ok(()) };
        self.next_payload += 1;
        let len = self.rng.gen_range(0..64);
        let mut data = format!("p{}-", self.next_payload).into_bytes();
        data.resize(data.len() + len, b'.');
        let n = self.nodes.get_mut(&id).expect("node");
        let raft = n.raft.as_mut().expect("up");
        if let Ok(index) = raft.propose(now, data.clone()) {
            n.waiters.insert(index, data);
        }
        self.process(id)
    }

    fn quiescent(&self) -> bool {
        let Some(first) = self.nodes.values().next() else { return true };
        let leader_commit = self.nodes.values().filter_map(|n| n.raft.as_ref()).map(|r| r.commit_index()).max();
        self.nodes.values().all(|n| {
            n.raft.as_ref().is_some_and(|r| r.role() != Role::Candidate && r.role() != Role::PreCandidate)
                && n.app == first.app
                && n.app.last().map(|e| e.index) == leader_commit
        })
    }

    fn final_checks(&mut self) -> Result<(), String> {
        // Log matching over the durable logs: the highest index where two logs hold the
        // same term bounds a prefix on which they must be identical.
        let logs: Vec<(NodeId, BTreeMap<Index, &Entry>)> =
            self.nodes.iter().map(|(&id, n)| (id, n.durable.entries.iter().map(|e| (e.index, e)).collect())).collect();
        for (a, la) in &logs {
            for (b, lb) in logs.iter().filter(|(b, _)| b > a) {
                let agree = la.iter().rev().find(|(i, ea)| lb.get(i).is_some_and(|eb| eb.term == ea.term));
                let Some((&top, _)) = agree else { continue };
                for (i, ea) in la.range(..=top) {
                    if lb.get(i).is_some_and(|eb| eb != ea) {
                        return Err(format!("log matching: nodes {a} and {b} agree at {top} but differ at {i}"));
                    }
                }
            }
        }
        // Every acknowledged proposal is applied exactly once on every node.
        for (&id, n) in &self.nodes {
            let mut counts: BTreeMap<&[u8], u32> = BTreeMap::new();
            for e in &n.app {
                *counts.entry(&e.data).or_default() += 1;
            }
            for p in &self.acked {
                let c = counts.get(p.as_slice()).copied().unwrap_or(0);
                if c != 1 {
                    return Err(format!("node {id}: acknowledged {:?} applied {c} times", String::from_utf8_lossy(p)));
                }
            }
            // Memory returns to baseline once everything is acknowledged.
            for acct in [&n.pending, &n.catchup] {
                if acct.current() != 0 {
                    return Err(format!("node {id}: {} still holds {} bytes at rest", acct.name(), acct.current()));
                }
            }
        }
        self.report.applied = self.nodes.values().next().map_or(0, |n| n.app.len() as u64);
        Ok(())
    }
}
