//! Streaming parsers: [`ClientParser`] (client to server) and [`ServerParser`] (server to client).
//!
//! Both consume whole ops from the front of a caller-owned [`BytesMut`] and
//! return `Ok(None)` when more bytes are needed; calling again with the same
//! bytes returns `Ok(None)` again. Control lines are consumed as soon as they
//! are complete; payloads are split off the buffer without copying. Framing
//! rules, following nats-server:
//!
//! - The op name is the first word; case-insensitive. Arguments are separated by
//!   one or more spaces or tabs. A line ends in `\n`, normally preceded by `\r`.
//! - Ops that take arguments must have a blank after the name, otherwise the op
//!   is unknown (`PUB\r\n` is an unknown op, as in nats-server). `PING`/`PONG`
//!   ignore anything after the name.
//! - The arguments (after the name and its blanks, before the line end) may be at
//!   most `max_control_line` bytes. So that a line with no end in sight cannot
//!   make the caller buffer without bound, a line is also rejected once it is
//!   longer than `max_control_line + LINE_SLACK` bytes in total, blanks included.
//! - Sizes are 1 to 9 decimal digits; the total size may not exceed `max_payload`.
//!   The payload must be followed by `\r\n`.
//!
//! While a parser returns `Ok(None)` the buffer holds at most
//! [`ParserConfig::max_buffered`] bytes: an op that would need more is rejected
//! before its bytes are all in.

use super::{ByteStr, ClientOp, ConnectInfo, ProtoError, ServerInfo, ServerOp};
use crate::subject::{SubjectError, validate_pattern, validate_queue};
use bytes::{Buf, Bytes, BytesMut};

/// Default maximum control-line (argument) length, as in nats-server.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// Default maximum payload, as in nats-server (1 MiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Largest `max_payload` a server may be configured with (64 MiB, nats-server's own
/// ceiling). Every size limit a message meets after the client connection (route frames,
/// Raft entries carried on routes, store records) is derived from this and
/// `MAX_CONTROL_LINE_LIMIT`, so that whatever a client may publish can also travel and
/// be stored (issue 9, fault 3).
pub const MAX_PAYLOAD_LIMIT: usize = 64 << 20;
/// Largest `max_control_line` a server may be configured with (1 MiB); bounds the
/// subject and reply of any message.
pub const MAX_CONTROL_LINE_LIMIT: usize = 1 << 20;
/// Allowance on top of `max_control_line` for the op name, blanks and `\r` of an unfinished line.
pub const LINE_SLACK: usize = 64;
/// Longest size argument accepted (nats-server's `parseSize` takes at most 9 digits).
const MAX_SIZE_DIGITS: usize = 9;

/// Parser limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParserConfig {
    /// Maximum length of a control line's arguments.
    pub max_control_line: usize,
    /// Maximum total message size (headers plus payload).
    pub max_payload: usize,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig { max_control_line: DEFAULT_MAX_CONTROL_LINE, max_payload: DEFAULT_MAX_PAYLOAD }
    }
}

impl ParserConfig {
    /// Limits for reading from a server: control lines up to 64 KiB (INFO can be long), payloads up to 64 MiB.
    pub fn server_to_client() -> Self {
        ParserConfig { max_control_line: 64 * 1024, max_payload: MAX_PAYLOAD_LIMIT }
    }

    /// Upper bound on the buffer length whenever a parser returns `Ok(None)`.
    pub fn max_buffered(&self) -> usize {
        (self.max_control_line + LINE_SLACK).max(self.max_payload + 2)
    }
}

/// A message whose control line has been parsed and whose payload is awaited.
#[derive(Debug)]
struct Pending {
    subject: ByteStr,
    sid: ByteStr,
    reply: Option<ByteStr>,
    /// Header size for HPUB/HMSG.
    hdr: Option<usize>,
    /// Total size (headers included).
    total: usize,
    /// Error to return once the op is consumed (non-closing errors only).
    error: Option<ProtoError>,
}

/// A finished message: its parsed control line, header block (HPUB/HMSG) and payload.
type Taken = (Pending, Option<Bytes>, Bytes);

/// Line framing and payload bookkeeping shared by both parsers.
#[derive(Debug)]
struct Core {
    cfg: ParserConfig,
    /// Bytes at the front of the buffer already searched for `\n` without success.
    scanned: usize,
    pending: Option<Pending>,
    failed: Option<ProtoError>,
}

