//! One client connection's protocol state machine: it takes parsed ops (and ping
//! ticks), updates the shared [`Broker`], queues replies on its own [`Outbound`]
//! and says whether the connection goes on. No I/O, no clock.

use super::auth::{Auth, ERR_AUTH_TIMEOUT, ERR_AUTH_VIOLATION, Identity, Permissions, pub_violation, sub_violation};
use super::broker::{Broker, ClientId, Message, SubscribeError};
use super::outbound::{Closed, Outbound, Push, Wakes};
use super::stats::Stats;
use crate::proto::{ClientOp, ConnectInfo, ProtoError, ServerOp};
use crate::server::route::RouteOut;
use crate::subject;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `-ERR` text for a CONNECT `protocol` other than 0 or 1 (nats-server's ErrBadClientProtocol).
pub const ERR_BAD_PROTOCOL: &str = "invalid client protocol";
/// `-ERR` text for `no_responders` without `headers` (nats-server's ErrNoRespondersRequiresHeaders).
pub const ERR_NO_RESPONDERS_NEEDS_HEADERS: &str = "no responders requires headers support";
/// `-ERR` text for a non-literal publish subject from a pedantic client (the connection stays open).
pub const ERR_INVALID_PUBLISH_SUBJECT: &str = "Invalid Publish Subject";
/// `-ERR` text sent before closing a connection that stopped answering PINGs.
pub const ERR_STALE: &str = "Stale Connection";
/// `-ERR` text sent (after INFO) to a client over `max_connections`, which is then closed
/// (nats-server's ErrTooManyConnections).
pub const ERR_MAX_CONNECTIONS: &str = "maximum connections exceeded";
/// `-ERR` text for a SUB over `max_subscriptions`; the connection stays open
/// (nats-server's ErrTooManySubs, sent by `maxSubsExceeded` without closing).
pub const ERR_MAX_SUBSCRIPTIONS: &str = "maximum subscriptions exceeded";

/// Whether the connection goes on after an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop reading; the outbound queue is closed (draining or aborted).
    Close,
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Conn {
    id: ClientId,
    out: Arc<Outbound>,
    opts: ConnectInfo,
    pings_out: u32,
    ping_max: u32,
    /// Subscribers' writers to wake after the current read batch.
    wakes: Wakes,
    /// Pressured route queues this connection's messages went to: the read loop waits
    /// for them before reading on (see [`Conn::take_route_stalls`]).
    route_stalls: Vec<Arc<RouteOut>>,
    /// Client queues this connection's messages went to that stall producers; the read
    /// loop waits for them before reading on (see [`Conn::take_client_stalls`]).
    client_stalls: Vec<Arc<Outbound>>,
    auth: Auth,
    /// The nonce INFO sent, which an NKEY user signs (empty when none was sent).
    nonce: String,
    /// No CONNECT with accepted credentials yet (always false without auth).
    awaiting_auth: bool,
    /// The user's permissions (`None`: everything allowed).
    perms: Option<Arc<Permissions>>,
    /// Most subscriptions this connection may hold (0: no limit).
    max_subs: usize,
    /// A CONNECT was accepted.
    connected: bool,
    /// The first PONG after CONNECT was sent (see [`Conn::first_pong_sent`]).
    first_pong: bool,
    /// Its `/connz` figures (from the broker at [`Conn::begin`]).
    stat: Option<Arc<super::connz::ConnStat>>,
}

impl Conn {
    /// State for client `id` (already added to the broker) writing to `out`.
    pub fn new(id: ClientId, out: Arc<Outbound>, ping_max: u32) -> Conn {
        Conn {
            id,
            out,
            opts: ConnectInfo::default(),
            pings_out: 0,
            ping_max,
            wakes: Wakes::default(),
            route_stalls: Vec::new(),
            client_stalls: Vec::new(),
            auth: Auth::None,
            nonce: String::new(),
            awaiting_auth: false,
            perms: None,
            max_subs: 0,
            connected: false,
            first_pong: false,
            stat: None,
        }
    }

    /// Limit the connection to `max` subscriptions (0: no limit).
    pub fn with_max_subscriptions(mut self, max: usize) -> Conn {
        self.max_subs = max;
        self
    }

    /// Require the client to authenticate with `auth` in its first op, a CONNECT (unless
    /// `auth` has a `no_auth_user`); `nonce` is what INFO sent for NKEY users to sign.
    pub fn with_auth(mut self, auth: Auth, nonce: String) -> Conn {
        self.awaiting_auth = auth.connect_first();
        self.auth = auth;
        self.nonce = nonce;
        self
    }

    /// Put the new connection in its identity before any op: the default account, or
    /// the `no_auth_user`'s account and permissions.
    pub fn begin(&mut self, broker: &mut Broker) {
        self.stat = broker.conn_stat(self.id);
        let identity = self.auth.default_identity();
        self.apply_identity(identity, broker);
    }

    /// Move the connection to `identity`; false if its account does not exist.
    fn apply_identity(&mut self, identity: Identity, broker: &mut Broker) -> bool {
        let Some(account) = broker.account_id(&identity.account) else {
            tracing::warn!(client = self.id, account = %identity.account, "user's account is not configured");
            return false;
        };
        broker.set_identity(self.id, account, identity.permissions.clone());
        self.perms = identity.permissions;
        true
    }

    /// Its `/connz` figures (once [`Conn::begin`] ran).
    pub fn stat(&self) -> Option<&Arc<super::connz::ConnStat>> {
        self.stat.as_ref()
    }

    /// Whether a CONNECT was accepted.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Whether the first PONG after an accepted CONNECT went out: async INFOs wait for
    /// it (a client in its handshake takes any INFO before that PONG for the PONG).
    pub fn first_pong_sent(&self) -> bool {
        self.first_pong
    }

    /// No CONNECT with accepted credentials yet.
    pub fn awaiting_auth(&self) -> bool {
        self.awaiting_auth
    }

    /// Before parsing: while awaiting auth, the next op must be a CONNECT. Like nats-server,
    /// judge that by its first byte, so that garbage gets the auth error, not a parse error.
    pub fn check_op_start(&self, buf: &[u8]) -> Flow {
        match buf.first() {
            Some(b) if self.awaiting_auth && !b.eq_ignore_ascii_case(&b'c') => self.err_and_close(ERR_AUTH_VIOLATION),
            _ => Flow::Continue,
        }
    }

    /// No CONNECT arrived in time.
    pub fn auth_timeout(&self) -> Flow {
        self.err_and_close(ERR_AUTH_TIMEOUT)
    }

    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    fn send(&self, op: &ServerOp) -> Flow {
        match self.out.push(op) {
            Push::Queued | Push::Dropped => Flow::Continue,
            Push::Closed | Push::SlowConsumer => Flow::Close,
        }
    }

    fn ok(&self) -> Flow {
        if self.opts.verbose { self.send(&ServerOp::Ok) } else { Flow::Continue }
    }

    fn err(&self, text: &str) -> Flow {
        self.send(&ServerOp::Err(text.to_owned()))
    }

    /// The authorization changed (a config reload): check this connection's CONNECT
    /// again against `auth`, as nats-server re-checks its clients on reload. Credentials
    /// no longer accepted, or a user now in another account (its subscriptions live in
    /// the old one), close the connection without an `-ERR`, as nats-server 2.15.1 does;
    /// otherwise the user's new permissions apply from now on. A connection still
    /// waiting for its CONNECT is checked against `auth` when it comes.
    pub fn recheck_auth(&mut self, auth: Auth, broker: &mut Broker) -> Flow {
        self.auth = auth;
        if self.awaiting_auth || !self.connected {
            return Flow::Continue;
        }
        let identity = self.auth.check(&self.opts, &self.nonce);
        let same_account =
            identity.as_ref().and_then(|i| broker.account_id(&i.account)) == broker.client_account(self.id);
        if let Some(identity) = identity.filter(|_| same_account)
            && self.apply_identity(identity, broker)
        {
            return Flow::Continue;
        }
        tracing::debug!(client = self.id, "authorization revoked by a reload");
        self.out.close(Closed::Drain);
        Flow::Close
    }

    fn err_and_close(&self, text: &str) -> Flow {
        self.err(text);
        self.out.close(Closed::Drain);
        Flow::Close
    }

    /// Apply one parsed op.
    pub fn handle(&mut self, op: ClientOp, broker: &mut Broker, stats: &Stats) -> Flow {
        if self.awaiting_auth && !matches!(op, ClientOp::Connect(_)) {
            return self.err_and_close(ERR_AUTH_VIOLATION);
        }
        match op {
            ClientOp::Connect(info) => self.connect(*info, broker),
            ClientOp::Ping => {
                let flow = self.send(&ServerOp::Pong);
                if self.connected && !self.first_pong {
                    // As nats-server's `firstPongSent`: from now on an async INFO cannot
                    // be mistaken for the handshake's PONG (async-nats would drop it).
                    self.first_pong = true;
                    broker.first_pong_sent(self.id);
                }
                flow
            }
            ClientOp::Pong => {
                self.pings_out = 0;
                Flow::Continue
            }
            // As nats-server, the limit is checked before the sid: at the limit even a
            // repeated sid gets the error.
            // As nats-server, permissions are checked before the subscription limit.
            ClientOp::Sub { subject, queue, .. } if self.perms.as_ref().is_some_and(|p| !p.can_subscribe(&subject)) => {
                tracing::warn!(client = self.id, %subject, "subscription violation");
                self.err(&sub_violation(&subject, queue.as_deref()))
            }
            ClientOp::Sub { .. } if self.max_subs > 0 && broker.client_sub_count(self.id) >= self.max_subs => {
                tracing::warn!(client = self.id, max = self.max_subs, "maximum subscriptions exceeded");
                self.err(ERR_MAX_SUBSCRIPTIONS)
            }
            ClientOp::Sub { subject, queue, sid } => match broker.subscribe(self.id, &subject, queue.as_deref(), sid) {
                Ok(()) => self.ok(),
                Err(SubscribeError::Invalid(_)) => self.err("Invalid Subject"),
                Err(SubscribeError::Memory) => {
                    // The server-wide `client.subs` account is full: as the per-connection limit.
                    tracing::warn!(client = self.id, "subscription memory limit reached");
                    self.err(ERR_MAX_SUBSCRIPTIONS)
                }
                Err(SubscribeError::AccountFull) => {
                    tracing::warn!(client = self.id, "account subscription memory full");
                    self.err(ERR_MAX_SUBSCRIPTIONS)
                }
            },
            ClientOp::Unsub { sid, max } => {
                broker.unsubscribe(self.id, &sid, max);
                self.ok()
            }
            ClientOp::Pub { subject, reply, payload } => {
                self.publish(Message { subject, reply, headers: None, payload }, broker, stats)
            }
            ClientOp::HPub { subject, reply, headers, payload } => {
                if !self.opts.headers {
                    // nats-server treats this as a protocol violation: it closes without an `-ERR`.
                    self.out.close(Closed::Drain);
                    return Flow::Close;
                }
                // What the block holds decides the form: an empty block (`HPUB s 0 n`) is a
                // message without headers, delivered as `MSG` (as nats-server: headers only
                // when the header length is above 0).
                let headers = Some(headers).filter(|h| !h.is_empty());
                self.publish(Message { subject, reply, headers, payload }, broker, stats)
            }
        }
    }

    fn connect(&mut self, mut info: ConnectInfo, broker: &mut Broker) -> Flow {
        // nats-server decodes a repeated CONNECT over the previous one, so credentials it
        // leaves out are still those of the first.
        info.auth_token = info.auth_token.or_else(|| self.opts.auth_token.take());
        info.user = info.user.or_else(|| self.opts.user.take());
        info.pass = info.pass.or_else(|| self.opts.pass.take());
        info.nkey = info.nkey.or_else(|| self.opts.nkey.take());
        info.sig = info.sig.or_else(|| self.opts.sig.take());
        info.jwt = info.jwt.or_else(|| self.opts.jwt.take());
        let Some(identity) = self.auth.check(&info, &self.nonce) else {
            return self.err_and_close(ERR_AUTH_VIOLATION);
        };
        let user = identity.user.clone();
        if !self.apply_identity(identity, broker) {
            return self.err_and_close(ERR_AUTH_VIOLATION);
        }
        self.awaiting_auth = false;
        if info.protocol != 0 && info.protocol != 1 {
            return self.err_and_close(ERR_BAD_PROTOCOL);
        }
        if info.no_responders && !info.headers {
            return self.err_and_close(ERR_NO_RESPONDERS_NEEDS_HEADERS);
        }
        broker.set_options(self.id, info.headers, info.echo, info.no_responders);
        if let Some(st) = &self.stat {
            st.update_meta(|m| {
                m.name = info.name.clone().unwrap_or_default();
                m.lang = info.lang.clone().unwrap_or_default();
                m.version = info.version.clone().unwrap_or_default();
                m.user = user;
            });
        }
        self.connected = true;
        self.opts = info;
        self.ok()
    }

    fn publish(&mut self, msg: Message, broker: &mut Broker, stats: &Stats) -> Flow {
        let size = msg.payload.len() + msg.headers.as_ref().map_or(0, |h| h.len());
        stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        stats.in_bytes.fetch_add(size as u64, Ordering::Relaxed);
        if let Some(st) = &self.stat {
            st.count_in(size as u64);
        }
        // Like nats-server: pedantic clients get an error for a non-literal subject, but the
        // message is still acknowledged and routed, its tokens matched literally.
        if self.opts.pedantic && !subject::is_valid_literal(&msg.subject) {
            self.err(ERR_INVALID_PUBLISH_SUBJECT);
        }
        // As nats-server: a refused publish gets an `-ERR` (no `+OK`) and goes nowhere;
        // the connection stays open. With `allow_responses`, a reply to a request this
        // client received is allowed.
        if let Some(p) = &self.perms
            && !p.can_publish(&msg.subject)
            && !broker.may_respond(self.id, &msg.subject)
        {
            tracing::warn!(client = self.id, subject = %msg.subject, "publish violation");
            return self.err(&pub_violation(&msg.subject));
        }
        if self.ok() == Flow::Close {
            return Flow::Close;
        }
        broker.publish_deferred(self.id, &msg, &mut self.wakes);
        self.route_stalls.extend(broker.take_route_stalls());
        self.client_stalls.extend(broker.take_client_stalls());
        // Our own slow-consumer disconnect (by echo) shows up as a closed queue.
        if self.out.is_closed() { Flow::Close } else { Flow::Continue }
    }

    /// Whether a message of this connection went to a pressured route queue since the
    /// last [`Conn::take_route_stalls`], or to a client queue that stalls producers
    /// since the last [`Conn::take_client_stalls`]: the read loop stops applying ops and waits.
    pub fn stalled(&self) -> bool {
        !self.route_stalls.is_empty() || !self.client_stalls.is_empty()
    }

    /// The client queues to wait for (bounded by `max_producer_stall`; see `outbound`),
    /// once the broker lock is released.
    pub fn take_client_stalls(&mut self) -> Vec<Arc<Outbound>> {
        std::mem::take(&mut self.client_stalls)
    }

    /// The pressured route queues to wait for (bounded; see the route stack's
    /// "Publishers first"), once the broker lock is released.
    pub fn take_route_stalls(&mut self) -> Vec<Arc<RouteOut>> {
        std::mem::take(&mut self.route_stalls)
    }

    /// Wake the writers of everyone this connection published to since the last call;
    /// call after each read batch (once the broker lock is released).
    pub fn wake_subscribers(&mut self) {
        self.wakes.wake_all();
    }

    /// Report a parse error: send its `-ERR` (if any) and close when the error demands it.
    pub fn proto_error(&mut self, e: &ProtoError) -> Flow {
        if let Some(op) = e.to_server_op() {
            self.send(&op);
        }
        if e.closes_connection() {
            self.out.close(Closed::Drain);
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    /// The ping timer fired: send a PING, or close a connection with too many unanswered
    /// (counted in `stats.stale_connections` before the `-ERR` is queued).
    pub fn ping_tick(&mut self, stats: &Stats) -> Flow {
        if self.pings_out + 1 > self.ping_max {
            stats.stale_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.err_and_close(ERR_STALE);
        }
        self.pings_out += 1;
        self.send(&ServerOp::Ping)
    }
}
