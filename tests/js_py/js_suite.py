"""nats-py's JetStream API on the cases of tests/js_client.rs.

Usage: python js_suite.py URL [--weir] [--skip CASE=REASON ...] [--only CASE ...] [--run-id ID]

Runs every case against the server at URL (weir with JetStream, or nats-server -js),
each with its own stream names, and ends with the line 'N passed, N failed, N skipped'.
Exit status 0 only if nothing failed. No pytest: a small runner, so the venv needs only
nats-py. Cases use only what a client sees (PubAcks, API replies down to code and
err_code, deliveries and their metadata).
"""

import asyncio
import json
import os
import sys
import time
import traceback

import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import APIError, BadRequestError, KeyWrongLastSequenceError, NotFoundError

WAIT = 10.0
# Names unique to this run; the restart phases (two processes) share one via --run-id.
RUN_ID = str(os.getpid())
CASES = []


# Set by --weir: the target is weir, whose known differences (docs/JS-COMPAT.md) the
# cases check around, printing each.
WEIR = False


def known_weir_bug(test, ok, what):
    """A check weir is known to fail (docs/JS-COMPAT.md): fails the case on any other
    server, on weir only prints the note (and disappears once weir is fixed)."""
    if ok:
        return True
    if not WEIR:
        raise AssertionError(f"{test}: {what}")
    print(f"KNOWN WEIR BUG in {test}: {what}")
    return False


def case(fn):
    CASES.append(fn)
    return fn


def sname(test):
    return f"P{RUN_ID}_{test.upper()}"


def subj(test):
    return f"p{RUN_ID}.js.{test}"


def eq(got, want, what=""):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def raw_api(nc, subject, body=""):
    """A raw JetStream API request; the reply parsed as JSON."""
    m = await nc.request(subject, body.encode() if isinstance(body, str) else body, timeout=WAIT)
    return json.loads(m.data)


def err_codes(v):
    check("error" in v, f"expected an error reply, got {v}")
    return (v["error"].get("code"), v["error"].get("err_code"))


async def pub_raw(nc, subject, headers, payload):
    m = await nc.request(subject, payload.encode(), timeout=WAIT, headers=headers or None)
    return json.loads(m.data)


async def api_error(coro):
    """Await coro, which must raise an APIError; return (code, err_code, description)."""
    try:
        await coro
    except APIError as e:
        return (e.code, e.err_code, e.description)
    raise AssertionError("expected an API error")


async def eventually(what, check_fn):
    deadline = time.monotonic() + WAIT
    while True:
        ok, got = await check_fn()
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got} after {WAIT}s")
        await asyncio.sleep(0.02)


async def state(js, name):
    si = await js.stream_info(name)
    return (si.state.messages, si.state.first_seq)


async def fetch(psub, n, timeout):
    """Up to n messages waiting at most timeout; [] on timeout."""
    try:
        return await psub.fetch(n, timeout=timeout)
    except NatsTimeout:
        return []


@case
async def stream_create_update_delete(nc, js):
    name, p = sname("crud"), subj("crud")
    si = await js.add_stream(name=name, subjects=[f"{p}.>"], max_msgs=100)
    eq(si.config.name, name, "name")
    eq(si.config.subjects, [f"{p}.>"], "subjects")
    eq(si.config.max_msgs, 100, "max_msgs")
    eq(si.config.retention, api.RetentionPolicy.LIMITS, "retention")
    eq(si.config.storage, api.StorageType.FILE, "storage")
    eq(si.config.num_replicas, 1, "replicas")
    eq(si.config.duplicate_window, 120.0, "default duplicate window (s)")
    eq(si.config.max_bytes, -1, "max_bytes")
    eq(si.state.messages, 0, "messages")
    await js.add_stream(name=name, subjects=[f"{p}.>"], max_msgs=100)  # idempotent
    code = await api_error(js.add_stream(name=name, subjects=[f"{p}.>"], max_msgs=50))
    eq(code[:2], (400, 10058), "create with another config")
    si = await js.update_stream(name=name, subjects=[f"{p}.>"], max_msgs=200, description="updated")
    eq((si.config.max_msgs, si.config.description), (200, "updated"), "updated")
    code = await api_error(js.update_stream(name=name, subjects=[f"{p}.>"], storage=api.StorageType.MEMORY))
    eq(code[:2], (500, 10052), "storage change")
    names = [s.config.name for s in await js.streams_info()]
    check(name in names, f"{name} not listed")
    eq(await js.delete_stream(name), True, "deleted")
    code = await api_error(js.stream_info(name))
    eq(code[:2], (404, 10059), "info after delete")


@case
async def publish_gets_puback(nc, js):
    name, p = sname("puback"), subj("puback")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for i, s in enumerate(["a", "b", "a"]):
        ack = await js.publish(f"{p}.{s}", f"m{i}".encode())
        eq((ack.stream, ack.seq, bool(ack.duplicate)), (name, i + 1, False), "PubAck")
    v = await pub_raw(nc, f"{p}.b", None, "raw")
    eq((v["stream"], v["seq"], v.get("duplicate", False)), (name, 4, False), "raw PubAck")
    v = await raw_api(nc, f"$JS.API.STREAM.INFO.{name}")
    st = v["state"]
    eq((st["messages"], st["first_seq"], st["last_seq"], st["num_subjects"]), (4, 1, 4, 2), "state")
    try:
        await js.publish(f"p{RUN_ID}.js.nostream", b"x")
        raise AssertionError("publish without a stream succeeded")
    except nats.js.errors.NoStreamResponseError:
        pass


