use super::*;
use crate::store::{MemStore, StoreLimits};

const SEC: i64 = 1_000_000_000;

fn acct(limit: u64) -> Arc<Account> {
    Arc::new(Account::new(STREAM_DEDUP, limit))
}

/// A stream on a fresh memory store, its dedup window charged to `dedup`.
fn open_mem(cfg: StreamConfig, dedup: Arc<Account>) -> Stream<MemStore> {
    Stream::open(cfg, MemStore::new(StoreLimits::default()).unwrap(), 0, 0, StreamOptions::new(dedup)).unwrap()
}

fn stream_with(f: impl FnOnce(&mut StreamConfig)) -> Stream<MemStore> {
    let mut cfg = StreamConfig::new("S", &["s.>"]);
    f(&mut cfg);
    let cfg = cfg.check_create(false).unwrap();
    open_mem(cfg, acct(1 << 20))
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut h = Headers::new();
    for (k, v) in pairs {
        h.append(k, v).unwrap();
    }
    h.to_bytes().to_vec()
}

fn code(r: Result<PubAck, ApiError>) -> (u16, String) {
    let e = r.unwrap_err();
    (e.err_code, e.description)
}

#[test]
fn pub_ack_bytes_match_nats_server() {
    let mut s = stream_with(|_| {});
    let ack = s.publish(SEC, "s.a", b"", b"x").unwrap();
    assert_eq!(ack.to_json(None), br#"{"stream":"S","seq":1}"#);
    assert_eq!(ack.to_json(Some("hub")), br#"{"stream":"S","domain":"hub","seq":1}"#);
    let e = s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_SEQ, "7")]), b"x").unwrap_err();
    assert_eq!(
        pub_ack_error_json("S", &e),
        br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"S","seq":0}"#
    );
}

#[test]
fn expected_headers() {
    let mut s = stream_with(|_| {});
    s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "m1")]), b"1").unwrap();
    s.publish(SEC, "s.b", b"", b"2").unwrap();
    assert_eq!(
        code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_STREAM, "T")]), b"")),
        (10060, "expected stream does not match".into())
    );
    assert!(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_STREAM, "S")]), b"").is_ok());
    // Last subject sequence: s.a is at 3 now; 0 means "nothing on the subject yet".
    assert_eq!(code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_SUBJ_SEQ, "1")]), b"")).1, "wrong last sequence: 3");
    assert!(s.publish(SEC, "s.new", &hdrs(&[(EXPECTED_LAST_SUBJ_SEQ, "0")]), b"").is_ok());
    assert!(
        s.publish(SEC, "s.c", &hdrs(&[(EXPECTED_LAST_SUBJ_SEQ, "2"), (EXPECTED_LAST_SUBJ_SEQ_SUBJ, "s.b")]), b"")
            .is_ok()
    );
    assert_eq!(code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_SUBJ_SEQ_SUBJ, "s.b")]), b"")).0, 10193);
    assert_eq!(code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_SEQ, "x")]), b"")).0, 10071);
    assert!(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_SEQ, "5"), (MSG_ID, "m2")]), b"").is_ok());
    assert_eq!(
        code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_MSG_ID, "m1")]), b"")),
        (10070, "wrong last msg ID: m2".into())
    );
    assert!(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_MSG_ID, "m2")]), b"").is_ok());
    // The last message had no id: the expected id is compared with "".
    assert_eq!(code(s.publish(SEC, "s.a", &hdrs(&[(EXPECTED_LAST_MSG_ID, "m2")]), b"")).1, "wrong last msg ID: ");
}

#[test]
fn dedup_window_purge_and_memory() {
    let a = acct(1 << 20);
    let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
    let mut s = open_mem(cfg, a.clone());
    let id = |i: &str| hdrs(&[(MSG_ID, i)]);
    assert_eq!(s.publish(SEC, "s.a", &id("x"), b"").unwrap().seq, 1);
    let dup = s.publish(2 * SEC, "s.a", &id("x"), b"other").unwrap();
    assert!(dup.duplicate && !dup.stored && dup.seq == 1);
    s.publish(3 * SEC, "s.b", &id("y"), b"").unwrap();
    assert!(a.current() > 0);
    // Purging s.a drops x's id: a retry is stored again.
    assert_eq!(s.purge(&PurgeApiRequest { filter: "s.a".into(), ..Default::default() }).unwrap(), 1);
    assert_eq!(s.dedup().lookup("x"), None);
    assert_eq!(s.dedup().lookup("y"), Some(2));
    assert_eq!(s.publish(4 * SEC, "s.a", &id("x"), b"").unwrap().seq, 3);
    // After the window (2 min) the ids expire and their memory is returned.
    s.tick(4 * SEC + DEFAULT_DUPLICATE_WINDOW_NS).unwrap();
    assert!(s.dedup().is_empty());
    assert_eq!(a.current(), 0);
    assert!(!s.publish(5 * SEC + DEFAULT_DUPLICATE_WINDOW_NS, "s.a", &id("x"), b"").unwrap().duplicate);
}

