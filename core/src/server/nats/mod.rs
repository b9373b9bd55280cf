//! A standalone NATS core pub/sub server (no Raft): INFO/CONNECT, PUB/HPUB,
//! SUB/UNSUB (with auto-unsubscribe), queue groups, request/reply with
//! no-responders, token or user/password auth, server PINGs with stale-connection detection, per-client
//! bounded outbound with slow-consumer disconnects, and a draining shutdown.
//!
//! Clustering: servers joined by routes share interest so that a message
//! published on one reaches subscribers on all (full mesh, one hop), with queue
//! groups served once cluster-wide.
//!
//! Layout: [`broker`] (shared routing state) and [`conn`] (per-connection
//! protocol state) are synchronous; [`server`] is the thin async shell around
//! them; [`outbound`] is the bounded queue between the two. [`cluster`] plugs the
//! broker into the route stack ([`crate::server::route`]), which it shares with Raft.

pub mod accountz;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod connz;
pub mod discovery;
pub mod js;
pub mod jsz;
pub mod jwt;
pub mod outbound;
pub mod readbuf;
pub mod reload;
pub mod server;
pub mod stats;
pub mod varz;

pub use auth::Auth;
pub use broker::BrokerBugs;
pub use cluster::{ClusterConfig, RouteTarget};
pub use config::NatsConfig;
pub use js::JetStreamOptions;
pub use jsz::Jsz;
pub use server::{LameDuck, Monitor, NatsServer, cluster_ledger, ledger, ledger_for};
pub use varz::Varz;
