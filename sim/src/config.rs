//! The per-run configuration, drawn from the seed by a scenario, printed first
//! (TigerBeetle-style) and overridable field by field from the command line.
//!
//! Fields are grouped by the component they shape: [`Run`] (world, cluster size,
//! phase lengths), [`Workload`], [`Net`], [`Disk`], [`Raft`], [`Route`], [`Store`] and
//! the fault mix. On the command line and in the printed line a field is named by
//! its dotted path, e.g. `--set raft.heartbeat_ms=50` or `--set faults.crash=3`.

use crate::node::NodeNo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_faults::FaultMix;

/// Everything that shapes one simulated run besides the seed and the bugs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Which world runs, how big, for how long.
    pub run: Run,
    /// What the clients offer.
    pub workload: Workload,
    /// The simulated network between nodes.
    pub net: Net,
    /// Every node's simulated disk.
    pub disk: Disk,
    /// Raft tuning and its ledger limits (Raft world).
    pub raft: Raft,
    /// Route queues and their ledger limit (Raft and pub/sub worlds).
    pub route: Route,
    /// File store tuning and its ledger limits (store world).
    pub store: Store,
    /// Streams, consumers and client behaviour (JetStream world).
    pub js: Js,
    /// Fault mix for the safety phase.
    pub faults: FaultMix,
}

/// Which world runs, how big, for how long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Name of the world (see `weir_sim::worlds`): `raft`, `pubsub` or `store`.
    pub world: String,
    /// Cluster size.
    pub nodes: NodeNo,
    /// Concurrent workload clients.
    pub clients: u32,
    /// Length of the safety phase (workload + faults), in ms of virtual time.
    pub duration_ms: u64,
    /// Bound on convergence once faults stop, in ms.
    pub liveness_ms: u64,
}

impl Default for Run {
    fn default() -> Self {
        Run { world: "raft".into(), nodes: 3, clients: 16, duration_ms: 10_000, liveness_ms: 20_000 }
    }
}

/// What the clients offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Requests (proposals, publishes, appends) per second per client.
    pub rate_per_client: u32,
    /// Payload size in bytes (at least 8).
    pub payload_bytes: u32,
    /// Client request timeout in ms.
    pub request_timeout_ms: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { rate_per_client: 63, payload_bytes: 64, request_timeout_ms: 2_000 }
    }
}

/// The simulated network between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    /// Lower bound of the per-link base latency in microseconds.
    pub latency_us_min: u64,
    /// Upper bound of the per-link base latency in microseconds.
    pub latency_us_max: u64,
}

impl Default for Net {
    fn default() -> Self {
        Net { latency_us_min: 200, latency_us_max: 2_000 }
    }
}

/// Every node's simulated disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Base write latency, microseconds.
    pub write_us: u64,
    /// Base fsync latency, microseconds.
    pub sync_us: u64,
    /// Chance that a crash keeps a torn prefix of unsynced appends.
    pub torn_write_prob: f64,
}

impl Default for Disk {
    fn default() -> Self {
        Disk { write_us: 20, sync_us: 500, torn_write_prob: 0.5 }
    }
}

/// Raft tuning and its ledger limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raft {
    /// Election timeout lower bound, ms.
    pub election_timeout_min_ms: u64,
    /// Election timeout upper bound, ms.
    pub election_timeout_max_ms: u64,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Tick period, ms.
    pub tick_ms: u64,
    /// Most entry bytes per Append.
    pub max_append_bytes: u64,
    /// Per-follower in-flight window in bytes.
    pub catchup_window_bytes: u64,
    /// Snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// InstallSnapshot chunk size.
    pub snapshot_chunk_bytes: u64,
    /// Ledger limit of `raft.pending`.
    pub pending_limit: u64,
    /// Ledger limit of `raft.catchup`.
    pub catchup_limit: u64,
    /// Group commit: a node takes client proposals from its queue at most once per this
    /// many microseconds (`NodeConfig::propose_batch`); 0 takes them as they come (and is
    /// what traces recorded before the field existed mean).
    #[serde(default)]
    pub propose_batch_us: u64,
}

