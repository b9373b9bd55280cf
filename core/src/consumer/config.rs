//! `ConsumerConfig`: the JSON shape of nats-server's `ConsumerConfig` (`consumer.go`),
//! its defaults (`setConsumerConfigDefaults`), its checks (`checkConsumerCfg` plus the
//! workqueue rules of `addConsumer`) and which fields an update may change
//! (`checkNewConsumerConfig`). Durations are integer nanoseconds on the wire, times are
//! RFC 3339 strings; both are `i64` nanoseconds here.

use super::error::ConsumerError;
use super::priority::{self, PriorityPolicy};
use crate::jetstream::{NANOS_PER_SEC, serde_opt_time_or_zero};
use crate::subject;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest stream or consumer name (`JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest description (`JSMaxDescriptionLen`, 4 KiB).
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Largest total of metadata keys and values (`JSMaxMetadataLen`, 128 KiB).
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// Default `ack_wait` for ack explicit/all (`JsAckWaitDefault`, 30 s).
pub const DEFAULT_ACK_WAIT_NS: i64 = 30 * NANOS_PER_SEC;
/// Default `max_ack_pending` when acks are needed (`JsDefaultMaxAckPending`).
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default `max_waiting` of pull consumers (`JSWaitQueueDefaultMax`).
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Inactivity after which an ephemeral consumer without `inactive_threshold` is removed
/// (`JsDeleteWaitTimeDefault`, 5 s; nats-server adds 0.1–1 s of jitter, Weir does not).
pub const DEFAULT_EPHEMERAL_INACTIVE_NS: i64 = 5 * NANOS_PER_SEC;
/// Smallest push `idle_heartbeat` (100 ms).
pub const MIN_PUSH_HEARTBEAT_NS: i64 = 100_000_000;

/// Where a new consumer starts (`deliver_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    All,
    /// From the last message matching the filters.
    Last,
    /// Only messages stored after creation.
    New,
    /// From `opt_start_seq`.
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    /// From the first message at or after `opt_start_time`.
    ByStartTime,
    /// The last message of every subject matching the filters, then everything newer.
    LastPerSubject,
}

/// How messages are acknowledged (`ack_policy`; Go's zero value is `none`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    /// No acks: a message is done once delivered.
    #[default]
    None,
    /// An ack acknowledges every message up to it.
    All,
    /// Every message is acked on its own.
    Explicit,
}

/// Delivery pacing (`replay_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPolicy {
    /// As fast as possible.
    #[default]
    Instant,
    /// At the pace the messages were stored.
    Original,
}

/// A stream's retention policy, as far as consumers care.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Limits only: consumers never remove messages.
    #[default]
    Limits,
    /// A message is removed once every consumer matching it has acked it.
    Interest,
    /// A message is removed once acked; one consumer per subject.
    Workqueue,
}

/// Default consumer limits of a stream (`consumer_limits`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLimits {
    /// Default and cap of `inactive_threshold` (ns; 0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    /// Default and cap of `max_ack_pending` (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
}

/// The consumer limits of the server's `jetstream { limits { ... } }` block
/// (nats-server's `JSLimitOpts`): defaults and caps for every consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerLimits {
    /// `max_request_batch`: the default `max_batch` of pull consumers and its cap (0: none).
    pub max_request_batch: i64,
    /// `max_ack_pending`: the cap of `max_ack_pending`, and the default when below 1000 (0: none).
    pub max_ack_pending: i64,
}

/// What consumer validation needs to know about its stream (the stream host builds it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Stream name.
    pub name: String,
    /// The stream's subjects (a push `deliver_subject` matching one would form a cycle).
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: Retention,
    /// The stream's replica count.
    pub replicas: i64,
    /// The stream's `consumer_limits`.
    pub consumer_limits: ConsumerLimits,
    /// The server's `jetstream { limits { } }` for consumers.
    pub server_limits: ServerLimits,
    /// The other consumers of the stream as `(name, filters)` (empty filters: unfiltered),
    /// for the workqueue uniqueness rules (10099/10100). The consumer being updated may be
    /// listed; it is skipped by name.
    pub other_consumers: Vec<(String, Vec<String>)>,
}

