//! The fault schedule as an explicit, editable input: its file format (JSON, one
//! event a line), a readable listing, its faults (a start event paired with the event
//! that ends it), and the checks a hand-edited schedule must pass before a run.
//!
//! `weir-sim run --print-schedule` writes [`to_json`]; `--schedule FILE` reads it
//! back with [`from_json`], and the shrinker edits schedules through [`faults`] and
//! [`flatten`].

use crate::SimConfig;
use weir_faults::{FaultClass, FaultEvent, FaultKind, FaultSchedule};

/// The schedule file's text: `{"events":[` then one event a line, in order.
pub fn to_json(s: &FaultSchedule) -> String {
    let lines: Vec<String> =
        s.events.iter().map(|e| format!("  {}", serde_json::to_string(e).expect("fault events serialise"))).collect();
    if lines.is_empty() {
        return "{\"events\":[]}\n".to_string();
    }
    format!("{{\"events\":[\n{}\n]}}\n", lines.join(",\n"))
}

/// Parse a schedule file (any JSON layout of [`FaultSchedule`]); events are put in
/// time order (stable for equal times, as the harness applies them).
pub fn from_json(text: &str) -> Result<FaultSchedule, String> {
    let mut s: FaultSchedule = serde_json::from_str(text).map_err(|e| format!("not a fault schedule: {e}"))?;
    s.events.sort_by_key(|e| e.at_ms);
    Ok(s)
}

/// One fault of a schedule: its starting event and, when it has one, the event that
/// ends it (a crash's restart, a partition's heal, a slow disk's restore...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The event that starts it.
    pub start: FaultEvent,
    /// The event that ends it (`None`: it lasts until the heal before the liveness phase,
    /// or it is an instant fault such as `Corrupt`).
    pub end: Option<FaultEvent>,
}

impl Fault {
    /// How long it lasts, ms (`None` without an end).
    pub fn duration_ms(&self) -> Option<u64> {
        self.end.as_ref().map(|e| e.at_ms.saturating_sub(self.start.at_ms))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {:>6}ms ", self.start.at_ms)?;
        match self.duration_ms() {
            Some(d) => write!(f, "for {d:>6}ms: {}", self.start.kind),
            None => write!(f, "{:>12}: {}", "", self.start.kind),
        }
    }
}

/// Whether `end` ends the fault `start` began.
fn ends(start: &FaultKind, end: &FaultKind) -> bool {
    use FaultKind::*;
    match (start, end) {
        (Partition { .. } | PartitionOneWay { .. }, Heal) => true,
        (Crash { node: a }, Restart { node: b }) | (Pause { node: a }, Resume { node: b }) => a == b,
        (SlowDisk { node: a, latency_ms: l }, SlowDisk { node: b, latency_ms: 0 }) => a == b && *l > 0,
        (
            SlowLink { node: a, latency_ms: l, bytes_per_sec: r },
            SlowLink { node: b, latency_ms: 0, bytes_per_sec: 0 },
        ) => a == b && (*l > 0 || *r > 0),
        (DiskFull { node: a, full: true }, DiskFull { node: b, full: false }) => a == b,
        _ => false,
    }
}

/// The schedule's faults in order of their starts: each event that starts a fault is
/// paired with the first later unpaired event that ends it; every other event is a
/// fault of its own. [`flatten`] of the result gives the schedule back.
pub fn faults(s: &FaultSchedule) -> Vec<Fault> {
    let mut used = vec![false; s.events.len()];
    let mut out = Vec::new();
    for i in 0..s.events.len() {
        if used[i] {
            continue;
        }
        used[i] = true;
        let start = s.events[i].clone();
        let j = (i + 1..s.events.len()).find(|&j| !used[j] && ends(&start.kind, &s.events[j].kind));
        let end = j.map(|j| {
            used[j] = true;
            s.events[j].clone()
        });
        out.push(Fault { start, end });
    }
    out
}

