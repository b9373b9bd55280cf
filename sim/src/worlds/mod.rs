//! The worlds the harness can run ([`crate::harness::World`]), one file each.
//!
//! To add a world: write its file (a type implementing `World`), declare the module
//! here and list it in [`WORLDS`]. Scenarios then name it in `run.world`.

mod js;
mod pubsub;
mod raft;
mod scratch;
mod store;

pub use js::JsWorld;
pub use pubsub::PubsubWorld;
pub use raft::RaftWorld;
pub use store::StoreWorld;

use crate::harness::WorldEntry;

/// Every world, by name.
pub const WORLDS: &[WorldEntry] = &[
    WorldEntry::of::<RaftWorld>(),
    WorldEntry::of::<PubsubWorld>(),
    WorldEntry::of::<StoreWorld>(),
    WorldEntry::of::<JsWorld>(),
];
