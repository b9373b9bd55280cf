//! Property tests for the protocol codec: encode/parse round trips, arbitrary input, the fuzz entry point.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use weir_core::proto::{
    ByteStr, ClientOp, ClientParser, ConnectInfo, ParserConfig, ServerInfo, ServerOp, ServerParser, encode_client,
    encode_server, fuzz_client_parser,
};

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_$-]{1,8}",
        Just("*".to_owned()),
        Just("foo*".to_owned()),
        "[\\x21-\\x2d\\x2f-\\x7e]{1,4}", // printable, no '.'
        "[äöü€]{1,3}",
    ]
}

fn literal_subject() -> impl Strategy<Value = ByteStr> {
    prop::collection::vec(token().prop_filter("literal", |t| t != "*" && t != ">"), 1..5)
        .prop_map(|t| ByteStr::from(t.join(".")))
}

fn pattern() -> impl Strategy<Value = ByteStr> {
    (prop::collection::vec(token().prop_filter("not >", |t| t != ">"), 1..5), any::<bool>()).prop_map(
        |(mut t, full)| {
            if full {
                t.push(">".to_owned());
            }
            ByteStr::from(t.join("."))
        },
    )
}

fn word() -> impl Strategy<Value = ByteStr> {
    "[\\x21-\\x7e]{1,10}".prop_map(ByteStr::from)
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        Just(Bytes::from_static(b"PING\r\nPUB x 1\r\n\r\n")),
    ]
}

fn headers() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(("[A-Za-z-]{1,8}", "[ -~]{0,10}"), 0..3).prop_map(|entries| {
        let mut h = String::from("NATS/1.0\r\n");
        for (k, v) in entries {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        Bytes::from(h)
    })
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[ -~äö]{0,12}")
}

fn connect_info() -> impl Strategy<Value = ConnectInfo> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (opt_string(), opt_string(), opt_string(), opt_string()),
        (opt_string(), opt_string(), opt_string(), opt_string(), opt_string()),
        0i64..3,
    )
        .prop_map(|(b, s1, s2, protocol)| ConnectInfo {
            verbose: b.0,
            pedantic: b.1,
            tls_required: b.2,
            echo: b.3,
            headers: b.4,
            no_responders: b.5,
            auth_token: s1.0,
            user: s1.1,
            pass: s1.2,
            name: s1.3,
            lang: s2.0,
            version: s2.1,
            sig: s2.2,
            jwt: s2.3,
            nkey: s2.4,
            protocol,
        })
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        connect_info().prop_map(|c| ClientOp::Connect(Box::new(c))),
        (literal_subject(), prop::option::of(literal_subject()), payload())
            .prop_map(|(subject, reply, payload)| ClientOp::Pub { subject, reply, payload }),
        (literal_subject(), prop::option::of(literal_subject()), headers(), payload())
            .prop_map(|(subject, reply, headers, payload)| ClientOp::HPub { subject, reply, headers, payload }),
        (pattern(), prop::option::of(word()), word()).prop_map(|(subject, queue, sid)| ClientOp::Sub {
            subject,
            queue,
            sid
        }),
        (word(), prop::option::of(1u64..1_000_000_000)).prop_map(|(sid, max)| ClientOp::Unsub { sid, max }),
        Just(ClientOp::Ping),
        Just(ClientOp::Pong),
    ]
}

fn server_info() -> impl Strategy<Value = ServerInfo> {
    (
        "[a-zA-Z0-9]{0,12}",
        "[ -~]{0,12}",
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        0i64..10_000_000,
        any::<u64>(),
        prop::collection::vec("[a-z0-9.:]{1,12}", 0..3),
    )
        .prop_map(|(id, name, port, headers, jetstream, max_payload, client_id, connect_urls)| ServerInfo {
            server_id: id,
            server_name: name,
            version: "0.1.0".into(),
            proto: 1,
            port,
            headers,
            jetstream,
            max_payload,
            client_id,
            connect_urls,
            ..Default::default()
        })
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        server_info().prop_map(|i| ServerOp::Info(Box::new(i))),
        (literal_subject(), word(), prop::option::of(literal_subject()), payload())
            .prop_map(|(subject, sid, reply, payload)| ServerOp::Msg { subject, sid, reply, payload }),
        (literal_subject(), word(), prop::option::of(literal_subject()), headers(), payload()).prop_map(
            |(subject, sid, reply, headers, payload)| ServerOp::HMsg { subject, sid, reply, headers, payload }
        ),
        Just(ServerOp::Ping),
        Just(ServerOp::Pong),
        Just(ServerOp::Ok),
        "[ -&(-~]{0,30}".prop_map(ServerOp::Err),
    ]
}

