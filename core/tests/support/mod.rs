//! Test support shared by the store test binaries (each uses a subset of it).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use weir_core::disk::Disk;

/// An in-memory disk with an optional capacity (ENOSPC) and read/sync statistics.
#[derive(Default)]
pub struct MemDisk {
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
    pub capacity: Mutex<Option<u64>>,
    pub max_read: AtomicU64,
    pub read_bytes: AtomicU64,
    pub syncs: AtomicU64,
    /// The next `read_at` of this path fails with this error (once).
    pub fail_read_at: Mutex<Option<(String, io::ErrorKind)>>,
    /// The next append to this path writes this many bytes, then fails with EIO (once).
    pub tear_append: Mutex<Option<(String, usize)>>,
    /// The next removal of this path fails with EIO (once).
    pub fail_remove: Mutex<Option<String>>,
}

fn nf(p: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, p.to_string())
}

impl MemDisk {
    fn used(f: &BTreeMap<String, Vec<u8>>) -> u64 {
        f.values().map(|d| d.len() as u64).sum()
    }
    pub fn set_capacity(&self, c: Option<u64>) {
        *self.capacity.lock().unwrap() = c;
    }
    /// Make the next ranged read of `path` fail with `kind`, as a disk error would.
    pub fn fail_next_read_at(&self, path: &str, kind: io::ErrorKind) {
        *self.fail_read_at.lock().unwrap() = Some((path.to_string(), kind));
    }
    /// Make the next append to `path` write only `keep` bytes and then fail, as a
    /// `write_all` cut short by a disk error does.
    pub fn tear_next_append(&self, path: &str, keep: usize) {
        *self.tear_append.lock().unwrap() = Some((path.to_string(), keep));
    }
    /// Make the next removal of `path` fail.
    pub fn fail_next_remove(&self, path: &str) {
        *self.fail_remove.lock().unwrap() = Some(path.to_string());
    }
    pub fn corrupt(&self, path: &str, offset: usize) {
        self.files.lock().unwrap().get_mut(path).unwrap()[offset] ^= 0x10;
    }
}

impl Disk for MemDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let d = self.files.lock().unwrap().get(path).cloned().ok_or_else(|| nf(path))?;
        self.max_read.fetch_max(d.len() as u64, Ordering::Relaxed);
        Ok(d)
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut armed = self.fail_read_at.lock().unwrap();
        if let Some((p, kind)) = armed.as_ref()
            && p == path
        {
            let kind = *kind;
            *armed = None;
            return Err(io::Error::new(kind, "injected read failure"));
        }
        drop(armed);
        let f = self.files.lock().unwrap();
        let d = f.get(path).ok_or_else(|| nf(path))?;
        let s = (offset as usize).min(d.len());
        let out = d[s..(s + len).min(d.len())].to_vec();
        self.max_read.fetch_max(out.len() as u64, Ordering::Relaxed);
        self.read_bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let torn = self.tear_append.lock().unwrap().take_if(|(p, _)| p == path).map(|(_, keep)| keep);
        if let Some(keep) = torn {
            let mut f = self.files.lock().unwrap();
            f.entry(path.to_string()).or_default().extend_from_slice(&data[..keep.min(data.len())]);
            return Err(io::Error::from_raw_os_error(5));
        }
        let mut f = self.files.lock().unwrap();
        if let Some(cap) = *self.capacity.lock().unwrap()
            && Self::used(&f) + data.len() as u64 > cap
        {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "ENOSPC"));
        }
        let d = f.entry(path.to_string()).or_default();
        d.extend_from_slice(data);
        Ok(d.len() as u64)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.files.lock().unwrap().insert(path.to_string(), data.to_vec());
        Ok(())
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.files.lock().unwrap().get_mut(path).ok_or_else(|| nf(path))?.truncate(len as usize);
        Ok(())
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().get(path).map(|_| ()).ok_or_else(|| nf(path))
    }
    fn sync_dir(&self, _dir: &str) -> io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut f = self.files.lock().unwrap();
        let d = f.remove(from).ok_or_else(|| nf(from))?;
        f.insert(to.to_string(), d);
        Ok(())
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        if self.fail_remove.lock().unwrap().take_if(|p| p == path).is_some() {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.files.lock().unwrap().remove(path).map(|_| ()).ok_or_else(|| nf(path))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let f = self.files.lock().unwrap();
        Ok(f.keys().filter_map(|k| k.strip_prefix(&prefix)).filter(|n| !n.contains('/')).map(str::to_string).collect())
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.files.lock().unwrap().get(path).map(|d| d.len() as u64).ok_or_else(|| nf(path))
    }
}
