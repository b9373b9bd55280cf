//! `NATS/1.0` header blocks and the no-responders message.

use bytes::BytesMut;
use proptest::prelude::*;
use weir_core::proto::{
    ByteStr, HeaderError, Headers, NATS_SUBJECT, STATUS_NO_RESPONDERS, ServerOp, ServerParser, encode_server,
    no_responders, no_responders_msg,
};

#[test]
fn parse_plain_block() {
    let h = Headers::parse(b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX: 1\r\nX: 2\r\nx: lower\r\n\r\n").unwrap();
    assert_eq!(h.status(), None);
    assert_eq!(h.get("Nats-Msg-Id"), Some("abc"));
    // Lookups are exact and case-sensitive.
    assert_eq!(h.get("nats-msg-id"), None);
    assert_eq!(h.get("X"), Some("1"));
    assert_eq!(h.get_all("X").collect::<Vec<_>>(), vec!["1", "2"]);
    assert_eq!(h.get("x"), Some("lower"));
    assert_eq!(h.iter().collect::<Vec<_>>(), vec![("Nats-Msg-Id", "abc"), ("X", "1"), ("X", "2"), ("x", "lower")]);
    assert_eq!(h.len(), 4);
}

#[test]
fn parse_status_lines() {
    let h = Headers::parse(b"NATS/1.0 503\r\n\r\n").unwrap();
    assert_eq!((h.status(), h.description()), (Some(503), None));
    let h = Headers::parse(b"NATS/1.0 404 No Messages\r\n\r\n").unwrap();
    assert_eq!((h.status(), h.description()), (Some(404), Some("No Messages")));
    let h =
        Headers::parse(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\nNats-Last-Stream: 9\r\n\r\n").unwrap();
    assert_eq!(
        (h.status(), h.description(), h.get("Nats-Last-Stream")),
        (Some(100), Some("Idle Heartbeat"), Some("9"))
    );
    let h = Headers::parse(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n").unwrap();
    assert_eq!(h.description(), Some("Request Timeout"));
}

#[test]
fn parse_leniency() {
    // Values are trimmed; a value may contain ':'; a missing final blank line at the end is tolerated;
    // bare LF line ends are tolerated.
    let h = Headers::parse(b"NATS/1.0\r\nA:  x:y \t\r\nB:\r\n").unwrap();
    assert_eq!(h.get("A"), Some("x:y"));
    assert_eq!(h.get("B"), Some(""));
    let h = Headers::parse(b"NATS/1.0\nA: 1\n\n").unwrap();
    assert_eq!(h.get("A"), Some("1"));
}

#[test]
fn parse_errors() {
    let cases: &[(&[u8], HeaderError)] = &[
        (b"", HeaderError::MissingVersion),
        (b"HTTP/1.1 200\r\n\r\n", HeaderError::MissingVersion),
        (b"NATS/1.1\r\n\r\n", HeaderError::MissingVersion),
        (b"NATS/1.0x\r\n\r\n", HeaderError::MissingVersion),
        (b"NATS/1.0 5\r\n\r\n", HeaderError::BadStatus),
        (b"NATS/1.0 abc\r\n\r\n", HeaderError::BadStatus),
        (b"NATS/1.0 5030\r\n\r\n", HeaderError::BadStatus),
        (b"NATS/1.0\r\nnocolon\r\n\r\n", HeaderError::BadLine { line: 1 }),
        (b"NATS/1.0\r\nA: 1\r\n folded\r\n\r\n", HeaderError::BadLine { line: 2 }),
        (b"NATS/1.0\r\nA: 1", HeaderError::BadLine { line: 1 }),
        (b"NATS/1.0\r\nBad Name: 1\r\n\r\n", HeaderError::InvalidName),
        (b"NATS/1.0\r\n: 1\r\n\r\n", HeaderError::InvalidName),
        (b"NATS/1.0\r\n\r\ntrailing", HeaderError::TrailingData),
        (b"NATS/1.0\r\nA: \xff\r\n\r\n", HeaderError::NotUtf8),
    ];
    for (input, err) in cases {
        assert_eq!(Headers::parse(input).as_ref(), Err(err), "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn build_and_encode() {
    let mut h = Headers::new();
    assert_eq!(&h.to_bytes()[..], b"NATS/1.0\r\n\r\n");
    h.append("Nats-Msg-Id", "1").unwrap();
    h.append("X", "a").unwrap();
    h.append("X", "b").unwrap();
    assert_eq!(&h.to_bytes()[..], b"NATS/1.0\r\nNats-Msg-Id: 1\r\nX: a\r\nX: b\r\n\r\n");
    h.insert("X", "c").unwrap();
    assert_eq!(h.get_all("X").collect::<Vec<_>>(), vec!["c"]);
    h.insert("Nats-Msg-Id", "2").unwrap();
    assert_eq!(h.iter().collect::<Vec<_>>(), vec![("Nats-Msg-Id", "2"), ("X", "c")]);
    assert_eq!(h.remove("X"), 1);
    assert_eq!(h.remove("X"), 0);
    h.set_status(409, Some("Consumer Deleted")).unwrap();
    let bytes = h.to_bytes();
    assert_eq!(&bytes[..], b"NATS/1.0 409 Consumer Deleted\r\nNats-Msg-Id: 2\r\n\r\n");
    assert_eq!(h.encoded_len(), bytes.len());
    assert_eq!(Headers::parse(&bytes), Ok(h));
    assert_eq!(Headers::new().append("a b", "x"), Err(HeaderError::InvalidName));
    assert_eq!(Headers::new().append("a:b", "x"), Err(HeaderError::InvalidName));
    assert_eq!(Headers::new().append("a", "x\r\ny: z"), Err(HeaderError::InvalidValue));
    assert_eq!(Headers::with_status(42, None), Err(HeaderError::BadStatus));
}

#[test]
fn no_responders_message_matches_nats_server() {
    let h = no_responders("orders.new");
    assert_eq!(h.status(), Some(STATUS_NO_RESPONDERS));
    assert_eq!(h.get(NATS_SUBJECT), Some("orders.new"));
    let block = h.to_bytes();
    assert_eq!(&block[..], b"NATS/1.0 503\r\nNats-Subject: orders.new\r\n\r\n");
    assert_eq!(block.len(), 32 + "orders.new".len());
    let op = no_responders_msg(ByteStr::from_static("_INBOX.abc.1"), ByteStr::from_static("3"), "orders.new");
    let mut buf = BytesMut::new();
    encode_server(&op, &mut buf);
    assert_eq!(&buf[..], b"HMSG _INBOX.abc.1 3 42 42\r\nNATS/1.0 503\r\nNats-Subject: orders.new\r\n\r\n\r\n");
    let parsed = ServerParser::default().parse(&mut buf).unwrap().unwrap();
    assert_eq!(parsed, op);
    let ServerOp::HMsg { headers, .. } = parsed else { panic!() };
    assert_eq!(Headers::parse(&headers).unwrap().status(), Some(503));
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,12}"
}

fn value() -> impl Strategy<Value = String> {
    // Values are trimmed on parse, so generate them without surrounding blanks.
    prop_oneof!["", "[!-~]([ -~]{0,20}[!-~])?"]
}

proptest! {
    #[test]
    fn encode_parse_round_trip(
        status in prop::option::of((100u16..1000, prop::option::of("[A-Za-z][A-Za-z ]{0,15}[A-Za-z]"))),
        entries in prop::collection::vec((name(), value()), 0..8),
    ) {
        let mut h = Headers::new();
        if let Some((code, desc)) = &status {
            h.set_status(*code, desc.as_deref()).unwrap();
        }
        for (n, v) in &entries {
            h.append(n, v).unwrap();
        }
        let bytes = h.to_bytes();
        prop_assert_eq!(bytes.len(), h.encoded_len());
        prop_assert_eq!(Headers::parse(&bytes), Ok(h));
    }

    #[test]
    fn parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Headers::parse(&data);
        let mut with_prefix = b"NATS/1.0".to_vec();
        with_prefix.extend_from_slice(&data);
        let _ = Headers::parse(&with_prefix);
    }
}
