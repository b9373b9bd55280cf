//! The trace header: everything needed to re-run the trace's run (and to know
//! which code produced it).

use serde::{Deserialize, Serialize};

use crate::FORMAT_VERSION;

/// The inputs of a run, recorded at the start of its trace; replay re-runs them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Trace format version the header was written with ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of Weir that produced the trace.
    pub weir_version: String,
    /// Scenario name.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// Deliberately injected bugs enabled for the run (by name).
    pub bugs: Vec<String>,
    /// Command-line `key=value` overrides, in the order given.
    pub overrides: Vec<(String, String)>,
    /// The run's drawn configuration, printed as one line.
    pub config: String,
    /// The fault schedule given explicitly (`weir-sim run --schedule FILE`), as the
    /// schedule file's JSON text; `None` when the run drew its schedule from the seed.
    pub schedule: Option<String>,
    /// The fault points the run enabled (by name, in the core's site order); replay
    /// enables exactly these.
    pub fault_points: Vec<String>,
    /// The chance per hit that an enabled fault point fired, in parts per million.
    pub fault_ppm: u32,
}

impl TraceHeader {
    /// A header for `scenario` run with `seed` by this version of Weir, with no bugs,
    /// overrides or configuration yet.
    pub fn new(scenario: impl Into<String>, seed: u64) -> Self {
        TraceHeader {
            format_version: FORMAT_VERSION,
            weir_version: env!("CARGO_PKG_VERSION").to_owned(),
            scenario: scenario.into(),
            seed,
            bugs: Vec::new(),
            overrides: Vec::new(),
            config: String::new(),
            schedule: None,
            fault_points: Vec::new(),
            fault_ppm: 0,
        }
    }
}