impl Default for Raft {
    fn default() -> Self {
        Raft {
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            heartbeat_ms: 50,
            tick_ms: 10,
            max_append_bytes: 64 * 1024,
            catchup_window_bytes: 256 * 1024,
            snapshot_every: 2_000,
            snapshot_chunk_bytes: 32 * 1024,
            pending_limit: 1024 * 1024,
            catchup_limit: 1024 * 1024,
            propose_batch_us: 5_000,
        }
    }
}

/// Route queues and their ledger limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Ledger limit of `route.outbound` (node total).
    pub outbound_limit: u64,
    /// Per-route queue cap in bytes.
    pub max_pending: u64,
    /// Route stall timeout (write deadline), ms.
    pub stall_ms: u64,
    /// Route keepalive period, ms; the dialler ends a connection when a ping is due
    /// with `max_pings_out` unanswered, the acceptor after three periods of silence.
    pub ping_ms: u64,
    /// Unanswered pings a route allows (nats-server's `ping_max`).
    pub max_pings_out: u32,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            outbound_limit: 8 * 1024 * 1024,
            max_pending: 2 * 1024 * 1024,
            stall_ms: 3_000,
            ping_ms: 500,
            max_pings_out: 2,
        }
    }
}

/// File store tuning and its ledger limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Block file size in bytes.
    pub block_size: u64,
    /// Ledger limit of `store.buffers` (the buffer pool's hard cap).
    pub buffers_limit: u64,
    /// Ledger limit of `store.cache` (also the block cache's byte cap).
    pub cache_limit: u64,
    /// Ledger limit of `store.index` (the in-memory index; appends past it are refused).
    pub index_limit: u64,
    /// `max_msgs` retention limit (0 = unlimited), discard old.
    pub max_msgs: u64,
    /// Percent of writer operations that delete an acknowledged message.
    pub delete_pct: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            block_size: 64 * 1024,
            buffers_limit: 256 * 1024,
            cache_limit: 256 * 1024,
            index_limit: 4 * 1024 * 1024,
            max_msgs: 0,
            delete_pct: 0,
        }
    }
}

/// Streams, consumers and client behaviour of the JetStream world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Js {
    /// The streams' retention policies, comma-separated, one stream each (`limits`,
    /// `interest`, `workqueue`), e.g. `limits,workqueue`.
    pub streams: String,
    /// `max_msgs` of limits streams (0 = none).
    pub max_msgs: u64,
    /// `max_bytes` of limits streams (0 = none).
    pub max_bytes: u64,
    /// `max_msgs_per_subject` of limits streams (0 = none).
    pub max_per_subject: u64,
    /// Every stream's `duplicate_window`, ms.
    pub dedup_window_ms: u64,
    /// Every consumer's `ack_wait`, ms.
    pub ack_wait_ms: u64,
    /// Messages asked for per pull request (and acked per round by push consumers).
    pub batch: u64,
    /// Percent of publishes that carry `Nats-Msg-Id`.
    pub msg_id_pct: u32,
    /// Percent of Msg-Id publishes that re-send a recently acknowledged id (as a client
    /// that lost the PubAck would).
    pub resend_pct: u32,
    /// Percent of deliveries answered `-NAK` during the safety phase.
    pub nak_pct: u32,
    /// Percent of deliveries answered `+TERM` during the safety phase.
    pub term_pct: u32,
    /// Percent of deliveries left unanswered (redelivered after `ack_wait`) during the
    /// safety phase.
    pub skip_pct: u32,
    /// Percent of client operations after which the client drops its connection.
    pub disconnect_pct: u32,
    /// Percent of sampler rounds that delete a message of a limits stream.
    pub delete_pct: u32,
    /// Ledger limit of `stream.dedup`.
    pub dedup_limit: u64,
    /// Ledger limit of `consumer.inflight`.
    pub inflight_limit: u64,
}

impl Default for Js {
    fn default() -> Self {
        Js {
            streams: "limits,interest,workqueue".into(),
            max_msgs: 0,
            max_bytes: 0,
            max_per_subject: 0,
            dedup_window_ms: 3_000,
            ack_wait_ms: 1_000,
            batch: 8,
            msg_id_pct: 50,
            resend_pct: 10,
            nak_pct: 5,
            term_pct: 2,
            skip_pct: 3,
            disconnect_pct: 1,
            delete_pct: 5,
            dedup_limit: 4 * 1024 * 1024,
            inflight_limit: 4 * 1024 * 1024,
        }
    }
}