#[test]
fn dedup_full_refuses_with_429() {
    let one = dedup::entry_cost("a", "s.a");
    let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
    let mut s = open_mem(cfg, acct(one));
    s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "a")]), b"").unwrap();
    let e = s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "b")]), b"").unwrap_err();
    assert_eq!((e.code, e.err_code), (429, 10167));
    assert_eq!(s.store().state().msgs, 1, "the refused message was not stored");
    // Without an id the publish still works; after expiry the id fits again.
    s.publish(SEC, "s.a", b"", b"").unwrap();
    s.tick(SEC + DEFAULT_DUPLICATE_WINDOW_NS).unwrap();
    assert!(s.publish(2 * SEC + DEFAULT_DUPLICATE_WINDOW_NS, "s.a", &hdrs(&[(MSG_ID, "b")]), b"").is_ok());
}

#[test]
fn dedup_rebuilt_on_reopen_unless_the_bug_is_on() {
    for forget in [false, true] {
        let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
        let mut s = open_mem(cfg.clone(), acct(1 << 20));
        s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "old")]), b"").unwrap();
        s.publish(200 * SEC, "s.a", &hdrs(&[(MSG_ID, "new")]), b"").unwrap();
        let store = s.into_store();
        let opts = StreamOptions { dedup_account: acct(1 << 20), bugs: StreamBugs { dedup_forgets: forget } };
        let mut s = Stream::open(cfg, store, 0, 210 * SEC, opts).unwrap();
        assert_eq!(s.dedup().lookup("old"), None, "outside the window");
        let retry = s.publish(211 * SEC, "s.a", &hdrs(&[(MSG_ID, "new")]), b"").unwrap();
        assert_eq!(retry.duplicate, !forget);
        // The last message id survives the restart too.
        if !forget {
            assert!(s.publish(212 * SEC, "s.a", &hdrs(&[(EXPECTED_LAST_MSG_ID, "new")]), b"").is_ok());
        }
    }
}

#[test]
fn rollups() {
    let mut s = stream_with(|c| c.allow_rollup_hdrs = true);
    for i in 0..3 {
        s.publish(SEC, "s.a", b"", &[i]).unwrap();
        s.publish(SEC, "s.b", b"", &[i]).unwrap();
    }
    let ack = s.publish(SEC, "s.a", &hdrs(&[(ROLLUP, "sub")]), b"r").unwrap();
    let st = s.store().state();
    assert_eq!((ack.seq, st.msgs), (7, 4));
    s.publish(SEC, "s.b", &hdrs(&[(ROLLUP, "all")]), b"r").unwrap();
    assert_eq!(s.store().state().msgs, 1);
    assert_eq!(code(s.publish(SEC, "s.b", &hdrs(&[(ROLLUP, "x")]), b"")).1, r#"rollup value invalid: "x""#);
    let mut s = stream_with(|_| {});
    assert_eq!(code(s.publish(SEC, "s.b", &hdrs(&[(ROLLUP, "sub")]), b"")), (10111, "rollup not permitted".into()));
}

#[test]
fn limits_and_sizes() {
    let mut s = stream_with(|c| {
        c.max_msgs = 2;
        c.discard = DiscardPolicy::New;
        c.max_msg_size = 10;
    });
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    s.publish(SEC, "s.a", b"", b"2").unwrap();
    assert_eq!(code(s.publish(SEC, "s.a", b"", b"3")), (10077, "maximum messages exceeded".into()));
    assert_eq!(
        code(s.publish(SEC, "s.a", b"", b"12345678901")),
        (10054, "message size exceeds maximum allowed".into())
    );
    let mut s = stream_with(|c| {
        c.max_msgs_per_subject = 1;
        c.discard = DiscardPolicy::New;
        c.discard_new_per_subject = true;
    });
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    assert_eq!(code(s.publish(SEC, "s.a", b"", b"2")).1, "maximum messages per subject exceeded");
    let mut s = stream_with(|c| {
        c.max_bytes = 200;
        c.discard = DiscardPolicy::New;
    });
    s.publish(SEC, "s.a", b"", &[0; 100]).unwrap();
    assert_eq!(code(s.publish(SEC, "s.a", b"", &[0; 100])).1, "maximum bytes exceeded");
    let big = hdrs(&[("X", &"v".repeat(70_000))]);
    assert_eq!(code(stream_with(|_| {}).publish(SEC, "s.a", &big, b"")).0, 10097);
    assert_eq!(code(stream_with(|c| c.sealed = false).publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "5s")]), b"")).0, 10166);
    assert_eq!(
        code(stream_with(|c| c.allow_msg_ttl = true).publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "5ms")]), b"")).0,
        10165
    );
    assert!(stream_with(|c| c.allow_msg_ttl = true).publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "1m30s")]), b"").is_ok());
}

