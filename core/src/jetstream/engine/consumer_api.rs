//! The consumer APIs: CONSUMER.CREATE (every subject form), DURABLE.CREATE, INFO,
//! DELETE, NAMES, LIST, PAUSE, and the pull request path (CONSUMER.MSG.NEXT), with
//! nats-server's subject parsing rules (`jsConsumerCreateRequest`) and error codes.

use super::api::{ApiResult, LIST_LIMIT, NAMES_LIMIT, NamesRequest, Paged, Success, err, ok, parse_body};
use super::host::{ConsumerHost, ConsumerMeta, summary};
use super::reader::View;
use super::{JetStream, JsOut, layout};
use crate::consumer::{Consumer, ConsumerConfig, ConsumerError, ConsumerInfo};
use crate::jetstream::{ApiError, serde_opt_time_or_zero, serde_time_or_zero};
use serde::{Deserialize, Serialize};

/// `CreateConsumerRequest`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct CreateRequest {
    stream_name: String,
    config: Option<ConsumerConfig>,
    action: String,
    #[allow(dead_code)]
    pedantic: bool,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PauseRequest {
    #[serde(with = "serde_opt_time_or_zero")]
    pause_until: Option<i64>,
}

/// `JSApiConsumerPauseResponse`: `pause_until` is always present (Go's zero time when
/// resumed), `pause_remaining` only while paused.
#[derive(Serialize)]
struct PauseResponse {
    paused: bool,
    #[serde(with = "serde_time_or_zero")]
    pause_until: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pause_remaining: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct ConsumerNames {
    consumers: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ConsumerList {
    consumers: Vec<ConsumerInfo>,
}

fn api_err(e: ConsumerError) -> ApiError {
    ApiError::new(e.code(), e.err_code(), e.description())
}

impl JetStream {
    /// Route `$JS.API.CONSUMER.<tokens>`; `None` for subjects nats-server does not serve.
    pub(super) fn consumer_api(
        &mut self,
        now_ns: i64,
        tokens: &[&str],
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> Option<ApiResult> {
        Some(match tokens {
            ["CREATE", stream] => self.consumer_create(now_ns, stream, None, None, false, body, out),
            ["CREATE", stream, name, filter @ ..] => {
                let f = (!filter.is_empty()).then(|| filter.join("."));
                self.consumer_create(now_ns, stream, Some(name), f, false, body, out)
            }
            ["DURABLE", "CREATE", stream, name] => {
                self.consumer_create(now_ns, stream, Some(name), None, true, body, out)
            }
            ["DURABLE", "CREATE", ..] => err("consumer_create", ApiError::consumer_durable_name_not_in_subject()),
            ["INFO", stream, name] => self.consumer_info(now_ns, stream, name),
            ["DELETE", stream, name] => self.consumer_delete(now_ns, stream, name, out),
            ["NAMES", stream] => self.consumer_names(stream, body),
            ["LIST", stream] => self.consumer_list(now_ns, stream, body),
            ["PAUSE", stream, name] => self.consumer_pause(now_ns, stream, name, body, out),
            ["UNPIN", stream, name] => self.consumer_unpin(now_ns, stream, name, body, out),
            ["RESET", stream, name] => return self.consumer_reset(now_ns, stream, name, body, out),
            _ => return None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn consumer_create(
        &mut self,
        now_ns: i64,
        stream: &str,
        name: Option<&str>,
        filter: Option<String>,
        durable_api: bool,
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> ApiResult {
        const API: &str = "consumer_create";
        let req: CreateRequest = parse_body(body).or_else(|e| err(API, e))?;
        if !req.stream_name.is_empty() && req.stream_name != stream {
            return err(API, ApiError::stream_mismatch());
        }
        let Some(mut cfg) = req.config else { return err(API, ApiError::consumer_config_required()) };
        match (name, durable_api) {
            (Some(n), true) => {
                if cfg.durable_name.is_empty() {
                    return err(API, ApiError::consumer_durable_name_not_set());
                }
                if cfg.durable_name != n {
                    return err(API, ApiError::consumer_durable_name_not_match_subject());
                }
            }
            (Some(n), false) => {
                if !cfg.durable_name.is_empty() && cfg.durable_name != n {
                    return err(API, ApiError::consumer_durable_name_not_match_subject());
                }
                if !cfg.name.is_empty() && cfg.name != n {
                    return err(API, ApiError::consumer_create_durable_and_name_mismatch());
                }
                cfg.name = n.to_string();
            }
            (None, _) => {
                if !cfg.durable_name.is_empty() {
                    return err(API, ApiError::consumer_ephemeral_with_durable_name());
                }
            }
        }
        if let Some(f) = filter {
            if !cfg.filter_subjects.is_empty() {
                return err(API, ApiError::consumer_multiple_filters_not_allowed());
            }
            if cfg.filter_subject != f {
                return err(API, ApiError::consumer_create_filter_subject_mismatch());
            }
        }
        if cfg.name.contains(['/', '\\']) || cfg.durable_name.contains(['/', '\\']) {
            return err(API, ApiError::consumer_name_contains_path_separators());
        }
        if cfg.name.is_empty() && cfg.durable_name.is_empty() {
            cfg.name = self.ephemeral_name(stream, now_ns);
        }
        let opts = self.consumer_options();
        let dir = self.cfg.store_dir.clone();
        let disk = self.disk.clone();
        let server_limits = self.cfg.consumer_limits;
        let h = self.host_mut(API, stream)?;
        let mut sum = summary(h.stream.config(), &h.consumers);
        sum.server_limits = server_limits;
        let cname = cfg.consumer_name().to_string();
        let was_push;
        if let Some(existing) = h.consumers.get(&cname) {
            was_push = existing.c.config().deliver_subject.clone();
            let new = cfg.clone().normalize(&sum).map_err(|e| (API.to_string(), api_err(e)))?;
            if new == *existing.c.config() || (req.action == "create" && new.same_for_create(existing.c.config())) {
                return ok(API, &existing.c.info(now_ns));
            }
            if req.action == "create" {
                return err(API, ApiError::consumer_already_exists());
            }
            let mut r = Ok(());
            h.with_consumer(now_ns, &cname, out, |c, v, now| r = c.update_config(now, &sum, cfg, v));
            r.map_err(|e| (API.to_string(), api_err(e)))?;
        } else {
            was_push = String::new();
            if req.action == "update" {
                return err(API, ApiError::consumer_does_not_exist());
            }
            let mut view = View { stream: &mut h.stream, visible: h.visible };
            let c = Consumer::create(&sum, cfg, now_ns, &mut view, opts).map_err(|e| (API.to_string(), api_err(e)))?;
            h.stream.add_consumer(&cname, c.filters()).or_else(|e| err(API, e))?;
            h.consumers.insert(cname.clone(), ConsumerHost { c, saved_version: u64::MAX });
        }
        let hc = &h.consumers[&cname];
        let meta = ConsumerMeta { config: hc.c.config().clone(), created_ns: hc.c.created_ns() };
        let info = hc.c.info(now_ns);
        let push = hc.c.config().deliver_subject.clone();
        let path = layout::consumer_meta(&dir, stream, &cname);
        let bytes = serde_json::to_vec(&meta).expect("consumer meta serialises");
        if let Err(e) = layout::write_atomic(&*disk, &path, &bytes) {
            h.remove_consumer(now_ns, &cname, out);
            return err(API, ApiError::consumer_create(format!("cannot write {path}: {e}")));
        }
        if was_push != push {
            if !was_push.is_empty() {
                out.push(JsOut::Watch { subject: was_push, watch: false });
            }
            if !push.is_empty() {
                out.push(JsOut::Watch { subject: push, watch: true });
            }
        }
        h.with_consumer(now_ns, &cname, out, |c, v, now| c.poll(now, v));
        ok(API, &info)
    }

    /// A deterministic name for an unnamed ephemeral consumer (8 base-62 characters).
    fn ephemeral_name(&mut self, stream: &str, now_ns: i64) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        loop {
            self.next_ephemeral += 1;
            let seed = format!("{stream}/{now_ns}/{}", self.next_ephemeral);
            let mut h = xxhash_rust::xxh3::xxh3_64(seed.as_bytes());
            let name: String = (0..8)
                .map(|_| {
                    let c = DIGITS[(h % 62) as usize] as char;
                    h /= 62;
                    c
                })
                .collect();
            if self.streams.get(stream).is_none_or(|s| !s.consumers.contains_key(&name)) {
                return name;
            }
        }
    }

    fn consumer_info(&mut self, now_ns: i64, stream: &str, name: &str) -> ApiResult {
        const API: &str = "consumer_info";
        let h = self.host_mut(API, stream)?;
        match h.consumers.get(name) {
            Some(c) => ok(API, &c.c.info(now_ns)),
            None => err(API, ApiError::consumer_not_found()),
        }
    }

    fn consumer_delete(&mut self, now_ns: i64, stream: &str, name: &str, out: &mut Vec<JsOut>) -> ApiResult {
        const API: &str = "consumer_delete";
        let h = self.host_mut(API, stream)?;
        if h.remove_consumer(now_ns, name, out).is_none() {
            return err(API, ApiError::consumer_not_found());
        }
        ok(API, &Success { success: true })
    }

    fn consumer_names(&mut self, stream: &str, body: &[u8]) -> ApiResult {
        const API: &str = "consumer_names";
        let req: NamesRequest = parse_body(body).or_else(|e| err(API, e))?;
        let h = self.host_mut(API, stream)?;
        let total = h.consumers.len();
        let page: Vec<String> = h.consumers.keys().skip(req.offset).take(NAMES_LIMIT).cloned().collect();
        let consumers = (!page.is_empty()).then_some(page);
        ok(API, &Paged { total, offset: req.offset, limit: NAMES_LIMIT, body: ConsumerNames { consumers } })
    }

    fn consumer_list(&mut self, now_ns: i64, stream: &str, body: &[u8]) -> ApiResult {
        const API: &str = "consumer_list";
        let req: NamesRequest = parse_body(body).or_else(|e| err(API, e))?;
        let h = self.host_mut(API, stream)?;
        let total = h.consumers.len();
        let consumers = h.consumers.values().skip(req.offset).take(LIST_LIMIT).map(|c| c.c.info(now_ns)).collect();
        ok(API, &Paged { total, offset: req.offset, limit: LIST_LIMIT, body: ConsumerList { consumers } })
    }

    fn consumer_pause(
        &mut self,
        now_ns: i64,
        stream: &str,
        name: &str,
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> ApiResult {
        const API: &str = "consumer_pause";
        let req: PauseRequest = parse_body(body).or_else(|e| err(API, e))?;
        let dir = self.cfg.store_dir.clone();
        let disk = self.disk.clone();
        let h = self.host_mut(API, stream)?;
        if !h.consumers.contains_key(name) {
            return err(API, ApiError::consumer_not_found());
        }
        let mut r = (false, 0);
        h.with_consumer(now_ns, name, out, |c, v, now| r = c.pause(now, req.pause_until, v));
        let hc = &h.consumers[name];
        let meta = ConsumerMeta { config: hc.c.config().clone(), created_ns: hc.c.created_ns() };
        let path = layout::consumer_meta(&dir, stream, name);
        layout::write_atomic(&*disk, &path, &serde_json::to_vec(&meta).expect("consumer meta serialises"))
            .or_else(|e| err(API, ApiError::consumer_create(format!("cannot write {path}: {e}"))))?;
        let pause_until = hc.c.config().pause_until.unwrap_or(0);
        ok(API, &PauseResponse { paused: r.0, pause_until, pause_remaining: r.1 })
    }

    /// `CONSUMER.MSG.NEXT.<stream>.<consumer>`: a pull request; `false` if there is no
    /// such consumer (the client then sees no responders, as with nats-server).
    pub(super) fn pull_request(
        &mut self,
        now_ns: i64,
        stream: &str,
        consumer: &str,
        reply: &str,
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> bool {
        let Some(h) = self.streams.get_mut(stream) else { return false };
        h.with_consumer(now_ns, consumer, out, |c, v, now| c.on_pull_request(now, reply, body, v))
    }
}
