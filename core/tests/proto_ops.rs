//! The NATS protocol codec: each op, framing leniency, split feeding, exact errors and exact encodings.

use bytes::{Bytes, BytesMut};
use weir_core::proto::{
    ByteStr, ClientOp, ClientParser, ConnectInfo, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD, LINE_SLACK,
    ParserConfig, ProtoError, ServerInfo, ServerOp, ServerParser, encode_client, encode_server,
};
use weir_core::subject::SubjectError;

/// Parse everything in `input`; the result ends at the first closing error or when more input is needed.
fn parse_all(input: &[u8]) -> Vec<Result<ClientOp, ProtoError>> {
    parse_with(ClientParser::default(), input)
}

fn parse_with(mut p: ClientParser, input: &[u8]) -> Vec<Result<ClientOp, ProtoError>> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match p.parse(&mut buf) {
            Ok(Some(op)) => out.push(Ok(op)),
            Ok(None) => return out,
            Err(e) => {
                let stop = e.closes_connection();
                out.push(Err(e));
                if stop {
                    return out;
                }
            }
        }
    }
}

fn one(input: &[u8]) -> ClientOp {
    let ops = parse_all(input);
    assert_eq!(ops.len(), 1, "{ops:?}");
    ops.into_iter().next().unwrap().unwrap()
}

fn s(x: &'static str) -> ByteStr {
    ByteStr::from_static(x)
}

fn pub_op(subject: &'static str, reply: Option<&'static str>, payload: &'static [u8]) -> ClientOp {
    ClientOp::Pub { subject: s(subject), reply: reply.map(s), payload: Bytes::from_static(payload) }
}

#[test]
fn connect_as_async_nats_sends_it() {
    let line = br#"CONNECT {"verbose":false,"pedantic":false,"jwt":null,"nkey":null,"sig":null,"name":null,"echo":true,"lang":"rust","version":"0.51.0","protocol":1,"tls_required":false,"user":null,"pass":null,"auth_token":null,"headers":true,"no_responders":true}"#;
    let mut input = line.to_vec();
    input.extend_from_slice(b"\r\n");
    let ClientOp::Connect(info) = one(&input) else { panic!("not a CONNECT") };
    assert!(!info.verbose && !info.pedantic && info.echo && info.headers && info.no_responders);
    assert_eq!(info.protocol, 1);
    assert_eq!(info.lang.as_deref(), Some("rust"));
    assert_eq!(info.name, None);
}

#[test]
fn connect_defaults_are_verbose_pedantic_echo() {
    let ClientOp::Connect(info) = one(b"CONNECT {}\r\n") else { panic!() };
    assert_eq!(*info, ConnectInfo::default());
    assert!(info.verbose && info.pedantic && info.echo && !info.headers && info.protocol == 0);
    let ClientOp::Connect(info) = one(b"connect\t{\"verbose\":null,\"unknown\":[1,2]}\n") else { panic!() };
    assert!(info.verbose);
}

#[test]
fn pub_variants() {
    assert_eq!(one(b"PUB foo 5\r\nhello\r\n"), pub_op("foo", None, b"hello"));
    assert_eq!(one(b"PUB foo.bar _INBOX.1 5\r\nhello\r\n"), pub_op("foo.bar", Some("_INBOX.1"), b"hello"));
    assert_eq!(one(b"PUB foo 0\r\n\r\n"), pub_op("foo", None, b""));
    // The payload may contain CRLF and anything else.
    assert_eq!(one(b"PUB foo 9\r\nPING\r\nx\r\n\r\n"), pub_op("foo", None, b"PING\r\nx\r\n"));
    // Publish subjects are not checked for wildcards by the parser (that is pedantic mode's job).
    assert_eq!(one(b"PUB foo.* 1\r\nx\r\n"), pub_op("foo.*", None, b"x"));
}

