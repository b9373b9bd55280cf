//! Server-wide counters read by monitoring (`/varz`, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Clients closed as stale (`-ERR 'Stale Connection'`: too many unanswered PINGs).
    pub stale_connections: AtomicU64,
    /// Messages not queued to a client because the shared `client.outbound` limit was
    /// reached and no larger queue could be cut (the client stays connected).
    pub outbound_dropped: AtomicU64,
    /// Read batches after which a publishing client waited for subscriber queues that
    /// fell behind (the fast-producer stall; see `outbound`).
    pub producer_stalls: AtomicU64,
    /// Queues whose producer's wait reached `max_producer_stall` while still behind.
    pub producer_stall_timeouts: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
    /// Messages received from route peers.
    pub route_in_msgs: AtomicU64,
    /// Messages queued to route peers (one per peer a message went to).
    pub route_out_msgs: AtomicU64,
    /// Local subscriptions ever added (`/subsz` `num_inserts`).
    pub sub_inserts: AtomicU64,
    /// Local subscriptions ever removed (`/subsz` `num_removes`).
    pub sub_removes: AtomicU64,
    /// Local subscription lookups for client publishes (`/subsz` `num_matches`).
    pub sub_matches: AtomicU64,
    /// Subscriptions those lookups selected, summed (`/subsz` `avg_fanout`).
    pub sub_fanout: AtomicU64,
    /// Most subscriptions one lookup selected (`/subsz` `max_fanout`).
    pub sub_max_fanout: AtomicU64,
}

impl Stats {
    /// Count one subscription lookup that selected `fanout` subscriptions.
    pub fn count_match(&self, fanout: u64) {
        self.sub_matches.fetch_add(1, Ordering::Relaxed);
        self.sub_fanout.fetch_add(fanout, Ordering::Relaxed);
        self.sub_max_fanout.fetch_max(fanout, Ordering::Relaxed);
    }
}
