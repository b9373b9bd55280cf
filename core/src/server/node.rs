//! A Weir node: its Raft groups (one today: the replicated test log, group
//! `cfg.raft.group`), their storage, routes to peers and the client port, wired
//! together as async tasks around the pure [`RaftHost`].
//!
//! The shell is the only place with I/O and a clock. Each loop turn feeds the host
//! one kind of input (a tick, a batch of peer messages, a batch of proposals), then
//! [`Driver::drive`] carries out every group's `Ready` in the order Raft's safety needs
//! (persist, apply to the group's [`StateMachine`], then send). The applied state
//! machine is whatever the caller hands in [`NodeEnv::app`]: `weir raft-node` and the
//! simulator pass the test log (`weir_core::testing::LogApp`).
use super::client::{ClientRequest, ClientResponse, Outcome};
use super::frame;
use super::inbox::inbox;
use super::link::{LinkStream, LinkWrap};
use super::route::{Handlers, RouteConfig, RouteSetup, RouteTarget, Routes};
use super::scope::{Scope, ScopeHandle};
use crate::disk::Disk;
use crate::mem::{Account, Ledger, names};
use crate::raft::storage::{RaftStorage, RaftStorageConfig, StorageError};
use crate::raft::{
    self, Entry, GroupId, GroupReady, HardState, Index, NodeId, ProposeError, RaftAccounts, RaftEvent, RaftHost, Ready,
    RestoreError, Role, StateMachine, Term,
};
use crate::store::{STORE_BUFFERS, STORE_CACHE, STORE_INDEX, StoreMemory};
use crate::timer::{Deadline, Missed, Ticker};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use weir_traces::{EventKind, EventSink, NodeNo};

/// Everything a node needs to know about its place in the cluster.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// Route address of every *other* member.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Where peers dial us.
    pub route_listen: SocketAddr,
    /// Where clients connect.
    pub client_listen: SocketAddr,
    /// Directory on the disk for this node's Raft state.
    pub data_dir: String,
    /// Raft tuning (its `id` and `peers` are filled in from the above).
    pub raft: raft::Config,
    /// Route tuning.
    pub route: RouteConfig,
    /// Take a snapshot after this many applied entries past the last one.
    pub snapshot_every: u64,
    /// Raft tick period.
    pub tick: Duration,
    /// Capacity of the proposal queue into the Raft loop.
    pub proposal_queue: usize,
    /// Group commit: after taking proposals from its queue, the loop takes the next ones
    /// no sooner than this later, so that everything queued meanwhile goes into one Raft
    /// append (one log write and fsync on each member, one message per follower) instead
    /// of one each. Adds up to this much latency to a proposal; zero takes proposals as
    /// they come.
    pub propose_batch: Duration,
}

/// Default limit of `raft.log` (the registry's default): the entries every group holds
/// in memory between snapshots. It must exceed the peers' `raft.pending` limits together
/// plus one compaction interval (`snapshot_every` entries) for followers to stay live at
/// the limit (the argument is in `raft/log.rs`); 64 MiB leaves room for both.
pub const DEFAULT_RAFT_LOG_LIMIT: u64 = 64 * 1024 * 1024;

/// Default ledger limits for a node (the registry's defaults, see [`crate::mem::REGISTRY`]).
pub fn default_ledger() -> Ledger {
    let mut accounts =
        vec![names::RAFT_PENDING, names::RAFT_CATCHUP, names::RAFT_INBOX, names::RAFT_LOG, names::ROUTE_OUTBOUND];
    accounts.extend(raft_store_accounts().map(|(n, _)| n));
    Ledger::with_defaults(&accounts)
}

/// The ledger accounts (and limits) of the Raft log's entry store, which every node ledger
/// needs: `store.buffers` (write and recovery-read buffers, none kept idle), `store.cache`
/// (filled only while reading the log at open, emptied after) and `store.index` (a slot per
/// stored entry, so it follows the log's length between snapshots).
pub fn raft_store_accounts() -> [(&'static str, u64); 3] {
    [STORE_BUFFERS, STORE_CACHE, STORE_INDEX].map(|n| (n, crate::mem::spec(n).default_limit))
}

/// Live status of a node, shared with monitoring and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Current role (None before Raft starts).
    pub role: Option<Role>,
    /// Current term.
    pub term: Term,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: Index,
    /// Applied index.
    pub applied: Index,
    /// Last log index.
    pub last_index: Index,
    /// Last snapshot index.
    pub snapshot_index: Index,
    /// Why the node stopped, if it did.
    pub fatal: Option<String>,
}

