//! A minimal NATS client over (simulated) TCP, built on the core protocol codec, for the
//! worlds whose clients speak the NATS protocol (pub/sub, JetStream).
//!
//! One connection, driven by its owner task: queue ops, flush, read ops. Requests
//! ([`NatsClient::request`]) go out with a reply subject under the connection's own
//! inbox (`_INBOX.<name>.<n>`, subscribed at the first request); messages that arrive while a
//! request waits and are not its answer are kept for [`NatsClient::next_msg`], at most
//! [`STASH_LIMIT`] of them (beyond that the oldest is dropped: a JetStream delivery that
//! is dropped is redelivered after its ack wait, so nothing is lost for good).

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use weir_core::proto::{ByteStr, ClientOp, ConnectInfo, Headers, ParserConfig, ServerOp, ServerParser, encode_client};

/// Most messages kept aside while a request waits for its answer.
pub const STASH_LIMIT: usize = 4096;
/// The subscription id of the connection's inbox.
const INBOX_SID: &str = "inbox";
/// The text of the server's `-ERR` for a refused SUB.
const ERR_MAX_SUBSCRIPTIONS: &str = weir_core::server::nats::conn::ERR_MAX_SUBSCRIPTIONS;
/// The prefix of the sids of [`NatsClient::request_sub`] subscriptions.
const REQ_SID: &str = "req.";

/// A message delivered to the client.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Its subject.
    pub subject: String,
    /// The subscription it came for.
    pub sid: String,
    /// Its reply subject.
    pub reply: Option<String>,
    /// Its headers, parsed (`None`: a plain `MSG`, or an unparsable block).
    pub headers: Option<Headers>,
    /// Its payload.
    pub payload: Bytes,
}

impl Msg {
    /// The status code of a status message (`NATS/1.0 404 ...`).
    pub fn status(&self) -> Option<u16> {
        self.headers.as_ref().and_then(Headers::status)
    }
}

