//! [`NatsConfig`]: limits and timers of a NATS server, with nats-server's defaults.

use super::auth::{Auth, GLOBAL_ACCOUNT};
use super::broker::AccountLimits;
use super::cluster::ClusterConfig;
use super::js::JetStreamOptions;
use crate::proto::{DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD};
use std::net::SocketAddr;
use std::time::Duration;

/// Default per-client outbound cap (nats-server's `MAX_PENDING_SIZE`, 64 MiB).
pub const DEFAULT_MAX_PENDING: u64 = 64 * 1024 * 1024;
/// Default cap on all clients' outbound bytes together (the ledger's `client.outbound` limit).
pub const DEFAULT_MAX_OUTBOUND_TOTAL: u64 = 1024 * 1024 * 1024;
/// Default bound of a publishing client's wait for subscribers that fell behind, per
/// read batch: the routes' `max_publisher_stall`. Longer than nats-server's 10 ms,
/// because a queue whose wait runs out is not waited for again until it drains, and a
/// writer on a loaded machine can take longer than 10 ms to be scheduled.
pub const DEFAULT_MAX_PRODUCER_STALL: Duration = Duration::from_millis(100);
/// Default lame-duck duration (nats-server's `DEFAULT_LAME_DUCK_DURATION`).
pub const DEFAULT_LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
/// Default lame-duck grace period (nats-server's `DEFAULT_LAME_DUCK_GRACE_PERIOD`).
pub const DEFAULT_LAME_DUCK_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Default most client connections at once (nats-server's `DEFAULT_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 64 * 1024;

/// The NATS server level advertised in INFO `version` by default.
///
/// Clients choose features by this number (nats-py needs 2.9 for consumer names; async-nats
/// and nats.go gate JetStream API forms the same way). Weir serves the core protocol only,
/// and its core protocol is at least 2.11's: headers and no-responders (2.2), the
/// `Nats-Subject` header on 503s (absent in 2.9), and the compatibility suites pass against
/// nats-server 2.15.1. JetStream-gated features fail at the API whatever this says (no
/// responders on `$JS.API`), so the level only steers core features. It is not set to 2.15
/// so that the JetStream work can raise it to the API level it actually implements.
pub const NATS_SERVER_LEVEL: &str = "2.11.0";
/// Weir's own version, advertised in INFO `weir_version` (and `/varz`).
pub const WEIR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Configuration of one NATS server.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// Address to listen on for clients.
    pub listen: SocketAddr,
    /// `server_name` in INFO; the server id when empty.
    pub server_name: String,
    /// Largest message (headers plus payload) a client may publish.
    pub max_payload: usize,
    /// Longest control line accepted.
    pub max_control_line: usize,
    /// Per-client outbound cap in bytes; a client over it is a slow consumer.
    pub max_pending: u64,
    /// Limit of the `client.outbound` ledger account (all clients together).
    pub max_outbound_total: u64,
    /// Longest a publishing client waits, per read batch, for the subscriber queues it
    /// fed that fell behind (see `outbound`'s "Producers wait"; nats-server stalls a fast
    /// producer the same way, for 2-10 ms). A queue whose wait runs out is not waited
    /// for again until it drains.
    pub max_producer_stall: Duration,
    /// How often the server PINGs each client.
    pub ping_interval: Duration,
    /// Unanswered PINGs tolerated before `-ERR 'Stale Connection'`.
    pub ping_max: u32,
    /// How long one write, or a whole shutdown drain, may take.
    pub write_deadline: Duration,
    /// Seed for the server id and queue-group picks.
    pub seed: u64,
    /// Credentials clients must present in CONNECT.
    pub auth: Auth,
    /// How long a client that must authenticate has to send CONNECT (nats-server's 2 s).
    pub auth_timeout: Duration,
    /// Routes to other servers (clustering); `None` for a standalone server.
    pub cluster: Option<ClusterConfig>,
    /// Most client connections at once; a client over it gets INFO, then
    /// `-ERR 'maximum connections exceeded'` and is closed (nats-server's `max_connections`;
    /// 0 admits nobody, as nats-server's `max_connections: 0`).
    pub max_connections: usize,
    /// Most subscriptions per connection; a SUB over it gets
    /// `-ERR 'maximum subscriptions exceeded'` and the connection stays open
    /// (nats-server's `max_subscriptions`; 0 = no limit).
    pub max_subscriptions: usize,
    /// TLS for clients (nats-server's `tls { }`); `None` serves plaintext. See
    /// [`crate::server::tls`]; [`super::NatsServer::bind`] fails if the files do not load.
    pub tls: Option<crate::server::tls::TlsConfig>,
    /// The NATS server level advertised in INFO `version` (see [`NATS_SERVER_LEVEL`]).
    pub nats_version: String,
    /// JetStream, when enabled (nats-server's `-js`); `None` serves core NATS only.
    pub jetstream: Option<JetStreamOptions>,
    /// NATS accounts besides `$G` (nats-server's `accounts { }`); the accounts users
    /// name in [`Auth::Users`] are added too.
    pub accounts: Vec<String>,
    /// Outbound bytes each NATS account's clients may hold together (weir's
    /// `account_max_outbound`); `None`: `max_outbound_total` shared evenly among the
    /// accounts (at least `max_pending`), so no account can take the others' share.
    pub account_max_outbound: Option<u64>,
    /// Subscription bytes each NATS account may hold (weir's `account_max_subs_memory`;
    /// see [`super::broker::SUB_OVERHEAD`]).
    pub account_max_subs_memory: u64,
    /// The client address advertised to the cluster, `host` or `host:port`
    /// (nats-server's `client_advertise`); `None`: the listen address.
    pub client_advertise: Option<String>,
    /// Lame-duck mode closes the clients spread over this time, grace period included
    /// (nats-server's `lame_duck_duration`, default 2 minutes).
    pub lame_duck_duration: Duration,
    /// Lame-duck mode waits this long before closing the first client (nats-server's
    /// `lame_duck_grace_period`, default 10 s).
    pub lame_duck_grace_period: Duration,
}