@case
async def dedup_by_msg_id(nc, js):
    name, p = sname("dedup"), subj("dedup")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    a = await js.publish(f"{p}.x", b"a", headers={"Nats-Msg-Id": "a"})
    eq((a.seq, bool(a.duplicate)), (1, False), "first")
    a2 = await js.publish(f"{p}.x", b"a", headers={"Nats-Msg-Id": "a"})
    eq((a2.seq, a2.duplicate), (1, True), "duplicate")
    b = await js.publish(f"{p}.x", b"b", headers={"Nats-Msg-Id": "b"})
    eq((b.seq, bool(b.duplicate)), (2, False), "second id")
    eq((await state(js, name))[0], 2, "stored")


@case
async def expected_headers_errors(nc, js):
    name, p = sname("expect"), subj("expect")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    a, b = f"{p}.a", f"{p}.b"
    await js.publish(a, b"1", headers={"Nats-Msg-Id": "m1"})
    await js.publish(b, b"2", headers={"Nats-Msg-Id": "m2"})
    e = await api_error(js.publish(a, b"x", headers={"Nats-Expected-Last-Sequence": "1"}))
    eq(e, (400, 10071, "wrong last sequence: 2"), "expected last seq")
    eq((await js.publish(a, b"3", headers={"Nats-Expected-Last-Sequence": "2"})).seq, 3, "right last seq")
    e = await api_error(js.publish(a, b"x", stream="NOPE"))
    eq(e, (400, 10060, "expected stream does not match"), "expected stream")
    eq((await js.publish(a, b"4", stream=name)).seq, 4, "right stream")
    await js.publish(a, b"5", headers={"Nats-Msg-Id": "m5"})
    e = await api_error(js.publish(a, b"x", headers={"Nats-Expected-Last-Msg-Id": "m1"}))
    eq(e, (400, 10070, "wrong last msg ID: m5"), "expected last msg id")
    eq((await js.publish(a, b"6", headers={"Nats-Expected-Last-Msg-Id": "m5"})).seq, 6, "right msg id")
    e = await api_error(js.publish(b, b"x", headers={"Nats-Expected-Last-Subject-Sequence": "1"}))
    eq(e, (400, 10071, "wrong last sequence: 2"), "expected last subject seq")
    eq((await js.publish(b, b"7", headers={"Nats-Expected-Last-Subject-Sequence": "2"})).seq, 7, "right subject seq")
    c = f"{p}.c"
    eq((await js.publish(c, b"8", headers={"Nats-Expected-Last-Subject-Sequence": "0"})).seq, 8, "fresh subject")
    e = await api_error(js.publish(c, b"x", headers={"Nats-Expected-Last-Subject-Sequence": "0"}))
    eq(e[:2], (400, 10071), "subject no longer fresh")
    si = await js.stream_info(name)
    eq((si.state.messages, si.state.last_seq), (8, 8), "refused messages not stored")


@case
async def pull_fetch_batch_with_acks(nc, js):
    name, p = sname("pull"), subj("pull")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for i in range(10):
        await js.publish(f"{p}.x", str(i).encode())
    psub = await js.pull_subscribe(f"{p}.x", durable="worker", stream=name)
    ci = await psub.consumer_info()
    eq(ci.num_pending, 10, "pending")
    eq(ci.config.ack_policy, api.AckPolicy.EXPLICIT, "ack policy")
    eq(ci.config.ack_wait, 30.0, "default ack_wait")
    msgs = await psub.fetch(4, timeout=2)
    eq([m.data for m in msgs], [b"0", b"1", b"2", b"3"], "first fetch")
    for i, m in enumerate(msgs):
        md = m.metadata
        eq((md.stream, md.consumer, md.sequence.stream, md.sequence.consumer, md.num_delivered, md.num_pending),
           (name, "worker", i + 1, i + 1, 1, 10 - (i + 1)), "metadata")
        await m.ack_sync()
    ci = await psub.consumer_info()
    eq((ci.ack_floor.stream_seq, ci.delivered.stream_seq, ci.num_ack_pending, ci.num_pending), (4, 4, 0, 6), "info")
    msgs = await psub.fetch(6, timeout=2)
    eq([m.data for m in msgs], [str(i).encode() for i in range(4, 10)], "second fetch")
    for m in msgs:
        await m.ack_sync()
    ci = await psub.consumer_info()
    eq((ci.ack_floor.stream_seq, ci.num_ack_pending, ci.num_pending, ci.num_redelivered), (10, 0, 0, 0), "all acked")
    eq(await fetch(psub, 5, 0.5), [], "nothing left")


@case
async def pull_request_status_messages(nc, js):
    name, p = sname("pullstatus"), subj("pullstatus")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.add_consumer(name, durable_name="w", ack_policy=api.AckPolicy.EXPLICIT)
    nxt = f"$JS.API.CONSUMER.MSG.NEXT.{name}.w"
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(nxt, b'{"batch":1,"no_wait":true}', reply=inbox)
    m = await sub.next_msg(timeout=WAIT)
    eq(m.headers.get("Status") if m.headers else None, "404", "no_wait on empty")
    await nc.publish(nxt, b'{"batch":1,"expires":200000000}', reply=inbox)
    m = await sub.next_msg(timeout=WAIT)
    eq(m.headers.get("Status") if m.headers else None, "408", "expired")
    await js.publish(f"{p}.x", b"hello")
    await nc.publish(nxt, b'{"batch":1,"expires":5000000000}', reply=inbox)
    m = await sub.next_msg(timeout=WAIT)
    eq((m.subject, m.data), (f"{p}.x", b"hello"), "delivery")
    check(m.reply.startswith(f"$JS.ACK.{name}.w.1.1.1.") and len(m.reply.split(".")) == 9, m.reply)
    r = await nc.request(m.reply, b"+ACK", timeout=WAIT)
    eq(r.data, b"", "ack answered")


