//! Simulation tests (simulation build only). Each draws a fresh seed unless
//! `WEIR_SEED` pins one, prints it, and prints the exact replay command on failure.

#![cfg(madsim)]

use weir_faults::{Bug, BugSet};
use weir_scenarios::{SCENARIOS, find};
use weir_sim::harness::{self, RunInput, RunReport};

/// The seed for this test run: `WEIR_SEED` or a fresh one.
fn test_seed() -> u64 {
    if let Ok(s) = std::env::var("WEIR_SEED") {
        return s.parse().expect("WEIR_SEED must be a u64");
    }
    // Outside the simulation a fresh seed per run is the point; the seed is printed.
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id()) % 1_000_000_000
}

fn input(scenario: &str, seed: u64, bugs: BugSet, sets: &[(&str, &str)]) -> RunInput {
    let sets: Vec<(String, String)> = sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = find(scenario).unwrap().config(seed).apply_overrides(&sets).unwrap();
    RunInput { scenario: scenario.to_string(), seed, config, overrides: sets, bugs }
}

fn replay(i: &RunInput) -> String {
    let mut s = format!(
        "WEIR_SEED={} cargo simtest -p weir-scenarios --test sim   # or: cargo sim run --scenario {} --seed {}",
        i.seed, i.scenario, i.seed
    );
    for b in i.bugs.iter() {
        s.push_str(&format!(" --bug {b}"));
    }
    for (k, v) in &i.overrides {
        s.push_str(&format!(" --set {k}={v}"));
    }
    s
}

fn assert_pass(i: &RunInput, r: &RunReport) {
    assert!(
        r.passed(),
        "scenario {} seed {} failed:\n{}\nreplay: {}",
        i.scenario,
        i.seed,
        r.violations.iter().map(|v| format!("  {v}")).collect::<Vec<_>>().join("\n"),
        replay(i)
    );
}

#[test]
fn every_scenario_passes_a_random_seed() {
    let seed = test_seed();
    println!("seed={seed} (pin with WEIR_SEED={seed})");
    for s in SCENARIOS {
        let i = input(s.name, seed, BugSet::NONE, &[]);
        let r = harness::run(&i);
        println!("{} seed={} hash={:016x} events={} ok={}", s.name, seed, r.hash, r.event_count, r.clients.ok);
        assert_pass(&i, &r);
        assert!(r.clients.ok > 0, "{} seed {seed}: nothing was acknowledged", s.name);
    }
}

#[test]
fn swarm_sweep_of_random_seeds_passes() {
    let base = test_seed();
    println!("seeds {base}..{} (pin with WEIR_SEED={base})", base + 8);
    for seed in base..base + 8 {
        let i = input("raft-swarm", seed, BugSet::NONE, &[]);
        assert_pass(&i, &harness::run(&i));
    }
}

#[test]
fn same_seed_gives_an_identical_trace() {
    let base = test_seed();
    println!("seeds {base}..{} (pin with WEIR_SEED={base})", base + 4);
    for seed in base..base + 4 {
        let i = input("raft-swarm", seed, BugSet::NONE, &[("duration_ms", "4000")]);
        let a = harness::run(&i);
        let b = harness::run(&i);
        assert_eq!(a.hash, b.hash, "seed {seed}: trace hashes differ");
        assert_eq!(a.trace.encode(), b.trace.encode(), "seed {seed}: trace bytes differ");
    }
    let i = input("raft-basic", base, BugSet::NONE, &[("duration_ms", "2000")]);
    let j = input("raft-basic", base + 1, BugSet::NONE, &[("duration_ms", "2000")]);
    assert_ne!(harness::run(&i).hash, harness::run(&j).hash, "different seeds should give different traces");
}

#[test]
fn pubsub_same_seed_gives_an_identical_trace() {
    let base = test_seed();
    println!("seeds {base}..{} (pin with WEIR_SEED={base})", base + 2);
    for seed in base..base + 2 {
        let i = input("pubsub-partitions", seed, BugSet::NONE, &[("duration_ms", "4000")]);
        let a = harness::run(&i);
        let b = harness::run(&i);
        assert_pass(&i, &a);
        if a.hash != b.hash {
            let d = weir_traces::first_divergence(&a.trace.events, &b.trace.events);
            println!("DIVERGENCE {d:?}");
            if let Some(ix) = d.map(|x| x.index) {
                for k in ix.saturating_sub(5)..ix + 3 {
                    println!("A {:?}\nB {:?}", a.trace.events.get(k), b.trace.events.get(k));
                }
            }
        }
        assert_eq!(a.hash, b.hash, "seed {seed}: trace hashes differ");
        assert_eq!(a.trace.encode(), b.trace.encode(), "seed {seed}: trace bytes differ");
    }
}

/// Run seeds `0..200` of `bug`'s catching scenario with the bug on; return the first that fails.
fn first_catching_seed(bug: Bug) -> Option<(u64, RunReport)> {
    (0..200).find_map(|seed| {
        let i = input(bug.catching_scenario(), seed, BugSet::NONE.with(bug), &[]);
        let r = harness::run(&i);
        (!r.passed()).then_some((seed, r))
    })
}

#[test]
fn bug_votes_not_persisted_is_caught() {
    let (seed, r) = first_catching_seed(Bug::VotesNotPersisted).expect("votes-not-persisted survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
}

#[test]
fn bug_commit_before_quorum_is_caught() {
    let (seed, r) = first_catching_seed(Bug::CommitBeforeQuorum).expect("commit-before-quorum survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
}

#[test]
fn bug_unbounded_catchup_is_caught() {
    let (seed, r) = first_catching_seed(Bug::UnboundedCatchup).expect("unbounded-catchup survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
    assert!(r.violations.iter().any(|v| v.invariant == "memory-bound"), "expected a memory-bound violation");
}

#[test]
fn bug_lazy_fsync_is_caught() {
    let (seed, r) = first_catching_seed(Bug::LazyFsync).expect("lazy-fsync survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
    assert!(r.violations.iter().any(|v| v.invariant == "acked-durability" || v.invariant == "deleted-stays-deleted"));
}

#[test]
fn bug_unbounded_buffer_pool_is_caught() {
    let (seed, r) = first_catching_seed(Bug::UnboundedBufferPool).expect("unbounded-buffer-pool survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
    assert!(r.violations.iter().any(|v| v.invariant == "memory-bound"), "expected a memory-bound violation");
}

#[test]
fn bug_buffer_leak_is_caught() {
    let (seed, r) = first_catching_seed(Bug::BufferLeak).expect("buffer-leak survived 200 seeds");
    println!("caught at seed {seed}: {}", r.violations[0]);
    assert!(r.violations.iter().any(|v| v.invariant == "memory-baseline"), "expected a memory-baseline violation");
}
