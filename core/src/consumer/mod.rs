//! JetStream consumers: config, the delivery state machine, acks, pull requests, info.
//!
//! A [`Consumer`] is a pure state machine in the style of the Raft node: the host (the
//! stream's owner in the server) feeds it inputs with the current time in nanoseconds and
//! a [`StreamReader`] over the stream, then sends what [`Consumer::drain_effects`] returns.
//! It never reads a clock and never does I/O, so it runs unchanged in tests, in the
//! simulator and, later, as the applied state of a replicated consumer.
//!
//! | input | method |
//! |---|---|
//! | `CONSUMER.MSG.NEXT` request (and `+NXT`) | [`Consumer::on_pull_request`] |
//! | a message on `$JS.ACK.<stream>.<consumer>...` | [`Consumer::on_ack`] |
//! | a message on `$JS.FC.<stream>.<consumer>.<id>` | [`Consumer::on_flow_control_reply`] |
//! | push deliver subject gained/lost subscribers | [`Consumer::set_push_active`] |
//! | the stream stored / removed / purged messages | [`Consumer::on_stream_append`], [`Consumer::on_stream_remove`], [`Consumer::on_stream_purge`] |
//! | time passed (at [`Consumer::next_deadline`]) | [`Consumer::tick`] |
//! | inflight charges were dropped, or appends arrived | [`Consumer::poll`] |
//! | `CONSUMER.PAUSE`, update, delete | [`Consumer::pause`], [`Consumer::update_config`], [`Consumer::delete`] |
//! | `CONSUMER.UNPIN` (priority groups), `CONSUMER.RESET` | [`Consumer::unpin`], [`Consumer::reset`] |
//!
//! Effects ([`Effect`]): deliveries (each holding an [`InflightCharge`] the shell drops once
//! the message is in the client's outbound buffer), status-only messages (404/408/409/100
//! and flow-control requests, byte-exact as nats-server sends them), AckSync replies,
//! `Done` for interest/workqueue retention, advisories, and `Inactive` for expiry.
//! Persist [`Consumer::state`] when [`Consumer::state_version`] moves.
//!
//! ```
//! use weir_core::consumer::{Consumer, ConsumerConfig, ConsumerOptions, Effect, StreamSummary};
//! use weir_core::consumer::testing::StoreReader;
//! use weir_core::store::{MemStore, MsgStore, StoreLimits};
//!
//! let mut store = StoreReader(MemStore::new(StoreLimits::default()).unwrap());
//! store.0.append("orders.new", b"", b"hello", 1_000).unwrap();
//! let stream = StreamSummary { name: "ORDERS".into(), subjects: vec!["orders.>".into()], replicas: 1, ..Default::default() };
//! let cfg: ConsumerConfig = serde_json::from_str(r#"{"durable_name":"worker","ack_policy":"explicit"}"#).unwrap();
//! let mut c = Consumer::create(&stream, cfg, 0, &mut store, ConsumerOptions::default()).unwrap();
//! assert_eq!(c.num_pending(), 1);
//!
//! c.on_pull_request(10, "_INBOX.1", br#"{"batch":10,"expires":5000000000}"#, &mut store);
//! let Some(Effect::Deliver(d)) = c.drain_effects().into_iter().next() else { panic!() };
//! assert_eq!((d.to.as_str(), d.payload.as_slice()), ("_INBOX.1", &b"hello"[..]));
//! assert_eq!(d.reply, "$JS.ACK.ORDERS.worker.1.1.1.1000.0");
//! drop(d); // handed to the client: the inflight charge comes back
//!
//! c.on_ack(20, "$JS.ACK.ORDERS.worker.1.1.1.1000.0", b"+ACK", None, &mut store);
//! assert_eq!((c.num_ack_pending(), c.ack_floor().stream_seq), (0, 1));
//! ```

mod ack;
mod config;
mod effect;
mod error;
mod info;
mod machine;
mod priority;
mod pull;
mod state;
pub mod testing;

#[cfg(test)]
mod tests;

pub use ack::{ACK_PREFIX, AckKind, AckReply, FC_PREFIX};
pub use config::{
    AckPolicy, ConsumerConfig, ConsumerLimits, DEFAULT_ACK_WAIT_NS, DEFAULT_EPHEMERAL_INACTIVE_NS,
    DEFAULT_MAX_ACK_PENDING, DEFAULT_MAX_WAITING, DeliverPolicy, MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, MAX_NAME_LEN,
    ReplayPolicy, Retention, ServerLimits, StreamSummary, filter_is_subset, filters_collide,
};
pub use effect::{Advisory, Delivery, DoneReason, Effect, InflightCharge};
pub use error::ConsumerError;
pub use info::{ConsumerInfo, SequenceInfo};
pub use machine::{
    CONSUMER_INFLIGHT, Consumer, ConsumerBugs, ConsumerOptions, DEFAULT_INFLIGHT_WINDOW, FLOW_CONTROL_MAX_PENDING,
    StreamReader,
};
pub use priority::{
    DEFAULT_PINNED_TTL_NS, MAX_GROUP_NAME_LEN, MAX_PRIORITY, PIN_ID_HEADER, PriorityGroupState, PriorityPolicy,
    PullGroup, add_header, valid_group_name,
};
pub use pull::{
    CONSUMER_STALLED, LAST_CONSUMER, LAST_STREAM, MSG_SIZE, PENDING_BYTES, PENDING_MSGS, PullRequest,
    flow_control_request, headers_only, idle_heartbeat, status, status_pending,
};
pub use state::{ConsumerState, PendingEntry, SeqPair};
