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

use super::js::{JsHandle, MAX_CASCADE, Outs};
use super::outbound::{Closed, Outbound, Push, Wakes};
use super::stats::Stats;
use crate::jetstream::engine::JsOut;
use crate::mem::Account;
use crate::proto::{self, ByteStr, no_responders_msg};
use crate::server::route::{RouteOut, RoutePush, encode_interest, encode_msg};
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

/// What the broker knows about one client.
#[derive(Debug)]
struct Client {
    out: Arc<Outbound>,
    /// Negotiated in CONNECT; until then false, so `HMSG` is stripped to `MSG`.
    headers: bool,
    echo: bool,
    no_responders: bool,
    /// Its subscriptions by sid; the sid is shared with [`Sub::sid`].
    sids: BTreeMap<Arc<str>, SubId>,
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

/// A (subject, queue) interest pair.
type InterestKey = (String, Option<String>);

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
}

/// Routing state shared by all connections of one server.
#[derive(Debug)]
pub struct Broker {
    /// Every local subscription; the value is its own id, the key of `subs`.
    index: SubIndex<SubId>,
    subs: BTreeMap<SubId, Sub>,
    clients: BTreeMap<ClientId, Client>,
    next_client: ClientId,
    rng: ChaCha8Rng,
    stats: Arc<Stats>,
    /// Local subscription counts per (subject, queue), announced to peers.
    interest: BTreeMap<InterestKey, u32>,
    /// Every peer's interest; the value is the peer's server id.
    remote: SubIndex<Arc<str>>,
    peers: BTreeMap<Arc<str>, Peer>,
    /// The JetStream engine, when enabled.
    js: Option<Arc<JsHandle>>,
    /// Subjects whose local interest JetStream watches (push consumers' deliver
    /// subjects): how many consumers watch each, and the interest last reported.
    watched: BTreeMap<String, (u32, bool)>,
    /// The ledger's `client.subs` account, charged [`sub_cost`] per local subscription.
    subs_account: Option<Arc<Account>>,
}

/// What one local subscription costs in memory, in bytes, as charged to `client.subs`:
/// the subject index, the subscription table and the client's sid map together
/// (`core/examples/subindex_bench.rs` measures ~600 bytes of heap for a 16-byte subject
/// and a short sid, ~700 with malloc's rounding), plus the subject and sid themselves.
pub fn sub_cost(subject: &str, sid: &str) -> u64 {
    (SUB_OVERHEAD + 2 * subject.len() + 2 * sid.len()) as u64
}

/// The fixed part of [`sub_cost`].
const SUB_OVERHEAD: usize = 640;

/// Why a SUB was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// The subject or queue is not valid (`-ERR 'Invalid Subject'`).
    Invalid(String),
    /// The `client.subs` account is full (`-ERR 'maximum subscriptions exceeded'`).
    Memory,
}

impl Broker {
    /// An empty broker whose queue-group picks draw from `seed`.
    pub fn new(seed: u64, stats: Arc<Stats>) -> Broker {
        Broker {
            index: SubIndex::new(),
            subs: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats,
            interest: BTreeMap::new(),
            remote: SubIndex::new(),
            peers: BTreeMap::new(),
            js: None,
            watched: BTreeMap::new(),
            subs_account: None,
        }
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
        self.clients
            .insert(id, Client { out, headers: false, echo: true, no_responders: false, sids: BTreeMap::new() });
        id
    }

