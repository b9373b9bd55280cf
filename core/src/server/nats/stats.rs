//! Server-wide counters read by monitoring (`/varz`, `/metrics`).

use std::sync::atomic::AtomicU64;

/// Message and connection counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received from clients.
    pub in_msgs: AtomicU64,
    /// Payload and header bytes received from clients.
    pub in_bytes: AtomicU64,
    /// Messages queued to clients.
    pub out_msgs: AtomicU64,
    /// Payload and header bytes queued to clients.
    pub out_bytes: AtomicU64,
    /// Clients disconnected as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Messages not queued to a client because the shared `client.outbound` limit was
    /// reached and no larger queue could be cut (the client stays connected).
    pub outbound_dropped: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
    /// Messages received from route peers.
    pub route_in_msgs: AtomicU64,
    /// Messages queued to route peers (one per peer a message went to).
    pub route_out_msgs: AtomicU64,
}
