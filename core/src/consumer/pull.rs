//! Pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` bodies, nats-server
//! `nextReqFromMsg`) and the status-only messages a consumer sends, byte for byte as
//! nats-server builds them (`NATS/1.0 <code> <text>\r\n[headers]\r\n`).

use super::priority::PullGroup;
use serde::Deserialize;

/// Header with the messages a finished pull request still had outstanding.
pub const PENDING_MSGS: &str = "Nats-Pending-Messages";
/// Header with the bytes a finished pull request still had outstanding.
pub const PENDING_BYTES: &str = "Nats-Pending-Bytes";
/// Heartbeat header: the last consumer sequence delivered.
pub const LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// Heartbeat header: the last stream sequence delivered.
pub const LAST_STREAM: &str = "Nats-Last-Stream";
/// Heartbeat header naming the flow-control reply a push consumer is stalled on.
pub const CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";
/// Header carrying the payload size of a `headers_only` delivery.
pub const MSG_SIZE: &str = "Nats-Msg-Size";

/// A parsed pull request. Times are relative (ns); the consumer makes them absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullRequest {
    /// Messages wanted (at least 1).
    pub batch: u64,
    /// Expiry after receipt (ns; 0: none).
    pub expires: i64,
    /// Byte budget (0: none).
    pub max_bytes: u64,
    /// Answer 404 instead of waiting when nothing is available.
    pub no_wait: bool,
    /// Heartbeat interval while waiting (ns; 0: none).
    pub idle_heartbeat: i64,
    /// The priority-group fields; `Some` for every JSON request (as nats-server, which
    /// then checks them against the consumer's policy), `None` for the other forms.
    pub group: Option<PullGroup>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    batch: i64,
    #[serde(default)]
    expires: i64,
    #[serde(default)]
    max_bytes: i64,
    #[serde(default)]
    no_wait: bool,
    #[serde(default)]
    idle_heartbeat: i64,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    min_pending: Option<i64>,
    #[serde(default)]
    min_ack_pending: Option<i64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
}

impl PullRequest {
    /// Parse a body: empty means batch 1, a plain integer is the batch, otherwise JSON
    /// `{batch, expires, max_bytes, no_wait, idle_heartbeat}` plus the priority-group fields
    /// `{group, min_pending, min_ack_pending, id, priority}` (null reads as unset). The error
    /// text is what follows `400 Bad Request - `.
    pub fn parse(body: &[u8]) -> Result<PullRequest, String> {
        let req = body.trim_ascii();
        let one = PullRequest { batch: 1, ..Default::default() };
        if req.is_empty() {
            return Ok(one);
        }
        if req[0] != b'{' {
            // nats-server: a number is the batch, anything else is treated as batch 1.
            let n = std::str::from_utf8(req).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(1);
            return Ok(PullRequest { batch: n.max(1) as u64, ..Default::default() });
        }
        let w: Wire = serde_json::from_slice(req).map_err(|e| e.to_string())?;
        if w.idle_heartbeat > 0 && w.idle_heartbeat.saturating_mul(2) > w.expires {
            return Err("heartbeat value too large".into());
        }
        Ok(PullRequest {
            batch: w.batch.max(1) as u64,
            expires: w.expires.max(0),
            max_bytes: w.max_bytes.max(0) as u64,
            no_wait: w.no_wait,
            idle_heartbeat: w.idle_heartbeat.max(0),
            group: Some(PullGroup {
                group: w.group.unwrap_or_default(),
                min_pending: w.min_pending.unwrap_or(0),
                min_ack_pending: w.min_ack_pending.unwrap_or(0),
                id: w.id.unwrap_or_default(),
                priority: w.priority.unwrap_or(0),
            }),
        })
    }
}

/// A status line with no headers: `NATS/1.0 <code> <text>\r\n\r\n`.
pub fn status(code: u16, text: &str) -> Vec<u8> {
    format!("NATS/1.0 {code} {text}\r\n\r\n").into_bytes()
}

