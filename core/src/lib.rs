//! weir-core: the broker. State machines (pure, synchronous, time as input) and the
//! async shell that feeds them over the seams (network, clock, disk) that the
//! simulator replaces. Nothing in here knows whether it is being simulated.

pub mod checks;
pub mod consumer;
pub mod disk;
pub mod fault;
pub mod jetstream;
pub mod mem;
pub mod proto;
pub mod raft;
pub mod server;
pub mod store;
pub mod stream;
pub mod subject;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod timer;
