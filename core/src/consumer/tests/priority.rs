//! Priority groups, consumer reset and server limits on the state machine (no runtime).

use super::*;

const PINNED: &str = r#"{"durable_name":"w","ack_policy":"none","priority_policy":"pinned_client","priority_groups":["A"],"priority_timeout":3000000000}"#;

fn pin_of(d: &Delivery) -> Option<String> {
    let h = String::from_utf8(d.headers.clone()).unwrap();
    h.lines().find_map(|l| l.strip_prefix("Nats-Pin-Id: ").map(str::to_string))
}

fn advisories(effects: &[Effect]) -> Vec<Advisory> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Advisory(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn pinned_client_serves_one_client_and_stands_the_others_by() {
    let mut h = H::new(PINNED);
    assert_eq!(h.c.config().priority_timeout, 3 * S);
    h.pull("_INBOX.a", r#"{"batch":10,"expires":30000000000,"group":"A"}"#);
    h.pull("_INBOX.b", r#"{"batch":10,"expires":30000000000,"group":"A"}"#);
    h.publish("orders.1");
    let effects = h.effects();
    let pinned = advisories(&effects);
    let ds: Vec<&Delivery> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].to, "_INBOX.a", "the first request is pinned");
    let pin = pin_of(ds[0]).expect("Nats-Pin-Id header");
    assert_eq!(pin.len(), 22);
    assert_eq!(pinned, vec![Advisory::Pinned { group: "A".into(), pinned_id: pin.clone() }]);
    for i in 2..5 {
        h.publish(&format!("orders.{i}"));
    }
    let ds = h.deliveries();
    assert!(ds.iter().all(|d| d.to == "_INBOX.a" && pin_of(d).as_deref() == Some(&*pin)), "b stands by");

    // A request with another id is refused; one with the pin is taken and refreshes it.
    h.pull("_INBOX.c", r#"{"batch":1,"expires":30000000000,"group":"A","id":"stale"}"#);
    assert_eq!(h.statuses(), vec![("_INBOX.c".into(), "NATS/1.0 423 Nats-Pin-Id mismatch\r\n\r\n".into())]);
    h.advance(2 * S);
    h.pull("_INBOX.d", &format!(r#"{{"batch":1,"expires":30000000000,"group":"A","id":"{pin}"}}"#));
    h.advance(2 * S);
    assert_eq!(h.c.pin_id(), pin, "refreshed at 2 s, so still pinned at 4 s");
    let info = serde_json::to_value(h.c.info(h.now)).unwrap();
    assert_eq!(info["priority_groups"][0]["group"], "A");
    assert_eq!(info["priority_groups"][0]["pinned_client_id"], pin.as_str());
    assert_eq!(info["config"]["priority_policy"], "pinned_client");

    // The pin lapses 3 s after the last request that carried it; the next one without an
    // id gets a new pin, and a waiting request holding the old one is ended with 423.
    h.advance(2 * S);
    assert_eq!(h.c.pin_id(), "");
    let lapsed = advisories(&h.effects());
    assert_eq!(lapsed, vec![Advisory::Unpinned { group: "A".into(), reason: "timeout".into() }]);
    h.publish("orders.9");
    let ds = h.deliveries();
    assert_eq!(ds[0].to, "_INBOX.b", "the standby, first in line, is pinned");
    let new_pin = pin_of(&ds[0]).unwrap();
    assert_ne!(new_pin, pin, "a new pin");
    h.publish("orders.10");
    let effects = h.effects();
    let wrong: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Status { to, headers, .. } => Some(format!("{to} {}", String::from_utf8_lossy(headers))),
            _ => None,
        })
        .collect();
    assert_eq!(
        wrong,
        vec![
            "_INBOX.a NATS/1.0 423 Nats-Wrong-Pin-Id\r\nNats-Pending-Messages: 6\r\nNats-Pending-Bytes: 0\r\n\r\n",
            "_INBOX.d NATS/1.0 423 Nats-Wrong-Pin-Id\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n",
        ],
        "requests holding the lapsed pin are ended when they come up"
    );
    let d = effects
        .iter()
        .find_map(|e| match e {
            Effect::Deliver(d) => Some(d),
            _ => None,
        })
        .expect("delivered to the new pin holder");
    assert_eq!((d.to.as_str(), pin_of(d)), ("_INBOX.b", Some(new_pin)));
    assert_eq!(h.c.num_waiting(), 1);
}

#[test]
fn unpin_releases_the_pin_for_the_next_request() {
    let mut h = H::new(PINNED);
    h.pull("_INBOX.a", r#"{"batch":1,"expires":30000000000,"group":"A"}"#);
    h.publish("orders.1");
    let first = pin_of(&h.deliveries()[0]).unwrap();
    assert!(!h.c.unpin(h.now, "B", &mut h.r), "no such group");
    assert_eq!(h.c.pin_id(), first);
    assert!(h.c.unpin(h.now, "A", &mut h.r));
    assert_eq!(h.c.pin_id(), "");
    let adv = advisories(&h.effects());
    assert_eq!(adv, vec![Advisory::Unpinned { group: "A".into(), reason: "admin".into() }]);
    h.pull("_INBOX.b", r#"{"batch":1,"expires":30000000000,"group":"A"}"#);
    h.publish("orders.2");
    let ds = h.deliveries();
    assert_eq!(ds[0].to, "_INBOX.b");
    assert_ne!(pin_of(&ds[0]).unwrap(), first);
}

#[test]
fn overflow_serves_a_request_only_past_its_marks() {
    let mut h =
        H::new(r#"{"durable_name":"w","ack_policy":"explicit","priority_policy":"overflow","priority_groups":["A"]}"#);
    h.pull("_INBOX.over", r#"{"batch":10,"expires":30000000000,"group":"A","min_pending":3}"#);
    h.publish("orders.1");
    assert!(h.deliveries().is_empty(), "1 pending is below min_pending 3");
    h.publish("orders.2");
    assert!(h.deliveries().is_empty());
    h.publish("orders.3");
    let ds = h.deliveries();
    assert_eq!(ds.len(), 1, "served once 3 are pending, then below the mark again");
    assert_eq!(ds[0].to, "_INBOX.over");
    // A request without marks is always served.
    h.pull("_INBOX.plain", r#"{"batch":10,"expires":30000000000,"group":"A"}"#);
    let ds = h.deliveries();
    assert_eq!((ds.len(), ds[0].to.as_str()), (2, "_INBOX.plain"));
    // min_ack_pending: 3 messages await ack now.
    h.pull("_INBOX.ack", r#"{"batch":1,"expires":30000000000,"group":"A","min_ack_pending":3}"#);
    h.publish("orders.4");
    let tos: Vec<String> = h.deliveries().into_iter().map(|d| d.to).collect();
    assert_eq!(tos.len(), 1);
    assert!(tos[0] == "_INBOX.plain" || tos[0] == "_INBOX.ack");
}

#[test]
fn prioritized_serves_the_lowest_priority_first() {
    let mut h = H::new(
        r#"{"durable_name":"w","ack_policy":"explicit","priority_policy":"prioritized","priority_groups":["A"]}"#,
    );
    h.pull("_INBOX.p5", r#"{"batch":10,"expires":30000000000,"group":"A","priority":5}"#);
    h.pull("_INBOX.p1", r#"{"batch":2,"expires":30000000000,"group":"A","priority":1}"#);
    h.pull("_INBOX.p1b", r#"{"batch":1,"expires":30000000000,"group":"A","priority":1}"#);
    for i in 0..5 {
        h.publish(&format!("orders.{i}"));
    }
    let tos: Vec<String> = h.deliveries().into_iter().map(|d| d.to).collect();
    assert_eq!(tos, ["_INBOX.p1", "_INBOX.p1b", "_INBOX.p1", "_INBOX.p5", "_INBOX.p5"]);
}

#[test]
fn pull_requests_are_checked_against_the_policy() {
    let mut h = H::new(PINNED);
    let cases = [
        (r#"{"batch":1,"group":"A","min_pending":1}"#, "400 Bad Request - Not a Overflow Priority consumer"),
        (r#"{"batch":1,"group":"A","priority":10}"#, "400 Bad Request - Priority must be between 0 and 9"),
        (r#"{"batch":1}"#, "400 Bad Request - Priority Group missing"),
        (r#"{"batch":1,"group":"B"}"#, "400 Bad Request - Invalid Priority Group"),
    ];
    for (body, want) in cases {
        h.pull("_INBOX.x", body);
        assert_eq!(h.statuses(), vec![("_INBOX.x".to_string(), format!("NATS/1.0 {want}\r\n\r\n"))], "{body}");
    }
    let mut plain = H::new(PULL);
    plain.pull("_INBOX.x", r#"{"batch":1,"expires":30000000000,"group":"A","id":"x"}"#);
    assert_eq!(
        plain.statuses(),
        vec![(
            "_INBOX.x".to_string(),
            "NATS/1.0 400 Bad Request - Not a Pinned Client Priority consumer\r\n\r\n".into()
        )]
    );
    plain.pull("_INBOX.y", r#"{"batch":1,"expires":30000000000,"group":"whatever"}"#);
    assert!(plain.statuses().is_empty(), "a plain consumer ignores the group name");
}

#[test]
fn priority_config_defaults_and_errors() {
    let cfg = |j: &str| serde_json::from_str::<ConsumerConfig>(j).unwrap().normalize(&stream());
    let c = cfg(r#"{"durable_name":"w","priority_policy":"pinned_client","priority_groups":["A"]}"#).unwrap();
    assert_eq!(c.priority_timeout, DEFAULT_PINNED_TTL_NS);
    let out = serde_json::to_string(&c).unwrap();
    assert!(
        out.contains(r#""priority_groups":["A"],"priority_policy":"pinned_client","priority_timeout":120000000000"#)
    );
    let plain = serde_json::to_string(&cfg(r#"{"durable_name":"w"}"#).unwrap()).unwrap();
    assert!(!plain.contains("priority"), "{plain}");
    let e = |j: &str| cfg(j).unwrap_err().err_code();
    assert_eq!(e(r#"{"durable_name":"w","priority_policy":"overflow"}"#), 10159);
    assert_eq!(e(r#"{"durable_name":"w","priority_groups":["A"]}"#), 10196);
    assert_eq!(e(r#"{"durable_name":"w","priority_timeout":5}"#), 10197);
    assert_eq!(e(r#"{"durable_name":"w","priority_policy":"overflow","priority_groups":["a.b"]}"#), 10162);
    assert_eq!(
        e(r#"{"durable_name":"w","deliver_subject":"d","priority_policy":"overflow","priority_groups":["A"]}"#),
        10178
    );
    assert!(serde_json::from_str::<ConsumerConfig>(r#"{"priority_policy":"bogus"}"#).is_err());
}

#[test]
fn server_limits_default_and_cap_pull_consumers() {
    let mut s = stream();
    s.server_limits = ServerLimits { max_request_batch: 100, max_ack_pending: 50 };
    let cfg = |j: &str| serde_json::from_str::<ConsumerConfig>(j).unwrap().normalize(&s);
    let c = cfg(r#"{"durable_name":"w","ack_policy":"explicit"}"#).unwrap();
    assert_eq!((c.max_batch, c.max_ack_pending), (100, 50));
    assert_eq!(cfg(r#"{"durable_name":"w","max_batch":7}"#).unwrap().max_batch, 7);
    let e = cfg(r#"{"durable_name":"w","max_batch":101}"#).unwrap_err();
    assert_eq!(
        (e.err_code(), e.description().as_str()),
        (10125, "consumer max request batch exceeds server limit of 100")
    );
    assert_eq!(
        cfg(r#"{"durable_name":"w","ack_policy":"explicit","max_ack_pending":51}"#).unwrap_err().err_code(),
        10121
    );
    let push = cfg(r#"{"durable_name":"p","deliver_subject":"d","ack_policy":"explicit"}"#).unwrap();
    assert_eq!(push.max_batch, 0, "push consumers take no batch limit");
}

#[test]
fn reset_moves_the_start_and_forgets_the_pending() {
    let mut h = H::new(PULL);
    for i in 0..5 {
        h.publish(&format!("orders.{i}"));
    }
    h.pull("_INBOX.a", r#"{"batch":3,"expires":30000000000}"#);
    let ds = h.deliveries();
    h.ack(&ds[0], "");
    assert_eq!((h.c.num_ack_pending(), h.c.ack_floor().stream_seq), (2, 1));
    assert_eq!(h.c.reset(h.now, 0, &mut h.r), Ok(2), "0: just past the ack floor");
    assert_eq!((h.c.num_ack_pending(), h.c.num_pending()), (0, 4));
    assert_eq!(h.c.delivered(), SeqPair { consumer_seq: 0, stream_seq: 1 });
    assert_eq!(h.c.reset(h.now, 4, &mut h.r), Ok(4));
    assert_eq!((h.c.ack_floor().stream_seq, h.c.num_pending()), (3, 2));
    h.pull("_INBOX.b", r#"{"batch":1,"expires":30000000000}"#);
    let d = h.deliveries().remove(0);
    assert_eq!((d.stream_seq, d.consumer_seq), (4, 1), "consumer sequences start over");
    // The persisted state resumes there.
    let st = h.c.state();
    assert_eq!(
        (st.delivered, st.ack_floor.stream_seq, st.pending.len()),
        (SeqPair { consumer_seq: 1, stream_seq: 4 }, 3, 1)
    );

    let mut by_seq = H::with(
        r#"{"durable_name":"w","ack_policy":"explicit","deliver_policy":"by_start_sequence","opt_start_seq":3}"#,
        ConsumerOptions::default(),
        &["orders.1", "orders.2", "orders.3", "orders.4"],
    );
    assert_eq!(by_seq.c.reset(by_seq.now, 2, &mut by_seq.r), Err("below start seq".into()));
    assert_eq!(by_seq.c.reset(by_seq.now, 3, &mut by_seq.r), Ok(3));
    let mut last =
        H::with(r#"{"durable_name":"w","deliver_policy":"last"}"#, ConsumerOptions::default(), &["orders.1"]);
    assert_eq!(last.c.reset(last.now, 1, &mut last.r), Err("not allowed".into()));
    assert_eq!(last.c.reset(last.now, 0, &mut last.r), Ok(1), "0 is always allowed");
}
