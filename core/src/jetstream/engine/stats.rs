//! Figures for `/jsz`, `/metrics` and `$JS.API.INFO`: API counters and a summary of every
//! stream and consumer, in nats-server's `/jsz` field names where one exists.

use serde::Serialize;
use std::collections::BTreeMap;

/// API request counters (`api` in `/jsz` and `/varz`, nats-server's
/// `JetStreamAPIStats`; `$JS.API.INFO` shows level, total and errors). The one
/// definition: the server's `/jsz` ([`crate::server::nats::jsz`]) re-exports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApiStats {
    /// API level served ([`super::API_LEVEL`]).
    pub level: u32,
    /// Requests received (answered or refused).
    pub total: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests queued and not yet answered.
    #[serde(skip_serializing_if = "is_zero")]
    pub inflight: u64,
    /// Requests refused because the API queue was full (also counted in `errors`).
    #[serde(skip_serializing_if = "is_zero")]
    pub overflow: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One consumer in `/jsz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JszConsumer {
    /// Name.
    pub name: String,
    /// Messages awaiting ack.
    pub num_ack_pending: u64,
    /// Pending messages delivered more than once.
    pub num_redelivered: u64,
    /// Waiting pull requests.
    pub num_waiting: u64,
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// Ack floor (stream sequence).
    pub ack_floor_stream_seq: u64,
    /// Last delivered stream sequence.
    pub delivered_stream_seq: u64,
    /// Bytes held in `consumer.inflight` by undelivered loads.
    pub inflight_bytes: u64,
}

/// One stream in `/jsz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JszStream {
    /// Name.
    pub name: String,
    /// `"file"` or `"memory"`.
    pub storage: &'static str,
    /// Stored messages.
    pub messages: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// First stored sequence.
    pub first_seq: u64,
    /// Last assigned sequence.
    pub last_seq: u64,
    /// Messages whose PubAck waits for the group commit.
    pub unsynced: u64,
    /// Its consumers.
    pub consumer_detail: Vec<JszConsumer>,
}

/// The engine's summary (`/jsz` body; the shell adds `server_id`, `now`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JszSummary {
    /// Configured limits and store directory.
    pub config: JetStreamConfigJson,
    /// Bytes in memory streams.
    pub memory: u64,
    /// Bytes in file streams.
    pub storage: u64,
    /// Streams in service.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
    /// Messages in all streams.
    pub messages: u64,
    /// Bytes in all streams.
    pub bytes: u64,
    /// API counters.
    pub api: ApiStats,
    /// Per stream detail.
    pub stream_detail: Vec<JszStream>,
    /// Streams that could not be opened, with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_streams: BTreeMap<String, String>,
}

/// `config` of `/jsz` and `/varz`'s `jetstream` block (nats-server's `JetStreamConfig`):
/// the one definition, re-exported by [`crate::server::nats::jsz`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JetStreamConfigJson {
    /// Memory storage limit in bytes (`max_memory_store`; -1: no limit).
    pub max_memory: i64,
    /// File storage limit in bytes (`max_file_store`; -1: no limit).
    pub max_storage: i64,
    /// Store directory (the engine's on its disk; the server shows the configured path).
    pub store_dir: String,
    /// Sync interval in ns (nats-server's `sync_interval`); 0 here, see `sync_always`.
    pub sync_interval: i64,
    /// Whether every write is synced before it is acknowledged: always true for Weir
    /// (PubAcks wait for the group commit's fsync).
    pub sync_always: bool,
    /// Whether stream compression is available (false: Weir does not compress).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compress_ok: bool,
    /// Strict API request checking (nats-server's default true).
    pub strict: bool,
}

fn limit(v: u64) -> i64 {
    if v == u64::MAX { -1 } else { v.min(i64::MAX as u64) as i64 }
}

impl super::JetStream {
    /// The `/jsz` and `/metrics` figures.
    pub fn jsz(&self) -> JszSummary {
        let mut s = JszSummary {
            config: JetStreamConfigJson {
                max_memory: limit(self.cfg.max_memory_store),
                max_storage: limit(self.cfg.max_file_store),
                store_dir: self.cfg.store_dir.clone(),
                sync_interval: 0,
                sync_always: true,
                compress_ok: false,
                strict: true,
            },
            memory: 0,
            storage: 0,
            streams: self.streams.len() as u64,
            consumers: 0,
            messages: 0,
            bytes: 0,
            api: self.api_stats(),
            stream_detail: Vec::new(),
            failed_streams: self.failed.clone(),
        };
        for (name, h) in &self.streams {
            let st = h.stream.store_state();
            if h.is_file() {
                s.storage += st.bytes;
            } else {
                s.memory += st.bytes;
            }
            s.messages += st.msgs;
            s.bytes += st.bytes;
            s.consumers += h.consumers.len() as u64;
            s.stream_detail.push(JszStream {
                name: name.clone(),
                storage: if h.is_file() { "file" } else { "memory" },
                messages: st.msgs,
                bytes: st.bytes,
                first_seq: st.first_seq,
                last_seq: st.last_seq,
                unsynced: h.unsynced.len() as u64,
                consumer_detail: h
                    .consumers
                    .iter()
                    .map(|(n, c)| JszConsumer {
                        name: n.clone(),
                        num_ack_pending: c.c.num_ack_pending() as u64,
                        num_redelivered: c.c.num_redelivered() as u64,
                        num_waiting: c.c.num_waiting() as u64,
                        num_pending: c.c.num_pending(),
                        ack_floor_stream_seq: c.c.ack_floor().stream_seq,
                        delivered_stream_seq: c.c.delivered().stream_seq,
                        inflight_bytes: c.c.inflight_bytes(),
                    })
                    .collect(),
            });
        }
        s
    }

    /// The API counters.
    pub fn api_stats(&self) -> ApiStats {
        ApiStats { level: super::API_LEVEL, inflight: self.api_queue.len() as u64, ..self.stats }
    }
}
