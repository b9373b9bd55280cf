//! Link shaping hook. The simulator shapes route traffic here (latency, bandwidth,
//! partitions, holds) because madsim's TCP has none of that; in production there is
//! no shaper and frames go straight to the socket.

use crate::raft::NodeId;
use std::time::Duration;

/// What to do with the frame at the head of a route queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send it.
    Open,
    /// Discard it (the link is cut).
    Drop,
    /// Keep it queued and ask again later (the receiver is not reading).
    Hold,
}

/// Shapes traffic between nodes.
pub trait LinkShaper: Send + Sync + 'static {
    /// Delay before a frame of `bytes` enqueued now on `from -> to` may be written
    /// (propagation latency plus queueing behind earlier frames at the link's bandwidth).
    fn delay(&self, from: NodeId, to: NodeId, bytes: usize) -> Duration;
    /// Whether the frame at the head of `from -> to` may go now.
    fn gate(&self, from: NodeId, to: NodeId) -> Gate;
}
