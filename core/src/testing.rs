//! Test support: the replicated test log and its payload helpers.
//!
//! Compiled only for weir-core's own tests and with the `test-support` cargo feature,
//! which the simulator (`weir-sim`), the `weir` binary (its `raft-node` command) and the
//! workspace's integration tests enable. Production code in this crate cannot name it:
//! `cargo build -p weir-core` (and `cargo test -p weir-core`, whose non-test code is
//! built without the feature) would fail if it did.
//!
//! [`LogApp`] is the replicated application used while Raft is proven on its own: an
//! ordered log of 64-bit values, one [`StateMachine`] implementation among the
//! test log, a JetStream stream and the meta state. Each committed entry's first 8 bytes (little endian) are its
//! value; the rest is payload padding. The state keeps every applied value so that
//! checkers can verify "every acknowledged proposal is present exactly once on every
//! replica", and a hash chain over `(index, data hash)` that must agree everywhere.

use crate::raft::{Entry, Index, RestoreError, StateMachine};
use serde::{Deserialize, Serialize};

/// Hash of an entry's data (0 for a leader no-op).
pub fn data_hash(data: &[u8]) -> u64 {
    if data.is_empty() { 0 } else { xxhash_rust::xxh3::xxh3_64(data) }
}

/// The value carried by an entry, if it is not a no-op.
pub fn value_of(data: &[u8]) -> Option<u64> {
    data.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Build a proposal payload carrying `value`, padded to `len` bytes (at least 8).
pub fn payload(value: u64, len: usize) -> Vec<u8> {
    let mut v = value.to_le_bytes().to_vec();
    v.resize(len.max(8), 0xAB);
    v
}

/// Extend the state digest chain with one applied entry.
pub fn chain(digest: u64, index: Index, data_hash: u64) -> u64 {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&digest.to_le_bytes());
    b[8..16].copy_from_slice(&index.to_le_bytes());
    b[16..].copy_from_slice(&data_hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// The application state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogApp {
    /// Last applied index.
    pub applied: Index,
    /// Hash chain over every applied `(index, data hash)`.
    pub digest: u64,
    /// `(index, value)` of every applied non-no-op entry, in order.
    pub values: Vec<(Index, u64)>,
}

impl LogApp {
    /// Apply the next committed entry; returns its data hash.
    pub fn apply(&mut self, e: &Entry) -> u64 {
        debug_assert_eq!(e.index, self.applied + 1, "entries must be applied in order");
        let h = data_hash(&e.data);
        self.digest = chain(self.digest, e.index, h);
        self.applied = e.index;
        if let Some(v) = value_of(&e.data) {
            self.values.push((e.index, v));
        }
        h
    }

    /// Serialise the state for a Raft snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("app state encodes")
    }

    /// Replace the state from snapshot bytes.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        let (s, _): (LogApp, usize) = bincode::serde::decode_from_slice(data, bincode::config::standard())
            .map_err(|e| RestoreError(format!("snapshot does not decode: {e}")))?;
        *self = s;
        Ok(())
    }
}

impl StateMachine for LogApp {
    fn apply(&mut self, entry: &Entry) -> u64 {
        LogApp::apply(self, entry)
    }
    fn snapshot(&self) -> Vec<u8> {
        LogApp::snapshot(self)
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        LogApp::restore(self, data)
    }
    fn applied_index(&self) -> Index {
        self.applied
    }
    fn digest(&self) -> u64 {
        self.digest
    }
    fn reset(&mut self) {
        *self = LogApp::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_snapshot_restore() {
        let mut a = LogApp::default();
        a.apply(&Entry { term: 1, index: 1, data: vec![] });
        a.apply(&Entry { term: 1, index: 2, data: payload(42, 16) });
        assert_eq!(a.values, vec![(2, 42)]);
        let mut b = LogApp::default();
        b.restore(&a.snapshot()).unwrap();
        assert_eq!(a, b);
        assert!(b.restore(b"junk").is_err());
        // Through the trait, as the node shell drives it.
        let sm: &mut dyn StateMachine = &mut b;
        assert_eq!((sm.applied_index(), sm.digest()), (2, a.digest));
        sm.reset();
        assert_eq!((sm.applied_index(), sm.digest()), (0, 0));
        assert_ne!(chain(0, 1, 0), chain(0, 2, 0));
    }
}
