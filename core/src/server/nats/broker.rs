//! The shared routing state of a NATS server: every client's subscriptions in one
//! [`SubIndex`], each client's outbound queue, the queue-group RNG and counters.
//!
//! It is synchronous and does no I/O: publishing encodes `MSG`/`HMSG` straight onto
//! the subscribers' [`Outbound`] queues, and the async shell owns the sockets.
//!
//! **Clustering.** The broker also holds the interest of route peers (one
//! [`SubIndex`] over every peer's (subject, queue) pairs) and each peer's outbound
//! [`RouteOut`]. Local interest is aggregated per (subject, queue): peers hear `Sub`
//! when the first local subscription of a pair appears and `Unsub` when the last one
//! goes. A local publish reaches every peer with matching plain interest once, and
//! each queue group once in the whole cluster: a local member if there is one, else a
//! member on one peer picked at random (the message names the groups that peer must
//! serve). Messages from routes go to local clients only (see [`crate::server::route`]).
//!
//! **Accounts.** Every client lives in one NATS account ([`AccountId`]; `$G`, id 0, is
//! the default), and each account has its own subject space: its own local and remote
//! subscription indexes, so a message published in one account never reaches another
//! (as nats-server's per-account sublists). Interest and messages cross routes with
//! their account's name. Each account also has its own memory accounts (see
//! [`AccountLimits`]): its clients' outbound bytes and its subscriptions are charged
//! there as well as to the server-wide ledger, so one account at its limit cannot take
//! what the others need. JetStream serves `$G` only.
//!
//! **Permissions.** A client's [`Permissions`] filter deliveries (subjects its subscribe
//! deny list covers) and, with `allow_responses`, the broker remembers the reply subjects
//! of requests it delivered to it (a bounded table, [`MAX_REPLY_PERMS`]), which
//! [`Broker::may_respond`] then allows it to publish to.

use super::auth::{GLOBAL_ACCOUNT, Permissions};
use super::connz::{ClientView, ConnStat, SubDetail};
use super::js::{JsHandle, MAX_CASCADE, Outs};
use super::outbound::{Closed, Outbound, Push, Wakes};
use super::stats::Stats;
use crate::jetstream::engine::JsOut;
use crate::mem::{self, Account};
use crate::proto::{self, ByteStr, no_responders_msg};
use crate::server::route::{Class, DropReason, RouteOut, RoutePush, encode_interest, encode_msg};
use crate::subject::{self, SubId, SubIndex};
use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A client connection's id, unique for the life of a server.
pub type ClientId = u64;

/// How many subscriptions a leaving client gives up per broker lock
/// ([`Broker::remove_client_step`]): about a millisecond of work, so other clients wait
/// at most that long for the lock however many subscriptions the client held.
pub const REMOVE_STEP: usize = 1024;

/// The id messages the server itself publishes come from (JetStream's replies and
/// deliveries); no client has it (client ids start at 1).
pub const SERVER_CLIENT: ClientId = 0;

/// A NATS account's slot in the broker's table; [`GLOBAL`] is `$G`.
pub type AccountId = usize;

/// The default account `$G`.
pub const GLOBAL: AccountId = 0;

/// Most reply subjects remembered per client for `allow_responses` (nats-server's
/// `replyPermLimit`, 4096); past it the first by name is forgotten.
pub const MAX_REPLY_PERMS: usize = 4096;

/// What a subscription is charged to its account's `account.subs`, besides its
/// subject, queue and sid bytes ([`account_sub_cost`]): the subscription record, its trie entry and its sid.
pub const SUB_OVERHEAD: u64 = 192;

/// Memory limits of each NATS account (see the module doc), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountLimits {
    /// Bytes queued to all the account's clients together.
    pub max_outbound: u64,
    /// Estimated bytes of all the account's subscriptions ([`SUB_OVERHEAD`] plus subject
    /// and queue per subscription).
    pub max_subs_bytes: u64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_outbound: mem::spec(mem::names::ACCOUNT_OUTBOUND).default_limit,
            max_subs_bytes: mem::spec(mem::names::ACCOUNT_SUBS).default_limit,
        }
    }
}

/// One NATS account: its subject space and its memory.
#[derive(Debug)]
struct NatsAccount {
    name: Arc<str>,
    /// Local subscriptions (each value is its own id, a key of [`Broker::subs`]).
    index: SubIndex<SubId>,
    /// Route peers' interest (values are peer server ids).
    remote: SubIndex<Arc<str>>,
    outbound: Arc<Account>,
    subs_mem: Arc<Account>,
}

/// A snapshot of one account, for monitoring (`/accountz`, `/varz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountStat {
    /// The account's name.
    pub name: String,
    /// Connected clients in it.
    pub clients: usize,
    /// Its subscriptions.
    pub subscriptions: usize,
    /// Bytes queued to its clients now, and the limit.
    pub outbound: (u64, u64),
    /// Estimated subscription bytes now, and the limit.
    pub subs_bytes: (u64, u64),
}

/// What the broker knows about one client.
#[derive(Debug)]
struct Client {
    out: Arc<Outbound>,
    account: AccountId,
    /// Its permissions, when it has any.
    perms: Option<Arc<Permissions>>,
    /// Reply subjects it may still publish to, with the responses left (`allow_responses`).
    replies: BTreeMap<String, u32>,
    /// Negotiated in CONNECT; until then false, so `HMSG` is stripped to `MSG`.
    headers: bool,
    echo: bool,
    no_responders: bool,
    /// The first PONG after its CONNECT went out: asynchronous INFO may go to it (before,
    /// async-nats would take an INFO for the answer to its handshake and lose it).
    connected: bool,
    /// Its subscriptions by sid; the sid is shared with [`Sub::sid`].
    sids: BTreeMap<Arc<str>, SubId>,
    /// Its figures for `/connz`.
    stat: Arc<ConnStat>,
}

/// One subscription (its subject and queue live in the index only, under its [`SubId`]).
///
/// Kept small, as there may be hundreds of thousands (issue 9, fault 6): the sid is an
/// owned copy shared with the client's sid map, never a slice of the read buffer it was
/// parsed from (which would keep that whole buffer alive as long as the subscription).
#[derive(Debug)]
struct Sub {
    client: ClientId,
    sid: Arc<str>,
    /// Auto-unsubscribe once `delivered` reaches this.
    max: Option<u64>,
    delivered: u64,
}

/// A published message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Destination subject.
    pub subject: ByteStr,
    /// Reply subject.
    pub reply: Option<ByteStr>,
    /// Raw header block, if the message has headers. An empty block counts as none
    /// wherever the message is encoded ([`proto::encode_msg`]); producers should store `None`.
    pub headers: Option<Bytes>,
    /// Body.
    pub payload: Bytes,
}

pub use crate::server::route::RouteConnId;

/// An (account, subject, queue) interest triple.
type InterestKey = (AccountId, String, Option<String>);

/// What the broker knows about one route peer (another server of the cluster).
#[derive(Debug, Default)]
struct Peer {
    /// Our current connection to it, for sending.
    out: Option<(RouteConnId, Arc<RouteOut>)>,
    /// Its current connection to us, whose interest we hold.
    inbound: Option<RouteConnId>,
    /// Its route address, as learnt from its handshake.
    addr: Option<String>,
    /// Its interest, as ids in [`Broker::remote`].
    subs: BTreeMap<InterestKey, SubId>,
    /// Messages and payload bytes received from it, and queued to it (`/routez`).
    traffic: RouteTraffic,
}

/// One peer's message counters (`/routez`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteTraffic {
    /// Messages received from the peer.
    pub in_msgs: u64,
    /// Payload and header bytes received from the peer.
    pub in_bytes: u64,
    /// Messages queued to the peer.
    pub out_msgs: u64,
    /// Payload and header bytes queued to the peer.
    pub out_bytes: u64,
}

/// One route peer as the broker sees it, for `/routez`.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// The peer's server id.
    pub server_id: String,
    /// Our sending connection's id, if it is up.
    pub out_conn: Option<RouteConnId>,
    /// Bytes queued on it.
    pub pending: u64,
    /// The peer's route address (`host:port`), from its handshake.
    pub addr: Option<String>,
    /// Its interest entries held.
    pub num_subs: usize,
    /// Their account, subject and queue (when asked for).
    pub subs: Vec<SubDetail>,
    /// Message counters.
    pub traffic: RouteTraffic,
}

