//! JetStream history events: what the simulated JetStream clients did and saw, as the
//! `js-single` world records them for its checker (`weir_sim::check::js`).
//!
//! The history is Jepsen-style: a publish attempt ([`JsEvent::Publish`]) ends in a
//! PubAck, a definite failure or an unknown outcome; consumers record every delivery
//! with the metadata of its ack reply subject and every ack they send; samplers record
//! consumer and stream info. Streams and consumers are named as on the wire.

use serde::{Deserialize, Serialize};

/// How a consumer answered a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckKind {
    /// `+ACK`.
    Ack,
    /// `-NAK` (redeliver).
    Nak,
    /// `+TERM` (never redeliver).
    Term,
}

impl AckKind {
    /// The name as rendered: `ack`, `nak`, `term`.
    pub fn name(self) -> &'static str {
        match self {
            AckKind::Ack => "ack",
            AckKind::Nak => "nak",
            AckKind::Term => "term",
        }
    }
}

/// One JetStream history event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JsEvent {
    /// A publish attempt of `value` to `stream` (a retry of a `Nats-Msg-Id` publish repeats
    /// the value; `msg_id` says whether the attempt carried one).
    Publish {
        /// Publisher number.
        client: u32,
        /// The message's unique value (it determines subject, payload and Msg-Id).
        value: u64,
        /// The stream the subject belongs to.
        stream: String,
        /// Whether the attempt carried `Nats-Msg-Id`.
        msg_id: bool,
    },
    /// The attempt was answered with a PubAck.
    PubAck {
        /// Publisher number.
        client: u32,
        /// The value.
        value: u64,
        /// Stream sequence in the PubAck.
        seq: u64,
        /// The PubAck's `duplicate` flag.
        duplicate: bool,
    },
    /// The attempt definitely failed (an error PubAck, no responders).
    PubFail {
        /// Publisher number.
        client: u32,
        /// The value.
        value: u64,
        /// Why.
        reason: String,
    },
    /// The attempt's outcome is unknown (timeout, connection lost).
    PubUnknown {
        /// Publisher number.
        client: u32,
        /// The value.
        value: u64,
        /// Why.
        reason: String,
    },
    /// A consumer received a message; the sequences come from its ack reply subject.
    Deliver {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
        /// The value read from the payload (0 when unreadable).
        value: u64,
        /// Whether subject and payload are exactly what was published for `value`.
        intact: bool,
        /// Stream sequence.
        stream_seq: u64,
        /// Consumer sequence.
        consumer_seq: u64,
        /// Delivery count (1 for a first delivery).
        delivered: u64,
    },
    /// A consumer sent an ack, nak or term for `stream_seq` (`confirmed: false`), or the
    /// server answered its double-ack (`confirmed: true`).
    Ack {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
        /// Stream sequence acknowledged.
        stream_seq: u64,
        /// What was sent.
        kind: AckKind,
        /// Whether this records the server's answer rather than the sending.
        confirmed: bool,
    },
    /// A consumer info sample.
    ConsumerInfo {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
        /// `delivered.stream_seq`.
        delivered_stream_seq: u64,
        /// `ack_floor.stream_seq`.
        ack_floor_stream_seq: u64,
        /// `num_ack_pending`.
        num_ack_pending: u64,
        /// `num_pending`.
        num_pending: u64,
    },
    /// A stream info sample (with per-subject counts).
    StreamInfo {
        /// Stream.
        stream: String,
        /// `state.messages`.
        msgs: u64,
        /// `state.bytes`.
        bytes: u64,
        /// `state.first_seq`.
        first_seq: u64,
        /// `state.last_seq`.
        last_seq: u64,
        /// `state.subjects`, in subject order.
        subjects: Vec<(String, u64)>,
        /// Sequences the stream reports lost to damage (`state.lost.msgs`).
        lost: Vec<u64>,
    },
    /// A client asked to delete `seq` (`done: false`) or the delete succeeded (`done: true`).
    Delete {
        /// Stream.
        stream: String,
        /// The sequence.
        seq: u64,
        /// Whether the server confirmed it.
        done: bool,
    },
}

impl JsEvent {
    /// The variant's short name, e.g. `pub-ack`.
    pub fn name(&self) -> &'static str {
        match self {
            JsEvent::Publish { .. } => "publish",
            JsEvent::PubAck { .. } => "pub-ack",
            JsEvent::PubFail { .. } => "pub-fail",
            JsEvent::PubUnknown { .. } => "pub-unknown",
            JsEvent::Deliver { .. } => "deliver",
            JsEvent::Ack { .. } => "ack",
            JsEvent::ConsumerInfo { .. } => "consumer-info",
            JsEvent::StreamInfo { .. } => "stream-info",
            JsEvent::Delete { .. } => "delete",
        }
    }

    /// The fields as `key=value` pairs on one line, after the variant's name.
    pub fn render(&self) -> String {
        let fields = match self {
            JsEvent::Publish { client, value, stream, msg_id } => {
                format!("client={client} value={value:#x} stream={stream:?} msg_id={msg_id}")
            }
            JsEvent::PubAck { client, value, seq, duplicate } => {
                format!("client={client} value={value:#x} seq={seq} duplicate={duplicate}")
            }
            JsEvent::PubFail { client, value, reason } | JsEvent::PubUnknown { client, value, reason } => {
                format!("client={client} value={value:#x} reason={reason:?}")
            }
            JsEvent::Deliver { stream, consumer, value, intact, stream_seq, consumer_seq, delivered } => format!(
                "stream={stream:?} consumer={consumer:?} value={value:#x} intact={intact} sseq={stream_seq} cseq={consumer_seq} dc={delivered}"
            ),
            JsEvent::Ack { stream, consumer, stream_seq, kind, confirmed } => {
                format!(
                    "stream={stream:?} consumer={consumer:?} sseq={stream_seq} kind={} confirmed={confirmed}",
                    kind.name()
                )
            }
            JsEvent::ConsumerInfo {
                stream,
                consumer,
                delivered_stream_seq,
                ack_floor_stream_seq,
                num_ack_pending,
                num_pending,
            } => format!(
                "stream={stream:?} consumer={consumer:?} delivered={delivered_stream_seq} ack_floor={ack_floor_stream_seq} ack_pending={num_ack_pending} pending={num_pending}"
            ),
            JsEvent::StreamInfo { stream, msgs, bytes, first_seq, last_seq, subjects, lost } => format!(
                "stream={stream:?} msgs={msgs} bytes={bytes} first={first_seq} last={last_seq} subjects={} lost={lost:?}",
                subjects.len()
            ),
            JsEvent::Delete { stream, seq, done } => format!("stream={stream:?} seq={seq} done={done}"),
        };
        format!("{} {fields}", self.name())
    }
}
