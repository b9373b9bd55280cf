//! Simulation tests (simulation build only). Each draws a fresh seed unless
//! `WEIR_SEED` pins one, prints it, and prints the exact replay command on failure.

#![cfg(madsim)]

use weir_scenarios::{SCENARIOS, catching, find};
use weir_sim::bugs::{Bug, BugSet};
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
    harness::check_config(&config).unwrap_or_else(|e| panic!("{scenario} seed {seed}: {e}"));
    RunInput {
        scenario: scenario.to_string(),
        seed,
        config,
        overrides: sets,
        bugs,
        schedule: None,
        fault_points: Default::default(),
    }
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

/// Seeds a 1000-seed sweep found failing, pinned. 411 and 957: a node paused twice
/// refused its peers' route connections for good (a failed Hello answer left the
/// peer's inbound slot taken), so it never caught up (liveness, acked-durability,
/// replica-agreement). 180: a follower behind a slow fsync held 2.2 MiB of Raft
/// messages in its inbox, uncharged (uncharged-memory).
#[test]
fn raft_swarm_seeds_the_1000_seed_sweep_found_pass() {
    for seed in [180, 411, 957] {
        let i = input("raft-swarm", seed, BugSet::NONE, &[]);
        assert_pass(&i, &harness::run(&i));
    }
}

#[test]
fn same_seed_gives_an_identical_trace() {
    let base = test_seed();
    println!("seeds {base}..{} (pin with WEIR_SEED={base})", base + 4);
    for seed in base..base + 4 {
        let i = input("raft-swarm", seed, BugSet::NONE, &[("run.duration_ms", "4000")]);
        let a = harness::run(&i);
        let b = harness::run(&i);
        assert_eq!(a.hash, b.hash, "seed {seed}: trace hashes differ");
        assert_eq!(a.trace.encode(), b.trace.encode(), "seed {seed}: trace bytes differ");
    }
    let i = input("raft-basic", base, BugSet::NONE, &[("run.duration_ms", "2000")]);
    let j = input("raft-basic", base + 1, BugSet::NONE, &[("run.duration_ms", "2000")]);
    assert_ne!(harness::run(&i).hash, harness::run(&j).hash, "different seeds should give different traces");
}

#[test]
fn pubsub_same_seed_gives_an_identical_trace() {
    let base = test_seed();
    println!("seeds {base}..{} (pin with WEIR_SEED={base})", base + 2);
    for seed in base..base + 2 {
        let i = input("pubsub-partitions", seed, BugSet::NONE, &[("run.duration_ms", "4000")]);
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

/// Seeds each bug's catching scenarios are given to catch it.
const BUG_SEEDS: u64 = 200;

/// Run seeds `0..BUG_SEEDS` of every scenario the registry says catches `bug`, with
/// the bug on. The first seed that fails must fail on the invariant the catalogue
/// names for the bug ([`Bug::invariant`]), without a panic, and the same seed must
/// pass with the bug off: the check fires because of the bug and only the right check
/// fires.
fn assert_caught(bug: Bug) {
    let scenarios: Vec<&str> = catching(bug).map(|s| s.name).collect();
    assert!(!scenarios.is_empty(), "the registry lists no scenario that catches {bug}");
    let named = bug.invariant();
    for scenario in scenarios {
        let caught = (0..BUG_SEEDS).find_map(|seed| {
            let i = input(scenario, seed, BugSet::NONE.with(bug), &[]);
            let r = harness::run(&i);
            (!r.passed()).then_some((i, r))
        });
        let (i, r) = caught.unwrap_or_else(|| panic!("{bug} survived {BUG_SEEDS} seeds of {scenario}"));
        let seed = i.seed;
        let names: Vec<&str> = r.violations.iter().map(|v| v.invariant).collect();
        println!("{bug} caught by {scenario} at seed {seed}: {names:?}");
        assert!(
            names.contains(&named),
            "{bug} in {scenario} seed {seed}: expected {named} to fail, got {:?}\nreplay: {}",
            r.violations,
            replay(&i)
        );
        assert!(!names.contains(&"no-panic"), "{bug} in {scenario} seed {seed} panicked: {:?}", r.violations);
        let clean = input(scenario, seed, BugSet::NONE, &[]);
        assert_pass(&clean, &harness::run(&clean));
    }
}

/// One test per known bug (so they run in parallel); the scenarios and expected
/// violations come from the registry and the bug catalogue.
macro_rules! bug_tests {
    ($($test:ident => $bug:expr),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                assert_caught($bug);
            }
        )*

        #[test]
        fn every_known_bug_has_a_test() {
            let tested = [$($bug),*];
            for b in Bug::ALL {
                assert!(tested.contains(&b), "add a bug_tests! line for {b}");
            }
        }
    };
}

bug_tests! {
    bug_votes_not_persisted_is_caught => Bug::VotesNotPersisted,
    bug_commit_before_quorum_is_caught => Bug::CommitBeforeQuorum,
    bug_unbounded_catchup_is_caught => Bug::UnboundedCatchup,
    bug_lazy_fsync_is_caught => Bug::LazyFsync,
    bug_unbounded_buffer_pool_is_caught => Bug::UnboundedBufferPool,
    bug_buffer_leak_is_caught => Bug::BufferLeak,
    bug_ack_before_store_is_caught => Bug::AckBeforeStore,
    bug_ack_floor_skips_is_caught => Bug::AckFloorSkips,
    bug_dedup_forgets_is_caught => Bug::DedupForgets,
    bug_evict_before_durable_is_caught => Bug::EvictBeforeDurable,
    bug_route_drops_interest_is_caught => Bug::RouteDropsInterest,
    bug_queue_double_delivery_is_caught => Bug::QueueDoubleDelivery,
    bug_uncharged_buffer_is_caught => Bug::UnchargedBuffer,
}

#[test]
fn a_world_refuses_faults_it_cannot_apply() {
    let cfg = find("pubsub-partitions").unwrap().config(1);
    let cfg = cfg.apply_overrides(&[("faults.pause".into(), "3".into())]).unwrap();
    let err = harness::check_config(&cfg).unwrap_err();
    assert!(err.contains("world 'pubsub' does not support pause faults"), "{err}");
    // And a run of it records nothing as applied.
    let i = RunInput {
        scenario: "pubsub-partitions".into(),
        seed: 1,
        config: cfg,
        overrides: vec![],
        bugs: BugSet::NONE,
        schedule: None,
        fault_points: Default::default(),
    };
    let r = harness::run(&i);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert_eq!(r.violations[0].invariant, "config");
    assert!(r.trace.events.is_empty());
    let store = find("store-crashes").unwrap().config(1).apply_overrides(&[("faults.partition".into(), "1".into())]);
    assert!(harness::check_config(&store.unwrap()).unwrap_err().contains("world 'store' does not support partition"));
}
