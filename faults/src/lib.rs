//! The fault catalogue, seeded fault schedules and swarm sampling.
//!
//! Faults are *data*: a schedule is a list of [`FaultEvent`]s drawn up front from the
//! run's seed, printed with the run's configuration and recorded in its trace, so a
//! failing run can be read, replayed and (later) shrunk. Known-bug switches live next
//! to the components they break; the simulator (`weir-sim`'s `bugs`) catalogues them.

pub mod schedule;

pub use schedule::{FaultClass, FaultEvent, FaultKind, FaultMix, FaultSchedule, Node};
