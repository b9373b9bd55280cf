//! `ConsumerInfo`: the JSON nats-server answers CONSUMER.INFO and CONSUMER.CREATE with
//! (`consumer.go` `ConsumerInfo`; the API layer adds `type` and, when clustered, `cluster`).

use super::config::ConsumerConfig;
use super::priority::PriorityGroupState;
use crate::jetstream::{serde_opt_time_or_zero, serde_time_or_zero};
use serde::{Deserialize, Serialize};

fn is_false(v: &bool) -> bool {
    !*v
}
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A consumer and stream sequence with the last activity (`SequenceInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceInfo {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Last delivery or ack (ns since the epoch, RFC 3339 on the wire), once there was one.
    #[serde(default, with = "serde_opt_time_or_zero", skip_serializing_if = "Option::is_none")]
    pub last_active: Option<i64>,
}

/// Consumer info in nats-server's field names and order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// Stream name.
    pub stream_name: String,
    /// Consumer name.
    pub name: String,
    /// Creation time (ns since the epoch, RFC 3339 on the wire).
    #[serde(with = "serde_time_or_zero")]
    pub created: i64,
    /// The config in force.
    pub config: ConsumerConfig,
    /// The last delivery.
    pub delivered: SequenceInfo,
    /// The ack floor.
    pub ack_floor: SequenceInfo,
    /// Messages awaiting ack.
    pub num_ack_pending: u64,
    /// Pending messages delivered more than once.
    pub num_redelivered: u64,
    /// Waiting pull requests.
    pub num_waiting: u64,
    /// Messages matching the filters not yet delivered.
    pub num_pending: u64,
    /// A push consumer whose deliver subject has subscribers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Paused (`pause_until` in the future).
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Time left paused (ns).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pause_remaining: i64,
    /// When this info was gathered (ns since the epoch, RFC 3339 on the wire).
    #[serde(with = "serde_time_or_zero")]
    pub ts: i64,
    /// The first priority group's state (consumers with priority groups only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
}
