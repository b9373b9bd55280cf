//! Shared fixtures and proptest strategies.

use proptest::prelude::*;
use weir_traces::{AckKind, Event, EventKind, HARNESS, JsEvent, NodeNo, Role, Trace, TraceHeader};

/// Index of the variant in declaration order. The exhaustive match makes adding
/// a variant a compile error here until the strategies and fixtures cover it.
pub fn variant_index(kind: &EventKind) -> usize {
    match kind {
        EventKind::Note { .. } => 0,
        EventKind::Fault { .. } => 1,
        EventKind::NodeStart { .. } => 2,
        EventKind::NodeCrash => 3,
        EventKind::ClientInvoke { .. } => 4,
        EventKind::ClientOk { .. } => 5,
        EventKind::ClientFail { .. } => 6,
        EventKind::ClientUnknown { .. } => 7,
        EventKind::RaftRole { .. } => 8,
        EventKind::RaftCommit { .. } => 9,
        EventKind::Applied { .. } => 10,
        EventKind::SnapshotRestored { .. } => 11,
        EventKind::Ledger { .. } => 12,
        EventKind::Verdict { .. } => 13,
        EventKind::StoreRecovered { .. } => 14,
        EventKind::StoreDelete { .. } => 15,
        EventKind::Publish { .. } => 16,
        EventKind::Deliver { .. } => 17,
        EventKind::Js(_) => 18,
    }
}

/// One value of every variant, in declaration order.
pub fn one_of_each() -> Vec<EventKind> {
    vec![
        EventKind::Note { text: "phase: steady".into() },
        EventKind::Fault { desc: "partition {n1} | {n2,n3}".into() },
        EventKind::NodeStart { incarnation: 1 },
        EventKind::NodeCrash,
        EventKind::ClientInvoke { client: 7, value: 1001, target: 2 },
        EventKind::ClientOk { client: 7, value: 1001, index: 12 },
        EventKind::ClientFail { client: 8, value: 1002, reason: "not leader".into() },
        EventKind::ClientUnknown { client: 9, value: 1003, reason: "timeout".into() },
        EventKind::RaftRole { term: 3, role: Role::Leader },
        EventKind::RaftCommit { commit: 12 },
        EventKind::Applied { index: 12, term: 3, data_hash: 0x0123_4567_89ab_cdef },
        EventKind::SnapshotRestored { index: 10, term: 2, state_hash: 0xfeed_f00d },
        EventKind::Ledger { account: "raft-log".into(), current: 4096, peak: 8192, limit: 65536 },
        EventKind::Verdict { pass: true, detail: "linearizable; 3 ok, 1 fail, 1 unknown".into() },
        EventKind::StoreRecovered {
            lost: vec![(5, 9)],
            damaged: 1,
            unreadable_other: false,
            truncated_bytes: 48,
            first_seq: 1,
            last_seq: 20,
        },
        EventKind::StoreDelete { client: 2, seq: 14, done: true },
        EventKind::Publish { client: 2, value: 0x3_0000_0001 },
        EventKind::Deliver { client: 5, value: 0x3_0000_0001, intact: true },
        EventKind::Js(JsEvent::PubAck { client: 1, value: 0x2_0000_0003, seq: 7, duplicate: false }),
    ]
}