/// The seams and shared handles a node runs with.
#[derive(Clone)]
pub struct NodeEnv {
    /// Persistent storage.
    pub disk: Arc<dyn Disk>,
    /// Where events go.
    pub sink: Arc<dyn EventSink>,
    /// Memory ledger.
    pub ledger: Ledger,
    /// The route stream wrap (the simulator's network model; `None` in production).
    pub link_wrap: Option<LinkWrap>,
    /// Seed for this incarnation's randomness.
    pub seed: u64,
    /// Shared status.
    pub status: Arc<Mutex<NodeStatus>>,
    /// The applied state machine of the node's group, shared with whoever inspects it
    /// (the simulator's checkers). The node resets it at start, then restores it from the
    /// durable snapshot if there is one.
    pub app: Arc<Mutex<dyn StateMachine>>,
}

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed; the node stops rather than act on state it could not persist.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A snapshot could not be restored.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

struct Proposal {
    data: Vec<u8>,
    reply: oneshot::Sender<Outcome>,
}

/// Run a node until it fails. Spawns its listener and route tasks on the current runtime.
pub async fn run(cfg: NodeConfig, env: NodeEnv) -> Result<(), NodeError> {
    let cfg_id = cfg.id;
    let result = run_inner(cfg, env.clone()).await;
    if let Err(e) = &result {
        env.status.lock().expect("status poisoned").fatal = Some(e.to_string());
        env.sink.emit(cfg_id as NodeNo, EventKind::Note { text: format!("node stopped: {e}") });
    }
    result
}

