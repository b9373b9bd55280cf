//! The simulator's one node-number type and its conversions.
//!
//! A node is numbered `1..=nodes`; `0` is the harness ([`weir_traces::HARNESS`]).
//! The same number names the node in traces ([`weir_traces::NodeNo`]), in fault
//! schedules ([`weir_faults::Node`]), in its IP address (`10.0.0.N`) and, widened, as
//! its id on routes and in Raft ([`weir_core::raft::NodeId`]). Convert with the
//! helpers here rather than with casts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use weir_core::raft::NodeId;

/// A simulated node's number (1-based; 0 is the harness).
pub type NodeNo = weir_traces::NodeNo;

// Schedules and traces name nodes with the same type.
const _: fn(weir_faults::Node) -> NodeNo = |n| n;

/// The IP address of node `no`: `10.0.0.no`.
pub fn ip(no: NodeNo) -> IpAddr {
    let octet = u8::try_from(no).expect("node numbers fit one address octet (config allows 1..=9)");
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, octet))
}

/// The node whose address is `ip`, if it is a cluster node's (`10.0.0.N`).
pub fn from_ip(ip: IpAddr) -> Option<NodeNo> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 0] && v4.octets()[3] >= 1 => Some(NodeNo::from(v4.octets()[3])),
        _ => None,
    }
}

/// Node `no`'s address on `port`.
pub fn addr(no: NodeNo, port: u16) -> SocketAddr {
    SocketAddr::new(ip(no), port)
}

/// The address of the machine that runs a world's clients (not a cluster node).
pub fn client_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1))
}

/// Node `no`'s id on routes and in Raft.
pub fn id(no: NodeNo) -> NodeId {
    NodeId::from(no)
}

/// The node number of route/Raft id `id`, if it names a simulated node.
pub fn from_id(id: NodeId) -> Option<NodeNo> {
    NodeNo::try_from(id).ok().filter(|&n| n >= 1)
}

/// Every node of a cluster of `nodes`.
pub fn all(nodes: NodeNo) -> RangeInclusive<NodeNo> {
    1..=nodes
}

/// Node `no`'s slot in a vector indexed from node 1.
pub fn index(no: NodeNo) -> usize {
    usize::from(no).checked_sub(1).expect("node numbers start at 1")
}

/// The node that the `i`-th of several clients (or attempts) uses, round-robin.
pub fn round_robin(i: u64, nodes: NodeNo) -> NodeNo {
    let k = i % u64::from(nodes);
    NodeNo::try_from(k).expect("k < nodes fits a node number") + 1
}