/// Go's JSON decoder leaves a field at its zero value for `null`; do the same.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// A consumer's configuration in nats-server's JSON names, shapes and field order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Durable name (durables survive inactivity).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    /// Name (set to the durable name, or by the host for unnamed ephemerals).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text, at most 4 KiB.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where delivery starts.
    #[serde(deserialize_with = "nullable")]
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    /// Start time (ns since the epoch, RFC 3339 on the wire) for `by_start_time`.
    #[serde(with = "serde_opt_time_or_zero", skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<i64>,
    /// Ack policy.
    #[serde(deserialize_with = "nullable")]
    pub ack_policy: AckPolicy,
    /// How long a delivery waits for its ack before redelivery (ns).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ack_wait: i64,
    /// Most deliveries of one message (-1 unlimited).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_deliver: i64,
    /// Ack waits per delivery attempt (ns); the last one repeats.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    /// One subject filter.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Several non-overlapping subject filters.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    /// Replay pacing.
    #[serde(deserialize_with = "nullable")]
    pub replay_policy: ReplayPolicy,
    /// Push delivery rate limit in bits per second.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    /// Ack sampling (`"N%"`): accepted and stored, no sample advisories are sent.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    /// Most waiting pull requests.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_waiting: i64,
    /// Most messages awaiting ack (-1 unlimited).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    /// Push flow control.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub flow_control: bool,
    /// Deliver headers only, with `Nats-Msg-Size`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub headers_only: bool,
    /// Largest pull `batch`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_batch: i64,
    /// Longest pull `expires` (ns).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_expires: i64,
    /// Largest pull `max_bytes`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub max_bytes: i64,
    /// Push: where messages go.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    /// Push: the queue group of the subscribers.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    /// Push: heartbeat interval when idle (ns).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub idle_heartbeat: i64,
    /// Inactivity after which the consumer is removed (ns; 0: never for durables).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    /// Replicas (0: the stream's).
    #[serde(deserialize_with = "nullable")]
    pub num_replicas: i64,
    /// Keep consumer state in memory.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    /// Internal direct consumers (mirrors/sources).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub direct: bool,
    /// User metadata, at most 128 KiB in total.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Deliver nothing before this time (ns since the epoch, RFC 3339 on the wire).
    #[serde(with = "serde_opt_time_or_zero", skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<i64>,
    /// Priority groups (pull consumers with a `priority_policy`; see [`super::priority`]).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    /// How waiting pull requests are chosen (omitted when `none`).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    /// `pinned_client`: how long a pin lives without a request carrying it (ns; default
    /// 2 min for that policy, nats-server's `PinnedTTL`).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub priority_timeout: i64,
}

/// Whether every subject matched by `a` is matched by `b` (nats-server `subjectIsSubsetMatch`).
pub fn filter_is_subset(a: &str, b: &str) -> bool {
    let at: Vec<&str> = a.split('.').collect();
    for (i, bt) in b.split('.').enumerate() {
        if bt == ">" {
            return i < at.len();
        }
        let Some(&t) = at.get(i) else { return false };
        if t == ">" || (t == "*" && bt != "*") || (bt != "*" && t != bt) {
            return false;
        }
    }
    at.len() == b.split('.').count()
}

/// Whether some subject is matched by both filters (nats-server `SubjectsCollide`).
pub fn filters_collide(a: &str, b: &str) -> bool {
    let (mut ai, mut bi) = (a.split('.'), b.split('.'));
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => continue,
            _ => return false,
        }
    }
}

fn valid_asset_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', '*', '>', '\\', '/', ' ', '\t', '\r', '\n', '\x0c'])
}

impl ConsumerConfig {
    /// Whether this is a push consumer (has a `deliver_subject`).
    pub fn is_push(&self) -> bool {
        !self.deliver_subject.is_empty()
    }

    /// Whether this is a durable consumer.
    pub fn is_durable(&self) -> bool {
        !self.durable_name.is_empty()
    }

    /// The consumer's name: `name`, else `durable_name`.
    pub fn consumer_name(&self) -> &str {
        if self.name.is_empty() { &self.durable_name } else { &self.name }
    }

