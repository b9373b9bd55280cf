//! Consumer errors with nats-server's API numbers (`server/errors.json`): each variant
//! knows its HTTP-like `code`, its `err_code` and the `description` clients see. The
//! shared `jetstream::ApiError {code, err_code, description}` is built from these three.

/// A consumer config, create or update error, as nats-server reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.description())]
pub enum ConsumerError {
    /// 10014: the consumer does not exist.
    NotFound,
    /// 10013: a consumer with this name exists with another config (legacy create).
    NameExists,
    /// 10148: `action: "create"` on an existing consumer with a different config.
    AlreadyExists,
    /// 10149: `action: "update"` on a missing consumer.
    DoesNotExist,
    /// 10012: the update is not allowed (`{err}` is the reason, e.g. "ack policy can not be updated").
    Create(String),
    /// 10052: an invalid config caught by the generic check (`{err}`), e.g. a bad name or filter.
    InvalidConfig(String),
    /// 10094: a deliver policy conflict (`{err}`).
    InvalidPolicy(String),
    /// 10095: `sample_freq` is not `N` or `N%`.
    InvalidSampling(String),
    /// 10079: `deliver_subject` has wildcards.
    DeliverToWildcards,
    /// 10112: `deliver_subject` is not a valid subject.
    InvalidDeliverSubject,
    /// 10081: `deliver_subject` is one of the stream's subjects.
    DeliverCycle,
    /// 10080: `max_waiting` set on a push consumer.
    PushMaxWaiting,
    /// 10082: `max_ack_pending` set on a push consumer with ack policy none.
    MaxPendingAckPolicyRequired,
    /// 10083: push `idle_heartbeat` below 100 ms.
    SmallHeartbeat,
    /// 10084: a pull consumer with ack none on a workqueue stream.
    PullRequiresAck,
    /// 10086: `rate_limit_bps` on a pull consumer.
    PullWithRateLimit,
    /// 10087: negative `max_waiting` on a pull consumer.
    MaxWaitingNegative,
    /// 10088: `idle_heartbeat` on a pull consumer.
    HeartbeatRequiresPush,
    /// 10089: `flow_control` on a pull consumer.
    FlowControlRequiresPush,
    /// 10098: a workqueue stream needs ack explicit.
    WorkQueueRequiresExplicitAck,
    /// 10099: a second unfiltered consumer on a workqueue stream.
    WorkQueueMultipleUnfiltered,
    /// 10100: filters overlapping another consumer's on a workqueue stream.
    WorkQueueNotUnique,
    /// 10101: a workqueue consumer must deliver all.
    WorkQueueNotDeliverAll,
    /// 10102: the name is longer than 255 bytes.
    NameTooLong,
    /// 10107: the description is longer than 4 KiB.
    DescriptionTooLong,
    /// 10108: flow control without heartbeats.
    FlowControlNeedsHeartbeats,
    /// 10114: negative `max_batch`.
    MaxRequestBatchNegative,
    /// 10115: `max_expires` below 1 ms.
    MaxRequestExpiresTooSmall,
    /// 10116: more backoff values than `max_deliver`.
    MaxDeliverBackoff,
    /// 10121: `max_ack_pending` over a limit (the stream's consumer limit).
    MaxPendingAckExcess(i64),
    /// 10126: more replicas than the stream.
    ReplicasExceedsStream,
    /// 10132: `durable_name` and `name` differ.
    DurableAndNameMismatch,
    /// 10134: interest/workqueue consumers need the stream's replica count.
    ReplicasShouldMatchStream,
    /// 10135: metadata over 128 KiB.
    MetadataTooLong,
    /// 10136: both `filter_subject` and `filter_subjects`.
    DuplicateFilterSubjects,
    /// 10138: two filters overlap.
    OverlappingFilters,
    /// 10139: an empty entry in `filter_subjects`.
    EmptyFilter,
    /// 10153: `inactive_threshold` over the stream's consumer limit.
    InactiveThresholdExcess(i64),
    /// 10183: negative `ack_wait`.
    AckWaitNegative,
    /// 10184: a negative backoff value.
    BackoffNegative,
    /// 10178: priority groups on a push consumer.
    PushWithPriorityGroup,
    /// 10159: a priority policy without a priority group.
    PriorityPolicyWithoutGroup,
    /// 10161: an empty priority group name.
    EmptyGroupName,
    /// 10162: a priority group name outside `[A-Za-z0-9/_=-]{1,16}`.
    InvalidGroupName,
    /// 10196: priority groups with priority policy none.
    PriorityGroupWithPolicyNone,
    /// 10197: `priority_timeout` with priority policy none.
    PinnedTtlWithoutPriorityPolicy,
    /// 10125: `max_batch` over the server's `jetstream.limits.max_request_batch`.
    MaxRequestBatchExceeded(i64),
}

impl ConsumerError {
    /// The HTTP-like status code (`code` in the API error).
    pub fn code(&self) -> u16 {
        match self {
            ConsumerError::NotFound => 404,
            ConsumerError::Create(_) | ConsumerError::InvalidConfig(_) => 500,
            _ => 400,
        }
    }

