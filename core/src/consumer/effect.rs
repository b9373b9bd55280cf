//! What a [`Consumer`](super::Consumer) asks its host to do ([`Effect`]), and the
//! inflight charge every delivery carries until the shell has handed it to a client.

use crate::mem::Charge;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a loaded message held for delivery; released when dropped (the shell drops it
/// once the message is in the client's outbound buffer).
pub struct InflightCharge {
    pub(super) window: Arc<AtomicU64>,
    pub(super) _node: Option<Charge>,
    pub(super) bytes: u64,
}

impl InflightCharge {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for InflightCharge {
    fn drop(&mut self) {
        self.window.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for InflightCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InflightCharge({})", self.bytes)
    }
}

/// A message to send to a client.
#[derive(Debug)]
pub struct Delivery {
    /// Where to send it: the pull request's reply subject or the push deliver subject.
    pub to: String,
    /// The message's own subject (what the client sees as the subject).
    pub subject: String,
    /// The ack reply subject (`$JS.ACK...`), present under every ack policy for metadata.
    pub reply: String,
    /// Header block (with `Nats-Msg-Size` for `headers_only`); may be empty.
    pub headers: Vec<u8>,
    /// Payload (empty for `headers_only`).
    pub payload: Vec<u8>,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence of this delivery.
    pub consumer_seq: u64,
    /// Delivery count (1 for the first delivery).
    pub deliveries: u64,
    /// Charge for the loaded bytes: drop it once the message is handed off.
    pub charge: InflightCharge,
}

/// Why a consumer no longer needs a stream sequence (for interest/workqueue retention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneReason {
    /// Acked (explicitly, or by an ack-all of a later message).
    Acked,
    /// `+TERM`.
    Terminated,
    /// Delivered `max_deliver` times without an ack (nats-server keeps such messages in
    /// interest/workqueue streams; the host decides).
    MaxDeliveries,
    /// Delivered under ack policy none.
    Delivered,
}

/// Advisories nats-server publishes under `$JS.EVENT.ADVISORY.CONSUMER.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advisory {
    /// `MAX_DELIVERIES`: a message ran out of deliveries.
    MaxDeliveries {
        /// Stream sequence.
        stream_seq: u64,
        /// Deliveries made.
        deliveries: u64,
    },
    /// `MSG_TERMINATED`: a client terminated a message.
    Terminated {
        /// Stream sequence.
        stream_seq: u64,
        /// Consumer sequence of the delivery the TERM answered.
        consumer_seq: u64,
        /// Deliveries made.
        deliveries: u64,
        /// The client's reason (may be empty).
        reason: String,
    },
    /// `PINNED`: a `pinned_client` consumer handed out a new pin.
    Pinned {
        /// The priority group.
        group: String,
        /// The new pin id.
        pinned_id: String,
    },
    /// `UNPINNED`: a pin was dropped.
    Unpinned {
        /// The priority group.
        group: String,
        /// `"timeout"` (no request carried it for `priority_timeout`) or `"admin"` (the UNPIN API).
        reason: String,
    },
    /// `MSG_NAKED`: a client NAKed a message.
    Nak {
        /// Stream sequence.
        stream_seq: u64,
        /// Consumer sequence of the NAKed delivery.
        consumer_seq: u64,
        /// Deliveries made.
        deliveries: u64,
    },
}

/// What the consumer asks its host to do.
#[derive(Debug)]
pub enum Effect {
    /// Send a stream message.
    Deliver(Delivery),
    /// Send a status-only message (no payload): pull statuses, heartbeats, flow control.
    Status {
        /// Subject to send to.
        to: String,
        /// Reply subject (flow-control requests carry `$JS.FC...`).
        reply: Option<String>,
        /// The `NATS/1.0 <code> <text>` header block.
        headers: Vec<u8>,
    },
    /// Answer an AckSync (double ack) with an empty message.
    AckReply {
        /// The ack message's reply subject.
        to: String,
    },
    /// This consumer no longer needs `seq` (interest/workqueue retention).
    Done {
        /// Stream sequence.
        seq: u64,
        /// Why.
        reason: DoneReason,
    },
    /// Publish an advisory.
    Advisory(Advisory),
    /// The consumer passed its inactivity threshold: delete it.
    Inactive,
}
