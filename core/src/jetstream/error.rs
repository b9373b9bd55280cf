//! nats-server's JetStream API errors: [`ApiError`] and a constructor per error code.
//!
//! The codes, HTTP-like statuses and descriptions are those of nats-server's
//! `server/errors.json`; clients match on `err_code`, so they must not drift.

use serde::{Deserialize, Serialize};

/// A JetStream API error as nats-server serialises it:
/// `{"code":404,"err_code":10059,"description":"stream not found"}`
/// (`err_code` and `description` are omitted when zero/empty, as Go's `omitempty` does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{description} ({code}/{err_code})")]
pub struct ApiError {
    /// HTTP-like status (400, 404, 500, 503, ...).
    pub code: u16,
    /// nats-server's error identifier (10003, 10059, ...).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err_code: u16,
    /// Human-readable text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl ApiError {
    /// An error with the given status, code and description.
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        ApiError { code, err_code, description: description.into() }
    }

    /// The JSON object (`{"code":..,"err_code":..,"description":..}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ApiError serialises")
    }
}

/// Constructors named after nats-server's constants (without the `JS` prefix and `Err`
/// suffix); the doc of each gives the code, the constant and the description template.
impl ApiError {
    /// 10003 `JSBadRequestErr` (400): "bad request".
    pub fn bad_request() -> Self {
        Self::new(400, 10003, "bad request")
    }

    /// 10008 `JSClusterNotAvailErr` (503): "JetStream system temporarily unavailable".
    pub fn cluster_not_avail() -> Self {
        Self::new(503, 10008, "JetStream system temporarily unavailable")
    }

