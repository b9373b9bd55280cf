//! [`StreamConfig`]: nats-server's stream configuration JSON, its defaults and
//! validation (`checkStreamCfg`), the rules for updates (`configUpdateCheck`) and the
//! subject overlap check between streams.
//!
//! Field names, JSON shapes and `omitempty` behaviour are nats-server's, so a config
//! read from a client and written back in an info reply round-trips. Fields Weir does
//! reads through typed views are kept as the client's JSON values (mirror, sources,
//! transforms, republish, placement; see `sourcing.rs`) so that infos echo them exactly;
//! placement means nothing on one server and is accepted. Unknown fields newer than this
//! code are kept in [`StreamConfig::extra`] and written back unchanged.

use crate::jetstream::ApiError;
use crate::store::{Discard, StoreLimits};
use crate::subject::{is_valid_pattern, patterns_collide};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest stream name (`JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest description in bytes (`JSMaxDescriptionLen`).
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Largest metadata map, keys plus values, in bytes (`JSMaxMetadataLen`).
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// Default `duplicate_window`: 2 minutes in ns (`StreamDefaultDuplicatesWindow`).
pub const DEFAULT_DUPLICATE_WINDOW_NS: i64 = 120_000_000_000;
/// Most replicas a stream may ask for (`StreamMaxReplicas`).
pub const MAX_REPLICAS: i64 = 5;
const MIN_WINDOW_NS: i64 = 100_000_000;

/// When messages leave the stream besides its limits (`retention`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// `"limits"`: only limits, age, purges and deletes remove messages.
    #[default]
    Limits,
    /// `"interest"`: a message is removed once every consumer matching it acked it.
    Interest,
    /// `"workqueue"`: a message is removed on its first ack.
    #[serde(rename = "workqueue")]
    WorkQueue,
}

/// Where messages are kept (`storage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// `"file"` (the default).
    #[default]
    File,
    /// `"memory"`.
    Memory,
}

/// What a full stream does (`discard`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    /// `"old"`: evict the oldest messages.
    #[default]
    Old,
    /// `"new"`: refuse the new message.
    New,
}

/// Block compression (`compression`); accepted and reported, Weir stores uncompressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `"none"`.
    #[default]
    None,
    /// `"s2"`.
    S2,
}

/// A field that may be JSON `null` (Go clients and async-nats send `null` for an unset
/// struct), read as its default.
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Defaults for the stream's consumers (`consumer_limits`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerLimits {
    /// Default `inactive_threshold` in ns (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    /// Default `max_ack_pending` (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// A stream's configuration, in nats-server's JSON (`StreamConfig`, `stream.go`). Sizes