fn to_msg(op: ServerOp) -> Option<Msg> {
    match op {
        ServerOp::Msg { subject, sid, reply, payload } => Some(Msg {
            subject: subject.to_string(),
            sid: sid.to_string(),
            reply: reply.map(|r| r.to_string()),
            headers: None,
            payload,
        }),
        ServerOp::HMsg { subject, sid, reply, headers, payload } => Some(Msg {
            subject: subject.to_string(),
            sid: sid.to_string(),
            reply: reply.map(|r| r.to_string()),
            headers: Headers::parse(&headers).ok(),
            payload,
        }),
        _ => None,
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// One client connection (see the module doc).
pub struct NatsClient {
    stream: TcpStream,
    parser: ServerParser,
    rbuf: BytesMut,
    wbuf: BytesMut,
    inbox: String,
    next_request: u64,
    inbox_subscribed: bool,
    stash: VecDeque<Msg>,
}

impl NatsClient {
    /// Connect, read INFO, send CONNECT (headers and no-responders on) and wait for the
    /// PONG of a PING; `name` makes the connection's inbox unique.
    pub async fn connect(addr: SocketAddr, limit: Duration, name: &str) -> io::Result<NatsClient> {
        let stream = timeout(limit, TcpStream::connect(addr)).await.map_err(|_| timed_out("connect"))??;
        let mut c = NatsClient {
            stream,
            parser: ServerParser::new(ParserConfig::server_to_client()),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            inbox: format!("_INBOX.{name}"),
            next_request: 0,
            inbox_subscribed: false,
            stash: VecDeque::new(),
        };
        match timeout(limit, c.next_op()).await {
            Ok(Ok(ServerOp::Info(_))) => {}
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "no INFO")),
        }
        let info = ConnectInfo {
            verbose: false,
            pedantic: false,
            protocol: 1,
            headers: true,
            no_responders: true,
            ..ConnectInfo::default()
        };
        c.queue(&ClientOp::Connect(Box::new(info)));
        c.ping(limit).await?;
        Ok(c)
    }

    /// Queue `op` (sent by the next [`NatsClient::flush`]).
    pub fn queue(&mut self, op: &ClientOp) {
        encode_client(op, &mut self.wbuf);
    }

    /// Queue a SUB of `subject` with subscription id `sid`.
    pub fn sub(&mut self, subject: &str, sid: &str) {
        self.queue(&ClientOp::Sub { subject: ByteStr::from(subject), queue: None, sid: ByteStr::from(sid) });
    }

    /// Queue a PUB (or HPUB when `headers` is given).
    pub fn publish(&mut self, subject: &str, reply: Option<&str>, headers: Option<&Headers>, payload: Bytes) {
        let (subject, reply) = (ByteStr::from(subject), reply.map(ByteStr::from));
        match headers {
            Some(h) => self.queue(&ClientOp::HPub { subject, reply, headers: h.to_bytes(), payload }),
            None => self.queue(&ClientOp::Pub { subject, reply, payload }),
        }
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        let b = self.wbuf.split();
        self.stream.write_all(&b).await?;
        self.stream.flush().await
    }

    /// Send PING and wait for its PONG (so the server has applied everything before it).
    pub async fn ping(&mut self, limit: Duration) -> io::Result<()> {
        self.queue(&ClientOp::Ping);
        self.flush().await?;
        let wait = async {
            loop {
                match self.next_op().await? {
                    ServerOp::Pong => return Ok(()),
                    ServerOp::Err(e) => return Err(io::Error::other(e)),
                    op => self.keep(op),
                }
            }
        };
        timeout(limit, wait).await.map_err(|_| timed_out("PING"))?
    }

    /// A fresh reply subject under this connection's inbox.
    pub fn new_inbox(&mut self) -> String {
        if !self.inbox_subscribed {
            self.inbox_subscribed = true;
            let all = format!("{}.*", self.inbox);
            self.sub(&all, INBOX_SID);
        }
        self.next_request += 1;
        format!("{}.{}", self.inbox, self.next_request)
    }

    /// A fresh reply subject with a subscription of its own (queued): `(subject, sid)`.
    /// Messages for it are told apart by sid, whatever their subject.
    pub fn request_sub(&mut self) -> (String, String) {
        self.next_request += 1;
        let (subject, sid) =
            (format!("{}.s{}", self.inbox, self.next_request), format!("{REQ_SID}{}", self.next_request));
        self.sub(&subject, &sid);
        (subject, sid)
    }

    /// Queue an UNSUB of `sid`.
    pub fn unsub(&mut self, sid: &str) {
        self.queue(&ClientOp::Unsub { sid: ByteStr::from(sid), max: None });
    }

    /// The first message for subscription `sid` arriving before `deadline`.
    pub async fn wait_sid(&mut self, sid: &str, deadline: Instant) -> io::Result<Msg> {
        if let Some(i) = self.stash.iter().position(|m| m.sid == sid) {
            return Ok(self.stash.remove(i).expect("index found"));
        }
        let wait = async {
            loop {
                match to_msg(self.next_op().await?) {
                    Some(m) if m.sid == sid => return Ok(m),
                    Some(m) => self.stash_msg(m),
                    None => {}
                }
            }
        };
        timeout(deadline.saturating_duration_since(Instant::now()), wait).await.map_err(|_| timed_out("request"))?
    }

    /// Publish with a fresh reply subject and return the first message answering it,
    /// keeping other messages for [`NatsClient::next_msg`].
    pub async fn request(
        &mut self,
        subject: &str,
        headers: Option<&Headers>,
        payload: Bytes,
        limit: Duration,
    ) -> io::Result<Msg> {
        let reply = self.new_inbox();
        self.publish(subject, Some(&reply), headers, payload);
        self.flush().await?;
        self.wait_reply(&reply, Instant::now() + limit).await
    }

    /// The first message on `reply` arriving before `deadline`.
    pub async fn wait_reply(&mut self, reply: &str, deadline: Instant) -> io::Result<Msg> {
        if let Some(i) = self.stash.iter().position(|m| m.subject == reply) {
            return Ok(self.stash.remove(i).expect("index found"));
        }
        let wait = async {
            loop {
                let op = self.next_op().await?;
                match to_msg(op) {
                    Some(m) if m.subject == reply => return Ok(m),
                    Some(m) => self.stash_msg(m),
                    None => {}
                }
            }
        };
        timeout(deadline.saturating_duration_since(Instant::now()), wait).await.map_err(|_| timed_out("request"))?
    }

    /// The next delivered message (kept ones first), or `Ok(None)` at `deadline`.
    pub async fn next_msg(&mut self, deadline: Instant) -> io::Result<Option<Msg>> {
        if let Some(m) = self.stash.pop_front() {
            return Ok(Some(m));
        }
        let wait = async {
            loop {
                if let Some(m) = to_msg(self.next_op().await?) {
                    return Ok(m);
                }
            }
        };
        match timeout(deadline.saturating_duration_since(Instant::now()), wait).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Forget kept answers to earlier requests (late replies nobody waits for any more);
    /// other kept messages stay.
    pub fn drop_stale_replies(&mut self) {
        self.stash.retain(|m| m.sid != INBOX_SID && !m.sid.starts_with(REQ_SID));
    }

    fn keep(&mut self, op: ServerOp) {
        if let Some(m) = to_msg(op) {
            self.stash_msg(m);
        }
    }

    fn stash_msg(&mut self, m: Msg) {
        if self.stash.len() >= STASH_LIMIT {
            self.stash.pop_front();
        }
        self.stash.push_back(m);
    }

    /// The next op from the server (PINGs are answered here).
    pub async fn next_op(&mut self) -> io::Result<ServerOp> {
        loop {
            match self.parser.parse(&mut self.rbuf) {
                Ok(Some(ServerOp::Ping)) => {
                    self.queue(&ClientOp::Pong);
                    self.flush().await?;
                }
                Ok(Some(ServerOp::Err(e))) if e.to_ascii_lowercase().contains(ERR_MAX_SUBSCRIPTIONS) => {
                    // The server refused a SUB (its subscription memory is full, or a
                    // ledger fault point refused the charge) and kept the connection:
                    // one of this connection's subscriptions is missing, and the error
                    // does not say which. As nats.go does with such an error, the
                    // connection is given up; the caller reconnects and subscribes
                    // again. (Going on would leave, say, the request inbox unsubscribed
                    // and every later request timing out: js-single seed 18.)
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("the server refused a subscription: {e}"),
                    ));
                }
                Ok(Some(op)) => return Ok(op),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            self.rbuf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
            }
        }
    }
}