    /// Record what a client negotiated in CONNECT.
    pub fn set_options(&mut self, id: ClientId, headers: bool, echo: bool, no_responders: bool) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.headers = headers;
            c.echo = echo;
            c.no_responders = no_responders;
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
        let mut keys = Vec::new();
        while keys.len() < max {
            let Some((_, key)) = c.sids.pop_first() else { break };
            keys.push(key);
        }
        let done = c.sids.is_empty();
        for key in keys {
            if let Some(sub) = self.subs.remove(&key) {
                self.unindex(key, &sub.sid);
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
    /// Errors: an invalid subject or queue, or the `client.subs` account is full.
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
        let cost = sub_cost(subject, &sid);
        if self.subs_account.as_ref().is_some_and(|a| !a.try_charge(cost)) {
            return Err(SubscribeError::Memory);
        }
        let key = self.index.next_id();
        let sub_id = match self.index.insert(subject, queue, key) {
            Ok(id) => id,
            Err(e) => {
                if let Some(a) = &self.subs_account {
                    a.release(cost);
                }
                return Err(SubscribeError::Invalid(e.to_string()));
            }
        };
        debug_assert_eq!(sub_id, key, "SubIndex::next_id");
        let sid: Arc<str> = Arc::from(&*sid);
        self.subs.insert(key, Sub { client: id, sid: sid.clone(), max: None, delivered: 0 });
        if let Some(c) = self.clients.get_mut(&id) {
            c.sids.insert(sid, key);
        }
        self.interest_up(subject.to_owned(), queue.map(str::to_owned));
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
            if let Some(c) = self.clients.get_mut(&sub.client) {
                c.sids.remove(&sub.sid);
            }
            self.unindex(key, &sub.sid);
        }
        self.invariants();
    }