/// and counts use `-1` for unlimited after [`StreamConfig::check`]; durations are `i64`
/// nanoseconds. Missing fields read as Go's zero values, as nats-server reads them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Stream name: no `. * > \ /` or whitespace, at most 255 bytes.
    pub name: String,
    /// Free text, at most 4 KiB.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Subjects (wildcards allowed) stored by the stream; defaults to `[name]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: RetentionPolicy,
    /// Most consumers (`-1` unlimited).
    pub max_consumers: i64,
    /// Most messages (`-1` unlimited).
    pub max_msgs: i64,
    /// Most bytes (`-1` unlimited).
    pub max_bytes: i64,
    /// Oldest message age in ns (`0` unlimited, else at least 100 ms).
    pub max_age: i64,
    /// Most messages per subject (`-1` unlimited).
    pub max_msgs_per_subject: i64,
    /// Largest message, headers plus payload (`-1` unlimited).
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub max_msg_size: i32,
    /// Full-stream policy.
    pub discard: DiscardPolicy,
    /// Storage type.
    pub storage: StorageType,
    /// Replicas (1 on a single server).
    pub num_replicas: i64,
    /// Store without PubAcks.
    #[serde(skip_serializing_if = "is_false")]
    pub no_ack: bool,
    /// Dedup window for `Nats-Msg-Id` in ns (default 2 min, at most `max_age`).
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicate_window: i64,
    /// Placement (cluster/tags); meaningless on one server, kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    /// Mirror source (`StreamSource` JSON as sent; see [`StreamConfig::mirror_spec`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Value>,
    /// Sources (`StreamSource` JSON as sent; see [`StreamConfig::source_specs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Value>>,
    /// Compression.
    pub compression: Compression,
    /// First sequence of a new stream.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    /// Subject transform `{src,dest}` applied before storing ([`StreamConfig::stream_transform`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<Value>,
    /// Republish `{src,dest,headers_only}` ([`StreamConfig::republish_spec`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<Value>,
    /// Serve `$JS.API.DIRECT.GET`.
    pub allow_direct: bool,
    /// Mirror direct get (only with a mirror).
    pub mirror_direct: bool,
    /// With `discard: new`, refuse when a subject is at `max_msgs_per_subject`.
    #[serde(skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    /// No more writes, deletes or purges (updates only, cannot be undone).
    pub sealed: bool,
    /// Refuse message deletes (cannot be undone).
    pub deny_delete: bool,
    /// Refuse purges (cannot be undone; not with `allow_rollup_hdrs`).
    pub deny_purge: bool,
    /// Honour `Nats-Rollup`.
    pub allow_rollup_hdrs: bool,
    /// Consumer defaults (`null`, as async-nats sends when it has none, reads as none).
    #[serde(deserialize_with = "null_as_default")]
    pub consumer_limits: ConsumerLimits,
    /// Honour `Nats-TTL` (cannot be turned off again).
    pub allow_msg_ttl: bool,
    /// TTL in ns of the markers left when limits remove a subject's last message (>= 1 s).
    #[serde(skip_serializing_if = "is_zero")]
    pub subject_delete_marker_ttl: i64,
    /// Counter streams (not supported: refused by validation).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    /// Atomic batch publish (not supported: refused by validation).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    /// Message schedules (not supported: refused by validation).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_schedules: bool,
    /// `"default"` or `"async"` (async is not supported: refused by validation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist_mode: Option<String>,
    /// Fast batch publish (not supported: refused by validation).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_batched: bool,
    /// User metadata (keys plus values at most 128 KiB).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Fields this code does not know, written back as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(msg)
}

/// Whether `name` is a valid stream or consumer name (`isValidAssetName`): not empty,
/// no whitespace, `.`, `*`, `>`, `\` or `/`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([' ', '\t', '\r', '\n', '\x0c', '.', '*', '>', '\\', '/'])
}

/// Whether every subject matching `subset` also matches `pattern` (`subjectIsSubsetMatch`).
fn is_subset_match(subset: &str, pattern: &str) -> bool {
    let mut s = subset.split('.');
    let mut p = pattern.split('.');
    loop {
        match (s.next(), p.next()) {
            (None, None) => return true,
            (Some(_), Some(">")) => return true,
            (Some(st), Some("*")) if st != ">" => {}
            (Some(st), Some(pt)) if st == pt && st != "*" && st != ">" => {}
            _ => return false,
        }
    }
}

fn unlimited(v: &mut i64, field: &str, pedantic: bool) -> Result<(), ApiError> {
    if *v == 0 || *v < -1 {
        if pedantic && *v < -1 {
            return Err(ApiError::pedantic(format!("{field} must be set to -1")));
        }
        *v = -1;
    }
    Ok(())
}

