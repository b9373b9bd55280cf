//! `RealDisk`: the `Disk` seam over real files under a root directory.

use super::Disk;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Files under a root directory, with real fsync.
#[derive(Clone, Debug)]
pub struct RealDisk {
    root: PathBuf,
}

impl RealDisk {
    /// A disk rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(RealDisk { root })
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
}

impl Disk for RealDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(path)?)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.path(path)?)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let p = self.path(path)?;
        Self::ensure_parent(&p)?;
        let mut f = OpenOptions::new().create(true).append(true).open(&p)?;
        f.write_all(data)?;
        Ok(f.metadata()?.len())
    }

    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let p = self.path(path)?;
        Self::ensure_parent(&p)?;
        fs::write(p, data)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(self.path(path)?)?.set_len(len)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        OpenOptions::new().write(true).open(self.path(path)?)?.sync_all()
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let p = self.path(dir)?;
        fs::create_dir_all(&p)?;
        File::open(p)?.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let t = self.path(to)?;
        Self::ensure_parent(&t)?;
        fs::rename(self.path(from)?, t)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        fs::remove_file(self.path(path)?)
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
