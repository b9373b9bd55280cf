//! Where the engine keeps things on the `Disk` seam, and the checksummed, atomically
//! replaced metadata files.
//!
//! ```text
//! <store_dir>/jetstream/$G/streams/<stream>.meta          stream config + creation time
//! <store_dir>/jetstream/$G/streams/<stream>/msgs/N.blk    the FileStore (file streams)
//! <store_dir>/jetstream/$G/streams/<stream>/obs/<c>.meta  consumer config + creation time
//! <store_dir>/jetstream/$G/streams/<stream>/obs/<c>.state consumer ack state (file streams)
//! ```
//!
//! Metadata files sit *beside* the directories they describe (not inside) because
//! [`Disk::list`] lists files only: listing `streams/` finds every `*.meta`, which is
//! how [`super::JetStream::open`] discovers streams. A metadata file is
//! `<16 hex digits of xxh3-64 of the body>\n<body>`, so a flipped bit is reported as
//! corruption instead of being read as another config. Replacing one writes a temp
//! file, syncs it, renames it over the old one and syncs the directory.

use crate::disk::{self, Disk};
use std::io;

/// Suffix of stream and consumer metadata files.
pub const META_SUFFIX: &str = ".meta";
/// Suffix of consumer state files.
pub const STATE_SUFFIX: &str = ".state";
const TMP_SUFFIX: &str = ".tmp";

/// The account directory: `<store_dir>/jetstream/$G`.
pub fn account_dir(store_dir: &str) -> String {
    disk::join(&disk::join(store_dir.trim_end_matches('/'), "jetstream"), "$G")
}

/// `<account>/streams`.
pub fn streams_dir(store_dir: &str) -> String {
    disk::join(&account_dir(store_dir), "streams")
}

/// `<account>/streams/<stream>`.
pub fn stream_dir(store_dir: &str, stream: &str) -> String {
    disk::join(&streams_dir(store_dir), stream)
}

/// `<account>/streams/<stream>.meta`.
pub fn stream_meta(store_dir: &str, stream: &str) -> String {
    format!("{}{META_SUFFIX}", stream_dir(store_dir, stream))
}

/// The stream's FileStore directory.
pub fn msgs_dir(store_dir: &str, stream: &str) -> String {
    disk::join(&stream_dir(store_dir, stream), "msgs")
}

/// The stream's consumer directory.
pub fn consumers_dir(store_dir: &str, stream: &str) -> String {
    disk::join(&stream_dir(store_dir, stream), "obs")
}

/// A consumer's metadata file.
pub fn consumer_meta(store_dir: &str, stream: &str, consumer: &str) -> String {
    disk::join(&consumers_dir(store_dir, stream), &format!("{consumer}{META_SUFFIX}"))
}

/// A consumer's state file.
pub fn consumer_state(store_dir: &str, stream: &str, consumer: &str) -> String {
    disk::join(&consumers_dir(store_dir, stream), &format!("{consumer}{STATE_SUFFIX}"))
}

fn checksum(body: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body))
}

/// Replace `path` with `body` (checksummed) atomically and durably.
pub fn write_atomic(disk: &dyn Disk, path: &str, body: &[u8]) -> io::Result<()> {
    let tmp = stage(disk, path, body)?;
    disk.sync(&tmp)?;
    disk.rename(&tmp, path)?;
    disk.sync_dir(disk::parent(path))
}

/// The first step of [`write_atomic`] on its own: write `body` (checksummed) to the
/// temp file beside `path` and return its path. The caller syncs it, renames it over
/// `path` and syncs the directory (the group commit does the syncs without the
/// engine's lock).
pub fn stage(disk: &dyn Disk, path: &str, body: &[u8]) -> io::Result<String> {
    let mut data = Vec::with_capacity(body.len() + 17);
    data.extend_from_slice(checksum(body).as_bytes());
    data.push(b'\n');
    data.extend_from_slice(body);
    let tmp = format!("{path}{TMP_SUFFIX}");
    disk.write_file(&tmp, &data)?;
    Ok(tmp)
}

/// Why a file written by [`write_atomic`] could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The disk failed the read: the file may read fine on another try (a transient
    /// EIO, a short read), so whoever needs it tries again later rather than treat it
    /// as damaged.
    Io(String),
    /// The file is damaged (no checksum line, checksum mismatch): reading it again
    /// gives the same answer.
    Corrupt(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(t) | ReadError::Corrupt(t) => f.write_str(t),
        }
    }
}

/// Read a file written by [`write_atomic`]: the body, or why it is unreadable.
pub fn read_checked(disk: &dyn Disk, path: &str) -> Result<Vec<u8>, ReadError> {
    let data = disk.read(path).map_err(|e| ReadError::Io(format!("cannot read {path}: {e}")))?;
    let (sum, body) = match data.iter().position(|b| *b == b'\n') {
        Some(16) => (&data[..16], &data[17..]),
        _ => return Err(ReadError::Corrupt(format!("{path} is corrupt: no checksum line"))),
    };
    if sum != checksum(body).as_bytes() {
        return Err(ReadError::Corrupt(format!("{path} is corrupt: checksum mismatch")));
    }
    Ok(body.to_vec())
}

/// Remove `path` if present (durably: the caller syncs the directory).
pub fn remove_if_present(disk: &dyn Disk, path: &str) -> io::Result<()> {
    match disk.remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove every file directly inside `dir` (and sync it).
pub fn clear_dir(disk: &dyn Disk, dir: &str) -> io::Result<()> {
    let names = disk.list(dir)?;
    if names.is_empty() {
        return Ok(());
    }
    for n in names {
        remove_if_present(disk, &disk::join(dir, &n))?;
    }
    disk.sync_dir(dir)
}

/// Names `x` of the files `x<suffix>` directly inside `dir`, sorted.
pub fn names_with_suffix(disk: &dyn Disk, dir: &str, suffix: &str) -> io::Result<Vec<String>> {
    Ok(disk.list(dir)?.into_iter().filter_map(|n| n.strip_suffix(suffix).map(str::to_string)).collect())
}