    /// nats-server's `err_code`.
    pub fn err_code(&self) -> u16 {
        use ConsumerError::*;
        match self {
            NotFound => 10014,
            NameExists => 10013,
            AlreadyExists => 10148,
            DoesNotExist => 10149,
            Create(_) => 10012,
            InvalidConfig(_) => 10052,
            InvalidPolicy(_) => 10094,
            InvalidSampling(_) => 10095,
            DeliverToWildcards => 10079,
            InvalidDeliverSubject => 10112,
            DeliverCycle => 10081,
            PushMaxWaiting => 10080,
            MaxPendingAckPolicyRequired => 10082,
            SmallHeartbeat => 10083,
            PullRequiresAck => 10084,
            PullWithRateLimit => 10086,
            MaxWaitingNegative => 10087,
            HeartbeatRequiresPush => 10088,
            FlowControlRequiresPush => 10089,
            WorkQueueRequiresExplicitAck => 10098,
            WorkQueueMultipleUnfiltered => 10099,
            WorkQueueNotUnique => 10100,
            WorkQueueNotDeliverAll => 10101,
            NameTooLong => 10102,
            DescriptionTooLong => 10107,
            FlowControlNeedsHeartbeats => 10108,
            MaxRequestBatchNegative => 10114,
            MaxRequestExpiresTooSmall => 10115,
            MaxDeliverBackoff => 10116,
            MaxPendingAckExcess(_) => 10121,
            ReplicasExceedsStream => 10126,
            DurableAndNameMismatch => 10132,
            ReplicasShouldMatchStream => 10134,
            MetadataTooLong => 10135,
            DuplicateFilterSubjects => 10136,
            OverlappingFilters => 10138,
            EmptyFilter => 10139,
            InactiveThresholdExcess(_) => 10153,
            AckWaitNegative => 10183,
            BackoffNegative => 10184,
            PushWithPriorityGroup => 10178,
            PriorityPolicyWithoutGroup => 10159,
            EmptyGroupName => 10161,
            InvalidGroupName => 10162,
            PriorityGroupWithPolicyNone => 10196,
            PinnedTtlWithoutPriorityPolicy => 10197,
            MaxRequestBatchExceeded(_) => 10125,
        }
    }

    /// The description text, as nats-server words it (templates filled in).
    pub fn description(&self) -> String {
        use ConsumerError::*;
        match self {
            NotFound => "consumer not found".into(),
            NameExists => "consumer name already in use".into(),
            AlreadyExists => "consumer already exists".into(),
            DoesNotExist => "consumer does not exist".into(),
            Create(e) | InvalidConfig(e) | InvalidPolicy(e) => e.clone(),
            InvalidSampling(e) => format!("failed to parse consumer sampling configuration: {e}"),
            DeliverToWildcards => "consumer deliver subject has wildcards".into(),
            InvalidDeliverSubject => "invalid push consumer deliver subject".into(),
            DeliverCycle => "consumer deliver subject forms a cycle".into(),
            PushMaxWaiting => "consumer in push mode can not set max waiting".into(),
            MaxPendingAckPolicyRequired => "consumer requires ack policy for max ack pending".into(),
            SmallHeartbeat => "consumer idle heartbeat needs to be >= 100ms".into(),
            PullRequiresAck => "consumer in pull mode requires explicit ack policy on workqueue stream".into(),
            PullWithRateLimit => "consumer in pull mode can not have rate limit set".into(),
            MaxWaitingNegative => "consumer max waiting needs to be positive".into(),
            HeartbeatRequiresPush => "consumer idle heartbeat requires a push based consumer".into(),
            FlowControlRequiresPush => "consumer flow control requires a push based consumer".into(),
            WorkQueueRequiresExplicitAck => "workqueue stream requires explicit ack".into(),
            WorkQueueMultipleUnfiltered => "multiple non-filtered consumers not allowed on workqueue stream".into(),
            WorkQueueNotUnique => "filtered consumer not unique on workqueue stream".into(),
            WorkQueueNotDeliverAll => "consumer must be deliver all on workqueue stream".into(),
            NameTooLong => format!("consumer name is too long, maximum allowed is {}", super::config::MAX_NAME_LEN),
            DescriptionTooLong => {
                format!("consumer description is too long, maximum allowed is {}", super::config::MAX_DESCRIPTION_LEN)
            }
            FlowControlNeedsHeartbeats => "consumer with flow control also needs heartbeats".into(),
            MaxRequestBatchNegative => "consumer max request batch needs to be > 0".into(),
            MaxRequestExpiresTooSmall => "consumer max request expires needs to be >= 1ms".into(),
            MaxDeliverBackoff => "max deliver is required to be > length of backoff values".into(),
            MaxPendingAckExcess(l) => format!("consumer max ack pending exceeds system limit of {l}"),
            ReplicasExceedsStream => "consumer config replica count exceeds parent stream".into(),
            DurableAndNameMismatch => "Consumer Durable and Name have to be equal if both are provided".into(),
            ReplicasShouldMatchStream => {
                "consumer config replicas must match interest retention stream's replicas".into()
            }
            MetadataTooLong => "consumer metadata exceeds maximum size of 128KB".into(),
            DuplicateFilterSubjects => "consumer cannot have both FilterSubject and FilterSubjects specified".into(),
            OverlappingFilters => "consumer subject filters cannot overlap".into(),
            EmptyFilter => "consumer filter in FilterSubjects cannot be empty".into(),
            InactiveThresholdExcess(l) => {
                format!(
                    "consumer inactive threshold exceeds system limit of {}",
                    crate::jetstream::format_go_duration(*l)
                )
            }
            AckWaitNegative => "consumer ack wait needs to be positive".into(),
            BackoffNegative => "consumer backoff needs to be positive".into(),
            PushWithPriorityGroup => "priority groups can not be used with push consumers".into(),
            PriorityPolicyWithoutGroup => "Setting PriorityPolicy requires at least one PriorityGroup to be set".into(),
            EmptyGroupName => "Group name cannot be an empty string".into(),
            InvalidGroupName => {
                "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters".into()
            }
            PriorityGroupWithPolicyNone => "consumer can not have priority groups when policy is none".into(),
            PinnedTtlWithoutPriorityPolicy => "PinnedTTL cannot be set when PriorityPolicy is none".into(),
            MaxRequestBatchExceeded(l) => format!("consumer max request batch exceeds server limit of {l}"),
        }
    }
}
