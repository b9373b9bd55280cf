//! A small JetStream client for the simulation, speaking the JetStream API over the NATS
//! protocol ([`crate::nats_client`]): create streams and durable consumers, publish and
//! await the PubAck (optionally with `Nats-Msg-Id`), pull with
//! `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`, ack/nak/term on a delivery's
//! `$JS.ACK...` reply subject (as a double ack, so the server's answer confirms it),
//! read consumer and stream info, get and delete messages.
//!
//! The wire shapes are nats-server's (see `../shared/reference/nats-facts.md` §2). The
//! pure parts (request bodies, parsing the ack subject, the PubAck and info replies)
//! build everywhere and are unit-tested; the connection-driving part is simulation-only.

use serde_json::{Value, json};

/// Metadata of a delivery, from its ack reply subject
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (nats-server's v1
/// form, 9 tokens) or the v2 form `$JS.ACK.<domain>.<acc>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckMeta {
    /// Stream name.
    pub stream: String,
    /// Consumer name.
    pub consumer: String,
    /// Delivery count (1 for a first delivery).
    pub delivered: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Timestamp, ns since the Unix epoch.
    pub ts: i64,
    /// Messages pending after this one.
    pub pending: u64,
}

/// Parse a delivery's ack reply subject (see [`AckMeta`]); `None` if it is not one.
pub fn parse_ack_subject(subject: &str) -> Option<AckMeta> {
    let t: Vec<&str> = subject.split('.').collect();
    if t.len() < 9 || t[0] != "$JS" || t[1] != "ACK" {
        return None;
    }
    let base = match t.len() {
        9 => 2,
        n if n >= 11 => 4,
        _ => return None,
    };
    Some(AckMeta {
        stream: t[base].to_string(),
        consumer: t[base + 1].to_string(),
        delivered: t[base + 2].parse().ok()?,
        stream_seq: t[base + 3].parse().ok()?,
        consumer_seq: t[base + 4].parse().ok()?,
        ts: t[base + 5].parse().ok()?,
        pending: t[base + 6].parse().ok()?,
    })
}

/// A JetStream API error (`{"code","err_code","description"}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErr {
    /// HTTP-like code.
    pub code: u64,
    /// nats-server's error code (0 when absent).
    pub err_code: u64,
    /// The description.
    pub description: String,
}

impl std::fmt::Display for ApiErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}/{})", self.description, self.code, self.err_code)
    }
}

/// Parse an API reply body: `Err` for an error body or unparsable JSON, else the object.
pub fn parse_api(body: &[u8]) -> Result<Value, ApiErr> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiErr {
        code: 0,
        err_code: 0,
        description: format!("unparsable reply ({e}): {:?}", String::from_utf8_lossy(body)),
    })?;
    if let Some(e) = v.get("error") {
        return Err(ApiErr {
            code: e.get("code").and_then(Value::as_u64).unwrap_or(0),
            err_code: e.get("err_code").and_then(Value::as_u64).unwrap_or(0),
            description: e.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
        });
    }
    Ok(v)
}

/// A PubAck: `{"stream","seq","duplicate"?}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubAck {
    /// Stream.
    pub stream: String,
    /// Sequence.
    pub seq: u64,
    /// Whether the Msg-Id was a duplicate within the window.
    pub duplicate: bool,
}

/// Parse a PubAck reply body.
pub fn parse_pub_ack(body: &[u8]) -> Result<PubAck, ApiErr> {
    let v = parse_api(body)?;
    let seq = v.get("seq").and_then(Value::as_u64).filter(|&s| s > 0);
    match (v.get("stream").and_then(Value::as_str), seq) {
        (Some(stream), Some(seq)) => Ok(PubAck {
            stream: stream.to_string(),
            seq,
            duplicate: v.get("duplicate").and_then(Value::as_bool).unwrap_or(false),
        }),
        _ => Err(ApiErr { code: 0, err_code: 0, description: format!("PubAck without stream/seq: {v}") }),
    }
}

/// What the world asks of a stream (limits 0 = unlimited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReq {
    /// Name.
    pub name: String,
    /// Its subjects.
    pub subjects: Vec<String>,
    /// `limits`, `interest` or `workqueue`.
    pub retention: &'static str,
    /// `max_msgs`.
    pub max_msgs: u64,
    /// `max_bytes`.
    pub max_bytes: u64,
    /// `max_msgs_per_subject`.
    pub max_per_subject: u64,
    /// `duplicate_window`, ns.
    pub duplicate_window_ns: u64,
}

