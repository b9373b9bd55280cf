//! A standalone NATS core pub/sub server (no Raft): INFO/CONNECT, PUB/HPUB,
//! SUB/UNSUB (with auto-unsubscribe), queue groups, request/reply with
//! no-responders, token or user/password auth, server PINGs with stale-connection detection, per-client
//! bounded outbound with slow-consumer disconnects, and a draining shutdown.
//!
//! Layout: [`broker`] (shared routing state) and [`conn`] (per-connection
//! protocol state) are synchronous; [`server`] is the thin async shell around
//! them; [`outbound`] is the bounded queue between the two.

pub mod auth;
pub mod broker;
pub mod config;
pub mod conn;
pub mod outbound;
pub mod server;
pub mod stats;
pub mod varz;

pub use auth::Auth;
pub use config::NatsConfig;
pub use server::{Monitor, NatsServer, ledger};
pub use varz::Varz;
