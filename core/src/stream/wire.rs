//! The JSON and header shapes a stream's replies take on the wire, as nats-server
//! builds them: the PubAck, the stored-message reply of STREAM.MSG.GET, the direct-get
//! headers, and the request bodies of purge, message get and message delete.

use crate::jetstream::{ApiError, encode_base64, format_rfc3339_nano, serde_opt_time, serde_time};
use crate::store::StoredMsg;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::StreamConfig;

/// The answer to a stored (or deduplicated) publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubAck {
    /// Stream name.
    pub stream: String,
    /// Sequence the message has (for a duplicate: the original's).
    pub seq: u64,
    /// The message id was seen inside the dedup window; nothing was stored.
    pub duplicate: bool,
    /// A message was appended to the store (false for duplicates and for interest
    /// streams with no matching consumer, where the sequence is used but nothing is kept).
    pub stored: bool,
}

impl PubAck {
    /// The reply body exactly as nats-server writes it: `{"stream":"S","seq":N}`, with a
    /// domain `{"stream":"S","domain":"D","seq":N}`, and for a duplicate
    /// `{"stream":"S","seq":N,"duplicate": true}` (nats-server's space included).
    pub fn to_json(&self, domain: Option<&str>) -> Vec<u8> {
        let q = |s: &str| serde_json::to_string(s).expect("string serialises");
        let mut out = format!("{{\"stream\":{}", q(&self.stream));
        if let Some(d) = domain {
            out.push_str(&format!(",\"domain\":{}", q(d)));
        }
        out.push_str(&format!(",\"seq\":{}", self.seq));
        out.push_str(if self.duplicate { ",\"duplicate\": true}" } else { "}" });
        out.into_bytes()
    }
}

/// A failed publish's reply: `{"error":{..},"stream":"S","seq":0}` (`JSPubAckResponse`).
pub fn pub_ack_error_json(stream: &str, err: &ApiError) -> Vec<u8> {
    format!(
        "{{\"error\":{},\"stream\":{},\"seq\":0}}",
        err.to_json(),
        serde_json::to_string(stream).expect("string serialises")
    )
    .into_bytes()
}

/// A stored message in JSON (`StoredMsg`, `stream.go`): bytes as base64, time RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredMsgJson {
    /// Subject.
    pub subject: String,
    /// Sequence.
    pub seq: u64,
    /// Header block, base64 (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hdrs: String,
    /// Payload, base64 (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// Store time.
    #[serde(with = "serde_time")]
    pub time: i64,
}

impl From<&StoredMsg> for StoredMsgJson {
    fn from(m: &StoredMsg) -> Self {
        StoredMsgJson {
            subject: m.subject.clone(),
            seq: m.seq,
            hdrs: encode_base64(&m.headers),
            data: encode_base64(&m.payload),
            time: m.ts_ns,
        }
    }
}

/// Body of a STREAM.MSG.GET reply (`{"message":{..}}`, to wrap with
/// [`crate::jetstream::api_response`] as `stream_msg_get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MsgGetResponse {
    /// The message.
    pub message: StoredMsgJson,
}

/// STREAM.MSG.GET and DIRECT.GET request (`JSApiMsgGetRequest`). Weir serves `seq`,
/// `last_by_subj`, `next_by_subj` (with `seq` as the start) and `start_time`; batch and
/// multi-last requests are refused as bad requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    /// Sequence (or start sequence with `next_by_subj`).
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Newest message on this subject.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_by_subj: String,
    /// First message at or after `seq` matching this filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_by_subj: String,
    /// First message at or after this time (ns; RFC 3339 in JSON).
    #[serde(with = "serde_opt_time", skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// Batch size (direct get only; not supported above 1).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub batch: i64,
    /// Multi-last subjects (not supported).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multi_last: Vec<String>,
    /// Leave headers out of a direct get reply.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_hdr: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// STREAM.PURGE request (`JSApiStreamPurgeRequest`): `seq` (purge below, exclusive)
/// and `keep` are mutually exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeApiRequest {
    /// Only messages whose subject matches.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter: String,
    /// Only messages below this sequence.
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Keep the newest `keep` matching messages.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep: u64,
}

/// STREAM.MSG.DELETE request (`JSApiMsgDeleteRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    /// Sequence to delete.
    pub seq: u64,
    /// Skip the secure erase (Weir never erases in place, see `Stream::delete_msg`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_erase: bool,
}

