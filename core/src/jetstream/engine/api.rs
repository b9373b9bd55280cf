//! The `$JS.API` request router and the account and stream APIs (INFO, STREAM.*,
//! DIRECT.GET), with nats-server's subjects, response types, paging and error codes.
//! Consumer APIs are in [`super::consumer_api`].

use super::host::{self, StreamHost, StreamMeta};
use super::{JetStream, JsOut, SyncIo, layout};
use crate::jetstream::{ApiError, api_error_response, api_response};
use crate::server::nats::broker::Message;
use crate::store::MsgStore;
use crate::stream::{
    ClusterInfo, MsgDeleteRequest, MsgGetRequest, MsgGetResponse, PurgeApiRequest, StoredMsgJson, StreamInfo,
    check_subject_overlap, parse_config_request,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most names in one STREAM.NAMES / CONSUMER.NAMES page (`JSApiNamesLimit`).
pub const NAMES_LIMIT: usize = 1024;
/// Most infos in one STREAM.LIST / CONSUMER.LIST page (`JSApiListLimit`).
pub const LIST_LIMIT: usize = 256;

/// A request body that may be absent: empty or `null` reads as the default, and so
/// does a top-level field set to `null` (Go's decoder leaves it at its zero value;
/// clients such as async-nats send `"group":null`).
pub(super) fn parse_body<T: DeserializeOwned + Default>(payload: &[u8]) -> Result<T, ApiError> {
    let trimmed = payload.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    let mut v: serde_json::Value = serde_json::from_slice(trimmed).map_err(ApiError::invalid_json)?;
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(v).map_err(ApiError::invalid_json)
}

/// A paged response: `total`, `offset`, `limit` (no omitempty, as `ApiPaged`) then the body.
#[derive(Serialize)]
pub(super) struct Paged<T: Serialize> {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    info: StreamInfo,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    did_create: bool,
}

#[derive(Serialize)]
pub(super) struct Success {
    pub success: bool,
}

#[derive(Serialize)]
struct Purged {
    success: bool,
    purged: u64,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InfoRequest {
    deleted_details: bool,
    subjects_filter: String,
    offset: usize,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct NamesRequest {
    pub offset: usize,
    pub subject: String,
}

#[derive(Serialize)]
struct Names {
    streams: Option<Vec<String>>,
}

#[derive(Serialize)]
struct List {
    streams: Vec<StreamInfo>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    offline: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct AccountLimits {
    max_memory: i64,
    max_storage: i64,
    max_streams: i64,
    max_consumers: i64,
    max_ack_pending: i64,
    memory_max_stream_bytes: i64,
    storage_max_stream_bytes: i64,
    max_bytes_required: bool,
}

#[derive(Serialize)]
struct AccountInfo {
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    streams: u64,
    consumers: u64,
    limits: AccountLimits,
    api: ApiLevel,
}

#[derive(Serialize)]
struct ApiLevel {
    level: u32,
    total: u64,
    errors: u64,
}

/// The outcome of one API handler: the response `type` and body, or an error.
pub(super) type ApiResult = Result<Vec<u8>, (String, ApiError)>;

/// Build a success body for `api`.
pub(super) fn ok<T: Serialize>(api: &str, body: &T) -> ApiResult {
    Ok(api_response(api, Some(body), None))
}

/// An error for `api`.
pub(super) fn err<T>(api: &str, e: ApiError) -> Result<T, (String, ApiError)> {
    Err((api.to_string(), e))
}

fn no_responders(reply: &str) -> Message {
    host::status_msg(reply, None, b"NATS/1.0 503\r\n\r\n".to_vec())
}

impl JetStream {
    /// Answer one API request (see the module docs for the subjects).
    pub(super) fn handle_api(&mut self, now_ns: i64, msg: &Message, out: &mut Vec<JsOut>) {
        let subject = msg.subject.as_str();
        let rest = &subject[super::API_PREFIX.len()..];
        let tokens: Vec<&str> = rest.split('.').collect();
        let reply = msg.reply.as_ref().map(|r| r.as_str().to_string()).unwrap_or_default();
        let body = &msg.payload[..];
        // The pull request path is a consumer input, not an API call (not counted).
        if let ["CONSUMER", "MSG", "NEXT", stream, consumer] = tokens.as_slice() {
            if !self.pull_request(now_ns, stream, consumer, &reply, body, out) && !reply.is_empty() {
                out.push(JsOut::Publish(no_responders(&reply)));
            }
            return;
        }
        if let ["DIRECT", "GET", stream, subj @ ..] = tokens.as_slice() {
            self.stats.total += 1;
            self.settle(now_ns, stream, out);
            if let Some(m) = self.direct_get(stream, subj, &reply, body) {
                out.push(JsOut::Publish(m));
            }
            return;
        }
        let r: Option<ApiResult> = match tokens.as_slice() {
            ["INFO"] => Some(self.account_info()),
            ["STREAM", "CREATE", s] => Some(self.stream_create(now_ns, s, body)),
            ["STREAM", "UPDATE", s] => Some(self.stream_update(now_ns, s, body, out)),
            ["STREAM", "INFO", s] => Some(self.stream_info(now_ns, s, body)),
            ["STREAM", "DELETE", s] => Some(self.stream_delete(now_ns, s, out)),
            ["STREAM", "PURGE", s] => Some(self.stream_purge(now_ns, s, body, out)),
            ["STREAM", "NAMES"] => Some(self.stream_names_api(body)),
            ["STREAM", "LIST"] => Some(self.stream_list(now_ns, body)),
            ["STREAM", "MSG", "GET", s] => {
                self.settle(now_ns, s, out);
                Some(self.msg_get(s, body))
            }
            ["STREAM", "MSG", "DELETE", s] => Some(self.msg_delete(now_ns, s, body, out)),
            ["CONSUMER", ..] => self.consumer_api(now_ns, &tokens[1..], body, out),
            _ => None,
        };
        let Some(r) = r else {
            // No such API: nats-server has no subscription there, so the client sees no responders.
            if !reply.is_empty() {
                out.push(JsOut::Publish(no_responders(&reply)));
            }
            return;
        };
        self.stats.total += 1;
        let payload = match r {
            Ok(b) => b,
            Err((api, e)) => {
                self.stats.errors += 1;
                api_error_response(&api, &e)
            }
        };
        self.reap();
        if !reply.is_empty() {
            out.push(JsOut::Publish(host::plain(&reply, payload)));
        }
    }

    /// Remove the files of consumers their streams let go (deleted, inactive).
    pub(super) fn reap(&mut self) {
        let dir = self.cfg.store_dir.clone();
        for (name, h) in self.streams.iter_mut() {
            for c in std::mem::take(&mut h.gone) {
                // A state of it staged by the group commit in flight must not be renamed.
                for io in self.job.iter_mut().flat_map(|j| j.ios.iter_mut()) {
                    if let SyncIo::State { stream, staged, cancelled } = io
                        && stream == name
                        && staged.consumer == c
                    {
                        *cancelled = true;
                    }
                }
                let _ = layout::remove_if_present(&*self.disk, &layout::consumer_meta(&dir, name, &c));
                let _ = layout::remove_if_present(&*self.disk, &layout::consumer_state(&dir, name, &c));
                let _ = self.disk.sync_dir(&layout::consumers_dir(&dir, name));
            }
        }
    }

    fn account_info(&self) -> ApiResult {
        let z = self.jsz();
        let lim = |v: u64| if v == u64::MAX { -1 } else { v.min(i64::MAX as u64) as i64 };
        ok(
            "account_info",
            &AccountInfo {
                memory: z.memory,
                storage: z.storage,
                reserved_memory: 0,
                reserved_storage: 0,
                streams: z.streams,
                consumers: z.consumers,
                limits: AccountLimits {
                    max_memory: lim(self.cfg.max_memory_store),
                    max_storage: lim(self.cfg.max_file_store),
                    max_streams: -1,
                    max_consumers: -1,
                    max_ack_pending: -1,
                    memory_max_stream_bytes: -1,
                    storage_max_stream_bytes: -1,
                    max_bytes_required: false,
                },
                // As nats-server: a request is counted after it is answered, so this one is not in it.
                api: ApiLevel { level: super::API_LEVEL, total: self.stats.total, errors: self.stats.errors },
            },
        )
    }

    pub(super) fn host_mut(&mut self, api: &str, name: &str) -> Result<&mut StreamHost, (String, ApiError)> {
        match self.streams.get_mut(name) {
            Some(h) => Ok(h),
            None => err(api, ApiError::stream_not_found()),
        }
    }

    /// A stream's info with the standalone `cluster` (`{"leader":<server name>}`).
    fn info_of(&mut self, now_ns: i64, name: &str, dd: bool, filter: Option<&str>) -> Result<StreamInfo, ApiError> {
        let leader = self.cfg.server_name.clone();
        let h = self.streams.get_mut(name).ok_or_else(ApiError::stream_not_found)?;
        let mut info = h.stream.info(now_ns, dd, filter)?;
        info.cluster = Some(ClusterInfo { name: None, leader: Some(leader) });
        (info.mirror, info.sources) = self.source_infos(name, now_ns);
        if info.state.last_seq == 0 && info.state.messages == 0 {
            // A stream never written to reports first_seq 0, as nats-server's.
            info.state.first_seq = 0;
        }
        Ok(info)
    }

    fn stream_create(&mut self, now_ns: i64, name: &str, body: &[u8]) -> ApiResult {
        const API: &str = "stream_create";
        let (mut cfg, pedantic) = parse_config_request(body).or_else(|e| err(API, e))?;
        if cfg.name.is_empty() {
            cfg.name = name.to_string();
        } else if cfg.name != name {
            return err(API, ApiError::stream_mismatch());
        }
        let checked = cfg.check_create(pedantic).or_else(|e| err(API, e))?;
        if let Some(h) = self.streams.get(name) {
            if h.stream.config() != &checked {
                return err(API, ApiError::stream_name_exist());
            }
            let mut info = self.info_of(now_ns, name, false, None).or_else(|e| err(API, e))?;
            info.cluster = None;
            return ok(API, &Created { info, did_create: false });
        }
        if let Some(why) = self.failed.get(name) {
            return err(API, ApiError::stream_general_error(format!("stream {name} is offline: {why}")));
        }
        if let Some(u) = &self.unlisted {
            // A stream on disk that the failed listing missed would be cleared by a create.
            let why = format!("the streams on disk are not known yet ({})", u.why);
            return err(API, ApiError::stream_store_failed(why));
        }
        let others = self.streams.values().flat_map(|h| h.stream.config().subjects.iter().map(String::as_str));
        check_subject_overlap(&checked.subjects, others).or_else(|e| err(API, e))?;
        self.check_source_cycle(name, &checked).or_else(|e| err(API, e))?;
        let mut notes = Vec::new();
        let host = self
            .open_stream(checked.clone(), now_ns, now_ns, true, &[], &mut notes)
            .or_else(|t| err(API, ApiError::stream_store_failed(t)))?;
        let meta = StreamMeta { config: checked, created_ns: now_ns };
        let path = layout::stream_meta(&self.cfg.store_dir, name);
        let bytes = serde_json::to_vec(&meta).expect("stream meta serialises");
        layout::write_atomic(&*self.disk, &path, &bytes)
            .or_else(|e| err(API, ApiError::stream_store_failed(format!("cannot write {path}: {e}"))))?;
        self.install(host);
        // As nats-server's standalone create reply: no `cluster`.
        let mut info = self.info_of(now_ns, name, false, None).or_else(|e| err(API, e))?;
        info.cluster = None;
        ok(API, &Created { info, did_create: true })
    }

    fn stream_update(&mut self, now_ns: i64, name: &str, body: &[u8], out: &mut Vec<JsOut>) -> ApiResult {
        const API: &str = "stream_update";
        let (mut cfg, pedantic) = parse_config_request(body).or_else(|e| err(API, e))?;
        if cfg.name.is_empty() {
            cfg.name = name.to_string();
        } else if cfg.name != name {
            return err(API, ApiError::stream_mismatch());
        }
        let old = self.host_mut(API, name)?.stream.config().clone();
        let checked = cfg.check_update(&old, pedantic).or_else(|e| err(API, e))?;
        self.check_consumer_limits(name, &checked).or_else(|e| err(API, e))?;
        self.check_source_cycle(name, &checked).or_else(|e| err(API, e))?;
        let others = self
            .streams
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .flat_map(|(_, h)| h.stream.config().subjects.iter().map(String::as_str));
        check_subject_overlap(&checked.subjects, others).or_else(|e| err(API, e))?;
        let path = layout::stream_meta(&self.cfg.store_dir, name);
        let disk = self.disk.clone();
        let h = self.host_mut(API, name)?;
        let before = h.stream.store_state().msgs;
        h.stream.update(checked.clone(), now_ns).or_else(|e| err(API, e))?;
        h.features = super::republish::Features::of(&checked);
        let meta = StreamMeta { config: checked.clone(), created_ns: h.stream.created_ns() };
        let bytes = serde_json::to_vec(&meta).expect("stream meta serialises");
        let flushed = match h.stream.store_mut().file_mut() {
            Some(fs) => fs.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        // A failed flush stopped the store: the next group commit reopens it.
        h.dirty |= flushed.is_err();
        if h.stream.store_state().msgs != before {
            h.resync_consumers(now_ns, out);
        }
        flushed.or_else(|e| err(API, ApiError::stream_store_failed(e)))?;
        layout::write_atomic(&*disk, &path, &bytes)
            .or_else(|e| err(API, ApiError::stream_store_failed(format!("cannot write {path}: {e}"))))?;
        self.route(name, &checked.subjects);
        self.refresh_sourcing(name, true);
        let mut info = self.info_of(now_ns, name, false, None).or_else(|e| err(API, e))?;
        info.cluster = None;
        ok(API, &info)
    }

    /// New `consumer_limits` must not be below what an existing consumer of `name` runs
    /// with, as nats-server refuses the update: 500/10069 "change to limits violates
    /// consumers: C1, C2" (nats-server 2.15.1's text, checked by tests/js_client.rs)
    /// naming each consumer whose `max_ack_pending` is above the new limit, or whose
    /// `inactive_threshold` is (a durable without one counts as unlimited).
    fn check_consumer_limits(&self, name: &str, cfg: &crate::stream::StreamConfig) -> Result<(), ApiError> {
        let lim = &cfg.consumer_limits;
        let Some(h) = self.streams.get(name) else { return Ok(()) };
        let over: Vec<&str> = h
            .consumers
            .iter()
            .filter(|(_, c)| {
                let cc = c.c.config();
                let ack =
                    lim.max_ack_pending > 0 && (cc.max_ack_pending <= 0 || cc.max_ack_pending > lim.max_ack_pending);
                let inactive = lim.inactive_threshold > 0
                    && (cc.inactive_threshold <= 0 || cc.inactive_threshold > lim.inactive_threshold);
                ack || inactive
            })
            .map(|(n, _)| n.as_str())
            .collect();
        if over.is_empty() {
            return Ok(());
        }
        Err(ApiError::stream_update(format!("change to limits violates consumers: {}", over.join(", "))))
    }

    fn stream_info(&mut self, now_ns: i64, name: &str, body: &[u8]) -> ApiResult {
        const API: &str = "stream_info";
        let req: InfoRequest = parse_body(body).or_else(|e| err(API, e))?;
        self.host_mut(API, name)?;
        let filter = (!req.subjects_filter.is_empty()).then_some(req.subjects_filter.as_str());
        let mut info = self.info_of(now_ns, name, req.deleted_details, filter).or_else(|e| err(API, e))?;
        // Subject details are paged like nats-server's (at most 100k per reply).
        let total = info.state.subjects.len();
        if req.offset > 0 {
            info.state.subjects = info.state.subjects.into_iter().skip(req.offset).collect();
        }
        let (total, limit) = if filter.is_some() { (total, crate::stream::MAX_DELETED_DETAILS) } else { (0, 0) };
        ok(API, &Paged { total, offset: req.offset, limit, body: info })
    }

    fn stream_delete(&mut self, now_ns: i64, name: &str, out: &mut Vec<JsOut>) -> ApiResult {
        const API: &str = "stream_delete";
        let dir = self.cfg.store_dir.clone();
        self.reopening.remove(name);
        if self.failed.remove(name).is_none() {
            let mut h = self.streams.remove(name).map_or_else(|| err(API, ApiError::stream_not_found()), Ok)?;
            for c in h.consumers.keys().cloned().collect::<Vec<_>>() {
                h.remove_consumer(now_ns, &c, out);
            }
            // Publishes waiting for a sync of a deleted stream are not acknowledged.
            let e = ApiError::stream_not_found();
            let committing = h.commit.take().map(|c| c.acks).unwrap_or_default();
            for m in committing.into_iter().chain(std::mem::take(&mut h.acks)) {
                let body = crate::stream::pub_ack_error_json(name, &e);
                out.push(JsOut::Publish(host::plain(&m.subject, body)));
            }
            self.unroute(name);
            self.refresh_sourcing(name, false);
        }
        // The meta file is the commit point; the rest is garbage once it is gone.
        let meta = layout::stream_meta(&dir, name);
        layout::remove_if_present(&*self.disk, &meta)
            .and_then(|_| self.disk.sync_dir(&layout::streams_dir(&dir)))
            .or_else(|e| err(API, ApiError::stream_general_error(format!("cannot remove {meta}: {e}"))))?;
        let _ = layout::clear_dir(&*self.disk, &layout::msgs_dir(&dir, name));
        let _ = layout::clear_dir(&*self.disk, &layout::consumers_dir(&dir, name));
        ok(API, &Success { success: true })
    }

    fn stream_purge(&mut self, now_ns: i64, name: &str, body: &[u8], out: &mut Vec<JsOut>) -> ApiResult {
        const API: &str = "stream_purge";
        let req: PurgeApiRequest = parse_body(body).or_else(|e| err(API, e))?;
        let h = self.host_mut(API, name)?;
        let purged = h.stream.purge(&req).or_else(|e| err(API, e))?;
        let flushed = match h.stream.store_mut().file_mut() {
            Some(fs) => fs.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        // A failed flush stopped the store: the next group commit reopens it.
        h.dirty |= flushed.is_err();
        if purged > 0 {
            if !h.has_unsynced() {
                h.resync_consumers(now_ns, out);
            } else {
                h.resync = true;
            }
        }
        flushed.or_else(|e| err(API, ApiError::stream_purge_failed(e)))?;
        ok(API, &Purged { success: true, purged })
    }

    fn stream_names_api(&mut self, body: &[u8]) -> ApiResult {
        const API: &str = "stream_names";
        let req: NamesRequest = parse_body(body).or_else(|e| err(API, e))?;
        let mut names = self.names_matching(&req.subject);
        if req.subject.is_empty() {
            names.extend(self.failed.keys().cloned());
            names.sort();
        }
        let total = names.len();
        let page: Vec<String> = names.into_iter().skip(req.offset).take(NAMES_LIMIT).collect();
        let streams = (!page.is_empty()).then_some(page);
        ok(API, &Paged { total, offset: req.offset, limit: NAMES_LIMIT, body: Names { streams } })
    }

    /// Streams in service with a subject that can match `subject` (all when empty), sorted.
    fn names_matching(&self, subject: &str) -> Vec<String> {
        self.streams
            .iter()
            .filter(|(_, h)| {
                subject.is_empty()
                    || h.stream.config().subjects.iter().any(|s| crate::subject::patterns_collide(s, subject))
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn stream_list(&mut self, now_ns: i64, body: &[u8]) -> ApiResult {
        const API: &str = "stream_list";
        let req: NamesRequest = parse_body(body).or_else(|e| err(API, e))?;
        let names = self.names_matching(&req.subject);
        let total = names.len();
        let mut streams = Vec::new();
        for n in names.iter().skip(req.offset).take(LIST_LIMIT) {
            streams.push(self.info_of(now_ns, n, false, None).or_else(|e| err(API, e))?);
        }
        let offline = if req.subject.is_empty() { self.failed.clone() } else { BTreeMap::new() };
        ok(API, &Paged { total, offset: req.offset, limit: LIST_LIMIT, body: List { streams, offline } })
    }

    /// Before a read of stream `name`'s messages (MSG.GET, DIRECT.GET): if it holds
    /// appended messages not yet durable, run the group commit now, so a read never
    /// shows a message before its PubAck could be sent (a failed sync would take it
    /// back). nats-server shows a message once stored, but it also acks it then: in both
    /// a message is readable exactly when it is acknowledged. The PubAcks this releases
    /// go out before the read's reply.
    fn settle(&mut self, now_ns: i64, name: &str, out: &mut Vec<JsOut>) {
        if self.streams.get(name).is_some_and(|h| h.dirty || h.has_unsynced()) {
            let _ = self.sync(now_ns, out);
        }
    }

    fn msg_get(&mut self, name: &str, body: &[u8]) -> ApiResult {
        const API: &str = "stream_msg_get";
        let req: MsgGetRequest = parse_body(body).or_else(|e| err(API, e))?;
        let h = self.host_mut(API, name)?;
        let m = h.stream.get_msg(&req).or_else(|e| err(API, e))?;
        ok(API, &MsgGetResponse { message: StoredMsgJson::from(&m) })
    }

    fn msg_delete(&mut self, now_ns: i64, name: &str, body: &[u8], out: &mut Vec<JsOut>) -> ApiResult {
        const API: &str = "stream_msg_delete";
        let req: MsgDeleteRequest = parse_body(body).or_else(|e| err(API, e))?;
        let h = self.host_mut(API, name)?;
        let subject = h.stream.store_mut().load(req.seq).ok().flatten().map(|m| m.subject);
        h.stream.delete_msg(&req).or_else(|e| err(API, e))?;
        if h.is_file() {
            // Done in memory: a reopen after a failed flush deletes it again.
            h.removed.push(req.seq);
        }
        if let Some(s) = subject {
            for c in h.consumers.values_mut() {
                c.c.on_stream_remove(req.seq, &s);
            }
        }
        if let Some(fs) = h.stream.store_mut().file_mut()
            && let Err(e) = fs.flush()
        {
            // The store stopped: the next group commit reopens it.
            h.dirty = true;
            return err(API, ApiError::stream_msg_delete_failed(e));
        }
        let _ = (now_ns, out);
        ok(API, &Success { success: true })
    }

    /// `$JS.API.DIRECT.GET.<stream>` (JSON body) or `.<stream>.<subject...>` (last by
    /// subject): a raw message reply. Streams without `allow_direct` have no responder.
    fn direct_get(&mut self, name: &str, subj: &[&str], reply: &str, body: &[u8]) -> Option<Message> {
        if reply.is_empty() {
            return None;
        }
        let h = match self.streams.get_mut(name) {
            Some(h) if h.stream.config().allow_direct => h,
            _ => return Some(no_responders(reply)),
        };
        let req = if subj.is_empty() {
            match parse_body::<MsgGetRequest>(body) {
                Ok(r) => r,
                Err(_) => {
                    self.stats.errors += 1;
                    return Some(host::status_msg(reply, None, b"NATS/1.0 408 Bad Request\r\n\r\n".to_vec()));
                }
            }
        } else {
            MsgGetRequest { last_by_subj: subj.join("."), ..Default::default() }
        };
        let r = h.stream.direct_get(&req);
        let headers = (!r.headers.is_empty()).then(|| bytes::Bytes::from(r.headers));
        Some(Message { subject: reply.into(), reply: None, headers, payload: bytes::Bytes::from(r.payload) })
    }
}