/// Why an override was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    /// Not of the form `key=value`.
    #[error("override '{0}' is not of the form key=value")]
    Syntax(String),
    /// No such field.
    #[error("unknown config field '{key}' (known: {known})")]
    UnknownKey {
        /// The key given.
        key: String,
        /// Comma-separated known keys.
        known: String,
    },
    /// The value does not parse as the field's type, or breaks validation.
    #[error("bad value for '{key}': {why}")]
    BadValue {
        /// The key.
        key: String,
        /// Why.
        why: String,
    },
}

/// The config as a JSON object (groups are nested objects).
fn to_object(cfg: &SimConfig) -> Map<String, Value> {
    match serde_json::to_value(cfg).expect("config serialises") {
        Value::Object(m) => m,
        _ => unreachable!("config is an object"),
    }
}

/// Every leaf of `obj` as `(dotted.key, value)`, in key order.
fn leaves(prefix: &str, obj: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in obj {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(m) => leaves(&key, m, out),
            _ => out.push((key, v.clone())),
        }
    }
}

/// The leaf at dotted `key`, if there is one.
fn leaf_mut<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Value> {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    match (obj.get_mut(head)?, rest) {
        (Value::Object(m), Some(rest)) => leaf_mut(m, rest),
        (Value::Object(_), None) | (_, Some(_)) => None,
        (v, None) => Some(v),
    }
}

impl SimConfig {
    /// Parse `key=value`.
    pub fn parse_override(s: &str) -> Result<(String, String), OverrideError> {
        let (k, v) = s.split_once('=').ok_or_else(|| OverrideError::Syntax(s.to_string()))?;
        if k.trim().is_empty() {
            return Err(OverrideError::Syntax(s.to_string()));
        }
        Ok((k.trim().to_string(), v.trim().to_string()))
    }

    /// Apply dotted `key=value` overrides in order, then validate.
    pub fn apply_overrides(&self, overrides: &[(String, String)]) -> Result<SimConfig, OverrideError> {
        let mut obj = to_object(self);
        for (k, v) in overrides {
            let slot = leaf_mut(&mut obj, k)
                .ok_or_else(|| OverrideError::UnknownKey { key: k.clone(), known: self.keys().join(", ") })?;
            let bad = |why: String| OverrideError::BadValue { key: k.clone(), why };
            *slot = match slot {
                Value::Number(n) if n.is_f64() => {
                    Value::from(v.parse::<f64>().map_err(|e| bad(format!("{v:?} is not a number: {e}")))?)
                }
                Value::Number(_) => {
                    Value::from(v.parse::<u64>().map_err(|e| bad(format!("{v:?} is not an unsigned integer: {e}")))?)
                }
                Value::Bool(_) => Value::from(v.parse::<bool>().map_err(|e| bad(format!("{v:?}: {e}")))?),
                _ => Value::from(v.clone()),
            };
        }
        let cfg: SimConfig = serde_json::from_value(Value::Object(obj))
            .map_err(|e| OverrideError::BadValue { key: "config".into(), why: e.to_string() })?;
        cfg.validate().map_err(|why| OverrideError::BadValue { key: "config".into(), why })?;
        Ok(cfg)
    }

