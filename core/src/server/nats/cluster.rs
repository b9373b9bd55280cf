//! Clustering of core pub/sub over the route stack ([`crate::server::route`]): the
//! NATS-facing cluster settings, and the broker as the stack's [`PubSubRoutes`].
//!
//! Every server listens on a route port and dials each configured route (`--routes`);
//! it also dials back a peer that dialled it, and dials the route addresses a peer
//! lists in its handshake answer, so servers configured with the same seed list form a
//! full mesh. When a connection ends the receiver drops that peer's interest and the
//! dialler reconnects, starting again from a full interest snapshot. Connections,
//! handshake, keepalives and the slow-route policy are the stack's (see its module doc).

use super::broker::Message;
use super::outbound::Wakes;
use super::server::Shared;
use crate::proto::ByteStr;
use crate::raft::NodeId;
use crate::server::route::{PubSubRoutes, RouteConfig, RouteConnId, RouteFrame, RouteOut, RouteSetup};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::server::route::RouteTarget;

/// Default cap on one route's queued bytes.
pub const DEFAULT_ROUTE_MAX_PENDING: u64 = 32 * 1024 * 1024;
/// Default limit of the `route.outbound` ledger account (all routes together).
pub const DEFAULT_ROUTE_OUTBOUND_TOTAL: u64 = 256 * 1024 * 1024;

/// Route (cluster) settings of a NATS server.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Where peers dial us.
    pub listen: SocketAddr,
    /// Routes to dial (may include our own address, which is detected and skipped).
    pub routes: Vec<RouteTarget>,
    /// Cluster name; peers with another name are refused.
    pub name: String,
    /// Most bytes queued for one route (charged cost, see `route::out`); messages over
    /// it are dropped, once publishers have waited `max_publisher_stall`.
    pub max_pending: u64,
    /// Longest a publisher waits for a pressured route queue before going on (see the
    /// route stack's "Publishers first").
    pub max_publisher_stall: Duration,
    /// A write making no progress for this long ends the connection (the write deadline).
    pub stall_timeout: Duration,
    /// Keepalive period; a receiver that hears nothing for three of these ends the connection.
    pub ping_interval: Duration,
    /// Unanswered pings allowed before the connection is stale (nats-server's `ping_max`).
    pub max_pings_out: u32,
    /// First redial delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest redial delay.
    pub max_backoff: Duration,
    /// This server's node id on the routes (0 for a server without Raft).
    pub node: NodeId,
    /// Route TLS (nats-server's `cluster { tls { } }`): both sides verified against its
    /// `ca_file`; see [`crate::server::tls`]. `None`: plain TCP.
    pub tls: Option<crate::server::tls::TlsConfig>,
    /// Do not tell peers our client address nor clients the cluster's (nats-server's
    /// `cluster { no_advertise: true }`; see [`super::discovery`]).
    pub no_advertise: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6222)),
            routes: Vec::new(),
            name: "weir".to_owned(),
            max_pending: DEFAULT_ROUTE_MAX_PENDING,
            max_publisher_stall: Duration::from_millis(100),
            // A peer silent for a while (a pause, a stopped process, a busy disk) keeps
            // its route and its interest: writes end only after 15 s without progress,
            // and a peer is stale after 3 pings 5 s apart go unanswered (a receiver:
            // after 15 s of silence). nats-server waits longer still (2 min pings, and a
            // slow route write is retried), but its route buffers are unbounded; weir's
            // are capped, so a stall costs publishers a wait, not memory.
            stall_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(5),
            max_pings_out: 3,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            node: 0,
            tls: None,
            no_advertise: false,
        }
    }
}

impl ClusterConfig {
    /// Check that a route can carry the largest message a server with `max_payload`
    /// and `max_control_line` accepts: the per-route cap and the `route.outbound` limit
    /// (`route_total`) must each hold at least one such frame. The error names the
    /// settings to change (issue 9, fault 3: a too-large message must not vanish).
    pub fn check_sizes(&self, max_payload: usize, max_control_line: usize, route_total: u64) -> Result<(), String> {
        let need = crate::server::route::largest_msg_frame_cost(max_payload, max_control_line);
        if self.max_pending < need {
            return Err(format!(
                "cluster max_pending {} cannot hold one message of max_payload {max_payload} ({need} bytes queued); raise it or lower max_payload",
                self.max_pending
            ));
        }
        if route_total < need {
            return Err(format!(
                "route.outbound limit {route_total} cannot hold one message of max_payload {max_payload} ({need} bytes queued)"
            ));
        }
        Ok(())
    }

    /// The route stack's setup for a server with id `server_id`.
    pub fn route_setup(&self, server_id: &str) -> RouteSetup {
        RouteSetup {
            server_id: server_id.to_owned(),
            cluster: self.name.clone(),
            node: self.node,
            routes: self.routes.clone(),
            cfg: RouteConfig {
                max_pending_bytes: self.max_pending,
                stall_timeout: self.stall_timeout,
                ping_interval: self.ping_interval,
                max_pings_out: self.max_pings_out,
                min_backoff: self.min_backoff,
                max_backoff: self.max_backoff,
                max_publisher_stall: self.max_publisher_stall,
            },
        }
    }
}

