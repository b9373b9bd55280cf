//! Typed views of the stream config's `mirror`, `sources`, `subject_transform` and
//! `republish` (kept in [`StreamConfig`] as the client's JSON so that an info reply
//! echoes exactly what was sent), with nats-server's validation of them.
//!
//! On one server a source is another stream of the same account: `external` (another
//! account or domain's API prefix) and `domain` are refused with a clear 10052 error.
//! The sourcing itself (an internal ordered reader of the origin stream) is the
//! engine's (`jetstream/engine/sources.rs`).

use super::config::StreamConfig;
use super::transform::SubjectTransform;
use crate::jetstream::ApiError;
use crate::subject::{is_valid_pattern, patterns_collide};
use serde::Deserialize;
use serde_json::Value;

/// `{src, dest}` as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TransformSpec {
    /// Source pattern (empty: `>`).
    pub src: String,
    /// Destination mapping.
    pub dest: String,
}

/// One `StreamSource` (`mirror` or an entry of `sources`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SourceSpec {
    /// The origin stream.
    pub name: String,
    /// First origin sequence to take (0: from the start).
    pub opt_start_seq: u64,
    /// First origin time to take (RFC 3339), if set.
    pub opt_start_time: Option<String>,
    /// Only origin messages whose subject matches (empty: all).
    pub filter_subject: String,
    /// Filters with mappings (a message is taken when one matches and mapped by it).
    pub subject_transforms: Vec<TransformSpec>,
    /// Another account's or domain's API (refused on one server).
    pub external: Option<Value>,
    /// Another domain (refused on one server).
    pub domain: Option<String>,
}

/// `republish` (`{src, dest, headers_only}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RepublishSpec {
    /// Stored subjects republished (empty: `>`).
    pub src: String,
    /// Destination mapping.
    pub dest: String,
    /// Republish the headers only, with `Nats-Msg-Size`, and no payload.
    pub headers_only: bool,
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(msg)
}

fn parse<T: for<'de> Deserialize<'de>>(v: &Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(v.clone()).map_err(|e| ApiError::invalid_json(format!("{what}: {e}")))
}

/// How a source picks and maps origin messages: a filter (or all), or a list of
/// transforms, as nats-server reads `filter_subject` / `subject_transforms`.
#[derive(Clone, Debug)]
pub enum SourceMapping {
    /// Take messages matching the pattern, subject unchanged.
    Filter(String),
    /// Take messages matching one transform's source, mapped by it.
    Transforms(Vec<SubjectTransform>),
}

impl SourceMapping {
    /// The subject to store an origin message on `subject` under, `None` if not taken.
    pub fn map(&self, subject: &str) -> Option<String> {
        match self {
            SourceMapping::Filter(f) => crate::subject::matches(f, subject).then(|| subject.to_string()),
            SourceMapping::Transforms(ts) => ts.iter().find_map(|t| t.apply(subject)),
        }
    }
}