    /// The subject filters as one list (`filter_subject` or `filter_subjects`; empty: all).
    pub fn filters(&self) -> Vec<String> {
        if self.filter_subject.is_empty() { self.filter_subjects.clone() } else { vec![self.filter_subject.clone()] }
    }

    /// Apply nats-server's defaults (`setConsumerConfigDefaults`, non-pedantic) for `stream`:
    /// name from the durable name, `max_deliver` -1, `max_waiting` 512 for pull, `ack_wait`
    /// 30 s (or `backoff[0]`), `max_ack_pending` from the stream limits or 1000, negative
    /// limits to 0.
    pub fn apply_defaults(&mut self, stream: &StreamSummary) {
        if self.name.is_empty() && !self.durable_name.is_empty() {
            self.name = self.durable_name.clone();
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        if self.max_waiting < 0 {
            self.max_waiting = 0;
        }
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        for v in [&mut self.max_batch, &mut self.max_expires, &mut self.max_bytes, &mut self.idle_heartbeat] {
            if *v < 0 {
                *v = 0;
            }
        }
        if self.inactive_threshold < 0 {
            self.inactive_threshold = 0;
        }
        if !self.is_push() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && self.ack_policy != AckPolicy::None {
            self.ack_wait = DEFAULT_ACK_WAIT_NS;
        }
        if let Some(&first) = self.backoff.first() {
            self.ack_wait = first;
        }
        if self.max_ack_pending == 0 {
            self.max_ack_pending = stream.consumer_limits.max_ack_pending;
        }
        if self.inactive_threshold == 0 {
            self.inactive_threshold = stream.consumer_limits.inactive_threshold;
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            let lim = stream.server_limits.max_ack_pending;
            self.max_ack_pending = if lim > 0 { DEFAULT_MAX_ACK_PENDING.min(lim) } else { DEFAULT_MAX_ACK_PENDING };
        }
        let lim = stream.server_limits.max_request_batch;
        if !self.is_push() && self.max_batch == 0 && lim > 0 {
            self.max_batch = lim;
        }
        if self.priority_timeout < 0 {
            self.priority_timeout = 0;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = priority::DEFAULT_PINNED_TTL_NS;
        }
    }

    /// Check a defaulted config against `stream`, in nats-server's order
    /// (`checkConsumerCfg`, then the workqueue rules), returning its first error.
    pub fn check(&self, stream: &StreamSummary) -> Result<(), ConsumerError> {
        use ConsumerError as E;
        for (n, what) in [(&self.name, "name"), (&self.durable_name, "durable name")] {
            if !n.is_empty() && !valid_asset_name(n) {
                return Err(E::InvalidConfig(format!("consumer {what} can not contain '.', '*', '>', '\\', '/'")));
            }
            if n.len() > MAX_NAME_LEN {
                return Err(E::NameTooLong);
            }
        }
        if self.num_replicas > 0 && self.num_replicas > stream.replicas {
            return Err(E::ReplicasExceedsStream);
        }
        if self.num_replicas < 0 {
            return Err(E::InvalidConfig("replicas count cannot be negative".into()));
        }
        if stream.retention != Retention::Limits && self.num_replicas != 0 && self.num_replicas != stream.replicas {
            return Err(E::ReplicasShouldMatchStream);
        }
        if self.backoff.iter().any(|&b| b < 0) {
            return Err(E::BackoffNegative);
        }
        if self.ack_wait < 0 {
            return Err(E::AckWaitNegative);
        }
        if !self.backoff.is_empty() && self.max_deliver != -1 && self.backoff.len() as i64 > self.max_deliver {
            return Err(E::MaxDeliverBackoff);
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(E::DescriptionTooLong);
        }
        if self.is_push() {
            if subject::has_wildcards(&self.deliver_subject) {
                return Err(E::DeliverToWildcards);
            }
            if !subject::is_valid_literal(&self.deliver_subject) {
                return Err(E::InvalidDeliverSubject);
            }
            if stream.subjects.iter().any(|s| subject::matches(s, &self.deliver_subject)) {
                return Err(E::DeliverCycle);
            }
            if self.max_waiting != 0 {
                return Err(E::PushMaxWaiting);
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(E::MaxPendingAckPolicyRequired);
            }
            if self.idle_heartbeat > 0 && self.idle_heartbeat < MIN_PUSH_HEARTBEAT_NS {
                return Err(E::SmallHeartbeat);
            }
        } else {
            if self.ack_policy == AckPolicy::None && stream.retention == Retention::Workqueue {
                return Err(E::PullRequiresAck);
            }
            if self.rate_limit_bps > 0 {
                return Err(E::PullWithRateLimit);
            }
            if self.max_waiting < 0 {
                return Err(E::MaxWaitingNegative);
            }
            if self.idle_heartbeat > 0 {
                return Err(E::HeartbeatRequiresPush);
            }
            if self.flow_control {
                return Err(E::FlowControlRequiresPush);
            }
            if self.max_batch < 0 {
                return Err(E::MaxRequestBatchNegative);
            }
            if self.max_expires != 0 && self.max_expires < 1_000_000 {
                return Err(E::MaxRequestExpiresTooSmall);
            }
            let lim = stream.server_limits.max_request_batch;
            if lim > 0 && self.max_batch > lim {
                return Err(E::MaxRequestBatchExceeded(lim));
            }
        }
        let lim = stream.server_limits.max_ack_pending;
        if lim > 0 && self.max_ack_pending > lim {
            return Err(E::MaxPendingAckExcess(lim));
        }
        let lim = &stream.consumer_limits;
        if lim.max_ack_pending > 0 && self.max_ack_pending > lim.max_ack_pending {
            return Err(E::MaxPendingAckExcess(lim.max_ack_pending));
        }
        if lim.inactive_threshold > 0 && self.inactive_threshold > lim.inactive_threshold {
            return Err(E::InactiveThresholdExcess(lim.inactive_threshold));
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(E::DuplicateFilterSubjects);
        }
        if !self.filter_subject.is_empty() && !subject::is_valid_pattern(&self.filter_subject) {
            return Err(E::InvalidConfig("invalid subject".into()));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(E::EmptyFilter);
        }
        let filters = self.filters();
        for (i, f) in filters.iter().enumerate() {
            if !subject::is_valid_pattern(f) {
                return Err(E::InvalidConfig("invalid subject".into()));
            }
            if filters.iter().enumerate().any(|(j, g)| j != i && filter_is_subset(f, g)) {
                return Err(E::OverlappingFilters);
            }
        }
        self.check_deliver_policy()?;
        if !self.sample_freq.is_empty() {
            let s = self.sample_freq.strip_suffix('%').unwrap_or(&self.sample_freq);
            if s.parse::<u64>().is_err() {
                return Err(E::InvalidSampling(format!("strconv.Atoi: parsing {s:?}: invalid syntax")));
            }
        }
        if self.flow_control && self.idle_heartbeat == 0 {
            return Err(E::FlowControlNeedsHeartbeats);
        }
        if !self.durable_name.is_empty() && !self.name.is_empty() && self.name != self.durable_name {
            return Err(E::DurableAndNameMismatch);
        }
        if self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_METADATA_LEN {
            return Err(E::MetadataTooLong);
        }
        priority::check_config(self.priority_policy, &self.priority_groups, self.priority_timeout, self.is_push())?;
        if stream.retention == Retention::Workqueue && !self.direct {
            self.check_workqueue(stream, &filters)?;
        }
        Ok(())
    }

    fn check_deliver_policy(&self) -> Result<(), ConsumerError> {
        let bad_start = |dp: &str, start: &str| {
            Err(ConsumerError::InvalidPolicy(format!(
                "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
            )))
        };
        let not_set = |dp: &str, what: &str| {
            Err(ConsumerError::InvalidPolicy(format!(
                "consumer delivery policy is deliver {dp}, but optional {what} is not set"
            )))
        };
        let (seq, time) = (self.opt_start_seq > 0, self.opt_start_time.is_some());
        match self.deliver_policy {
            DeliverPolicy::All | DeliverPolicy::Last | DeliverPolicy::New | DeliverPolicy::LastPerSubject => {
                let dp = match self.deliver_policy {
                    DeliverPolicy::All => "all",
                    DeliverPolicy::Last => "last",
                    DeliverPolicy::New => "new",
                    _ => "last per subject",
                };
                if seq {
                    return bad_start(dp, "sequence");
                }
                if time {
                    return bad_start(dp, "time");
                }
                if self.deliver_policy == DeliverPolicy::LastPerSubject && self.filters().is_empty() {
                    return not_set(dp, "filter subject");
                }
            }
            DeliverPolicy::ByStartSequence => {
                if !seq {
                    return not_set("by start sequence", "start sequence");
                }
                if time {
                    return bad_start("by start sequence", "time");
                }
            }
            DeliverPolicy::ByStartTime => {
                if !time {
                    return not_set("by start time", "start time");
                }
                if seq {
                    return bad_start("by start time", "start sequence");
                }
            }
        }
        Ok(())
    }

    fn check_workqueue(&self, stream: &StreamSummary, filters: &[String]) -> Result<(), ConsumerError> {
        if self.ack_policy != AckPolicy::Explicit {
            return Err(ConsumerError::WorkQueueRequiresExplicitAck);
        }
        if self.deliver_policy != DeliverPolicy::All {
            return Err(ConsumerError::WorkQueueNotDeliverAll);
        }
        let me = self.consumer_name();
        let others: Vec<&Vec<String>> =
            stream.other_consumers.iter().filter(|(n, _)| n != me).map(|(_, f)| f).collect();
        if others.is_empty() {
            return Ok(());
        }
        if filters.is_empty() {
            return Err(ConsumerError::WorkQueueMultipleUnfiltered);
        }
        let all = [">".to_string()];
        for other in others {
            let theirs: &[String] = if other.is_empty() { &all } else { other };
            if filters.iter().any(|f| theirs.iter().any(|g| filters_collide(f, g))) {
                return Err(ConsumerError::WorkQueueNotUnique);
            }
        }
        Ok(())
    }

    /// Whether `other` (both defaulted) describes the same consumer for a repeated
    /// `action: "create"`: equal apart from `metadata`, as nats-server copies the existing
    /// metadata over before comparing (a difference answers 10148).
    pub fn same_for_create(&self, other: &ConsumerConfig) -> bool {
        let mut a = self.clone();
        a.metadata = other.metadata.clone();
        a == *other
    }

    /// Defaults then checks: the config a new consumer runs with.
    pub fn normalize(mut self, stream: &StreamSummary) -> Result<ConsumerConfig, ConsumerError> {
        self.apply_defaults(stream);
        self.check(stream)?;
        Ok(self)
    }

    /// Whether `new` (defaulted and checked) may replace `self`, as nats-server's
    /// `checkNewConsumerConfig`: the error is 10012 with nats-server's reason text.
    /// Changeable: description, ack_wait, max_deliver, backoff, filters, rate limit,
    /// sample_freq, max_ack_pending, headers_only, pull request limits, the push deliver
    /// subject (push stays push), inactive_threshold, replicas, metadata and pause_until.
    pub fn check_update(&self, new: &ConsumerConfig) -> Result<(), ConsumerError> {
        if self == new {
            return Ok(());
        }
        let err = |s: &str| Err(ConsumerError::Create(s.to_string()));
        if self.deliver_policy != new.deliver_policy {
            return err("deliver policy can not be updated");
        }
        if self.mem_storage != new.mem_storage {
            return err("storage type can not be updated");
        }
        if self.direct != new.direct {
            return err("direct can not be updated");
        }
        if self.opt_start_seq != new.opt_start_seq {
            return err("start sequence can not be updated");
        }
        if self.opt_start_time != new.opt_start_time {
            return err("start time can not be updated");
        }
        if self.ack_policy != new.ack_policy {
            return err("ack policy can not be updated");
        }
        if self.replay_policy != new.replay_policy {
            return err("replay policy can not be updated");
        }
        if self.idle_heartbeat != new.idle_heartbeat {
            return err("heart beats can not be updated");
        }
        if self.flow_control != new.flow_control {
            return err("flow control can not be updated");
        }
        if self.deliver_subject != new.deliver_subject {
            if self.deliver_subject.is_empty() {
                return err("can not update pull consumer to push based");
            }
            if new.deliver_subject.is_empty() {
                return err("can not update push consumer to pull based");
            }
        }
        if self.max_waiting != new.max_waiting {
            return err("max waiting can not be updated");
        }
        if !new.backoff.is_empty() && new.max_deliver != -1 && new.backoff.len() as i64 > new.max_deliver {
            return Err(ConsumerError::MaxDeliverBackoff);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamSummary {
        StreamSummary { name: "ORDERS".into(), subjects: vec!["orders.>".into()], replicas: 1, ..Default::default() }
    }

    #[test]
    fn defaults_match_nats_server_reply() {
        // The request and reply of trace-js-async-nats.txt.
        let req = r#"{"ack_policy":"explicit","deliver_policy":"all","durable_name":"bench_rs","max_ack_pending":-1,"replay_policy":"instant"}"#;
        let cfg: ConsumerConfig = serde_json::from_str(req).unwrap();
        let cfg = cfg.normalize(&stream()).unwrap();
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            r#"{"durable_name":"bench_rs","name":"bench_rs","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":-1,"num_replicas":0}"#
        );
        let cfg: ConsumerConfig = serde_json::from_str(r#"{"durable_name":"w","ack_policy":"explicit"}"#).unwrap();
        assert_eq!(cfg.normalize(&stream()).unwrap().max_ack_pending, 1000);
    }

    #[test]
    fn nulls_are_zero_values() {
        let j = r#"{"durable_name":"w","filter_subjects":null,"backoff":null,"metadata":null,"description":null,"opt_start_time":null,"ack_policy":"explicit","deliver_policy":null}"#;
        let cfg: ConsumerConfig = serde_json::from_str(j).unwrap();
        assert_eq!((cfg.deliver_policy, cfg.filter_subjects.len(), cfg.opt_start_time), (DeliverPolicy::All, 0, None));
    }

    #[test]
    fn times_and_durations_on_the_wire() {
        let j = r#"{"name":"c","deliver_policy":"by_start_time","opt_start_time":"2026-08-21T12:00:02.5Z","backoff":[1000000000,5000000000],"max_deliver":3,"ack_policy":"explicit","pause_until":"2026-08-21T12:00:03Z"}"#;
        let cfg: ConsumerConfig = serde_json::from_str(j).unwrap();
        let cfg = cfg.normalize(&stream()).unwrap();
        assert_eq!(cfg.ack_wait, NANOS_PER_SEC, "backoff[0] overrides ack_wait");
        let out = serde_json::to_string(&cfg).unwrap();
        assert!(out.contains(r#""opt_start_time":"2026-08-21T12:00:02.5Z""#), "{out}");
        assert!(out.contains(r#""pause_until":"2026-08-21T12:00:03Z""#), "{out}");
    }

    fn err_of(j: &str, s: &StreamSummary) -> u16 {
        let cfg: ConsumerConfig = serde_json::from_str(j).unwrap();
        cfg.normalize(s).unwrap_err().err_code()
    }

    #[test]
    fn validation_errors_use_nats_numbers() {
        let s = stream();
        assert_eq!(err_of(r#"{"name":"a","durable_name":"b"}"#, &s), 10132);
        assert_eq!(err_of(r#"{"name":"a.b"}"#, &s), 10052);
        assert_eq!(err_of(r#"{"name":"a","deliver_policy":"by_start_sequence"}"#, &s), 10094);
        assert_eq!(err_of(r#"{"name":"a","deliver_policy":"all","opt_start_seq":4}"#, &s), 10094);
        assert_eq!(err_of(r#"{"name":"a","deliver_policy":"last_per_subject"}"#, &s), 10094);
        assert_eq!(err_of(r#"{"name":"a","filter_subject":"a","filter_subjects":["b"]}"#, &s), 10136);
        assert_eq!(err_of(r#"{"name":"a","filter_subjects":["a.>","a.b"]}"#, &s), 10138);
        assert_eq!(err_of(r#"{"name":"a","filter_subjects":["a",""]}"#, &s), 10139);
        assert_eq!(err_of(r#"{"name":"a","idle_heartbeat":1000000000}"#, &s), 10088);
        assert_eq!(err_of(r#"{"name":"a","flow_control":true}"#, &s), 10089);
        assert_eq!(err_of(r#"{"name":"a","rate_limit_bps":10}"#, &s), 10086);
        assert_eq!(err_of(r#"{"name":"a","deliver_subject":"d","flow_control":true}"#, &s), 10108);
        assert_eq!(err_of(r#"{"name":"a","deliver_subject":"d","idle_heartbeat":1000}"#, &s), 10083);
        assert_eq!(err_of(r#"{"name":"a","deliver_subject":"d.*"}"#, &s), 10079);
        assert_eq!(err_of(r#"{"name":"a","deliver_subject":"orders.x"}"#, &s), 10081);
        assert_eq!(err_of(r#"{"name":"a","deliver_subject":"d","max_waiting":3}"#, &s), 10080);
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"explicit","backoff":[1,2],"max_deliver":1}"#, &s), 10116);
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"explicit","ack_wait":-5}"#, &s), 10183);
        assert_eq!(err_of(r#"{"name":"a","max_expires":10}"#, &s), 10115);
        assert_eq!(err_of(r#"{"name":"a","sample_freq":"x%"}"#, &s), 10095);
        let ok: ConsumerConfig = serde_json::from_str(r#"{"name":"a","sample_freq":"50%"}"#).unwrap();
        assert!(ok.normalize(&s).is_ok());
    }

    #[test]
    fn workqueue_rules() {
        let mut s = stream();
        s.retention = Retention::Workqueue;
        assert_eq!(err_of(r#"{"name":"a"}"#, &s), 10084);
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"all"}"#, &s), 10098);
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"explicit","deliver_policy":"new"}"#, &s), 10101);
        s.other_consumers = vec![("b".into(), vec!["orders.*.x".into()])];
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"explicit"}"#, &s), 10099);
        assert_eq!(err_of(r#"{"name":"a","ack_policy":"explicit","filter_subject":"orders.y.>"}"#, &s), 10100);
        let ok: ConsumerConfig =
            serde_json::from_str(r#"{"name":"a","ack_policy":"explicit","filter_subject":"orders.y.z"}"#).unwrap();
        assert!(ok.clone().normalize(&s).is_ok());
        // Updating consumer "b" itself is not a conflict with its own old filters.
        let mut b = ok;
        b.name = "b".into();
        b.filter_subject = "orders.>".into();
        assert!(b.normalize(&s).is_ok());
    }

    #[test]
    fn update_rules() {
        let s = stream();
        let parse = |j: &str| serde_json::from_str::<ConsumerConfig>(j).unwrap().normalize(&s).unwrap();
        let old = parse(r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.a"}"#);
        let new =
            parse(r#"{"durable_name":"w","ack_policy":"explicit","filter_subject":"orders.b","max_ack_pending":5}"#);
        assert!(old.check_update(&new).is_ok());
        let bad = parse(r#"{"durable_name":"w","ack_policy":"all"}"#);
        let e = old.check_update(&bad).unwrap_err();
        assert_eq!((e.err_code(), e.description().as_str()), (10012, "ack policy can not be updated"));
        let push = parse(r#"{"durable_name":"w","ack_policy":"explicit","deliver_subject":"d"}"#);
        assert_eq!(old.check_update(&push).unwrap_err().description(), "can not update pull consumer to push based");
    }

    #[test]
    fn subset_and_collide() {
        assert!(filter_is_subset("a.b", "a.*"));
        assert!(filter_is_subset("a.b.c", "a.>"));
        assert!(!filter_is_subset("a.>", "a.*"));
        assert!(!filter_is_subset("a.*", "a.b"));
        assert!(filter_is_subset("a.*", "a.*"));
        assert!(filters_collide("a.*.c", "a.b.*"));
        assert!(filters_collide("a.>", "a.b"));
        assert!(!filters_collide("a.b", "a.c"));
        assert!(!filters_collide("a.b", "a.b.c"));
    }
}
