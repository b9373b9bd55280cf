//! Routes: the one stack of server-to-server links, carrying core pub/sub (interest
//! and messages) and Raft traffic on the same connections.
//!
//! - [`frame`]: the wire format, one [`RouteFrame`] type for every kind of traffic, and
//!   the handshake ([`Hello`]) that tells each side the other's server id (pub/sub,
//!   gossip) and Raft node id (Raft).
//! - [`out`]: [`RouteOut`], the bounded outbound queue of one connection, charged to
//!   the `route.outbound` ledger account, with the per-class policy below.
//! - [`stack`]: [`Routes`], the async shell: listener, diallers (configured routes,
//!   dial-back, gossip), handshake, the writer pump with keepalives and stall
//!   detection, and the reader that hands pub/sub frames to a [`PubSubRoutes`] and Raft
//!   frames to the node's inbox.
//!
//! **Connections.** Each server dials every peer it knows and sends only on the
//! connection it dialled; it receives on the connections peers dial to it. So each pair
//! of servers has two connections, one per direction, and at most one live connection
//! per direction (a second one from the same server is refused until the first ends;
//! every way an accepted connection ends, a failed handshake answer included, frees
//! the slot, or the peer would stay refused for as long as both live).
//! Each direction has exactly one [`RouteOut`], holding every class of traffic.
//!
//! **Slow-route policy.** A queue holds at most `max_pending_bytes` and every queued
//! byte is charged to `route.outbound` (node-wide limit); when a frame does not fit,
//! its class decides:
//!
//! | class | when it does not fit | why |
//! |---|---|---|
//! | interest (`Sub`/`Unsub`), `Ping` | evict queued Raft frames, oldest first; if still no room, close the queue: the connection ends, the receiver drops all of this server's interest, and the next connection starts with a full interest snapshot | a lost interest change would be wrong for as long as the connection lives (messages silently missing or sent in vain); a resync is always correct |
//! | core NATS `Msg` | drop the new message, count it (per route and reason), evict nothing | core NATS is at-most-once; the publisher is not told, as in nats-server; evicting older messages would only trade one loss for another |
//! | `Raft` | evict queued Raft frames, oldest first, to make room; if even that cannot, drop the new frame | Raft tolerates loss (it retries on its own heartbeats and acks) and a newer heartbeat or append supersedes an older one, so the newest are worth keeping |
//!
//! **Publishers first.** Dropping is the last resort: once a queue is over half its cap
//! it is *pressured*, and every client whose message went to it waits, with the broker
//! lock released, until the queue drains below a quarter of its cap, its connection
//! ends, or `max_publisher_stall` passes (then it goes on; drops follow only if the
//! queue fills up). A publisher's socket is not read meanwhile, so TCP slows it too, as
//! nats-server stalls producers feeding a slow connection. The wait is a plain timer and
//! a watch channel, so the simulation runs it deterministically.
//!
//! **Drops are counted and exported** per route (dialled address) and per reason
//! (`queue_full`, `memory`, `too_large`, and `evicted` for Raft) in
//! [`out::RouteDrops`], read through [`Routes::route_drops`] by `/varz`, `/metrics` and
//! `/routez`; the 1st, 2nd, 4th... drop of each kind is logged.
//!
//! **Sizes.** The frame limit admits the largest message a server may accept (see
//! `server::frame::MAX_FRAME`), and a server refuses at start a route queue or
//! `route.outbound` limit too small for its `max_payload` (see
//! [`largest_msg_frame_cost`]).
//!
//! A connection also ends (queue released, peer redialled with backoff) the ways a
//! real one does, as nats-server's routes: the dialler sends a `Ping` every
//! `ping_interval` and the acceptor answers `Pong` (from a writer beside its read loop,
//! so that a stuck pong never holds off the frames behind it); when a ping is due while
//! `max_pings_out` are still unanswered the dialler ends the connection ("stale
//! connection"); a write that makes no progress for `stall_timeout` ends it; the
//! acceptor ends it when it hears nothing, not even a `Ping`, for three ping intervals;
//! and any read or write error or end of stream ends it. Nothing asks the network
//! whether a link is cut: a partition is noticed by these timeouts only. Ending the
//! connection (rather than dropping frames one by one) keeps interest exact: while a
//! peer is unreachable it is not a route, and Raft frames for it are dropped at the
//! send (counted) instead of queued.
//!
//! **Inbound back-pressure.** Raft frames go to the node's bounded inbox
//! ([`crate::server::inbox`], by count and by bytes charged to `raft.inbox`) with an
//! awaited send: a full inbox stops the connection's reader, so a slow node slows its
//! peers' writers (and, past `stall_timeout`, ends the connection) instead of growing.
//! Pub/sub frames are applied to the broker inline; its own outbound queues bound them.

pub mod frame;
pub mod out;
pub mod stack;

pub use frame::{Hello, RouteFrame, encode_client_url, encode_interest, encode_msg, encode_raft};
pub use out::{
    Class, DropReason, QueuedFrame, ReasonCounts, RouteDropCounts, RouteDrops, RouteOut, RoutePush, frame_cost,
};
pub use stack::{Handlers, PubSubRoutes, RouteConnId, RouteDropStat, RouteSetup, Routes};

use crate::raft::NodeId;
use std::time::Duration;

/// Route tuning shared by every user of the stack.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Most bytes queued for one peer (see the policy table above).
    pub max_pending_bytes: u64,
    /// A write making no progress for this long ends the connection (the write deadline).
    pub stall_timeout: Duration,
    /// Keepalive period; a receiver that hears nothing for three of these ends the connection.
    pub ping_interval: Duration,
    /// Pings the dialler lets go unanswered; when the next is due with this many still
    /// out, the connection ends (nats-server's `ping_max`, default 2).
    pub max_pings_out: u32,
    /// First redial delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest redial delay.
    pub max_backoff: Duration,
    /// Longest a publisher waits for a pressured queue to drain before going on (see
    /// "Publishers first" above); each message sent to a still-pressured queue may wait
    /// this long again.
    pub max_publisher_stall: Duration,
}

/// Room a message frame needs besides its payload and headers: subject and reply
/// (within the control line), account, queue names and framing.
pub const MSG_FRAME_SLACK: usize = 64 * 1024;

/// What the largest message a server with `max_payload` and `max_control_line` accepts
/// costs queued on a route (see [`frame_cost`]). A route queue or `route.outbound`
/// account smaller than this could never forward it, so a server refuses such a
/// configuration at start.
pub fn largest_msg_frame_cost(max_payload: usize, max_control_line: usize) -> u64 {
    frame_cost(4 + max_payload + max_control_line + MSG_FRAME_SLACK)
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            max_pending_bytes: 4 * 1024 * 1024,
            stall_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            max_pings_out: 2,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            max_publisher_stall: Duration::from_millis(100),
        }
    }
}

/// A route to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    /// `host:port` of the peer's route listener.
    pub addr: String,
    /// The peer's Raft node id, when known in advance (0 otherwise). Informational: the
    /// stack learns every peer's id from its handshake.
    pub node: NodeId,
}

impl RouteTarget {
    /// A route to `addr` with no node id known in advance.
    pub fn new(addr: impl Into<String>) -> RouteTarget {
        RouteTarget { addr: addr.into(), node: 0 }
    }
}
