//! `NATS/1.0` header blocks: `NATS/1.0[ <status>[ <description>]]\r\n(<Name>: <Value>\r\n)*\r\n`.
//!
//! Names are case-sensitive and compared exactly (nats-server's own header
//! lookups are), a name may have several values, and order is preserved.

use super::{ByteStr, ServerOp};
use bytes::{BufMut, Bytes, BytesMut};

/// The version line prefix.
pub const VERSION: &str = "NATS/1.0";
/// Header carrying the original subject in a no-responders status message.
pub const NATS_SUBJECT: &str = "Nats-Subject";
/// Status code of the "no responders" message.
pub const STATUS_NO_RESPONDERS: u16 = 503;

/// Why a header block or a header name/value is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The block does not start with `NATS/1.0`.
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    /// The status is not a three-digit code.
    #[error("header status is not a three-digit code")]
    BadStatus,
    /// The block is not UTF-8.
    #[error("header block is not UTF-8")]
    NotUtf8,
    /// A line is not `Name: Value`, or does not end in a line break.
    #[error("malformed header line {line}")]
    BadLine {
        /// Zero-based line number (0 is the version line).
        line: usize,
    },
    /// There are bytes after the terminating blank line.
    #[error("data after the end of the header block")]
    TrailingData,
    /// A header name is empty or contains `:`, whitespace or a control character.
    #[error("invalid header name")]
    InvalidName,
    /// A header value or status description contains CR or LF.
    #[error("invalid header value")]
    InvalidValue,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b > b' ' && b != b':' && b != 0x7f)
}

fn valid_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n')
}

