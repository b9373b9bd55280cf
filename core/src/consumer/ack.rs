//! Ack reply subjects and ack bodies (nats-server `consumer.go`: `ackReplyInfo`,
//! `processAck`, `processNak`).
//!
//! Every delivery carries the reply subject
//! `$JS.ACK.<stream>.<consumer>.<delivery count>.<stream seq>.<consumer seq>.<timestamp ns>.<num pending>`
//! (the v1 form nats-server uses by default); clients parse it for message metadata and
//! publish their ack to it. The v2 form (`$JS.ACK.<domain>.<account hash>.<stream>...`,
//! 11 or more tokens) is parsed too.

use crate::jetstream::parse_go_duration;

/// Prefix of every ack reply subject.
pub const ACK_PREFIX: &str = "$JS.ACK.";
/// Prefix of push flow-control reply subjects (`$JS.FC.<stream>.<consumer>.<id>`).
pub const FC_PREFIX: &str = "$JS.FC.";

/// The metadata in an ack reply subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckReply {
    /// Stream name.
    pub stream: String,
    /// Consumer name.
    pub consumer: String,
    /// How many times this message has been delivered (1 on the first delivery).
    pub delivered: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence of this delivery.
    pub consumer_seq: u64,
    /// The message's store timestamp (ns since the epoch).
    pub ts_ns: i64,
    /// Messages pending for the consumer after this one.
    pub pending: u64,
}

impl AckReply {
    /// The v1 subject.
    pub fn subject(&self) -> String {
        format!(
            "{ACK_PREFIX}{}.{}.{}.{}.{}.{}.{}",
            self.stream, self.consumer, self.delivered, self.stream_seq, self.consumer_seq, self.ts_ns, self.pending
        )
    }

    /// Parse a v1 (9 tokens) or v2 (11 or more tokens) ack subject; `None` otherwise or
    /// when a number does not parse.
    pub fn parse(subject: &str) -> Option<AckReply> {
        let rest = subject.strip_prefix(ACK_PREFIX)?;
        let t: Vec<&str> = rest.split('.').collect();
        // v1: stream, consumer, 5 numbers. v2: domain, account hash, stream, consumer, 5 numbers, extras.
        let base = match t.len() + 2 {
            9 => 0,
            n if n >= 11 => 2,
            _ => return None,
        };
        let num = |i: usize| t[base + i].parse::<u64>().ok();
        Some(AckReply {
            stream: t[base].to_string(),
            consumer: t[base + 1].to_string(),
            delivered: num(2)?,
            stream_seq: num(3)?,
            consumer_seq: num(4)?,
            ts_ns: t[base + 5].parse().ok()?,
            pending: num(6)?,
        })
    }
}

/// What an ack body asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckKind {
    /// Empty, `+ACK` or `+OK`: acknowledged.
    Ack,
    /// `-NAK`, optionally with a redelivery delay in ns (`{"delay":ns}` or a Go duration).
    Nak(Option<i64>),
    /// `+WPI`: still working, restart the ack timer.
    Progress,
    /// `+NXT`: acknowledged, and the rest of the body (possibly empty) is a pull request.
    Next(Vec<u8>),
    /// `+TERM`, optionally with a reason: never redeliver.
    Term(Option<String>),
    /// Anything else: ignored (nats-server ignores it too, but still answers an AckSync).
    Unknown,
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

impl AckKind {
    /// Parse an ack body. A `-NAK` delay that does not parse is a plain NAK (as nats-server,
    /// which logs a warning).
    pub fn parse(body: &[u8]) -> AckKind {
        if body.is_empty() || body == b"+ACK" || body == b"+OK" {
            return AckKind::Ack;
        }
        if let Some(rest) = body.strip_prefix(b"+NXT") {
            return AckKind::Next(rest.to_vec());
        }
        if let Some(rest) = body.strip_prefix(b"-NAK") {
            let arg = trim(rest);
            if arg.is_empty() {
                return AckKind::Nak(None);
            }
            let delay = if arg[0] == b'{' {
                #[derive(serde::Deserialize)]
                struct Opts {
                    #[serde(default)]
                    delay: i64,
                }
                serde_json::from_slice::<Opts>(arg).ok().map(|o| o.delay)
            } else {
                std::str::from_utf8(arg).ok().and_then(parse_go_duration)
            };
            return AckKind::Nak(delay);
        }
        if body == b"+WPI" {
            return AckKind::Progress;
        }
        if let Some(rest) = body.strip_prefix(b"+TERM") {
            let reason = String::from_utf8_lossy(trim(rest)).into_owned();
            return AckKind::Term((!reason.is_empty()).then_some(reason));
        }
        AckKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subject_round_trips() {
        let s = "$JS.ACK.BENCH_RS.bench_rs.1.2.2.1795417721120853891.1";
        let r = AckReply::parse(s).unwrap();
        assert_eq!((r.delivered, r.stream_seq, r.consumer_seq, r.pending), (1, 2, 2, 1));
        assert_eq!(r.ts_ns, 1795417721120853891);
        assert_eq!(r.subject(), s);
        let v2 = AckReply::parse("$JS.ACK._.HASH.S.C.3.4.5.6.7.extra").unwrap();
        assert_eq!((v2.stream.as_str(), v2.consumer.as_str(), v2.delivered, v2.pending), ("S", "C", 3, 7));
        assert!(AckReply::parse("$JS.ACK.S.C.1.2.3.4").is_none());
        assert!(AckReply::parse("$JS.ACK.S.C.1.x.3.4.5").is_none());
        assert!(AckReply::parse("$JS.API.S.C.1.2.3.4.5").is_none());
    }

    #[test]
    fn bodies() {
        assert_eq!(AckKind::parse(b""), AckKind::Ack);
        assert_eq!(AckKind::parse(b"+ACK"), AckKind::Ack);
        assert_eq!(AckKind::parse(b"+OK"), AckKind::Ack);
        assert_eq!(AckKind::parse(b"-NAK"), AckKind::Nak(None));
        assert_eq!(AckKind::parse(b"-NAK {\"delay\":5000}"), AckKind::Nak(Some(5000)));
        assert_eq!(AckKind::parse(b"-NAK 2s"), AckKind::Nak(Some(2_000_000_000)));
        assert_eq!(AckKind::parse(b"-NAK bogus"), AckKind::Nak(None));
        assert_eq!(AckKind::parse(b"+WPI"), AckKind::Progress);
        assert_eq!(AckKind::parse(b"+NXT {\"batch\":2}"), AckKind::Next(b" {\"batch\":2}".to_vec()));
        assert_eq!(AckKind::parse(b"+TERM"), AckKind::Term(None));
        assert_eq!(AckKind::parse(b"+TERM bad data"), AckKind::Term(Some("bad data".into())));
        assert_eq!(AckKind::parse(b"what"), AckKind::Unknown);
    }
}