#[test]
fn sealed_deny_delete_deny_purge() {
    let mut s = stream_with(|_| {});
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    let mut sealed = s.config().clone();
    sealed.sealed = true;
    let sealed = sealed.check_update(s.config(), false).unwrap();
    s.update(sealed, SEC).unwrap();
    assert_eq!(code(s.publish(SEC, "s.a", b"", b"")).0, 10109);
    assert_eq!(s.purge(&PurgeApiRequest::default()).unwrap_err().err_code, 10109);
    assert_eq!(s.delete_msg(&MsgDeleteRequest { seq: 1, no_erase: false }).unwrap_err().err_code, 10109);
    let mut s = stream_with(|c| {
        c.deny_delete = true;
        c.deny_purge = true
    });
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    let e = s.purge(&PurgeApiRequest::default()).unwrap_err();
    assert_eq!((e.err_code, e.description.as_str()), (10110, "stream purge not permitted"));
    let e = s.delete_msg(&MsgDeleteRequest { seq: 1, no_erase: true }).unwrap_err();
    assert_eq!((e.err_code, e.description.as_str()), (10057, "message delete not permitted"));
    let mut s = stream_with(|_| {});
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    assert_eq!(
        s.delete_msg(&MsgDeleteRequest { seq: 9, no_erase: false }).unwrap_err().description,
        "sequence 9 not found"
    );
    assert!(s.delete_msg(&MsgDeleteRequest { seq: 1, no_erase: false }).is_ok());
    assert_eq!(s.purge(&PurgeApiRequest { seq: 1, keep: 1, ..Default::default() }).unwrap_err().err_code, 10003);
}

#[test]
fn interest_without_consumers_spends_a_sequence() {
    let mut s = stream_with(|c| {
        c.retention = RetentionPolicy::Interest;
        c.max_msgs = 1;
    });
    let ack = s.publish(SEC, "s.a", b"", b"").unwrap();
    assert_eq!((ack.seq, ack.stored), (1, false));
    assert_eq!(s.store().state().msgs, 0);
    s.add_consumer("c", &["s.b".to_string()]).unwrap();
    assert!(s.publish(SEC, "s.b", b"", b"kept").unwrap().stored);
    // Not interesting, on a non-empty stream at max_msgs: nothing is evicted.
    let ack = s.publish(SEC, "s.a", b"", b"").unwrap();
    assert_eq!((ack.seq, ack.stored), (3, false));
    let st = s.store().state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 2, 3));
    assert!(s.remove_msg(2).unwrap());
    assert!(s.remove_consumer("c") && !s.remove_consumer("c"));
}

#[test]
fn workqueue_and_max_consumers() {
    let mut s = stream_with(|c| c.retention = RetentionPolicy::WorkQueue);
    s.add_consumer("a", &["s.a".into()]).unwrap();
    assert_eq!(s.add_consumer("b", &[]).unwrap_err().err_code, 10099);
    assert_eq!(s.add_consumer("b", &["s.*".into()]).unwrap_err().err_code, 10100);
    s.add_consumer("b", &["s.b".into()]).unwrap();
    s.add_consumer("a", &["s.c".into()]).unwrap();
    let mut s = stream_with(|c| c.max_consumers = 1);
    s.add_consumer("a", &[]).unwrap();
    s.add_consumer("a", &["s.x".into()]).unwrap();
    assert_eq!(s.add_consumer("b", &[]).unwrap_err().err_code, 10026);
}

