//! Consumer operations beyond create/info/delete: `$JS.API.CONSUMER.UNPIN.<stream>.<consumer>`
//! (priority groups, nats-server 2.11) and `$JS.API.CONSUMER.RESET.<stream>.<consumer>`
//! (nats-server 2.14), with nats-server's checks, order of errors and response shapes.

use super::api::{ApiResult, err, ok, parse_body};
use super::{JetStream, JsOut};
use crate::consumer::{ConsumerError, ConsumerInfo, valid_group_name};
use crate::jetstream::ApiError;
use crate::stream::RetentionPolicy;
use serde::{Deserialize, Serialize};

/// `JSApiConsumerUnpinRequest`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct UnpinRequest {
    group: String,
}

/// `JSApiConsumerResetRequest` (`seq` 0 or absent: back to the ack floor).
#[derive(Default, Deserialize)]
#[serde(default)]
struct ResetRequest {
    seq: u64,
}

/// `JSApiConsumerResetResponse`: the consumer info with the sequence it now starts at.
#[derive(Serialize)]
struct ResetResponse {
    #[serde(flatten)]
    info: ConsumerInfo,
    reset_seq: u64,
}

/// An empty success body (`{"type":...}` only).
#[derive(Serialize)]
struct Empty {}

impl JetStream {
    /// `CONSUMER.UNPIN.<stream>.<consumer>` with `{"group":G}`, as nats-server's
    /// `jsConsumerUnpinRequest`: invalid JSON or no group (10025), an invalid group name
    /// (10162), no stream (10059), no consumer (10014), a group the consumer does not have
    /// (10160); otherwise the pin is dropped and the next request without an id is pinned.
    pub(super) fn consumer_unpin(
        &mut self,
        now_ns: i64,
        stream: &str,
        name: &str,
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> ApiResult {
        const API: &str = "consumer_unpin";
        let req: UnpinRequest = parse_body(body).or_else(|e| err(API, e))?;
        if req.group.is_empty() {
            return err(API, ApiError::invalid_json("consumer group not specified"));
        }
        if !valid_group_name(&req.group) {
            let e = ConsumerError::InvalidGroupName;
            return err(API, ApiError::new(e.code(), e.err_code(), e.description()));
        }
        let h = self.host_mut(API, stream)?;
        if !h.consumers.contains_key(name) {
            return err(API, ApiError::consumer_not_found());
        }
        let mut found = false;
        h.with_consumer(now_ns, name, out, |c, v, now| found = c.unpin(now, &req.group, v));
        if !found {
            return err(API, ApiError::new(400, 10160, "Provided priority group does not exist for this consumer"));
        }
        ok(API, &Empty {})
    }

    /// `CONSUMER.RESET.<stream>.<consumer>` with an optional `{"seq":N}`, as nats-server's
    /// `processResetReq`: `None` when there is no such stream or consumer (nats-server
    /// serves the subject from the consumer itself, so the client sees no responders);
    /// invalid JSON answers 10025, a refused sequence 10204 `invalid reset: <why>`.
    /// An interest stream then drops what no consumer needs any more.
    pub(super) fn consumer_reset(
        &mut self,
        now_ns: i64,
        stream: &str,
        name: &str,
        body: &[u8],
        out: &mut Vec<JsOut>,
    ) -> Option<ApiResult> {
        const API: &str = "consumer_reset";
        let h = self.streams.get_mut(stream)?;
        h.consumers.get(name)?;
        let req: ResetRequest = match parse_body(body) {
            Ok(r) => r,
            Err(e) => return Some(err(API, e)),
        };
        let mut r = Ok(0);
        h.with_consumer(now_ns, name, out, |c, v, now| r = c.reset(now, req.seq, v));
        let reset_seq = match r {
            Ok(s) => s,
            Err(why) => return Some(err(API, ApiError::new(400, 10204, format!("invalid reset: {why}")))),
        };
        if h.stream.config().retention == RetentionPolicy::Interest {
            h.release_unneeded(now_ns, out);
        }
        let info = h.consumers.get(name)?.c.info(now_ns);
        Some(ok(API, &ResetResponse { info, reset_seq }))
    }
}
