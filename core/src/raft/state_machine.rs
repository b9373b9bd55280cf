//! The applied state machine: what a Raft group's committed entries build.
//!
//! Every group a node hosts has exactly one [`StateMachine`]: the replicated test log
//! (`weir_core::testing::LogApp`) today; a JetStream stream and the meta state (streams,
//! consumers, placement) later. The shell drives it the same way for every group (see
//! `server::node`): it [`StateMachine::restore`]s from the durable snapshot at start and
//! whenever a leader installs one, [`StateMachine::apply`]s committed entries in index
//! order only after they are durable, and takes a [`StateMachine::snapshot`] when the
//! group compacts its log. The trait is synchronous and does no I/O, like Raft itself:
//! a state machine that needs the disk (a stream's message store) does that I/O behind
//! its own seam, outside this contract.

use super::{Entry, Index};

/// A snapshot that could not be restored. The node stops rather than run on a state
/// it cannot reconstruct.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snapshot restore failed: {0}")]
pub struct RestoreError(pub String);

/// A deterministic state machine fed by one Raft group.
///
/// Contract: `apply` sees every committed entry exactly once, in index order, starting
/// at `applied_index() + 1` (no-ops, i.e. empty `data`, included: they advance the
/// index). Two replicas that applied the same entries (or restored the same snapshot and
/// then applied the same entries) must be in the same state.
pub trait StateMachine: Send {
    /// Apply the next committed entry; returns the hash of its data (what the trace
    /// records for it, so checkers can compare replicas without the payload).
    fn apply(&mut self, entry: &Entry) -> u64;
    /// The whole state as bytes, as of [`StateMachine::applied_index`].
    fn snapshot(&self) -> Vec<u8>;
    /// Replace the whole state with one produced by [`StateMachine::snapshot`].
    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError>;
    /// Index of the last applied entry (0 before the first).
    fn applied_index(&self) -> Index;
    /// A digest of the whole state, equal on replicas with equal state (traced when a
    /// snapshot is restored).
    fn digest(&self) -> u64;
    /// Back to the initial, empty state (a node starting without a snapshot).
    fn reset(&mut self);
}