fn limit(x: u64) -> i64 {
    if x == 0 { -1 } else { x as i64 }
}

/// The STREAM.CREATE body for `s` (file storage, one replica, discard old).
pub fn stream_create_body(s: &StreamReq) -> Vec<u8> {
    let body = json!({
        "name": s.name,
        "subjects": s.subjects,
        "retention": s.retention,
        "max_consumers": -1,
        "max_msgs": limit(s.max_msgs),
        "max_bytes": limit(s.max_bytes),
        "max_age": 0,
        "max_msgs_per_subject": limit(s.max_per_subject),
        "max_msg_size": -1,
        "discard": "old",
        "storage": "file",
        "num_replicas": 1,
        "duplicate_window": s.duplicate_window_ns,
    });
    serde_json::to_vec(&body).expect("json")
}

/// The CONSUMER.CREATE body for a durable, deliver-all, ack-explicit consumer: pull when
/// `deliver_subject` is `None`, else push to it.
pub fn consumer_create_body(
    stream: &str,
    name: &str,
    filter: Option<&str>,
    deliver_subject: Option<&str>,
    ack_wait_ns: u64,
    max_ack_pending: u64,
) -> Vec<u8> {
    let mut cfg = json!({
        "durable_name": name,
        "name": name,
        "deliver_policy": "all",
        "ack_policy": "explicit",
        "ack_wait": ack_wait_ns,
        "max_deliver": -1,
        "replay_policy": "instant",
        "max_ack_pending": max_ack_pending,
    });
    if let Some(f) = filter {
        cfg["filter_subject"] = json!(f);
    }
    if let Some(d) = deliver_subject {
        cfg["deliver_subject"] = json!(d);
    }
    serde_json::to_vec(&json!({"stream_name": stream, "config": cfg, "action": ""})).expect("json")
}

/// The CONSUMER.CREATE subject for consumer `name` of `stream` with optional filter.
pub fn consumer_create_subject(stream: &str, name: &str, filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{f}"),
        None => format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
    }
}

/// A MSG.NEXT body: `{"batch":N,"expires":ns}`.
pub fn next_body(batch: u64, expires_ns: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"batch": batch, "expires": expires_ns})).expect("json")
}

/// What a consumer info reply says (the fields the checker samples).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// `delivered.stream_seq`.
    pub delivered_stream_seq: u64,
    /// `ack_floor.stream_seq`.
    pub ack_floor_stream_seq: u64,
    /// `num_ack_pending`.
    pub num_ack_pending: u64,
    /// `num_pending`.
    pub num_pending: u64,
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64).unwrap_or(0)
}

/// Parse a consumer info reply.
pub fn parse_consumer_info(body: &[u8]) -> Result<ConsumerState, ApiErr> {
    let v = parse_api(body)?;
    Ok(ConsumerState {
        delivered_stream_seq: u(&v, &["delivered", "stream_seq"]),
        ack_floor_stream_seq: u(&v, &["ack_floor", "stream_seq"]),
        num_ack_pending: u(&v, &["num_ack_pending"]),
        num_pending: u(&v, &["num_pending"]),
    })
}

/// What a stream info reply says (the fields the checker samples).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// `state.messages`.
    pub msgs: u64,
    /// `state.bytes`.
    pub bytes: u64,
    /// `state.first_seq`.
    pub first_seq: u64,
    /// `state.last_seq`.
    pub last_seq: u64,
    /// `state.subjects` (when asked with `subjects_filter`), in subject order.
    pub subjects: Vec<(String, u64)>,
    /// `state.lost.msgs`: sequences lost to damage.
    pub lost: Vec<u64>,
}

/// The STREAM.INFO body asking for per-subject counts.
pub fn stream_info_body() -> Vec<u8> {
    br#"{"subjects_filter":">"}"#.to_vec()
}