impl StreamConfig {
    /// A config with `name` and `subjects` and every other field at its zero value
    /// (what a client that sets only those sends); pass it through [`StreamConfig::check`].
    pub fn new(name: &str, subjects: &[&str]) -> Self {
        StreamConfig {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Apply nats-server's defaults and validation (`checkStreamCfg`, in its order) and
    /// return the normalised config: `-1` for unlimited limits, `num_replicas` 1, file
    /// storage, `duplicate_window` 2 min (or `max_age` if smaller), `subjects` `[name]`.
    /// `pedantic` refuses instead of adjusting, as the `pedantic` request flag does.
    /// Errors are 10052 with nats-server's texts, 10133 for negative replicas and 10157
    /// for pedantic refusals. Replicas above 1 pass here (up to 5); use
    /// [`StreamConfig::check_create`] on a single server.
    pub fn check(&self, pedantic: bool) -> Result<StreamConfig, ApiError> {
        if !is_valid_name(&self.name) {
            return Err(invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'"));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(invalid(format!("stream name is too long, maximum allowed is {MAX_NAME_LEN}")));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid(format!("stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")));
        }
        if self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_METADATA_LEN {
            return Err(invalid(format!("stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")));
        }
        let mut cfg = self.clone();
        if cfg.num_replicas == 0 {
            cfg.num_replicas = 1;
        }
        if cfg.num_replicas > MAX_REPLICAS {
            return Err(invalid(format!("maximum replicas is {MAX_REPLICAS}")));
        }
        if cfg.num_replicas < 0 {
            return Err(ApiError::replicas_count_cannot_be_negative());
        }
        unlimited(&mut cfg.max_msgs, "max_msgs", pedantic)?;
        unlimited(&mut cfg.max_msgs_per_subject, "max_msgs_per_subject", pedantic)?;
        unlimited(&mut cfg.max_bytes, "max_bytes", pedantic)?;
        let mut mms = cfg.max_msg_size as i64;
        unlimited(&mut mms, "max_msg_size", pedantic)?;
        cfg.max_msg_size = mms as i32;
        unlimited(&mut cfg.max_consumers, "max_consumers", pedantic)?;
        if cfg.max_age < 0 {
            return Err(invalid("max age can not be negative"));
        }
        if cfg.max_age != 0 && cfg.max_age < MIN_WINDOW_NS {
            return Err(invalid("max age needs to be >= 100ms"));
        }
        let has_sources = cfg.sources.as_ref().is_some_and(|s| !s.is_empty());
        let mirror_or_sources = cfg.mirror.is_some() || has_sources;
        if cfg.duplicate_window == 0 && !mirror_or_sources {
            if cfg.max_age != 0 && cfg.max_age < DEFAULT_DUPLICATE_WINDOW_NS {
                if pedantic {
                    return Err(ApiError::pedantic("duplicate window cannot be bigger than max age"));
                }
                cfg.duplicate_window = cfg.max_age;
            } else {
                cfg.duplicate_window = DEFAULT_DUPLICATE_WINDOW_NS;
            }
        }
        if cfg.duplicate_window < 0 {
            return Err(invalid("duplicates window can not be negative"));
        }
        if cfg.max_age != 0 && cfg.duplicate_window > cfg.max_age {
            return Err(invalid("duplicates window can not be larger then max age"));
        }
        if cfg.duplicate_window > 0 && cfg.duplicate_window < MIN_WINDOW_NS {
            return Err(invalid("duplicates window needs to be >= 100ms"));
        }
        if cfg.deny_purge && cfg.allow_rollup_hdrs {
            return Err(invalid("roll-ups require the purge permission"));
        }
        if cfg.discard_new_per_subject {
            if cfg.discard != DiscardPolicy::New {
                return Err(invalid("discard new per subject requires discard new policy to be set"));
            }
            if cfg.max_msgs_per_subject <= 0 {
                return Err(invalid("discard new per subject requires max msgs per subject > 0"));
            }
        }
        if cfg.subject_delete_marker_ttl > 0 {
            if cfg.subject_delete_marker_ttl < 1_000_000_000 {
                return Err(invalid("subject delete marker TTL must be at least 1 second"));
            }
            if !cfg.allow_msg_ttl {
                if pedantic {
                    return Err(invalid("subject delete marker cannot be set if message TTLs are disabled"));
                }
                cfg.allow_msg_ttl = true;
            }
            if !cfg.allow_rollup_hdrs {
                if pedantic {
                    return Err(invalid("subject delete marker cannot be set if roll-ups are disabled"));
                }
                cfg.allow_rollup_hdrs = true;
                cfg.deny_purge = false;
            }
        } else if cfg.subject_delete_marker_ttl < 0 {
            return Err(invalid("subject delete marker TTL must not be negative"));
        }
        // Features nats-server has and Weir does not: refuse clearly rather than ignore.
        match cfg.persist_mode.as_deref() {
            None | Some("") | Some("default") => {}
            Some("async") => return Err(invalid("async persist mode is not supported by weir")),
            Some(other) => return Err(invalid(format!("invalid persist mode {other:?}"))),
        }
        cfg.check_sourcing()?;
        let unsupported = [
            (cfg.allow_msg_counter, "message counters"),
            (cfg.allow_atomic, "atomic batch publish"),
            (cfg.allow_batched, "batched publish"),
            (cfg.allow_msg_schedules, "message schedules"),
            (cfg.first_seq > 0, "first_seq"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(invalid(format!("{what} are not supported by weir")));
        }
        if cfg.subjects.is_empty() {
            // A mirror or a stream with sources may capture no subjects of its own.
            if !mirror_or_sources {
                cfg.subjects.push(cfg.name.clone());
            }
        } else {
            for (i, subj) in cfg.subjects.iter().enumerate() {
                if !is_valid_pattern(subj) {
                    return Err(invalid("invalid subject"));
                }
                if cfg.subjects[..i].contains(subj) {
                    return Err(invalid("duplicate subjects detected"));
                }
                if subj == ">" {
                    if !cfg.no_ack {
                        return Err(invalid("capturing all subjects requires no-ack to be true"));
                    }
                    if cfg.num_replicas != 1 {
                        return Err(invalid("capturing all subjects requires replicas of 1"));
                    }
                }
                if !cfg.no_ack {
                    for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                        if patterns_collide(subj, ns) && !is_subset_match(subj, "$JS.EVENT.>") {
                            return Err(invalid("subjects that overlap with jetstream api require no-ack to be true"));
                        }
                    }
                    if patterns_collide(subj, "$SYS.>") && !is_subset_match(subj, "$SYS.ACCOUNT.>") {
                        return Err(invalid("subjects that overlap with system api require no-ack to be true"));
                    }
                }
                if let Some(other) = cfg.subjects[i + 1..].iter().find(|t| patterns_collide(t, subj)) {
                    return Err(invalid(format!("subject {subj:?} overlaps with {other:?}")));
                }
            }
        }
        if cfg.placement.as_ref().is_some_and(|p| p.as_object().is_some_and(|o| o.is_empty())) {
            cfg.placement = None;
        }
        Ok(cfg)
    }

    /// [`StreamConfig::check`] plus what nats-server's STREAM.CREATE handler and a single
    /// server add: a sealed create is refused (10052), `mirror_direct` needs a mirror
    /// (10052), and more than one replica is 10074 "replicas > 1 not supported in
    /// non-clustered mode".
    pub fn check_create(&self, pedantic: bool) -> Result<StreamConfig, ApiError> {
        if self.sealed {
            return Err(invalid("stream configuration for create can not be sealed"));
        }
        if self.mirror_direct && self.mirror.is_none() {
            return Err(invalid("stream has no mirror but does have mirror direct"));
        }
        let cfg = self.check(pedantic)?;
        if cfg.num_replicas > 1 {
            return Err(ApiError::stream_replicas_not_supported());
        }
        Ok(cfg)
    }

    /// Check an update from `old` (a checked config) to `self` as nats-server's
    /// `configUpdateCheck` does on a single server, returning the normalised new config.
    /// The name, storage type, persist mode and counter setting cannot change; retention
    /// cannot change to or from workqueue; `sealed`, `deny_delete`, `deny_purge` and
    /// `allow_msg_ttl` cannot be turned off. Errors are 10052 with nats-server's texts,
    /// or 10074 for replicas above 1. Sealing forces `max_age` 0, `discard: new`,
    /// `deny_delete`, `deny_purge` and no roll-ups, as nats-server does. The caller also
    /// checks subject overlap with the other streams ([`check_subject_overlap`]).
    pub fn check_update(&self, old: &StreamConfig, pedantic: bool) -> Result<StreamConfig, ApiError> {
        let mut cfg = self.check(pedantic)?;
        if cfg.name != old.name {
            return Err(invalid("stream configuration name must match original"));
        }
        if cfg.num_replicas > 1 {
            return Err(ApiError::stream_replicas_not_supported());
        }
        if cfg.storage != old.storage {
            return Err(invalid("stream configuration update can not change storage type"));
        }
        if cfg.retention != old.retention
            && (old.retention == RetentionPolicy::WorkQueue || cfg.retention == RetentionPolicy::WorkQueue)
        {
            return Err(invalid("stream configuration update can not change retention policy to/from workqueue"));
        }
        if !cfg.sealed && old.sealed {
            return Err(invalid("stream configuration update can not unseal a sealed stream"));
        }
        if !cfg.deny_delete && old.deny_delete {
            return Err(invalid("stream configuration update can not cancel deny message deletes"));
        }
        if !cfg.deny_purge && old.deny_purge {
            return Err(invalid("stream configuration update can not cancel deny purge"));
        }
        if old.allow_msg_ttl && !cfg.allow_msg_ttl {
            return Err(invalid("message TTL status can not be disabled"));
        }
        if cfg.allow_msg_counter != old.allow_msg_counter {
            return Err(invalid("stream configuration update can not change message counter setting"));
        }
        if cfg.persist_mode.as_deref().unwrap_or("default") != old.persist_mode.as_deref().unwrap_or("default") {
            return Err(invalid("stream configuration update can not change persist mode"));
        }
        // A mirror cannot be added or changed; removing it (promotion) is allowed, as
        // nats-server 2.12 allows.
        let mirror = |c: &StreamConfig| c.mirror.clone().filter(|v| !v.is_null());
        if mirror(&cfg).is_some() && mirror(&cfg) != mirror(old) {
            return Err(invalid("stream mirror configuration can not be updated"));
        }
        if cfg.sealed {
            cfg.max_age = 0;
            cfg.discard = DiscardPolicy::New;
            cfg.deny_delete = true;
            cfg.deny_purge = true;
            cfg.allow_rollup_hdrs = false;
        }
        Ok(cfg)
    }

    /// The store limits this (checked) config asks for.
    pub fn store_limits(&self) -> StoreLimits {
        let opt = |v: i64| (v > 0).then_some(v as u64);
        StoreLimits {
            max_msgs: opt(self.max_msgs),
            max_bytes: opt(self.max_bytes),
            max_age: (self.max_age > 0).then(|| Duration::from_nanos(self.max_age as u64)),
            max_msgs_per_subject: opt(self.max_msgs_per_subject),
            max_msg_size: opt(self.max_msg_size as i64),
            discard: match self.discard {
                DiscardPolicy::Old => Discard::Old,
                DiscardPolicy::New => Discard::New,
            },
            discard_new_per_subject: self.discard_new_per_subject,
        }
    }
}

/// Read a STREAM.CREATE / STREAM.UPDATE body (`StreamConfigRequest`: a [`StreamConfig`]
/// plus an optional `"pedantic": bool`). Malformed JSON or a field of the wrong type
/// or value is 10025 "invalid JSON: ..." (serde's text, not Go's).
pub fn parse_config_request(body: &[u8]) -> Result<(StreamConfig, bool), ApiError> {
    let mut v: Value = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    let pedantic = match v.as_object_mut().and_then(|o| o.remove("pedantic")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(ApiError::invalid_json(format!("pedantic must be a bool, not {other}"))),
    };
    // Go's decoder leaves a field at its zero value for `null` (async-nats sends
    // `"consumer_limits":null`): drop top-level nulls so that they read as defaults.
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let cfg = serde_json::from_value(v).map_err(ApiError::invalid_json)?;
    Ok((cfg, pedantic))
}

/// Check that none of `subjects` can match a subject that one of `others` (the
/// subjects of the account's other streams) matches: 10065 "subjects overlap with an
/// existing stream" otherwise, as nats-server's `subjectsOverlap`.
pub fn check_subject_overlap<'a>(
    subjects: &[String],
    others: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    for other in others {
        if subjects.iter().any(|s| patterns_collide(s, other)) {
            return Err(ApiError::stream_subject_overlap());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: &StreamConfig) -> String {
        cfg.check_create(false).unwrap_err().description
    }

    #[test]
    fn defaults_as_nats_server() {
        let c = StreamConfig::new("ORDERS", &[]).check_create(false).unwrap();
        assert_eq!(c.subjects, vec!["ORDERS".to_string()]);
        assert_eq!(
            (c.max_msgs, c.max_bytes, c.max_msgs_per_subject, c.max_msg_size, c.max_consumers),
            (-1, -1, -1, -1, -1)
        );
        assert_eq!((c.num_replicas, c.duplicate_window, c.max_age), (1, DEFAULT_DUPLICATE_WINDOW_NS, 0));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"name":"ORDERS","subjects":["ORDERS"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false}"#
        );
        // A short max_age lowers the window.
        let mut s = StreamConfig::new("S", &["a.>"]);
        s.max_age = 1_000_000_000;
        assert_eq!(s.check(false).unwrap().duplicate_window, 1_000_000_000);
    }

    #[test]
    fn client_json_round_trips_with_unknown_fields() {
        let text = r#"{"name":"KV_b","subjects":["$KV.b.>"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":5,"max_msg_size":-1,"discard":"new","storage":"memory","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":true,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":false,"future_thing":{"x":1}}"#;
        let c: StreamConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c.extra.get("future_thing"), Some(&serde_json::json!({"x":1})));
        let checked = c.check_create(false).unwrap();
        assert_eq!(serde_json::to_string(&checked).unwrap(), text);
        assert!(serde_json::from_str::<StreamConfig>(r#"{"name":"x","retention":"bogus"}"#).is_err());
    }

    #[test]
    fn validation_texts() {
        let base = StreamConfig::new("S", &["a.>"]);
        let with = |f: &dyn Fn(&mut StreamConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c
        };
        assert_eq!(
            err(&with(&|c| c.name = "a.b".into())),
            "stream name is required and can not contain '.', '*', '>', '\\', '/'"
        );
        assert_eq!(err(&with(&|c| c.name = "x".repeat(256))), "stream name is too long, maximum allowed is 255");
        assert_eq!(
            err(&with(&|c| c.description = "d".repeat(4097))),
            "stream description is too long, maximum allowed is 4096"
        );
        assert_eq!(err(&with(&|c| c.max_age = -1)), "max age can not be negative");
        assert_eq!(err(&with(&|c| c.max_age = 1)), "max age needs to be >= 100ms");
        assert_eq!(err(&with(&|c| c.duplicate_window = 1)), "duplicates window needs to be >= 100ms");
        assert_eq!(
            err(&with(&|c| {
                c.max_age = 1_000_000_000;
                c.duplicate_window = 2_000_000_000
            })),
            "duplicates window can not be larger then max age"
        );
        assert_eq!(
            err(&with(&|c| {
                c.deny_purge = true;
                c.allow_rollup_hdrs = true
            })),
            "roll-ups require the purge permission"
        );
        assert_eq!(
            err(&with(&|c| c.discard_new_per_subject = true)),
            "discard new per subject requires discard new policy to be set"
        );
        assert_eq!(err(&with(&|c| c.subjects = vec!["a..b".into()])), "invalid subject");
        // nats-server's order: the overlap with a later subject is found before the duplicate.
        assert_eq!(err(&with(&|c| c.subjects = vec!["a".into(), "a".into()])), r#"subject "a" overlaps with "a""#);
        assert_eq!(
            err(&with(&|c| c.subjects = vec!["a.*".into(), "a.b".into()])),
            r#"subject "a.*" overlaps with "a.b""#
        );
        assert_eq!(err(&with(&|c| c.subjects = vec![">".into()])), "capturing all subjects requires no-ack to be true");
        assert_eq!(
            err(&with(&|c| c.subjects = vec!["$JS.API.>".into()])),
            "subjects that overlap with jetstream api require no-ack to be true"
        );
        assert!(with(&|c| c.subjects = vec!["$JS.EVENT.x.>".into()]).check_create(false).is_ok());
        assert_eq!(err(&with(&|c| c.sealed = true)), "stream configuration for create can not be sealed");
        let r3 = with(&|c| c.num_replicas = 3).check_create(false).unwrap_err();
        assert_eq!(
            (r3.code, r3.err_code, r3.description.as_str()),
            (500, 10074, "replicas > 1 not supported in non-clustered mode")
        );
        assert_eq!(with(&|c| c.num_replicas = -1).check(false).unwrap_err().err_code, 10133);
        assert_eq!(with(&|c| c.max_msgs = -5).check(true).unwrap_err().err_code, 10157);
        assert_eq!(with(&|c| c.max_msgs = -5).check(false).unwrap().max_msgs, -1);
        let e = with(&|c| c.mirror = Some(serde_json::json!({"name":"O"}))).check_create(false).unwrap_err();
        assert_eq!(e.err_code, 10034);
    }

    #[test]
    fn update_rules() {
        let old = StreamConfig::new("S", &["a.>"]).check_create(false).unwrap();
        let upd = |f: &dyn Fn(&mut StreamConfig)| {
            let mut c = old.clone();
            f(&mut c);
            c.check_update(&old, false)
        };
        assert!(upd(&|c| c.max_msgs = 10).is_ok());
        assert_eq!(
            upd(&|c| c.storage = StorageType::Memory).unwrap_err().description,
            "stream configuration update can not change storage type"
        );
        assert_eq!(
            upd(&|c| c.retention = RetentionPolicy::WorkQueue).unwrap_err().description,
            "stream configuration update can not change retention policy to/from workqueue"
        );
        assert!(upd(&|c| c.retention = RetentionPolicy::Interest).is_ok());
        assert_eq!(
            upd(&|c| c.name = "T".into()).unwrap_err().description,
            "stream configuration name must match original"
        );
        assert_eq!(upd(&|c| c.num_replicas = 3).unwrap_err().err_code, 10074);
        let sealed = upd(&|c| c.sealed = true).unwrap();
        assert!(sealed.deny_delete && sealed.deny_purge && sealed.discard == DiscardPolicy::New);
        let back = old.clone().check_update(&sealed, false).unwrap_err();
        assert_eq!(back.description, "stream configuration update can not unseal a sealed stream");
    }

    #[test]
    fn config_requests() {
        let (c, p) = parse_config_request(br#"{"name":"S","subjects":["a"],"pedantic":true}"#).unwrap();
        assert!(p && c.name == "S" && c.extra.is_empty());
        assert_eq!(parse_config_request(b"{").unwrap_err().err_code, 10025);
        let (c, _) = parse_config_request(br#"{"name":"S","consumer_limits":null,"subjects":null}"#).unwrap();
        assert_eq!((c.consumer_limits, c.subjects.len()), (ConsumerLimits::default(), 0));
        assert_eq!(parse_config_request(br#"{"name":"S","storage":"disk"}"#).unwrap_err().err_code, 10025);
        assert_eq!(parse_config_request(br#"{"name":"S","max_msg_size":3000000000}"#).unwrap_err().err_code, 10025);
    }

    #[test]
    fn overlap_between_streams() {
        let mine = vec!["orders.*".to_string()];
        assert!(check_subject_overlap(&mine, ["orders.new.x", "other.>"]).is_ok());
        assert_eq!(check_subject_overlap(&mine, ["orders.>"]).unwrap_err().err_code, 10065);
        assert_eq!(check_subject_overlap(&mine, ["*.new"]).unwrap_err().err_code, 10065);
        assert!(is_subset_match("$JS.EVENT.a", "$JS.EVENT.>") && !is_subset_match("$JS.>", "$JS.EVENT.>"));
    }
}
