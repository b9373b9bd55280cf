//! The per-run configuration, drawn from the seed by a scenario, printed first
//! (TigerBeetle-style) and overridable field by field from the command line.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_faults::FaultMix;

/// Which system a run builds and checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// A Raft-replicated log cluster with proposal clients.
    #[default]
    Raft,
    /// Clustered NATS servers; clients publish and subscribe (core pub/sub).
    Pubsub,
    /// One node's message store (`FileStore` on the simulated disk) with writers,
    /// deleters and readers in-process, crashed and corrupted underneath.
    Store,
}

/// Everything that shapes one simulated run besides the seed and the bugs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Which system is simulated.
    #[serde(default)]
    pub world: World,
    /// Cluster size.
    pub nodes: u16,
    /// Concurrent workload clients.
    pub clients: u32,
    /// Length of the safety phase (workload + faults), in ms of virtual time.
    pub duration_ms: u64,
    /// Bound on convergence once faults stop, in ms.
    pub liveness_ms: u64,
    /// Proposals per second per client.
    pub rate_per_client: u32,
    /// Proposal payload size in bytes (at least 8).
    pub payload_bytes: u32,
    /// Client request timeout in ms.
    pub request_timeout_ms: u64,
    /// Lower bound of the per-link base latency in microseconds.
    pub link_latency_us_min: u64,
    /// Upper bound of the per-link base latency in microseconds.
    pub link_latency_us_max: u64,
    /// Raft election timeout lower bound, ms.
    pub election_timeout_min_ms: u64,
    /// Raft election timeout upper bound, ms.
    pub election_timeout_max_ms: u64,
    /// Raft heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Raft tick period, ms.
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
    pub raft_pending_limit: u64,
    /// Ledger limit of `raft.catchup`.
    pub raft_catchup_limit: u64,
    /// Ledger limit of `route.outbound` (node total).
    pub route_outbound_limit: u64,
    /// Per-route queue cap in bytes.
    pub route_max_pending: u64,
    /// Route stall timeout, ms.
    pub route_stall_ms: u64,
    /// Base disk write latency, microseconds.
    pub disk_write_us: u64,
    /// Base fsync latency, microseconds.
    pub disk_sync_us: u64,
    /// Chance that a crash keeps a torn prefix of unsynced appends.
    pub torn_write_prob: f64,
    /// Store world: block file size in bytes.
    #[serde(default = "defaults::store_block_size")]
    pub store_block_size: u64,
    /// Store world: ledger limit of `store.buffers` (the buffer pool's hard cap).
    #[serde(default = "defaults::store_buffers_limit")]
    pub store_buffers_limit: u64,
    /// Store world: ledger limit of `store.cache` (also the block cache's byte cap).
    #[serde(default = "defaults::store_cache_limit")]
    pub store_cache_limit: u64,
    /// Store world: ledger limit of `store.index` (the in-memory index; appends past it are refused).
    #[serde(default = "defaults::store_index_limit")]
    pub store_index_limit: u64,
    /// Store world: `max_msgs` retention limit (0 = unlimited), discard old.
    #[serde(default)]
    pub store_max_msgs: u64,
    /// Store world: percent of writer operations that delete an acknowledged message.
    #[serde(default)]
    pub store_delete_pct: u32,
    /// Fault mix for the safety phase.
    #[serde(flatten)]
    pub faults: FaultMix,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            world: World::Raft,
            nodes: 3,
            clients: 16,
            duration_ms: 10_000,
            liveness_ms: 20_000,
            rate_per_client: 63,
            payload_bytes: 64,
            request_timeout_ms: 2_000,
            link_latency_us_min: 200,
            link_latency_us_max: 2_000,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            heartbeat_ms: 50,
            tick_ms: 10,
            max_append_bytes: 64 * 1024,
            catchup_window_bytes: 256 * 1024,
            snapshot_every: 2_000,
            snapshot_chunk_bytes: 32 * 1024,
            raft_pending_limit: 1024 * 1024,
            raft_catchup_limit: 1024 * 1024,
            route_outbound_limit: 8 * 1024 * 1024,
            route_max_pending: 2 * 1024 * 1024,
            route_stall_ms: 3_000,
            disk_write_us: 20,
            disk_sync_us: 500,
            torn_write_prob: 0.5,
            store_block_size: defaults::store_block_size(),
            store_buffers_limit: defaults::store_buffers_limit(),
            store_cache_limit: defaults::store_cache_limit(),
            store_index_limit: defaults::store_index_limit(),
            store_max_msgs: 0,
            store_delete_pct: 0,
            faults: FaultMix::default(),
        }
    }
}