/// Deliberate defects for the simulator's known-bug switches; all off in production
/// (nothing but the simulator sets them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerBugs {
    /// Wildcard interest a peer sends over any route connection after its first one (a
    /// reconnect) is held and counted but indexed under a subject no message matches, so
    /// messages for it are silently not forwarded.
    pub route_drops_interest: bool,
    /// A message for a queue group with a local member is also forwarded to a peer with
    /// members, so the group gets it twice.
    pub queue_double_delivery: bool,
    /// The subject and payload of every message queued to a local subscriber are also
    /// appended to a delivery history that is never trimmed and that no ledger account
    /// charges: heap that grows with the load and stays after it.
    pub uncharged_buffer: bool,
}

/// Routing state shared by all connections of one server.
#[derive(Debug)]
pub struct Broker {
    /// Known-bug switches (see [`BrokerBugs`]).
    bugs: BrokerBugs,
    /// Route connections each peer opened to us, counted only with
    /// [`BrokerBugs::route_drops_interest`] on.
    bug_route_opens: BTreeMap<Arc<str>, u32>,
    /// The never-trimmed publish history of [`BrokerBugs::uncharged_buffer`].
    bug_history: Vec<u8>,
    /// Every NATS account, `$G` first; their ids index this table.
    accounts: Vec<NatsAccount>,
    /// Every local subscription, under its id in its account's index.
    subs: BTreeMap<SubId, Sub>,
    clients: BTreeMap<ClientId, Client>,
    next_client: ClientId,
    rng: ChaCha8Rng,
    stats: Arc<Stats>,
    /// Local subscription counts per (subject, queue), announced to peers.
    interest: BTreeMap<InterestKey, u32>,
    peers: BTreeMap<Arc<str>, Peer>,
    /// The JetStream engine, when enabled.
    js: Option<Arc<JsHandle>>,
    /// Subjects whose local interest JetStream watches (push consumers' deliver
    /// subjects): how many consumers watch each, and the interest last reported.
    watched: BTreeMap<String, (u32, bool)>,
    /// Pressured route queues that messages went to since the last
    /// [`Broker::take_route_stalls`] (no duplicates): their publishers wait.
    route_stalls: Vec<Arc<RouteOut>>,
    /// Client queues a publishing client's messages went to that stall producers, until
    /// [`Broker::take_client_stalls`] (no duplicates): the publisher waits for them.
    client_stalls: Vec<Arc<Outbound>>,
    /// The ledger's `client.subs` account, charged [`sub_cost`] per local subscription.
    subs_account: Option<Arc<Account>>,
    /// The newest subscription id of any account's index: ids are drawn from one
    /// sequence, so that they are unique across accounts and key `subs`.
    last_key: Option<SubId>,
}

/// What one local subscription costs in memory, in bytes, as charged to `client.subs`:
/// the subject index, the subscription table and the client's sid map together
/// (`core/examples/subindex_bench.rs` measures ~600 bytes of heap for a 16-byte subject
/// and a short sid, ~700 with malloc's rounding), plus the subject and sid themselves.
pub fn sub_cost(subject: &str, sid: &str) -> u64 {
    (CLIENT_SUB_OVERHEAD + 2 * subject.len() + 2 * sid.len()) as u64
}

/// The fixed part of [`sub_cost`].
const CLIENT_SUB_OVERHEAD: usize = 640;

/// What one subscription is charged to its NATS account's `account.subs`:
/// [`SUB_OVERHEAD`] plus its subject, queue and sid bytes.
pub fn account_sub_cost(subject: &str, queue: Option<&str>, sid: &str) -> u64 {
    SUB_OVERHEAD + (subject.len() + queue.map_or(0, str::len) + sid.len()) as u64
}

/// Why a SUB was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// The subject or queue is not valid (`-ERR 'Invalid Subject'`).
    Invalid(String),
    /// The server-wide `client.subs` account is full (`-ERR 'maximum subscriptions exceeded'`).
    Memory,
    /// The client's NATS account's `account.subs` is full (`-ERR 'maximum subscriptions exceeded'`).
    AccountFull,
}

impl Broker {
    /// An empty broker whose queue-group picks draw from `seed`.
    pub fn new(seed: u64, stats: Arc<Stats>) -> Broker {
        let mut b = Broker {
            bugs: BrokerBugs::default(),
            bug_route_opens: BTreeMap::new(),
            bug_history: Vec::new(),
            accounts: Vec::new(),
            subs: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats,
            interest: BTreeMap::new(),
            peers: BTreeMap::new(),
            js: None,
            watched: BTreeMap::new(),
            subs_account: None,
            last_key: None,
            route_stalls: Vec::new(),
            client_stalls: Vec::new(),
        };
        b.add_account(GLOBAL_ACCOUNT, AccountLimits::default());
        b
    }

    /// Turn known-bug switches on (the simulator only).
    pub fn set_bugs(&mut self, bugs: BrokerBugs) {
        self.bugs = bugs;
    }

    /// Add the NATS account `name` with `limits` (or change the limits of an existing
    /// one); returns its id. `$G` exists from the start.
    pub fn add_account(&mut self, name: &str, limits: AccountLimits) -> AccountId {
        if let Some(id) = self.account_id(name) {
            self.accounts[id].outbound.set_limit(limits.max_outbound);
            self.accounts[id].subs_mem.set_limit(limits.max_subs_bytes);
            return id;
        }
        self.accounts.push(NatsAccount {
            name: Arc::from(name),
            index: SubIndex::new(),
            remote: SubIndex::new(),
            outbound: Arc::new(Account::new(mem::names::ACCOUNT_OUTBOUND, limits.max_outbound)),
            subs_mem: Arc::new(Account::new(mem::names::ACCOUNT_SUBS, limits.max_subs_bytes)),
        });
        self.accounts.len() - 1
    }

    /// The account client `id` is in, if it is connected.
    pub fn client_account(&self, id: ClientId) -> Option<AccountId> {
        self.clients.get(&id).map(|c| c.account)
    }

    /// The id of account `name`, if it exists.
    pub fn account_id(&self, name: &str) -> Option<AccountId> {
        self.accounts.iter().position(|a| &*a.name == name)
    }

    /// A snapshot of every account, `$G` first, then in the order they were added.
    pub fn account_stats(&self) -> Vec<AccountStat> {
        let mut stats: Vec<AccountStat> = self
            .accounts
            .iter()
            .map(|a| AccountStat {
                name: a.name.to_string(),
                clients: 0,
                subscriptions: a.index.len(),
                outbound: (a.outbound.current(), a.outbound.limit()),
                subs_bytes: (a.subs_mem.current(), a.subs_mem.limit()),
            })
            .collect();
        for c in self.clients.values() {
            stats[c.account].clients += 1;
        }
        stats
    }

    /// Put client `id` in `account` with `perms` (on CONNECT). Its outbound bytes are
    /// charged to the account from now on; moving to another account drops the client's
    /// subscriptions (they belong to the old subject space).
    pub fn set_identity(&mut self, id: ClientId, account: AccountId, perms: Option<Arc<Permissions>>) {
        let Some(c) = self.clients.get(&id) else { return };
        if c.account != account {
            let keys: Vec<SubId> = c.sids.values().copied().collect();
            for key in keys {
                self.remove_sub(key);
            }
        }
        let Some(c) = self.clients.get_mut(&id) else { return };
        c.account = account;
        c.perms = perms;
        c.replies.clear();
        c.out.set_tenant(self.accounts[account].outbound.clone());
        self.invariants();
    }

    /// Whether client `id` may publish to `subject` as a response (`allow_responses`):
    /// it received a request with that reply subject and has responses left. Uses one.
    pub fn may_respond(&mut self, id: ClientId, subject: &str) -> bool {
        let Some(c) = self.clients.get_mut(&id) else { return false };
        let Some(left) = c.replies.get_mut(subject) else { return false };
        *left = left.saturating_sub(1);
        if *left == 0 {
            c.replies.remove(subject);
        }
        true
    }

    /// Charge local subscriptions to `account` (the ledger's `client.subs`); at its limit
    /// a SUB is refused with [`SubscribeError::Memory`].
    pub fn set_subs_account(&mut self, account: Arc<Account>) {
        self.subs_account = Some(account);
    }

