//! The async shell: an accept loop, and per connection a reader (the connection
//! task, feeding [`Conn`]) and a writer task (draining its [`Outbound`]).

use super::broker::{Broker, REMOVE_STEP};
use super::cluster::BrokerRoutes;
use super::config::{NatsConfig, WEIR_VERSION};
use super::conn::{Conn, ERR_MAX_CONNECTIONS, Flow};
use super::connz::{Clock, Connz, ConnzOptions, RouteInfo, Routez, Subsz, SubszOptions};
use super::discovery::ClientUrls;
use super::js::{self, JsHandle, Outs};
use super::jsz::{self, Jsz, JszOptions};
use super::outbound::{Closed, Outbound, OutboundPool, Wakes};
use super::readbuf::{Prepared, ReadBuf, ReadBufs};
use super::stats::Stats;
use super::varz::{MemAccount, Varz};
use crate::mem::{Account, Ledger, names};
use crate::proto::{ClientParser, ParserConfig, ServerInfo, ServerOp};
use crate::server::link::LinkWrap;
use crate::server::route::{Handlers, RouteOut, Routes};
use crate::server::scope::{Scope, ScopeHandle};
use crate::server::tls::{RouteTls, ServerTls};
use crate::timer::{Missed, Ticker};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};

/// A ledger holding the `client.outbound` account with `limit` bytes.
pub fn ledger(limit: u64) -> Arc<Ledger> {
    Arc::new(Ledger::new(&[(names::CLIENT_OUTBOUND, limit)]))
}

/// A ledger for a clustered server: `client.outbound` and `route.outbound` accounts.
pub fn cluster_ledger(client_limit: u64, route_limit: u64) -> Arc<Ledger> {
    Arc::new(Ledger::new(&[(names::CLIENT_OUTBOUND, client_limit), (names::ROUTE_OUTBOUND, route_limit)]))
}

/// The ledger a server with `cfg` needs: `client.outbound` at `cfg.max_outbound_total`
/// (at least `max_pending`), `client.subs` and `client.buffers` at their defaults, `route.outbound` when clustered, and the JetStream engine's
/// accounts (at the registry's default limits) when JetStream is on.
pub fn ledger_for(cfg: &NatsConfig) -> Arc<Ledger> {
    let mut accounts = vec![
        (names::CLIENT_OUTBOUND, cfg.max_outbound_total.max(cfg.max_pending)),
        (names::CLIENT_SUBS, crate::mem::spec(names::CLIENT_SUBS).default_limit),
        (names::CLIENT_BUFFERS, crate::mem::spec(names::CLIENT_BUFFERS).default_limit),
    ];
    if cfg.cluster.is_some() {
        accounts.push((names::ROUTE_OUTBOUND, super::cluster::DEFAULT_ROUTE_OUTBOUND_TOTAL));
    }
    if cfg.jetstream.is_some() {
        accounts.extend(js::JETSTREAM_ACCOUNTS.iter().map(|n| (*n, crate::mem::spec(n).default_limit)));
    }
    Arc::new(Ledger::new(&accounts))
}

/// State shared by the accept loop, every connection and monitoring.
pub(super) struct Shared {
    /// The running configuration; [`Reloader::reload`] swaps it (see [`Shared::cfg`]).
    cfg: Mutex<Arc<NatsConfig>>,
    pub(super) server_id: String,
    addr: SocketAddr,
    /// The broker, under parking_lot's lock: its unlocks turn fair when a waiter has
    /// waited over 0.5 ms, and the read loop hands it over fairly after each bounded
    /// step, so a client applying many ops cannot hold the others off (issue 9, fault 2).
    broker: parking_lot::Mutex<Broker>,
    stats: Arc<Stats>,
    ledger: Arc<Ledger>,
    /// Client TLS, when configured; a reload swaps it (certificate rotation, see
    /// [`Shared::client_tls`]).
    tls: Mutex<Option<Arc<ServerTls>>>,
    account: Arc<Account>,
    /// Every client's read buffer, charging `client.buffers` (an unlimited account of its
    /// own when the ledger has none).
    read_bufs: Arc<ReadBufs>,
    /// Every client's queue, so that at the `client.outbound` limit the largest are cut.
    pool: Arc<OutboundPool>,
    /// The route stack, when clustered.
    routes: Option<Arc<Routes>>,
    /// The JetStream engine, when enabled (its lock is taken after the broker's, never before).
    js: Option<Arc<JsHandle>>,
    /// Draws the per-connection INFO `nonce` for NKEY users (seeded from the config's seed).
    nonces: Mutex<ChaCha8Rng>,
    /// The cluster's client URLs (see [`super::discovery`]); taken with no other lock held.
    urls: Mutex<ClientUrls>,
    /// Signalled to enter lame-duck mode (see [`LameDuck`]).
    ldm: Arc<Notify>,
    /// In lame-duck mode: INFO carries `ldm`.
    lame: AtomicBool,
    /// Bumped by a reload that changed the authorization: each connection checks its
    /// CONNECT again (see [`Conn::recheck_auth`]).
    pub(super) auth_epoch: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever `urls` changes, so a client that was told an older set when it
    /// connected gets a fresh INFO once its CONNECT is in.
    urls_version: AtomicU64,
    /// Held while an asynchronous INFO is built and queued, so that INFOs reach every
    /// client in the order the URL set changed. Without it two changes close together
    /// (B's and C's routes coming up at once) could queue the older set last, and a
    /// client would keep a stale `connect_urls` until the next change (the discovery
    /// fail-over test's flake). Taken before `urls` and the broker, never inside them.
    info_order: Mutex<()>,
    /// When the server started (monotonic; `/connz` and `/routez` times count from it).
    started: Instant,
    /// Each route peer's (up since, last frame) in ns since `started`, for `/routez`.
    route_times: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Shared {
    /// The running configuration. A connection reads it once where it starts, so a
    /// reload reaches the connections made after it.
    pub(super) fn cfg(&self) -> Arc<NatsConfig> {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Make `new` the running configuration (see [`super::reload`]): accounts it names
    /// are added and every account gets its limits at once; the rest applies to what
    /// reads the configuration next.
    pub(super) fn replace_cfg(&self, new: NatsConfig) {
        {
            let mut b = self.broker();
            let limits = new.account_limits();
            for name in new.account_names() {
                b.add_account(&name, limits);
            }
        }
        *self.cfg.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
    }

    /// The client TLS now in force (each new connection takes it once).
    pub(super) fn client_tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Put freshly loaded client TLS in force for connections accepted from now on.
    pub(super) fn set_client_tls(&self, tls: ServerTls) {
        *self.tls.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(tls));
    }

    /// Monotonic ns since the server started.
    pub(super) fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Record that our route to peer `server_id` came up (`up`), or that it sent a frame.
    pub(super) fn route_seen(&self, server_id: &str, up: bool) {
        let now = self.elapsed_ns();
        let mut t = self.route_times.lock().unwrap_or_else(|e| e.into_inner());
        match t.get_mut(server_id) {
            Some(e) if !up => e.1 = now,
            // Frames before our own route to it is up are not shown (its entry appears with
            // the route), so the map holds one entry per live route only.
            None if !up => {}
            _ => {
                t.insert(server_id.to_owned(), (now, now));
            }
        }
    }

    /// Our route to peer `server_id` ended: forget its times.
    pub(super) fn route_gone(&self, server_id: &str) {
        self.route_times.lock().unwrap_or_else(|e| e.into_inner()).remove(server_id);
    }

    pub(super) fn broker(&self) -> parking_lot::MutexGuard<'_, Broker> {
        self.broker.lock()
    }