@case
async def push_consumer_heartbeats_and_flow_control(nc, js):
    name, p = sname("push"), subj("push")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.flush()
    await js.add_consumer(name, durable_name="pusher", deliver_subject=inbox, idle_heartbeat=0.2,
                          flow_control=True, ack_policy=api.AckPolicy.NONE)
    hb = await sub.next_msg(timeout=WAIT)
    eq((hb.headers or {}).get("Status"), "100", "heartbeat status")
    eq((hb.headers or {}).get("Description"), "Idle Heartbeat", "heartbeat description")
    n, body = 400, b"x" * 4096
    for _ in range(n):
        await js.publish(f"{p}.x", body)
    seen = fc = 0
    while seen < n:
        m = await sub.next_msg(timeout=WAIT)
        h = m.headers or {}
        if h.get("Status") == "100":
            if h.get("Description") == "FlowControl Request":
                fc += 1
                await nc.publish(m.reply, b"")
            continue
        check(not h.get("Status"), f"unexpected status {h}")
        seen += 1
        eq(int(m.reply.split(".")[5]), seen, "stream sequence in order")
    check(fc >= 1, f"no flow-control request in {n} messages of 4 KiB")
    # nats-py's own push subscription answers flow control and heartbeats itself.
    got = []
    done = asyncio.Event()

    async def cb(msg):
        got.append(msg.metadata.sequence.stream)
        if len(got) == n:
            done.set()

    s2 = await js.subscribe(f"{p}.x", stream=name, cb=cb, idle_heartbeat=0.2, flow_control=True,
                            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE))
    await asyncio.wait_for(done.wait(), WAIT)
    eq(got, list(range(1, n + 1)), "client push subscription")
    await s2.unsubscribe()


@case
async def redelivery_after_ack_wait(nc, js):
    name, p = sname("ackwait"), subj("ackwait")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.x", b"once")
    psub = await js.pull_subscribe(f"{p}.x", durable="slow", stream=name, config=api.ConsumerConfig(ack_wait=0.5))
    m = (await psub.fetch(1, timeout=2))[0]
    eq(m.metadata.num_delivered, 1, "first")
    m = (await psub.fetch(1, timeout=5))[0]
    eq((m.metadata.sequence.stream, m.metadata.num_delivered, m.data), (1, 2, b"once"), "redelivered")
    await m.ack_sync()
    ci = await psub.consumer_info()
    eq((ci.num_ack_pending, ci.ack_floor.stream_seq), (0, 1), "acked")


@case
async def nak_with_delay_and_without(nc, js):
    name, p = sname("nak"), subj("nak")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.x", b"n")
    psub = await js.pull_subscribe(f"{p}.x", durable="naker", stream=name)
    m = (await psub.fetch(1, timeout=2))[0]
    await m.nak()
    m = (await psub.fetch(1, timeout=5))[0]
    eq(m.metadata.num_delivered, 2, "after -NAK")
    t0 = time.monotonic()
    await m.nak(delay=1)
    m = (await psub.fetch(1, timeout=5))[0]
    check(time.monotonic() - t0 >= 1.0, f"redelivered {time.monotonic() - t0:.3f}s after a 1s NAK delay")
    eq((m.metadata.num_delivered, m.metadata.sequence.stream), (3, 1), "after delayed -NAK")
    await m.ack_sync()


@case
async def term_stops_redelivery(nc, js):
    name, p = sname("term"), subj("term")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.x", b"poison")
    psub = await js.pull_subscribe(f"{p}.x", durable="termer", stream=name, config=api.ConsumerConfig(ack_wait=0.3))
    m = (await psub.fetch(1, timeout=2))[0]
    await m.term()
    await nc.flush()
    await eventually("term processed", lambda: _ack_state(psub, (0, 1)))
    eq(await fetch(psub, 1, 1.0), [], "terminated message redelivered")
    await js.publish(f"{p}.x", b"good")
    m = (await psub.fetch(1, timeout=5))[0]
    eq((m.data, m.metadata.sequence.stream), (b"good", 2), "next")


async def _ack_state(psub, want):
    ci = await psub.consumer_info()
    got = (ci.num_ack_pending, ci.ack_floor.stream_seq)
    return got == want, got


@case
async def max_deliver_limits_redeliveries(nc, js):
    name, p = sname("maxdeliver"), subj("maxdeliver")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.x", b"m")
    psub = await js.pull_subscribe(f"{p}.x", durable="md", stream=name,
                                   config=api.ConsumerConfig(ack_wait=0.3, max_deliver=2))
    eq((await psub.fetch(1, timeout=2))[0].metadata.num_delivered, 1, "1st")
    eq((await psub.fetch(1, timeout=5))[0].metadata.num_delivered, 2, "2nd")
    eq(await fetch(psub, 1, 1.5), [], "3rd delivery with max_deliver 2")
    ci = await psub.consumer_info()
    eq((ci.delivered.stream_seq, ci.num_pending), (1, 0), "info")