/// Feed `stream` in pieces cut at `cuts` (positions taken modulo the length) and collect the ops.
fn feed_client(stream: &[u8], cuts: &[usize]) -> Vec<ClientOp> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    let mut p = ClientParser::new(ParserConfig { max_control_line: 64 * 1024, max_payload: 1024 * 1024 });
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    let mut at = 0;
    for cut in points {
        buf.extend_from_slice(&stream[at..cut]);
        at = cut;
        while let Some(op) = p.parse(&mut buf).expect("valid stream") {
            ops.push(op);
        }
    }
    assert!(buf.is_empty());
    ops
}

/// A protocol-shaped stream for the fuzz entry point: valid ops, sometimes damaged.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop::collection::vec((client_op(), prop::option::of((any::<prop::sample::Index>(), any::<u8>()))), 0..8),
    )
        .prop_map(|(seed, ops)| {
            let mut out = vec![seed];
            for (op, damage) in ops {
                let mut b = BytesMut::new();
                encode_client(&op, &mut b);
                let mut bytes = b.to_vec();
                if let Some((at, byte)) = damage {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                out.extend_from_slice(&bytes);
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn client_ops_round_trip(ops in prop::collection::vec(client_op(), 1..10), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut buf = BytesMut::new();
        for op in &ops {
            encode_client(op, &mut buf);
        }
        let parsed = feed_client(&buf, &cuts);
        prop_assert_eq!(parsed, ops);
    }

    #[test]
    fn server_ops_round_trip(ops in prop::collection::vec(server_op(), 1..10)) {
        let mut buf = BytesMut::new();
        for op in &ops {
            encode_server(op, &mut buf);
        }
        let mut p = ServerParser::default();
        let mut parsed = Vec::new();
        while let Some(op) = p.parse(&mut buf).expect("valid stream") {
            parsed.push(op);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(parsed, ops);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(data in prop::collection::vec(any::<u8>(), 0..600)) {
        // Checks no panic, progress on every op or error, bounded buffering while needing more,
        // and that one-piece and chunked feeding agree.
        fuzz_client_parser(&data);
    }

    #[test]
    fn damaged_protocol_streams(data in protocolish()) {
        fuzz_client_parser(&data);
    }

    #[test]
    fn server_parser_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let cfg = ParserConfig { max_control_line: 32, max_payload: 64 };
        let mut p = ServerParser::new(cfg);
        let mut buf = BytesMut::new();
        for chunk in data.chunks(7) {
            buf.extend_from_slice(chunk);
            loop {
                let before = buf.len();
                match p.parse(&mut buf) {
                    Ok(Some(_)) => prop_assert!(buf.len() < before),
                    Ok(None) => {
                        prop_assert!(buf.len() <= cfg.max_buffered());
                        break;
                    }
                    Err(e) if e.closes_connection() => return Ok(()),
                    Err(_) => prop_assert!(buf.len() < before),
                }
            }
        }
    }
}

#[test]
fn fuzz_entry_point_corpus() {
    let corpus: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x10PUB foo 5\r\nhello\r\n",
        b"\xffPUB foo 5\r\nhello\r\nSUB a.* q 1\r\nUNSUB 1 2\r\nPING\r\n",
        b"\x00PUB foo 1\r\nx\r\n",
        b"\x37HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nCONNECT {}\r\n",
        b"\x01SUB foo..bar 1\r\nSUB ok 2\r\nPUB \xff 1\r\nx\r\nPONG\r\n",
        b"\x05PUB                                                                                     ",
        b"\x05CONNECT {\"verbose\":fal",
    ];
    for data in corpus {
        fuzz_client_parser(data);
    }
}