    /// Route JetStream outputs produced with no lock held (by the flusher or the timer).
    fn route_js(&self, outs: Outs) {
        let Some(js) = &self.js else { return };
        if outs.is_empty() {
            return;
        }
        let mut wakes = Wakes::default();
        self.broker().route_js(js, outs, &mut wakes);
        wakes.wake_all();
    }

    /// A fresh nonce for a client to sign, if some user authenticates with an NKEY:
    /// 16 random bytes in base64url without padding (nats-server sends 11 in the same
    /// encoding; clients sign whatever string they get).
    fn nonce(&self) -> String {
        if !self.cfg().auth.needs_nonce() {
            return String::new();
        }
        let mut bytes = [0u8; 16];
        self.nonces.lock().unwrap_or_else(|e| e.into_inner()).fill(&mut bytes);
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    }

    /// The client address told to peers, `(host, port)` (host `None`: the listen host is
    /// unspecified, the peer uses the route's source host); `None` with `no_advertise`.
    pub(super) fn advertised_client_addr(&self) -> Option<(Option<String>, u16)> {
        if self.cfg().cluster.as_ref().is_none_or(|c| c.no_advertise) {
            return None;
        }
        if let Some(a) = &self.cfg().client_advertise {
            let a = a.trim();
            return Some(match a.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
                Some((h, p)) if !h.is_empty() => (Some(h.trim_matches(['[', ']']).to_owned()), p),
                _ => (Some(a.to_owned()), self.addr.port()),
            });
        }
        let ip = self.addr.ip();
        Some(((!ip.is_unspecified()).then(|| ip.to_string()), self.addr.port()))
    }

    /// Apply `change` to the cluster's client URLs; when it reports a change, every
    /// client gets a fresh INFO (nats-server's async INFO with new `connect_urls`).
    pub(super) fn urls_changed_if(&self, change: impl FnOnce(&mut ClientUrls) -> bool) {
        let changed = change(&mut self.urls.lock().unwrap_or_else(|e| e.into_inner()));
        if changed {
            self.urls_version.fetch_add(1, Ordering::SeqCst);
        }
        if changed && self.advertised_client_addr().is_some() {
            self.send_async_info();
        }
    }

    /// Send every client whose CONNECT is in a fresh INFO (the others get one when it is).
    fn send_async_info(&self) {
        let _order = self.info_order.lock().unwrap_or_else(|e| e.into_inner());
        let outs = self.broker().connected_client_outs();
        for (id, out) in outs {
            let mut info = self.info(id, None, "");
            info.client_id = id;
            let _ = out.push(&ServerOp::Info(Box::new(info)));
        }
    }

    fn info(&self, client_id: u64, peer: Option<SocketAddr>, nonce: &str) -> ServerInfo {
        let connect_urls = if self.advertised_client_addr().is_some() {
            self.urls.lock().unwrap_or_else(|e| e.into_inner()).urls()
        } else {
            Vec::new()
        };
        ServerInfo {
            server_id: self.server_id.clone(),
            server_name: if self.cfg().server_name.is_empty() {
                self.server_id.clone()
            } else {
                self.cfg().server_name.clone()
            },
            version: self.cfg().nats_version.clone(),
            proto: 1,
            go: "rust".to_owned(),
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            headers: true,
            auth_required: self.cfg().auth.is_required(),
            tls_required: self.client_tls().is_some(),
            tls_verify: self.cfg().tls.as_ref().is_some_and(|t| t.verify),
            max_payload: self.cfg().max_payload as i64,
            client_id,
            client_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            cluster: self.routes.as_ref().map(|r| r.cluster_name().to_owned()).unwrap_or_default(),
            connect_urls,
            ldm: self.lame.load(Ordering::Relaxed),
            weir_version: WEIR_VERSION.to_owned(),
            jetstream: self.js.is_some(),
            nonce: nonce.to_owned(),
            ..ServerInfo::default()
        }
    }
}