/// A small hand-built trace covering every event kind (pinned by a snapshot).
pub fn canonical_trace() -> Trace {
    let header = TraceHeader {
        format_version: weir_traces::FORMAT_VERSION,
        weir_version: "0.0.0-test".into(),
        scenario: "canonical".into(),
        seed: 42,
        bugs: vec!["skip-fsync".into()],
        overrides: vec![("nodes".into(), "3".into()), ("faults".into(), "none".into())],
        config: "nodes=3 election=150..300ms heartbeat=50ms".into(),
        schedule: Some("{\"events\":[]}".into()),
        fault_points: vec!["disk.sync.fail".into(), "raft.send.drop".into()],
        fault_ppm: 1_000,
    };
    let nodes: [NodeNo; 19] =
        [HARNESS, HARNESS, 1, 3, HARNESS, HARNESS, HARNESS, HARNESS, 2, 2, 1, 3, 2, HARNESS, 1, HARNESS, 1, 3, HARNESS];
    let events = one_of_each()
        .into_iter()
        .zip(nodes)
        .enumerate()
        .map(|(i, (kind, node))| Event::new(i as u64 * 250_125 + 7, node, kind))
        .collect();
    Trace::new(header, events)
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Follower), Just(Role::PreCandidate), Just(Role::Candidate), Just(Role::Leader)]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,16}", "[a-z ]{0,8}", Just(String::new()), Just("line\nbreak \"quoted\" <&>".to_owned())]
}

/// Every [`EventKind`] variant, with arbitrary fields.
pub fn arb_event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        arb_text().prop_map(|text| EventKind::Note { text }),
        arb_text().prop_map(|desc| EventKind::Fault { desc }),
        any::<u32>().prop_map(|incarnation| EventKind::NodeStart { incarnation }),
        Just(EventKind::NodeCrash),
        (any::<u32>(), any::<u64>(), any::<NodeNo>()).prop_map(|(client, value, target)| EventKind::ClientInvoke {
            client,
            value,
            target
        }),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(client, value, index)| EventKind::ClientOk {
            client,
            value,
            index
        }),
        (any::<u32>(), any::<u64>(), arb_text()).prop_map(|(client, value, reason)| EventKind::ClientFail {
            client,
            value,
            reason
        }),
        (any::<u32>(), any::<u64>(), arb_text()).prop_map(|(client, value, reason)| EventKind::ClientUnknown {
            client,
            value,
            reason
        }),
        (any::<u64>(), arb_role()).prop_map(|(term, role)| EventKind::RaftRole { term, role }),
        any::<u64>().prop_map(|commit| EventKind::RaftCommit { commit }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(index, term, data_hash)| EventKind::Applied {
            index,
            term,
            data_hash
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(index, term, state_hash)| EventKind::SnapshotRestored {
            index,
            term,
            state_hash
        }),
        (arb_text(), any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(account, current, peak, limit)| EventKind::Ledger { account, current, peak, limit }),
        (any::<bool>(), arb_text()).prop_map(|(pass, detail)| EventKind::Verdict { pass, detail }),
        (prop::collection::vec((any::<u64>(), any::<u64>()), 0..3), any::<u64>(), any::<bool>(), any::<u64>())
            .prop_map(|(lost, damaged, unreadable_other, truncated_bytes)| EventKind::StoreRecovered {
                lost,
                damaged,
                unreadable_other,
                truncated_bytes,
                first_seq: damaged / 2,
                last_seq: damaged,
            }),
        (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(client, seq, done)| EventKind::StoreDelete {
            client,
            seq,
            done
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(client, value)| EventKind::Publish { client, value }),
        (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(client, value, intact)| EventKind::Deliver {
            client,
            value,
            intact
        }),
        arb_js().prop_map(EventKind::Js),
    ]
}

