//! Shrinking (simulation build only): for known bugs whose catching scenario finds a
//! failing seed quickly, the shrunk run must still break the bug's named invariant
//! and be strictly smaller (fewer faults or fewer events) than the original, and
//! re-running the shrunk input (seed, overrides, explicit schedule) must fail the same
//! way, as the printed replay command would.

#![cfg(madsim)]

use weir_scenarios::find;
use weir_sim::bugs::{Bug, BugSet};
use weir_sim::harness::{self, RunInput};
use weir_sim::shrink;

/// Seeds searched for a failing run.
const SEEDS: u64 = 60;
/// Runs each shrink may make: enough for a few steps of every kind, bounded for speed.
const MAX_RUNS: u32 = 24;

fn assert_shrinks(bug: Bug, scenario: &str, needs_faults: bool) {
    let s = find(scenario).unwrap();
    let failing = (0..SEEDS).find_map(|seed| {
        let config = s.config(seed);
        let i = RunInput {
            scenario: scenario.to_string(),
            seed,
            config,
            overrides: vec![],
            bugs: BugSet::NONE.with(bug),
            schedule: None,
            fault_points: Default::default(),
        };
        let r = harness::run(&i);
        r.violations.iter().any(|v| v.invariant == bug.invariant()).then_some(i)
    });
    let input = failing.unwrap_or_else(|| panic!("{bug} not caught by {scenario} in seeds 0..{SEEDS}"));
    let mut log = |line: &str| println!("{line}");
    let shrunk = shrink::shrink(&input, MAX_RUNS, &mut log).unwrap();
    println!("{bug} {scenario} seed {}: {} -> {}", input.seed, shrunk.original, shrunk.shrunk);
    assert_eq!(shrunk.invariant, bug.invariant(), "{bug}: shrinking kept the wrong invariant");
    assert!(shrunk.runs <= MAX_RUNS, "{} runs", shrunk.runs);
    assert!(
        shrunk.shrunk.faults < shrunk.original.faults || shrunk.shrunk.events < shrunk.original.events,
        "{bug} {scenario} seed {}: nothing shrank: {} -> {}",
        input.seed,
        shrunk.original,
        shrunk.shrunk
    );
    if needs_faults {
        assert!(
            shrunk.shrunk.faults >= 1 && shrunk.shrunk.faults < shrunk.original.faults,
            "{bug} {scenario} seed {}: faults did not shrink (or vanished): {} -> {}",
            input.seed,
            shrunk.original,
            shrunk.shrunk
        );
    }
    // The shrunk input replays: the same failure, the same trace.
    assert!(shrunk.input.schedule.is_some(), "the shrunk run's schedule is explicit");
    let again = harness::run(&shrunk.input);
    assert!(again.violations.iter().any(|v| v.invariant == bug.invariant()), "{:?}", again.violations);
    assert_eq!(again.hash, shrunk.report.hash, "the shrunk run does not replay identically");
    assert_eq!(
        again.trace.header.schedule.as_deref(),
        Some(weir_sim::schedule::to_json(&shrunk.input.schedule()).as_str())
    );
}

#[test]
fn lazy_fsync_shrinks_on_store_crashes() {
    // The store world cuts power as part of its workload, so the shrunk run needs no
    // scheduled fault: shrinking may (and does) drop them all.
    assert_shrinks(Bug::LazyFsync, "store-crashes", false);
}

#[test]
fn votes_not_persisted_shrinks_on_raft_crashes_to_fewer_faults() {
    assert_shrinks(Bug::VotesNotPersisted, "raft-crashes", true);
}

#[test]
fn uncharged_buffer_shrinks_on_pubsub_partitions() {
    // The buffer grows with the load, faults or not: shrinking may drop them all.
    assert_shrinks(Bug::UnchargedBuffer, "pubsub-partitions", false);
}

#[test]
fn ack_floor_skips_shrinks_on_js_single() {
    assert_shrinks(Bug::AckFloorSkips, "js-single", false);
}