#[test]
fn get_and_direct_get() {
    let mut s = stream_with(|_| {});
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    s.publish(2 * SEC, "s.b", &hdrs(&[("K", "v")]), b"2").unwrap();
    s.publish(3 * SEC, "s.a", b"", b"3").unwrap();
    let get = |s: &mut Stream<MemStore>, r: MsgGetRequest| s.get_msg(&r).map(|m| m.seq);
    assert_eq!(get(&mut s, MsgGetRequest { seq: 2, ..Default::default() }), Ok(2));
    assert_eq!(get(&mut s, MsgGetRequest { last_by_subj: "s.a".into(), ..Default::default() }), Ok(3));
    assert_eq!(get(&mut s, MsgGetRequest { next_by_subj: "s.a".into(), seq: 2, ..Default::default() }), Ok(3));
    assert_eq!(get(&mut s, MsgGetRequest { start_time: Some(2 * SEC), ..Default::default() }), Ok(2));
    assert_eq!(get(&mut s, MsgGetRequest { seq: 9, ..Default::default() }).unwrap_err().err_code, 10037);
    assert_eq!(get(&mut s, MsgGetRequest::default()).unwrap_err().err_code, 10003);
    assert_eq!(
        get(&mut s, MsgGetRequest { seq: 1, last_by_subj: "s.a".into(), ..Default::default() }).unwrap_err().err_code,
        10003
    );
    let m = s.get_msg(&MsgGetRequest { seq: 2, ..Default::default() }).unwrap();
    let body = crate::jetstream::api_response("stream_msg_get", Some(&MsgGetResponse { message: (&m).into() }), None);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"s.b","seq":2,"hdrs":"TkFUUy8xLjANCks6IHYNCg0K","data":"Mg==","time":"1970-01-01T00:00:02Z"}}"#
    );
    let d = s.direct_get(&MsgGetRequest { seq: 2, ..Default::default() });
    assert_eq!(
        d.headers,
        b"NATS/1.0\r\nK: v\r\nNats-Stream: S\r\nNats-Subject: s.b\r\nNats-Sequence: 2\r\nNats-Time-Stamp: 1970-01-01T00:00:02Z\r\n\r\n"
    );
    let d = s.direct_get(&MsgGetRequest { last_by_subj: "s.a".into(), ..Default::default() });
    assert_eq!(
        d.headers,
        b"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: s.a\r\nNats-Sequence: 3\r\nNats-Time-Stamp: 1970-01-01T00:00:03Z\r\n\r\n"
    );
    assert_eq!(d.payload, b"3");
    assert_eq!(
        s.direct_get(&MsgGetRequest { seq: 7, ..Default::default() }).headers,
        b"NATS/1.0 404 Message Not Found\r\n\r\n"
    );
    assert_eq!(s.direct_get(&MsgGetRequest::default()).headers, b"NATS/1.0 408 Bad Request\r\n\r\n");
}

