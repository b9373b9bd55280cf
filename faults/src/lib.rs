//! The fault catalogue, seeded fault schedules, swarm sampling and known-bug switches.
//!
//! Faults are *data*: a schedule is a list of [`FaultEvent`]s drawn up front from the
//! run's seed, printed with the run's configuration and recorded in its trace, so a
//! failing run can be read, replayed and (later) shrunk.

pub mod bugs;
pub mod schedule;

pub use bugs::{Bug, BugSet};
pub use schedule::{FaultEvent, FaultKind, FaultMix, FaultSchedule};