    /// Dotted field names, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        leaves("", &to_object(self), &mut out);
        out.into_iter().map(|(k, _)| k).collect()
    }

    /// Reject configurations no world can run. Each world adds its own rules and the
    /// faults it supports when a run is set up (`weir_sim::harness::check_config`).
    pub fn validate(&self) -> Result<(), String> {
        let (run, w, raft) = (&self.run, &self.workload, &self.raft);
        let js = &self.js;
        let retentions_ok =
            !js.streams.is_empty() && js.streams.split(',').all(|r| matches!(r, "limits" | "interest" | "workqueue"));
        let checks: [(bool, &str); 16] = [
            (retentions_ok, "js.streams must list limits, interest or workqueue, comma-separated"),
            (js.streams.split(',').count() <= 8, "js.streams must list at most 8 streams"),
            (
                js.dedup_window_ms > 0 && js.ack_wait_ms > 0 && js.batch > 0,
                "js.dedup_window_ms, js.ack_wait_ms and js.batch must be > 0",
            ),
            (
                js.nak_pct + js.term_pct + js.skip_pct <= 100 && js.msg_id_pct <= 100 && js.resend_pct <= 100,
                "js percentages must be <= 100 (nak + term + skip together)",
            ),
            ((256..=1 << 30).contains(&self.store.block_size), "store.block_size must be 256 B..=1 GiB"),
            (self.store.delete_pct <= 100, "store.delete_pct must be <= 100"),
            (run.nodes >= 1 && run.nodes <= 9, "run.nodes must be 1..=9"),
            (run.clients <= 256, "run.clients must be <= 256"),
            (w.payload_bytes >= 8, "workload.payload_bytes must be >= 8"),
            (
                raft.election_timeout_min_ms < raft.election_timeout_max_ms,
                "raft.election_timeout_min_ms must be < raft.election_timeout_max_ms",
            ),
            (
                raft.heartbeat_ms > 0 && raft.heartbeat_ms < raft.election_timeout_min_ms,
                "raft.heartbeat_ms must be > 0 and < raft.election_timeout_min_ms",
            ),
            (raft.tick_ms > 0, "raft.tick_ms must be > 0"),
            (self.net.latency_us_min <= self.net.latency_us_max, "net.latency_us_min must be <= net.latency_us_max"),
            ((0.0..=1.0).contains(&self.disk.torn_write_prob), "disk.torn_write_prob must be in [0, 1]"),
            (raft.snapshot_every > 0, "raft.snapshot_every must be > 0"),
            (
                self.route.ping_ms > 0 && self.route.max_pings_out > 0,
                "route.ping_ms and route.max_pings_out must be > 0",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(why.to_string()),
            None => Ok(()),
        }
    }

    /// One line `group.key=value ...` in key order: printed first and stored in the
    /// trace header.
    pub fn line(&self) -> String {
        let mut out = Vec::new();
        leaves("", &to_object(self), &mut out);
        out.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn overrides_apply_and_validate() {
        let c = SimConfig::default();
        let c2 = c.apply_overrides(&[set("run.nodes", "5"), set("faults.crash", "3")]).unwrap();
        assert_eq!(c2.run.nodes, 5);
        assert_eq!(c2.faults.crash, 3);
        let c3 = c.apply_overrides(&[set("raft.heartbeat_ms", "40"), set("run.world", "store")]).unwrap();
        assert_eq!((c3.raft.heartbeat_ms, c3.run.world.as_str()), (40, "store"));
        assert!(matches!(c.apply_overrides(&[set("nope", "1")]), Err(OverrideError::UnknownKey { .. })));
        // Flat keys of old and group names alone are not fields.
        assert!(matches!(c.apply_overrides(&[set("nodes", "5")]), Err(OverrideError::UnknownKey { .. })));
        assert!(matches!(c.apply_overrides(&[set("raft", "5")]), Err(OverrideError::UnknownKey { .. })));
        assert!(matches!(c.apply_overrides(&[set("run.nodes.x", "5")]), Err(OverrideError::UnknownKey { .. })));
        assert!(matches!(c.apply_overrides(&[set("run.nodes", "x")]), Err(OverrideError::BadValue { .. })));
        assert!(matches!(c.apply_overrides(&[set("run.nodes", "0")]), Err(OverrideError::BadValue { .. })));
        assert!(SimConfig::parse_override("novalue").is_err());
    }

    #[test]
    fn line_is_one_line_of_dotted_keys_and_round_trips() {
        let c = SimConfig::default().apply_overrides(&[set("disk.torn_write_prob", "0.25")]).unwrap();
        let line = c.line();
        assert!(!line.contains('\n'));
        assert!(line.contains("run.nodes=3") && line.contains("raft.heartbeat_ms=50"), "{line}");
        assert!(line.contains("faults.crash=0") && line.contains("run.world=\"raft\""), "{line}");
        let keys = c.keys();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys are sorted");
        // Every printed pair, fed back as overrides, gives the same config.
        let pairs: Vec<(String, String)> = line
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        assert_eq!(pairs.len(), keys.len());
        assert_eq!(SimConfig::default().apply_overrides(&pairs).unwrap(), c);
    }
}
