//! A one-screen summary of a trace (`trace show --summary`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::render::format_time;
use crate::{EventKind, HARNESS, NodeNo, Trace};

/// Counts and extents of a trace's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSummary {
    /// Scenario name from the header.
    pub scenario: String,
    /// Seed from the header.
    pub seed: u64,
    /// Total number of events.
    pub events: usize,
    /// Number of events per [`EventKind::name`] (kinds that do not occur are absent).
    pub per_kind: BTreeMap<&'static str, usize>,
    /// Time of the earliest event, in microseconds.
    pub first_us: Option<u64>,
    /// Time of the latest event, in microseconds.
    pub last_us: Option<u64>,
    /// The cluster nodes that appear as an event's node (the harness excluded).
    pub nodes: BTreeSet<NodeNo>,
    /// The last verdict in the trace: whether it passed, and its detail.
    pub verdict: Option<(bool, String)>,
    /// The trace hash.
    pub hash: u64,
}

impl TraceSummary {
    /// Summarize `trace`.
    pub fn of(trace: &Trace) -> Self {
        let mut per_kind = BTreeMap::new();
        let mut nodes = BTreeSet::new();
        let mut verdict = None;
        for event in &trace.events {
            *per_kind.entry(event.kind.name()).or_insert(0) += 1;
            if event.node != HARNESS {
                nodes.insert(event.node);
            }
            if let EventKind::Verdict { pass, detail } = &event.kind {
                verdict = Some((*pass, detail.clone()));
            }
        }
        TraceSummary {
            scenario: trace.header.scenario.clone(),
            seed: trace.header.seed,
            events: trace.events.len(),
            per_kind,
            first_us: trace.events.iter().map(|e| e.time_us).min(),
            last_us: trace.events.iter().map(|e| e.time_us).max(),
            nodes,
            verdict,
            hash: trace.hash(),
        }
    }

    /// Virtual time between the first and last event, in microseconds (0 if empty).
    pub fn span_us(&self) -> u64 {
        match (self.first_us, self.last_us) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        }
    }

    /// Number of distinct cluster nodes seen.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {} seed {}  hash {:016x}", self.scenario, self.seed, self.hash)?;
        let range = match (self.first_us, self.last_us) {
            (Some(first), Some(last)) => format!(" ({}..{})", format_time(first), format_time(last)),
            _ => String::new(),
        };
        writeln!(f, "{} events over {}{range}, {} nodes", self.events, format_time(self.span_us()), self.node_count())?;
        for (kind, count) in &self.per_kind {
            writeln!(f, "  {kind:<17} {count:>10}")?;
        }
        match &self.verdict {
            Some((pass, detail)) => {
                write!(f, "verdict: {} ({detail})", if *pass { "pass" } else { "FAIL" })
            }
            None => write!(f, "verdict: none"),
        }
    }
}