/// A read-only handle for monitoring a running server.
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// A snapshot of the server's counters and memory accounts.
    pub fn varz(&self) -> Varz {
        let s = &self.shared;
        let (connections, subscriptions, routes, remote_subs) = {
            let b = s.broker();
            (b.client_count(), b.sub_count(), b.route_count(), b.remote_interest_count())
        };
        let cfg = s.cfg();
        Varz {
            server_id: s.server_id.clone(),
            // As INFO: the server id when no name is configured (nats-server's default).
            server_name: if cfg.server_name.is_empty() { s.server_id.clone() } else { cfg.server_name.clone() },
            max_control_line: cfg.max_control_line,
            ping_interval: u64::try_from(cfg.ping_interval.as_nanos()).unwrap_or(u64::MAX),
            ping_max: cfg.ping_max,
            write_deadline: u64::try_from(cfg.write_deadline.as_nanos()).unwrap_or(u64::MAX),
            auth_timeout: cfg.auth_timeout.as_secs_f64(),
            tls_timeout: cfg.tls.as_ref().map_or(2.0, |t| t.timeout.as_secs_f64()),
            tls_required: s.client_tls().is_some(),
            tls_verify: cfg.tls.as_ref().is_some_and(|t| t.verify),
            connect_urls: if s.advertised_client_addr().is_some() && s.routes.is_some() {
                s.urls.lock().unwrap_or_else(|e| e.into_inner()).urls()
            } else {
                Vec::new()
            },
            version: s.cfg().nats_version.clone(),
            weir_version: WEIR_VERSION.to_owned(),
            proto: 1,
            host: s.addr.ip().to_string(),
            port: s.addr.port(),
            max_payload: s.cfg().max_payload,
            max_pending: s.cfg().max_pending,
            max_connections: s.cfg().max_connections,
            max_subscriptions: s.cfg().max_subscriptions,
            connections,
            total_connections: s.stats.total_connections.load(Ordering::Relaxed),
            subscriptions,
            in_msgs: s.stats.in_msgs.load(Ordering::Relaxed),
            out_msgs: s.stats.out_msgs.load(Ordering::Relaxed),
            in_bytes: s.stats.in_bytes.load(Ordering::Relaxed),
            out_bytes: s.stats.out_bytes.load(Ordering::Relaxed),
            slow_consumers: s.stats.slow_consumers.load(Ordering::Relaxed),
            stale_connections: s.stats.stale_connections.load(Ordering::Relaxed),
            slow_consumer_stats: super::varz::KindCounts {
                clients: s.stats.slow_consumers.load(Ordering::Relaxed),
                ..Default::default()
            },
            stale_connection_stats: super::varz::KindCounts {
                clients: s.stats.stale_connections.load(Ordering::Relaxed),
                ..Default::default()
            },
            producer_stalls: s.stats.producer_stalls.load(Ordering::Relaxed),
            producer_stall_timeouts: s.stats.producer_stall_timeouts.load(Ordering::Relaxed),
            read_buffers_shed: s.read_bufs.shed(),
            cluster: s.routes.as_ref().map(|r| super::varz::ClusterVarz {
                name: r.cluster_name().to_owned(),
                addr: r.addr().ip().to_string(),
                cluster_port: r.addr().port(),
                routes,
                route_in_msgs: s.stats.route_in_msgs.load(Ordering::Relaxed),
                route_out_msgs: s.stats.route_out_msgs.load(Ordering::Relaxed),
                remote_subs,
                route_drops: r.route_drops(),
            }),
            routes,
            jetstream: s.js.as_ref().map(|_| {
                let j = self.jsz(JszOptions::default());
                jsz::JetStreamVarz { config: j.config, stats: j.stats }
            }),
            mem: s
                .ledger
                .sample()
                .into_iter()
                .map(|a| MemAccount { name: a.name.to_owned(), current: a.current, peak: a.peak, limit: a.limit })
                .collect(),
        }
    }
}

impl Monitor {
    /// Monotonic ns since the server started (for `/varz` `start` and `uptime`).
    pub fn uptime_ns(&self) -> u64 {
        self.shared.elapsed_ns()
    }

    fn clock(&self, now_ns: i64) -> Clock {
        Clock { now_ns, elapsed_ns: self.shared.elapsed_ns() }
    }

    /// The `/connz` answer (nats-server's shape, see [`super::connz`]); `now_ns` is the
    /// wall-clock time (ns since the epoch) to show.
    pub fn connz(&self, opts: &ConnzOptions, now_ns: i64) -> Connz {
        let views = self.shared.broker().client_views(opts.cid, &opts.account, opts.subs || opts.subs_detail);
        Connz::build(self.shared.server_id.clone(), self.clock(now_ns), views, opts)
    }

    /// The `/subsz` answer (nats-server's shape, see [`super::connz`]).
    pub fn subsz(&self, opts: &SubszOptions, now_ns: i64) -> Subsz {
        let (stats, subs) = {
            let b = self.shared.broker();
            let subs = if opts.subs { b.sub_details(&opts.account, &opts.test) } else { Vec::new() };
            (b.sublist_stats(&opts.account), subs)
        };
        Subsz::build(self.shared.server_id.clone(), now_ns, stats, subs, opts)
    }

