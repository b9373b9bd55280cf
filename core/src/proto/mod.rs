//! The NATS client protocol: ops, a zero-copy streaming codec, and `NATS/1.0` headers.
//!
//! Client to server: `CONNECT {json}`, `PUB <subject> [reply] <#bytes>`,
//! `HPUB <subject> [reply] <#header bytes> <#total bytes>`, `SUB <subject> [queue] <sid>`,
//! `UNSUB <sid> [max]`, `PING`, `PONG` ([`ClientOp`], parsed by [`ClientParser`]).
//! Server to client: `INFO {json} `, `MSG <subject> <sid> [reply] <#bytes>`,
//! `HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>`, `PING`, `PONG`,
//! `+OK`, `-ERR '<text>'` ([`ServerOp`], parsed by [`ServerParser`]).
//! Every control line ends in `\r\n` and every payload is followed by `\r\n`.
//! [`encode_client`] and [`encode_server`] write the wire form.
//!
//! Parsed subjects, sids and payloads are slices of the read buffer ([`ByteStr`],
//! [`Bytes`]); nothing is copied. The flip side: a retained payload keeps the
//! read buffer's allocation it came from alive until it is dropped.
//!
//! [`ProtoError::err_text`] gives the exact `-ERR` text nats-server sends for each
//! error and [`ProtoError::closes_connection`] whether the connection must close.

mod bytestr;
mod encode;
mod error;
mod fuzz;
mod headers;
mod info;
mod parser;

pub use bytestr::ByteStr;
pub use encode::{encode_client, encode_msg, encode_server};
pub use error::ProtoError;
pub use fuzz::fuzz_client_parser;
pub use headers::{HeaderError, Headers, NATS_SUBJECT, STATUS_NO_RESPONDERS, no_responders, no_responders_msg};
pub use info::{ConnectInfo, ServerInfo};
pub use parser::{
    ClientParser, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD, LINE_SLACK, MAX_CONTROL_LINE_LIMIT, MAX_PAYLOAD_LIMIT,
    ParserConfig, ServerParser,
};

use bytes::Bytes;

/// An op sent by a client to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: connection options.
    Connect(Box<ConnectInfo>),
    /// `PUB`: publish a message.
    Pub {
        /// Destination subject.
        subject: ByteStr,
        /// Reply subject.
        reply: Option<ByteStr>,
        /// Message body.
        payload: Bytes,
    },
    /// `HPUB`: publish a message with headers.
    HPub {
        /// Destination subject.
        subject: ByteStr,
        /// Reply subject.
        reply: Option<ByteStr>,
        /// The raw header block (`NATS/1.0 ...\r\n...\r\n\r\n`); see [`Headers::parse`].
        headers: Bytes,
        /// Message body.
        payload: Bytes,
    },
    /// `SUB`: subscribe.
    Sub {
        /// Subject pattern (validated).
        subject: ByteStr,
        /// Queue group (validated).
        queue: Option<ByteStr>,
        /// Client-chosen subscription id.
        sid: ByteStr,
    },
    /// `UNSUB`: unsubscribe now, or after `max` more messages.
    Unsub {
        /// Subscription id.
        sid: ByteStr,
        /// Auto-unsubscribe after this many delivered messages; `None` (or 0 on the wire) means now.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// An op sent by the server to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json} `: server information.
    Info(Box<ServerInfo>),
    /// `MSG`: a delivered message.
    Msg {
        /// Subject the message was published to.
        subject: ByteStr,
        /// The subscription id it is delivered for.
        sid: ByteStr,
        /// Reply subject.
        reply: Option<ByteStr>,
        /// Message body.
        payload: Bytes,
    },
    /// `HMSG`: a delivered message with headers.
    HMsg {
        /// Subject the message was published to.
        subject: ByteStr,
        /// The subscription id it is delivered for.
        sid: ByteStr,
        /// Reply subject.
        reply: Option<ByteStr>,
        /// The raw header block.
        headers: Bytes,
        /// Message body.
        payload: Bytes,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (verbose mode).
    Ok,
    /// `-ERR '<text>'`.
    Err(String),
}