@case
async def workqueue_retention(nc, js):
    name, p = sname("wq"), subj("wq")
    await js.add_stream(name=name, subjects=[f"{p}.>"], retention=api.RetentionPolicy.WORK_QUEUE)
    psub = await js.pull_subscribe(f"{p}.a", durable="wa", stream=name)
    e = await api_error(js.add_consumer(name, durable_name="wa2", filter_subject=f"{p}.a", ack_policy=api.AckPolicy.EXPLICIT))
    eq(e[:2], (400, 10100), "same filter twice")
    e = await api_error(js.add_consumer(name, durable_name="wall", ack_policy=api.AckPolicy.EXPLICIT))
    eq(e[:2], (400, 10099), "unfiltered next to filtered")
    e = await api_error(js.add_consumer(name, durable_name="wb", filter_subject=f"{p}.b", ack_policy=api.AckPolicy.NONE))
    eq(e[:2], (400, 10084), "ack none on workqueue pull")
    for i in range(3):
        await js.publish(f"{p}.a", str(i).encode())
    eq(await state(js, name), (3, 1), "stored")
    msgs = await psub.fetch(3, timeout=2)
    await msgs[1].ack_sync()

    async def st(want):
        got = await state(js, name)
        return got == want, got

    await eventually("acked message removed", lambda: st((2, 1)))
    await msgs[0].ack_sync()
    await msgs[2].ack_sync()
    si = await js.stream_info(name)
    await eventually("queue empty", lambda: st((0, 4)))


@case
async def interest_retention(nc, js):
    name, p = sname("interest"), subj("interest")
    await js.add_stream(name=name, subjects=[f"{p}.>"], retention=api.RetentionPolicy.INTEREST)
    eq((await js.publish(f"{p}.x", b"nobody")).seq, 1, "acked without interest")

    async def count(want):
        got = (await state(js, name))[0]
        return got == want, got

    await eventually("no interest, no message", lambda: count(0))
    a = await js.pull_subscribe(f"{p}.x", durable="a", stream=name)
    b = await js.pull_subscribe(f"{p}.x", durable="b", stream=name)
    await js.publish(f"{p}.x", b"1")
    await js.publish(f"{p}.x", b"2")
    eq((await state(js, name))[0], 2, "held for a and b")
    for m in await a.fetch(2, timeout=2):
        await m.ack_sync()
    eq((await state(js, name))[0], 2, "b has not acked")
    bm = await b.fetch(2, timeout=2)
    await bm[0].ack_sync()
    await eventually("acked by both", lambda: count(1))
    await js.delete_consumer(name, "b")
    await eventually("consumer deleted releases", lambda: count(0))


@case
async def purge_all_subject_keep(nc, js):
    name, p = sname("purge"), subj("purge")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for i in range(10):
        await js.publish(f"{p}.{'a' if i % 2 == 0 else 'b'}", str(i).encode())
    for i in range(5):
        await js.publish(f"{p}.c", f"c{i}".encode())
    v = await raw_api(nc, f"$JS.API.STREAM.PURGE.{name}", json.dumps({"filter": f"{p}.a"}))
    eq((v["success"], v["purged"]), (True, 5), "purge subject")
    eq(await state(js, name), (10, 2), "after subject purge")
    v = await raw_api(nc, f"$JS.API.STREAM.PURGE.{name}", json.dumps({"filter": f"{p}.c", "keep": 2}))
    eq(v["purged"], 3, "filter+keep")
    eq(await js.purge_stream(name, keep=3), True, "keep 3")
    eq(await state(js, name), (3, 10), "after keep")
    v = await raw_api(nc, f"$JS.API.STREAM.PURGE.{name}", json.dumps({"seq": 14}))
    eq(v["purged"], 1, "below seq 14")
    v = await raw_api(nc, f"$JS.API.STREAM.PURGE.{name}", "")
    eq(v["purged"], 2, "all")
    si = await js.stream_info(name)
    eq((si.state.messages, si.state.first_seq, si.state.last_seq), (0, 16, 15), "empty")
    eq((await js.publish(f"{p}.a", b"after")).seq, 16, "sequence goes on")


@case
async def message_get_and_delete(nc, js):
    name, p = sname("msgget"), subj("msgget")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.a", b"one")
    await js.publish(f"{p}.b", b"two", headers={"X-Test": "yes"})
    await js.publish(f"{p}.a", b"three")
    m = await js.get_msg(name, 2)
    eq((m.subject, m.seq, m.data), (f"{p}.b", 2, b"two"), "get 2")
    eq((m.headers or {}).get("X-Test"), "yes", "header kept")
    m = await js.get_last_msg(name, f"{p}.a")
    eq((m.seq, m.data), (3, b"three"), "last by subject")
    m = await js.get_msg(name, seq=2, subject=f"{p}.a", next=True)
    eq(m.seq, 3, "next by subject")
    eq(await js.delete_msg(name, 2), True, "delete")
    e = await api_error(js.get_msg(name, 2))
    eq(e, (404, 10037, "no message found"), "get deleted")
    v = await raw_api(nc, f"$JS.API.STREAM.MSG.DELETE.{name}", '{"seq":2}')
    eq(v["error"]["code"], 400, "delete again")
    si = await js.stream_info(name)
    eq((si.state.messages, si.state.first_seq, si.state.last_seq), (2, 1, 3), "state")


@case
async def direct_get(nc, js):
    name, p = sname("direct"), subj("direct")
    await js.add_stream(name=name, subjects=[f"{p}.>"], allow_direct=True)
    for s, d in [("a", b"1"), ("b", b"2"), ("a", b"3")]:
        await js.publish(f"{p}.{s}", d)
    m = await js.get_msg(name, 2, direct=True)
    eq((m.subject, m.seq, m.data), (f"{p}.b", 2, b"2"), "direct 2")
    m = await js.get_msg(name, subject=f"{p}.a", direct=True)
    eq((m.seq, m.data), (3, b"3"), "direct last")
    r = await nc.request(f"$JS.API.DIRECT.GET.{name}", b'{"seq":1}', timeout=WAIT)
    eq((r.headers.get("Nats-Stream"), r.headers.get("Nats-Sequence"), r.headers.get("Nats-Subject"), r.data),
       (name, "1", f"{p}.a", b"1"), "raw direct get")
    check(r.headers.get("Nats-Time-Stamp"), "no Nats-Time-Stamp")
    r = await nc.request(f"$JS.API.DIRECT.GET.{name}.{p}.b", b"", timeout=WAIT)
    eq(r.headers.get("Nats-Sequence"), "2", "last-by-subject form")
    r = await nc.request(f"$JS.API.DIRECT.GET.{name}", b'{"seq":99}', timeout=WAIT)
    eq((r.headers or {}).get("Status"), "404", "miss")
    other = f"{name}_NODIRECT"
    await js.add_stream(name=other, subjects=[f"{p}nd.>"])
    try:
        await nc.request(f"$JS.API.DIRECT.GET.{other}", b'{"seq":1}', timeout=WAIT)
        raise AssertionError("direct get answered without allow_direct")
    except NoRespondersError:
        pass


