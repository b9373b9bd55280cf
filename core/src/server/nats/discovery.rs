//! Cluster discovery: the client URLs of the servers in the cluster, which INFO
//! advertises as `connect_urls` so that clients learn servers they were not given.
//!
//! As nats-server: every server tells its peers its advertised client address
//! (`client_advertise`, else its client listen address) when its route to them comes
//! up ([`crate::server::route::RouteFrame::ClientUrl`]); the peer keeps it while that
//! peer's connection to it lives. A server whose listen host is unspecified
//! (`0.0.0.0`) sends no host, and the receiver uses the host the route came from.
//! When the set changes, the server sends a second (asynchronous) INFO to its
//! clients. `no_advertise` turns both off: no URL sent, none advertised.

use crate::server::route::RouteConnId;
use std::collections::BTreeMap;

/// One peer's client URL, learnt on its inbound route connection.
#[derive(Debug)]
struct PeerUrl {
    conn: RouteConnId,
    /// The host the peer's route came from (used when it sends no host).
    route_host: String,
    url: Option<String>,
}

/// The client URLs this server knows: its own and its connected peers'.
#[derive(Debug, Default)]
pub struct ClientUrls {
    own: Option<String>,
    peers: BTreeMap<String, PeerUrl>,
}

impl ClientUrls {
    /// A set holding this server's own advertised URL (`None`: not advertised).
    pub fn new(own: Option<String>) -> ClientUrls {
        ClientUrls { own, peers: BTreeMap::new() }
    }

    /// Peer `server_id`'s connection `conn` to us came up from route address `route_addr`
    /// (`host:port`); a URL from an earlier connection of it is forgotten. Returns
    /// whether the URL set changed.
    pub fn route_up(&mut self, server_id: &str, conn: RouteConnId, route_addr: &str) -> bool {
        let route_host = route_addr.rsplit_once(':').map_or(route_addr, |(h, _)| h).to_owned();
        let old = self.peers.insert(server_id.to_owned(), PeerUrl { conn, route_host, url: None });
        old.is_some_and(|p| p.url.is_some())
    }

    /// Peer `server_id` on `conn` advertised its client address (`host` `None`: the host
    /// its route came from). Returns whether the URL set changed.
    pub fn advertised(&mut self, server_id: &str, conn: RouteConnId, host: Option<&str>, port: u16) -> bool {
        let Some(p) = self.peers.get_mut(server_id).filter(|p| p.conn == conn) else { return false };
        let url = Some(host_port(host.unwrap_or(&p.route_host), port));
        let changed = p.url != url;
        p.url = url;
        changed
    }

    /// Peer `server_id`'s connection `conn` ended. Returns whether the URL set changed.
    pub fn route_down(&mut self, server_id: &str, conn: RouteConnId) -> bool {
        if self.peers.get(server_id).is_some_and(|p| p.conn == conn) {
            return self.peers.remove(server_id).is_some_and(|p| p.url.is_some());
        }
        false
    }

    /// Every known URL (`host:port`), sorted and without duplicates.
    pub fn urls(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.own.iter().chain(self.peers.values().filter_map(|p| p.url.as_ref())).cloned().collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_routes() {
        let mut u = ClientUrls::new(Some("10.0.0.1:4222".into()));
        assert_eq!(u.urls(), vec!["10.0.0.1:4222"]);
        assert!(!u.route_up("B", 1, "10.0.0.2:6222"));
        assert!(u.advertised("B", 1, None, 4222), "host from the route");
        assert!(!u.advertised("B", 1, None, 4222), "same URL again is no change");
        assert!(!u.advertised("B", 9, Some("x"), 1), "another connection's frame is ignored");
        assert!(!u.route_up("C", 2, "10.0.0.3:6222"));
        assert!(u.advertised("C", 2, Some("c.example"), 4333));
        assert_eq!(u.urls(), vec!["10.0.0.1:4222", "10.0.0.2:4222", "c.example:4333"]);
        assert!(!u.route_down("B", 7), "a stale connection's end changes nothing");
        assert!(u.route_down("B", 1));
        assert_eq!(u.urls(), vec!["10.0.0.1:4222", "c.example:4333"]);
        assert!(u.route_up("C", 3, "10.0.0.3:6222"), "a new connection forgets the old URL");
        assert_eq!(u.urls(), vec!["10.0.0.1:4222"]);
        assert_eq!(host_port("::1", 5), "[::1]:5");
    }
}