impl NatsConfig {
    /// Every NATS account of this config, `$G` first, without repeats.
    pub fn account_names(&self) -> Vec<String> {
        let mut names = vec![GLOBAL_ACCOUNT.to_owned()];
        let users = match &self.auth {
            Auth::Users(u) => u.users.iter().map(|u| u.account.clone()).collect(),
            Auth::Operator(t) => t.accounts.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for n in self.accounts.iter().cloned().chain(users) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    /// The memory limits of each NATS account (see [`NatsConfig::account_max_outbound`]).
    pub fn account_limits(&self) -> AccountLimits {
        let n = self.account_names().len() as u64;
        let even = (self.max_outbound_total / n).max(self.max_pending);
        AccountLimits {
            max_outbound: self.account_max_outbound.unwrap_or(even),
            max_subs_bytes: self.account_max_subs_memory,
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4222)),
            server_name: String::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_pending: DEFAULT_MAX_PENDING,
            max_outbound_total: DEFAULT_MAX_OUTBOUND_TOTAL,
            max_producer_stall: DEFAULT_MAX_PRODUCER_STALL,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            write_deadline: Duration::from_secs(10),
            seed: 0,
            auth: Auth::None,
            auth_timeout: Duration::from_secs(2),
            cluster: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            tls: None,
            nats_version: NATS_SERVER_LEVEL.to_owned(),
            jetstream: None,
            accounts: Vec::new(),
            account_max_outbound: None,
            account_max_subs_memory: crate::mem::spec(crate::mem::names::ACCOUNT_SUBS).default_limit,
            client_advertise: None,
            lame_duck_duration: DEFAULT_LAME_DUCK_DURATION,
            lame_duck_grace_period: DEFAULT_LAME_DUCK_GRACE_PERIOD,
        }
    }
}