@case
async def kv_put_get_delete_watch_history(nc, js):
    bucket = sname("kv")
    kv = await js.create_key_value(bucket=bucket, history=5)
    st = await kv.status()
    eq((st.bucket, st.history), (bucket, 5), "status")
    w = await kv.watchall()
    eq(await kv.put("k", b"v1"), 1, "rev 1")
    eq(await kv.put("k", b"v2"), 2, "rev 2")
    eq(await kv.put("j", b"w"), 3, "rev 3")
    e = await kv.get("k")
    eq((e.value, e.revision), (b"v2", 2), "get")
    try:
        await kv.update("k", b"v3", last=1)
        raise AssertionError("update with a stale revision")
    except KeyWrongLastSequenceError:
        pass
    eq(await kv.update("k", b"v3", last=2), 4, "update")
    try:
        await kv.create("k", b"x")
        raise AssertionError("create over an existing key")
    except KeyWrongLastSequenceError:
        pass
    await kv.delete("k")
    try:
        await kv.get("k")
        raise AssertionError("get after delete")
    except nats.js.errors.KeyNotFoundError:
        pass
    hist = [(e.revision, e.operation, e.value or b"") for e in await kv.history("k")]
    eq(hist, [(1, None, b"v1"), (2, None, b"v2"), (4, None, b"v3"), (5, "DEL", b"")], "history")
    seen = []
    while len(seen) < 5:
        e = await w.updates(timeout=WAIT)
        if e is None:  # the end-of-initial-values marker
            continue
        seen.append((e.key, e.revision, e.operation))
    eq(seen, [("k", 1, None), ("k", 2, None), ("j", 3, None), ("k", 4, None), ("k", 5, "DEL")], "watch")
    eq(await kv.keys(), ["j"], "keys")
    for i in range(7):
        await kv.put("h", str(i).encode())
    eq([e.value for e in await kv.history("h")], [b"2", b"3", b"4", b"5", b"6"], "history capped at 5")
    await w.stop()


@case
async def object_store_put_get_list(nc, js):
    bucket = sname("obj")
    obs = await js.create_object_store(bucket)
    big = bytes(i % 251 for i in range(300_000))
    info = await obs.put("big", big)
    eq((info.size, info.chunks), (len(big), 3), "put big")
    await obs.put("small", b"hello")
    r = await obs.get("big")
    check(r.data == big, "object content differs")
    names = sorted(i.name for i in await obs.list())
    eq(names, ["big", "small"], "list")
    await obs.delete("small")
    names = [i.name for i in await obs.list() if not i.deleted]
    eq(names, ["big"], "list after delete (live objects)")
    try:
        await obs.get("small")
        raise AssertionError("get of a deleted object")
    except (nats.js.errors.ObjectDeletedError, nats.js.errors.ObjectNotFoundError):
        pass


@case
async def invalid_configs_get_server_errors(nc, js):
    name, p = sname("invalid"), subj("invalid")
    create = f"$JS.API.STREAM.CREATE.{name}"
    v = await raw_api(nc, create, json.dumps({"name": "OTHER", "subjects": [f"{p}.x"]}))
    eq(err_codes(v), (400, 10056), "name mismatch")
    v = await raw_api(nc, create, "{not json")
    eq(err_codes(v), (400, 10025), "malformed JSON")
    v = await raw_api(nc, create, json.dumps({"name": name, "subjects": [f"{p}.x"], "max_age": 10**9, "duplicate_window": 5 * 10**9}))
    eq(err_codes(v), (500, 10052), "duplicate_window > max_age")
    v = await raw_api(nc, create, json.dumps({"name": name, "subjects": [f"{p}.x"], "max_age": -1}))
    eq(err_codes(v), (500, 10052), "negative max_age")
    e = await api_error(js.add_stream(name=name, subjects=[f"{p}.x"], num_replicas=3))
    eq(e, (500, 10074, "replicas > 1 not supported in non-clustered mode"), "replicas")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    e = await api_error(js.add_stream(name=f"{name}2", subjects=[f"{p}.x.*"]))
    eq(e, (400, 10065, "subjects overlap with an existing stream"), "overlap")
    cc = f"$JS.API.CONSUMER.CREATE.{name}.c1"
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "config": {"durable_name": "c2", "ack_policy": "explicit"}}))
    eq(v["error"]["code"], 400, "durable name differs from subject")
    v = await raw_api(nc, cc, json.dumps({"stream_name": "OTHER", "config": {"name": "c1"}}))
    eq(err_codes(v), (400, 10056), "stream mismatch")
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "config": {"name": "c1", "deliver_policy": "by_start_sequence"}}))
    eq(err_codes(v), (400, 10094), "by_start_sequence without opt_start_seq")
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "config": {"name": "c1", "flow_control": True}}))
    eq(v["error"]["code"], 400, "flow control on pull")
    v = await raw_api(nc, cc, "{bad")
    eq(err_codes(v), (400, 10025), "malformed consumer JSON")
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "action": "update", "config": {"name": "c1", "ack_policy": "explicit"}}))
    eq(err_codes(v), (400, 10149), "update of a missing consumer")
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "action": "create", "config": {"name": "c1", "ack_policy": "explicit"}}))
    eq(v.get("name"), "c1", f"create: {v}")
    v = await raw_api(nc, cc, json.dumps({"stream_name": name, "action": "create", "config": {"name": "c1", "ack_policy": "explicit", "max_deliver": 3}}))
    eq(err_codes(v), (400, 10148), "create over a different consumer")


