//! A small canonical run pinned as an insta snapshot: any change in behaviour
//! (Raft timing, client history, fault handling) shows up here in review.
//! Update deliberately with `INSTA_UPDATE=always cargo simtest -p weir-scenarios --test snapshot`.

#![cfg(madsim)]

use weir_scenarios::find;
use weir_sim::bugs::BugSet;
use weir_sim::harness::{self, RunInput};
use weir_traces::render_filtered;

#[test]
fn canonical_raft_basic_trace() {
    let sets: Vec<(String, String)> =
        [("run.duration_ms", "600"), ("run.clients", "2"), ("workload.rate_per_client", "10")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let config = find("raft-basic").unwrap().config(7).apply_overrides(&sets).unwrap();
    let input = RunInput {
        scenario: "raft-basic".into(),
        seed: 7,
        config,
        overrides: sets,
        bugs: BugSet::NONE,
        schedule: None,
        fault_points: weir_sim::faultpoints::FaultPoints::OFF,
    };
    let report = harness::run(&input);
    assert!(report.passed(), "{:?}", report.violations);
    let kinds = ["node-start", "raft-role", "invoke", "ok", "fail", "unknown", "note", "fault"];
    insta::assert_snapshot!(render_filtered(&report.trace, &kinds, None));
}
