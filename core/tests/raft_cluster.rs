//! Randomised cluster runs of the Raft state machine: safety under message loss,
//! duplication, reordering, partitions and crashes; liveness once faults heal.
//! Every failure message starts with the seed (`Sim::run` adds it).

mod raft_support;

use proptest::prelude::*;
use raft_support::{Sim, SimConfig};

fn config(cases: u32) -> ProptestConfig {
    // Seeds are printed in the failure message; shrinking a seed means nothing, and
    // persisted regression files would land in the source tree.
    ProptestConfig { cases, max_shrink_iters: 0, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn three_nodes_stay_safe_and_recover(seed in any::<u64>()) {
        let r = Sim::new(seed, SimConfig::default()).run();
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn five_nodes_stay_safe_and_recover(seed in any::<u64>()) {
        let cfg = SimConfig { nodes: 5, ..SimConfig::default() };
        let r = Sim::new(seed, cfg).run();
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn classic_raft_without_pre_vote_or_check_quorum_is_safe(seed in any::<u64>()) {
        let cfg = SimConfig { pre_vote: false, check_quorum: false, ..SimConfig::default() };
        let r = Sim::new(seed, cfg).run();
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// The schedules really exercise crashes, partitions, elections and snapshot installs.
#[test]
fn schedules_exercise_the_faults() {
    let mut totals = raft_support::Report::default();
    for seed in 0..16 {
        let r = Sim::new(seed, SimConfig::default()).run().unwrap_or_else(|e| panic!("{e}"));
        totals.crashes += r.crashes;
        totals.partitions += r.partitions;
        totals.leader_terms += r.leader_terms;
        totals.installs += r.installs;
        totals.acked += r.acked;
        totals.recovery_ms = totals.recovery_ms.max(r.recovery_ms);
    }
    println!("{totals:?}");
    assert!(totals.crashes >= 16 && totals.partitions >= 16, "{totals:?}");
    assert!(totals.leader_terms >= 32 && totals.acked >= 16 * 50, "{totals:?}");
    assert!(totals.installs > 0, "no follower ever needed a snapshot: {totals:?}");
}

#[test]
fn runs_are_deterministic() {
    let a = Sim::new(7, SimConfig::default()).run().expect("run");
    let b = Sim::new(7, SimConfig::default()).run().expect("run");
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