#[test]
fn info_and_expiry() {
    let mut s = stream_with(|c| c.max_age = 10 * SEC);
    assert_eq!(s.config().duplicate_window, 10 * SEC);
    let empty = serde_json::to_string(&s.state(false, None).unwrap()).unwrap();
    assert_eq!(
        empty,
        r#"{"messages":0,"bytes":0,"first_seq":1,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0}"#
    );
    s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "i")]), b"1").unwrap();
    s.publish(2 * SEC, "s.b", b"", b"2").unwrap();
    s.publish(3 * SEC, "s.b", b"", b"3").unwrap();
    s.delete_msg(&MsgDeleteRequest { seq: 2, no_erase: false }).unwrap();
    assert_eq!(s.next_deadline(), Some(11 * SEC));
    let info = s.info(4 * SEC, true, Some(">")).unwrap();
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v["state"]["deleted"], serde_json::json!([2]));
    assert_eq!(v["state"]["subjects"], serde_json::json!({"s.a": 1, "s.b": 1}));
    assert_eq!(v["state"]["first_ts"], "1970-01-01T00:00:01Z");
    assert_eq!(v["created"], "1970-01-01T00:00:00Z");
    assert_eq!(v["config"]["max_age"], 10 * SEC);
    assert_eq!(s.tick(11 * SEC).unwrap(), 1);
    assert_eq!(s.dedup().len(), 0);
    assert_eq!(s.tick(13 * SEC).unwrap(), 1);
    let st = s.state(false, None).unwrap();
    assert_eq!((st.messages, st.first_seq, st.last_seq, st.last_ts), (0, 4, 3, Some(3 * SEC)));
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn per_message_ttl_expires_and_survives_restart() {
    let a = acct(1 << 20);
    let cfg = StreamConfig { allow_msg_ttl: true, ..StreamConfig::new("S", &["s.>"]) }.check_create(false).unwrap();
    let mut s = open_mem(cfg.clone(), a.clone());
    s.publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "2s")]), b"short").unwrap();
    s.publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "10")]), b"long").unwrap();
    s.publish(SEC, "s.a", &hdrs(&[(MSG_TTL, "never")]), b"kept").unwrap();
    assert_eq!(s.next_deadline(), Some(3 * SEC));
    assert_eq!(s.tick(3 * SEC).unwrap(), 1);
    assert_eq!(s.store().state().msgs, 2);
    let store = s.into_store();
    assert_eq!(a.current(), 0, "dropping the stream returns its index memory");
    let mut s = Stream::open(cfg, store, 0, 4 * SEC, StreamOptions::new(a.clone())).unwrap();
    assert_eq!(s.next_deadline(), Some(11 * SEC), "deadline rebuilt from the header");
    assert_eq!(s.tick(11 * SEC).unwrap(), 1);
    let st = s.store().state();
    assert_eq!((st.msgs, st.first_seq), (1, 3));
}

#[test]
fn read_accessors_for_consumers() {
    let mut s = stream_with(|_| {});
    assert!(s.captures("s.a.b") && !s.captures("t.a"));
    s.publish(SEC, "s.a", b"", b"1").unwrap();
    s.publish(2 * SEC, "s.b", b"", b"2").unwrap();
    assert_eq!(s.load(2).unwrap().map(|m| m.payload), Some(b"2".to_vec()));
    assert_eq!(s.load_next("s.b", 0).unwrap().map(|m| m.seq), Some(2));
    assert_eq!(s.load_last("s.*").unwrap().map(|m| m.seq), Some(2));
    assert_eq!((s.seq_at_time(2 * SEC).unwrap(), s.seq_at_time(3 * SEC).unwrap()), (Some(2), None));
    assert_eq!(s.store_state().last_seq, 2);
    assert_eq!(s.load_next("s..", 0).unwrap_err().err_code, 10077);
}

#[test]
fn a_window_rebuilt_short_of_memory_refuses_unknown_ids_until_the_hole_expires() {
    // Three ids stored, then the stream reopens with room for two: the oldest is
    // forgotten. A retry of it must not be stored again while it would still be in the
    // window (it could be a duplicate); it is refused as a full account refuses (429).
    let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
    let mut s = open_mem(cfg.clone(), acct(1 << 20));
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        s.publish((i as i64 + 1) * SEC, "s.a", &hdrs(&[(MSG_ID, id)]), b"").unwrap();
    }
    let store = s.into_store();
    let two = 2 * dedup::entry_cost("a", "s.a");
    let mut s = Stream::open(cfg, store, 0, 4 * SEC, StreamOptions::new(acct(two))).unwrap();
    assert_eq!(s.dedup().lookup("a"), None, "no room for the oldest");
    assert_eq!(s.dedup().lookup("c"), Some(3));
    assert_eq!(s.dedup_gap_until_ns(), SEC + DEFAULT_DUPLICATE_WINDOW_NS);
    let e = s.publish(5 * SEC, "s.a", &hdrs(&[(MSG_ID, "a")]), b"").unwrap_err();
    assert_eq!((e.code, e.err_code), (429, 10167), "a forgotten id was stored again inside its window");
    // Known ids are still answered as duplicates, and messages without an id go on.
    assert!(s.publish(5 * SEC, "s.a", &hdrs(&[(MSG_ID, "c")]), b"").unwrap().duplicate);
    assert!(s.publish(5 * SEC, "s.a", b"", b"").unwrap().stored);
    // Once the forgotten id would have expired, ids are taken again.
    // (the account's room comes back as the kept ids expire too.)
    s.tick(3 * SEC + DEFAULT_DUPLICATE_WINDOW_NS).unwrap();
    let ok = s.publish(3 * SEC + DEFAULT_DUPLICATE_WINDOW_NS + 1, "s.a", &hdrs(&[(MSG_ID, "a")]), b"").unwrap();
    assert!(ok.stored && !ok.duplicate);
}