/// Defaults of fields added after traces were first recorded (old configs lack them).
mod defaults {
    pub fn store_block_size() -> u64 {
        64 * 1024
    }
    pub fn store_buffers_limit() -> u64 {
        256 * 1024
    }
    pub fn store_cache_limit() -> u64 {
        256 * 1024
    }
    pub fn store_index_limit() -> u64 {
        4 * 1024 * 1024
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

impl SimConfig {
    /// Parse `key=value`.
    pub fn parse_override(s: &str) -> Result<(String, String), OverrideError> {
        let (k, v) = s.split_once('=').ok_or_else(|| OverrideError::Syntax(s.to_string()))?;
        if k.trim().is_empty() {
            return Err(OverrideError::Syntax(s.to_string()));
        }
        Ok((k.trim().to_string(), v.trim().to_string()))
    }

    /// Apply `key=value` overrides in order, then validate.
    pub fn apply_overrides(&self, overrides: &[(String, String)]) -> Result<SimConfig, OverrideError> {
        let mut obj = match serde_json::to_value(self).expect("config serialises") {
            Value::Object(m) => m,
            _ => unreachable!("config is an object"),
        };
        for (k, v) in overrides {
            let slot = obj
                .get_mut(k)
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

    /// Field names, sorted.
    pub fn keys(&self) -> Vec<String> {
        match serde_json::to_value(self).expect("config serialises") {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Reject configurations the harness cannot run.
    pub fn validate(&self) -> Result<(), String> {
        let raft_faults_only = self.faults.corrupt == 0 && self.faults.disk_full == 0;
        let checks: [(bool, &str); 13] = [
            (
                self.world == World::Store || raft_faults_only,
                "corrupt and disk_full faults need world=store (Raft and pub/sub nodes cannot repair damage yet)",
            ),
            (self.world != World::Store || self.nodes == 1, "world=store runs one node"),
            ((256..=1 << 30).contains(&self.store_block_size), "store_block_size must be 256 B..=1 GiB"),
            (self.store_delete_pct <= 100, "store_delete_pct must be <= 100"),
            (self.nodes >= 1 && self.nodes <= 9, "nodes must be 1..=9"),
            (self.clients <= 256, "clients must be <= 256"),
            (self.payload_bytes >= 8, "payload_bytes must be >= 8"),
            (self.election_timeout_min_ms < self.election_timeout_max_ms, "election timeout min must be < max"),
            (
                self.heartbeat_ms > 0 && self.heartbeat_ms < self.election_timeout_min_ms,
                "heartbeat must be < election timeout",
            ),
            (self.tick_ms > 0, "tick_ms must be > 0"),
            (self.link_latency_us_min <= self.link_latency_us_max, "link latency min must be <= max"),
            ((0.0..=1.0).contains(&self.torn_write_prob), "torn_write_prob must be in [0, 1]"),
            (self.snapshot_every > 0, "snapshot_every must be > 0"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(why.to_string()),
            None => Ok(()),
        }
    }

    /// One line `key=value ...` in key order: printed first and stored in the trace header.
    pub fn line(&self) -> String {
        match serde_json::to_value(self).expect("config serialises") {
            Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_validate() {
        let c = SimConfig::default();
        let o = vec![("nodes".to_string(), "5".to_string()), ("crash".to_string(), "3".to_string())];
        let c2 = c.apply_overrides(&o).unwrap();
        assert_eq!(c2.nodes, 5);
        assert_eq!(c2.faults.crash, 3);
        assert!(matches!(c.apply_overrides(&[("nope".into(), "1".into())]), Err(OverrideError::UnknownKey { .. })));
        assert!(matches!(c.apply_overrides(&[("nodes".into(), "x".into())]), Err(OverrideError::BadValue { .. })));
        assert!(matches!(c.apply_overrides(&[("nodes".into(), "0".into())]), Err(OverrideError::BadValue { .. })));
        assert!(SimConfig::parse_override("novalue").is_err());
        assert!(c.line().contains("nodes=3"));
    }
}
