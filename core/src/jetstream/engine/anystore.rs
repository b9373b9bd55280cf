//! [`AnyStore`]: one store type for every stream of the engine, so that file and memory
//! streams share one `Stream<AnyStore>` map. Every [`MsgStore`] call is delegated.

use crate::store::{
    FileStore, MemStore, MsgStore, NewMsg, PurgeRequest, Result, StateRequest, StoreLimits, StoreState, StoredMsg,
};

/// A stream's store: a [`FileStore`] (`storage: file`) or a [`MemStore`] (`storage: memory`).
#[derive(Debug)]
pub enum AnyStore {
    /// Durable, over the `Disk` seam; synced by the engine's group commit.
    File(Box<FileStore>),
    /// In memory; nothing survives a restart.
    Mem(MemStore),
}

impl AnyStore {
    /// The file store, if this is one.
    pub fn file_mut(&mut self) -> Option<&mut FileStore> {
        match self {
            AnyStore::File(f) => Some(f),
            AnyStore::Mem(_) => None,
        }
    }

    /// Whether this is a file store.
    pub fn is_file(&self) -> bool {
        matches!(self, AnyStore::File(_))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::File($s) => $e,
            AnyStore::Mem($s) => $e,
        }
    };
}

impl MsgStore for AnyStore {
    fn append(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64> {
        delegate!(self, s => s.append(subject, headers, payload, ts_ns))
    }
    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<u64>> {
        delegate!(self, s => s.append_batch(msgs))
    }
    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>> {
        delegate!(self, s => s.load(seq))
    }
    fn load_last(&mut self, filter: &str) -> Result<Option<StoredMsg>> {
        delegate!(self, s => s.load_last(filter))
    }
    fn load_next(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>> {
        delegate!(self, s => s.load_next(filter, from_seq))
    }
    fn delete(&mut self, seq: u64) -> Result<bool> {
        delegate!(self, s => s.delete(seq))
    }
    fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        delegate!(self, s => s.purge(req))
    }
    fn purge_caused_by(&mut self, req: &PurgeRequest, cause: u64) -> Result<u64> {
        delegate!(self, s => s.purge_caused_by(req, cause))
    }
    fn compact(&mut self, seq: u64) -> Result<u64> {
        delegate!(self, s => s.compact(seq))
    }
    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        delegate!(self, s => s.expire(now_ns))
    }
    fn set_limits(&mut self, limits: StoreLimits) -> Result<u64> {
        delegate!(self, s => s.set_limits(limits))
    }
    fn limits(&self) -> &StoreLimits {
        delegate!(self, s => s.limits())
    }
    fn state_with(&self, req: &StateRequest) -> Result<StoreState> {
        delegate!(self, s => s.state_with(req))
    }
}