/// The schedule of `faults`: every start and end, in time order (stable, so events at
/// the same time keep the order of their faults).
pub fn flatten(faults: &[Fault]) -> FaultSchedule {
    let mut tagged: Vec<(u64, usize, FaultEvent)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        tagged.push((f.start.at_ms, i, f.start.clone()));
        if let Some(e) = &f.end {
            tagged.push((e.at_ms, i, e.clone()));
        }
    }
    // Equal times: keep the order the events had in the flattened-by-fault list,
    // which for a drawn schedule is the order they were drawn in.
    tagged.sort_by_key(|t| t.0);
    FaultSchedule { events: tagged.into_iter().map(|t| t.2).collect() }
}

/// Nodes a fault names.
fn nodes_of(kind: &FaultKind) -> Vec<u16> {
    use FaultKind::*;
    match kind {
        Partition { side } => side.clone(),
        PartitionOneWay { from, to } => vec![*from, *to],
        Heal => Vec::new(),
        Crash { node }
        | Restart { node }
        | Pause { node }
        | Resume { node }
        | SlowDisk { node, .. }
        | SlowLink { node, .. }
        | Corrupt { node }
        | DiskFull { node, .. } => vec![*node],
    }
}

/// Whether a run of `cfg` can apply `s`: every event inside the safety phase
/// (`at_ms < run.duration_ms`), every node named exists, partitions leave someone on
/// the other side, and every fault class is one of `supported` (the world's).
pub fn check(s: &FaultSchedule, cfg: &SimConfig, supported: &[FaultClass]) -> Result<(), String> {
    for (i, e) in s.events.iter().enumerate() {
        let at = format!("schedule event {i} ({} at {}ms)", e.kind, e.at_ms);
        if e.at_ms >= cfg.run.duration_ms {
            return Err(format!("{at}: after the safety phase ends (run.duration_ms={})", cfg.run.duration_ms));
        }
        if let Some(n) = nodes_of(&e.kind).into_iter().find(|&n| n == 0 || n > cfg.run.nodes) {
            return Err(format!("{at}: no node n{n} (run.nodes={})", cfg.run.nodes));
        }
        if let FaultKind::Partition { side } = &e.kind
            && (side.is_empty() || side.len() >= usize::from(cfg.run.nodes))
        {
            return Err(format!("{at}: a partition side must hold some but not all nodes"));
        }
        if !supported.contains(&e.kind.class()) {
            return Err(format!("{at}: the world does not support {} faults", e.kind.class()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use weir_faults::FaultMix;

    #[test]
    fn drawn_schedules_split_into_faults_and_back() {
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mix = FaultMix::swarm(&mut rng, 5);
            let s = FaultSchedule::generate(&mut rng, 5, 20_000, &mix);
            let fs = faults(&s);
            assert_eq!(flatten(&fs), s, "seed {seed}");
            assert_eq!(from_json(&to_json(&s)).unwrap(), s, "seed {seed}");
            // A drawn schedule ends every fault it starts, except instant corruption.
            for f in &fs {
                let instant = matches!(f.start.kind, FaultKind::Corrupt { .. });
                assert_eq!(f.end.is_none(), instant, "seed {seed}: {f}");
            }
        }
    }

    #[test]
    fn hand_edited_schedules_are_checked() {
        let cfg = SimConfig::default();
        let all = FaultClass::ALL;
        let ok =
            from_json(r#"{"events":[{"at_ms":5,"kind":{"Crash":{"node":2}}},{"at_ms":1,"kind":"Heal"}]}"#).unwrap();
        assert_eq!(ok.events[0].at_ms, 1, "events are put in time order");
        assert_eq!(check(&ok, &cfg, &all), Ok(()));
        let far = from_json(r#"{"events":[{"at_ms":999999,"kind":{"Crash":{"node":2}}}]}"#).unwrap();
        assert!(check(&far, &cfg, &all).unwrap_err().contains("after the safety phase"));
        let n9 = from_json(r#"{"events":[{"at_ms":5,"kind":{"Pause":{"node":9}}}]}"#).unwrap();
        assert!(check(&n9, &cfg, &all).unwrap_err().contains("no node n9"));
        assert!(check(&ok, &cfg, &[FaultClass::Partition]).unwrap_err().contains("does not support crash"));
        assert!(from_json("{\"events\":[{\"at_ms\":1}]}").is_err());
    }
}