@case
async def unknown_stream_and_consumer_errors(nc, js):
    name, p = sname("unknown"), subj("unknown")
    for s in ["STREAM.INFO", "STREAM.DELETE", "STREAM.PURGE", "CONSUMER.NAMES"]:
        v = await raw_api(nc, f"$JS.API.{s}.{name}")
        eq((err_codes(v), v["error"].get("description")), ((404, 10059), "stream not found"), s)
    e = await api_error(js.stream_info(name))
    eq(e[:2], (404, 10059), "typed stream_info")
    e = await api_error(js.add_consumer(name, durable_name="c"))
    eq(e[:2], (404, 10059), "consumer on a missing stream")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    e = await api_error(js.consumer_info(name, "nope"))
    eq(e, (404, 10014, "consumer not found"), "consumer info")
    e = await api_error(js.delete_consumer(name, "nope"))
    eq(e, (404, 10014, "consumer not found"), "consumer delete")


@case
async def account_info_and_listing(nc, js):
    name, p = sname("listing"), subj("listing")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for cn in ["c2", "c1"]:
        await js.add_consumer(name, durable_name=cn, ack_policy=api.AckPolicy.EXPLICIT)
    for s, d in [("a", b"1"), ("b", b"2"), ("a", b"3")]:
        await js.publish(f"{p}.{s}", d)
    acct = await js.account_info()
    check(acct.streams >= 1 and acct.consumers >= 2, f"account {acct}")
    body = json.dumps({"subject": f"{p}.a"})
    await js.add_stream(name=f"{name}_OTHER", subjects=[f"{p}other.>"])
    v = await raw_api(nc, "$JS.API.STREAM.LIST", body)
    known_weir_bug("account_info_and_listing", v["total"] == 1,
                   f"STREAM.LIST ignores the subject filter: total {v['total']} (want 1)")
    ours = [i for i in v["streams"] if i["config"]["name"] == name]
    eq((len(ours), ours[0]["state"]["messages"] if ours else None), (1, 3), "LIST")
    v = await raw_api(nc, "$JS.API.STREAM.NAMES", body)
    eq(v["streams"], [name], "NAMES")
    infos = await js.consumers_info(name)
    eq(sorted(i.name for i in infos), ["c1", "c2"], "consumers")
    check(all(i.num_pending == 3 for i in infos), "num_pending")
    eq(await js.find_stream_name_by_subject(f"{p}.zz"), name, "stream by subject")
    si = await js.stream_info(name, subjects_filter=f"{p}.>")
    eq(si.state.subjects, {f"{p}.a": 2, f"{p}.b": 1}, "per-subject counts")
    eq(si.state.consumer_count, 2, "consumer count")


@case
async def limits_and_discard_policies(nc, js):
    name, p = sname("limits"), subj("limits")
    await js.add_stream(name=f"{name}_OLD", subjects=[f"{p}.old.>"], max_msgs=3)
    for i in range(5):
        await js.publish(f"{p}.old.x", str(i).encode())
    eq(await state(js, f"{name}_OLD"), (3, 3), "discard old")
    await js.add_stream(name=f"{name}_NEW", subjects=[f"{p}.new.>"], max_msgs=2, discard=api.DiscardPolicy.NEW)
    await js.publish(f"{p}.new.x", b"1")
    await js.publish(f"{p}.new.x", b"2")
    e = await api_error(js.publish(f"{p}.new.x", b"3"))
    eq(e, (503, 10077, "maximum messages exceeded"), "discard new")
    await js.add_stream(name=f"{name}_PER", subjects=[f"{p}.per.>"], max_msgs_per_subject=1)
    for s in ["a", "a", "b", "a"]:
        await js.publish(f"{p}.per.{s}", s.encode())
    si = await js.stream_info(f"{name}_PER")
    eq((si.state.messages, si.state.first_seq, si.state.last_seq), (2, 3, 4), "per subject")
    await js.add_stream(name=f"{name}_SIZE", subjects=[f"{p}.size.>"], max_msg_size=10)
    await js.publish(f"{p}.size.x", b"0123456789")
    e = await api_error(js.publish(f"{p}.size.x", b"0123456789A"))
    eq(e, (400, 10054, "message size exceeds maximum allowed"), "max_msg_size")


@case
async def max_age_expires_messages(nc, js):
    name, p = sname("maxage"), subj("maxage")
    si = await js.add_stream(name=name, subjects=[f"{p}.>"], max_age=1.0)
    eq(si.config.duplicate_window, 1.0, "duplicate window lowered to max_age")
    await js.publish(f"{p}.x", b"1")
    await js.publish(f"{p}.x", b"2")

    async def st():
        got = await state(js, name)
        return got == (0, 3), got

    await eventually("expired", st)


