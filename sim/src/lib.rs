//! weir-sim: the simulated world. A seeded madsim cluster of Weir nodes with our own
//! disk ([`disk::SimDisk`]) and link shaping ([`net::SimNet`]), workload clients that
//! record a history, a fault injector driven by a schedule, and checkers.
//!
//! One [`harness`] runs every world ([`worlds`]): it owns the run's phases, node
//! health, fault application, the ledger sampler and the liveness and memory checks;
//! a world only builds its nodes and clients and says when it has converged and how
//! its end state is judged.
//!
//! The harness and the worlds only exist in the simulation build (`--cfg madsim`); the
//! configuration, bug catalogue, node numbers, disk, network shaping and checkers build
//! everywhere so they can be unit-tested without the simulator.

pub mod bugs;
pub mod check;
pub mod config;
pub mod disk;
pub mod faultpoints;
#[cfg(madsim)]
pub mod harness;
pub mod heap;
pub mod jsclient;
#[cfg(madsim)]
pub mod nats_client;
pub mod net;
pub mod node;
pub mod schedule;
#[cfg(madsim)]
pub mod shrink;
pub mod simlog;
#[cfg(madsim)]
mod workload;
#[cfg(madsim)]
pub mod worlds;

pub use config::SimConfig;

// Every simulation binary linking this crate counts its heap per simulated node (see
// [`heap`]); mimalloc underneath, as it is markedly faster than the system allocator
// at the simulator's many small buffers.
#[cfg(madsim)]
#[global_allocator]
static GLOBAL: heap::Counting<mimalloc::MiMalloc> = heap::Counting(mimalloc::MiMalloc);
