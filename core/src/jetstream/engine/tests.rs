//! Engine tests without a runtime: an in-memory [`Disk`] that can lose unsynced data,
//! a helper client, and one test group per API family.

// Helpers shared by the test groups; not every group uses each.
#![allow(dead_code)]

use super::*;
use crate::disk::Disk;
use crate::proto::ByteStr;
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

mod api_tests;
mod consumer_tests;
mod failed_sync_tests;
mod feature_tests;
mod model_tests;
mod priority_tests;
mod restart_tests;

/// An in-memory disk: `current` is what reads see, `durable` what survives [`MemDisk::crash`].
/// Syncing a file makes its contents durable; renames and removals are durable at once
/// (a simplification: the engine syncs the directory right after each of them anyway).
#[derive(Default)]
pub(super) struct MemDisk {
    current: Mutex<BTreeMap<String, Vec<u8>>>,
    durable: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Make every sync fail.
    pub fail_sync: AtomicBool,
    /// A full disk: every append and file write fails with ENOSPC (nothing written).
    pub full: AtomicBool,
    /// Path prefixes whose next read (`read`, `read_at` or `list`) fails with EIO, one
    /// read per entry (a transient disk error, as the `disk.read.fail` fault point).
    pub fail_reads: Mutex<Vec<String>>,
}

impl MemDisk {
    /// Lose everything not synced.
    pub fn crash(&self) {
        *self.current.lock().unwrap() = self.durable.lock().unwrap().clone();
    }

    /// Overwrite a file (durably), for corruption tests.
    pub fn put(&self, path: &str, data: &[u8]) {
        self.current.lock().unwrap().insert(path.into(), data.to_vec());
        self.durable.lock().unwrap().insert(path.into(), data.to_vec());
    }

    fn check_space(&self) -> io::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device (ENOSPC)"));
        }
        Ok(())
    }

    /// Make the next read of a path starting with `prefix` fail with EIO.
    pub fn fail_next_read(&self, prefix: &str) {
        self.fail_reads.lock().unwrap().push(prefix.to_string());
    }

    fn read_fault(&self, path: &str) -> io::Result<()> {
        let mut f = self.fail_reads.lock().unwrap();
        match f.iter().position(|p| path.starts_with(p.as_str())) {
            Some(i) => {
                f.remove(i);
                Err(io::Error::from_raw_os_error(5))
            }
            None => Ok(()),
        }
    }

    /// Every path.
    pub fn paths(&self) -> Vec<String> {
        self.current.lock().unwrap().keys().cloned().collect()
    }
}

fn nf(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.to_string())
}

impl Disk for MemDisk {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.read_fault(path)?;
        self.current.lock().unwrap().get(path).cloned().ok_or_else(|| nf(path))
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_fault(path)?;
        let c = self.current.lock().unwrap();
        let d = c.get(path).ok_or_else(|| nf(path))?;
        let s = (offset as usize).min(d.len());
        Ok(d[s..(s + len).min(d.len())].to_vec())
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.check_space()?;
        let mut c = self.current.lock().unwrap();
        let f = c.entry(path.to_string()).or_default();
        f.extend_from_slice(data);
        Ok(f.len() as u64)
    }
    fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.check_space()?;
        self.current.lock().unwrap().insert(path.to_string(), data.to_vec());
        Ok(())
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut c = self.current.lock().unwrap();
        c.get_mut(path).ok_or_else(|| nf(path))?.truncate(len as usize);
        Ok(())
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        if self.fail_sync.load(Ordering::Relaxed) {
            return Err(io::Error::other("injected sync failure"));
        }
        let data = self.current.lock().unwrap().get(path).cloned().ok_or_else(|| nf(path))?;
        self.durable.lock().unwrap().insert(path.to_string(), data);
        Ok(())
    }
    fn sync_dir(&self, _dir: &str) -> io::Result<()> {
        if self.fail_sync.load(Ordering::Relaxed) {
            return Err(io::Error::other("injected sync failure"));
        }
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let data = self.current.lock().unwrap().remove(from).ok_or_else(|| nf(from))?;
        self.current.lock().unwrap().insert(to.to_string(), data);
        let mut d = self.durable.lock().unwrap();
        if let Some(v) = d.remove(from) {
            d.insert(to.to_string(), v);
        }
        Ok(())
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.durable.lock().unwrap().remove(path);
        self.current.lock().unwrap().remove(path).map(|_| ()).ok_or_else(|| nf(path))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.read_fault(dir)?;
        Ok(self
            .current
            .lock()
            .unwrap()
            .keys()
            .filter(|p| crate::disk::parent(p) == dir)
            .map(|p| p.rsplit_once('/').map_or(p.as_str(), |(_, n)| n).to_string())
            .collect())
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.current.lock().unwrap().get(path).map(|d| d.len() as u64).ok_or_else(|| nf(path))
    }
}

/// A ledger with every account the engine charges.
pub(super) fn ledger() -> Arc<Ledger> {
    Arc::new(Ledger::with_defaults(ACCOUNTS))
}

