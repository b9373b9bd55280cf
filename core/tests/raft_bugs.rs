//! The cluster driver's checks have teeth: with a known bug switched on, seeds in a
//! small range must fail the check that the bug breaks.

mod raft_support;

use raft_support::{Sim, SimConfig};
use weir_core::raft::RaftBugs;

const SEEDS: u64 = 64;

/// Violations of the failing seeds in `0..SEEDS`.
fn failures(cfg: &SimConfig) -> Vec<String> {
    (0..SEEDS).filter_map(|seed| Sim::new(seed, cfg.clone()).run().err()).collect()
}

/// With `bugs` on (named `bug` in messages), some seed must fail with one of `expect`.
fn assert_caught(bug: &str, bugs: RaftBugs, cfg: SimConfig, expect: &[&str]) {
    let cfg = SimConfig { bugs, ..cfg };
    let v = failures(&cfg);
    assert!(!v.is_empty(), "no seed in 0..{SEEDS} caught {bug}");
    println!("{bug}: {}/{SEEDS} seeds caught; first: {}", v.len(), v[0]);
    let hit = v.iter().find(|v| expect.iter().any(|e| v.contains(e)));
    assert!(hit.is_some(), "{bug} was caught, but never by {expect:?}: {v:?}");
}

#[test]
fn votes_not_persisted_lets_two_leaders_share_a_term() {
    let crashy = SimConfig { crash_rate: 3.0, max_down_ms: 50, ..SimConfig::default() };
    assert_caught(
        "votes-not-persisted",
        RaftBugs { votes_not_persisted: true, ..RaftBugs::NONE },
        crashy,
        &["election safety"],
    );
}

#[test]
fn commit_before_quorum_loses_acknowledged_entries() {
    assert_caught(
        "commit-before-quorum",
        RaftBugs { commit_before_quorum: true, ..RaftBugs::NONE },
        SimConfig::default(),
        &["state-machine safety", "acknowledged"],
    );
}

#[test]
fn unbounded_catchup_overflows_the_catchup_account() {
    assert_caught(
        "unbounded-catchup",
        RaftBugs { unbounded_catchup: true, ..RaftBugs::NONE },
        SimConfig::default(),
        &["raft.catchup peaked"],
    );
}