async fn run_inner(cfg: NodeConfig, env: NodeEnv) -> Result<(), NodeError> {
    let me = cfg.id as NodeNo;
    let group = cfg.raft.group;
    let scfg = RaftStorageConfig { memory: StoreMemory::from_ledger(&env.ledger), ..Default::default() };
    let (storage, restored) = RaftStorage::open_with(env.disk.clone(), &cfg.data_dir, scfg).await?;
    {
        // Locked only briefly, never across an await: the simulator's checkers read it.
        let mut app = env.app.lock().expect("app poisoned");
        app.reset();
        if let Some(s) = &restored.snapshot {
            app.restore(&s.data)?;
            env.sink.emit(
                me,
                EventKind::SnapshotRestored {
                    index: s.meta.last_index,
                    term: s.meta.last_term,
                    state_hash: app.digest(),
                },
            );
        }
    }

    let route_listener = TcpListener::bind(cfg.route_listen)
        .await
        .map_err(|source| NodeError::Bind { addr: cfg.route_listen, source })?;
    let client_listener = TcpListener::bind(cfg.client_listen)
        .await
        .map_err(|source| NodeError::Bind { addr: cfg.client_listen, source })?;
    // Every task below ends when this function's future does.
    let scope = Scope::new();
    // Bounded by count and by bytes (charged to `raft.inbox`, see `super::inbox`).
    let (inbox_tx, mut inbox) = inbox(1024, env.ledger.account(names::RAFT_INBOX));
    let routes = Arc::new(Routes::new(
        route_setup(&cfg, env.seed),
        route_listener.local_addr().unwrap_or(cfg.route_listen),
        env.ledger.account(names::ROUTE_OUTBOUND),
    ));
    if let Some(w) = &env.link_wrap {
        routes.set_link_wrap(w.clone());
    }
    routes.set_events(env.sink.clone());
    routes.start(&scope.handle(), route_listener, Handlers { pubsub: None, raft: Some(inbox_tx) });
    let (prop_tx, mut proposals) = mpsc::channel::<Proposal>(cfg.proposal_queue);
    scope.handle().spawn(client_accept_loop(scope.handle(), client_listener, prop_tx, env.link_wrap.clone()));

    let mut rcfg = cfg.raft.clone();
    rcfg.id = cfg.id;
    rcfg.peers = cfg.peers.iter().map(|p| p.0).chain(std::iter::once(cfg.id)).collect();
    rcfg.peers.sort_unstable();
    let start = Instant::now();
    // Read per message of a batch: a `Clock`, not `Instant::now()` (see `crate::timer`).
    let clock = crate::timer::Clock::current();
    let now_ms = move || clock.now().duration_since(start).as_millis() as u64;
    let accounts = RaftAccounts::from_ledger(&env.ledger);
    let mut host = RaftHost::new(accounts.clone());
    host.add_group(rcfg, restored, env.seed, now_ms()).expect("a fresh host has no groups");
    let mut groups = BTreeMap::new();
    let latest_hs = storage.hard_state();
    groups.insert(group, GroupShell { storage, app: env.app.clone(), waiters: BTreeMap::new(), latest_hs });
    // The tick grid stays fixed (as with one group before the host existed); the host
    // only ticks groups whose deadline has come, so idle groups cost nothing per tick.
    // A `Ticker`, not `tokio::time::interval`: polled on every turn of the loop below,
    // it registers one timer per tick (see `crate::timer`).
    let mut ticker = Ticker::new(cfg.tick, Missed::Skip);
    // Closed for `cfg.propose_batch` after each batch of proposals taken (group commit).
    let mut batch_gate = Deadline::after(Duration::ZERO);
    let mut gate_open = true;
    let mut driver = Driver {
        me,
        routes,
        sink: env.sink.clone(),
        snapshot_every: cfg.snapshot_every,
        log_account: accounts.log,
        groups,
    };

    loop {
        tokio::select! {
            biased;
            _ = ticker.tick() => {
                if crate::fault_point!("timer.tick.delay") {
                    tokio::time::sleep(std::time::Duration::from_millis(crate::fault::pick_ms(200))).await;
                }
                host.tick(now_ms())
            }
            Some(env) = inbox.recv() => {
                // A message for a group not hosted here is counted by the host and dropped.
                let _ = host.step(now_ms(), env);
                // Drain a bounded batch so one fsync covers many messages.
                for _ in 0..256 {
                    match inbox.try_recv() {
                        Some(env) => { let _ = host.step(now_ms(), env); }
                        None => break,
                    }
                }
            }
            () = batch_gate.expired(), if !gate_open => {
                gate_open = true;
                // Nothing changed: the proposals queued meanwhile are taken next turn.
                continue;
            }
            Some(p) = proposals.recv(), if gate_open => {
                driver.propose(&mut host, now_ms(), group, p);
                for _ in 0..256 {
                    match proposals.try_recv() {
                        Ok(p) => driver.propose(&mut host, now_ms(), group, p),
                        Err(_) => break,
                    }
                }
                if !cfg.propose_batch.is_zero() {
                    gate_open = false;
                    batch_gate.reset(Instant::now() + cfg.propose_batch);
                }
            }
        }
        driver.drive(&mut host).await?;
        // Every simulated run checks the groups after every turn (cheap: O(groups)).
        #[cfg(madsim)]
        host.invariants();
        let raft = host.group(group).expect("the node's group");
        let mut st = env.status.lock().expect("status poisoned");
        st.role = Some(raft.role());
        st.term = raft.term();
        st.leader = raft.leader();
        st.commit = raft.commit_index();
        st.applied = raft.applied_index();
        st.last_index = raft.last_index();
        st.snapshot_index = raft.snapshot_index();
    }
}

/// The route stack's view of a node: a fresh server id per incarnation (so a restarted
/// node is a new peer, not a duplicate of its old connections) and its peers as
/// configured routes with their node ids.
fn route_setup(cfg: &NodeConfig, seed: u64) -> RouteSetup {
    RouteSetup {
        server_id: format!("raft-{}-{seed:016x}", cfg.id),
        cluster: "weir".to_owned(),
        node: cfg.id,
        routes: cfg.peers.iter().map(|&(node, addr)| RouteTarget { addr: addr.to_string(), node }).collect(),
        cfg: cfg.route.clone(),
    }
}

