//! [`Jsz`]: the JetStream monitoring snapshot, shaped like nats-server's `/jsz` (its
//! `JSInfo` in `monitor.go`), and the `jetstream` block of `/varz` ([`JetStreamVarz`]).
//!
//! nats-server's `/jsz` embeds `JetStreamStats` (memory, storage, reserved_*, accounts,
//! ha_assets, api) at the top level beside `server_id`, `now`, `config`, and the totals
//! `streams`, `consumers`, `messages`, `bytes`. With `?accounts=true` (implied by
//! `?streams=true`, itself implied by `?consumers=true`) it adds `account_details`: one
//! entry per account (Weir has one, nats-server's global account `$G`) with the same
//! stats and, when asked, `stream_detail` (name, state and, when asked, `consumer_detail`;
//! `?config=true` is accepted and ignored: use `$JS.API.STREAM.INFO` for configs). Field names and nesting follow nats-server so that tools reading
//! its `/jsz` read Weir's; the figures are Weir's own.

use crate::jetstream::format_rfc3339_nano;
use serde::Serialize;

/// The account every stream lives in: nats-server's global account name.
pub const GLOBAL_ACCOUNT: &str = "$G";

pub use crate::jetstream::engine::{ApiStats, JetStreamConfigJson};

/// Usage figures (nats-server's `JetStreamStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JetStreamStats {
    /// Bytes held by memory streams.
    pub memory: u64,
    /// Bytes held by file streams.
    pub storage: u64,
    /// Bytes reserved for memory streams (by stream `max_bytes`).
    pub reserved_memory: u64,
    /// Bytes reserved for file streams.
    pub reserved_storage: u64,
    /// Accounts using JetStream (1 once enabled).
    pub accounts: u64,
    /// Replicated assets (0 on one server).
    pub ha_assets: u64,
    /// API counters.
    pub api: ApiStats,
}

/// `delivered` / `ack_floor` of a consumer in `consumer_detail` (nats-server's `SequenceInfo`,
/// stream sequence only: the engine's summary carries no consumer sequence here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SequencePair {
    /// Stream sequence.
    pub stream_seq: u64,
}

/// One consumer in `consumer_detail` (the figures of nats-server's `ConsumerInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerDetail {
    /// Stream name.
    pub stream_name: String,
    /// Consumer name.
    pub name: String,
    /// The last delivery.
    pub delivered: SequencePair,
    /// The ack floor.
    pub ack_floor: SequencePair,
    /// Messages awaiting ack.
    pub num_ack_pending: u64,
    /// Pending messages delivered more than once.
    pub num_redelivered: u64,
    /// Waiting pull requests.
    pub num_waiting: u64,
    /// Messages not yet delivered.
    pub num_pending: u64,
}

/// `state` of a stream in `stream_detail` (the figures of nats-server's `StreamState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamStateDetail {
    /// Stored messages.
    pub messages: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Oldest stored sequence.
    pub first_seq: u64,
    /// Newest assigned sequence.
    pub last_seq: u64,
    /// Consumers attached.
    pub consumer_count: u64,
}

/// One stream in `stream_detail`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamDetail {
    /// Stream name.
    pub name: String,
    /// Its state.
    pub state: StreamStateDetail,
    /// Its consumers (with `?consumers=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_detail: Option<Vec<ConsumerDetail>>,
    /// Why the stream is out of service (Weir's: a stream whose directory is corrupt or
    /// unreadable is reported here, not dropped; nats-server logs and skips it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One account in `account_details` (nats-server's `AccountDetail`).
#[derive(Clone, Debug, Serialize)]
pub struct AccountDetail {
    /// Account name.
    pub name: String,
    /// Account id.
    pub id: String,
    /// Its usage.
    #[serde(flatten)]
    pub stats: JetStreamStats,
    /// Its streams (with `?streams=true`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stream_detail: Vec<StreamDetail>,
}

/// `/jsz` (nats-server's `JSInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct Jsz {
    /// Server id.
    pub server_id: String,
    /// Time of the snapshot (RFC 3339).
    pub now: String,
    /// True when JetStream is off (then nothing else but `server_id`/`now` is meaningful).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The configuration.
    pub config: JetStreamConfigJson,
    /// Usage.
    #[serde(flatten)]
    pub stats: JetStreamStats,
    /// Streams.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
    /// Messages in all streams.
    pub messages: u64,
    /// Bytes in all streams.
    pub bytes: u64,
    /// Per account details (with `?accounts=true`, `?streams=true` or `?consumers=true`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub account_details: Vec<AccountDetail>,
}

