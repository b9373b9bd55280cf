//! [`Varz`]: a server snapshot for monitoring, shaped like nats-server's `/varz`.

use crate::server::route::{DropReason, RouteDropStat};
use serde::Serialize;

/// One ledger account in a [`Varz`].
#[derive(Clone, Debug, Serialize)]
pub struct MemAccount {
    /// Account name.
    pub name: String,
    /// Bytes charged now.
    pub current: u64,
    /// Highest charge seen.
    pub peak: u64,
    /// Limit.
    pub limit: u64,
}

/// A count by connection kind, as nats-server's `slow_consumer_stats` and
/// `stale_connection_stats` (weir has no gateways or leaf nodes).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct KindCounts {
    /// Client connections.
    pub clients: u64,
    /// Route connections.
    pub routes: u64,
    /// Gateway connections (none in weir).
    pub gateways: u64,
    /// Leaf node connections (none in weir).
    pub leafs: u64,
}

/// The cluster part of a [`Varz`].
#[derive(Clone, Debug, Serialize)]
pub struct ClusterVarz {
    /// Cluster name.
    pub name: String,
    /// Route listen host.
    pub addr: String,
    /// Route listen port.
    pub cluster_port: u16,
    /// Routes connected.
    pub routes: usize,
    /// Messages received from routes.
    pub route_in_msgs: u64,
    /// Messages sent to routes.
    pub route_out_msgs: u64,
    /// (subject, queue) interest pairs held for route peers.
    pub remote_subs: usize,
    /// Per route: messages and Raft frames dropped, by reason, and publisher stalls
    /// (see `server::route`'s "Publishers first"; the same figures `/routez` shows).
    pub route_drops: Vec<RouteDropStat>,
}

impl ClusterVarz {
    /// Core NATS messages dropped on every route, all reasons.
    pub fn route_dropped_msgs(&self) -> u64 {
        self.route_drops.iter().map(|r| r.drops.msgs.total()).sum()
    }
}

/// Server state for `/varz` and `/metrics`.
#[derive(Clone, Debug, Serialize)]
pub struct Varz {
    /// Server id.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// NATS server level advertised to clients (INFO `version`).
    pub version: String,
    /// Weir's own version.
    pub weir_version: String,
    /// Protocol level.
    pub proto: i64,
    /// Client listen host.
    pub host: String,
    /// Client listen port.
    pub port: u16,
    /// Largest accepted message.
    pub max_payload: usize,
    /// Per-client outbound cap.
    pub max_pending: u64,
    /// Most client connections at once.
    pub max_connections: usize,
    /// Most subscriptions per connection (0: no limit).
    pub max_subscriptions: usize,
    /// Longest protocol line a client may send, bytes.
    pub max_control_line: usize,
    /// Server PING interval, ns (nats-server writes Go durations as ns).
    pub ping_interval: u64,
    /// Unanswered server PINGs before a connection is stale.
    pub ping_max: u32,
    /// Write deadline, ns.
    pub write_deadline: u64,
    /// Seconds a client has to send CONNECT (authenticate).
    pub auth_timeout: f64,
    /// Seconds a client has to finish the TLS handshake (nats-server's default 2 without TLS).
    pub tls_timeout: f64,
    /// Clients must use TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    /// Clients must present a certificate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_verify: bool,
    /// The cluster's client URLs advertised to clients (INFO `connect_urls`), when clustered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Open client connections.
    pub connections: usize,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Messages received.
    pub in_msgs: u64,
    /// Messages sent.
    pub out_msgs: u64,
    /// Bytes received.
    pub in_bytes: u64,
    /// Bytes sent.
    pub out_bytes: u64,
    /// Clients disconnected as slow consumers.
    pub slow_consumers: u64,
    /// The same by connection kind, as nats-server's `slow_consumer_stats` (weir cuts
    /// only clients: a slow route drops messages instead, see `cluster.route_drops`).
    pub slow_consumer_stats: KindCounts,
    /// Clients closed as stale (too many unanswered PINGs).
    pub stale_connections: u64,
    /// The same by connection kind (nats-server's `stale_connection_stats`; clients only).
    pub stale_connection_stats: KindCounts,
    /// Read batches after which a publishing client waited for subscribers that fell
    /// behind (weir's fast-producer stall; nats-server counts them per connection).
    pub producer_stalls: u64,
    /// Subscriber queues a producer's wait gave up on after `max_producer_stall`.
    pub producer_stall_timeouts: u64,
    /// Connections closed at the `client.buffers` limit for holding the largest read
    /// buffer (`-ERR 'maximum client buffers exceeded'`; weir's own, issue 9 fault 4).
    pub read_buffers_shed: u64,
    /// Memory ledger accounts, as JSON `ledger` (nats-server's `mem` is the resident set
    /// size in bytes, a number that tools such as nats-top decode; the binary adds it).
    #[serde(rename = "ledger")]
    pub mem: Vec<MemAccount>,
    /// Routes connected (0 when not clustered).
    pub routes: usize,
    /// Cluster settings and route counters, when clustered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterVarz>,
    /// JetStream configuration and usage, when enabled (nats-server's `jetstream` block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<super::jsz::JetStreamVarz>,
}