@case
async def rollup_and_deny_flags(nc, js):
    name, p = sname("rollup"), subj("rollup")
    await js.add_stream(name=name, subjects=[f"{p}.r.>"], allow_rollup_hdrs=True)
    for s in ["a", "a", "b", "a"]:
        await js.publish(f"{p}.r.{s}", s.encode())
    eq((await js.publish(f"{p}.r.a", b"t", headers={"Nats-Rollup": "sub"})).seq, 5, "rollup sub")
    eq(await state(js, name), (2, 3), "after rollup sub")
    eq((await js.publish(f"{p}.r.c", b"all", headers={"Nats-Rollup": "all"})).seq, 6, "rollup all")
    eq(await state(js, name), (1, 6), "after rollup all")
    await js.add_stream(name=f"{name}_PLAIN", subjects=[f"{p}.p.>"])
    e = await api_error(js.publish(f"{p}.p.a", b"x", headers={"Nats-Rollup": "sub"}))
    eq(e, (500, 10111, "rollup not permitted"), "rollup without allow")
    await js.add_stream(name=f"{name}_DENY", subjects=[f"{p}.d.>"], deny_delete=True, deny_purge=True)
    await js.publish(f"{p}.d.a", b"x")
    e = await api_error(js.delete_msg(f"{name}_DENY", 1))
    eq(e, (500, 10057, "message delete not permitted"), "deny delete")
    e = await api_error(js.purge_stream(f"{name}_DENY"))
    eq(e, (500, 10110, "stream purge not permitted"), "deny purge")
    await js.add_stream(name=f"{name}_SEALED", subjects=[f"{p}.s.>"])
    await js.publish(f"{p}.s.a", b"x")
    si = await js.update_stream(name=f"{name}_SEALED", subjects=[f"{p}.s.>"], sealed=True)
    eq(si.config.sealed, True, "sealed")
    e = await api_error(js.publish(f"{p}.s.a", b"y"))
    eq(e, (400, 10109, "invalid operation on sealed stream"), "publish to sealed")


@case
async def deliver_policies_and_filters(nc, js):
    name, p = sname("deliver"), subj("deliver")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for s in ["a", "b", "a", "b", "c"]:
        await js.publish(f"{p}.{s}", s.encode())
    subs = {}
    for dn, cfg in [
        ("last", dict(deliver_policy=api.DeliverPolicy.LAST)),
        ("new", dict(deliver_policy=api.DeliverPolicy.NEW)),
        ("from3", dict(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=3)),
        ("lps", dict(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT, filter_subject=f"{p}.>")),
        ("multi", dict(filter_subjects=[f"{p}.a", f"{p}.c"])),
    ]:
        await js.add_consumer(name, durable_name=dn, ack_policy=api.AckPolicy.EXPLICIT, **cfg)
        subs[dn] = await js.pull_subscribe_bind(durable=dn, stream=name)
    await js.publish(f"{p}.a", b"a6")
    want = {"last": [5, 6], "new": [6], "from3": [3, 4, 5, 6], "lps": [3, 4, 5, 6], "multi": [1, 3, 5, 6]}
    for dn, seqs in want.items():
        got = [m.metadata.sequence.stream for m in await fetch(subs[dn], 10, 1.5)]
        eq(got, seqs, f"deliver {dn}")


@case
async def ack_all_and_max_ack_pending(nc, js):
    name, p = sname("ackall"), subj("ackall")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for i in range(5):
        await js.publish(f"{p}.x", str(i).encode())
    a = await js.pull_subscribe(f"{p}.x", durable="all", stream=name, config=api.ConsumerConfig(ack_policy=api.AckPolicy.ALL))
    msgs = await a.fetch(3, timeout=2)
    await msgs[2].ack_sync()
    ci = await a.consumer_info()
    eq((ci.ack_floor.stream_seq, ci.num_ack_pending), (3, 0), "ack all")
    cap = await js.pull_subscribe(f"{p}.x", durable="cap", stream=name, config=api.ConsumerConfig(max_ack_pending=2))
    msgs = await fetch(cap, 5, 1.0)
    eq([m.data for m in msgs], [b"0", b"1"], "max_ack_pending 2")
    for m in msgs:
        await m.ack_sync()
    eq([m.data for m in await fetch(cap, 5, 1.0)], [b"2", b"3"], "next two")


@case
async def ephemeral_consumer_goes_away_when_inactive(nc, js):
    name, p = sname("ephemeral"), subj("ephemeral")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    ci = await js.add_consumer(name, ack_policy=api.AckPolicy.EXPLICIT, inactive_threshold=0.5)
    check(ci.name and not ci.config.durable_name, f"ephemeral {ci.name} {ci.config.durable_name}")

    async def gone():
        v = await raw_api(nc, f"$JS.API.CONSUMER.INFO.{name}.{ci.name}")
        got = (v.get("error") or {}).get("err_code")
        return got == 10014, v

    await eventually("inactive ephemeral removed", gone)


@case
async def memory_stream_and_headers_only(nc, js):
    name, p = sname("memory"), subj("memory")
    si = await js.add_stream(name=name, subjects=[f"{p}.>"], storage=api.StorageType.MEMORY)
    eq(si.config.storage, api.StorageType.MEMORY, "memory")
    await js.publish(f"{p}.x", b"hello", headers={"X-Kind": "memo"})
    ps = await js.pull_subscribe(f"{p}.x", durable="ho", stream=name, config=api.ConsumerConfig(headers_only=True))
    m = (await ps.fetch(1, timeout=2))[0]
    eq((m.data, m.headers.get("Nats-Msg-Size"), m.headers.get("X-Kind")), (b"", "5", "memo"), "headers only")


