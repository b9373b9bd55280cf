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
    /// Propagation delay for a frame of `bytes` enqueued now on `from -> to`: it may not
    /// be written before then. Frames pipeline: each carries its own deadline.
    fn delay(&self, from: NodeId, to: NodeId, bytes: usize) -> Duration;
    /// How long writing a frame of `bytes` at the head of `from -> to` occupies the link
    /// (its serialisation time at the link's bandwidth). Charged when the frame leaves
    /// the queue, so a slow link backs frames up in the bounded route queue.
    fn pace(&self, _from: NodeId, _to: NodeId, _bytes: usize) -> Duration {
        Duration::ZERO
    }
    /// Whether the frame at the head of `from -> to` may go now.
    fn gate(&self, from: NodeId, to: NodeId) -> Gate;
}