/// A recognised control line: which op, and its arguments (a slice of the consumed line).
struct Line<K> {
    kind: K,
    args: Bytes,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Core {
    fn new(cfg: ParserConfig) -> Self {
        Core { cfg, scanned: 0, pending: None, failed: None }
    }

    /// Record a closing error so that later calls return it again.
    fn check<T>(&mut self, r: Result<T, ProtoError>) -> Result<T, ProtoError> {
        match &r {
            Err(e) if e.closes_connection() => self.failed = Some(e.clone()),
            _ => {}
        }
        r
    }

    /// Recognise and consume the next control line.
    fn next_line<K: Copy>(
        &mut self,
        buf: &mut BytesMut,
        ops: &[(&'static str, K, bool)],
    ) -> Result<Option<Line<K>>, ProtoError> {
        let longest = ops.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        let probe = &buf[..buf.len().min(longest + 1)];
        let name_end = probe.iter().position(|&b| is_blank(b) || b == b'\r' || b == b'\n');
        let Some(name_end) = name_end else {
            // The name is still incomplete: fail early unless it can still become an op.
            let partial = probe;
            let viable = ops.iter().any(|(n, _, _)| {
                partial.len() <= n.len() && n.as_bytes()[..partial.len()].eq_ignore_ascii_case(partial)
            });
            return if viable { Ok(None) } else { Err(ProtoError::UnknownOp) };
        };
        let name = &buf[..name_end];
        let Some(&(_, kind, needs_args)) = ops.iter().find(|(n, _, _)| n.as_bytes().eq_ignore_ascii_case(name)) else {
            return Err(ProtoError::UnknownOp);
        };
        if needs_args && !is_blank(buf[name_end]) {
            return Err(ProtoError::UnknownOp);
        }
        let limit = self.cfg.max_control_line + LINE_SLACK;
        let from = self.scanned.max(name_end);
        let Some(nl) = buf[from..].iter().position(|&b| b == b'\n').map(|i| i + from) else {
            self.scanned = buf.len();
            if buf.len() > limit {
                return Err(ProtoError::MaxControlLineExceeded { max: self.cfg.max_control_line });
            }
            return Ok(None);
        };
        if nl > limit {
            return Err(ProtoError::MaxControlLineExceeded { max: self.cfg.max_control_line });
        }
        let end = if nl > name_end && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        let start = name_end + buf[name_end..end].iter().take_while(|&&b| is_blank(b)).count();
        if end - start > self.cfg.max_control_line {
            return Err(ProtoError::MaxControlLineExceeded { max: self.cfg.max_control_line });
        }
        self.scanned = 0;
        let mut line = buf.split_to(nl + 1);
        line.truncate(end);
        line.advance(start);
        Ok(Some(Line { kind, args: line.freeze() }))
    }

    /// Check sizes and start waiting for a payload.
    /// `p` carries the parsed names; its `hdr` and `total` are filled in from the size arguments.
    fn begin_payload(
        &mut self,
        op: &'static str,
        mut p: Pending,
        hdr: Option<&[u8]>,
        total: &[u8],
    ) -> Result<(), ProtoError> {
        let hdr = match hdr {
            None => None,
            Some(h) => Some(parse_size(h).ok_or(ProtoError::BadSize { op })?),
        };
        let total = parse_size(total).ok_or(ProtoError::BadSize { op })?;
        if hdr.is_some_and(|h| h > total) {
            return Err(ProtoError::HeaderSizeExceedsTotal);
        }
        if total > self.cfg.max_payload as u64 {
            return Err(ProtoError::MaxPayload { size: total, max: self.cfg.max_payload });
        }
        // Both fit in usize: at most 9 digits and no larger than max_payload.
        p.hdr = hdr.map(|h| h as usize);
        p.total = total as usize;
        self.pending = Some(p);
        Ok(())
    }

    /// Take the awaited payload if it is all in.
    fn take_payload(&mut self, buf: &mut BytesMut) -> Result<Option<Taken>, ProtoError> {
        let Some(p) = &self.pending else { return Ok(None) };
        if buf.len() < p.total + 2 {
            return Ok(None);
        }
        if &buf[p.total..p.total + 2] != b"\r\n" {
            return Err(ProtoError::BadPayloadTerminator);
        }
        let Some(p) = self.pending.take() else { return Ok(None) };
        let headers = p.hdr.map(|h| buf.split_to(h).freeze());
        let payload = buf.split_to(p.total - p.hdr.unwrap_or(0)).freeze();
        buf.advance(2);
        Ok(Some((p, headers, payload)))
    }
}

/// Parse a size argument: 1 to 9 ASCII digits.
fn parse_size(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > MAX_SIZE_DIGITS || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Up to 5 blank-separated arguments, as byte ranges of the line.
///
/// Only the arguments that are kept become [`Bytes`] (see [`Args::get`]); sizes are read
/// in place, so that parsing costs no reference-count traffic for them.
struct Args<'a> {
    line: &'a Bytes,
    ranges: [(usize, usize); 5],
    len: usize,
}

impl<'a> Args<'a> {
    /// Split `line`; `None` if there are more than 5 arguments.
    fn split(line: &'a Bytes) -> Option<Args<'a>> {
        let mut ranges = [(0, 0); 5];
        let mut len = 0;
        let mut start = None;
        for (i, &b) in line.iter().enumerate() {
            match (is_blank(b), start) {
                (true, Some(s)) => {
                    *ranges.get_mut(len)? = (s, i);
                    len += 1;
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            *ranges.get_mut(len)? = (s, line.len());
            len += 1;
        }
        Some(Args { line, ranges, len })
    }

    /// Argument `i` as a slice of the line (shares its buffer).
    fn get(&self, i: usize) -> Bytes {
        let (s, e) = self.ranges[i];
        self.line.slice(s..e)
    }

    /// Argument `i`'s bytes, borrowed.
    fn raw(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        &self.line[s..e]
    }
}

fn utf8(b: Bytes) -> Option<ByteStr> {
    ByteStr::from_utf8(b).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientKind {
    Connect,
    Pub,
    HPub,
    Sub,
    Unsub,
    Ping,
    Pong,
    Info,
    Ok,
    Err,
}

const CLIENT_OPS: &[(&str, ClientKind, bool)] = &[
    ("CONNECT", ClientKind::Connect, false),
    ("PUB", ClientKind::Pub, true),
    ("HPUB", ClientKind::HPub, true),
    ("SUB", ClientKind::Sub, true),
    ("UNSUB", ClientKind::Unsub, true),
    ("PING", ClientKind::Ping, false),
    ("PONG", ClientKind::Pong, false),
    ("INFO", ClientKind::Info, false),
    ("+OK", ClientKind::Ok, false),
    ("-ERR", ClientKind::Err, true),
];

/// Parses the client-to-server direction: `CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `PING`, `PONG`.
///
/// As in nats-server, a client may also send `INFO {json}` and `+OK`, which are
/// skipped (bad INFO JSON is [`ProtoError::InvalidInfo`]), and `-ERR`, which is
/// [`ProtoError::ClientErr`] (the server closes without a reply). Anything else
/// (`MSG` from a client, say) is [`ProtoError::UnknownOp`]. Subjects and queue groups in `SUB` are validated
/// ([`ProtoError::InvalidSubject`], connection stays open); publish subjects
/// are only checked to be UTF-8 (literalness is the server's pedantic check).
#[derive(Debug)]
pub struct ClientParser {
    core: Core,
}

impl Default for ClientParser {
    fn default() -> Self {
        Self::new(ParserConfig::default())
    }
}

impl ClientParser {
    /// A parser with the given limits.
    pub fn new(cfg: ParserConfig) -> Self {
        ClientParser { core: Core::new(cfg) }
    }

    /// The limits.
    pub fn config(&self) -> ParserConfig {
        self.core.cfg
    }

    /// Change the maximum payload (applies to ops whose control line has not been parsed yet).
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.core.cfg.max_payload = max_payload;
    }

    /// Whether the parser hit a closing error and will only repeat it.
    pub fn is_failed(&self) -> bool {
        self.core.failed.is_some()
    }

    /// Consume the next complete op from `buf`; `Ok(None)` when more bytes are needed.
    ///
    /// Pass the same buffer every time, appending newly read bytes at its end: the
    /// parser remembers how far it has scanned and which payload it is waiting for.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtoError> {
        if let Some(e) = &self.core.failed {
            return Err(e.clone());
        }
        let r = self.parse_inner(buf);
        self.core.check(r)
    }

    fn parse_inner(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtoError> {
        while self.core.pending.is_none() {
            let Some(line) = self.core.next_line(buf, CLIENT_OPS)? else { return Ok(None) };
            match line.kind {
                ClientKind::Ping => return Ok(Some(ClientOp::Ping)),
                ClientKind::Pong => return Ok(Some(ClientOp::Pong)),
                ClientKind::Connect => {
                    let info =
                        ConnectInfo::from_json(&line.args).map_err(|e| ProtoError::InvalidConnect(e.to_string()))?;
                    return Ok(Some(ClientOp::Connect(Box::new(info))));
                }
                ClientKind::Sub => return parse_sub(&line.args).map(Some),
                ClientKind::Unsub => return parse_unsub(&line.args).map(Some),
                ClientKind::Pub | ClientKind::HPub => self.begin_pub(line)?,
                ClientKind::Ok => {}
                ClientKind::Info => {
                    ServerInfo::from_json(&line.args).map_err(|e| ProtoError::InvalidInfo(e.to_string()))?;
                }
                ClientKind::Err => return Err(ProtoError::ClientErr(String::from_utf8_lossy(&line.args).into_owned())),
            }
        }
        let Some((p, headers, payload)) = self.core.take_payload(buf)? else { return Ok(None) };
        if let Some(e) = p.error {
            return Err(e);
        }
        Ok(Some(match headers {
            None => ClientOp::Pub { subject: p.subject, reply: p.reply, payload },
            Some(headers) => ClientOp::HPub { subject: p.subject, reply: p.reply, headers, payload },
        }))
    }

    fn begin_pub(&mut self, line: Line<ClientKind>) -> Result<(), ProtoError> {
        let (op, sizes) = match line.kind {
            ClientKind::HPub => ("HPUB", 2),
            _ => ("PUB", 1),
        };
        let args = Args::split(&line.args).ok_or(ProtoError::BadArgs { op })?;
        let has_reply = match args.len.checked_sub(sizes) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(ProtoError::BadArgs { op }),
        };
        let mut error = None;
        let subject = utf8(args.get(0)).unwrap_or_else(|| {
            error = Some(ProtoError::InvalidPublishSubject);
            ByteStr::default()
        });
        let reply = if has_reply {
            Some(utf8(args.get(1)).unwrap_or_else(|| {
                error = Some(ProtoError::InvalidPublishSubject);
                ByteStr::default()
            }))
        } else {
            None
        };
        let total = args.raw(args.len - 1);
        let hdr = (sizes == 2).then(|| args.raw(args.len - 2));
        let p = Pending { subject, sid: ByteStr::default(), reply, hdr: None, total: 0, error };
        self.core.begin_payload(op, p, hdr, total)
    }
}

fn parse_sub(line: &Bytes) -> Result<ClientOp, ProtoError> {
    const OP: &str = "SUB";
    let args = Args::split(line).ok_or(ProtoError::BadArgs { op: OP })?;
    let (subject, queue, sid) = match args.len {
        2 => (args.get(0), None, args.get(1)),
        3 => (args.get(0), Some(args.get(1)), args.get(2)),
        _ => return Err(ProtoError::BadArgs { op: OP }),
    };
    let sid = utf8(sid).ok_or(ProtoError::BadArgs { op: OP })?;
    let subject = utf8(subject).ok_or(ProtoError::InvalidSubject(SubjectError::NotUtf8))?;
    validate_pattern(&subject).map_err(ProtoError::InvalidSubject)?;
    let queue = match queue {
        None => None,
        Some(q) => {
            let q = utf8(q).ok_or(ProtoError::InvalidSubject(SubjectError::NotUtf8))?;
            validate_queue(&q).map_err(ProtoError::InvalidSubject)?;
            Some(q)
        }
    };
    Ok(ClientOp::Sub { subject, queue, sid })
}

fn parse_unsub(line: &Bytes) -> Result<ClientOp, ProtoError> {
    const OP: &str = "UNSUB";
    let args = Args::split(line).ok_or(ProtoError::BadArgs { op: OP })?;
    let max = match args.len {
        1 => None,
        // As in nats-server: an unparsable or zero max means "no limit".
        2 => parse_size(args.raw(1)).filter(|&m| m > 0),
        _ => return Err(ProtoError::BadArgs { op: OP }),
    };
    let sid = utf8(args.get(0)).ok_or(ProtoError::BadArgs { op: OP })?;
    Ok(ClientOp::Unsub { sid, max })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerKind {
    Info,
    Msg,
    HMsg,
    Ping,
    Pong,
    Ok,
    Err,
}

const SERVER_OPS: &[(&str, ServerKind, bool)] = &[
    ("INFO", ServerKind::Info, false),
    ("MSG", ServerKind::Msg, true),
    ("HMSG", ServerKind::HMsg, true),
    ("PING", ServerKind::Ping, false),
    ("PONG", ServerKind::Pong, false),
    ("+OK", ServerKind::Ok, false),
    ("-ERR", ServerKind::Err, false),
];

/// Parses the server-to-client direction: `INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`.
#[derive(Debug)]
pub struct ServerParser {
    core: Core,
}

impl Default for ServerParser {
    fn default() -> Self {
        Self::new(ParserConfig::server_to_client())
    }
}

impl ServerParser {
    /// A parser with the given limits.
    pub fn new(cfg: ParserConfig) -> Self {
        ServerParser { core: Core::new(cfg) }
    }

    /// The limits.
    pub fn config(&self) -> ParserConfig {
        self.core.cfg
    }

    /// Whether the parser hit a closing error and will only repeat it.
    pub fn is_failed(&self) -> bool {
        self.core.failed.is_some()
    }

    /// Consume the next complete op from `buf`; `Ok(None)` when more bytes are needed.
    ///
    /// Pass the same buffer every time, appending newly read bytes at its end: the
    /// parser remembers how far it has scanned and which payload it is waiting for.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ProtoError> {
        if let Some(e) = &self.core.failed {
            return Err(e.clone());
        }
        let r = self.parse_inner(buf);
        self.core.check(r)
    }

    fn parse_inner(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ProtoError> {
        if self.core.pending.is_none() {
            let Some(line) = self.core.next_line(buf, SERVER_OPS)? else { return Ok(None) };
            match line.kind {
                ServerKind::Ping => return Ok(Some(ServerOp::Ping)),
                ServerKind::Pong => return Ok(Some(ServerOp::Pong)),
                ServerKind::Ok => return Ok(Some(ServerOp::Ok)),
                ServerKind::Err => {
                    let text = line.args.strip_prefix(b"'").and_then(|t| t.strip_suffix(b"'")).unwrap_or(&line.args);
                    return Ok(Some(ServerOp::Err(String::from_utf8_lossy(text).into_owned())));
                }
                ServerKind::Info => {
                    let info = ServerInfo::from_json(&line.args).map_err(|e| ProtoError::InvalidInfo(e.to_string()))?;
                    return Ok(Some(ServerOp::Info(Box::new(info))));
                }
                ServerKind::Msg | ServerKind::HMsg => self.begin_msg(line)?,
            }
        }
        let Some((p, headers, payload)) = self.core.take_payload(buf)? else { return Ok(None) };
        Ok(Some(match headers {
            None => ServerOp::Msg { subject: p.subject, sid: p.sid, reply: p.reply, payload },
            Some(headers) => ServerOp::HMsg { subject: p.subject, sid: p.sid, reply: p.reply, headers, payload },
        }))
    }

    fn begin_msg(&mut self, line: Line<ServerKind>) -> Result<(), ProtoError> {
        let (op, sizes) = match line.kind {
            ServerKind::HMsg => ("HMSG", 2),
            _ => ("MSG", 1),
        };
        let args = Args::split(&line.args).ok_or(ProtoError::BadArgs { op })?;
        let has_reply = match args.len.checked_sub(sizes) {
            Some(2) => false,
            Some(3) => true,
            _ => return Err(ProtoError::BadArgs { op }),
        };
        let bad = ProtoError::BadArgs { op };
        let subject = utf8(args.get(0)).ok_or(bad.clone())?;
        let sid = utf8(args.get(1)).ok_or(bad.clone())?;
        let reply = if has_reply { Some(utf8(args.get(2)).ok_or(bad)?) } else { None };
        let total = args.raw(args.len - 1);
        let hdr = (sizes == 2).then(|| args.raw(args.len - 2));
        let p = Pending { subject, sid, reply, hdr: None, total: 0, error: None };
        self.core.begin_payload(op, p, hdr, total)
    }
}
