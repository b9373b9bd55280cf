//! A whole trace (header and events) and its file format.
//!
//! File layout (all integers little-endian):
//!
//! | bytes          | content                                                   |
//! |----------------|-----------------------------------------------------------|
//! | 0..8           | magic `b"WEIRTRCE"`                                       |
//! | 8..12          | format version, `u32` ([`crate::FORMAT_VERSION`])         |
//! | 12..20         | body length `n`, `u64`                                    |
//! | 20..20+n       | body: bincode 2 (standard config, serde) of the [`Trace`] |
//! | 20+n..28+n     | xxh3-64 of bytes `0..20+n`, `u64`                         |
//!
//! The explicit body length lets a cut-off file be reported as truncated rather
//! than corrupt. Decoding never panics and bounds its allocations by the input
//! size, whatever the bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64;

use crate::{Event, FORMAT_VERSION, TraceHasher, TraceHeader};

/// The first eight bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"WEIRTRCE";

/// Bytes before the body: magic, version, body length.
const PREFIX_LEN: usize = 8 + 4 + 8;
/// Bytes after the body: the checksum.
const CHECKSUM_LEN: usize = 8;
/// The smallest possible file (empty body).
const MIN_LEN: usize = PREFIX_LEN + CHECKSUM_LEN;

/// A recorded run: its inputs and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The run's inputs.
    pub header: TraceHeader,
    /// The events, in recording order.
    pub events: Vec<Event>,
}

/// Why a trace could not be read.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The bytes do not start with the trace magic.
    #[error("not a Weir trace (bad magic)")]
    NotATrace,
    /// The file was written in a format version this build cannot read.
    #[error("unsupported trace format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file ends early.
    #[error("trace is truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes the file should have (a lower bound if the length field was cut off).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The checksum does not match, or there are bytes after the checksum.
    #[error("trace is corrupt: {0}")]
    Corrupt(String),
    /// The checksum matches but the body does not decode (a writer bug or a
    /// deliberately crafted file).
    #[error("trace body does not decode: {0}")]
    Decode(String),
    /// Reading or writing a trace file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A trace file was read but its contents are not a valid trace.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        source: Box<TraceError>,
    },
}

impl Trace {
    /// A trace with the given header and events.
    pub fn new(header: TraceHeader, events: Vec<Event>) -> Self {
        Trace { header, events }
    }

    /// The trace hash of the events (see [`TraceHasher`]); print it with `{:016x}`.
    pub fn hash(&self) -> u64 {
        TraceHasher::hash_events(&self.events)
    }

    /// Encode as a trace file.
    pub fn encode(&self) -> Vec<u8> {
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("trace types always encode");
        let mut out = Vec::with_capacity(MIN_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        let checksum = xxh3_64(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Decode a trace file; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Trace, TraceError> {
        let found = bytes.len() as u64;
        let truncated = |expected: u64| TraceError::Truncated { expected, found };
        if bytes.len() < MAGIC.len() {
            return if MAGIC.starts_with(bytes) { Err(truncated(MIN_LEN as u64)) } else { Err(TraceError::NotATrace) };
        }
        if bytes[..MAGIC.len()] != MAGIC {
            return Err(TraceError::NotATrace);
        }
        let Some(version) = bytes.get(8..12) else {
            return Err(truncated(MIN_LEN as u64));
        };
        let version = u32::from_le_bytes(version.try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(TraceError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        let Some(body_len) = bytes.get(12..PREFIX_LEN) else {
            return Err(truncated(MIN_LEN as u64));
        };
        let body_len = u64::from_le_bytes(body_len.try_into().expect("8 bytes"));
        let expected = body_len.saturating_add(MIN_LEN as u64);
        if found < expected {
            return Err(truncated(expected));
        }
        if found > expected {
            return Err(TraceError::Corrupt(format!(
                "{} unexpected bytes after the checksum (expected {expected} bytes in all)",
                found - expected
            )));
        }
        // found == expected, so the body length fits in usize.
        let (covered, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let stored = u64::from_le_bytes(stored.try_into().expect("8 bytes"));
        let computed = xxh3_64(covered);
        if stored != computed {
            return Err(TraceError::Corrupt(format!(
                "checksum mismatch (stored {stored:016x}, computed {computed:016x})"
            )));
        }
        decode_body(&covered[PREFIX_LEN..])
    }

    /// Write the encoded trace to `path` (replacing any existing file).
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), TraceError> {
        let path = path.as_ref();
        std::fs::write(path, self.encode()).map_err(|source| TraceError::Io { path: path.to_owned(), source })
    }

    /// Read and decode the trace file at `path`.
    pub fn read_from(path: impl AsRef<Path>) -> Result<Trace, TraceError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TraceError::Io { path: path.to_owned(), source })?;
        Trace::decode(&bytes).map_err(|e| TraceError::File { path: path.to_owned(), source: Box::new(e) })
    }
}

/// Bincode's decoder claims at most this many bytes per byte of input (a
/// varint-encoded `u64` claims 8 bytes and may occupy 1), so a limit of
/// `CLAIM_FACTOR * body.len()` never rejects a valid body.
const CLAIM_FACTOR: usize = 8;

/// Decode the body with a byte limit proportional to its size, so that a crafted
/// length prefix cannot make bincode allocate more than a small multiple of the
/// input (the limit is a const generic, hence the tiers).
fn decode_body(body: &[u8]) -> Result<Trace, TraceError> {
    macro_rules! tiers {
        ($($exp:literal)*) => {
            $(
                if body.len() <= (1usize << $exp) / CLAIM_FACTOR {
                    return decode_body_limited::<{ 1usize << $exp }>(body);
                }
            )*
        };
    }
    tiers!(16 18 20 22 24 26 28 30 32 34 36 38 40 42 44);
    Err(TraceError::Decode(format!("body of {} bytes is too large", body.len())))
}

fn decode_body_limited<const LIMIT: usize>(body: &[u8]) -> Result<Trace, TraceError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (trace, read): (Trace, usize) =
        bincode::serde::decode_from_slice(body, config).map_err(|e| TraceError::Decode(e.to_string()))?;
    if read != body.len() {
        return Err(TraceError::Decode(format!("{} trailing bytes after the trace", body.len() - read)));
    }
    Ok(trace)
}