    /// 10012 `JSConsumerCreateErrF` (500): "{err}".
    pub fn consumer_create(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10012, err.to_string())
    }

    /// 10013 `JSConsumerNameExistErr` (400): "consumer name already in use".
    pub fn consumer_name_exist() -> Self {
        Self::new(400, 10013, "consumer name already in use")
    }

    /// 10014 `JSConsumerNotFoundErr` (404): "consumer not found".
    pub fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found")
    }

    /// 10016 `JSConsumerDurableNameNotInSubjectErr` (400): "consumer expected to be durable but no durable name set in subject".
    pub fn consumer_durable_name_not_in_subject() -> Self {
        Self::new(400, 10016, "consumer expected to be durable but no durable name set in subject")
    }

    /// 10017 `JSConsumerDurableNameNotMatchSubjectErr` (400): "consumer name in subject does not match durable name in request".
    pub fn consumer_durable_name_not_match_subject() -> Self {
        Self::new(400, 10017, "consumer name in subject does not match durable name in request")
    }

    /// 10018 `JSConsumerDurableNameNotSetErr` (400): "consumer expected to be durable but a durable name was not set".
    pub fn consumer_durable_name_not_set() -> Self {
        Self::new(400, 10018, "consumer expected to be durable but a durable name was not set")
    }

    /// 10019 `JSConsumerEphemeralWithDurableInSubjectErr` (400): "consumer expected to be ephemeral but detected a durable name set in subject".
    pub fn consumer_ephemeral_with_durable_in_subject() -> Self {
        Self::new(400, 10019, "consumer expected to be ephemeral but detected a durable name set in subject")
    }

    /// 10020 `JSConsumerEphemeralWithDurableNameErr` (400): "consumer expected to be ephemeral but a durable name was set in request".
    pub fn consumer_ephemeral_with_durable_name() -> Self {
        Self::new(400, 10020, "consumer expected to be ephemeral but a durable name was set in request")
    }

    /// 10023 `JSInsufficientResourcesErr` (503): "insufficient resources".
    pub fn insufficient_resources() -> Self {
        Self::new(503, 10023, "insufficient resources")
    }

    /// 10025 `JSInvalidJSONErr` (400): "invalid JSON: {err}".
    pub fn invalid_json(err: impl std::fmt::Display) -> Self {
        Self::new(400, 10025, format!("invalid JSON: {err}"))
    }

    /// 10026 `JSMaximumConsumersLimitErr` (400): "maximum consumers limit reached".
    pub fn maximum_consumers_limit() -> Self {
        Self::new(400, 10026, "maximum consumers limit reached")
    }

    /// 10027 `JSMaximumStreamsLimitErr` (400): "maximum number of streams reached".
    pub fn maximum_streams_limit() -> Self {
        Self::new(400, 10027, "maximum number of streams reached")
    }

    /// 10037 `JSNoMessageFoundErr` (404): "no message found".
    pub fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found")
    }

    /// 10039 `JSNotEnabledForAccountErr` (503): "JetStream not enabled for account".
    pub fn not_enabled_for_account() -> Self {
        Self::new(503, 10039, "JetStream not enabled for account")
    }

    /// 10043 `JSSequenceNotFoundErrF` (400): "sequence {seq} not found".
    pub fn sequence_not_found(seq: impl std::fmt::Display) -> Self {
        Self::new(400, 10043, format!("sequence {seq} not found"))
    }

    /// 10051 `JSStreamGeneralErrorF` (500): "{err}".
    pub fn stream_general_error(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10051, err.to_string())
    }

    /// 10052 `JSStreamInvalidConfigF` (500): "{err}".
    pub fn stream_invalid_config(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10052, err.to_string())
    }

    /// 10054 `JSStreamMessageExceedsMaximumErr` (400): "message size exceeds maximum allowed".
    pub fn stream_message_exceeds_maximum() -> Self {
        Self::new(400, 10054, "message size exceeds maximum allowed")
    }

    /// 10056 `JSStreamMismatchErr` (400): "stream name in subject does not match request".
    pub fn stream_mismatch() -> Self {
        Self::new(400, 10056, "stream name in subject does not match request")
    }

    /// 10057 `JSStreamMsgDeleteFailedF` (500): "{err}".
    pub fn stream_msg_delete_failed(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10057, err.to_string())
    }

    /// 10058 `JSStreamNameExistErr` (400): "stream name already in use with a different configuration".
    pub fn stream_name_exist() -> Self {
        Self::new(400, 10058, "stream name already in use with a different configuration")
    }

    /// 10059 `JSStreamNotFoundErr` (404): "stream not found".
    pub fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found")
    }

    /// 10060 `JSStreamNotMatchErr` (400): "expected stream does not match".
    pub fn stream_not_match() -> Self {
        Self::new(400, 10060, "expected stream does not match")
    }

    /// 10063 `JSStreamSequenceNotMatchErr` (503): "expected stream sequence does not match".
    pub fn stream_sequence_not_match() -> Self {
        Self::new(503, 10063, "expected stream sequence does not match")
    }

    /// 10065 `JSStreamSubjectOverlapErr` (400): "subjects overlap with an existing stream".
    pub fn stream_subject_overlap() -> Self {
        Self::new(400, 10065, "subjects overlap with an existing stream")
    }

    /// 10069 `JSStreamUpdateErrF` (500): "{err}".
    pub fn stream_update(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10069, err.to_string())
    }

    /// 10070 `JSStreamWrongLastMsgIDErrF` (400): "wrong last msg ID: {id}".
    pub fn stream_wrong_last_msg_id(id: impl std::fmt::Display) -> Self {
        Self::new(400, 10070, format!("wrong last msg ID: {id}"))
    }

    /// 10071 `JSStreamWrongLastSequenceErrF` (400): "wrong last sequence: {seq}".
    pub fn stream_wrong_last_sequence(seq: impl std::fmt::Display) -> Self {
        Self::new(400, 10071, format!("wrong last sequence: {seq}"))
    }

    /// 10074 `JSStreamReplicasNotSupportedErr` (500): "replicas > 1 not supported in non-clustered mode".
    pub fn stream_replicas_not_supported() -> Self {
        Self::new(500, 10074, "replicas > 1 not supported in non-clustered mode")
    }

    /// 10076 `JSNotEnabledErr` (503): "JetStream not enabled".
    pub fn not_enabled() -> Self {
        Self::new(503, 10076, "JetStream not enabled")
    }

    /// 10077 `JSStreamStoreFailedF` (503): "{err}".
    pub fn stream_store_failed(err: impl std::fmt::Display) -> Self {
        Self::new(503, 10077, err.to_string())
    }

    /// 10078 `JSConsumerConfigRequiredErr` (400): "consumer config required".
    pub fn consumer_config_required() -> Self {
        Self::new(400, 10078, "consumer config required")
    }

    /// 10079 `JSConsumerDeliverToWildcardsErr` (400): "consumer deliver subject has wildcards".
    pub fn consumer_deliver_to_wildcards() -> Self {
        Self::new(400, 10079, "consumer deliver subject has wildcards")
    }

    /// 10080 `JSConsumerPushMaxWaitingErr` (400): "consumer in push mode can not set max waiting".
    pub fn consumer_push_max_waiting() -> Self {
        Self::new(400, 10080, "consumer in push mode can not set max waiting")
    }

    /// 10081 `JSConsumerDeliverCycleErr` (400): "consumer deliver subject forms a cycle".
    pub fn consumer_deliver_cycle() -> Self {
        Self::new(400, 10081, "consumer deliver subject forms a cycle")
    }

    /// 10082 `JSConsumerMaxPendingAckPolicyRequiredErr` (400): "consumer requires ack policy for max ack pending".
    pub fn consumer_max_pending_ack_policy_required() -> Self {
        Self::new(400, 10082, "consumer requires ack policy for max ack pending")
    }

    /// 10083 `JSConsumerSmallHeartbeatErr` (400): "consumer idle heartbeat needs to be >= 100ms".
    pub fn consumer_small_heartbeat() -> Self {
        Self::new(400, 10083, "consumer idle heartbeat needs to be >= 100ms")
    }

    /// 10084 `JSConsumerPullRequiresAckErr` (400): "consumer in pull mode requires explicit ack policy on workqueue stream".
    pub fn consumer_pull_requires_ack() -> Self {
        Self::new(400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream")
    }

    /// 10086 `JSConsumerPullWithRateLimitErr` (400): "consumer in pull mode can not have rate limit set".
    pub fn consumer_pull_with_rate_limit() -> Self {
        Self::new(400, 10086, "consumer in pull mode can not have rate limit set")
    }

    /// 10087 `JSConsumerMaxWaitingNegativeErr` (400): "consumer max waiting needs to be positive".
    pub fn consumer_max_waiting_negative() -> Self {
        Self::new(400, 10087, "consumer max waiting needs to be positive")
    }

    /// 10088 `JSConsumerHBRequiresPushErr` (400): "consumer idle heartbeat requires a push based consumer".
    pub fn consumer_hb_requires_push() -> Self {
        Self::new(400, 10088, "consumer idle heartbeat requires a push based consumer")
    }

    /// 10089 `JSConsumerFCRequiresPushErr` (400): "consumer flow control requires a push based consumer".
    pub fn consumer_fc_requires_push() -> Self {
        Self::new(400, 10089, "consumer flow control requires a push based consumer")
    }

    /// 10093 `JSConsumerFilterNotSubsetErr` (400): "consumer filter subject is not a valid subset of the interest subjects".
    pub fn consumer_filter_not_subset() -> Self {
        Self::new(400, 10093, "consumer filter subject is not a valid subset of the interest subjects")
    }

    /// 10094 `JSConsumerInvalidPolicyErrF` (400): "{err}".
    pub fn consumer_invalid_policy(err: impl std::fmt::Display) -> Self {
        Self::new(400, 10094, err.to_string())
    }

    /// 10097 `JSStreamHeaderExceedsMaximumErr` (400): "header size exceeds maximum allowed of 64k".
    pub fn stream_header_exceeds_maximum() -> Self {
        Self::new(400, 10097, "header size exceeds maximum allowed of 64k")
    }

    /// 10098 `JSConsumerWQRequiresExplicitAckErr` (400): "workqueue stream requires explicit ack".
    pub fn consumer_wq_requires_explicit_ack() -> Self {
        Self::new(400, 10098, "workqueue stream requires explicit ack")
    }

    /// 10099 `JSConsumerWQMultipleUnfilteredErr` (400): "multiple non-filtered consumers not allowed on workqueue stream".
    pub fn consumer_wq_multiple_unfiltered() -> Self {
        Self::new(400, 10099, "multiple non-filtered consumers not allowed on workqueue stream")
    }

    /// 10100 `JSConsumerWQConsumerNotUniqueErr` (400): "filtered consumer not unique on workqueue stream".
    pub fn consumer_wq_consumer_not_unique() -> Self {
        Self::new(400, 10100, "filtered consumer not unique on workqueue stream")
    }

    /// 10101 `JSConsumerWQConsumerNotDeliverAllErr` (400): "consumer must be deliver all on workqueue stream".
    pub fn consumer_wq_consumer_not_deliver_all() -> Self {
        Self::new(400, 10101, "consumer must be deliver all on workqueue stream")
    }

    /// 10102 `JSConsumerNameTooLongErrF` (400): "consumer name is too long, maximum allowed is {max}".
    pub fn consumer_name_too_long(max: impl std::fmt::Display) -> Self {
        Self::new(400, 10102, format!("consumer name is too long, maximum allowed is {max}"))
    }

    /// 10103 `JSConsumerBadDurableNameErr` (400): "durable name can not contain '.', '*', '>'".
    pub fn consumer_bad_durable_name() -> Self {
        Self::new(400, 10103, "durable name can not contain '.', '*', '>'")
    }

    /// 10105 `JSConsumerExistingActiveErr` (400): "consumer already exists and is still active".
    pub fn consumer_existing_active() -> Self {
        Self::new(400, 10105, "consumer already exists and is still active")
    }

    /// 10106 `JSConsumerReplacementWithDifferentNameErr` (400): "consumer replacement durable config not the same".
    pub fn consumer_replacement_with_different_name() -> Self {
        Self::new(400, 10106, "consumer replacement durable config not the same")
    }

    /// 10107 `JSConsumerDescriptionTooLongErrF` (400): "consumer description is too long, maximum allowed is {max}".
    pub fn consumer_description_too_long(max: impl std::fmt::Display) -> Self {
        Self::new(400, 10107, format!("consumer description is too long, maximum allowed is {max}"))
    }

    /// 10108 `JSConsumerWithFlowControlNeedsHeartbeats` (400): "consumer with flow control also needs heartbeats".
    pub fn consumer_with_flow_control_needs_heartbeats() -> Self {
        Self::new(400, 10108, "consumer with flow control also needs heartbeats")
    }

    /// 10109 `JSStreamSealedErr` (400): "invalid operation on sealed stream".
    pub fn stream_sealed() -> Self {
        Self::new(400, 10109, "invalid operation on sealed stream")
    }

    /// 10110 `JSStreamPurgeFailedF` (500): "{err}".
    pub fn stream_purge_failed(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10110, err.to_string())
    }

    /// 10111 `JSStreamRollupFailedF` (500): "{err}".
    pub fn stream_rollup_failed(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10111, err.to_string())
    }

    /// 10112 `JSConsumerInvalidDeliverSubject` (400): "invalid push consumer deliver subject".
    pub fn consumer_invalid_deliver_subject() -> Self {
        Self::new(400, 10112, "invalid push consumer deliver subject")
    }

    /// 10114 `JSConsumerMaxRequestBatchNegativeErr` (400): "consumer max request batch needs to be > 0".
    pub fn consumer_max_request_batch_negative() -> Self {
        Self::new(400, 10114, "consumer max request batch needs to be > 0")
    }

    /// 10115 `JSConsumerMaxRequestExpiresTooSmall` (400): "consumer max request expires needs to be >= 1ms".
    pub fn consumer_max_request_expires_too_small() -> Self {
        Self::new(400, 10115, "consumer max request expires needs to be >= 1ms")
    }

    /// 10116 `JSConsumerMaxDeliverBackoffErr` (400): "max deliver is required to be > length of backoff values".
    pub fn consumer_max_deliver_backoff() -> Self {
        Self::new(400, 10116, "max deliver is required to be > length of backoff values")
    }

    /// 10121 `JSConsumerMaxPendingAckExcessErrF` (400): "consumer max ack pending exceeds system limit of {limit}".
    pub fn consumer_max_pending_ack_excess(limit: impl std::fmt::Display) -> Self {
        Self::new(400, 10121, format!("consumer max ack pending exceeds system limit of {limit}"))
    }

    /// 10125 `JSConsumerMaxRequestBatchExceededF` (400): "consumer max request batch exceeds server limit of {limit}".
    pub fn consumer_max_request_batch_exceeded(limit: impl std::fmt::Display) -> Self {
        Self::new(400, 10125, format!("consumer max request batch exceeds server limit of {limit}"))
    }

    /// 10127 `JSConsumerNameContainsPathSeparatorsErr` (400): "Consumer name can not contain path separators".
    pub fn consumer_name_contains_path_separators() -> Self {
        Self::new(400, 10127, "Consumer name can not contain path separators")
    }

    /// 10128 `JSStreamNameContainsPathSeparatorsErr` (400): "Stream name can not contain path separators".
    pub fn stream_name_contains_path_separators() -> Self {
        Self::new(400, 10128, "Stream name can not contain path separators")
    }

    /// 10131 `JSConsumerCreateFilterSubjectMismatchErr` (400): "Consumer create request did not match filtered subject from create subject".
    pub fn consumer_create_filter_subject_mismatch() -> Self {
        Self::new(400, 10131, "Consumer create request did not match filtered subject from create subject")
    }

    /// 10132 `JSConsumerCreateDurableAndNameMismatch` (400): "Consumer Durable and Name have to be equal if both are provided".
    pub fn consumer_create_durable_and_name_mismatch() -> Self {
        Self::new(400, 10132, "Consumer Durable and Name have to be equal if both are provided")
    }

    /// 10133 `JSReplicasCountCannotBeNegative` (400): "replicas count cannot be negative".
    pub fn replicas_count_cannot_be_negative() -> Self {
        Self::new(400, 10133, "replicas count cannot be negative")
    }

    /// 10135 `JSConsumerMetadataLengthErrF` (400): "consumer metadata exceeds maximum size of {limit}".
    pub fn consumer_metadata_length(limit: impl std::fmt::Display) -> Self {
        Self::new(400, 10135, format!("consumer metadata exceeds maximum size of {limit}"))
    }

    /// 10136 `JSConsumerDuplicateFilterSubjects` (400): "consumer cannot have both FilterSubject and FilterSubjects specified".
    pub fn consumer_duplicate_filter_subjects() -> Self {
        Self::new(400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified")
    }

    /// 10137 `JSConsumerMultipleFiltersNotAllowed` (400): "consumer with multiple subject filters cannot use subject based API".
    pub fn consumer_multiple_filters_not_allowed() -> Self {
        Self::new(400, 10137, "consumer with multiple subject filters cannot use subject based API")
    }

    /// 10138 `JSConsumerOverlappingSubjectFilters` (400): "consumer subject filters cannot overlap".
    pub fn consumer_overlapping_subject_filters() -> Self {
        Self::new(400, 10138, "consumer subject filters cannot overlap")
    }

    /// 10139 `JSConsumerEmptyFilter` (400): "consumer filter in FilterSubjects cannot be empty".
    pub fn consumer_empty_filter() -> Self {
        Self::new(400, 10139, "consumer filter in FilterSubjects cannot be empty")
    }

    /// 10148 `JSConsumerAlreadyExists` (400): "consumer already exists".
    pub fn consumer_already_exists() -> Self {
        Self::new(400, 10148, "consumer already exists")
    }

    /// 10149 `JSConsumerDoesNotExist` (400): "consumer does not exist".
    pub fn consumer_does_not_exist() -> Self {
        Self::new(400, 10149, "consumer does not exist")
    }

    /// 10153 `JSConsumerInactiveThresholdExcess` (400): "consumer inactive threshold exceeds system limit of {limit}".
    pub fn consumer_inactive_threshold_excess(limit: impl std::fmt::Display) -> Self {
        Self::new(400, 10153, format!("consumer inactive threshold exceeds system limit of {limit}"))
    }

    /// 10157 `JSPedanticErrF` (400): "pedantic mode: {err}".
    pub fn pedantic(err: impl std::fmt::Display) -> Self {
        Self::new(400, 10157, format!("pedantic mode: {err}"))
    }

    /// 10158 `JSStreamDuplicateMessageConflict` (409): "duplicate message id is in process".
    pub fn stream_duplicate_message_conflict() -> Self {
        Self::new(409, 10158, "duplicate message id is in process")
    }

    /// 10163 `JSStreamExpectedLastSeqPerSubjectNotReady` (503): "expected last sequence per subject temporarily unavailable".
    pub fn stream_expected_last_seq_per_subject_not_ready() -> Self {
        Self::new(503, 10163, "expected last sequence per subject temporarily unavailable")
    }

    /// 10164 `JSStreamWrongLastSequenceConstantErr` (400): "wrong last sequence".
    pub fn stream_wrong_last_sequence_constant() -> Self {
        Self::new(400, 10164, "wrong last sequence")
    }

    /// 10165 `JSMessageTTLInvalidErr` (400): "invalid per-message TTL".
    pub fn message_ttl_invalid() -> Self {
        Self::new(400, 10165, "invalid per-message TTL")
    }

    /// 10166 `JSMessageTTLDisabledErr` (400): "per-message TTL is disabled".
    pub fn message_ttl_disabled() -> Self {
        Self::new(400, 10166, "per-message TTL is disabled")
    }

    /// 10167 `JSStreamTooManyRequests` (429): "too many requests".
    pub fn stream_too_many_requests() -> Self {
        Self::new(429, 10167, "too many requests")
    }

    /// 10181 `JSConsumerAckPolicyInvalidErr` (400): "consumer ack policy invalid".
    pub fn consumer_ack_policy_invalid() -> Self {
        Self::new(400, 10181, "consumer ack policy invalid")
    }

    /// 10182 `JSConsumerReplayPolicyInvalidErr` (400): "consumer replay policy invalid".
    pub fn consumer_replay_policy_invalid() -> Self {
        Self::new(400, 10182, "consumer replay policy invalid")
    }

    /// 10183 `JSConsumerAckWaitNegativeErr` (400): "consumer ack wait needs to be positive".
    pub fn consumer_ack_wait_negative() -> Self {
        Self::new(400, 10183, "consumer ack wait needs to be positive")
    }

    /// 10184 `JSConsumerBackOffNegativeErr` (400): "consumer backoff needs to be positive".
    pub fn consumer_back_off_negative() -> Self {
        Self::new(400, 10184, "consumer backoff needs to be positive")
    }

    /// 10185 `JSRequiredApiLevelErr` (412): "JetStream minimum api level required".
    pub fn required_api_level() -> Self {
        Self::new(412, 10185, "JetStream minimum api level required")
    }

    /// 10193 `JSStreamExpectedLastSeqPerSubjectInvalid` (400): "missing sequence for expected last sequence per subject".
    pub fn stream_expected_last_seq_per_subject_invalid() -> Self {
        Self::new(400, 10193, "missing sequence for expected last sequence per subject")
    }
}

/// Mirror and source errors (stream sourcing, `core/src/jetstream/engine/sources.rs`).
impl ApiError {
    /// 10031 `JSMirrorWithSourcesErr` (400): "stream mirrors can not also contain other sources".
    pub fn mirror_with_sources() -> Self {
        Self::new(400, 10031, "stream mirrors can not also contain other sources")
    }

    /// 10032 `JSMirrorWithStartSeqAndTimeErr` (400): "stream mirrors can not have both start seq and start time configured".
    pub fn mirror_with_start_seq_and_time() -> Self {
        Self::new(400, 10032, "stream mirrors can not have both start seq and start time configured")
    }

    /// 10034 `JSMirrorWithSubjectsErr` (400): "stream mirrors can not contain subjects".
    pub fn mirror_with_subjects() -> Self {
        Self::new(400, 10034, "stream mirrors can not contain subjects")
    }
}
