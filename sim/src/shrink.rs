//! Shrinking a failing run: re-run it with smaller inputs for as long as the same
//! invariant still fails, and hand back the smallest failing input found.
//!
//! The inputs shrunk, in order (each step keeps a change only if the run still
//! breaks the invariant, compared by name as the bug tests do):
//! 1. the safety phase (`run.duration_ms`, halved; faults past the new end dropped);
//! 2. the fault list, by delta debugging: drop halves, then quarters, ... then single
//!    faults (a fault is a start event with the event that ends it, see
//!    [`crate::schedule::faults`]);
//! 3. each fault's duration (halved);
//! 4. the number of clients and each client's rate (halved, through `--set` overrides);
//! 5. the safety phase again (fewer faults often allow a shorter run).
//!
//! Every candidate is a whole deterministic run, so the result replays exactly:
//! the seed, the overrides and the explicit schedule ([`RunInput::schedule`]).
//! The number of runs is bounded by the caller.

use crate::harness::{self, RunInput, RunReport};
use crate::schedule::{self, Fault};

/// The size of a run, as shrinking reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Faults in the schedule.
    pub faults: usize,
    /// Safety-phase length, ms.
    pub duration_ms: u64,
    /// Events recorded.
    pub events: u64,
    /// Workload clients.
    pub clients: u32,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults, {} ms safety phase, {} clients, {} events",
            self.faults, self.duration_ms, self.clients, self.events
        )
    }
}

/// What shrinking found.
#[derive(Debug)]
pub struct Shrunk {
    /// The invariant that fails in the original and in the shrunk run.
    pub invariant: &'static str,
    /// The original run's size.
    pub original: Size,
    /// The shrunk run's size.
    pub shrunk: Size,
    /// The shrunk input: the seed, the overrides (with the shrinker's added) and the
    /// explicit schedule.
    pub input: RunInput,
    /// The shrunk run's report.
    pub report: RunReport,
    /// Runs made, the original included.
    pub runs: u32,
}

/// The invariant shrinking keeps failing: the first enabled bug's named invariant
/// when the run breaks it, else the first one broken.
fn target(input: &RunInput, r: &RunReport) -> &'static str {
    let broken = |name: &str| r.violations.iter().any(|v| v.invariant == name);
    input.bugs.iter().map(|b| b.invariant()).find(|&n| broken(n)).unwrap_or(r.violations[0].invariant)
}

fn size(input: &RunInput, r: &RunReport) -> Size {
    Size {
        faults: schedule::faults(&input.schedule()).len(),
        duration_ms: input.config.run.duration_ms,
        events: r.event_count,
        clients: input.config.run.clients,
    }
}

/// `input` with `key=value` set (replacing an earlier override of the key), or
/// `None` if the config refuses it.
fn with_set(input: &RunInput, key: &str, value: String) -> Option<RunInput> {
    let config = input.config.apply_overrides(&[(key.to_string(), value.clone())]).ok()?;
    let mut overrides: Vec<(String, String)> = input.overrides.iter().filter(|(k, _)| k != key).cloned().collect();
    overrides.push((key.to_string(), value));
    Some(RunInput { config, overrides, ..input.clone() })
}

fn with_faults(input: &RunInput, faults: &[Fault]) -> RunInput {
    RunInput { schedule: Some(schedule::flatten(faults)), ..input.clone() }
}

struct Shrinker<'a> {
    invariant: &'static str,
    cur: RunInput,
    best: RunReport,
    runs: u32,
    max_runs: u32,
    log: &'a mut dyn FnMut(&str),
}