#[test]
fn a_window_carried_over_a_reopen_is_taken_whole() {
    // The running stream's window moves to the reopened stream with its charges: no new
    // charge is needed, so none can be refused (a refused one would make a hole that
    // refuses every unknown id for the rest of the window, 429). js-single seed 27 with
    // every fault point: one injected refusal during a reopen cost 40 publishes a 429.
    let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
    let a = acct(1 << 20);
    let mut s = open_mem(cfg.clone(), a.clone());
    s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "x")]), b"").unwrap();
    s.publish(2 * SEC, "s.a", &hdrs(&[(MSG_ID, "y")]), b"").unwrap();
    let (carried, gap) = s.take_dedup();
    assert_eq!((carried.len(), gap), (2, 0));
    let store = s.into_store();
    // No room for anything more: the rebuild (while the carried window is still
    // charged) is refused and notes a hole.
    a.set_limit(a.current());
    let mut s = Stream::open(cfg, store, 0, 3 * SEC, StreamOptions::new(a.clone())).unwrap();
    assert!(s.dedup_gap_until_ns() > 0, "the rebuild had no room");
    s.adopt_dedup(carried, gap, &[2], 3 * SEC);
    assert_eq!(s.dedup().lookup("x"), Some(1));
    assert_eq!(s.dedup().lookup("y"), None, "the refused sequence's id is dropped");
    assert_eq!(s.dedup_gap_until_ns(), 0, "the carried window has no hole");
    a.set_limit(1 << 20);
    assert!(s.publish(3 * SEC, "s.a", &hdrs(&[(MSG_ID, "z")]), b"").unwrap().stored);
    assert!(s.publish(3 * SEC, "s.a", &hdrs(&[(MSG_ID, "x")]), b"").unwrap().duplicate);
    // A hole the earlier incarnation had is kept.
    let (carried, _) = s.take_dedup();
    s.adopt_dedup(carried, 9 * SEC + DEFAULT_DUPLICATE_WINDOW_NS, &[], 3 * SEC);
    assert_eq!(s.dedup_gap_until_ns(), 9 * SEC + DEFAULT_DUPLICATE_WINDOW_NS);
    assert_eq!(s.publish(4 * SEC, "s.a", &hdrs(&[(MSG_ID, "w")]), b"").unwrap_err().code, 429);
}

#[test]
fn ids_only_the_rebuild_found_are_added_and_a_refused_one_leaves_a_hole() {
    let one = dedup::entry_cost("x", "s.a");
    for (room, kept) in [(2 * one, true), (one, false)] {
        let cfg = StreamConfig::new("S", &["s.>"]).check_create(false).unwrap();
        let a = acct(1 << 20);
        let mut s = open_mem(cfg.clone(), a.clone());
        s.publish(SEC, "s.a", &hdrs(&[(MSG_ID, "x")]), b"").unwrap();
        s.publish(2 * SEC, "s.a", &hdrs(&[(MSG_ID, "y")]), b"").unwrap();
        let store = s.into_store();
        // A carried window that lacks "y" (its incarnation could not hold it); the
        // rebuild from the stored messages finds it.
        let mut carried = Dedup::new(a.clone());
        assert!(carried.insert("x", "s.a", 1, SEC));
        let mut s = Stream::open(cfg, store, 0, 3 * SEC, StreamOptions::new(a.clone())).unwrap();
        assert_eq!(s.dedup().lookup("y"), Some(2));
        a.set_limit(room);
        s.adopt_dedup(carried, 0, &[], 3 * SEC);
        assert_eq!(s.dedup().lookup("x"), Some(1));
        if kept {
            assert_eq!(s.dedup().lookup("y"), Some(2), "room once the rebuilt window's charges went");
            assert_eq!(s.dedup_gap_until_ns(), 0);
        } else {
            assert_eq!(s.dedup().lookup("y"), None);
            assert_eq!(s.dedup_gap_until_ns(), 2 * SEC + DEFAULT_DUPLICATE_WINDOW_NS, "a forgotten id is a hole");
        }
    }
}