/// Every [`JsEvent`] variant, with arbitrary fields.
fn arb_js() -> impl Strategy<Value = JsEvent> {
    let kind = prop_oneof![Just(AckKind::Ack), Just(AckKind::Nak), Just(AckKind::Term)];
    prop_oneof![
        (any::<u32>(), any::<u64>(), arb_text(), any::<bool>())
            .prop_map(|(client, value, stream, msg_id)| JsEvent::Publish { client, value, stream, msg_id }),
        (any::<u32>(), any::<u64>(), any::<u64>(), any::<bool>())
            .prop_map(|(client, value, seq, duplicate)| JsEvent::PubAck { client, value, seq, duplicate }),
        (any::<u32>(), any::<u64>(), arb_text()).prop_map(|(client, value, reason)| JsEvent::PubFail {
            client,
            value,
            reason
        }),
        (any::<u32>(), any::<u64>(), arb_text()).prop_map(|(client, value, reason)| JsEvent::PubUnknown {
            client,
            value,
            reason
        }),
        (arb_text(), any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>()).prop_map(
            |(consumer, value, intact, stream_seq, delivered)| JsEvent::Deliver {
                stream: "S".into(),
                consumer,
                value,
                intact,
                stream_seq,
                consumer_seq: stream_seq / 2,
                delivered
            }
        ),
        (arb_text(), any::<u64>(), kind, any::<bool>()).prop_map(|(consumer, stream_seq, kind, confirmed)| {
            JsEvent::Ack { stream: "S".into(), consumer, stream_seq, kind, confirmed }
        }),
        (arb_text(), any::<u64>(), any::<u64>()).prop_map(|(consumer, a, b)| JsEvent::ConsumerInfo {
            stream: "S".into(),
            consumer,
            delivered_stream_seq: a,
            ack_floor_stream_seq: b,
            num_ack_pending: a / 3,
            num_pending: b / 3
        }),
        (
            arb_text(),
            any::<u64>(),
            prop::collection::vec((arb_text(), any::<u64>()), 0..3),
            prop::collection::vec(any::<u64>(), 0..3)
        )
            .prop_map(|(stream, msgs, subjects, lost)| JsEvent::StreamInfo {
                stream,
                msgs,
                bytes: msgs / 2,
                first_seq: msgs / 4,
                last_seq: msgs / 3,
                subjects,
                lost
            }),
        (arb_text(), any::<u64>(), any::<bool>()).prop_map(|(stream, seq, done)| JsEvent::Delete { stream, seq, done }),
    ]
}

/// An arbitrary event.
pub fn arb_event() -> impl Strategy<Value = Event> {
    (any::<u64>(), prop_oneof![Just(HARNESS), 1..=5u16, any::<u16>()], arb_event_kind())
        .prop_map(|(time_us, node, kind)| Event { time_us, node, kind })
}

/// An arbitrary header.
pub fn arb_header() -> impl Strategy<Value = TraceHeader> {
    (
        any::<u32>(),
        arb_text(),
        arb_text(),
        any::<u64>(),
        prop::collection::vec(arb_text(), 0..3),
        prop::collection::vec((arb_text(), arb_text()), 0..3),
        arb_text(),
        prop::option::of(arb_text()),
        (prop::collection::vec(arb_text(), 0..3), any::<u32>()),
    )
        .prop_map(
            |(
                format_version,
                weir_version,
                scenario,
                seed,
                bugs,
                overrides,
                config,
                schedule,
                (fault_points, fault_ppm),
            )| {
                TraceHeader {
                    format_version,
                    weir_version,
                    scenario,
                    seed,
                    bugs,
                    overrides,
                    config,
                    schedule,
                    fault_points,
                    fault_ppm,
                }
            },
        )
}

/// An arbitrary trace of up to `max_events` events.
pub fn arb_trace(max_events: usize) -> impl Strategy<Value = Trace> {
    (arb_header(), prop::collection::vec(arb_event(), 0..=max_events))
        .prop_map(|(header, events)| Trace { header, events })
}

#[test]
fn fixtures_cover_every_variant_in_order_and_names_match() {
    let kinds = one_of_each();
    assert_eq!(kinds.len(), EventKind::NAMES.len());
    for (i, kind) in kinds.iter().enumerate() {
        assert_eq!(variant_index(kind), i);
        assert_eq!(EventKind::NAMES[i], kind.name());
    }
}

#[test]
fn strategy_generates_every_variant() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_event_kind();
    let mut seen = [false; EventKind::NAMES.len()];
    for _ in 0..2000 {
        let kind = strategy.new_tree(&mut runner).expect("strategy").current();
        seen[variant_index(&kind)] = true;
    }
    let missing: Vec<&str> = seen.iter().zip(EventKind::NAMES).filter(|(s, _)| !**s).map(|(_, n)| n).collect();
    assert!(missing.is_empty(), "strategy never generated: {missing:?}");
}