fn trim_blanks(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// A parsed or to-be-built header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    status: Option<u16>,
    description: Option<String>,
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty block (`NATS/1.0\r\n\r\n`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A block with a status line, such as `503` or `404 No Messages`.
    pub fn with_status(code: u16, description: Option<&str>) -> Result<Self, HeaderError> {
        let mut h = Headers::new();
        h.set_status(code, description)?;
        Ok(h)
    }

    /// Set the status code (100..=999) and optional description.
    pub fn set_status(&mut self, code: u16, description: Option<&str>) -> Result<(), HeaderError> {
        if !(100..=999).contains(&code) {
            return Err(HeaderError::BadStatus);
        }
        let description = description.map(trim_blanks).filter(|d| !d.is_empty());
        if description.is_some_and(|d| !valid_value(d)) {
            return Err(HeaderError::InvalidValue);
        }
        self.status = Some(code);
        self.description = description.map(str::to_owned);
        Ok(())
    }

    /// The status code, if any.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The status description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Add a value for `name`, after any existing ones.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        if !valid_name(name) {
            return Err(HeaderError::InvalidName);
        }
        if !valid_value(value) {
            return Err(HeaderError::InvalidValue);
        }
        self.entries.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// Replace all values of `name` with `value` (at the position of the first old value, if any).
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        if !valid_name(name) {
            return Err(HeaderError::InvalidName);
        }
        if !valid_value(value) {
            return Err(HeaderError::InvalidValue);
        }
        match self.entries.iter().position(|(n, _)| n == name) {
            Some(first) => {
                self.entries[first].1 = value.to_owned();
                let mut i = 0;
                self.entries.retain(|(n, _)| {
                    i += 1;
                    i - 1 == first || n != name
                });
            }
            None => self.entries.push((name.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    /// Remove all values of `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        before - self.entries.len()
    }

    /// The first value of `name` (exact, case-sensitive match).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no status and no header.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.entries.is_empty()
    }

    /// Parse a header block as carried by `HPUB`/`HMSG`.
    ///
    /// Lines end in `\r\n` (a bare `\n` is tolerated); the block ends with a blank
    /// line, which may be missing at the very end of the input. Values are
    /// trimmed of surrounding blanks. Folded (continuation) lines are rejected.
    pub fn parse(block: &[u8]) -> Result<Headers, HeaderError> {
        let text = std::str::from_utf8(block).map_err(|_| HeaderError::NotUtf8)?;
        let mut rest = text;
        let mut next_line = |n: usize| -> Result<Option<&str>, HeaderError> {
            if rest.is_empty() {
                return Ok(None);
            }
            let Some(i) = rest.find('\n') else { return Err(HeaderError::BadLine { line: n }) };
            let line = rest[..i].strip_suffix('\r').unwrap_or(&rest[..i]);
            rest = &rest[i + 1..];
            Ok(Some(line))
        };
        let first = next_line(0)?.ok_or(HeaderError::MissingVersion)?;
        let after = first.strip_prefix(VERSION).ok_or(HeaderError::MissingVersion)?;
        let mut h = Headers::new();
        if !after.is_empty() {
            if !after.starts_with([' ', '\t']) {
                return Err(HeaderError::MissingVersion);
            }
            let status_line = trim_blanks(after);
            if !status_line.is_empty() {
                let (code, desc) = status_line.split_at(status_line.find([' ', '\t']).unwrap_or(status_line.len()));
                if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HeaderError::BadStatus);
                }
                let code: u16 = code.parse().map_err(|_| HeaderError::BadStatus)?;
                h.set_status(code, Some(desc))?;
            }
        }
        let mut n = 1;
        while let Some(line) = next_line(n)? {
            if line.is_empty() {
                if !rest.is_empty() {
                    return Err(HeaderError::TrailingData);
                }
                break;
            }
            let Some((name, value)) = line.split_once(':') else { return Err(HeaderError::BadLine { line: n }) };
            if !valid_name(name) {
                return Err(if name.starts_with([' ', '\t']) {
                    HeaderError::BadLine { line: n }
                } else {
                    HeaderError::InvalidName
                });
            }
            h.entries.push((name.to_owned(), trim_blanks(value).to_owned()));
            n += 1;
        }
        Ok(h)
    }

    /// The encoded length in bytes (what `HPUB`/`HMSG` declare as the header size).
    pub fn encoded_len(&self) -> usize {
        let status = match self.status {
            None => 0,
            Some(_) => 4 + self.description.as_ref().map_or(0, |d| d.len() + 1),
        };
        VERSION.len() + status + 2 + self.entries.iter().map(|(n, v)| n.len() + 2 + v.len() + 2).sum::<usize>() + 2
    }

    /// Append the encoded block to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_slice(VERSION.as_bytes());
        if let Some(code) = self.status {
            buf.put_u8(b' ');
            buf.put_slice(code.to_string().as_bytes());
            if let Some(d) = &self.description {
                buf.put_u8(b' ');
                buf.put_slice(d.as_bytes());
            }
        }
        buf.put_slice(b"\r\n");
        for (n, v) in &self.entries {
            buf.put_slice(n.as_bytes());
            buf.put_slice(b": ");
            buf.put_slice(v.as_bytes());
            buf.put_slice(b"\r\n");
        }
        buf.put_slice(b"\r\n");
    }

    /// The encoded block.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// The header block of a "no responders" status message for a request to `subject`:
/// `NATS/1.0 503\r\nNats-Subject: <subject>\r\n\r\n` (32 + `subject.len()` bytes).
pub fn no_responders(subject: &str) -> Headers {
    Headers {
        status: Some(STATUS_NO_RESPONDERS),
        description: None,
        entries: vec![(NATS_SUBJECT.to_owned(), subject.to_owned())],
    }
}

/// The `HMSG` telling a requester that nothing received its request to `subject`:
/// delivered on the request's reply subject `inbox` for subscription `sid`, with an empty payload.
pub fn no_responders_msg(inbox: ByteStr, sid: ByteStr, subject: &str) -> ServerOp {
    ServerOp::HMsg {
        subject: inbox,
        sid,
        reply: None,
        headers: no_responders(subject).to_bytes(),
        payload: Bytes::new(),
    }
}
