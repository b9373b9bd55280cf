//! `RealDisk`: the `Disk` seam over real files under a root directory.
//!
//! Open file handles are kept in a small cache shared by every clone of a `RealDisk`
//! (at most [`RealDisk::MAX_OPEN`] files, least recently used closed first), so that an
//! append, a positioned read or a sync costs one system call instead of an open, the
//! call and a close. Every cached handle is opened read + append (`O_APPEND`): appends
//! always land at the end of the file and positioned reads use `pread`. A rename, a
//! removal or a `write_file` drops the handles of the paths involved, so a cached handle
//! never points at a file that is no longer at its path. Syncs use `fdatasync`: it makes
//! a file's data and the metadata needed to read it back (its length) durable, which is
//! what [`Disk::sync`] promises; namespace changes still need [`Disk::sync_dir`].

use super::Disk;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Files under a root directory, with real fsync.
#[derive(Clone, Debug)]
pub struct RealDisk {
    root: PathBuf,
    handles: Arc<Mutex<Handles>>,
}

/// The open-handle cache: path -> (handle, last use).
#[derive(Debug, Default)]
struct Handles {
    open: BTreeMap<String, (Arc<File>, u64)>,
    clock: u64,
}

impl RealDisk {
    /// Most files a `RealDisk` (and its clones) keep open.
    pub const MAX_OPEN: usize = 64;

    /// A disk rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(RealDisk { root, handles: Arc::default() })
    }

    /// Files currently held open by the handle cache.
    pub fn open_handles(&self) -> usize {
        self.handles().open.len()
    }

    fn path(&self, rel: &str) -> io::Result<PathBuf> {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad disk path {rel:?}")));
        }
        Ok(self.root.join(rel))
    }

    fn ensure_parent(p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(d) => fs::create_dir_all(d),
            None => Ok(()),
        }
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        // A panic while holding the lock leaves the map consistent (no partial updates).
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached handle of `rel`, opening (and, with `create`, creating) it on a miss.
    /// The lock is not held during the caller's I/O.
    fn file(&self, rel: &str, create: bool) -> io::Result<Arc<File>> {
        {
            let mut h = self.handles();
            h.clock += 1;
            let now = h.clock;
            if let Some((f, used)) = h.open.get_mut(rel) {
                *used = now;
                return Ok(f.clone());
            }
        }
        let p = self.path(rel)?;
        if create {
            Self::ensure_parent(&p)?;
        }
        let f = match OpenOptions::new().read(true).append(true).create(create).open(&p) {
            Ok(f) => Arc::new(f),
            // A file we may read but not write: serve reads from an uncached handle.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !create => return Ok(Arc::new(File::open(&p)?)),
            Err(e) => return Err(e),
        };
        let mut h = self.handles();
        if h.open.len() >= Self::MAX_OPEN {
            let lru = h.open.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            if let Some(k) = lru {
                h.open.remove(&k);
            }
        }
        let now = h.clock;
        h.open.insert(rel.to_string(), (f.clone(), now));
        Ok(f)
    }

    /// Close the cached handles of these paths.
    fn forget(&self, rels: &[&str]) {
        let mut h = self.handles();
        for r in rels {
            h.open.remove(*r);
        }
    }
}

impl Disk for RealDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(path)?)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = self.file(path, false)?;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let f = self.file(path, true)?;
        let mut w: &File = &f;
        w.write_all(data)?;
        // With O_APPEND the offset after the write is the file's new end.
        w.stream_position()
    }

    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let p = self.path(path)?;
        self.forget(&[path]);
        Self::ensure_parent(&p)?;
        fs::write(p, data)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.file(path, false)?.set_len(len)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        self.file(path, false)?.sync_data()
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let p = self.path(dir)?;
        fs::create_dir_all(&p)?;
        File::open(p)?.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (self.path(from)?, self.path(to)?);
        self.forget(&[from, to]);
        Self::ensure_parent(&t)?;
        fs::rename(f, t)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.path(path)?;
        self.forget(&[path]);
        fs::remove_file(p)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let p = self.path(dir)?;
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(path)?)?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-realdisk-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn cached_handles_follow_renames_removals_and_rewrites() {
        let root = temp("handles");
        let d = RealDisk::new(&root).unwrap();
        assert_eq!(d.append("a/x", b"hello").unwrap(), 5);
        assert_eq!(d.append("a/x", b" world").unwrap(), 11);
        assert_eq!(d.read_at("a/x", 6, 100).unwrap(), b"world");
        d.truncate("a/x", 5).unwrap();
        assert_eq!(d.append("a/x", b"!").unwrap(), 6);
        d.sync("a/x").unwrap();
        d.rename("a/x", "a/y").unwrap();
        assert!(d.read_at("a/x", 0, 1).is_err());
        assert_eq!(d.append("a/x", b"new").unwrap(), 3, "a new file, not the renamed one");
        assert_eq!(d.read("a/y").unwrap(), b"hello!");
        d.write_file("a/y", b"replaced").unwrap();
        assert_eq!(d.read_at("a/y", 0, 100).unwrap(), b"replaced");
        assert_eq!(d.append("a/y", b"+").unwrap(), 9);
        d.remove("a/y").unwrap();
        assert_eq!(d.append("a/y", b"z").unwrap(), 1);
        for i in 0..RealDisk::MAX_OPEN + 10 {
            d.append(&format!("many/{i}"), b"1").unwrap();
        }
        assert_eq!(d.open_handles(), RealDisk::MAX_OPEN);
        assert_eq!(d.read_at("many/0", 0, 10).unwrap(), b"1");
        let _ = fs::remove_dir_all(&root);
    }
}
