//! [`ProtoError`]: what can go wrong while parsing the NATS protocol, and how the server reacts.

use super::ServerOp;
use crate::subject::SubjectError;

/// A protocol error found by a parser.
///
/// [`ProtoError::err_text`] is the text nats-server puts in `-ERR '<text>'` for
/// the same condition (or `None` where it closes the connection without one),
/// and [`ProtoError::closes_connection`] says whether the connection must close.
/// After a closing error a parser stays failed and returns the same error again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The op name is unknown, misspelt, or not followed by a separator.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// A control line is longer than the configured maximum.
    #[error("maximum control line exceeded (max {max} bytes)")]
    MaxControlLineExceeded {
        /// The configured maximum.
        max: usize,
    },
    /// A message's declared size is larger than the configured maximum payload.
    #[error("maximum payload exceeded: {size} > {max}")]
    MaxPayload {
        /// The declared total size.
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A payload is not followed by `\r\n`.
    #[error("payload not followed by CRLF")]
    BadPayloadTerminator,
    /// An op has the wrong number of arguments, or an unusable sid.
    #[error("{op}: wrong number of arguments or malformed argument")]
    BadArgs {
        /// The op.
        op: &'static str,
    },
    /// A size argument is missing, not a number, or longer than 9 digits.
    #[error("{op}: bad or missing size")]
    BadSize {
        /// The op.
        op: &'static str,
    },
    /// An `HPUB`/`HMSG` header size is larger than its total size.
    #[error("header size larger than total size")]
    HeaderSizeExceedsTotal,
    /// A `SUB` subject or queue group is invalid. The op is consumed and the connection stays open.
    #[error("invalid subject: {0}")]
    InvalidSubject(SubjectError),
    /// A publish subject or reply subject is unusable. The whole op, payload included, is consumed
    /// and the connection stays open. The parser raises it only for non-UTF-8 subjects; the server
    /// raises it for non-literal subjects in pedantic mode.
    #[error("invalid publish subject")]
    InvalidPublishSubject,
    /// The `CONNECT` JSON does not parse.
    #[error("invalid CONNECT: {0}")]
    InvalidConnect(String),
    /// The `INFO` JSON does not parse.
    #[error("invalid INFO: {0}")]
    InvalidInfo(String),
    /// A client sent `-ERR`: nats-server logs it and closes the connection without a reply.
    #[error("client sent -ERR {0}")]
    ClientErr(String),
}

impl ProtoError {
    /// The exact text nats-server sends in `-ERR '<text>'` for this error, if it sends one.
    ///
    /// For argument and size errors and bad CONNECT JSON nats-server logs the error and
    /// closes the connection without an `-ERR`; those give `None`.
    pub fn err_text(&self) -> Option<&'static str> {
        match self {
            ProtoError::UnknownOp | ProtoError::BadPayloadTerminator => Some("Unknown Protocol Operation"),
            ProtoError::MaxControlLineExceeded { .. } => Some("maximum control line exceeded"),
            ProtoError::MaxPayload { .. } => Some("Maximum Payload Violation"),
            ProtoError::InvalidSubject(_) => Some("Invalid Subject"),
            ProtoError::InvalidPublishSubject => Some("Invalid Publish Subject"),
            ProtoError::BadArgs { .. }
            | ProtoError::BadSize { .. }
            | ProtoError::HeaderSizeExceedsTotal
            | ProtoError::InvalidConnect(_)
            | ProtoError::InvalidInfo(_)
            | ProtoError::ClientErr(_) => None,
        }
    }

    /// Whether the connection must be closed (after sending the `-ERR`, if any).
    pub fn closes_connection(&self) -> bool {
        !matches!(self, ProtoError::InvalidSubject(_) | ProtoError::InvalidPublishSubject)
    }

    /// The `-ERR` op to send for this error, if any.
    pub fn to_server_op(&self) -> Option<ServerOp> {
        self.err_text().map(|t| ServerOp::Err(t.to_owned()))
    }
}
