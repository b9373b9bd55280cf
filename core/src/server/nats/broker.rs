//! The shared routing state of a NATS server: every client's subscriptions in one
//! [`SubIndex`], each client's outbound queue, the queue-group RNG and counters.
//!
//! It is synchronous and does no I/O: publishing encodes `MSG`/`HMSG` straight onto
//! the subscribers' [`Outbound`] queues, and the async shell owns the sockets.

use super::outbound::{Closed, Outbound, Push, Wakes};
use super::stats::Stats;
use crate::proto::{ByteStr, encode_msg, no_responders_msg};
use crate::subject::{self, SubId, SubIndex};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A client connection's id, unique for the life of a server.
pub type ClientId = u64;

/// What the broker knows about one client.
#[derive(Debug)]
struct Client {
    out: Arc<Outbound>,
    /// Negotiated in CONNECT; until then false, so `HMSG` is stripped to `MSG`.
    headers: bool,
    echo: bool,
    no_responders: bool,
    sids: BTreeMap<ByteStr, u64>,
}

/// One subscription.
#[derive(Debug)]
struct Sub {
    client: ClientId,
    sid: ByteStr,
    id: SubId,
    subject: String,
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
    /// Raw header block, if the message has headers.
    pub headers: Option<Bytes>,
    /// Body.
    pub payload: Bytes,
}

/// Routing state shared by all connections of one server.
#[derive(Debug)]
pub struct Broker {
    index: SubIndex<u64>,
    subs: BTreeMap<u64, Sub>,
    clients: BTreeMap<ClientId, Client>,
    next_key: u64,
    next_client: ClientId,
    rng: ChaCha8Rng,
    stats: Arc<Stats>,
}

impl Broker {
    /// An empty broker whose queue-group picks draw from `seed`.
    pub fn new(seed: u64, stats: Arc<Stats>) -> Broker {
        Broker {
            index: SubIndex::new(),
            subs: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_key: 0,
            next_client: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats,
        }
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

    /// Forget a client and all its subscriptions.
    pub fn remove_client(&mut self, id: ClientId) {
        if let Some(c) = self.clients.remove(&id) {
            for key in c.sids.into_values() {
                if let Some(sub) = self.subs.remove(&key) {
                    self.index.remove(sub.id);
                }
            }
        }
    }

    /// Every connected client's outbound queue.
    pub fn outbounds(&self) -> Vec<Arc<Outbound>> {
        self.clients.values().map(|c| c.out.clone()).collect()
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Number of subscriptions.
    pub fn sub_count(&self) -> usize {
        self.subs.len()
    }

    /// Subscribe; a sid the client already uses is left as it is.
    pub fn subscribe(&mut self, id: ClientId, subject: &str, queue: Option<&str>, sid: ByteStr) -> Result<(), String> {
        let Some(c) = self.clients.get(&id) else { return Ok(()) };
        if c.sids.contains_key(&sid) {
            return Ok(());
        }
        let key = self.next_key;
        let sub_id = self.index.insert(subject, queue, key).map_err(|e| e.to_string())?;
        self.next_key += 1;
        self.subs.insert(
            key,
            Sub { client: id, sid: sid.clone(), id: sub_id, subject: subject.to_owned(), max: None, delivered: 0 },
        );
        if let Some(c) = self.clients.get_mut(&id) {
            c.sids.insert(sid, key);
        }
        Ok(())
    }

    /// Unsubscribe now (`max` `None` or 0) or once `max` messages in total have been delivered.
    pub fn unsubscribe(&mut self, id: ClientId, sid: &ByteStr, max: Option<u64>) {
        let Some(&key) = self.clients.get(&id).and_then(|c| c.sids.get(sid)) else { return };
        match max.filter(|&m| m > 0) {
            Some(m) if self.subs.get(&key).is_some_and(|s| s.delivered < m) => {
                if let Some(s) = self.subs.get_mut(&key) {
                    s.max = Some(m);
                }
            }
            _ => self.remove_sub(key),
        }
    }

    fn remove_sub(&mut self, key: u64) {
        if let Some(sub) = self.subs.remove(&key) {
            self.index.remove(sub.id);
            if let Some(c) = self.clients.get_mut(&sub.client) {
                c.sids.remove(&sub.sid);
            }
        }
    }

    /// Route `msg` from client `from` to every matching subscription (one member per
    /// queue group) and answer with a no-responders status if nothing received a request.
    /// Returns how many deliveries were queued.
    pub fn publish(&mut self, from: ClientId, msg: &Message) -> usize {
        let mut wakes = Wakes::default();
        let n = self.publish_deferred(from, msg, &mut wakes);
        wakes.wake_all();
        n
    }

    /// [`Broker::publish`], leaving the subscribers' writers for the caller to wake with `wakes`.
    pub fn publish_deferred(&mut self, from: ClientId, msg: &Message, wakes: &mut Wakes) -> usize {
        let echo = self.clients.get(&from).is_none_or(|c| c.echo);
        let subs = &self.subs;
        let not_own = |k: &u64| echo || subs.get(k).is_none_or(|s| s.client != from);
        let mut m = self.index.matching(&msg.subject);
        m.plain.retain(not_own);
        for members in m.queues.values_mut() {
            members.retain(not_own);
        }
        let picked: Vec<u64> = m.pick_queue_members(&mut self.rng).into_iter().copied().collect();
        let mut targets = m.plain;
        targets.extend(picked);

        let (mut delivered, mut out_bytes) = (0, 0);
        let mut slow = Vec::new();
        for key in targets {
            let Some(sub) = self.subs.get_mut(&key) else { continue };
            let Some(client) = self.clients.get(&sub.client) else { continue };
            let headers = msg.headers.as_deref().filter(|_| client.headers);
            let encode = |b: &mut _| encode_msg(b, &msg.subject, &sub.sid, msg.reply.as_deref(), headers, &msg.payload);
            match client.out.push_deferred(encode, wakes) {
                Push::Queued => {
                    delivered += 1;
                    out_bytes += (msg.payload.len() + headers.map_or(0, <[u8]>::len)) as u64;
                }
                Push::Closed => {}
                Push::SlowConsumer => slow.push(sub.client),
            }
            sub.delivered += 1;
            if sub.max.is_some_and(|m| sub.delivered >= m) {
                self.remove_sub(key);
            }
        }
        for id in slow {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = id, "slow consumer: max pending exceeded, closing");
            self.remove_client(id);
        }
        if delivered == 0 {
            self.no_responders(from, msg);
        } else {
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
        let sid = c.sids.iter().find_map(|(sid, key)| {
            self.subs.get(key).filter(|s| subject::matches(&s.subject, reply)).map(|_| sid.clone())
        });
        if let Some(sid) = sid
            && c.out.push(&no_responders_msg(reply.clone(), sid, &msg.subject)) == Push::SlowConsumer
        {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            self.remove_client(from);
        }
    }

    /// Close every client's queue, letting what is queued drain.
    pub fn drain_all(&self) {
        for c in self.clients.values() {
            c.out.close(Closed::Drain);
        }
    }
}
