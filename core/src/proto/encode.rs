//! Writing ops in wire form.

use super::{ByteStr, ClientOp, ServerOp};
use bytes::{BufMut, BytesMut};

/// Append `n` in decimal.
fn put_num(buf: &mut BytesMut, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

fn put_arg(buf: &mut BytesMut, s: &str) {
    buf.put_u8(b' ');
    buf.put_slice(s.as_bytes());
}

fn put_opt_arg(buf: &mut BytesMut, s: &Option<ByteStr>) {
    if let Some(s) = s {
        put_arg(buf, s);
    }
}

fn put_len(buf: &mut BytesMut, n: usize) {
    buf.put_u8(b' ');
    put_num(buf, n as u64);
}

/// Write the size argument(s), then the body: `<#bytes>` for plain messages,
/// `<#header bytes> <#total bytes>` when `headers` is given.
fn put_sizes_and_body(buf: &mut BytesMut, headers: Option<&[u8]>, payload: &[u8]) {
    let hdr = headers.unwrap_or_default();
    if headers.is_some() {
        put_len(buf, hdr.len());
    }
    put_len(buf, hdr.len() + payload.len());
    buf.put_slice(b"\r\n");
    buf.put_slice(hdr);
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// Write a client-to-server op.
pub fn encode_client(op: &ClientOp, buf: &mut BytesMut) {
    match op {
        ClientOp::Connect(info) => {
            buf.put_slice(b"CONNECT ");
            buf.put_slice(info.to_json().as_bytes());
            buf.put_slice(b"\r\n");
        }
        ClientOp::Pub { subject, reply, payload } => {
            buf.reserve(subject.len() + reply.as_ref().map_or(0, |r| r.len() + 1) + payload.len() + 20);
            buf.put_slice(b"PUB");
            put_arg(buf, subject);
            put_opt_arg(buf, reply);
            put_sizes_and_body(buf, None, payload);
        }
        ClientOp::HPub { subject, reply, headers, payload } => {
            let total = headers.len() + payload.len();
            buf.reserve(subject.len() + reply.as_ref().map_or(0, |r| r.len() + 1) + total + 32);
            buf.put_slice(b"HPUB");
            put_arg(buf, subject);
            put_opt_arg(buf, reply);
            put_sizes_and_body(buf, Some(headers), payload);
        }
        ClientOp::Sub { subject, queue, sid } => {
            buf.put_slice(b"SUB");
            put_arg(buf, subject);
            put_opt_arg(buf, queue);
            put_arg(buf, sid);
            buf.put_slice(b"\r\n");
        }
        ClientOp::Unsub { sid, max } => {
            buf.put_slice(b"UNSUB");
            put_arg(buf, sid);
            if let Some(max) = max {
                buf.put_u8(b' ');
                put_num(buf, *max);
            }
            buf.put_slice(b"\r\n");
        }
        ClientOp::Ping => buf.put_slice(b"PING\r\n"),
        ClientOp::Pong => buf.put_slice(b"PONG\r\n"),
    }
}

/// Write a server-to-client op. `INFO` gets nats-server's space before the CRLF; `-ERR` quotes its text.
pub fn encode_server(op: &ServerOp, buf: &mut BytesMut) {
    match op {
        ServerOp::Info(info) => {
            buf.put_slice(b"INFO ");
            buf.put_slice(info.to_json().as_bytes());
            buf.put_slice(b" \r\n");
        }
        ServerOp::Msg { subject, sid, reply, payload } => {
            encode_msg(buf, subject, sid, reply.as_deref(), None, payload)
        }
        ServerOp::HMsg { subject, sid, reply, headers, payload } => {
            encode_msg(buf, subject, sid, reply.as_deref(), Some(headers), payload)
        }
        ServerOp::Ping => buf.put_slice(b"PING\r\n"),
        ServerOp::Pong => buf.put_slice(b"PONG\r\n"),
        ServerOp::Ok => buf.put_slice(b"+OK\r\n"),
        ServerOp::Err(text) => {
            buf.put_slice(b"-ERR '");
            buf.put_slice(text.as_bytes());
            buf.put_slice(b"'\r\n");
        }
    }
}

/// Write a delivery from borrowed parts: `HMSG` when `headers` holds bytes, else `MSG`.
///
/// The same bytes as [`encode_server`] with [`ServerOp::Msg`]/[`ServerOp::HMsg`], without
/// building the op (so without touching the parts' reference counts).
///
/// An empty header block (`HPUB foo 0 5`) is delivered as a plain `MSG`, as nats-server
/// does (it sends `HMSG` only when the header length is above 0): `HMSG foo 1 0 5` is a
/// protocol error to clients such as async-nats. A block that is just `NATS/1.0\r\n\r\n`
/// is not empty and goes out as `HMSG` unchanged, again as nats-server.
pub fn encode_msg(
    buf: &mut BytesMut,
    subject: &str,
    sid: &str,
    reply: Option<&str>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let headers = headers.filter(|h| !h.is_empty());
    let total = headers.map_or(0, <[u8]>::len) + payload.len();
    buf.reserve(subject.len() + sid.len() + reply.map_or(0, |r| r.len() + 1) + total + 32);
    buf.put_slice(if headers.is_some() { b"HMSG" } else { b"MSG" });
    put_arg(buf, subject);
    put_arg(buf, sid);
    if let Some(r) = reply {
        put_arg(buf, r);
    }
    put_sizes_and_body(buf, headers, payload);
}