/// Parse a stream info reply.
pub fn parse_stream_info(body: &[u8]) -> Result<StreamState, ApiErr> {
    let v = parse_api(body)?;
    let st = v.get("state").cloned().unwrap_or(Value::Null);
    let subjects = st
        .get("subjects")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    let lost = st
        .get("lost")
        .and_then(|l| l.get("msgs"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    Ok(StreamState {
        msgs: u(&st, &["messages"]),
        bytes: u(&st, &["bytes"]),
        first_seq: u(&st, &["first_seq"]),
        last_seq: u(&st, &["last_seq"]),
        subjects,
        lost,
    })
}

/// A message read with STREAM.MSG.GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GotMsg {
    /// Its sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its payload (decoded from base64).
    pub payload: Vec<u8>,
}

/// The MSG.GET body for the first message at or after `seq`.
pub fn msg_get_next_body(seq: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"seq": seq, "next_by_subj": ">"})).expect("json")
}

/// Parse a MSG.GET reply: `Ok(None)` for "no message found" (10037).
pub fn parse_msg_get(body: &[u8]) -> Result<Option<GotMsg>, ApiErr> {
    let v = match parse_api(body) {
        Ok(v) => v,
        Err(e) if e.err_code == 10037 => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = v.get("message").cloned().unwrap_or(Value::Null);
    let data = m.get("data").and_then(Value::as_str).unwrap_or("");
    let payload = weir_core::jetstream::decode_base64(data).ok_or_else(|| ApiErr {
        code: 0,
        err_code: 0,
        description: format!("bad base64 data {data:?}"),
    })?;
    Ok(Some(GotMsg {
        seq: u(&m, &["seq"]),
        subject: m.get("subject").and_then(Value::as_str).unwrap_or("").to_string(),
        payload,
    }))
}

#[cfg(madsim)]
pub use conn::{JsClient, PubOutcome};

#[cfg(madsim)]
mod conn {
    use super::*;
    use crate::nats_client::{Msg, NatsClient};
    use bytes::Bytes;
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::time::Instant;
    use weir_core::proto::Headers;
    use weir_traces::AckKind;

    /// How a publish ended.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum PubOutcome {
        /// Acknowledged.
        Ack(PubAck),
        /// Definitely not stored: an error PubAck or no responders.
        Fail(String),
        /// Unknown: timeout or connection lost.
        Unknown(String),
    }

    /// A JetStream client on one connection (see the module doc).
    pub struct JsClient {
        /// The connection (exposed for push consumers, which read deliveries from it).
        pub nats: NatsClient,
        /// Request timeout.
        pub timeout: Duration,
    }

    fn api_io(e: ApiErr) -> io::Error {
        io::Error::other(e.to_string())
    }

    impl JsClient {
        /// Connect to `addr`; `name` makes the connection's inbox unique.
        pub async fn connect(addr: SocketAddr, timeout: Duration, name: &str) -> io::Result<JsClient> {
            Ok(JsClient { nats: NatsClient::connect(addr, timeout, name).await?, timeout })
        }

        async fn api(&mut self, subject: &str, body: Vec<u8>) -> io::Result<Msg> {
            let m = self.nats.request(subject, None, Bytes::from(body), self.timeout).await?;
            match m.status() {
                Some(503) => Err(io::Error::new(io::ErrorKind::NotConnected, "no responders")),
                _ => Ok(m),
            }
        }

        /// Create (or re-create, idempotently) a stream. `Err(Ok(api error))` for a refusal.
        pub async fn create_stream(&mut self, s: &StreamReq) -> io::Result<Result<(), ApiErr>> {
            let m = self.api(&format!("$JS.API.STREAM.CREATE.{}", s.name), stream_create_body(s)).await?;
            Ok(parse_api(&m.payload).map(|_| ()))
        }

        /// Create a durable consumer (see [`consumer_create_body`]).
        pub async fn create_consumer(
            &mut self,
            stream: &str,
            name: &str,
            filter: Option<&str>,
            deliver_subject: Option<&str>,
            ack_wait: Duration,
            max_ack_pending: u64,
        ) -> io::Result<Result<(), ApiErr>> {
            let body = consumer_create_body(
                stream,
                name,
                filter,
                deliver_subject,
                ack_wait.as_nanos() as u64,
                max_ack_pending,
            );
            let m = self.api(&consumer_create_subject(stream, name, filter), body).await?;
            Ok(parse_api(&m.payload).map(|_| ()))
        }

        /// Publish and await the PubAck; `msg_id` adds `Nats-Msg-Id`.
        pub async fn publish(&mut self, subject: &str, msg_id: Option<&str>, payload: Bytes) -> PubOutcome {
            let headers = msg_id.map(|id| {
                let mut h = Headers::new();
                h.insert("Nats-Msg-Id", id).expect("valid header");
                h
            });
            match self.nats.request(subject, headers.as_ref(), payload, self.timeout).await {
                Ok(m) if m.status() == Some(503) => PubOutcome::Fail("no responders".into()),
                Ok(m) if m.status().is_some() => PubOutcome::Unknown(format!("status {:?}", m.status())),
                Ok(m) => match parse_pub_ack(&m.payload) {
                    Ok(a) => PubOutcome::Ack(a),
                    Err(e) if e.code > 0 => PubOutcome::Fail(e.to_string()),
                    Err(e) => PubOutcome::Unknown(e.to_string()),
                },
                Err(e) => PubOutcome::Unknown(e.to_string()),
            }
        }

        /// Ask a pull consumer for up to `batch` messages, waiting at most `expires`; returns
        /// the deliveries (with their ack metadata) that arrived by then.
        pub async fn fetch(
            &mut self,
            stream: &str,
            consumer: &str,
            batch: u64,
            expires: Duration,
        ) -> io::Result<Vec<(Msg, AckMeta)>> {
            // Deliveries keep their own subjects: they are told apart by the request's
            // own subscription, as real clients do.
            let (reply, sid) = self.nats.request_sub();
            let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
            let body = Bytes::from(next_body(batch, expires.as_nanos() as u64));
            self.nats.publish(&subject, Some(&reply), None, body);
            self.nats.flush().await?;
            let deadline = Instant::now() + expires + self.timeout;
            let mut out = Vec::new();
            let r = self.collect(&sid, batch, deadline, &mut out).await;
            self.nats.unsub(&sid);
            r.map(|()| out)
        }

        async fn collect(
            &mut self,
            sid: &str,
            batch: u64,
            deadline: Instant,
            out: &mut Vec<(Msg, AckMeta)>,
        ) -> io::Result<()> {
            while (out.len() as u64) < batch {
                let m = match self.nats.wait_sid(sid, deadline).await {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                    Err(e) => return Err(e),
                };
                if m.status().is_some() {
                    // 404 / 408 / 409: the request is over.
                    break;
                }
                match m.reply.as_deref().and_then(parse_ack_subject) {
                    Some(meta) => out.push((m, meta)),
                    None => return Err(io::Error::other(format!("delivery without an ack subject: {:?}", m.reply))),
                }
            }
            Ok(())
        }

        /// Send an ack, nak or term for a delivery as a double ack; `Ok(true)` once the
        /// server answered it.
        pub async fn ack(&mut self, ack_subject: &str, kind: AckKind) -> io::Result<bool> {
            let body: &'static [u8] = match kind {
                AckKind::Ack => b"+ACK",
                AckKind::Nak => b"-NAK",
                AckKind::Term => b"+TERM",
            };
            match self.nats.request(ack_subject, None, Bytes::from_static(body), self.timeout).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
                Err(e) => Err(e),
            }
        }

        /// Consumer info.
        pub async fn consumer_info(&mut self, stream: &str, consumer: &str) -> io::Result<ConsumerState> {
            let m = self.api(&format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"), Vec::new()).await?;
            parse_consumer_info(&m.payload).map_err(api_io)
        }

        /// Stream info with per-subject counts.
        pub async fn stream_info(&mut self, stream: &str) -> io::Result<StreamState> {
            let m = self.api(&format!("$JS.API.STREAM.INFO.{stream}"), stream_info_body()).await?;
            parse_stream_info(&m.payload).map_err(api_io)
        }

        /// The first message at or after `seq` (`None`: none).
        pub async fn get_next(&mut self, stream: &str, seq: u64) -> io::Result<Option<GotMsg>> {
            let m = self.api(&format!("$JS.API.STREAM.MSG.GET.{stream}"), msg_get_next_body(seq)).await?;
            parse_msg_get(&m.payload).map_err(api_io)
        }

        /// Delete message `seq`; `Ok(true)` if the server says it did.
        pub async fn delete(&mut self, stream: &str, seq: u64) -> io::Result<bool> {
            let body = serde_json::to_vec(&json!({"seq": seq})).expect("json");
            let m = self.api(&format!("$JS.API.STREAM.MSG.DELETE.{stream}"), body).await?;
            Ok(parse_api(&m.payload).is_ok_and(|v| v.get("success").and_then(Value::as_bool) == Some(true)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_of_both_forms_parse() {
        let m = parse_ack_subject("$JS.ACK.ORDERS.worker.2.41.57.1700000000000000000.3").unwrap();
        assert_eq!((m.stream.as_str(), m.consumer.as_str()), ("ORDERS", "worker"));
        assert_eq!((m.delivered, m.stream_seq, m.consumer_seq, m.pending), (2, 41, 57, 3));
        assert_eq!(m.ts, 1_700_000_000_000_000_000);
        let v2 = parse_ack_subject("$JS.ACK._.ACCHASH.ORDERS.worker.1.5.6.7.0.xyz").unwrap();
        assert_eq!((v2.stream.as_str(), v2.stream_seq, v2.consumer_seq), ("ORDERS", 5, 6));
        for bad in ["$JS.ACK.S.C.1.2.3.4", "$JS.ACK.S.C.1.x.3.4.5", "_INBOX.a.b.c.d.e.f.g.h", "$JS.ACK.S.C.1.2.3.4.5.6"]
        {
            assert!(parse_ack_subject(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn pub_acks_and_errors_parse() {
        assert_eq!(
            parse_pub_ack(br#"{"stream":"S","seq":42}"#).unwrap(),
            PubAck { stream: "S".into(), seq: 42, duplicate: false }
        );
        assert!(parse_pub_ack(br#"{"stream":"S","seq":41,"duplicate": true}"#).unwrap().duplicate);
        let e = parse_pub_ack(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}"#,
        )
        .unwrap_err();
        assert_eq!((e.code, e.err_code), (503, 10077));
        assert_eq!(parse_pub_ack(b"garbage").unwrap_err().code, 0);
    }

    #[test]
    fn info_replies_parse() {
        let c = parse_consumer_info(
            br#"{"type":"x","delivered":{"consumer_seq":9,"stream_seq":12},"ack_floor":{"consumer_seq":4,"stream_seq":7},"num_ack_pending":3,"num_pending":2}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            ConsumerState { delivered_stream_seq: 12, ack_floor_stream_seq: 7, num_ack_pending: 3, num_pending: 2 }
        );
        let s = parse_stream_info(
            br#"{"state":{"messages":3,"bytes":171,"first_seq":1,"last_seq":3,"subjects":{"a.1":2,"a.0":1},"lost":{"msgs":[5,6],"bytes":9}}}"#,
        )
        .unwrap();
        assert_eq!((s.msgs, s.bytes, s.first_seq, s.last_seq), (3, 171, 1, 3));
        assert_eq!(s.subjects, vec![("a.0".to_string(), 1), ("a.1".to_string(), 2)]);
        assert_eq!(s.lost, vec![5, 6]);
        let g = parse_msg_get(br#"{"message":{"subject":"a.1","seq":4,"data":"aGk=","time":"x"}}"#).unwrap().unwrap();
        assert_eq!((g.seq, g.subject.as_str(), g.payload.as_slice()), (4, "a.1", &b"hi"[..]));
        assert_eq!(
            parse_msg_get(br#"{"error":{"code":404,"err_code":10037,"description":"no message found"}}"#),
            Ok(None)
        );
    }

    #[test]
    fn request_bodies_have_nats_server_shapes() {
        let s = StreamReq {
            name: "S".into(),
            subjects: vec!["js0.>".into()],
            retention: "workqueue",
            max_msgs: 0,
            max_bytes: 100,
            max_per_subject: 0,
            duplicate_window_ns: 2_000_000_000,
        };
        let v: Value = serde_json::from_slice(&stream_create_body(&s)).unwrap();
        assert_eq!((v["max_msgs"].as_i64(), v["max_bytes"].as_i64()), (Some(-1), Some(100)));
        assert_eq!(v["retention"], "workqueue");
        let c: Value =
            serde_json::from_slice(&consumer_create_body("S", "c", Some("js0.1"), Some("dlv.c"), 5, 100)).unwrap();
        assert_eq!(c["config"]["filter_subject"], "js0.1");
        assert_eq!(c["config"]["deliver_subject"], "dlv.c");
        assert_eq!(consumer_create_subject("S", "c", Some("js0.1")), "$JS.API.CONSUMER.CREATE.S.c.js0.1");
        assert_eq!(next_body(10, 5), br#"{"batch":10,"expires":5}"#);
    }
}