impl SourceSpec {
    /// Check one source (`mirror` when `mirror`): valid origin name, no external or
    /// domain, start sequence and time not both (10032 for a mirror), a valid filter,
    /// valid transforms, and not a filter together with transforms.
    pub fn check(&self, mirror: bool) -> Result<(), ApiError> {
        if !super::is_valid_name(&self.name) {
            return Err(invalid(format!("stream source name {:?} is invalid", self.name)));
        }
        if self.external.as_ref().is_some_and(|e| !e.is_null()) || self.domain.as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(invalid("external stream sources are not supported by weir"));
        }
        if self.opt_start_seq > 0 && self.opt_start_time.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(if mirror {
                ApiError::mirror_with_start_seq_and_time()
            } else {
                invalid("stream sources can not have both start seq and start time configured")
            });
        }
        if let Some(t) = &self.opt_start_time {
            crate::jetstream::parse_rfc3339(t).map_err(invalid)?;
        }
        if !self.filter_subject.is_empty() && !is_valid_pattern(&self.filter_subject) {
            return Err(invalid(format!("source filter subject {:?} is invalid", self.filter_subject)));
        }
        if !self.filter_subject.is_empty() && !self.subject_transforms.is_empty() {
            return Err(invalid("source with multiple subject transforms cannot also have a single subject filter"));
        }
        self.mapping().map(|_| ())
    }

    /// The checked [`SourceMapping`].
    pub fn mapping(&self) -> Result<SourceMapping, ApiError> {
        if self.subject_transforms.is_empty() {
            let f = if self.filter_subject.is_empty() { ">" } else { &self.filter_subject };
            return Ok(SourceMapping::Filter(f.to_string()));
        }
        let ts = self
            .subject_transforms
            .iter()
            .map(|t| {
                let dest = if t.dest.is_empty() { t.src.as_str() } else { t.dest.as_str() };
                SubjectTransform::new(&t.src, dest).map_err(invalid)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in ts.iter().enumerate() {
            if ts[i + 1..].iter().any(|b| patterns_collide(a.source(), b.source())) {
                return Err(invalid("source subject transforms can not overlap"));
            }
        }
        Ok(SourceMapping::Transforms(ts))
    }

    /// The index name nats-server writes in `Nats-Stream-Source` before the sequence:
    /// `<name> <filters> <destinations>` (`>` for none; several joined by form feeds).
    pub fn index_name(&self) -> (String, String, String) {
        if self.subject_transforms.is_empty() {
            let f = if self.filter_subject.is_empty() { ">" } else { &self.filter_subject };
            return (self.name.clone(), f.to_string(), ">".to_string());
        }
        let or_all = |s: &str| if s.is_empty() { ">".to_string() } else { s.to_string() };
        let srcs: Vec<String> = self.subject_transforms.iter().map(|t| or_all(&t.src)).collect();
        let dests: Vec<String> = self.subject_transforms.iter().map(|t| or_all(&t.dest)).collect();
        (self.name.clone(), srcs.join("\u{c}"), dests.join("\u{c}"))
    }
}

impl StreamConfig {
    /// The mirror, if any (call on a checked config; a malformed one reads as `None`).
    pub fn mirror_spec(&self) -> Option<SourceSpec> {
        self.mirror.as_ref().filter(|v| !v.is_null()).and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// The sources (call on a checked config).
    pub fn source_specs(&self) -> Vec<SourceSpec> {
        self.sources.iter().flatten().filter_map(|v| serde_json::from_value(v.clone()).ok()).collect()
    }

    /// Whether this stream takes messages from other streams (a mirror or sources).
    pub fn is_sourcing(&self) -> bool {
        self.mirror.as_ref().is_some_and(|v| !v.is_null()) || self.sources.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The stream's own `subject_transform`, applied to every message before it is
    /// stored (call on a checked config).
    pub fn stream_transform(&self) -> Option<SubjectTransform> {
        let spec: TransformSpec = parse(self.subject_transform.as_ref().filter(|v| !v.is_null())?, "").ok()?;
        SubjectTransform::new(&spec.src, &spec.dest).ok()
    }

    /// The republish mapping and `headers_only` (call on a checked config).
    pub fn republish_spec(&self) -> Option<(SubjectTransform, bool)> {
        let spec: RepublishSpec = parse(self.republish.as_ref().filter(|v| !v.is_null())?, "").ok()?;
        SubjectTransform::new(&spec.src, &spec.dest).ok().map(|t| (t, spec.headers_only))
    }

    /// nats-server's checks of mirror, sources, subject transform and republish (part
    /// of [`StreamConfig::check`]; `subjects` are the stream's own, before defaulting).
    pub(super) fn check_sourcing(&self) -> Result<(), ApiError> {
        let mirror = self.mirror.as_ref().filter(|v| !v.is_null());
        if let Some(m) = mirror {
            let spec: SourceSpec = parse(m, "mirror")?;
            if !self.subjects.is_empty() {
                return Err(ApiError::mirror_with_subjects());
            }
            if self.sources.as_ref().is_some_and(|s| !s.is_empty()) {
                return Err(ApiError::mirror_with_sources());
            }
            if self.first_seq > 0 {
                return Err(invalid("stream mirrors can not have first sequence configured"));
            }
            if self.subject_delete_marker_ttl > 0 {
                return Err(invalid("subject delete markers forbidden on mirrors"));
            }
            if spec.name == self.name {
                return Err(invalid("stream mirror can not be itself"));
            }
            spec.check(true)?;
        }
        let mut seen = Vec::new();
        for v in self.sources.iter().flatten() {
            let spec: SourceSpec = parse(v, "source")?;
            spec.check(false)?;
            if spec.name == self.name {
                return Err(invalid("stream source can not be itself"));
            }
            let iname = spec.index_name();
            if seen.contains(&iname) {
                return Err(invalid(format!("duplicate source configuration for {:?}", spec.name)));
            }
            seen.push(iname);
        }
        if let Some(v) = self.subject_transform.as_ref().filter(|v| !v.is_null()) {
            let spec: TransformSpec = parse(v, "subject_transform")?;
            SubjectTransform::new(&spec.src, &spec.dest)
                .map_err(|e| invalid(format!("stream configuration for subject transform not valid: {e}")))?;
        }
        if let Some(v) = self.republish.as_ref().filter(|v| !v.is_null()) {
            let spec: RepublishSpec = parse(v, "republish")?;
            let t = SubjectTransform::new(&spec.src, &spec.dest)
                .map_err(|e| invalid(format!("stream configuration for republish not valid: {e}")))?;
            if !is_valid_pattern(t.source()) {
                return Err(invalid("stream configuration for republish source is not valid"));
            }
            if self.subjects.iter().any(|s| patterns_collide(s, &spec.dest)) {
                return Err(invalid("stream configuration for republish destination forms a cycle"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> StreamConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn mirror_and_source_rules() {
        let ok = cfg(json!({"name":"M","mirror":{"name":"O","opt_start_seq":2}})).check_create(false).unwrap();
        assert!(ok.subjects.is_empty(), "a mirror gets no default subject");
        assert_eq!(ok.mirror_spec().unwrap().opt_start_seq, 2);
        let e = cfg(json!({"name":"M","subjects":["a"],"mirror":{"name":"O"}})).check_create(false).unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10034));
        let e = cfg(json!({"name":"M","mirror":{"name":"O"},"sources":[{"name":"P"}]})).check_create(false);
        assert_eq!(e.unwrap_err().err_code, 10031);
        let e =
            cfg(json!({"name":"M","mirror":{"name":"O","opt_start_seq":1,"opt_start_time":"2024-01-01T00:00:00Z"}}));
        assert_eq!(e.check_create(false).unwrap_err().err_code, 10032);
        let e = cfg(json!({"name":"M","mirror":{"name":"O","external":{"api":"$JS.HUB.API"}}}));
        assert!(e.check_create(false).unwrap_err().description.contains("external"));
        let s = cfg(json!({"name":"S","sources":[{"name":"A"},{"name":"B","filter_subject":"b.>"}]}))
            .check_create(false)
            .unwrap();
        assert!(s.subjects.is_empty() && s.is_sourcing() && s.source_specs().len() == 2);
        let dup = cfg(json!({"name":"S","sources":[{"name":"A"},{"name":"A"}]})).check_create(false);
        assert_eq!(dup.unwrap_err().err_code, 10052);
        let both = cfg(
            json!({"name":"S","sources":[{"name":"A","filter_subject":"x","subject_transforms":[{"src":"y","dest":"z"}]}]}),
        );
        assert_eq!(both.check_create(false).unwrap_err().err_code, 10052);
        let spec = s.source_specs()[1].clone();
        assert_eq!(spec.index_name(), ("B".into(), "b.>".into(), ">".into()));
        assert_eq!(spec.mapping().unwrap().map("b.x").as_deref(), Some("b.x"));
        assert_eq!(spec.mapping().unwrap().map("c.x"), None);
    }

    #[test]
    fn transform_and_republish_rules() {
        let c = cfg(json!({"name":"S","subjects":["test"],"subject_transform":{"src":">","dest":"transformed.>"}}))
            .check_create(false)
            .unwrap();
        assert_eq!(c.stream_transform().unwrap().apply("test").as_deref(), Some("transformed.test"));
        let bad = cfg(json!({"name":"S","subjects":["a.*"],"subject_transform":{"src":"a.*","dest":"b.$3"}}));
        assert_eq!(bad.check_create(false).unwrap_err().err_code, 10052);
        let r = cfg(json!({"name":"S","subjects":["source.>"],"republish":{"src":">","dest":"dest.>"}}))
            .check_create(false)
            .unwrap();
        let (t, headers_only) = r.republish_spec().unwrap();
        assert_eq!((t.apply("source.1").as_deref(), headers_only), (Some("dest.source.1"), false));
        let cycle = cfg(json!({"name":"S","subjects":["a.>"],"republish":{"src":">","dest":"a.>"}}));
        assert_eq!(
            cycle.check_create(false).unwrap_err().description,
            "stream configuration for republish destination forms a cycle"
        );
    }
}
