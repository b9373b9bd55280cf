//! The `Disk` seam: every byte the core persists goes through this trait.
//!
//! Production uses [`RealDisk`] (files under a data directory, fsync); the
//! simulator supplies `SimDisk`, which keeps *durable* and *written-not-synced*
//! data apart so that a simulated crash loses exactly what a power cut would.
//!
//! Contract (both implementations follow it, tests check it on `SimDisk`):
//! - Paths are relative, `/`-separated, with no `..`.
//! - Writes (`append`, `write_file`, `truncate`) are visible to reads at once but
//!   are durable only after [`Disk::sync`] on that file.
//! - Namespace changes (creating, renaming, removing a file) are durable only
//!   after [`Disk::sync_dir`] on the parent directory.
//! - The trait is synchronous; [`Disk::latency`] tells the async caller how long the
//!   operation should take, so a simulated slow disk slows the caller down.

#[cfg(madsim)]
mod faulty;
mod metered;
mod real;

#[cfg(madsim)]
pub use faulty::FaultPoints;
pub use metered::Metered;
pub use real::RealDisk;

use std::io;
use std::time::Duration;

/// Kinds of disk operation, for latency shaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// A read.
    Read,
    /// A write (append, write_file, truncate).
    Write,
    /// An fsync of a file or directory.
    Sync,
}

/// Persistent storage used by the core.
pub trait Disk: Send + Sync + 'static {
    /// The whole contents of `path` (`NotFound` if absent).
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Up to `len` bytes of `path` starting at `offset` (short at end of file).
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Append `data` to `path`, creating it if absent; returns the new length.
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64>;
    /// Create or replace `path` with `data`.
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// Cut `path` to `len` bytes.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Make the contents of `path` durable.
    fn sync(&self, path: &str) -> io::Result<()>;
    /// Make creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// Atomically rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Remove `path` (`NotFound` if absent).
    fn remove(&self, path: &str) -> io::Result<()>;
    /// File names directly inside `dir`, sorted (empty if `dir` does not exist).
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Length of `path` in bytes.
    fn len(&self, path: &str) -> io::Result<u64>;
    /// Whether `path` exists.
    fn exists(&self, path: &str) -> bool {
        self.len(path).is_ok()
    }
    /// How long `op` over `bytes` bytes should take (zero for real disks: they take real time).
    fn latency(&self, _op: DiskOp, _bytes: usize) -> Duration {
        Duration::ZERO
    }
}

/// Join a directory and a file name with `/`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// The parent directory of `path` (`""` for top-level files).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}
