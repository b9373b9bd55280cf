//! A stream's publish-side features read from its config: the stream `subject_transform`
//! (the subject a message is stored under) and `republish` (a copy of every stored
//! message matching `src`, sent on `dest` with nats-server's headers).

use super::host::plain;
use crate::proto::ByteStr;
use crate::server::nats::broker::Message;
use crate::stream::StreamConfig;
use crate::stream::transform::SubjectTransform;
use bytes::Bytes;

/// The parsed `subject_transform` and `republish` of one stream (refreshed on update).
#[derive(Clone, Debug, Default)]
pub(super) struct Features {
    /// Applied to a published subject before it is stored.
    pub transform: Option<SubjectTransform>,
    /// The republish mapping and `headers_only`.
    pub republish: Option<(SubjectTransform, bool)>,
}

impl Features {
    /// The features of a checked config.
    pub fn of(cfg: &StreamConfig) -> Self {
        Features { transform: cfg.stream_transform(), republish: cfg.republish_spec() }
    }

    /// The subject a message published on `subject` is stored under.
    pub fn stored_subject(&self, subject: &str) -> String {
        self.transform.as_ref().and_then(|t| t.apply(subject)).unwrap_or_else(|| subject.to_string())
    }

    /// The republished copy of a message stored at `seq` on `subject` (`None` when the
    /// subject does not match `src`): on the mapped `dest`, with the message's own
    /// headers followed by `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`,
    /// `Nats-Time-Stamp`, `Nats-Last-Sequence` (`last_seq`: the subject's previous
    /// sequence, 0 for its first message, as nats-server 2.15.1 sends it)
    /// and, with `headers_only`, `Nats-Msg-Size` and no payload, as nats-server's
    /// `processJetStreamMsg` sends it.
    #[allow(clippy::too_many_arguments)]
    pub fn republished(
        &self,
        stream: &str,
        seq: u64,
        last_seq: u64,
        ts_ns: i64,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> Option<Message> {
        let (t, headers_only) = self.republish.as_ref()?;
        let dest = t.apply(subject)?;
        let mut h = match headers.strip_suffix(b"\r\n") {
            Some(head) if headers.starts_with(b"NATS/1.0") => head.to_vec(),
            _ => b"NATS/1.0\r\n".to_vec(),
        };
        let ts = crate::jetstream::format_rfc3339_nano(ts_ns);
        h.extend_from_slice(
            format!(
                "Nats-Stream: {stream}\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\nNats-Time-Stamp: {ts}\r\nNats-Last-Sequence: {last_seq}\r\n"
            )
            .as_bytes(),
        );
        if *headers_only {
            h.extend_from_slice(format!("Nats-Msg-Size: {}\r\n", payload.len()).as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        let mut m = plain(&dest, if *headers_only { Vec::new() } else { payload.to_vec() });
        m.headers = Some(Bytes::from(h));
        m.subject = ByteStr::from(dest.as_str());
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn republished_headers() {
        let cfg: StreamConfig = serde_json::from_value(serde_json::json!({
            "name":"S","subjects":["a.>"],"republish":{"src":"a.*","dest":"r.$1","headers_only":true}
        }))
        .unwrap();
        let f = Features::of(&cfg.check_create(false).unwrap());
        assert!(f.republished("S", 1, 0, 0, "a.b.c", b"", b"x").is_none());
        let m = f.republished("S", 5, 4, 0, "a.b", b"NATS/1.0\r\nK: v\r\n\r\n", b"hello").unwrap();
        assert_eq!(m.subject.as_str(), "r.b");
        assert!(m.payload.is_empty());
        let h = String::from_utf8(m.headers.unwrap().to_vec()).unwrap();
        assert!(
            h.starts_with("NATS/1.0\r\nK: v\r\nNats-Stream: S\r\nNats-Subject: a.b\r\nNats-Sequence: 5\r\n"),
            "{h}"
        );
        assert!(h.contains("Nats-Last-Sequence: 4\r\nNats-Msg-Size: 5\r\n\r\n"), "{h}");
        assert_eq!(f.stored_subject("a.b"), "a.b");
    }
}