impl Varz {
    /// Prometheus text exposition of the counters and ledger accounts.
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            s.push_str(&format!("# HELP weir_{name} {help}\n# TYPE weir_{name} {kind}\nweir_{name} {v}\n"));
        };
        metric("connections", "gauge", "Open client connections.", self.connections as u64);
        metric("total_connections", "counter", "Connections accepted.", self.total_connections);
        metric("subscriptions", "gauge", "Live subscriptions.", self.subscriptions as u64);
        metric("in_msgs_total", "counter", "Messages received from clients.", self.in_msgs);
        metric("out_msgs_total", "counter", "Messages sent to clients.", self.out_msgs);
        metric("in_bytes_total", "counter", "Bytes received from clients.", self.in_bytes);
        metric("out_bytes_total", "counter", "Bytes sent to clients.", self.out_bytes);
        metric("slow_consumers_total", "counter", "Clients closed as slow consumers.", self.slow_consumers);
        metric("stale_connections_total", "counter", "Clients closed as stale connections.", self.stale_connections);
        metric(
            "producer_stalls_total",
            "counter",
            "Read batches after which a publisher waited for subscribers that fell behind.",
            self.producer_stalls,
        );
        metric(
            "producer_stall_timeouts_total",
            "counter",
            "Subscriber queues a publisher's wait gave up on after max_producer_stall.",
            self.producer_stall_timeouts,
        );
        metric(
            "read_buffers_shed_total",
            "counter",
            "Connections closed at the client.buffers limit for holding the largest read buffer.",
            self.read_buffers_shed,
        );
        metric("routes", "gauge", "Connected routes.", self.routes as u64);
        if let Some(c) = &self.cluster {
            metric("route_in_msgs_total", "counter", "Messages received from routes.", c.route_in_msgs);
            metric("route_out_msgs_total", "counter", "Messages sent to routes.", c.route_out_msgs);
        }
        if let Some(c) = &self.cluster {
            write_route_drops(&mut s, &c.route_drops);
        }
        for (field, help) in [("current", "Bytes charged"), ("peak", "Peak bytes charged"), ("limit", "Limit")] {
            s.push_str(&format!(
                "# HELP weir_mem_{field}_bytes {help} per ledger account.\n# TYPE weir_mem_{field}_bytes gauge\n"
            ));
            for a in &self.mem {
                let v = match field {
                    "current" => a.current,
                    "peak" => a.peak,
                    _ => a.limit,
                };
                s.push_str(&format!("weir_mem_{field}_bytes{{account=\"{}\"}} {v}\n", a.name));
            }
        }
        s
    }
}

/// Per-route drop and stall counters in Prometheus text: `weir_route_dropped_total`
/// with labels `route` (dialled address), `class` (`msg`, `raft`) and `reason`, and
/// `weir_route_publisher_stalls_total` / `weir_route_publisher_stall_timeouts_total`
/// with label `route`. Every reason is written, zeros included, so a rate is defined
/// from the first scrape.
pub fn write_route_drops(s: &mut String, routes: &[RouteDropStat]) {
    use std::fmt::Write;
    s.push_str("# HELP weir_route_dropped_total Frames dropped on a route, by class and reason.\n");
    s.push_str("# TYPE weir_route_dropped_total counter\n");
    for r in routes {
        for (class, counts) in [("msg", &r.drops.msgs), ("raft", &r.drops.raft)] {
            for reason in DropReason::ALL {
                let _ = writeln!(
                    s,
                    "weir_route_dropped_total{{route=\"{}\",class=\"{class}\",reason=\"{}\"}} {}",
                    r.addr,
                    reason.name(),
                    counts.get(reason)
                );
            }
        }
    }
    for (name, help, get) in [
        (
            "route_publisher_stalls_total",
            "Times a publisher waited for a pressured route queue.",
            (|r: &RouteDropStat| r.drops.publisher_stalls) as fn(&RouteDropStat) -> u64,
        ),
        (
            "route_publisher_stall_timeouts_total",
            "Publisher waits that reached max_publisher_stall.",
            |r: &RouteDropStat| r.drops.publisher_stall_timeouts,
        ),
    ] {
        let _ = writeln!(s, "# HELP weir_{name} {help}\n# TYPE weir_{name} counter");
        for r in routes {
            let _ = writeln!(s, "weir_{name}{{route=\"{}\"}} {}", r.addr, get(r));
        }
    }
}