    /// Hand messages on subjects JetStream wants to `js`, and report interest in the
    /// subjects it watches. Reports the current interest of every subject the engine
    /// already watches (push consumers recovered from disk).
    pub fn set_jetstream(&mut self, js: Arc<JsHandle>) {
        let subjects = js.watched_subjects();
        self.js = Some(js.clone());
        let outs = subjects.into_iter().map(|subject| JsOut::Watch { subject, watch: true }).collect();
        let mut wakes = Wakes::default();
        self.route_js(&js, outs, &mut wakes);
        wakes.wake_all();
    }

    /// Register a new connection writing to `out`; returns its id.
    pub fn add_client(&mut self, out: Arc<Outbound>) -> ClientId {
        self.next_client += 1;
        let id = self.next_client;
        self.clients.insert(
            id,
            Client {
                out,
                account: GLOBAL,
                perms: None,
                replies: BTreeMap::new(),
                headers: false,
                echo: true,
                no_responders: false,
                connected: false,
                sids: BTreeMap::new(),
                stat: Arc::new(ConnStat::default()),
            },
        );
        id
    }

    /// Client `id`'s live figures for `/connz` (the connection updates them too).
    pub fn conn_stat(&self, id: ClientId) -> Option<Arc<ConnStat>> {
        self.clients.get(&id).map(|c| c.stat.clone())
    }

    /// The clients for `/connz`: client `cid` only (0: all), only those of account
    /// `account` (empty: all), with their subscriptions when `with_subs`.
    pub fn client_views(&self, cid: ClientId, account: &str, with_subs: bool) -> Vec<ClientView> {
        let selected: Box<dyn Iterator<Item = (&ClientId, &Client)>> = if cid > 0 {
            Box::new(self.clients.get_key_value(&cid).into_iter())
        } else {
            Box::new(self.clients.iter())
        };
        selected
            .filter(|(_, c)| account.is_empty() || *self.accounts[c.account].name == *account)
            .map(|(&id, c)| ClientView {
                cid: id,
                stat: c.stat.clone(),
                pending: c.out.pending(),
                account: self.accounts[c.account].name.to_string(),
                num_subs: c.sids.len(),
                subs: if with_subs {
                    c.sids.values().filter_map(|k| self.sub_detail(*k, false)).collect()
                } else {
                    Vec::new()
                },
            })
            .collect()
    }

    /// Subscription `key` as `/connz` and `/subsz` show it (`with_account` for `/subsz`).
    fn sub_detail(&self, key: SubId, with_account: bool) -> Option<SubDetail> {
        let sub = self.subs.get(&key)?;
        let account = &self.accounts[self.clients.get(&sub.client)?.account];
        let (subject, queue) = account.index.subscription(key)?;
        Some(SubDetail {
            account: if with_account { account.name.to_string() } else { String::new() },
            subject: subject.to_owned(),
            queue: queue.unwrap_or_default().to_owned(),
            sid: sub.sid.to_string(),
            msgs: sub.delivered,
            max: sub.max.unwrap_or(0),
            cid: sub.client,
        })
    }