/// A status line with the pull request's outstanding messages and bytes
/// (408 Request Timeout, 409 Message Size Exceeds MaxBytes).
pub fn status_pending(code: u16, text: &str, msgs: u64, bytes: u64) -> Vec<u8> {
    format!("NATS/1.0 {code} {text}\r\n{PENDING_MSGS}: {msgs}\r\n{PENDING_BYTES}: {bytes}\r\n\r\n").into_bytes()
}

/// `100 Idle Heartbeat` with the last delivered consumer and stream sequences, plus
/// `Nats-Consumer-Stalled` when a push consumer waits on flow control.
pub fn idle_heartbeat(last_consumer: u64, last_stream: u64, stalled_on: Option<&str>) -> Vec<u8> {
    let mut s =
        format!("NATS/1.0 100 Idle Heartbeat\r\n{LAST_CONSUMER}: {last_consumer}\r\n{LAST_STREAM}: {last_stream}\r\n");
    if let Some(fc) = stalled_on {
        s.push_str(&format!("{CONSUMER_STALLED}: {fc}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The flow-control request a push consumer sends to its deliver subject.
pub fn flow_control_request() -> Vec<u8> {
    b"NATS/1.0 100 FlowControl Request\r\n\r\n".to_vec()
}

/// Headers of a `headers_only` delivery: the original block (or a new one) plus
/// `Nats-Msg-Size: <payload length>`.
pub fn headers_only(original: &[u8], payload_len: usize) -> Vec<u8> {
    let mut out = if original.ends_with(b"\r\n\r\n") {
        original[..original.len() - 2].to_vec()
    } else {
        b"NATS/1.0\r\n".to_vec()
    };
    out.extend_from_slice(format!("{MSG_SIZE}: {payload_len}\r\n\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_forms() {
        assert_eq!(PullRequest::parse(b"").unwrap().batch, 1);
        assert_eq!(PullRequest::parse(b" 7 ").unwrap().batch, 7);
        assert_eq!(PullRequest::parse(b"junk").unwrap().batch, 1);
        let r = PullRequest::parse(
            br#"{"batch":10,"expires":5000000000,"max_bytes":0,"min_pending":null,"min_ack_pending":null,"group":null,"priority":null}"#,
        )
        .unwrap();
        assert_eq!((r.batch, r.expires, r.max_bytes, r.no_wait), (10, 5_000_000_000, 0, false));
        assert_eq!(
            PullRequest::parse(br#"{"batch":1,"expires":1000,"idle_heartbeat":600}"#).unwrap_err(),
            "heartbeat value too large"
        );
        assert!(PullRequest::parse(br#"{"batch":"x"}"#).is_err());
        assert_eq!(PullRequest::parse(b"3").unwrap().group, None, "only the JSON form has a group");
        let g = PullRequest::parse(br#"{"batch":1,"group":"A","min_pending":5,"id":"p","priority":2}"#)
            .unwrap()
            .group
            .unwrap();
        assert_eq!(
            (g.group.as_str(), g.min_pending, g.min_ack_pending, g.id.as_str(), g.priority),
            ("A", 5, 0, "p", 2)
        );
    }

    #[test]
    fn status_bytes() {
        assert_eq!(status(404, "No Messages"), b"NATS/1.0 404 No Messages\r\n\r\n");
        assert_eq!(
            status_pending(408, "Request Timeout", 3, 0),
            b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 0\r\n\r\n"
        );
        assert_eq!(
            idle_heartbeat(4, 9, None),
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 4\r\nNats-Last-Stream: 9\r\n\r\n"
        );
        assert_eq!(headers_only(b"", 5), b"NATS/1.0\r\nNats-Msg-Size: 5\r\n\r\n");
        assert_eq!(headers_only(b"NATS/1.0\r\nA: b\r\n\r\n", 0), b"NATS/1.0\r\nA: b\r\nNats-Msg-Size: 0\r\n\r\n");
    }
}