/// The engine under test with its disk and a clock.
pub(super) struct Harness {
    pub js: JetStream,
    pub disk: Arc<MemDisk>,
    pub now: i64,
    pub cfg: JsConfig,
    pub notes: Vec<RecoveryNote>,
}

/// One output, flattened for assertions: `(to, subject, reply, headers, payload)`.
#[derive(Clone, Debug)]
pub(super) struct Out {
    pub to: String,
    pub subject: String,
    pub reply: Option<String>,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.payload)))
    }
    pub fn status(&self) -> Option<u16> {
        let h = std::str::from_utf8(&self.headers).ok()?;
        h.strip_prefix("NATS/1.0 ")?.get(..3)?.parse().ok()
    }
}

pub(super) fn msg(subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) -> Message {
    Message {
        subject: ByteStr::from(subject),
        reply: reply.map(ByteStr::from),
        headers: (!headers.is_empty()).then(|| Bytes::copy_from_slice(headers)),
        payload: Bytes::copy_from_slice(payload),
    }
}

pub(super) fn flatten(outs: Vec<JsOut>) -> Vec<Out> {
    outs.into_iter()
        .filter_map(|o| match o {
            JsOut::Publish(m) => Some(Out {
                to: m.subject.to_string(),
                subject: m.subject.to_string(),
                reply: m.reply.map(|r| r.to_string()),
                headers: m.headers.map(|h| h.to_vec()).unwrap_or_default(),
                payload: m.payload.to_vec(),
            }),
            JsOut::Deliver { to, msg, charge } => {
                drop(charge);
                Some(Out {
                    to,
                    subject: msg.subject.to_string(),
                    reply: msg.reply.map(|r| r.to_string()),
                    headers: msg.headers.map(|h| h.to_vec()).unwrap_or_default(),
                    payload: msg.payload.to_vec(),
                })
            }
            JsOut::Watch { .. } => None,
        })
        .collect()
}

impl Harness {
    pub fn new() -> Self {
        Self::with(JsConfig { store_dir: "data".into(), ..JsConfig::default() })
    }

    pub fn with(cfg: JsConfig) -> Self {
        Self::with_ledger(cfg, ledger())
    }

    pub fn with_ledger(cfg: JsConfig, ledger: Arc<Ledger>) -> Self {
        let disk = Arc::new(MemDisk::default());
        let now = 1_700_000_000_000_000_000;
        let (js, notes) = JetStream::open(cfg.clone(), disk.clone(), ledger, now);
        Harness { js, disk, now, cfg, notes }
    }

    /// Restart the engine on the same disk (after an optional crash).
    pub fn restart(&mut self, crash: bool) {
        if crash {
            self.disk.crash();
        }
        let (js, notes) = JetStream::open(self.cfg.clone(), self.disk.clone(), ledger(), self.now);
        self.js = js;
        self.notes = notes;
    }

    pub fn advance(&mut self, ns: i64) -> Vec<Out> {
        self.now += ns;
        let mut out = Vec::new();
        self.js.tick(self.now, &mut out);
        flatten(out)
    }

    /// Send a message; returns everything the engine sent.
    pub fn send(&mut self, subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) -> Vec<Out> {
        self.now += 1_000;
        let mut out = Vec::new();
        self.js.on_message(self.now, &msg(subject, reply, headers, payload), &mut out);
        flatten(out)
    }

    /// Run the group commit.
    pub fn sync(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let _ = self.js.sync(self.now, &mut out);
        flatten(out)
    }

    /// An API request: its JSON reply (sync included).
    pub fn api(&mut self, subject: &str, body: &str) -> Value {
        let mut outs = self.send(subject, Some("_INBOX.api"), b"", body.as_bytes());
        outs.extend(self.sync());
        let r = outs.iter().find(|o| o.to == "_INBOX.api").unwrap_or_else(|| panic!("no reply to {subject}: {outs:?}"));
        r.json()
    }

    /// Publish with a reply and sync: the PubAck JSON.
    pub fn publish(&mut self, subject: &str, headers: &[u8], payload: &[u8]) -> Value {
        let mut outs = self.send(subject, Some("_INBOX.pub"), headers, payload);
        outs.extend(self.sync());
        outs.iter().find(|o| o.to == "_INBOX.pub").unwrap_or_else(|| panic!("no PubAck: {outs:?}")).json()
    }

    /// Publish to `subject` and sync: every output (deliveries and statuses included).
    pub fn publish_outs(&mut self, subject: &str) -> Vec<Out> {
        let mut outs = self.send(subject, Some("_INBOX.pub"), b"", b"x");
        outs.extend(self.sync());
        outs
    }

    pub fn create_stream(&mut self, body: &str) -> Value {
        let v: Value = serde_json::from_str(body).unwrap();
        let name = v["name"].as_str().unwrap().to_string();
        let r = self.api(&format!("$JS.API.STREAM.CREATE.{name}"), body);
        assert!(r.get("error").is_none(), "{r}");
        r
    }
}

/// The error code of an API reply (0 when it succeeded).
pub(super) fn err_code(v: &Value) -> u64 {
    v["error"]["err_code"].as_u64().unwrap_or(0)
}
