//! weir-sim: the simulated world. A seeded madsim cluster of Weir nodes with our own
//! disk ([`disk::SimDisk`]) and link shaping ([`net::SimNet`]), workload clients that
//! record a history, a fault injector driven by a schedule, and checkers.
//!
//! The harness itself only exists in the simulation build (`--cfg madsim`); the
//! configuration, disk, network shaping and checkers build everywhere so they can be
//! unit-tested without the simulator.

pub mod check;
pub mod config;
pub mod disk;
#[cfg(madsim)]
pub mod harness;
pub mod net;
#[cfg(madsim)]
mod pubsub;
#[cfg(madsim)]
mod store_world;
#[cfg(madsim)]
mod workload;

pub use config::{SimConfig, World};