#[test]
fn hpub_variants() {
    let hdr = b"NATS/1.0\r\nA: B\r\n\r\n";
    let mut input = format!("HPUB foo reply {} {}\r\n", hdr.len(), hdr.len() + 5).into_bytes();
    input.extend_from_slice(hdr);
    input.extend_from_slice(b"hello\r\n");
    assert_eq!(
        one(&input),
        ClientOp::HPub {
            subject: s("foo"),
            reply: Some(s("reply")),
            headers: Bytes::from_static(hdr),
            payload: Bytes::from_static(b"hello")
        }
    );
    let op = one(b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    assert_eq!(
        op,
        ClientOp::HPub {
            subject: s("foo"),
            reply: None,
            headers: Bytes::from_static(b"NATS/1.0\r\n\r\n"),
            payload: Bytes::new()
        }
    );
}

#[test]
fn sub_unsub_ping_pong() {
    assert_eq!(one(b"SUB foo.* 1\r\n"), ClientOp::Sub { subject: s("foo.*"), queue: None, sid: s("1") });
    assert_eq!(
        one(b"SUB foo.> workers 22\r\n"),
        ClientOp::Sub { subject: s("foo.>"), queue: Some(s("workers")), sid: s("22") }
    );
    assert_eq!(one(b"UNSUB 1\r\n"), ClientOp::Unsub { sid: s("1"), max: None });
    assert_eq!(one(b"UNSUB 1 10\r\n"), ClientOp::Unsub { sid: s("1"), max: Some(10) });
    // As in nats-server: zero or unparsable max means "unsubscribe now".
    assert_eq!(one(b"UNSUB 1 0\r\n"), ClientOp::Unsub { sid: s("1"), max: None });
    assert_eq!(one(b"UNSUB 1 x\r\n"), ClientOp::Unsub { sid: s("1"), max: None });
    assert_eq!(one(b"PING\r\n"), ClientOp::Ping);
    assert_eq!(one(b"PONG\r\n"), ClientOp::Pong);
    // PING/PONG ignore trailing arguments, as nats-server does.
    assert_eq!(one(b"PING now\r\n"), ClientOp::Ping);
}

#[test]
fn case_blanks_and_line_endings() {
    assert_eq!(one(b"pub foo 5\r\nhello\r\n"), pub_op("foo", None, b"hello"));
    assert_eq!(one(b"pUb\tfoo\t\t 5 \t\r\nhello\r\n"), pub_op("foo", None, b"hello"));
    assert_eq!(one(b"PUB   foo   bar   5\r\nhello\r\n"), pub_op("foo", Some("bar"), b"hello"));
    assert_eq!(one(b"PUB foo 5\nhello\r\n"), pub_op("foo", None, b"hello"));
    assert_eq!(one(b"Sub\tfoo\tq\t1\r\n"), ClientOp::Sub { subject: s("foo"), queue: Some(s("q")), sid: s("1") });
    assert_eq!(one(b"unsub 1 2\r\n"), ClientOp::Unsub { sid: s("1"), max: Some(2) });
    assert_eq!(one(b"hPuB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n").clone(), one(b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n"));
    assert_eq!(one(b"ping\n"), ClientOp::Ping);
    assert_eq!(one(b"PoNg\r\n"), ClientOp::Pong);
}

const STREAM: &[u8] = b"CONNECT {\"verbose\":false,\"headers\":true}\r\n\
PING\r\n\
SUB foo.* 1\r\n\
SUB bar q 2\r\n\
PUB foo.a 5\r\nhello\r\n\
PUB foo.b reply.x 0\r\n\r\n\
HPUB bar 12 17\r\nNATS/1.0\r\n\r\nworld\r\n\
pub\tfoo.c\t\t3\nabc\r\n\
UNSUB 1 5\r\n\
UNSUB 2\r\n\
PONG\r\n";

#[test]
fn every_split_point_yields_the_same_ops() {
    let expected = parse_all(STREAM);
    assert_eq!(expected.len(), 11);
    assert!(expected.iter().all(Result::is_ok));
    for split in 0..=STREAM.len() {
        let mut p = ClientParser::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in [&STREAM[..split], &STREAM[split..]] {
            buf.extend_from_slice(part);
            while let Some(op) = p.parse(&mut buf).unwrap() {
                got.push(Ok(op));
            }
        }
        assert_eq!(got, expected, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn byte_by_byte_yields_the_same_ops() {
    let expected = parse_all(STREAM);
    let mut p = ClientParser::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in STREAM {
        buf.extend_from_slice(&[b]);
        while let Some(op) = p.parse(&mut buf).unwrap() {
            got.push(Ok(op));
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn payloads_are_zero_copy() {
    let mut buf = BytesMut::from(&b"PUB foo.bar 5\r\nhello\r\n"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(ClientOp::Pub { subject, payload, .. }) = ClientParser::default().parse(&mut buf).unwrap() else {
        panic!()
    };
    assert!(range.contains(&(payload.as_ptr() as usize)), "payload was copied");
    assert!(range.contains(&(subject.as_ptr() as usize)), "subject was copied");
}

/// Malformed input: the error, the exact `-ERR` text nats-server sends (if any) and whether the connection closes.
#[test]
fn malformed_input_table() {
    let long_subject = "a".repeat(DEFAULT_MAX_CONTROL_LINE);
    let long_line = format!("PUB {long_subject} 1\r\nx\r\n");
    let unterminated = format!("SUB {}", "a".repeat(DEFAULT_MAX_CONTROL_LINE + LINE_SLACK));
    let too_big = format!("PUB foo {}\r\n", DEFAULT_MAX_PAYLOAD + 1);
    let hpub_too_big = format!("HPUB foo 10 {}\r\n", DEFAULT_MAX_PAYLOAD + 1);
    let cases: Vec<(&[u8], ProtoError, Option<&str>, bool)> = vec![
        (b"FOO bar\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b" PING\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"PINGX\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"GET / HTTP/1.1", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"PUB\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"SUB\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"MSG foo 1 1\r\nx\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"-ERR\r\n", ProtoError::UnknownOp, Some("Unknown Protocol Operation"), true),
        (b"PUB foo 5\r\nhelloXX", ProtoError::BadPayloadTerminator, Some("Unknown Protocol Operation"), true),
        (b"PUB foo 1\r\nab\r\n", ProtoError::BadPayloadTerminator, Some("Unknown Protocol Operation"), true),
        (
            long_line.as_bytes(),
            ProtoError::MaxControlLineExceeded { max: 4096 },
            Some("maximum control line exceeded"),
            true,
        ),
        (
            unterminated.as_bytes(),
            ProtoError::MaxControlLineExceeded { max: 4096 },
            Some("maximum control line exceeded"),
            true,
        ),
        (
            too_big.as_bytes(),
            ProtoError::MaxPayload { size: 1048577, max: 1048576 },
            Some("Maximum Payload Violation"),
            true,
        ),
        (
            hpub_too_big.as_bytes(),
            ProtoError::MaxPayload { size: 1048577, max: 1048576 },
            Some("Maximum Payload Violation"),
            true,
        ),
        (
            b"SUB foo..bar 1\r\n",
            ProtoError::InvalidSubject(SubjectError::EmptyToken { index: 1 }),
            Some("Invalid Subject"),
            false,
        ),
        (
            b"SUB foo.>.bar 1\r\n",
            ProtoError::InvalidSubject(SubjectError::FullWildcardNotLast),
            Some("Invalid Subject"),
            false,
        ),
        (b"SUB \xff 1\r\n", ProtoError::InvalidSubject(SubjectError::NotUtf8), Some("Invalid Subject"), false),
        (b"PUB \xff 1\r\nx\r\n", ProtoError::InvalidPublishSubject, Some("Invalid Publish Subject"), false),
        (b"PUB foo\r\n", ProtoError::BadArgs { op: "PUB" }, None, true),
        (b"PUB a b c 1\r\n", ProtoError::BadArgs { op: "PUB" }, None, true),
        (b"HPUB foo 1\r\n", ProtoError::BadArgs { op: "HPUB" }, None, true),
        (b"SUB foo\r\n", ProtoError::BadArgs { op: "SUB" }, None, true),
        (b"SUB a b c d\r\n", ProtoError::BadArgs { op: "SUB" }, None, true),
        (b"UNSUB\t \r\n", ProtoError::BadArgs { op: "UNSUB" }, None, true),
        (b"UNSUB 1 2 3\r\n", ProtoError::BadArgs { op: "UNSUB" }, None, true),
        (b"PUB foo x\r\n", ProtoError::BadSize { op: "PUB" }, None, true),
        (b"PUB foo -1\r\n", ProtoError::BadSize { op: "PUB" }, None, true),
        (b"PUB foo 1234567890\r\n", ProtoError::BadSize { op: "PUB" }, None, true),
        (b"HPUB foo x 5\r\n", ProtoError::BadSize { op: "HPUB" }, None, true),
        (b"HPUB foo 10 5\r\n", ProtoError::HeaderSizeExceedsTotal, None, true),
    ];
    for (input, err, text, closes) in cases {
        let ops = parse_all(input);
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        assert_eq!(ops.first(), Some(&Err(err.clone())), "input {shown:?}: {ops:?}");
        assert_eq!(err.err_text(), text, "{shown:?}");
        assert_eq!(err.closes_connection(), closes, "{shown:?}");
        assert_eq!(err.to_server_op(), text.map(|t| ServerOp::Err(t.to_owned())));
    }
    // A client's -ERR and bad INFO JSON close without an -ERR, like bad CONNECT JSON.
    assert_eq!(parse_all(b"-ERR 'x'\r\n"), vec![Err(ProtoError::ClientErr("'x'".into()))]);
    assert!(matches!(parse_all(b"INFO nope\r\n")[..], [Err(ProtoError::InvalidInfo(_))]));
    for e in [ProtoError::ClientErr(String::new()), ProtoError::InvalidInfo(String::new())] {
        assert_eq!((e.err_text(), e.closes_connection()), (None, true));
    }
    // CONNECT with bad JSON closes without an -ERR.
    let ops = parse_all(b"CONNECT {nope}\r\n");
    assert!(matches!(&ops[..], [Err(ProtoError::InvalidConnect(_))]), "{ops:?}");
    assert_eq!(ops[0].as_ref().unwrap_err().err_text(), None);
    assert!(ops[0].as_ref().unwrap_err().closes_connection());
}

/// nats-server's client parser accepts the server-side `INFO` and `+OK` from a client and ignores them.
#[test]
fn info_and_ok_from_a_client_are_skipped() {
    assert_eq!(
        parse_all(b"INFO {\"server_id\":\"x\"}\r\n+OK\r\nPING\r\n+ok\r\ninfo\t{}\r\n"),
        vec![Ok(ClientOp::Ping)]
    );
}

#[test]
fn errors_are_reported_before_the_payload_arrives() {
    let mut p = ClientParser::default();
    let mut buf = BytesMut::from(&b"PUB foo 2000000\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ProtoError::MaxPayload { size: 2_000_000, max: DEFAULT_MAX_PAYLOAD }));
    assert!(p.is_failed());
    buf.extend_from_slice(b"PING\r\n");
    // A failed parser repeats its error.
    assert_eq!(p.parse(&mut buf), Err(ProtoError::MaxPayload { size: 2_000_000, max: DEFAULT_MAX_PAYLOAD }));
}

#[test]
fn non_closing_errors_keep_the_stream_in_sync() {
    let ops = parse_all(b"SUB foo..bar 1\r\nPUB \xfe 3\r\nabc\r\nPING\r\nSUB ok 2\r\n");
    assert_eq!(
        ops,
        vec![
            Err(ProtoError::InvalidSubject(SubjectError::EmptyToken { index: 1 })),
            Err(ProtoError::InvalidPublishSubject),
            Ok(ClientOp::Ping),
            Ok(ClientOp::Sub { subject: s("ok"), queue: None, sid: s("2") }),
        ]
    );
}

#[test]
fn configured_limits() {
    let cfg = ParserConfig { max_control_line: 16, max_payload: 4 };
    let ops = parse_with(ClientParser::new(cfg), b"PUB foo 4\r\nabcd\r\nPUB foo 5\r\n");
    assert_eq!(ops, vec![Ok(pub_op("foo", None, b"abcd")), Err(ProtoError::MaxPayload { size: 5, max: 4 })]);
    // The 16-byte limit applies to the arguments, as in nats-server; blanks after the op name do not count.
    let ok = format!("SUB {} 1\r\n", "a".repeat(14));
    assert!(matches!(parse_with(ClientParser::new(cfg), ok.as_bytes())[..], [Ok(ClientOp::Sub { .. })]));
    let ok = format!("SUB     {} 1\r\n", "a".repeat(14));
    assert!(matches!(parse_with(ClientParser::new(cfg), ok.as_bytes())[..], [Ok(ClientOp::Sub { .. })]));
    let bad = format!("SUB {} 1\r\n", "a".repeat(15));
    assert_eq!(
        parse_with(ClientParser::new(cfg), bad.as_bytes()),
        vec![Err(ProtoError::MaxControlLineExceeded { max: 16 })]
    );
    let mut p = ClientParser::new(cfg);
    p.set_max_payload(5);
    assert_eq!(p.config().max_payload, 5);
    assert_eq!(parse_with(p, b"PUB foo 5\r\nabcde\r\n"), vec![Ok(pub_op("foo", None, b"abcde"))]);
}

#[test]
fn needs_more_holds_a_bounded_buffer() {
    let cfg = ParserConfig::default();
    let mut p = ClientParser::default();
    let mut buf = BytesMut::from(&b"PUB foo "[..]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    buf.extend_from_slice(&vec![b' '; DEFAULT_MAX_CONTROL_LINE + LINE_SLACK - buf.len()]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(buf.len() <= cfg.max_buffered());
    buf.extend_from_slice(b" ");
    assert_eq!(p.parse(&mut buf), Err(ProtoError::MaxControlLineExceeded { max: DEFAULT_MAX_CONTROL_LINE }));
}

fn server_ops(input: &[u8]) -> Vec<Result<ServerOp, ProtoError>> {
    let mut p = ServerParser::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match p.parse(&mut buf) {
            Ok(Some(op)) => out.push(Ok(op)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

#[test]
fn server_parser_ops() {
    let info = br#"INFO {"server_id":"NABC","server_name":"n1","version":"2.15.1","proto":1,"go":"go1.24","host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":6,"client_ip":"127.0.0.1","xkey":"ignored"} "#;
    let mut input = info.to_vec();
    input.extend_from_slice(b"\r\nMSG foo 1 5\r\nhello\r\nMSG foo 1 _INBOX.x 0\r\n\r\n");
    input.extend_from_slice(
        b"HMSG foo 9 rep 12 14\r\nNATS/1.0\r\n\r\nhi\r\n+OK\r\n-ERR 'Unknown Protocol Operation'\r\nPING\r\npong\r\n",
    );
    let ops = server_ops(&input);
    let Ok(ServerOp::Info(i)) = &ops[0] else { panic!("{ops:?}") };
    assert_eq!((i.server_id.as_str(), i.port, i.max_payload, i.client_id), ("NABC", 4222, 1048576, 6));
    assert!(i.headers && i.jetstream);
    assert_eq!(
        ops[1..],
        [
            Ok(ServerOp::Msg { subject: s("foo"), sid: s("1"), reply: None, payload: Bytes::from_static(b"hello") }),
            Ok(ServerOp::Msg { subject: s("foo"), sid: s("1"), reply: Some(s("_INBOX.x")), payload: Bytes::new() }),
            Ok(ServerOp::HMsg {
                subject: s("foo"),
                sid: s("9"),
                reply: Some(s("rep")),
                headers: Bytes::from_static(b"NATS/1.0\r\n\r\n"),
                payload: Bytes::from_static(b"hi")
            }),
            Ok(ServerOp::Ok),
            Ok(ServerOp::Err("Unknown Protocol Operation".to_owned())),
            Ok(ServerOp::Ping),
            Ok(ServerOp::Pong),
        ]
    );
    assert_eq!(server_ops(b"MSG foo 5\r\n"), vec![Err(ProtoError::BadArgs { op: "MSG" })]);
    assert_eq!(server_ops(b"PUB foo 5\r\n"), vec![Err(ProtoError::UnknownOp)]);
    assert!(matches!(server_ops(b"INFO nope\r\n")[..], [Err(ProtoError::InvalidInfo(_))]));
}

fn enc_client(op: &ClientOp) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_client(op, &mut b);
    b.to_vec()
}

fn enc_server(op: &ServerOp) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_server(op, &mut b);
    b.to_vec()
}

#[test]
fn exact_encodings() {
    let info = ServerInfo {
        server_id: "ID".into(),
        server_name: "n".into(),
        version: "0.1.0".into(),
        proto: 1,
        headers: true,
        max_payload: 1048576,
        ..Default::default()
    };
    assert_eq!(
        enc_server(&ServerOp::Info(Box::new(info))),
        br#"INFO {"server_id":"ID","server_name":"n","version":"0.1.0","proto":1,"go":"","host":"","port":0,"headers":true,"max_payload":1048576} "#
            .iter()
            .chain(b"\r\n")
            .copied()
            .collect::<Vec<u8>>()
    );
    assert_eq!(enc_server(&ServerOp::Err("Invalid Subject".into())), b"-ERR 'Invalid Subject'\r\n");
    assert_eq!(enc_server(&ServerOp::Ok), b"+OK\r\n");
    assert_eq!(enc_server(&ServerOp::Ping), b"PING\r\n");
    assert_eq!(enc_server(&ServerOp::Pong), b"PONG\r\n");
    assert_eq!(
        enc_server(&ServerOp::Msg {
            subject: s("a.b"),
            sid: s("7"),
            reply: Some(s("r")),
            payload: Bytes::from_static(b"xy")
        }),
        b"MSG a.b 7 r 2\r\nxy\r\n"
    );
    assert_eq!(
        enc_server(&ServerOp::HMsg {
            subject: s("a"),
            sid: s("1"),
            reply: None,
            headers: Bytes::from_static(b"NATS/1.0\r\n\r\n"),
            payload: Bytes::from_static(b"xy")
        }),
        b"HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nxy\r\n"
    );
    assert_eq!(enc_client(&pub_op("a", Some("r"), b"xyz")), b"PUB a r 3\r\nxyz\r\n");
    assert_eq!(enc_client(&ClientOp::Sub { subject: s("a.*"), queue: Some(s("q")), sid: s("1") }), b"SUB a.* q 1\r\n");
    assert_eq!(enc_client(&ClientOp::Unsub { sid: s("1"), max: Some(5) }), b"UNSUB 1 5\r\n");
    assert_eq!(enc_client(&ClientOp::Unsub { sid: s("1"), max: None }), b"UNSUB 1\r\n");
    assert_eq!(enc_client(&ClientOp::Ping), b"PING\r\n");
    assert_eq!(
        enc_client(&ClientOp::HPub {
            subject: s("a"),
            reply: None,
            headers: Bytes::from_static(b"NATS/1.0\r\n\r\n"),
            payload: Bytes::new()
        }),
        b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    );
    let connect = ConnectInfo { verbose: false, pedantic: false, headers: true, protocol: 1, ..Default::default() };
    assert_eq!(
        enc_client(&ClientOp::Connect(Box::new(connect))),
        br#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"protocol":1,"echo":true,"headers":true,"no_responders":false}"#
            .iter()
            .chain(b"\r\n")
            .copied()
            .collect::<Vec<u8>>()
    );
}