    /// The `/routez` answer (nats-server's shape, see [`super::connz::RouteInfo`]);
    /// `subs` and `detail` are `subs=1` and `subs=detail`.
    pub fn routez(&self, subs: bool, detail: bool, now_ns: i64) -> Routez {
        let s = &self.shared;
        let clock = self.clock(now_ns);
        let peers = s.broker().peer_views(subs || detail);
        let drops = s.routes.as_ref().map(|r| r.route_drops()).unwrap_or_default();
        let times = s.route_times.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let cfg = s.cfg();
        let configured: Vec<&str> = cfg.cluster.iter().flat_map(|c| c.routes.iter().map(|r| r.addr.as_str())).collect();
        let routes: Vec<RouteInfo> = peers
            .into_iter()
            .map(|p| {
                let (start, last) = times.get(&p.server_id).copied().unwrap_or((clock.elapsed_ns, clock.elapsed_ns));
                let addr = p.addr.unwrap_or_default();
                let route_drops = drops.iter().find(|d| d.server_id == p.server_id).map(|d| d.drops);
                let (ip, port) = addr.rsplit_once(':').map_or((addr.as_str(), 0), |(h, p)| (h, p.parse().unwrap_or(0)));
                RouteInfo {
                    rid: p.out_conn.unwrap_or(0),
                    remote_id: p.server_id,
                    remote_name: String::new(),
                    did_solicit: true,
                    is_configured: configured.contains(&addr.as_str()),
                    ip: ip.trim_matches(['[', ']']).to_owned(),
                    port,
                    start: clock.wall(start),
                    last_activity: clock.wall(last),
                    uptime: clock.since(start),
                    idle: clock.since(last),
                    pending_size: p.pending,
                    in_msgs: p.traffic.in_msgs,
                    out_msgs: p.traffic.out_msgs,
                    in_bytes: p.traffic.in_bytes,
                    out_bytes: p.traffic.out_bytes,
                    subscriptions: p.num_subs,
                    subs: if subs && !detail { p.subs.iter().map(|d| d.subject.clone()).collect() } else { Vec::new() },
                    drops: route_drops,
                    subs_detail: if detail { p.subs } else { Vec::new() },
                }
            })
            .collect();
        Routez {
            server_id: s.server_id.clone(),
            server_name: if s.cfg().server_name.is_empty() { s.server_id.clone() } else { s.cfg().server_name.clone() },
            now: crate::jetstream::format_rfc3339_nano(now_ns),
            num_routes: routes.len(),
            routes,
        }
    }

    /// The `/accountz` answer (nats-server's shape, see [`super::accountz`]); `acc` is
    /// the `?acc=` value, `now_ns` the wall-clock time (ns since the epoch) to show.
    pub fn accountz(&self, acc: Option<&str>, now_ns: i64) -> super::accountz::Accountz {
        let stats = self.shared.broker().account_stats();
        let now = crate::jetstream::format_rfc3339_nano(now_ns);
        super::accountz::Accountz::new(self.shared.server_id.clone(), now, &stats, acc, self.shared.js.is_some())
    }

    /// Every NATS account's figures (clients, subscriptions, memory), `$G` first.
    pub fn account_stats(&self) -> Vec<super::broker::AccountStat> {
        self.shared.broker().account_stats()
    }
}

impl Monitor {
    /// The `/jsz` snapshot (nats-server's shape; `disabled` without JetStream).
    pub fn jsz(&self, opts: JszOptions) -> Jsz {
        let s = &self.shared;
        let Some(js) = &s.js else { return Jsz::disabled(s.server_id.clone(), 0) };
        let now = js.now_ns();
        let (sum, shown_dir) = js.jsz();
        let stats = jsz::JetStreamStats {
            memory: sum.memory,
            storage: sum.storage,
            reserved_memory: 0,
            reserved_storage: 0,
            accounts: 1,
            ha_assets: 0,
            api: sum.api,
        };
        let mut detail = Vec::new();
        if opts.accounts {
            let mut streams = Vec::new();
            if opts.streams {
                for st in &sum.stream_detail {
                    streams.push(jsz::StreamDetail {
                        name: st.name.clone(),
                        state: jsz::StreamStateDetail {
                            messages: st.messages,
                            bytes: st.bytes,
                            first_seq: st.first_seq,
                            last_seq: st.last_seq,
                            consumer_count: st.consumer_detail.len() as u64,
                        },
                        consumer_detail: opts.consumers.then(|| {
                            st.consumer_detail
                                .iter()
                                .map(|c| jsz::ConsumerDetail {
                                    stream_name: st.name.clone(),
                                    name: c.name.clone(),
                                    delivered: jsz::SequencePair { stream_seq: c.delivered_stream_seq },
                                    ack_floor: jsz::SequencePair { stream_seq: c.ack_floor_stream_seq },
                                    num_ack_pending: c.num_ack_pending,
                                    num_redelivered: c.num_redelivered,
                                    num_waiting: c.num_waiting,
                                    num_pending: c.num_pending,
                                })
                                .collect()
                        }),
                        error: None,
                    });
                }
                for (name, why) in &sum.failed_streams {
                    streams.push(jsz::StreamDetail {
                        name: name.clone(),
                        error: Some(why.clone()),
                        ..Default::default()
                    });
                }
            }
            detail.push(jsz::AccountDetail {
                name: jsz::GLOBAL_ACCOUNT.to_owned(),
                id: jsz::GLOBAL_ACCOUNT.to_owned(),
                stats,
                stream_detail: streams,
            });
        }
        Jsz {
            server_id: s.server_id.clone(),
            now: crate::jetstream::format_rfc3339_nano(now),
            disabled: false,
            config: jsz::JetStreamConfigJson { store_dir: shown_dir, ..sum.config },
            stats,
            streams: sum.streams,
            consumers: sum.consumers,
            messages: sum.messages,
            bytes: sum.bytes,
            account_details: detail,
        }
    }