    /// Take subscription `key` (with `sid`) out of the index, release its charge and
    /// lower its (subject, queue) interest.
    fn unindex(&mut self, key: SubId, sid: &str) {
        let Some((subject, queue)) = self.index.subscription(key).map(|(s, q)| (s.to_owned(), q.map(str::to_owned)))
        else {
            return;
        };
        self.index.remove(key);
        if let Some(a) = &self.subs_account {
            a.release(sub_cost(&subject, sid));
        }
        self.interest_down(subject, queue);
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
        assert_eq!(self.index.len(), self.subs.len(), "trie vs subscriptions");
        let announced: u64 = self.interest.values().map(|&n| n as u64).sum();
        assert_eq!(announced, self.subs.len() as u64, "interest counts vs subscriptions");
        let remote: usize = self.peers.values().map(|p| p.subs.len()).sum();
        assert_eq!(remote, self.remote.len(), "peers' interest vs remote trie");
        if !(cfg!(test) || self.subs.len() <= 1024) {
            return;
        }
        let mut counts: BTreeMap<(&str, Option<&str>), u32> = BTreeMap::new();
        for (key, sub) in &self.subs {
            let client = self.clients.get(&sub.client).expect("a subscription's client is connected");
            assert_eq!(client.sids.get(&sub.sid), Some(key), "sid {} of client {}", sub.sid, sub.client);
            assert_eq!(self.index.get(*key), Some(key), "subscription {key} is in the trie");
            assert!(sub.max.is_none_or(|m| sub.delivered < m), "an exhausted auto-unsubscribe was kept");
            let (subject, queue) = self.index.subscription(*key).expect("checked above");
            *counts.entry((subject, queue)).or_default() += 1;
        }
        assert_eq!(counts.len(), self.interest.len(), "announced interest pairs");
        for ((subject, queue), n) in &self.interest {
            assert!(*n > 0, "zero interest count kept for {subject}");
            assert_eq!(counts.get(&(subject.as_str(), queue.as_deref())), Some(n), "interest count of {subject}");
        }
        for p in self.peers.values() {
            for id in p.subs.values() {
                assert!(self.remote.get(*id).is_some(), "peer interest {id} missing from the remote trie");
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
        if let Some(js) = self.js.clone()
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
            let active = self.index.interest(&subject);
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
        let mut changes: Vec<(String, bool)> = Vec::new();
        for (s, (_, active)) in self.watched.iter_mut() {
            if subject::matches(pattern, s) {
                let now = self.index.interest(s);
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
            && !self.index.interest(pattern)
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
        let m = self.index.matching(to);
        let mut targets = m.plain.clone();
        targets.extend(m.pick_queue_members(&mut self.rng).into_iter().copied());
        self.deliver(msg, targets, wakes)
    }

    /// Route `msg` from `from` to local subscribers and route peers, without JetStream.
    fn route_plain(&mut self, from: ClientId, msg: &Message, wakes: &mut Wakes) -> usize {
        let echo = self.clients.get(&from).is_none_or(|c| c.echo);
        let subs = &self.subs;
        let not_own = |k: &SubId| echo || subs.get(k).is_none_or(|s| s.client != from);
        let mut m = self.index.matching(&msg.subject);
        m.plain.retain(not_own);
        for members in m.queues.values_mut() {
            members.retain(not_own);
        }
        let mut targets = m.plain.clone();
        targets.extend(m.pick_queue_members(&mut self.rng).into_iter().copied());
        let served: BTreeSet<&str> = m.queues.iter().filter(|(_, v)| !v.is_empty()).map(|(q, _)| &**q).collect();
        let delivered = self.forward(msg, &served);
        delivered + self.deliver(msg, targets, wakes)
    }

    /// Send `msg` to every peer with matching plain interest, and for each matching
    /// queue group not in `served` to one peer with members. Returns the peers sent to.
    fn forward(&mut self, msg: &Message, served: &BTreeSet<&str>) -> usize {
        if self.remote.is_empty() {
            return 0;
        }
        let m = self.remote.matching_refs(&msg.subject);
        let peers = &self.peers;
        let up = |p: &Arc<str>| peers.get(p).is_some_and(|p| p.out.is_some());
        let mut sends: BTreeMap<&Arc<str>, Vec<&str>> = BTreeMap::new();
        for p in m.plain.iter().copied().filter(|p| up(p)) {
            sends.entry(p).or_default();
        }
        for (queue, members) in &m.queues {
            if served.contains(&**queue) {
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
        for (peer, queues) in sends {
            let Some((_, out)) = self.peers.get(peer).and_then(|p| p.out.as_ref()) else { continue };
            // An empty header block arrives here as `None` (the client connection drops it),
            // and the receiving server encodes deliveries with `proto::encode_msg`, which
            // treats an empty block as none; the route frame itself should follow the same
            // rule for other producers (note for the route layer's owner).
            let Some(frame) =
                encode_msg(&msg.subject, msg.reply.as_deref(), msg.headers.as_ref(), &msg.payload, &queues)
            else {
                continue;
            };
            if out.push_msg(frame) == RoutePush::Queued {
                sent += 1;
                self.stats.route_out_msgs.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    }

    /// Queue `msg` to each subscription in `targets`, closing slow consumers and
    /// finishing auto-unsubscribes. Returns how many were queued.
    /// The writers are woken by `wakes` (see [`Outbound::push_deferred`]).
    fn deliver(&mut self, msg: &Message, targets: Vec<SubId>, wakes: &mut Wakes) -> usize {
        let (mut delivered, mut out_bytes) = (0, 0);
        let mut slow = Vec::new();
        for key in targets {
            let Some(sub) = self.subs.get_mut(&key) else { continue };
            let Some(client) = self.clients.get(&sub.client) else { continue };
            // MSG/HMSG straight from the message's parts; a subscriber without headers gets them stripped.
            let headers = msg.headers.as_deref().filter(|_| client.headers);
            let encode =
                |b: &mut _| proto::encode_msg(b, &msg.subject, &sub.sid, msg.reply.as_deref(), headers, &msg.payload);
            match client.out.push_deferred(encode, wakes) {
                Push::Queued => {
                    delivered += 1;
                    out_bytes += (msg.payload.len() + headers.map_or(0, <[u8]>::len)) as u64;
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
        let m = self.index.matching_refs(reply);
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
    fn interest_up(&mut self, subject: String, queue: Option<String>) {
        let n = self.interest.entry((subject.clone(), queue.clone())).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.announce(true, &subject, queue.as_deref());
            self.js_interest_changed(&subject, true);
        }
    }

    /// One less local subscription on (subject, queue): peers hear when none is left.
    fn interest_down(&mut self, subject: String, queue: Option<String>) {
        let key = (subject, queue);
        let Some(n) = self.interest.get_mut(&key) else { return };
        *n -= 1;
        if *n == 0 {
            self.interest.remove(&key);
            self.announce(false, &key.0, key.1.as_deref());
            self.js_interest_changed(&key.0, false);
        }
    }

    fn announce(&self, sub: bool, subject: &str, queue: Option<&str>) {
        let mut frame = None;
        for p in self.peers.values() {
            if let Some((_, out)) = &p.out {
                let f = frame.get_or_insert_with(|| encode_interest(sub, subject, queue)).clone();
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
        for (subject, queue) in self.interest.keys() {
            if out.push_control(encode_interest(true, subject, queue.as_deref())) == RoutePush::Closed {
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
        let ids: Vec<SubId> = std::mem::take(&mut peer.subs).into_values().collect();
        for id in ids {
            self.remote.remove(id);
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
        for id in std::mem::take(&mut p.subs).into_values() {
            self.remote.remove(id);
        }
        self.forget_if_idle(server_id);
        self.invariants();
    }

    fn forget_if_idle(&mut self, server_id: &str) {
        if self.peers.get(server_id).is_some_and(|p| p.out.is_none() && p.inbound.is_none()) {
            self.peers.remove(server_id);
        }
    }

    /// Apply an interest change from peer `server_id` on connection `conn`.
    /// An invalid subject or queue is an error (the connection should end).
    pub fn route_interest(
        &mut self,
        server_id: &str,
        conn: RouteConnId,
        sub: bool,
        subject: String,
        queue: Option<String>,
    ) -> Result<(), String> {
        let Some((id, p)) = self.peers.get_key_value(server_id) else { return Ok(()) };
        if p.inbound != Some(conn) {
            return Ok(());
        }
        let id = id.clone();
        let key = (subject, queue);
        let p = self.peers.get_mut(server_id).expect("looked up above");
        if sub {
            if let std::collections::btree_map::Entry::Vacant(e) = p.subs.entry(key) {
                let (subject, queue) = e.key();
                let sub_id = self.remote.insert(subject, queue.as_deref(), id).map_err(|e| e.to_string())?;
                e.insert(sub_id);
            }
        } else if let Some(sub_id) = p.subs.remove(&key) {
            self.remote.remove(sub_id);
        }
        self.invariants();
        Ok(())
    }

    /// Deliver a message that peer `server_id` sent on `conn` to local clients only:
    /// every matching plain subscription, and one local member of each group in
    /// `queues`. Returns how many deliveries were queued.
    pub fn route_msg(&mut self, server_id: &str, conn: RouteConnId, msg: &Message, queues: &[String]) -> usize {
        if self.peers.get(server_id).is_none_or(|p| p.inbound != Some(conn)) {
            return 0;
        }
        self.stats.route_in_msgs.fetch_add(1, Ordering::Relaxed);
        let m = self.index.matching(&msg.subject);
        let mut targets = m.plain;
        for q in queues {
            if let Some(members) = m.queues.get(q.as_str())
                && !members.is_empty()
            {
                targets.push(members[self.rng.gen_range(0..members.len())]);
            }
        }
        let mut wakes = Wakes::default();
        let n = self.deliver(msg, targets, &mut wakes);
        wakes.wake_all();
        n
    }

    /// Number of peers we have a route connection to.
    pub fn route_count(&self) -> usize {
        self.peers.values().filter(|p| p.out.is_some()).count()
    }

    /// Number of (subject, queue) pairs of remote interest held.
    pub fn remote_interest_count(&self) -> usize {
        self.remote.len()
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
