//! A full disk (or any failed fsync) under the group commit: the engine reopens the
//! stream from what the disk holds, so nothing it told a client may depend on writes
//! that were not yet durable. Confirmed acks (AckSync replies) and dedup answers must
//! hold across that reopen, and a read never shows a message before its PubAck.
//! Found by the `js-single-crashes` simulation with `faults.disk_full` (seed 36).

use super::*;

const SEC: i64 = 1_000_000_000;

const WQ: &str = r#"{"name":"W","subjects":["w.>"],"retention":"workqueue","duplicate_window":60000000000}"#;
const CONSUMER: &str =
    r#"{"stream_name":"W","config":{"durable_name":"c","ack_policy":"explicit","ack_wait":30000000000}}"#;

fn id(msg_id: &str) -> Vec<u8> {
    format!("NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n").into_bytes()
}

/// Pull up to `batch` messages for consumer `c` of `W`: their `$JS.ACK` subjects.
fn fetch(h: &mut Harness, inbox: &str, batch: u32) -> Vec<String> {
    fetch_from(h, "W", inbox, batch)
}

/// Pull up to `batch` messages for consumer `c` of `stream`: their `$JS.ACK` subjects.
fn fetch_from(h: &mut Harness, stream: &str, inbox: &str, batch: u32) -> Vec<String> {
    let body = format!(r#"{{"batch":{batch},"no_wait":true}}"#);
    let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.c");
    let mut outs = h.send(&subject, Some(inbox), b"", body.as_bytes());
    outs.extend(h.sync());
    outs.iter()
        .filter(|o| o.to == inbox)
        .filter_map(|o| o.reply.clone())
        .filter(|r| r.starts_with("$JS.ACK."))
        .collect()
}

/// Fill the disk (writes fail with ENOSPC, syncs fail) or free it again.
fn disk_full(h: &Harness, full: bool) {
    h.disk.full.store(full, Ordering::Relaxed);
    h.disk.fail_sync.store(full, Ordering::Relaxed);
}

/// A group commit on a full disk: what it sent (it must fail).
fn failing_sync(h: &mut Harness) -> Vec<Out> {
    disk_full(h, true);
    let mut out = Vec::new();
    assert!(h.js.sync(h.now, &mut out).is_err(), "the sync must fail");
    disk_full(h, false);
    let mut outs = flatten(out);
    // The reopen syncs what it recovered before it takes writes, and that failed too:
    // it is retried once the disk works again.
    outs.extend(h.advance(crate::jetstream::engine::REOPEN_RETRY_NS));
    outs
}

fn confirmed(outs: &[Out], inbox: &str) -> bool {
    outs.iter().any(|o| o.to == inbox)
}

#[test]
fn acks_survive_a_failed_sync_and_are_confirmed_only_once_durable() {
    let mut h = Harness::new();
    h.create_stream(WQ);
    h.api("$JS.API.CONSUMER.CREATE.W.c", CONSUMER);
    for i in 1..=4 {
        assert_eq!(h.publish(&format!("w.{i}"), b"", b"x")["seq"], i);
    }
    let got = fetch(&mut h, "_INBOX.f1", 4);
    assert_eq!(got.len(), 4);
    // AckSync of seq 1: the reply waits for the sync that makes the ack durable.
    let outs = h.send(&got[0], Some("_INBOX.ack1"), b"", b"+ACK");
    assert!(!confirmed(&outs, "_INBOX.ack1"), "an ack confirmed before it is durable: {outs:?}");
    assert!(h.js.needs_sync());
    assert!(confirmed(&h.sync(), "_INBOX.ack1"), "the sync releases the confirmation");
    // AckSync of seq 2, then the disk fills before the ack is durable: no confirmation.
    let mut outs = h.send(&got[1], Some("_INBOX.ack2"), b"", b"+ACK");
    outs.extend(failing_sync(&mut h));
    assert!(!confirmed(&outs, "_INBOX.ack2"), "a failed sync confirmed an ack: {outs:?}");
    // The reopen rolled nothing back: seqs 1 and 2 stay removed (the delete of 2 never
    // reached the disk), and nothing is delivered a second time as new.
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!((info["state"]["first_seq"].as_u64(), info["state"]["messages"].as_u64()), (Some(3), Some(2)), "{info}");
    assert!(fetch(&mut h, "_INBOX.f2", 10).is_empty(), "a delivered message was delivered again as new");
    // The unacked ones come again after their ack wait, and only they.
    h.advance(31 * SEC);
    let again = fetch(&mut h, "_INBOX.f3", 10);
    let seqs: Vec<&str> = again.iter().map(|r| r.split('.').nth(5).unwrap()).collect();
    assert_eq!(seqs, ["3", "4"], "{again:?}");
    // Acked and confirmed after a good sync, an ack survives the next failure too.
    let outs = h.send(&again[0], Some("_INBOX.ack3"), b"", b"+ACK");
    assert!(!confirmed(&outs, "_INBOX.ack3"));
    assert!(confirmed(&h.sync(), "_INBOX.ack3"));
    assert!(h.send("w.5", Some("_INBOX.p"), b"", b"unsynced").is_empty());
    let outs = failing_sync(&mut h);
    assert_eq!(outs.iter().find(|o| o.to == "_INBOX.p").expect("refused").json()["error"]["err_code"], 10077);
    h.advance(31 * SEC);
    let seqs: Vec<String> =
        fetch(&mut h, "_INBOX.f4", 10).iter().map(|r| r.split('.').nth(5).unwrap().to_string()).collect();
    assert_eq!(seqs, ["4"], "a confirmed ack was undone by the reopen");
    assert_eq!(h.api("$JS.API.STREAM.INFO.W", "")["state"]["messages"], 1);
    // A power cut may still lose the unconfirmed part, never the confirmed one.
    h.restart(true);
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
}

#[test]
fn dedup_ids_survive_a_failed_sync_even_for_removed_messages() {
    let mut h = Harness::new();
    h.create_stream(WQ);
    h.api("$JS.API.CONSUMER.CREATE.W.c", CONSUMER);
    assert_eq!(h.publish("w.1", &id("a"), b"x")["seq"], 1);
    assert_eq!(h.publish("w.1", &id("b"), b"y")["seq"], 2);
    // "a" is consumed and acked: the workqueue removes it (durably).
    let got = fetch(&mut h, "_INBOX.f", 1);
    h.send(&got[0], None, b"", b"+ACK");
    h.sync();
    assert_eq!(h.api("$JS.API.STREAM.INFO.W", "")["state"]["messages"], 1);
    // A publish the failing sync refuses; the stream is reopened from disk.
    let mut outs = h.send("w.2", Some("_INBOX.c"), &id("c"), b"z");
    outs.extend(failing_sync(&mut h));
    let refused = outs.iter().find(|o| o.to == "_INBOX.c").expect("the refused publish is answered");
    assert_eq!(refused.json()["error"]["err_code"], 10077);
    // A retry of "a" within the window is still a duplicate of seq 1 (a restart would
    // rebuild the window from the stored messages only, as nats-server does; a reopen
    // must not forget what the clients were told).
    let dup = h.publish("w.1", &id("a"), b"x");
    assert_eq!((dup["seq"].as_u64(), dup["duplicate"].as_bool()), (Some(1), Some(true)), "{dup}");
    let dup = h.publish("w.1", &id("b"), b"y");
    assert_eq!((dup["seq"].as_u64(), dup["duplicate"].as_bool()), (Some(2), Some(true)), "{dup}");
    // The refused id is not a duplicate of anything: its retry is stored.
    let retry = h.publish("w.2", &id("c"), b"z");
    assert_eq!(retry["duplicate"].as_bool(), None, "{retry}");
    assert!(retry["seq"].as_u64().unwrap() >= 3, "{retry}");
}

#[test]
fn a_read_never_shows_a_message_before_its_puback() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"W","subjects":["w.>"],"allow_direct":true}"#);
    h.publish("w.1", b"", b"synced");
    assert!(h.send("w.2", Some("_INBOX.p"), b"", b"appended").is_empty(), "no PubAck before the sync");
    // MSG.GET of the appended message: the group commit runs first, so its PubAck goes
    // out before the reply that shows it, and it is durable by then.
    let outs = h.send("$JS.API.STREAM.MSG.GET.W", Some("_INBOX.g"), b"", br#"{"seq":2}"#);
    let ack = outs.iter().position(|o| o.to == "_INBOX.p").expect("PubAck released by the read");
    let get = outs.iter().position(|o| o.to == "_INBOX.g").expect("MSG.GET reply");
    assert!(ack < get, "{outs:?}");
    assert_eq!(outs[get].json()["message"]["seq"], 2);
    // DIRECT.GET likewise.
    assert!(h.send("w.3", Some("_INBOX.p3"), b"", b"appended too").is_empty());
    let outs = h.send("$JS.API.DIRECT.GET.W.w.3", Some("_INBOX.d"), b"", b"");
    let ack = outs.iter().position(|o| o.to == "_INBOX.p3").expect("PubAck released by the read");
    let get = outs.iter().position(|o| o.to == "_INBOX.d").expect("DIRECT.GET reply");
    assert!(ack < get && outs[get].payload == b"appended too", "{outs:?}");
    // What a read showed survives a power cut.
    h.restart(true);
    assert_eq!(h.api("$JS.API.STREAM.INFO.W", "")["state"]["messages"], 3);
    // On a failing disk the read shows nothing the disk did not keep.
    assert!(h.send("w.4", Some("_INBOX.p4"), b"", b"lost").is_empty());
    disk_full(&h, true);
    let outs = h.send("$JS.API.STREAM.MSG.GET.W", Some("_INBOX.g4"), b"", br#"{"seq":4}"#);
    disk_full(&h, false);
    // The stream's reopen syncs what it recovered, which fails on this disk too: until
    // it is retried the stream is offline (not found), never showing seq 4.
    let get = outs.iter().find(|o| o.to == "_INBOX.g4").expect("MSG.GET reply");
    assert_eq!(get.json()["error"]["err_code"], 10059, "{outs:?}");
    let ack = outs.iter().find(|o| o.to == "_INBOX.p4").expect("the publish is answered");
    assert_eq!(ack.json()["error"]["err_code"], 10077);
    // Once reopened, the message the disk did not keep is not there.
    h.advance(crate::jetstream::engine::REOPEN_RETRY_NS);
    let get = h.api("$JS.API.STREAM.MSG.GET.W", r#"{"seq":4}"#);
    assert_eq!(get["error"]["err_code"], 10037, "{get}");
}

#[test]
fn a_flush_failed_by_an_api_call_never_lets_the_next_sync_ack() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"W","subjects":["w.>"]}"#);
    h.publish("w.1", b"", b"synced");
    assert!(h.send("w.2", Some("_INBOX.p"), b"", b"appended").is_empty());
    // MSG.DELETE flushes the store on a full disk: the write-behind buffer (holding the
    // appended message) is lost and the store stops.
    disk_full(&h, true);
    let outs = h.send("$JS.API.STREAM.MSG.DELETE.W", Some("_INBOX.d"), b"", br#"{"seq":1}"#);
    let d = outs.iter().find(|o| o.to == "_INBOX.d").expect("delete reply");
    assert!(d.json().get("error").is_some(), "{outs:?}");
    // The disk is freed; syncing the block now would succeed, but must not ack a message
    // the failed write dropped.
    disk_full(&h, false);
    assert!(h.js.needs_sync());
    let outs = h.sync();
    let ack = outs.iter().find(|o| o.to == "_INBOX.p").expect("the publish is answered");
    assert_eq!(ack.json()["error"]["err_code"], 10077, "{outs:?}");
    // The reopened stream holds what the disk holds, and works again; the refused
    // publish's sequence stays spent (never handed out twice).
    assert_eq!(h.publish("w.3", b"", b"after")["seq"], 3);
    h.restart(true);
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!((info["state"]["messages"].as_u64(), info["state"]["last_seq"].as_u64()), (Some(1), Some(3)), "{info}");
}

/// The group commit in three steps (fsyncs with the lock released): a held AckSync
/// reply goes out only when the commit that began after its ack ends, and an ack made
/// while the fsyncs run waits for the next commit.
#[test]
fn ack_sync_replies_wait_for_the_end_of_the_commit_that_covers_them() {
    let mut h = Harness::new();
    h.create_stream(WQ);
    h.api("$JS.API.CONSUMER.CREATE.W.c", CONSUMER);
    for i in 1..=3 {
        assert_eq!(h.publish(&format!("w.{i}"), b"", b"x")["seq"], i);
    }
    let got = fetch(&mut h, "_INBOX.f1", 3);
    assert!(!confirmed(&h.send(&got[0], Some("_INBOX.ack1"), b"", b"+ACK"), "_INBOX.ack1"));
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    // While the fsyncs run, another AckSync: not covered by the commit in flight.
    let sent = h.send(&got[1], Some("_INBOX.ack2"), b"", b"+ACK");
    let done = job.run(&*h.disk);
    assert!(out.is_empty() && sent.is_empty(), "a reply before its commit ended: {out:?} {sent:?}");
    h.js.end_sync(h.now, done, &mut out).unwrap();
    let outs = flatten(out);
    assert!(confirmed(&outs, "_INBOX.ack1"), "the commit releases the ack it covers: {outs:?}");
    assert!(!confirmed(&outs, "_INBOX.ack2"), "an ack made in flight confirmed early: {outs:?}");
    assert!(h.js.needs_sync());
    assert!(confirmed(&h.sync(), "_INBOX.ack2"));
}

/// A commit whose fsyncs fail while the lock is released: the replies it held are
/// dropped unsent, and the reopen keeps the removals of both that commit and those
/// made in flight.
#[test]
fn a_failed_commit_in_flight_drops_its_replies_and_keeps_the_removals() {
    let mut h = Harness::new();
    h.create_stream(WQ);
    h.api("$JS.API.CONSUMER.CREATE.W.c", CONSUMER);
    for i in 1..=4 {
        assert_eq!(h.publish(&format!("w.{i}"), b"", b"x")["seq"], i);
    }
    let got = fetch(&mut h, "_INBOX.f1", 4);
    assert!(!confirmed(&h.send(&got[0], Some("_INBOX.ack1"), b"", b"+ACK"), "_INBOX.ack1"));
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    // An ack in flight removes seq 2 (workqueue) after the commit began.
    let mut outs = h.send(&got[1], None, b"", b"+ACK");
    h.disk.fail_sync.store(true, Ordering::Relaxed);
    let done = job.run(&*h.disk);
    h.disk.fail_sync.store(false, Ordering::Relaxed);
    assert!(h.js.end_sync(h.now, done, &mut out).is_err(), "the commit must fail");
    outs.extend(flatten(out));
    assert!(!confirmed(&outs, "_INBOX.ack1"), "a failed commit confirmed an ack: {outs:?}");
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!((info["state"]["first_seq"].as_u64(), info["state"]["messages"].as_u64()), (Some(3), Some(2)), "{info}");
    assert!(fetch(&mut h, "_INBOX.f2", 10).is_empty(), "a delivered message was delivered again as new");
}

/// Removals are forgotten only by the commit whose writes carry them: one made while
/// a commit's fsyncs run survives that commit's success and a failure of the next.
#[test]
fn a_removal_in_flight_outlives_the_commit_that_does_not_cover_it() {
    let mut h = Harness::new();
    h.create_stream(WQ);
    h.api("$JS.API.CONSUMER.CREATE.W.c", CONSUMER);
    for i in 1..=3 {
        assert_eq!(h.publish(&format!("w.{i}"), b"", b"x")["seq"], i);
    }
    let got = fetch(&mut h, "_INBOX.f1", 3);
    h.send(&got[0], None, b"", b"+ACK");
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    // The workqueue removes seq 2 while the fsyncs run: its delete record is not theirs.
    h.send(&got[1], None, b"", b"+ACK");
    let done = job.run(&*h.disk);
    h.js.end_sync(h.now, done, &mut out).unwrap();
    // The next commit fails before writing it; the reopen must remove seq 2 again.
    failing_sync(&mut h);
    let info = h.api("$JS.API.STREAM.INFO.W", "");
    assert_eq!((info["state"]["first_seq"].as_u64(), info["state"]["messages"].as_u64()), (Some(3), Some(1)), "{info}");
    assert!(fetch(&mut h, "_INBOX.f2", 10).is_empty(), "a delivered message was delivered again as new");
}

/// A limits stream evicts when a publish is appended, but the eviction takes effect
/// for the consumers, and on disk, only once that publish is durable (`store::held`).
/// A consumer must not skip a message so evicted, and a failed commit that refuses the
/// publish brings the message back for everyone; the refused sequence stays spent, and
/// neither end of the stream moves back as the consumers saw it. `js-single-crashes`
/// seed 141 found the first half (a pull consumer's ack floor passed two messages it
/// never received, which the reopen had brought back); the fix then kept the evictions
/// of refused publishes, which lost messages a client was told were still there.
#[test]
fn a_refused_publish_evicts_nothing_and_consumers_never_skip_its_evictions() {
    let mut h = Harness::new();
    h.create_stream(r#"{"name":"L","subjects":["l.>"],"max_msgs":3}"#);
    let consumer =
        r#"{"stream_name":"L","config":{"durable_name":"c","ack_policy":"explicit","ack_wait":30000000000}}"#;
    h.api("$JS.API.CONSUMER.CREATE.L.c", consumer);
    for i in 1..=3 {
        assert_eq!(h.publish(&format!("l.{i}"), b"", b"x")["seq"], i);
    }
    // Seq 4 evicts seq 1; its commit begins. Then the disk fills up. Seq 5, appended
    // while the fsyncs run, evicts seq 2 in memory: its append and that eviction wait
    // for the next commit, and never reach the disk.
    assert!(h.send("l.4", Some("_INBOX.p4"), b"", b"x").is_empty());
    let mut out = Vec::new();
    let job = h.js.begin_sync(h.now, &mut out).unwrap().expect("a commit is due");
    h.disk.full.store(true, Ordering::Relaxed);
    assert!(h.send("l.5", Some("_INBOX.p5"), b"", b"x").is_empty());
    let done = job.run(&*h.disk);
    h.js.end_sync(h.now, done, &mut out).unwrap();
    let outs = flatten(out);
    let ack = outs.iter().find(|o| o.to == "_INBOX.p4").expect("seq 4 acknowledged");
    assert_eq!(ack.json()["seq"], 4);
    // STREAM.INFO counts as nats-server does (seq 5 in, seq 2 out), but the consumer
    // still sees seq 2: seq 5 is not durable.
    // (No sync here: these requests are answered without one.)
    let unsynced = |h: &mut Harness, subject: &str, body: &str| {
        let outs = h.send(subject, Some("_INBOX.u"), b"", body.as_bytes());
        outs.iter().find(|o| o.to == "_INBOX.u").expect("answered").json()
    };
    let st = unsynced(&mut h, "$JS.API.STREAM.INFO.L", "")["state"].clone();
    assert_eq!((st["first_seq"].as_u64(), st["messages"].as_u64()), (Some(3), Some(3)), "{st}");
    let c = unsynced(&mut h, "$JS.API.CONSUMER.INFO.L.c", "");
    assert_eq!(c["num_pending"], 3, "the consumer counted a held eviction: {c}");
    let outs = h.send("$JS.API.CONSUMER.MSG.NEXT.L.c", Some("_INBOX.f1"), b"", br#"{"batch":1,"no_wait":true}"#);
    let got: Vec<String> = outs
        .iter()
        .filter(|o| o.to == "_INBOX.f1")
        .filter_map(|o| o.reply.clone())
        .filter(|r| r.starts_with("$JS.ACK."))
        .collect();
    assert_eq!(got.len(), 1, "{outs:?}");
    assert_eq!(got[0].split('.').nth(5), Some("2"), "the consumer skipped a message a pending append evicted");
    // The next commit fails: seq 5 is refused and the stream reopened from disk, which
    // still holds seq 2; its eviction never happened.
    let outs = failing_sync(&mut h);
    let refused = outs.iter().find(|o| o.to == "_INBOX.p5").expect("seq 5 answered");
    assert_eq!(refused.json()["error"]["err_code"], 10077, "{outs:?}");
    let info = h.api("$JS.API.STREAM.INFO.L", "");
    let st = &info["state"];
    assert_eq!(
        (st["first_seq"].as_u64(), st["last_seq"].as_u64(), st["messages"].as_u64()),
        (Some(2), Some(5), Some(3)),
        "the refused publish evicted seq 2, or the reopen moved the stream back: {info}"
    );
    // Every message still in the stream reaches the consumer, in order.
    let mut got = got;
    got.extend(fetch_from(&mut h, "L", "_INBOX.f2", 10));
    let seqs: Vec<&str> = got.iter().map(|r| r.split('.').nth(5).unwrap()).collect();
    assert_eq!(seqs, ["2", "3", "4"], "{got:?}");
    for r in &got {
        h.send(r, None, b"", b"+ACK");
    }
    let c = h.api("$JS.API.CONSUMER.INFO.L.c", "");
    assert_eq!(c["ack_floor"]["stream_seq"], 4, "{c}");
    // A sequence is never handed out twice; seq 6 evicts seq 2 for good.
    assert_eq!(h.publish("l.6", b"", b"y")["seq"], 6);
    h.restart(true);
    let st = h.api("$JS.API.STREAM.INFO.L", "")["state"].clone();
    assert_eq!((st["first_seq"].as_u64(), st["last_seq"].as_u64()), (Some(3), Some(6)), "{st}");
}

const KV: &str = r#"{"name":"KV_b","subjects":["$KV.b.>"],"max_msgs_per_subject":1,"discard":"new","allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"duplicate_window":120000000000}"#;

/// A KV get: the payload of the last message on `$KV.b.<key>`, `None` if there is none.
fn kv_get(h: &mut Harness, key: &str) -> Option<Vec<u8>> {
    let body = format!(r#"{{"last_by_subj":"$KV.b.{key}"}}"#);
    let r = h.api("$JS.API.STREAM.MSG.GET.KV_b", &body);
    let data = r["message"]["data"].as_str()?;
    Some(crate::jetstream::decode_base64(data).expect("base64"))
}

/// A KV put answered after a group commit that fails: how the failure looks on the
/// disk is `fault` (a full disk refuses the write; a failed fsync leaves the written
/// record readable until a power cut).
fn kv_put_failing(h: &mut Harness, key: &str, value: &[u8], fault: Fault) -> Value {
    let inbox = format!("_INBOX.put.{key}");
    assert!(h.send(&format!("$KV.b.{key}"), Some(&inbox), b"", value).is_empty(), "no PubAck before the sync");
    let outs = match fault {
        Fault::DiskFull => failing_sync(h),
        Fault::Fsync => {
            h.disk.fail_sync.store(true, Ordering::Relaxed);
            let mut out = Vec::new();
            assert!(h.js.sync(h.now, &mut out).is_err(), "the sync must fail");
            h.disk.fail_sync.store(false, Ordering::Relaxed);
            let mut outs = flatten(out);
            outs.extend(h.advance(crate::jetstream::engine::REOPEN_RETRY_NS));
            outs
        }
    };
    outs.iter().find(|o| o.to == inbox).expect("the put is answered").json()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    DiskFull,
    Fsync,
}

/// A KV put (`max_msgs_per_subject: 1`) whose group commit fails is answered with
/// 10077, and the key keeps its previous value: the per-subject eviction the put caused
/// takes effect only once the put is durable. After the disk recovers, puts work again.
#[test]
fn a_failed_kv_put_keeps_the_previous_value() {
    for fault in [Fault::DiskFull, Fault::Fsync] {
        let mut h = Harness::new();
        h.create_stream(KV);
        assert_eq!(h.publish("$KV.b.k", b"", b"v1")["seq"], 1, "{fault:?}");
        let refused = kv_put_failing(&mut h, "k", b"v2", fault);
        assert_eq!(refused["error"]["err_code"], 10077, "{fault:?}: {refused}");
        assert_eq!(kv_get(&mut h, "k").as_deref(), Some(&b"v1"[..]), "{fault:?}: the failed put lost the value");
        let info = h.api("$JS.API.STREAM.INFO.KV_b", "");
        let st = &info["state"];
        assert_eq!((st["messages"].as_u64(), st["last_seq"].as_u64()), (Some(1), Some(2)), "{fault:?}: {info}");
        // The disk works again: the next put replaces v1 (the refused sequence stays spent).
        assert_eq!(h.publish("$KV.b.k", b"", b"v3")["seq"], 3, "{fault:?}");
        assert_eq!(kv_get(&mut h, "k").as_deref(), Some(&b"v3"[..]), "{fault:?}");
        h.restart(true);
        assert_eq!(kv_get(&mut h, "k").as_deref(), Some(&b"v3"[..]), "{fault:?}: after a power cut");
        assert_eq!(h.api("$JS.API.STREAM.INFO.KV_b", "")["state"]["messages"], 1, "{fault:?}");
    }
}

/// Neither does a failed put lose the value to a power cut that follows the reopen:
/// the refused put's record, which the failed fsync left readable, is removed for good
/// before the reopened store evicts anything on its account.
#[test]
fn a_failed_kv_put_followed_by_a_power_cut_keeps_the_previous_value() {
    let mut h = Harness::new();
    h.create_stream(KV);
    h.publish("$KV.b.k", b"", b"v1");
    let refused = kv_put_failing(&mut h, "k", b"v2", Fault::Fsync);
    assert_eq!(refused["error"]["err_code"], 10077, "{refused}");
    h.restart(true);
    assert_eq!(kv_get(&mut h, "k").as_deref(), Some(&b"v1"[..]), "the refused put came back after a power cut");
}

/// `max_msgs` (discard old): a publish whose commit fails evicts nothing; the oldest
/// message stays stored and is delivered, and the next publish evicts it.
#[test]
fn a_failed_publish_evicts_nothing_under_max_msgs() {
    for fault in [Fault::DiskFull, Fault::Fsync] {
        let mut h = Harness::new();
        h.create_stream(r#"{"name":"L","subjects":["l.>"],"max_msgs":2}"#);
        let consumer = r#"{"stream_name":"L","config":{"durable_name":"c","ack_policy":"explicit"}}"#;
        h.api("$JS.API.CONSUMER.CREATE.L.c", consumer);
        h.publish("l.1", b"", b"x");
        h.publish("l.2", b"", b"x");
        assert!(h.send("l.3", Some("_INBOX.p3"), b"", b"x").is_empty());
        let outs = match fault {
            Fault::DiskFull => failing_sync(&mut h),
            Fault::Fsync => {
                h.disk.fail_sync.store(true, Ordering::Relaxed);
                let mut out = Vec::new();
                assert!(h.js.sync(h.now, &mut out).is_err());
                h.disk.fail_sync.store(false, Ordering::Relaxed);
                let mut outs = flatten(out);
                outs.extend(h.advance(crate::jetstream::engine::REOPEN_RETRY_NS));
                outs
            }
        };
        let refused = outs.iter().find(|o| o.to == "_INBOX.p3").expect("answered").json();
        assert_eq!(refused["error"]["err_code"], 10077, "{fault:?}: {refused}");
        let st = h.api("$JS.API.STREAM.INFO.L", "")["state"].clone();
        assert_eq!(
            (st["first_seq"].as_u64(), st["last_seq"].as_u64(), st["messages"].as_u64()),
            (Some(1), Some(3), Some(2)),
            "{fault:?}: the refused publish evicted seq 1: {st}"
        );
        let got = fetch_from(&mut h, "L", "_INBOX.f", 10);
        let seqs: Vec<&str> = got.iter().map(|r| r.split('.').nth(5).unwrap()).collect();
        assert_eq!(seqs, ["1", "2"], "{fault:?}");
        assert_eq!(h.publish("l.4", b"", b"x")["seq"], 4);
        let st = h.api("$JS.API.STREAM.INFO.L", "")["state"].clone();
        assert_eq!((st["first_seq"].as_u64(), st["messages"].as_u64()), (Some(2), Some(2)), "{fault:?}: {st}");
        h.restart(true);
        let st = h.api("$JS.API.STREAM.INFO.L", "")["state"].clone();
        assert_eq!((st["first_seq"].as_u64(), st["messages"].as_u64()), (Some(2), Some(2)), "{fault:?}: {st}");
    }
}