/// The broker as the route stack sees it.
pub(super) struct BrokerRoutes(pub(super) Arc<Shared>);

impl PubSubRoutes for BrokerRoutes {
    fn out_open(&self, server_id: &str, conn: RouteConnId, out: &Arc<RouteOut>) {
        // Our client address goes first, before the interest snapshot.
        if let Some((host, port)) = self.0.advertised_client_addr() {
            out.push_control(crate::server::route::encode_client_url(host.as_deref(), port));
        }
        self.0.route_seen(server_id, true);
        let opened = self.0.broker().route_out_open(server_id, conn, out.clone());
        debug_assert!(opened, "the route stack admits one live connection per peer");
    }

    fn out_close(&self, server_id: &str, conn: RouteConnId) {
        self.0.broker().route_out_close(server_id, conn);
        self.0.route_gone(server_id);
    }

    fn in_open(&self, server_id: &str, conn: RouteConnId, addr: &str) {
        let opened = self.0.broker().route_in_open(server_id, conn, addr.to_owned());
        debug_assert!(opened, "the route stack admits one live connection per peer");
        self.0.urls_changed_if(|u| u.route_up(server_id, conn, addr));
    }

    fn in_close(&self, server_id: &str, conn: RouteConnId) {
        self.0.broker().route_in_close(server_id, conn);
        self.0.urls_changed_if(|u| u.route_down(server_id, conn));
    }

    fn frames(&self, server_id: &str, conn: RouteConnId, frames: &mut Vec<RouteFrame>) -> Result<(), String> {
        if frames.is_empty() {
            return Ok(());
        }
        // One clock read per batch, not per frame.
        self.0.route_seen(server_id, false);
        let mut wakes = Wakes::default();
        let mut broker = None;
        let mut ops = 0;
        let mut result = Ok(());
        for frame in frames.drain(..) {
            if result.is_err() {
                // The connection ends; the rest of the batch is dropped with it.
                continue;
            }
            if ops == OPS_PER_LOCK {
                // Bounded lock holds, as a client's read loop (`OPS_PER_LOCK`): hand the
                // lock on, and let the writers already fed start.
                if let Some(b) = broker.take() {
                    parking_lot::MutexGuard::unlock_fair(b);
                }
                wakes.wake_all();
                ops = 0;
            }
            ops += 1;
            let b = broker.get_or_insert_with(|| self.0.broker());
            result = match frame {
                RouteFrame::Sub { account, subject, queue } => {
                    b.route_interest(server_id, conn, true, &account, subject, queue)
                }
                RouteFrame::Unsub { account, subject, queue } => {
                    b.route_interest(server_id, conn, false, &account, subject, queue)
                }
                RouteFrame::Msg { account, subject, reply, headers, payload, queues } => {
                    let msg = Message {
                        subject: ByteStr::from(subject),
                        reply: reply.map(ByteStr::from),
                        // A peer may send an empty block; it is none (see `proto::encode_msg`).
                        headers: headers.filter(|h| !h.is_empty()).map(Bytes::from),
                        payload: Bytes::from(payload),
                    };
                    b.route_msg(server_id, conn, &account, &msg, &queues, &mut wakes);
                    Ok(())
                }
                RouteFrame::ClientUrl { host, port } => {
                    // Not under the broker lock: the URL set has its own, and a change
                    // sends INFO to clients.
                    broker = None;
                    self.0.urls_changed_if(|u| u.advertised(server_id, conn, host.as_deref(), port));
                    Ok(())
                }
                _ => Err("not a pub/sub frame".into()),
            };
        }
        drop(broker);
        wakes.wake_all();
        result
    }
}

/// Route frames applied per broker-lock hold (as a client's read loop applies its ops).
const OPS_PER_LOCK: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9, fault 3: a route that could not carry the largest accepted message is
    /// refused at start, naming the setting; the defaults carry nats-server's default
    /// `max_payload` and 20MB.
    #[test]
    fn route_sizes_must_admit_max_payload() {
        let cc = ClusterConfig::default();
        assert_eq!(cc.check_sizes(1 << 20, 4096, DEFAULT_ROUTE_OUTBOUND_TOTAL), Ok(()));
        assert_eq!(cc.check_sizes(20 << 20, 4096, DEFAULT_ROUTE_OUTBOUND_TOTAL), Ok(()));
        let e = cc.check_sizes(64 << 20, 4096, DEFAULT_ROUTE_OUTBOUND_TOTAL).unwrap_err();
        assert!(e.contains("cluster max_pending") && e.contains("max_payload 67108864"), "{e}");
        let e = cc.check_sizes(20 << 20, 4096, 8 << 20).unwrap_err();
        assert!(e.contains("route.outbound limit"), "{e}");
    }
}