/// Clients waiting for their proposal's outcome, by log index: `(term proposed in, reply)`.
type Waiters = BTreeMap<Index, (Term, oneshot::Sender<Outcome>)>;

/// What the shell keeps for one hosted group: its durable storage, its applied state
/// machine and the clients waiting on its proposals.
struct GroupShell {
    storage: RaftStorage,
    /// Shared with the simulator's checkers; locked only briefly, never across an await.
    app: Arc<Mutex<dyn StateMachine>>,
    waiters: Waiters,
    /// The group's hard state as Raft last handed it out; what storage holds may have an
    /// older commit index (see [`defer_commit_only`]).
    latest_hs: HardState,
}

/// Leave a change of the commit index alone out of `ready`, so it costs no meta write
/// and sync of its own: it is written with the next term, vote or snapshot change.
///
/// The commit index is volatile state in Raft (Figure 2 of the paper): a node that
/// restarts with an older one applies less at start and learns the rest from the leader's
/// next append or heartbeat, and an older commit never exceeds the durable log. Before,
/// every commit advance cost an append and a sync of the meta log: more meta writes than
/// entry appends in `raft-basic` (21,777 against 13,501 in seed 1).
fn defer_commit_only(ready: &mut Ready, latest: &mut HardState, durable: HardState) {
    if let Some(hs) = ready.hard_state {
        *latest = hs;
    }
    let meta = ready.snapshot.is_some() || (latest.term, latest.vote) != (durable.term, durable.vote);
    ready.hard_state = meta.then_some(*latest);
}

struct Driver {
    me: NodeNo,
    routes: Arc<Routes>,
    sink: Arc<dyn EventSink>,
    snapshot_every: u64,
    /// `raft.log`: when it is under pressure, groups compact as soon as they can.
    log_account: Arc<Account>,
    groups: BTreeMap<GroupId, GroupShell>,
}

impl Driver {
    fn propose(&mut self, host: &mut RaftHost, now: u64, group: GroupId, p: Proposal) {
        let outcome = match host.propose(now, group, p.data) {
            Ok(index) => {
                let term = host.group(group).map_or(0, |r| r.term());
                if let Some(g) = self.groups.get_mut(&group) {
                    g.waiters.insert(index, (term, p.reply));
                }
                return;
            }
            Err(ProposeError::NotLeader { leader }) => Outcome::NotLeader { leader },
            Err(ProposeError::Backpressure) => Outcome::Backpressure,
            Err(ProposeError::TooLarge { .. }) => Outcome::TooLarge,
            Err(e @ ProposeError::NoSuchGroup { .. }) => Outcome::Failed { reason: e.to_string() },
        };
        let _ = p.reply.send(outcome);
    }

    /// Carry out every group's effects, each group in the safe order: persist, apply,
    /// then send (see `raft::host`). Loops until no group has anything left to do.
    async fn drive(&mut self, host: &mut RaftHost) -> Result<(), NodeError> {
        loop {
            let readies = host.ready();
            if readies.is_empty() {
                return Ok(());
            }
            for GroupReady { group, mut ready } in readies {
                let Some(g) = self.groups.get_mut(&group) else { continue };
                defer_commit_only(&mut ready, &mut g.latest_hs, g.storage.hard_state());
                g.storage.persist(&ready).await?;
                if ready.restore
                    && let Some(s) = &ready.snapshot
                {
                    let digest = {
                        let mut app = g.app.lock().expect("app poisoned");
                        app.restore(&s.data)?;
                        app.digest()
                    };
                    self.sink.emit(
                        self.me,
                        EventKind::SnapshotRestored {
                            index: s.meta.last_index,
                            term: s.meta.last_term,
                            state_hash: digest,
                        },
                    );
                    // Waiters at or below the snapshot can no longer be matched to their entries.
                    let rest = g.waiters.split_off(&(s.meta.last_index + 1));
                    for (_, (_, w)) in std::mem::replace(&mut g.waiters, rest) {
                        let _ = w.send(Outcome::Unknown { reason: "replaced by snapshot".into() });
                    }
                }
                if !ready.committed.is_empty() && crate::fault_point!("raft.apply.slow") {
                    tokio::time::sleep(std::time::Duration::from_millis(crate::fault::pick_ms(100))).await;
                }
                for e in &ready.committed {
                    apply(self.me, &*self.sink, g, e);
                }
                for ev in ready.events {
                    match ev {
                        RaftEvent::RoleChanged { term, role } => {
                            self.sink.emit(self.me, EventKind::RaftRole { term, role: trace_role(role) })
                        }
                        RaftEvent::CommitAdvanced { commit } => {
                            self.sink.emit(self.me, EventKind::RaftCommit { commit })
                        }
                        RaftEvent::LostLeadership => {
                            for (_, (_, w)) in std::mem::take(&mut g.waiters) {
                                let _ = w.send(Outcome::Unknown { reason: "leadership lost".into() });
                            }
                        }
                    }
                }
                for m in &ready.messages {
                    self.routes.send(m);
                }
                self.maybe_compact(host, group);
            }
        }
    }