    /// Every local subscription for `/subsz`, in account then creation order: only
    /// account `account`'s (empty: all), only those a message on the literal subject
    /// `test` would reach (empty: all).
    pub fn sub_details(&self, account: &str, test: &str) -> Vec<SubDetail> {
        let mut keys: Vec<(AccountId, SubId)> = self
            .subs
            .iter()
            .filter_map(|(k, s)| Some((self.clients.get(&s.client)?.account, *k)))
            .filter(|(a, _)| account.is_empty() || *self.accounts[*a].name == *account)
            .collect();
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|(_, k)| self.sub_detail(k, true))
            .filter(|d| test.is_empty() || subject::matches(&d.subject, test))
            .collect()
    }

    /// The local subscription figures for `/subsz` (nats-server's `SublistStats`) of
    /// account `account` (empty: all; the counters are server-wide).
    pub fn sublist_stats(&self, account: &str) -> super::connz::SublistStats {
        let st = &self.stats;
        let matches = st.sub_matches.load(Ordering::Relaxed);
        let fanout = st.sub_fanout.load(Ordering::Relaxed);
        super::connz::SublistStats {
            num_subscriptions: self
                .accounts
                .iter()
                .filter(|a| account.is_empty() || *a.name == *account)
                .map(|a| a.index.len() as u64)
                .sum(),
            num_cache: 0,
            num_inserts: st.sub_inserts.load(Ordering::Relaxed),
            num_removes: st.sub_removes.load(Ordering::Relaxed),
            num_matches: matches,
            cache_hit_rate: 0.0,
            max_fanout: st.sub_max_fanout.load(Ordering::Relaxed),
            avg_fanout: if matches == 0 { 0.0 } else { fanout as f64 / matches as f64 },
        }
    }

    /// Every route peer we have a sending connection to, for `/routez`, with its
    /// interest when `with_subs`.
    pub fn peer_views(&self, with_subs: bool) -> Vec<PeerView> {
        self.peers
            .iter()
            .filter(|(_, p)| p.out.is_some())
            .map(|(id, p)| PeerView {
                server_id: id.to_string(),
                out_conn: p.out.as_ref().map(|(c, _)| *c),
                pending: p.out.as_ref().map_or(0, |(_, o)| o.queued_bytes()),
                addr: p.addr.clone(),
                num_subs: p.subs.len(),
                subs: if with_subs {
                    p.subs
                        .keys()
                        .map(|(a, subject, queue)| SubDetail {
                            account: self.accounts[*a].name.to_string(),
                            subject: subject.clone(),
                            queue: queue.clone().unwrap_or_default(),
                            ..SubDetail::default()
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                traffic: p.traffic,
            })
            .collect()
    }

    /// Record what a client negotiated in CONNECT.
    pub fn set_options(&mut self, id: ClientId, headers: bool, echo: bool, no_responders: bool) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.headers = headers;
            c.echo = echo;
            c.no_responders = no_responders;
        }
    }

    /// The client's first PONG after CONNECT went out: from now on it gets async INFOs
    /// ([`Broker::connected_client_outs`]), as nats-server's `firstPongSent`.
    pub fn first_pong_sent(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.connected = true;
        }
    }

    /// Forget a client and all its subscriptions at once. The work is proportional to
    /// the client's subscriptions; under a lock shared with other clients use
    /// [`Broker::remove_client_step`] instead.
    pub fn remove_client(&mut self, id: ClientId) {
        while !self.remove_client_step(id, usize::MAX) {}
    }

    /// Forget up to `max` of client `id`'s subscriptions; once none is left, forget the
    /// client too and return true (also for an unknown client).
    ///
    /// A client leaving with 200,000 subscriptions must not hold the broker (and so every
    /// other client) for the whole teardown (issue 9, fault 2): its connection task calls
    /// this in steps of [`REMOVE_STEP`], taking the lock anew for each. Until the last
    /// step the client stays registered, but its queue is closed, so deliveries to its
    /// remaining subscriptions are no-ops.
    pub fn remove_client_step(&mut self, id: ClientId, max: usize) -> bool {
        let Some(c) = self.clients.get_mut(&id) else { return true };
        let account = c.account;
        let mut keys = Vec::new();
        while keys.len() < max {
            let Some((_, key)) = c.sids.pop_first() else { break };
            keys.push(key);
        }
        let done = c.sids.is_empty();
        for key in keys {
            if let Some(sub) = self.subs.remove(&key) {
                self.unindex(account, key, &sub.sid);
            }
        }
        if done {
            self.clients.remove(&id);
        }
        self.invariants();
        done
    }

    /// Every connected client's outbound queue.
    pub fn outbounds(&self) -> Vec<Arc<Outbound>> {
        self.clients.values().map(|c| c.out.clone()).collect()
    }

    /// Every client's id and outbound queue, in id order.
    pub fn client_outs(&self) -> Vec<(ClientId, Arc<Outbound>)> {
        self.clients.iter().map(|(id, c)| (*id, c.out.clone())).collect()
    }

    /// Like [`Broker::client_outs`], only the clients whose CONNECT was accepted.
    pub fn connected_client_outs(&self) -> Vec<(ClientId, Arc<Outbound>)> {
        self.clients.iter().filter(|(_, c)| c.connected).map(|(id, c)| (*id, c.out.clone())).collect()
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Number of subscriptions client `id` holds (0 for an unknown client).
    pub fn client_sub_count(&self, id: ClientId) -> usize {
        self.clients.get(&id).map_or(0, |c| c.sids.len())
    }

    /// Number of subscriptions.
    pub fn sub_count(&self) -> usize {
        self.subs.len()
    }

    /// Subscribe; a sid the client already uses is left as it is.
    ///
    /// Errors: an invalid subject or queue ([`SubscribeError::Invalid`]); the server-wide
    /// `client.subs` account is full ([`SubscribeError::Memory`]); the client's NATS
    /// account's `account.subs` is full ([`SubscribeError::AccountFull`]). A SUB is
    /// charged to both and must fit in both.
    pub fn subscribe(
        &mut self,
        id: ClientId,
        subject: &str,
        queue: Option<&str>,
        sid: ByteStr,
    ) -> Result<(), SubscribeError> {
        let Some(c) = self.clients.get(&id) else { return Ok(()) };
        if c.sids.contains_key(&*sid) {
            return Ok(());
        }
        let account = c.account;
        let cost = sub_cost(subject, &sid);
        if self.subs_account.as_ref().is_some_and(|a| !a.try_charge(cost)) {
            return Err(SubscribeError::Memory);
        }
        let charge = account_sub_cost(subject, queue, &sid);
        let release_server = |b: &Broker| {
            if let Some(a) = &b.subs_account {
                a.release(cost);
            }
        };
        if !self.accounts[account].subs_mem.try_charge(charge) {
            release_server(self);
            return Err(SubscribeError::AccountFull);
        }
        // Ids come from one sequence over every account's index, so that they key `subs`.
        let a = &mut self.accounts[account];
        if let Some(last) = self.last_key {
            a.index.skip_past(last);
        }
        let key = a.index.next_id();
        let sub_id = match a.index.insert(subject, queue, key) {
            Ok(id) => id,
            Err(e) => {
                a.subs_mem.release(charge);
                release_server(self);
                return Err(SubscribeError::Invalid(e.to_string()));
            }
        };
        debug_assert_eq!(sub_id, key, "SubIndex::next_id");
        self.last_key = Some(key);
        let sid: Arc<str> = Arc::from(&*sid);
        self.subs.insert(key, Sub { client: id, sid: sid.clone(), max: None, delivered: 0 });
        if let Some(c) = self.clients.get_mut(&id) {
            c.sids.insert(sid, key);
        }
        self.stats.sub_inserts.fetch_add(1, Ordering::Relaxed);
        self.interest_up(account, subject.to_owned(), queue.map(str::to_owned));
        self.invariants();
        Ok(())
    }

    /// Unsubscribe now (`max` `None` or 0) or once `max` messages in total have been delivered.
    pub fn unsubscribe(&mut self, id: ClientId, sid: &ByteStr, max: Option<u64>) {
        let Some(&key) = self.clients.get(&id).and_then(|c| c.sids.get(&**sid)) else { return };
        match max.filter(|&m| m > 0) {
            Some(m) if self.subs.get(&key).is_some_and(|s| s.delivered < m) => {
                if let Some(s) = self.subs.get_mut(&key) {
                    s.max = Some(m);
                }
            }
            _ => self.remove_sub(key),
        }
    }

    fn remove_sub(&mut self, key: SubId) {
        if let Some(sub) = self.subs.remove(&key) {
            let Some(account) = self.clients.get_mut(&sub.client).map(|c| {
                c.sids.remove(&sub.sid);
                c.account
            }) else {
                return;
            };
            self.unindex(account, key, &sub.sid);
        }
        self.invariants();
    }

    /// Take subscription `key` (with `sid`) out of `account`'s index, release its
    /// charges (`client.subs` and the account's `account.subs`) and lower its
    /// (account, subject, queue) interest.
    fn unindex(&mut self, account: AccountId, key: SubId, sid: &str) {
        let a = &mut self.accounts[account];
        let Some((subject, queue)) = a.index.subscription(key).map(|(s, q)| (s.to_owned(), q.map(str::to_owned)))
        else {
            return;
        };
        a.index.remove(key);
        self.stats.sub_removes.fetch_add(1, Ordering::Relaxed);
        a.subs_mem.release(account_sub_cost(&subject, queue.as_deref(), sid));
        if let Some(a) = &self.subs_account {
            a.release(sub_cost(&subject, sid));
        }
        self.interest_down(account, subject, queue);
    }

    /// Assert the subscription state's invariants; a no-op unless debug assertions are on
    /// (tests and the simulation build). Runs after every change to local or remote
    /// interest. Always: the subscription trie, the subscription table and the clients'
    /// sid maps hold the same number of subscriptions, and the announced interest counts
    /// add up to it. For small brokers (and in unit tests), also: every subscription
    /// belongs to a live client under its sid and sits in the trie, every announced
    /// (subject, queue) count equals its subscriptions and none is zero, and every peer's
    /// interest is in the remote trie.
    pub fn invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let sids: usize = self.clients.values().map(|c| c.sids.len()).sum();
        assert_eq!(sids, self.subs.len(), "clients' sids vs subscriptions");
        let indexed: usize = self.accounts.iter().map(|a| a.index.len()).sum();
        assert_eq!(indexed, self.subs.len(), "tries vs subscriptions");
        let announced: u64 = self.interest.values().map(|&n| n as u64).sum();
        assert_eq!(announced, self.subs.len() as u64, "interest counts vs subscriptions");
        let remote: usize = self.peers.values().map(|p| p.subs.len()).sum();
        let remote_indexed: usize = self.accounts.iter().map(|a| a.remote.len()).sum();
        assert_eq!(remote, remote_indexed, "peers' interest vs remote tries");
        if !(cfg!(test) || self.subs.len() <= 1024) {
            return;
        }
        let mut counts: BTreeMap<(AccountId, &str, Option<&str>), u32> = BTreeMap::new();
        let mut charged = vec![0u64; self.accounts.len()];
        let mut server_charged = 0;
        for (key, sub) in &self.subs {
            let client = self.clients.get(&sub.client).expect("a subscription's client is connected");
            assert_eq!(client.sids.get(&sub.sid), Some(key), "sid {} of client {}", sub.sid, sub.client);
            let account = self.accounts.get(client.account).expect("a client's account exists");
            assert_eq!(account.index.get(*key), Some(key), "subscription {key} is in its client's account's trie");
            assert!(sub.max.is_none_or(|m| sub.delivered < m), "an exhausted auto-unsubscribe was kept");
            let (subject, queue) = account.index.subscription(*key).expect("checked above");
            *counts.entry((client.account, subject, queue)).or_default() += 1;
            charged[client.account] += account_sub_cost(subject, queue, &sub.sid);
            server_charged += sub_cost(subject, &sub.sid);
        }
        for (a, charged) in self.accounts.iter().zip(charged) {
            assert_eq!(a.subs_mem.current(), charged, "account.subs of {} vs its subscriptions", a.name);
        }
        if let Some(a) = &self.subs_account {
            assert_eq!(a.current(), server_charged, "client.subs vs the subscriptions");
        }
        assert_eq!(counts.len(), self.interest.len(), "announced interest pairs");
        for ((account, subject, queue), n) in &self.interest {
            assert!(*n > 0, "zero interest count kept for {subject}");
            assert_eq!(
                counts.get(&(*account, subject.as_str(), queue.as_deref())),
                Some(n),
                "interest count of {subject}"
            );
        }
        for p in self.peers.values() {
            for ((account, ..), id) in &p.subs {
                assert!(
                    self.accounts[*account].remote.get(*id).is_some(),
                    "peer interest {id} missing from the remote trie"
                );
            }
        }
    }

    /// Route `msg` from client `from` to every matching subscription (one member per
    /// queue group, cluster-wide) and to route peers with matching interest, and answer
    /// with a no-responders status if nothing received a request.
    /// Returns how many deliveries (local subscriptions plus peers) were queued.
    pub fn publish(&mut self, from: ClientId, msg: &Message) -> usize {
        let mut wakes = Wakes::default();
        let n = self.publish_deferred(from, msg, &mut wakes);
        wakes.wake_all();
        n
    }

    /// [`Broker::publish`], leaving the local subscribers' writers for the caller to wake with `wakes`.
    ///
    /// A message on a subject JetStream wants also goes to the engine (counted as one
    /// delivery, so a request to the API or a stream never gets no-responders), and what
    /// the engine answers is routed at once ([`Broker::route_js`]).
    pub fn publish_deferred(&mut self, from: ClientId, msg: &Message, wakes: &mut Wakes) -> usize {
        let mut delivered = self.route_plain(from, msg, wakes);
        // JetStream serves the default account only.
        if let Some(js) = self.js.clone()
            && self.clients.get(&from).is_none_or(|c| c.account == GLOBAL)
            && js.wants(&msg.subject)
        {
            delivered += 1;
            let outs = js.on_message(msg);
            self.route_js(&js, outs, wakes);
        }
        if delivered == 0 {
            self.no_responders(from, msg);
        }
        delivered
    }

    /// Route what the JetStream engine sent: publishes as server-originated messages
    /// (handed back to the engine when it wants their subject), deliveries to the
    /// subscribers of their target subject (their inflight charge dropped once queued,
    /// then the engine polled so blocked consumers go on), and watch requests answered
    /// with the subject's current local interest. Outputs these cause are routed in turn,
    /// for at most [`MAX_CASCADE`] rounds.
    pub fn route_js(&mut self, js: &Arc<JsHandle>, outs: Outs, wakes: &mut Wakes) {
        let mut queue = outs;
        for _ in 0..MAX_CASCADE {
            if queue.is_empty() {
                return;
            }
            let mut next = Vec::new();
            let mut released = false;
            for o in queue {
                match o {
                    JsOut::Publish(m) => {
                        self.route_plain(SERVER_CLIENT, &m, wakes);
                        if js.wants(&m.subject) {
                            next.extend(js.on_message(&m));
                        }
                    }
                    JsOut::Deliver { to, msg, charge } => {
                        self.deliver_to(&to, &msg, wakes);
                        drop(charge);
                        released = true;
                    }
                    JsOut::Watch { subject, watch } => next.extend(self.watch(js, subject, watch)),
                }
            }
            if released {
                next.extend(js.poll());
            }
            queue = next;
        }
        if !queue.is_empty() {
            tracing::warn!(left = queue.len(), "JetStream outputs cascaded too long; the rest is dropped");
        }
    }

    /// Start or stop watching local interest in `subject` for JetStream; a new watch is
    /// answered with the current interest.
    fn watch(&mut self, js: &Arc<JsHandle>, subject: String, watch: bool) -> Outs {
        if watch {
            let active = self.accounts[GLOBAL].index.interest(&subject);
            let e = self.watched.entry(subject.clone()).or_insert((0, active));
            e.0 += 1;
            e.1 = active;
            js.on_interest(&subject, active)
        } else {
            if let Some(e) = self.watched.get_mut(&subject) {
                e.0 -= 1;
                if e.0 == 0 {
                    self.watched.remove(&subject);
                }
            }
            Vec::new()
        }
    }

    /// Local interest in `pattern` appeared or went: tell JetStream about every watched
    /// subject whose interest changed, and (when it went) about `pattern` itself if it is
    /// a literal nobody else matches (a pull request's reply inbox whose client left).
    fn js_interest_changed(&mut self, pattern: &str, appeared: bool) {
        let Some(js) = self.js.clone() else { return };
        let index = &self.accounts[GLOBAL].index;
        let mut changes: Vec<(String, bool)> = Vec::new();
        for (s, (_, active)) in self.watched.iter_mut() {
            if subject::matches(pattern, s) {
                let now = index.interest(s);
                if now != *active {
                    *active = now;
                    changes.push((s.clone(), now));
                }
            }
        }
        let mut outs = Vec::new();
        for (s, active) in changes {
            outs.extend(js.on_interest(&s, active));
        }
        if !appeared
            && !self.watched.contains_key(pattern)
            && !subject::has_wildcards(pattern)
            && !index.interest(pattern)
        {
            outs.extend(js.on_interest(pattern, false));
        }
        if !outs.is_empty() {
            let mut wakes = Wakes::default();
            self.route_js(&js, outs, &mut wakes);
            wakes.wake_all();
        }
    }

    /// Deliver `msg` (shown with its own subject and reply) to the local subscribers of
    /// `to`: every plain subscription and one member per queue group.
    fn deliver_to(&mut self, to: &str, msg: &Message, wakes: &mut Wakes) -> usize {
        let m = self.accounts[GLOBAL].index.matching(to);
        let mut targets = m.plain.clone();
        targets.extend(m.pick_queue_members(&mut self.rng).into_iter().copied());
        self.deliver(SERVER_CLIENT, msg, targets, wakes)
    }

    /// Route `msg` from `from` to local subscribers and route peers, without JetStream.
    fn route_plain(&mut self, from: ClientId, msg: &Message, wakes: &mut Wakes) -> usize {
        let (echo, account) = self.clients.get(&from).map_or((true, GLOBAL), |c| (c.echo, c.account));
        let subs = &self.subs;
        let not_own = |k: &SubId| echo || subs.get(k).is_none_or(|s| s.client != from);
        let mut m = self.accounts[account].index.matching(&msg.subject);
        m.plain.retain(not_own);
        for members in m.queues.values_mut() {
            members.retain(not_own);
        }
        let mut targets = m.plain.clone();
        targets.extend(m.pick_queue_members(&mut self.rng).into_iter().copied());
        self.stats.count_match(targets.len() as u64);
        let served: BTreeSet<&str> = m.queues.iter().filter(|(_, v)| !v.is_empty()).map(|(q, _)| &**q).collect();
        let stalls = self.route_stalls.len();
        let delivered = self.forward(account, msg, &served);
        if from == SERVER_CLIENT {
            // Nobody waits for the server's own messages (JetStream's): no stall to record.
            self.route_stalls.truncate(stalls);
        }
        delivered + self.deliver(from, msg, targets, wakes)
    }

    /// Send `msg` to every peer with matching plain interest, and for each matching
    /// queue group not in `served` to one peer with members. Returns the peers sent to.
    fn forward(&mut self, account: AccountId, msg: &Message, served: &BTreeSet<&str>) -> usize {
        let remote = &self.accounts[account].remote;
        if remote.is_empty() {
            return 0;
        }
        let m = remote.matching_refs(&msg.subject);
        let peers = &self.peers;
        let up = |p: &Arc<str>| peers.get(p).is_some_and(|p| p.out.is_some());
        let mut sends: BTreeMap<&Arc<str>, Vec<&str>> = BTreeMap::new();
        for p in m.plain.iter().copied().filter(|p| up(p)) {
            sends.entry(p).or_default();
        }
        for (queue, members) in &m.queues {
            if served.contains(&**queue) && !self.bugs.queue_double_delivery {
                continue;
            }
            // One entry per peer, so that a peer with several matching patterns is not favoured.
            let candidates: Vec<&Arc<str>> =
                members.iter().copied().filter(|p| up(p)).collect::<BTreeSet<_>>().into_iter().collect();
            if !candidates.is_empty() {
                let pick = candidates[self.rng.gen_range(0..candidates.len())];
                sends.entry(pick).or_default().push(queue);
            }
        }
        let mut sent = 0;
        let mut to: Vec<Arc<str>> = Vec::new();
        for (peer, queues) in sends {
            let Some((_, out)) = self.peers.get(peer).and_then(|p| p.out.as_ref()) else { continue };
            let account = &self.accounts[account].name;
            let Some(frame) =
                encode_msg(account, &msg.subject, msg.reply.as_deref(), msg.headers.as_ref(), &msg.payload, &queues)
            else {
                // Only a frame with very many queue names can get here: the frame limit
                // admits every message size the server accepts.
                let n = out.drops().count(Class::Msg, DropReason::TooLarge);
                tracing::warn!(peer = %peer, subject = %msg.subject, dropped = n, "message too large for the route frame limit; dropped");
                continue;
            };
            match out.push_msg(frame) {
                RoutePush::Queued => {
                    sent += 1;
                    self.stats.route_out_msgs.fetch_add(1, Ordering::Relaxed);
                    to.push(peer.clone());
                }
                RoutePush::Dropped => out.note_dropped_msg(&msg.subject, &msg.payload, &queues),
                RoutePush::Closed => {}
            }
            if out.pressured() && !self.route_stalls.iter().any(|o| Arc::ptr_eq(o, out)) {
                // Bounded by the live routes even if a caller never takes them.
                self.route_stalls.retain(|o| !o.is_closed());
                self.route_stalls.push(out.clone());
            }
        }
        let size = (msg.payload.len() + msg.headers.as_ref().map_or(0, |h| h.len())) as u64;
        for p in to {
            if let Some(p) = self.peers.get_mut(&p) {
                p.traffic.out_msgs += 1;
                p.traffic.out_bytes += size;
            }
        }
        sent
    }

    /// The pressured route queues messages went to since the last call (each once): the
    /// publishing client waits for them to drain, bounded, with the broker lock released
    /// (see the route stack's "Publishers first").
    pub fn take_route_stalls(&mut self) -> Vec<Arc<RouteOut>> {
        std::mem::take(&mut self.route_stalls)
    }

    /// The client queues that made the publishing client's messages wait since the last
    /// call (each once; see `outbound`'s "Producers wait"): the publisher waits for
    /// them to drain, bounded, with the broker lock released.
    pub fn take_client_stalls(&mut self) -> Vec<Arc<Outbound>> {
        std::mem::take(&mut self.client_stalls)
    }

    /// Queue `msg` to each subscription in `targets`, closing slow consumers and
    /// finishing auto-unsubscribes. Returns how many were queued.
    /// The writers are woken by `wakes` (see [`Outbound::push_deferred`]).
    ///
    /// `producer` is the publishing client: the queues it should wait for are recorded
    /// for [`Broker::take_client_stalls`] (none for [`SERVER_CLIENT`], JetStream and
    /// route messages, which do not wait).
    fn deliver(&mut self, producer: ClientId, msg: &Message, targets: Vec<SubId>, wakes: &mut Wakes) -> usize {
        let (mut delivered, mut out_bytes) = (0, 0);
        let mut slow = Vec::new();
        for key in targets {
            let Some(sub) = self.subs.get_mut(&key) else { continue };
            let Some(client) = self.clients.get_mut(&sub.client) else { continue };
            if let Some(perms) = &client.perms {
                if perms.denies_delivery(&msg.subject) {
                    continue;
                }
                if let (Some(r), Some(reply)) = (perms.allow_responses, &msg.reply) {
                    if client.replies.len() >= MAX_REPLY_PERMS && !client.replies.contains_key(&**reply) {
                        client.replies.pop_first();
                    }
                    client.replies.insert(reply.to_string(), r.max_msgs.max(1));
                }
            }
            // MSG/HMSG straight from the message's parts; a subscriber without headers gets them stripped.
            let headers = msg.headers.as_deref().filter(|_| client.headers);
            let encode =
                |b: &mut _| proto::encode_msg(b, &msg.subject, &sub.sid, msg.reply.as_deref(), headers, &msg.payload);
            // At least what `encode` appends: the parts, and 64 bytes for the verb,
            // spaces, two lengths and the CRLFs.
            let hint = msg.subject.len()
                + sub.sid.len()
                + msg.reply.as_deref().map_or(0, str::len)
                + headers.map_or(0, <[u8]>::len)
                + msg.payload.len()
                + 64;
            match client.out.push_deferred(hint, encode, wakes) {
                Push::Queued => {
                    // A client publishing to a queue that fell behind waits for it
                    // (bounded, with the broker lock released; see `outbound`).
                    if producer != SERVER_CLIENT
                        && sub.client != producer
                        && client.out.stalls_producers()
                        && !self.client_stalls.iter().any(|o| Arc::ptr_eq(o, &client.out))
                    {
                        self.client_stalls.push(client.out.clone());
                    }
                    if self.bugs.uncharged_buffer {
                        self.bug_history.extend_from_slice(msg.subject.as_bytes());
                        self.bug_history.extend_from_slice(&msg.payload);
                    }
                    delivered += 1;
                    let n = (msg.payload.len() + headers.map_or(0, <[u8]>::len)) as u64;
                    out_bytes += n;
                    client.stat.count_out(n);
                }
                Push::Closed | Push::Dropped => {}
                Push::SlowConsumer => slow.push(sub.client),
            }
            sub.delivered += 1;
            if sub.max.is_some_and(|m| sub.delivered >= m) {
                self.remove_sub(key);
            }
        }
        for id in slow {
            // The queue is already aborted, so the client gets nothing more; its own
            // connection task sees that and removes its subscriptions in steps
            // ([`Broker::remove_client_step`]), not this publisher under the shared lock.
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = id, "slow consumer: max pending exceeded, closing");
        }
        if delivered > 0 {
            self.stats.out_msgs.fetch_add(delivered as u64, Ordering::Relaxed);
            self.stats.out_bytes.fetch_add(out_bytes, Ordering::Relaxed);
        }
        delivered
    }

    /// Tell a requester that nothing received its request, on its own subscription to the reply subject.
    fn no_responders(&mut self, from: ClientId, msg: &Message) {
        let Some(reply) = &msg.reply else { return };
        let Some(c) = self.clients.get(&from) else { return };
        if !c.no_responders || !c.headers {
            return;
        }
        // Look the reply subject up in the index and keep the requester's own
        // subscriptions: the work follows the subscriptions matching the reply, not how
        // many subscriptions the requester holds (issue 9, fault 2: scanning a client's
        // 200,000 sids per request stalled every other client). The oldest matching
        // subscription gets the status.
        let m = self.accounts[c.account].index.matching_refs(reply);
        let subs = &self.subs;
        let own = |k: &&SubId| subs.get(*k).is_some_and(|s| s.client == from);
        let key = m.plain.iter().copied().filter(own).chain(m.queues.values().flatten().copied().filter(own)).min();
        let Some(sid) = key.and_then(|k| self.subs.get(k)).map(|s| ByteStr::from(s.sid.to_string())) else { return };
        if c.out.push(&no_responders_msg(reply.clone(), sid, &msg.subject)) == Push::SlowConsumer {
            // Its connection task removes it (see `deliver`).
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Close every client's queue, letting what is queued drain.
    pub fn drain_all(&self) {
        for c in self.clients.values() {
            c.out.close(Closed::Drain);
        }
    }

    /// One more local subscription on (subject, queue): peers hear of the first.
    fn interest_up(&mut self, account: AccountId, subject: String, queue: Option<String>) {
        let n = self.interest.entry((account, subject.clone(), queue.clone())).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.announce(true, account, &subject, queue.as_deref());
            if account == GLOBAL {
                self.js_interest_changed(&subject, true);
            }
        }
    }

    /// One less local subscription on (subject, queue): peers hear when none is left.
    fn interest_down(&mut self, account: AccountId, subject: String, queue: Option<String>) {
        let key = (account, subject, queue);
        let Some(n) = self.interest.get_mut(&key) else { return };
        *n -= 1;
        if *n == 0 {
            self.interest.remove(&key);
            self.announce(false, account, &key.1, key.2.as_deref());
            if account == GLOBAL {
                self.js_interest_changed(&key.1, false);
            }
        }
    }

    fn announce(&self, sub: bool, account: AccountId, subject: &str, queue: Option<&str>) {
        let mut frame = None;
        let account = &self.accounts[account].name;
        for p in self.peers.values() {
            if let Some((_, out)) = &p.out {
                let f = frame.get_or_insert_with(|| encode_interest(sub, account, subject, queue)).clone();
                // On overflow the queue closes itself; the connection then ends and resyncs.
                out.push_control(f);
            }
        }
    }

    /// Our route connection `conn` to peer `server_id` is up: it becomes the peer's
    /// sending queue, starting with a snapshot of all local interest. Returns false
    /// (and registers nothing) if another live connection to that peer exists.
    pub fn route_out_open(&mut self, server_id: &str, conn: RouteConnId, out: Arc<RouteOut>) -> bool {
        let peer = self.peers.entry(Arc::from(server_id)).or_default();
        if peer.out.as_ref().is_some_and(|(_, o)| !o.is_closed()) {
            return false;
        }
        for (account, subject, queue) in self.interest.keys() {
            let account = &self.accounts[*account].name;
            if out.push_control(encode_interest(true, account, subject, queue.as_deref())) == RoutePush::Closed {
                break;
            }
        }
        peer.out = Some((conn, out));
        true
    }

    /// Our route connection `conn` to `server_id` ended.
    pub fn route_out_close(&mut self, server_id: &str, conn: RouteConnId) {
        if let Some(p) = self.peers.get_mut(server_id)
            && p.out.as_ref().is_some_and(|(c, _)| *c == conn)
        {
            if let Some((_, out)) = p.out.take() {
                out.close();
            }
            self.forget_if_idle(server_id);
        }
    }

    /// Peer `server_id` (route address `addr`) connected to us on `conn`. Returns false
    /// if it already has a live connection to us (the new one is then refused).
    /// Otherwise any interest it had is dropped: the connection starts with a snapshot.
    pub fn route_in_open(&mut self, server_id: &str, conn: RouteConnId, addr: String) -> bool {
        let peer = self.peers.entry(Arc::from(server_id)).or_default();
        if peer.inbound.is_some() {
            return false;
        }
        peer.inbound = Some(conn);
        peer.addr = Some(addr);
        if self.bugs.route_drops_interest {
            *self.bug_route_opens.entry(Arc::from(server_id)).or_default() += 1;
        }
        for ((account, ..), id) in std::mem::take(&mut peer.subs) {
            self.accounts[account].remote.remove(id);
        }
        true
    }

    /// Peer `server_id`'s connection `conn` to us ended: its interest is dropped.
    pub fn route_in_close(&mut self, server_id: &str, conn: RouteConnId) {
        let Some(p) = self.peers.get_mut(server_id) else { return };
        if p.inbound != Some(conn) {
            return;
        }
        p.inbound = None;
        for ((account, ..), id) in std::mem::take(&mut p.subs) {
            self.accounts[account].remote.remove(id);
        }
        self.forget_if_idle(server_id);
        self.invariants();
    }

    fn forget_if_idle(&mut self, server_id: &str) {
        if self.peers.get(server_id).is_some_and(|p| p.out.is_none() && p.inbound.is_none()) {
            self.peers.remove(server_id);
        }
    }

    /// Apply an interest change from peer `server_id` on connection `conn` in `account`
    /// (interest in an account this server does not have is ignored).
    /// An invalid subject or queue is an error (the connection should end).
    pub fn route_interest(
        &mut self,
        server_id: &str,
        conn: RouteConnId,
        sub: bool,
        account: &str,
        subject: String,
        queue: Option<String>,
    ) -> Result<(), String> {
        let Some((id, p)) = self.peers.get_key_value(server_id) else { return Ok(()) };
        if p.inbound != Some(conn) {
            return Ok(());
        }
        let Some(account) = self.account_id(account) else { return Ok(()) };
        let id = id.clone();
        let key = (account, subject, queue);
        let p = self.peers.get_mut(server_id).expect("looked up above");
        let remote = &mut self.accounts[account].remote;
        let reconnected = self.bug_route_opens.get(server_id).is_some_and(|&n| n > 1);
        if sub {
            if let std::collections::btree_map::Entry::Vacant(e) = p.subs.entry(key) {
                let (_, subject, queue) = e.key();
                let dropped;
                let subject = if reconnected && subject.contains(['*', '>']) {
                    dropped = format!("_dropped.{}", subject.replace(['*', '>'], "x"));
                    &dropped
                } else {
                    subject
                };
                let sub_id = remote.insert(subject, queue.as_deref(), id).map_err(|e| e.to_string())?;
                e.insert(sub_id);
            }
        } else if let Some(sub_id) = p.subs.remove(&key) {
            remote.remove(sub_id);
        }
        self.invariants();
        Ok(())
    }

    /// Deliver a message that peer `server_id` sent on `conn` to local clients only:
    /// every matching plain subscription, and one local member of each group in
    /// `queues`. Returns how many deliveries were queued; the subscribers' writers are
    /// woken later, by `wakes` (the route reader applies a read's frames together and
    /// wakes each writer once).
    pub fn route_msg(
        &mut self,
        server_id: &str,
        conn: RouteConnId,
        account: &str,
        msg: &Message,
        queues: &[String],
        wakes: &mut Wakes,
    ) -> usize {
        if self.peers.get(server_id).is_none_or(|p| p.inbound != Some(conn)) {
            return 0;
        }
        self.stats.route_in_msgs.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.peers.get_mut(server_id) {
            p.traffic.in_msgs += 1;
            p.traffic.in_bytes += (msg.payload.len() + msg.headers.as_ref().map_or(0, |h| h.len())) as u64;
        }
        let Some(account) = self.account_id(account) else { return 0 };
        let m = self.accounts[account].index.matching(&msg.subject);
        let mut targets = m.plain;
        for q in queues {
            if let Some(members) = m.queues.get(q.as_str())
                && !members.is_empty()
            {
                targets.push(members[self.rng.gen_range(0..members.len())]);
            }
        }
        // A route's reader does not wait for slow local clients (as nats-server stalls
        // only client producers); they are cut at `max_pending` instead.
        self.deliver(SERVER_CLIENT, msg, targets, wakes)
    }

    /// Number of peers we have a route connection to.
    pub fn route_count(&self) -> usize {
        self.peers.values().filter(|p| p.out.is_some()).count()
    }

    /// Number of (subject, queue) pairs of remote interest held.
    pub fn remote_interest_count(&self) -> usize {
        self.accounts.iter().map(|a| a.remote.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariants_hold_through_changes_and_catch_a_wrong_interest_count() {
        let account = Arc::new(Account::new("client.outbound", 1 << 20));
        let mut b = Broker::new(1, Arc::default());
        let c = b.add_client(Arc::new(Outbound::new(account.clone(), 1 << 16)));
        let d = b.add_client(Arc::new(Outbound::new(account, 1 << 16)));
        b.subscribe(c, "a.>", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(d, "a.>", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(d, "b", Some("q"), ByteStr::from_static("2")).unwrap();
        b.unsubscribe(d, &ByteStr::from_static("2"), Some(1));
        let msg = Message { subject: ByteStr::from_static("b"), reply: None, headers: None, payload: Bytes::new() };
        b.publish(c, &msg);
        b.remove_client(c);
        b.invariants();
        *b.interest.values_mut().next().expect("d's interest") += 1;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.invariants()));
        assert!(caught.is_err(), "a wrong interest count must fail the invariants");
    }

    fn client(b: &mut Broker, account: &Arc<Account>) -> (ClientId, Arc<Outbound>) {
        let out = Arc::new(Outbound::new(account.clone(), 1 << 20));
        (b.add_client(out.clone()), out)
    }

    /// Issue 9, fault 2: the no-responders status is found through the index (the reply
    /// subject's matches), not by scanning the requester's sids; it still goes to the
    /// requester's own oldest matching subscription, never to another client's.
    #[test]
    fn no_responders_reaches_the_requesters_own_inbox_among_many_subscriptions() {
        let account = Arc::new(Account::new("client.outbound", 1 << 24));
        let mut b = Broker::new(1, Arc::default());
        let (other, other_out) = client(&mut b, &account);
        b.subscribe(other, "_INBOX.c.*", None, ByteStr::from_static("o")).unwrap();
        let (c, out) = client(&mut b, &account);
        b.set_options(c, true, true, true);
        for i in 0..1_200 {
            b.subscribe(c, &format!("s.{i}"), None, ByteStr::from(format!("{i}"))).unwrap();
        }
        b.subscribe(c, "_INBOX.c.*", None, ByteStr::from_static("inbox")).unwrap();
        b.subscribe(c, "_INBOX.>", None, ByteStr::from_static("later")).unwrap();
        let req = Message {
            subject: ByteStr::from_static("nobody"),
            reply: Some(ByteStr::from_static("_INBOX.c.1")),
            headers: None,
            payload: Bytes::new(),
        };
        assert_eq!(b.publish(c, &req), 0);
        let got = out.take_queued();
        let got = std::str::from_utf8(&got).unwrap();
        assert!(got.starts_with("HMSG _INBOX.c.1 inbox "), "{got}");
        assert!(got.contains("503"), "{got}");
        assert!(other_out.take_queued().is_empty(), "another client's inbox got the status");
    }

    /// Issue 9, fault 2: a leaving client's subscriptions go in steps of at most `max`,
    /// and between steps the broker is whole and serves the others.
    #[test]
    fn a_leaving_client_is_removed_in_bounded_steps() {
        let account = Arc::new(Account::new("client.outbound", 1 << 24));
        let mut b = Broker::new(1, Arc::default());
        let (stay, stay_out) = client(&mut b, &account);
        b.subscribe(stay, "s.7", None, ByteStr::from_static("1")).unwrap();
        let (leave, leave_out) = client(&mut b, &account);
        for i in 0..1_100 {
            b.subscribe(leave, &format!("s.{i}"), None, ByteStr::from(format!("{i}"))).unwrap();
        }
        leave_out.close(Closed::Drain);
        let msg = Message { subject: ByteStr::from_static("s.7"), reply: None, headers: None, payload: Bytes::new() };
        let mut steps = 0;
        loop {
            let before = b.sub_count();
            let done = b.remove_client_step(leave, 500);
            steps += 1;
            assert!(before - b.sub_count() <= 500, "a step removed more than its bound");
            b.invariants();
            stay_out.take_queued();
            assert_eq!(b.publish(stay, &msg), 1, "the staying client is served between steps");
            assert_eq!(stay_out.take_queued().len(), "MSG s.7 1 0\r\n\r\n".len());
            if done {
                break;
            }
        }
        assert_eq!(steps, 3);
        assert_eq!((b.client_count(), b.sub_count()), (1, 1));
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;
    use crate::server::nats::auth::{ResponsePerm, SubjectPerm};

    fn client(b: &mut Broker, account: AccountId, perms: Option<Permissions>) -> (ClientId, Arc<Outbound>) {
        let out = Arc::new(Outbound::new(Arc::new(Account::new("client.outbound", 1 << 20)), 1 << 16));
        let id = b.add_client(out.clone());
        b.set_identity(id, account, perms.map(Arc::new));
        (id, out)
    }

    fn msg(subject: &'static str, reply: Option<&'static str>) -> Message {
        Message {
            subject: ByteStr::from_static(subject),
            reply: reply.map(ByteStr::from_static),
            headers: None,
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn a_message_never_crosses_accounts() {
        let mut b = Broker::new(1, Arc::default());
        let a = b.add_account("A", AccountLimits::default());
        let bb = b.add_account("B", AccountLimits::default());
        assert_eq!(b.add_account("A", AccountLimits::default()), a, "adding twice is the same account");
        let (pa, _) = client(&mut b, a, None);
        let (sa, oa) = client(&mut b, a, None);
        let (sb, ob) = client(&mut b, bb, None);
        let (sg, og) = client(&mut b, GLOBAL, None);
        for (c, sid) in [(sa, "1"), (sb, "2"), (sg, "3")] {
            b.subscribe(c, ">", None, ByteStr::from_static(sid)).unwrap();
        }
        b.subscribe(sb, "q.>", Some("g"), ByteStr::from_static("4")).unwrap();
        assert_eq!(b.publish(pa, &msg("q.1", None)), 1, "only A's subscriber");
        assert!(oa.pending() > 0 && ob.pending() == 0 && og.pending() == 0);
        let (pg, _) = client(&mut b, GLOBAL, None);
        assert_eq!(b.publish(pg, &msg("q.1", None)), 1, "only $G's subscriber");
        assert!(ob.pending() == 0 && og.pending() > 0);
        let stats = b.account_stats();
        assert_eq!(
            stats.iter().map(|s| (s.name.as_str(), s.clients, s.subscriptions)).collect::<Vec<_>>(),
            [("$G", 2, 1), ("A", 2, 1), ("B", 1, 2)]
        );
        // Moving a client to another account drops its subscriptions there.
        b.set_identity(sb, a, None);
        assert_eq!(b.client_sub_count(sb), 0);
        b.invariants();
    }

    #[test]
    fn an_account_at_its_subscription_limit_refuses_subs_and_others_go_on() {
        let mut b = Broker::new(1, Arc::default());
        let small = b.add_account("S", AccountLimits { max_outbound: 1 << 20, max_subs_bytes: 2 * SUB_OVERHEAD + 10 });
        let (c, _) = client(&mut b, small, None);
        let (g, _) = client(&mut b, GLOBAL, None);
        b.subscribe(c, "a", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(c, "b", None, ByteStr::from_static("2")).unwrap();
        assert_eq!(b.subscribe(c, "c", None, ByteStr::from_static("3")), Err(SubscribeError::AccountFull));
        for i in 0..100u32 {
            b.subscribe(g, "x", None, ByteStr::from(i.to_string())).unwrap();
        }
        b.unsubscribe(c, &ByteStr::from_static("1"), None);
        b.subscribe(c, "c", None, ByteStr::from_static("3")).expect("room again after an UNSUB");
        b.remove_client(c);
        assert_eq!(b.account_stats()[small].subs_bytes.0, 0, "a gone client's subscriptions are released");
        b.invariants();
    }

    /// A SUB is charged to the server-wide `client.subs` and to its account's
    /// `account.subs`; refused by either, it holds neither. A client of a NATS account
    /// leaves in bounded steps that release both.
    #[test]
    fn a_sub_must_fit_both_client_subs_and_its_account_and_leaves_in_steps() {
        let mut b = Broker::new(1, Arc::default());
        let server = Arc::new(Account::new("client.subs", 4 * sub_cost("s.1", "1") + 10));
        b.set_subs_account(server.clone());
        let big = b.add_account("B", AccountLimits::default());
        let small = b.add_account("S", AccountLimits { max_outbound: 1 << 20, max_subs_bytes: SUB_OVERHEAD + 10 });
        let (g, _) = client(&mut b, GLOBAL, None);
        let (c, _) = client(&mut b, big, None);
        let (s, _) = client(&mut b, small, None);
        // Ids come from one sequence across the accounts' indexes.
        b.subscribe(c, "s.1", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(g, "s.1", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(s, "s.1", None, ByteStr::from_static("1")).unwrap();
        assert_eq!((b.sub_count(), b.client_sub_count(c)), (3, 1));
        let held =
            |b: &Broker| (server.current(), b.account_stats().iter().map(|a| a.subs_bytes.0).collect::<Vec<_>>());
        let before = held(&b);
        assert_eq!(b.subscribe(s, "s.2", None, ByteStr::from_static("2")), Err(SubscribeError::AccountFull));
        assert_eq!(held(&b), before, "a SUB the account refuses holds nothing");
        assert!(matches!(b.subscribe(c, "a..b", None, ByteStr::from_static("4")), Err(SubscribeError::Invalid(_))));
        assert_eq!(held(&b), before, "an invalid SUB holds nothing");
        b.subscribe(c, "s.2", None, ByteStr::from_static("2")).expect("client.subs has room for one more");
        let before = held(&b);
        assert_eq!(b.subscribe(c, "s.3", None, ByteStr::from_static("3")), Err(SubscribeError::Memory));
        assert_eq!(held(&b), before, "a SUB client.subs refuses holds nothing");
        b.invariants();
        // Room again once the others are gone; then a client of B leaves in steps.
        b.remove_client(g);
        b.remove_client(s);
        server.set_limit(1 << 24);
        for i in 3..30 {
            b.subscribe(c, &format!("s.{i}"), None, ByteStr::from(i.to_string())).unwrap();
        }
        let mut steps = 0;
        while !b.remove_client_step(c, 10) {
            steps += 1;
            b.invariants();
        }
        assert_eq!(steps, 2);
        assert_eq!(held(&b), (0, vec![0, 0, 0]), "every charge released");
    }

    #[test]
    fn an_account_at_its_outbound_limit_cuts_only_its_own_clients() {
        let mut b = Broker::new(1, Arc::default());
        let small = b.add_account("S", AccountLimits { max_outbound: 64, max_subs_bytes: 1 << 20 });
        let (p, _) = client(&mut b, small, None);
        let (s, out) = client(&mut b, small, None);
        let (gp, _) = client(&mut b, GLOBAL, None);
        let (gs, gout) = client(&mut b, GLOBAL, None);
        b.subscribe(s, "a", None, ByteStr::from_static("1")).unwrap();
        b.subscribe(gs, "a", None, ByteStr::from_static("1")).unwrap();
        for _ in 0..10 {
            b.publish(p, &msg("a", None));
            b.publish(gp, &msg("a", None));
        }
        assert!(out.is_closed(), "the small account's subscriber is a slow consumer");
        assert!(!gout.is_closed() && gout.pending() > 64, "$G's subscriber got every message");
        assert_eq!(b.account_stats()[small].outbound.0, 0, "the aborted queue released its account");
    }

    #[test]
    fn deny_filters_delivery_and_allow_responses_opens_replies_once() {
        let mut b = Broker::new(1, Arc::default());
        let perms = Permissions {
            subscribe: Some(SubjectPerm { allow: None, deny: vec!["a.secret".into()] }),
            allow_responses: Some(ResponsePerm { max_msgs: 1 }),
            ..Permissions::default()
        }
        .normalized();
        let (s, out) = client(&mut b, GLOBAL, Some(perms));
        let (p, _) = client(&mut b, GLOBAL, None);
        b.subscribe(s, "a.*", None, ByteStr::from_static("1")).unwrap();
        assert_eq!(b.publish(p, &msg("a.secret", None)), 0, "a denied subject is not delivered");
        assert_eq!(out.pending(), 0);
        assert!(!b.may_respond(s, "_INBOX.1"), "no request seen yet");
        assert_eq!(b.publish(p, &msg("a.req", Some("_INBOX.1"))), 1);
        assert!(b.may_respond(s, "_INBOX.1"));
        assert!(!b.may_respond(s, "_INBOX.1"), "one response per request");
    }
}