impl Jsz {
    /// The `/jsz` of a server without JetStream: `{"server_id":..,"now":..,"disabled":true,..}`.
    pub fn disabled(server_id: String, now_ns: i64) -> Jsz {
        Jsz {
            server_id,
            now: format_rfc3339_nano(now_ns),
            disabled: true,
            config: JetStreamConfigJson::default(),
            stats: JetStreamStats::default(),
            streams: 0,
            consumers: 0,
            messages: 0,
            bytes: 0,
            account_details: Vec::new(),
        }
    }
}

/// What `/jsz` should include, from its query string (nats-server's `JSzOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JszOptions {
    /// `accounts=true`: per-account details.
    pub accounts: bool,
    /// `streams=true`: stream details (implies accounts).
    pub streams: bool,
    /// `consumers=true`: consumer details (implies streams).
    pub consumers: bool,
}

impl JszOptions {
    /// Parse a query string (`streams=true&consumers=1`); unknown keys are ignored, as
    /// nats-server ignores them. `true`/`1` switch a flag on.
    pub fn from_query(query: &str) -> JszOptions {
        let mut o = JszOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
            let on = matches!(v, "true" | "1");
            match k {
                "accounts" => o.accounts = on,
                "streams" => o.streams = on,
                "consumers" | "consumer" => o.consumers = on,
                _ => {}
            }
        }
        o.streams |= o.consumers;
        o.accounts |= o.streams;
        o
    }
}

/// The `jetstream` block of `/varz` (nats-server's `JetStreamVarz`).
#[derive(Clone, Debug, Serialize)]
pub struct JetStreamVarz {
    /// The configuration.
    pub config: JetStreamConfigJson,
    /// Usage.
    pub stats: JetStreamStats,
}

impl Jsz {
    /// Append Prometheus text for the JetStream figures, named as the other `weir_`
    /// metrics are (`weir_jetstream_*`).
    pub fn write_prometheus(&self, s: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            s.push_str(&format!(
                "# HELP weir_jetstream_{name} {help}\n# TYPE weir_jetstream_{name} {kind}\nweir_jetstream_{name} {v}\n"
            ));
        };
        metric("streams", "gauge", "JetStream streams.", self.streams);
        metric("consumers", "gauge", "JetStream consumers.", self.consumers);
        metric("messages", "gauge", "Messages stored in all streams.", self.messages);
        metric("bytes", "gauge", "Bytes stored in all streams.", self.bytes);
        metric("memory_bytes", "gauge", "Bytes held by memory streams.", self.stats.memory);
        metric("storage_bytes", "gauge", "Bytes held by file streams.", self.stats.storage);
        metric("max_memory_bytes", "gauge", "Memory storage limit.", self.config.max_memory.max(0) as u64);
        metric("max_storage_bytes", "gauge", "File storage limit.", self.config.max_storage.max(0) as u64);
        metric("api_requests_total", "counter", "JetStream API requests handled.", self.stats.api.total);
        metric("api_errors_total", "counter", "JetStream API requests answered with an error.", self.stats.api.errors);
        metric("api_inflight", "gauge", "JetStream API requests queued.", self.stats.api.inflight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_imply_as_nats_server() {
        let o = JszOptions::from_query("consumers=true");
        assert_eq!(o, JszOptions { accounts: true, streams: true, consumers: true });
        let o = JszOptions::from_query("streams=1&config=true&x=y");
        assert_eq!(o, JszOptions { accounts: true, streams: true, consumers: false });
        assert_eq!(JszOptions::from_query(""), JszOptions::default());
        assert!(!JszOptions::from_query("accounts=false").accounts);
    }

    #[test]
    fn stats_are_flattened_beside_the_totals() {
        let mut j = Jsz::disabled("N1".into(), 0);
        j.disabled = false;
        j.stats.api = ApiStats { level: 1, total: 5, errors: 1, ..ApiStats::default() };
        j.streams = 2;
        let v: serde_json::Value = serde_json::to_value(&j).unwrap();
        assert_eq!(v["api"]["total"], 5);
        assert_eq!(v["api"]["errors"], 1);
        assert_eq!(v["streams"], 2);
        assert_eq!(v["memory"], 0);
        assert!(v.get("disabled").is_none());
        assert!(v.get("account_details").is_none());
        assert_eq!(v["config"]["sync_always"], false);
        let mut p = String::new();
        j.write_prometheus(&mut p);
        assert!(p.contains("weir_jetstream_streams 2\n"), "{p}");
        assert!(p.contains("# TYPE weir_jetstream_api_requests_total counter\nweir_jetstream_api_requests_total 5\n"));
    }
}