impl Shrinker<'_> {
    /// Run `cand`; keep it if it still breaks the invariant. False once out of runs.
    fn attempt(&mut self, what: &str, cand: RunInput) -> bool {
        if self.runs >= self.max_runs {
            return false;
        }
        self.runs += 1;
        let r = harness::run(&cand);
        let kept = r.violations.iter().any(|v| v.invariant == self.invariant);
        (self.log)(&format!("  try {what}: {}", if kept { "still fails, kept" } else { "passes or fails otherwise" }));
        if kept {
            self.cur = cand;
            self.best = r;
        }
        kept
    }

    fn faults(&self) -> Vec<Fault> {
        schedule::faults(&self.cur.schedule())
    }

    /// Halve the safety phase while the run still fails (then try three quarters once).
    fn shorten_run(&mut self) {
        loop {
            let d = self.cur.config.run.duration_ms;
            let shorter = [d / 2, d * 3 / 4].into_iter().filter(|&n| n >= 200).find(|&n| {
                let kept: Vec<Fault> = self
                    .faults()
                    .into_iter()
                    .filter(|f| f.start.at_ms < n)
                    .map(|f| Fault { end: f.end.filter(|e| e.at_ms < n), ..f })
                    .collect();
                let Some(cand) = with_set(&with_faults(&self.cur, &kept), "run.duration_ms", n.to_string()) else {
                    return false;
                };
                self.attempt(&format!("run.duration_ms={n}"), cand)
            });
            if shorter.is_none() || self.runs >= self.max_runs {
                return;
            }
        }
    }

    /// Delta debugging over the fault list: remove chunks of `len / n` faults, from
    /// halves down to single faults.
    fn drop_faults(&mut self) {
        let mut n = 2usize;
        loop {
            let faults = self.faults();
            if faults.is_empty() || self.runs >= self.max_runs {
                return;
            }
            let n_eff = n.min(faults.len());
            let chunk = faults.len().div_ceil(n_eff);
            let mut removed = false;
            for c in 0..n_eff {
                let (a, b) = (c * chunk, ((c + 1) * chunk).min(faults.len()));
                if a >= b {
                    continue;
                }
                let rest: Vec<Fault> = faults[..a].iter().chain(&faults[b..]).cloned().collect();
                if self.attempt(&format!("dropping faults {a}..{b} of {}", faults.len()), with_faults(&self.cur, &rest))
                {
                    removed = true;
                    break;
                }
            }
            if removed {
                n = (n - 1).max(2);
            } else if n_eff >= faults.len() {
                return;
            } else {
                n = (n * 2).min(faults.len());
            }
        }
    }

    /// Halve each fault's duration once while the run still fails.
    fn shorten_faults(&mut self) {
        let count = self.faults().len();
        for i in 0..count {
            let mut faults = self.faults();
            let Some(f) = faults.get_mut(i) else { return };
            let Some(d) = f.duration_ms().filter(|&d| d >= 2) else { continue };
            let what = format!("fault {i} ({}) for {}ms", f.start.kind, d / 2);
            if let Some(end) = &mut f.end {
                end.at_ms = f.start.at_ms + d / 2;
            }
            let cand = with_faults(&self.cur, &faults);
            self.attempt(&what, cand);
            if self.runs >= self.max_runs {
                return;
            }
        }
    }

    /// Halve a numeric config field while the run still fails, down to `min`.
    fn halve(&mut self, key: &str, get: fn(&RunInput) -> u64, min: u64) {
        loop {
            let v = get(&self.cur);
            let next = (v / 2).max(min);
            if next >= v {
                return;
            }
            let Some(cand) = with_set(&self.cur, key, next.to_string()) else { return };
            if !self.attempt(&format!("{key}={next}"), cand) {
                return;
            }
        }
    }
}

/// Shrink the failing run `input` in at most `max_runs` runs (the original included),
/// reporting each attempt to `log`. `Err` if the run passes.
pub fn shrink(input: &RunInput, max_runs: u32, log: &mut dyn FnMut(&str)) -> Result<Shrunk, String> {
    let first = harness::run(input);
    if first.passed() {
        return Err(format!("scenario {} seed {} passes: nothing to shrink", input.scenario, input.seed));
    }
    let invariant = target(input, &first);
    let original = size(input, &first);
    log(&format!("original: {original}; shrinking while {invariant} fails"));
    let cur = RunInput { schedule: Some(input.schedule()), ..input.clone() };
    let mut s = Shrinker { invariant, cur, best: first, runs: 1, max_runs, log };
    s.shorten_run();
    s.drop_faults();
    s.shorten_faults();
    s.halve("run.clients", |i| u64::from(i.config.run.clients), 1);
    s.halve("workload.rate_per_client", |i| u64::from(i.config.workload.rate_per_client), 1);
    s.shorten_run();
    let shrunk = size(&s.cur, &s.best);
    Ok(Shrunk { invariant, original, shrunk, input: s.cur, report: s.best, runs: s.runs })
}