    /// Snapshot `group`'s state machine and compact its log when it has applied
    /// `snapshot_every` entries past its last snapshot, or sooner (anything applied)
    /// while `raft.log` is over three quarters full, so that followers refusing
    /// appends at the limit get room back (see `raft/log.rs`).
    fn maybe_compact(&mut self, host: &mut RaftHost, group: GroupId) {
        let (Some(g), Some(raft)) = (self.groups.get(&group), host.group(group)) else { return };
        let snap_index = raft.snapshot_index();
        let pressure = self.log_account.current() > self.log_account.limit() / 4 * 3;
        let snapshot = {
            let app = g.app.lock().expect("app poisoned");
            let applied = app.applied_index();
            let due = applied >= snap_index + self.snapshot_every || (pressure && applied > snap_index);
            (applied > 0 && due).then(|| (applied, app.snapshot()))
        };
        if let Some((index, data)) = snapshot {
            let _ = host.compact(group, index, data);
        }
    }
}

fn apply(me: NodeNo, sink: &dyn EventSink, g: &mut GroupShell, e: &Entry) {
    let data_hash = {
        let mut app = g.app.lock().expect("app poisoned");
        if e.index <= app.applied_index() {
            return;
        }
        app.apply(e)
    };
    sink.emit(me, EventKind::Applied { index: e.index, term: e.term, data_hash });
    if let Some((term, w)) = g.waiters.remove(&e.index) {
        let outcome = if term == e.term {
            Outcome::Committed { index: e.index }
        } else {
            Outcome::Failed { reason: "another entry committed at its index".into() }
        };
        let _ = w.send(outcome);
    }
}

fn trace_role(r: Role) -> weir_traces::Role {
    match r {
        Role::Follower => weir_traces::Role::Follower,
        Role::PreCandidate => weir_traces::Role::PreCandidate,
        Role::Candidate => weir_traces::Role::Candidate,
        Role::Leader => weir_traces::Role::Leader,
    }
}

/// Serve the client port; each socket goes through `wrap` if any (the simulator's
/// network model, as for routes; see [`super::link`]).
async fn client_accept_loop(
    scope: ScopeHandle,
    listener: TcpListener,
    proposals: mpsc::Sender<Proposal>,
    wrap: Option<LinkWrap>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let stream: LinkStream = match &wrap {
            Some(w) => w(stream),
            None => Box::new(stream),
        };
        let proposals = proposals.clone();
        scope.spawn(async move {
            let _ = serve_client(stream, proposals).await;
        });
    }
}

async fn serve_client(mut stream: LinkStream, proposals: mpsc::Sender<Proposal>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = frame::read::<ClientRequest, _>(&mut stream, &mut buf).await? {
        let ClientRequest::Propose { id, data } = req;
        let (reply, rx) = oneshot::channel();
        // A full proposal queue is back-pressure, not a reason to grow.
        let outcome = match proposals.try_send(Proposal { data, reply }) {
            Ok(()) => rx.await.unwrap_or(Outcome::Unknown { reason: "node stopped".into() }),
            Err(_) => Outcome::Backpressure,
        };
        frame::write(&mut stream, &ClientResponse { id, outcome }).await?;
    }
    Ok(())
}
