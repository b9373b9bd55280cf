//! [`FaultPoints`]: the disk seam's fault points (simulation build only). The
//! simulator wraps each node's disk in it before handing the disk to the core, so a
//! firing `disk.*` site fails the operation exactly as a real disk would: the same
//! `io::Error` kinds (EIO as `Other` with the OS text, ENOSPC as `StorageFull`, a
//! short read as `UnexpectedEof`), and a failed append may leave a prefix of its
//! bytes written, as a real `write_all` that fails part-way does.

use super::{Disk, DiskOp};
use crate::fault_point;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A disk whose operations pass through the `disk.*` fault points.
pub struct FaultPoints {
    inner: Arc<dyn Disk>,
}

impl FaultPoints {
    /// Wrap `inner`.
    pub fn wrap(inner: Arc<dyn Disk>) -> Arc<dyn Disk> {
        Arc::new(FaultPoints { inner })
    }
}

/// EIO as a real disk reports it.
fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// ENOSPC as a real disk reports it.
fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl FaultPoints {
    fn read_fault(&self) -> io::Result<()> {
        if fault_point!("disk.read.fail") { Err(eio()) } else { Ok(()) }
    }

    fn write_fault(&self) -> io::Result<()> {
        if fault_point!("disk.write.fail") { Err(eio()) } else { Ok(()) }
    }

    fn sync_fault(&self) -> io::Result<()> {
        if fault_point!("disk.sync.fail") { Err(eio()) } else { Ok(()) }
    }
}

impl Disk for FaultPoints {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.read_fault()?;
        self.inner.read(path)
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_fault()?;
        if len > 0 && fault_point!("disk.read.short") {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"));
        }
        self.inner.read_at(path, offset, len)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.write_fault()?;
        let torn = if data.len() > 1 && fault_point!("disk.write.short") {
            Some(eio())
        } else if data.len() > 1 && fault_point!("disk.write.enospc") {
            Some(enospc())
        } else {
            None
        };
        if let Some(e) = torn {
            // Part of the record reached the file before the error, as with a real
            // write that fails part-way through.
            let keep = 1 + crate::fault::pick(data.len() as u64 - 1) as usize;
            self.inner.append(path, &data[..keep])?;
            return Err(e);
        }
        self.inner.append(path, data)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.write_fault()?;
        self.inner.write_file(path, data)
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.write_fault()?;
        self.inner.truncate(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.sync_fault()?;
        self.inner.sync(path)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.sync_fault()?;
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.write_fault()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.write_fault()?;
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.read_fault()?;
        self.inner.list(dir)
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.inner.len(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }
    fn latency(&self, op: DiskOp, bytes: usize) -> Duration {
        self.inner.latency(op, bytes)
    }
}