@case
async def consumer_update_and_pause(nc, js):
    name, p = sname("cupdate"), subj("cupdate")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.add_consumer(name, durable_name="u", ack_policy=api.AckPolicy.EXPLICIT)
    v = await raw_api(nc, f"$JS.API.CONSUMER.CREATE.{name}.u", json.dumps(
        {"stream_name": name, "action": "update", "config": {"durable_name": "u", "ack_policy": "explicit", "description": "changed", "max_ack_pending": 50}}))
    eq((v["config"].get("description"), v["config"]["max_ack_pending"]), ("changed", 50), f"update {v}")
    v = await raw_api(nc, f"$JS.API.CONSUMER.CREATE.{name}.u", json.dumps(
        {"stream_name": name, "action": "update", "config": {"durable_name": "u", "ack_policy": "explicit", "deliver_policy": "new"}}))
    check("error" in v, f"deliver_policy changed: {v}")
    v = await raw_api(nc, f"$JS.API.CONSUMER.PAUSE.{name}.u", '{"pause_until":"2099-01-01T00:00:00Z"}')
    eq(v.get("paused"), True, f"pause {v}")
    eq((await raw_api(nc, f"$JS.API.CONSUMER.INFO.{name}.u")).get("paused"), True, "info paused")
    v = await raw_api(nc, f"$JS.API.CONSUMER.PAUSE.{name}.u", "{}")
    eq(v.get("paused"), False, f"resume {v}")


@case
async def pull_max_bytes_status(nc, js):
    name, p = sname("maxbytes"), subj("maxbytes")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    await js.publish(f"{p}.x", b"x" * 100)
    await js.add_consumer(name, durable_name="mb", ack_policy=api.AckPolicy.EXPLICIT)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{name}.mb", b'{"batch":1,"max_bytes":10,"expires":2000000000}', reply=inbox)
    m = await sub.next_msg(timeout=WAIT)
    eq(((m.headers or {}).get("Status"), (m.headers or {}).get("Description")), ("409", "Message Size Exceeds MaxBytes"), "409")


@case
async def per_message_ttl(nc, js):
    name, p = sname("ttl"), subj("ttl")
    await js.add_stream(name=name, subjects=[f"{p}.>"], allow_msg_ttl=True)
    eq((await js.publish(f"{p}.x", b"short", msg_ttl=1)).seq, 1, "ttl publish")
    await js.publish(f"{p}.x", b"forever")

    async def st():
        got = await state(js, name)
        return got == (1, 2), got

    await eventually("ttl message expired", st)
    await js.add_stream(name=f"{name}_PLAIN", subjects=[f"{p}plain.>"])
    e = await api_error(js.publish(f"{p}plain.x", b"x", msg_ttl=1))
    eq(e[0], 400, "TTL without allow_msg_ttl")


# Restart: the runner (tests/js_py.rs) runs restart_setup, restarts the in-process
# server over the same store directory, then runs restart_check. Not in CASES: an
# external server is not restarted.
RESTART_CASES = []


def restart_case(fn):
    RESTART_CASES.append(fn)
    return fn


@restart_case
async def restart_setup(nc, js):
    name, p = sname("restart"), subj("restart")
    await js.add_stream(name=name, subjects=[f"{p}.>"])
    for i in range(1, 6):
        await js.publish(f"{p}.x", str(i).encode(), headers={"Nats-Msg-Id": f"id{i}"})
    psub = await js.pull_subscribe(f"{p}.x", durable="keep", stream=name)
    msgs = await psub.fetch(3, timeout=2)
    await msgs[0].ack_sync()
    await msgs[1].ack_sync()
    kv = await js.create_key_value(bucket=f"{name}_KV")
    await kv.put("k", b"persisted")


@restart_case
async def restart_check(nc, js):
    name, p = sname("restart"), subj("restart")
    si = await js.stream_info(name)
    eq((si.state.messages, si.state.first_seq, si.state.last_seq), (5, 1, 5), "stream after restart")
    eq((await js.get_msg(name, 4)).data, b"4", "message after restart")
    ci = await js.consumer_info(name, "keep")
    eq((ci.ack_floor.stream_seq, ci.delivered.stream_seq, ci.num_pending), (2, 3, 2), "consumer after restart")
    ack = await js.publish(f"{p}.x", b"again", headers={"Nats-Msg-Id": "id2"})
    eq((ack.seq, ack.duplicate), (2, True), "dedup after restart")
    kv = await js.key_value(f"{name}_KV")
    eq((await kv.get("k")).value, b"persisted", "kv after restart")


async def run(url, skips, only):
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    js = nc.jetstream(timeout=WAIT)
    passed = failed = skipped = 0
    for fn in CASES + RESTART_CASES:
        n = fn.__name__
        if (only and n not in only) or (not only and fn in RESTART_CASES):
            continue
        if n in skips:
            print(f"SKIP {n}: {skips[n]}")
            skipped += 1
            continue
        try:
            await asyncio.wait_for(fn(nc, js), 60)
            print(f"PASS {n}")
            passed += 1
        except Exception:
            print(f"FAIL {n}")
            traceback.print_exc(file=sys.stdout)
            failed += 1
    await nc.close()
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return failed


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    url, skips, only = args[0], {}, set()
    i = 1
    while i < len(args):
        if args[i] == "--skip":
            k, _, reason = args[i + 1].partition("=")
            skips[k] = reason or "skipped"
            i += 2
        elif args[i] == "--weir":
            global WEIR
            WEIR = True
            i += 1
        elif args[i] == "--run-id":
            global RUN_ID
            RUN_ID = args[i + 1]
            i += 2
        elif args[i] == "--only":
            only.add(args[i + 1])
            i += 2
        else:
            print(f"unknown argument {args[i]}")
            sys.exit(2)
    sys.exit(1 if asyncio.run(run(url, skips, only)) else 0)


if __name__ == "__main__":
    main()
