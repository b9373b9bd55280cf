//! [`Metered`]: a [`Disk`] that notes how long each operation should take, for an async
//! caller to wait out later.
//!
//! The disk seam is synchronous, so a state machine calling it cannot sleep; the
//! simulated disk instead says how long each operation *should* take
//! ([`Disk::latency`]). `Metered` adds those latencies up as operations happen; the async
//! shell around the state machine takes the sum with [`Metered::take_owed`] once its lock
//! is released and sleeps for it. A slow simulated disk thereby slows down whoever waits
//! on it (the group-commit flusher, say) without the state machine knowing about time.
//! On a real disk every latency is zero: the real calls take real time.

use super::{Disk, DiskOp};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A disk wrapper that accumulates the latency hint of every operation.
pub struct Metered {
    inner: Arc<dyn Disk>,
    owed_ns: AtomicU64,
}

impl Metered {
    /// Wrap `inner`; nothing is owed yet.
    pub fn new(inner: Arc<dyn Disk>) -> Metered {
        Metered { inner, owed_ns: AtomicU64::new(0) }
    }

    /// The time owed since the last call, which is reset to zero.
    pub fn take_owed(&self) -> Duration {
        Duration::from_nanos(self.owed_ns.swap(0, Relaxed))
    }

    fn owe(&self, op: DiskOp, bytes: usize) {
        let ns = self.inner.latency(op, bytes).as_nanos();
        if ns > 0 {
            self.owed_ns.fetch_add(u64::try_from(ns).unwrap_or(u64::MAX), Relaxed);
        }
    }
}

impl Disk for Metered {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let r = self.inner.read(path);
        self.owe(DiskOp::Read, r.as_ref().map_or(0, Vec::len));
        r
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.owe(DiskOp::Read, len);
        self.inner.read_at(path, offset, len)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.owe(DiskOp::Write, data.len());
        self.inner.append(path, data)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.owe(DiskOp::Write, data.len());
        self.inner.write_file(path, data)
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.truncate(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.owe(DiskOp::Sync, 0);
        self.inner.sync(path)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.owe(DiskOp::Sync, 0);
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.owe(DiskOp::Write, 0);
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.owe(DiskOp::Read, 0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A disk whose every operation takes 1 ms (plus 1 µs per byte written), holding nothing.
    #[derive(Default)]
    struct Slow(Mutex<Vec<u8>>);

    impl Disk for Slow {
        fn read(&self, _: &str) -> io::Result<Vec<u8>> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn read_at(&self, _: &str, _: u64, _: usize) -> io::Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn append(&self, _: &str, data: &[u8]) -> io::Result<u64> {
            let mut v = self.0.lock().unwrap();
            v.extend_from_slice(data);
            Ok(v.len() as u64)
        }
        fn write_file(&self, _: &str, _: &[u8]) -> io::Result<()> {
            Ok(())
        }
        fn truncate(&self, _: &str, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn sync(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn sync_dir(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn rename(&self, _: &str, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn remove(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn list(&self, _: &str) -> io::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn len(&self, _: &str) -> io::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64)
        }
        fn latency(&self, op: DiskOp, bytes: usize) -> Duration {
            let per_byte = if op == DiskOp::Write { bytes as u64 } else { 0 };
            Duration::from_millis(1) + Duration::from_micros(per_byte)
        }
    }

    #[test]
    fn owed_time_adds_up_and_resets() {
        let m = Metered::new(Arc::new(Slow::default()));
        assert_eq!(m.take_owed(), Duration::ZERO);
        m.append("f", &[0; 10]).unwrap();
        m.sync("f").unwrap();
        assert_eq!(m.read("f").unwrap().len(), 10);
        assert_eq!(m.take_owed(), Duration::from_micros(3_010));
        assert_eq!(m.take_owed(), Duration::ZERO, "taking resets");
        assert_eq!(m.len("f").unwrap(), 10, "len is free");
        assert_eq!(m.take_owed(), Duration::ZERO);
    }
}