    /// Check the JetStream engine's invariants, if enabled (panics on a violation).
    pub fn js_invariants(&self) {
        if let Some(js) = &self.shared.js {
            js.invariants();
        }
    }
}

/// Puts a running server into lame-duck mode (as nats-server on SIGUSR2 or
/// `--signal ldm`): it stops accepting clients, sends every client an INFO with
/// `"ldm":true`, waits `lame_duck_grace_period`, closes the clients spread over the
/// rest of `lame_duck_duration`, and then shuts down as on `run`'s shutdown future
/// (which still cuts it short). Entering twice is entering once.
#[derive(Clone)]
pub struct LameDuck(Arc<Notify>);

impl LameDuck {
    /// Enter lame-duck mode (takes effect once `run` is serving; a request made
    /// before is kept).
    pub fn enter(&self) {
        self.0.notify_one();
    }
}

/// A bound NATS server; [`NatsServer::run`] serves it.
pub struct NatsServer {
    listener: TcpListener,
    route_listener: Option<TcpListener>,
    shared: Arc<Shared>,
}

/// A 56-character id in the alphabet of nats-server's ids (an `N` and base32), drawn from `seed`.
fn server_id(seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed1d);
    std::iter::once('N').chain((0..55).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)).collect()
}

impl NatsServer {
    /// Bind the client port (and the route port if `cfg.cluster` is set); `ledger` must
    /// hold a `client.outbound` account (see [`ledger`]), and for a cluster also a
    /// `route.outbound` account (see [`cluster_ledger`]).
    ///
    /// TLS files (`cfg.tls`, `cfg.cluster.tls`) are loaded first; a file that cannot be
    /// read or parsed is an `InvalidInput` error naming it (in the simulation build any
    /// TLS setting is: see [`crate::server::tls`]).
    pub async fn bind(cfg: NatsConfig, ledger: Arc<Ledger>) -> std::io::Result<NatsServer> {
        let bad = |what: &str, e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"));
        let tls = cfg.tls.as_ref().map(ServerTls::load).transpose().map_err(|e| bad("tls", e))?;
        let route_tls = match cfg.cluster.as_ref().and_then(|c| c.tls.as_ref()) {
            Some(t) => Some(Arc::new(RouteTls::load(t).map_err(|e| bad("cluster tls", e))?)),
            None => None,
        };
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let server_id = server_id(cfg.seed);
        let (route_listener, routes) = match &cfg.cluster {
            Some(cc) => {
                let Some(route_total) = ledger.get(names::ROUTE_OUTBOUND).map(|a| a.limit()) else {
                    return Err(std::io::Error::other("a clustered server's ledger needs a route.outbound account"));
                };
                cc.check_sizes(cfg.max_payload, cfg.max_control_line, route_total)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let l = TcpListener::bind(cc.listen).await?;
                let raddr = l.local_addr()?;
                let routes = Routes::new(cc.route_setup(&server_id), raddr, ledger.account(names::ROUTE_OUTBOUND));
                if let Some(t) = route_tls {
                    routes.set_tls(t);
                }
                (Some(l), Some(Arc::new(routes)))
            }
            None => (None, None),
        };
        let stats = Arc::new(Stats::default());
        let mut broker = Broker::new(cfg.seed, stats.clone());
        if let Some(a) = ledger.get(names::CLIENT_SUBS) {
            broker.set_subs_account(a);
        }
        let limits = cfg.account_limits();
        for name in cfg.account_names() {
            broker.add_account(&name, limits);
        }
        let js = match &cfg.jetstream {
            Some(opts) => {
                if !js::has_jetstream_accounts(&ledger) {
                    return Err(std::io::Error::other(format!(
                        "a JetStream server's ledger needs the accounts {:?} (see nats::ledger_for)",
                        js::JETSTREAM_ACCOUNTS
                    )));
                }
                let name = if cfg.server_name.is_empty() { &server_id } else { &cfg.server_name };
                let js = Arc::new(JsHandle::open(opts.clone(), name, ledger.clone()));
                broker.set_jetstream(js.clone());
                Some(js)
            }
            None => None,
        };
        let own = {
            let ip = addr.ip();
            match (&cfg.client_advertise, &cfg.cluster) {
                (_, Some(c)) if c.no_advertise => None,
                (_, None) => None,
                (Some(a), _) if a.contains(':') => Some(a.trim().to_owned()),
                (Some(a), _) => Some(super::discovery::host_port(a.trim(), addr.port())),
                (None, _) if ip.is_unspecified() => None,
                (None, _) => Some(super::discovery::host_port(&ip.to_string(), addr.port())),
            }
        };
        let shared = Arc::new(Shared {
            urls: Mutex::new(ClientUrls::new(own)),
            ldm: Arc::new(Notify::new()),
            lame: AtomicBool::new(false),
            auth_epoch: tokio::sync::watch::Sender::new(0),
            urls_version: AtomicU64::new(0),
            info_order: Mutex::new(()),
            started: Instant::now(),
            route_times: Mutex::new(BTreeMap::new()),
            server_id,
            addr,
            broker: parking_lot::Mutex::new(broker),
            js,
            pool: Arc::new(OutboundPool::new(stats.clone())),
            stats,
            tls: Mutex::new(tls.map(Arc::new)),
            account: ledger.account(names::CLIENT_OUTBOUND),
            read_bufs: ReadBufs::new(
                ledger
                    .get(names::CLIENT_BUFFERS)
                    .unwrap_or_else(|| Arc::new(Account::new(names::CLIENT_BUFFERS, u64::MAX))),
            ),
            ledger,
            nonces: Mutex::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x006e_6f6e_6365)),
            cfg: Mutex::new(Arc::new(cfg)),
            routes,
        });
        Ok(NatsServer { listener, route_listener, shared })
    }

    /// The address peers dial for routes, if clustered.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.shared.routes.as_ref().map(|r| r.addr())
    }

    /// Run route connections on `wrap(socket)` (the simulator's network model, see
    /// [`crate::server::link`]); call before `run`.
    pub fn set_link_wrap(&self, wrap: LinkWrap) {
        if let Some(r) = &self.shared.routes {
            r.set_link_wrap(wrap);
        }
    }

    /// Turn the broker's known-bug switches on (the simulator only; see
    /// [`BrokerBugs`](super::broker::BrokerBugs)); call before `run`.
    pub fn set_broker_bugs(&self, bugs: super::broker::BrokerBugs) {
        self.shared.broker().set_bugs(bugs);
    }

    /// Record why route connections end as events of this server's node (see
    /// [`Routes::set_events`](crate::server::route::Routes::set_events)); call before `run`.
    pub fn set_route_events(&self, sink: Arc<dyn weir_traces::EventSink>) {
        if let Some(r) = &self.shared.routes {
            r.set_events(sink);
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A handle that puts this server into lame-duck mode (see [`LameDuck`]).
    pub fn lame_duck(&self) -> LameDuck {
        LameDuck(self.shared.ldm.clone())
    }

    /// A handle that reloads this server's configuration (see [`super::reload`]).
    pub fn reloader(&self) -> super::reload::Reloader {
        super::reload::Reloader(self.shared.clone())
    }

    /// A monitoring handle.
    pub fn monitor(&self) -> Monitor {
        Monitor { shared: self.shared.clone() }
    }

    /// Serve until `shutdown` completes, then stop accepting, let every client's queued
    /// bytes drain (within `write_deadline`), close the connections and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let NatsServer { listener, route_listener, shared } = self;
        let scope = Scope::new();
        if let (Some(l), Some(routes)) = (route_listener, &shared.routes) {
            let handlers = Handlers { pubsub: Some(Arc::new(BrokerRoutes(shared.clone()))), raft: None };
            routes.start(&scope.handle(), l, handlers);
        }
        if let Some(js) = &shared.js {
            let (f, t) = (shared.clone(), shared.clone());
            scope.handle().spawn(js.clone().run_flusher(move |outs| f.route_js(outs)));
            scope.handle().spawn(js.clone().run_timer(move |outs| t.route_js(outs)));
        }
        // Every connection task holds a sender, so `recv` returning `None` means all have ended.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tracing::info!(server_id = %shared.server_id, "nats listener ready");
        tokio::pin!(shutdown);
        let mut lame = false;
        loop {
            // `biased`: an unbiased select draws from tokio's thread-local RNG, which is
            // not reset between simulated runs in one process.
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = shared.ldm.notified() => {
                    lame = true;
                    break;
                }
                r = listener.accept() => match r {
                    Ok((stream, peer)) => {
                        let handle = scope.handle();
                        handle.clone().spawn(serve_conn(stream, peer, shared.clone(), handle, done_tx.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                },
            }
        }
        drop(listener);
        if lame {
            tokio::select! {
                biased;
                _ = &mut shutdown => {}
                _ = lame_duck(&shared) => {}
            }
        }
        // What is appended becomes durable and its PubAcks go out before clients drain.
        if let Some(js) = &shared.js {
            js.flush_all(|outs| shared.route_js(outs)).await;
        }
        tracing::info!("shutting down: draining clients");
        shared.broker().drain_all();
        drop(done_tx);
        let _ = timeout(shared.cfg().write_deadline, done_rx.recv()).await;
        for out in shared.broker().outbounds() {
            out.close(Closed::Abort);
        }
        if let Some(routes) = &shared.routes {
            routes.close_all();
        }
        // Ack state moved by the last acks is persisted before the server goes.
        if let Some(js) = &shared.js {
            js.flush_all(|_| {}).await;
            tracing::info!("JetStream stopped");
        }
        tracing::info!("nats listener stopped");
    }
}

/// Lame-duck mode after the listener is closed: tell every client, wait the grace
/// period, then close the clients one by one spread over the rest of the duration
/// (as nats-server's `lameDuckMode`).
async fn lame_duck(shared: &Shared) {
    let cfg = shared.cfg();
    tracing::info!("Entering lame duck mode, stop accepting new clients");
    shared.lame.store(true, Ordering::Relaxed);
    shared.send_async_info();
    if shared.broker().client_count() == 0 {
        return;
    }
    tokio::time::sleep(cfg.lame_duck_grace_period).await;
    let outs = shared.broker().client_outs();
    tracing::info!(clients = outs.len(), "Closing existing clients");
    let spread = cfg.lame_duck_duration.saturating_sub(cfg.lame_duck_grace_period);
    let step = spread / u32::try_from(outs.len()).unwrap_or(u32::MAX).max(1);
    let last = outs.len().saturating_sub(1);
    for (i, (_, out)) in outs.into_iter().enumerate() {
        out.close(Closed::Drain);
        if i < last && !step.is_zero() {
            tokio::time::sleep(step).await;
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    scope: ScopeHandle,
    _done: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    shared.stats.total_connections.fetch_add(1, Ordering::Relaxed);
    let out = Outbound::pooled(shared.account.clone(), shared.cfg().max_pending, &shared.pool);
    let admitted = {
        let mut broker = shared.broker();
        (broker.client_count() < shared.cfg().max_connections).then(|| broker.add_client(out.clone()))
    };
    let Some(id) = admitted else {
        // As nats-server: INFO first, then the error, then close (before any TLS handshake).
        tracing::warn!(%peer, max = shared.cfg().max_connections, "maximum connections exceeded, closing");
        out.push(&ServerOp::Info(Box::new(shared.info(0, Some(peer), ""))));
        out.push(&ServerOp::Err(ERR_MAX_CONNECTIONS.to_owned()));
        out.close(Closed::Drain);
        write_loop(stream, &out, &shared).await;
        return;
    };
    tracing::debug!(client = id, %peer, "client connected");
    if let Some(st) = shared.broker().conn_stat(id) {
        let now = shared.elapsed_ns();
        st.start_ns.store(now, Ordering::Relaxed);
        st.last_ns.store(now, Ordering::Relaxed);
        st.update_meta(|m| {
            m.ip = peer.ip().to_string();
            m.port = peer.port();
        });
    }
    let nonce = shared.nonce();
    let told = shared.urls_version.load(Ordering::SeqCst);
    let info = ServerOp::Info(Box::new(shared.info(id, Some(peer), &nonce)));
    // TLS wraps the socket before the generic loops; INFO goes out in plaintext first
    // unless the handshake comes first (see `crate::server::tls`).
    match shared.client_tls() {
        None => {
            out.push(&info);
            serve_client(stream, id, told, shared.clone(), scope, out, nonce).await;
        }
        Some(tls) => match tls.accept_client(stream, &info).await {
            Ok((stream, info_inside)) => {
                if info_inside {
                    out.push(&info);
                }
                serve_client(stream, id, told, shared.clone(), scope, out, nonce).await;
            }
            Err(e) => {
                // Probes and plaintext clients at debug, real handshake failures (a
                // missing or untrusted client certificate, say) at warn, as nats-server.
                if crate::server::tls::is_probe(&e) {
                    tracing::debug!(client = id, %peer, "TLS handshake error: {e}");
                } else {
                    tracing::warn!(client = id, %peer, "TLS handshake error: {e}");
                }
                shared.broker().remove_client(id);
                out.close(Closed::Abort);
            }
        },
    }
}

/// Serve an admitted client whose INFO is queued on `out`, over a plain or TLS stream.
async fn serve_client<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    id: u64,
    told: u64,
    shared: Arc<Shared>,
    scope: ScopeHandle,
    out: Arc<Outbound>,
    nonce: String,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let mut conn = Conn::new(id, out.clone(), shared.cfg().ping_max)
        .with_auth(shared.cfg().auth.clone(), nonce)
        .with_max_subscriptions(shared.cfg().max_subscriptions);
    conn.begin(&mut shared.broker());

    let (writer_tx, writer_rx) = oneshot::channel::<()>();
    let (w_out, w_shared) = (out.clone(), shared.clone());
    scope.spawn(async move {
        write_loop(wr, &w_out, &w_shared).await;
        let _ = writer_tx.send(());
    });

    read_loop(&mut rd, &mut conn, told, &shared, &out).await;
    // No more deliveries to this client; what is queued may still drain.
    out.close(Closed::Drain);
    // Its subscriptions go a step at a time, each under its own lock, so that other
    // clients are not held up by a client with very many (issue 9, fault 2).
    while !shared.broker().remove_client_step(id, REMOVE_STEP) {
        tokio::task::yield_now().await;
    }
    let _ = timeout(shared.cfg().write_deadline, writer_rx).await;
    out.close(Closed::Abort);
    tracing::debug!(client = id, "client closed");
}

/// Ops a connection applies per broker-lock hold. A read batch of 64 KiB holds up to
/// ~4,600 UNSUBs; applied under one hold, batch after batch, they kept other clients off
/// the lock for 0.5-1.6 s on a loaded machine (issue 9, fault 2). 256 ops cost well
/// under a millisecond.
const OPS_PER_LOCK: usize = 256;

/// Serve one client's reads; `told` is the URL-set version its first INFO carried.
async fn read_loop<R: AsyncRead + Unpin>(rd: &mut R, conn: &mut Conn, told: u64, shared: &Shared, out: &Arc<Outbound>) {
    let mut caught_up = false;
    let cfg = shared.cfg();
    let mut parser =
        ClientParser::new(ParserConfig { max_control_line: cfg.max_control_line, max_payload: cfg.max_payload });
    let mut rb = ReadBuf::new(shared.read_bufs.clone(), conn.id(), out.clone());
    // A `Ticker`: polled on every read, it registers one timer per ping period (see
    // `crate::timer`).
    let mut ping = Ticker::starting_at(Instant::now() + cfg.ping_interval, cfg.ping_interval, Missed::Burst);
    let auth_deadline = sleep_until(Instant::now() + cfg.auth_timeout);
    tokio::pin!(auth_deadline);
    let mut auth_epoch = shared.auth_epoch.subscribe();
    loop {
        let (flow, more) = {
            // One lock per step: up to `OPS_PER_LOCK` ops of the read batch applied together.
            let mut broker = shared.broker();
            let buf = rb.bytes();
            let mut ops = 0;
            let step = loop {
                let flow = if conn.check_op_start(buf) == Flow::Close {
                    Flow::Close
                } else {
                    match parser.parse(buf) {
                        Ok(Some(op)) => conn.handle(op, &mut broker, &shared.stats),
                        Ok(None) => break (Flow::Continue, false),
                        Err(e) => {
                            tracing::debug!(client = conn.id(), error = %e, "protocol error");
                            conn.proto_error(&e)
                        }
                    }
                };
                if flow == Flow::Close || conn.stalled() {
                    break (flow, false);
                }
                ops += 1;
                if ops == OPS_PER_LOCK {
                    break (flow, true);
                }
            };
            // Hand the lock to a waiting connection, if any, rather than take it back
            // at once for the next step.
            parking_lot::MutexGuard::unlock_fair(broker);
            step
        };
        conn.wake_subscribers();
        if flow == Flow::Close {
            return;
        }
        if more {
            // The batch holds more ops: let the other tasks on this thread run, then
            // apply the rest before reading again.
            tokio::task::yield_now().await;
            continue;
        }
        if conn.stalled() {
            // A route queue or a subscriber's queue this client feeds is pressured: wait
            // for it (bounded) before applying the rest of the batch, then go on without
            // reading (what is buffered may hold whole ops already). The broker lock is
            // not held here, so other clients' deliveries go on meanwhile.
            if wait_for_routes(conn.take_route_stalls(), shared, out).await == Flow::Close {
                return;
            }
            if wait_for_subscribers(conn.take_client_stalls(), shared, out).await == Flow::Close {
                return;
            }
            continue;
        }
        if !caught_up && conn.first_pong_sent() {
            // After the first PONG that followed CONNECT (nats-server's `firstPongSent`): if
            // the cluster changed since the first INFO, send the new one. Earlier, a client
            // in its handshake (async-nats) takes the INFO for its PONG and loses it.
            caught_up = true;
            let _order = shared.info_order.lock().unwrap_or_else(|e| e.into_inner());
            if shared.urls_version.load(Ordering::SeqCst) != told || shared.lame.load(Ordering::Relaxed) {
                let _ = out.push(&ServerOp::Info(Box::new(shared.info(conn.id(), None, ""))));
            }
        }
        // The buffer shrinks after a burst; at the `client.buffers` limit this connection
        // reads nothing until the room is there (TCP pushes back on the client). The
        // largest holder is shed meanwhile, maybe this one, so the wait ends (see
        // `readbuf`). The wake-up is armed before trying, so a release in between counts.
        loop {
            let freed = shared.read_bufs.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if rb.prepare() == Prepared::Ready {
                break;
            }
            tokio::select! {
                biased;
                _ = out.wait_closed() => return,
                _ = &mut freed => {}
            }
        }
        tokio::select! {
            biased;
            _ = out.wait_closed() => return,
            _ = ping.tick() => {
                if conn.ping_tick(&shared.stats) == Flow::Close {
                    return;
                }
            }
            _ = &mut auth_deadline, if conn.awaiting_auth() => {
                conn.auth_timeout();
                return;
            }
            Ok(()) = auth_epoch.changed() => {
                let auth = shared.cfg().auth.clone();
                if conn.recheck_auth(auth, &mut shared.broker()) == Flow::Close {
                    return;
                }
            }
            r = rd.read_buf(rb.bytes()) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Some(st) = conn.stat() {
                        st.last_ns.store(shared.elapsed_ns(), Ordering::Relaxed);
                    }
                }
            },
        }
    }
}

/// Wait until every queue in `stalls` has room again, or the route stack's
/// `max_publisher_stall` has passed (counting each wait, and each that timed out, on
/// its route); `Flow::Close` if the client's own connection closes meanwhile.
async fn wait_for_routes(stalls: Vec<Arc<RouteOut>>, shared: &Shared, out: &Outbound) -> Flow {
    let Some(routes) = &shared.routes else { return Flow::Continue };
    let deadline = sleep_until(Instant::now() + routes.max_publisher_stall());
    tokio::pin!(deadline);
    for q in stalls {
        let timed_out = tokio::select! {
            biased;
            _ = out.wait_closed() => return Flow::Close,
            _ = q.wait_room() => false,
            _ = &mut deadline => true,
        };
        q.drops().count_stall(timed_out);
    }
    Flow::Continue
}

/// Wait until every client queue in `stalls` has drained to half its stall mark (or
/// closed), or `max_producer_stall` has passed; a queue still pressured then is not
/// waited for again until it drains (see `outbound`'s "Producers wait"). Counted in
/// `/varz` `producer_stalls` and `producer_stall_timeouts`; `Flow::Close` if the
/// client's own connection closes meanwhile.
async fn wait_for_subscribers(stalls: Vec<Arc<Outbound>>, shared: &Shared, out: &Outbound) -> Flow {
    if stalls.is_empty() {
        return Flow::Continue;
    }
    shared.stats.producer_stalls.fetch_add(1, Ordering::Relaxed);
    let deadline = sleep_until(Instant::now() + shared.cfg().max_producer_stall);
    tokio::pin!(deadline);
    let mut ran_out = false;
    for q in stalls {
        if !ran_out {
            ran_out = tokio::select! {
                biased;
                _ = out.wait_closed() => return Flow::Close,
                _ = q.wait_room() => false,
                _ = &mut deadline => true,
            };
        }
        if ran_out && q.stall_ran_out() {
            shared.stats.producer_stall_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("fast producer stall ran out; going on");
        }
    }
    Flow::Continue
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, out: &Outbound, shared: &Shared) {
    let deadline = shared.cfg().write_deadline;
    while let Some(chunk) = out.next_chunk().await {
        let n = chunk.len() as u64;
        let write = timeout(deadline, async {
            wr.write_all(&chunk).await?;
            wr.flush().await
        });
        let r = tokio::select! {
            biased;
            r = write => Some(r),
            _ = out.wait_aborted() => None,
        };
        out.release(n);
        let Some(r) = r else { break };
        match r {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                out.close(Closed::Abort);
                break;
            }
            Err(_) => {
                // A client that takes longer than the write deadline is a slow consumer too.
                shared.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("slow consumer: write deadline exceeded, closing");
                out.close(Closed::Abort);
                break;
            }
        }
    }
    let _ = timeout(deadline, wr.shutdown()).await;
}