/// A direct-get reply: a raw message, not JSON. Errors are status-only header blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectGetReply {
    /// Header block (`NATS/1.0 ...`).
    pub headers: Vec<u8>,
    /// Payload (empty for status replies).
    pub payload: Vec<u8>,
}

impl DirectGetReply {
    /// A status-only reply such as `NATS/1.0 404 Message Not Found\r\n\r\n`.
    pub fn status(code: u16, text: &str) -> Self {
        DirectGetReply { headers: format!("NATS/1.0 {code} {text}\r\n\r\n").into_bytes(), payload: Vec::new() }
    }

    /// The reply for a found message: its own headers (if any, unless `no_hdr`) followed
    /// by `Nats-Stream`, `Nats-Subject`, `Nats-Sequence` and `Nats-Time-Stamp`, as
    /// nats-server appends them.
    pub fn found(stream: &str, m: &StoredMsg, no_hdr: bool) -> Self {
        if no_hdr {
            return DirectGetReply { headers: Vec::new(), payload: m.payload.clone() };
        }
        let extra = format!(
            "Nats-Stream: {stream}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {}\r\n\r\n",
            m.subject,
            m.seq,
            format_rfc3339_nano(m.ts_ns)
        );
        // A republished message stored here carries its origin's `Nats-Sequence` etc.:
        // this stream's values replace them, so that a client reading the first value
        // (a KV revision) sees this stream's, as nats-server answers.
        let own = stripped_of_direct_headers(&m.headers);
        let mut headers = match own.strip_suffix(b"\r\n") {
            Some(head) if own.starts_with(b"NATS/1.0") => head.to_vec(),
            _ => b"NATS/1.0\r\n".to_vec(),
        };
        headers.extend_from_slice(extra.as_bytes());
        DirectGetReply { headers, payload: m.payload.clone() }
    }
}

/// `headers` without the headers a direct get sets itself (a copy when it had any).
fn stripped_of_direct_headers(headers: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const OWN: [&str; 5] = ["Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Last-Sequence"];
    if headers.is_empty() {
        return std::borrow::Cow::Borrowed(headers);
    }
    let Ok(mut h) = crate::proto::Headers::parse(headers) else { return std::borrow::Cow::Borrowed(headers) };
    if OWN.iter().map(|k| h.remove(k)).sum::<usize>() == 0 {
        return std::borrow::Cow::Borrowed(headers);
    }
    std::borrow::Cow::Owned(h.to_bytes().to_vec())
}

/// A stream's state in JSON (`StreamState`, `store.go`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStateJson {
    /// Stored messages.
    pub messages: u64,
    /// Stored bytes (Weir's record sizes).
    pub bytes: u64,
    /// Oldest stored sequence.
    pub first_seq: u64,
    /// Its time (Go's zero time when empty).
    #[serde(with = "serde_opt_time")]
    pub first_ts: Option<i64>,
    /// Newest assigned sequence.
    pub last_seq: u64,
    /// Time of the newest message (Go's zero time when never written).
    #[serde(with = "serde_opt_time")]
    pub last_ts: Option<i64>,
    /// Distinct subjects.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_subjects: u64,
    /// Count per subject (only when asked with `subjects_filter`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, u64>,
    /// Deleted sequences inside the range.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_deleted: u64,
    /// The deleted sequences (only with `deleted_details`, at most
    /// [`super::MAX_DELETED_DETAILS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<u64>,
    /// Consumers attached.
    pub consumer_count: u64,
}

/// `cluster` of a stream info; on one server only the leader (the server's name),
/// which the API layer fills in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Leader server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// `StreamInfo` (`stream.go`): config, creation time, state, cluster, gathered time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The config in force.
    pub config: StreamConfig,
    /// When the stream was created.
    #[serde(with = "serde_time")]
    pub created: i64,
    /// Its state.
    pub state: StreamStateJson,
    /// Cluster details (set by the API layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// A mirror's `StreamSourceInfo` (`name`, `lag`, `active`, ...; set by the API layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    /// The sources' `StreamSourceInfo`s (set by the API layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<serde_json::Value>>,
    /// When this info was gathered.
    #[serde(with = "serde_time")]
    pub ts: i64,
}
