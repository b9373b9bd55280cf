//! Fault points (simulation build only): every site can fire, a run with a site firing
//! still passes every check, and fault points keep runs deterministic without
//! perturbing anything when they do not fire.

#![cfg(madsim)]

use weir_core::fault::SITES;
use weir_scenarios::find;
use weir_sim::bugs::BugSet;
use weir_sim::faultpoints::{FaultPoints, Mode};
use weir_sim::harness::{self, RunInput, RunReport};

/// Scenarios tried in turn for a site until it fires (each reaches different sites).
const SCENARIOS: [&str; 4] = ["raft-basic", "js-single", "store-crashes", "pubsub-partitions"];
/// Raised firing chance for the reachability test: 2% of hits.
const PPM: u32 = 20_000;

fn input(scenario: &str, seed: u64, fault_points: FaultPoints) -> RunInput {
    let sets: Vec<(String, String)> = vec![("run.duration_ms".into(), "4000".into())];
    let config = find(scenario).unwrap().config(seed).apply_overrides(&sets).unwrap();
    RunInput {
        scenario: scenario.to_string(),
        seed,
        config,
        overrides: sets,
        bugs: BugSet::NONE,
        schedule: None,
        fault_points,
    }
}

fn replay(i: &RunInput) -> String {
    format!(
        "cargo sim run --scenario {} --seed {} --set run.duration_ms=4000 --fault-points {} --fault-ppm {}",
        i.scenario, i.seed, i.fault_points.mode, i.fault_points.ppm
    )
}

#[test]
fn every_site_fires_and_the_run_stays_correct() {
    let seed = 3;
    let mut unreached = Vec::new();
    for (i, site) in SITES.iter().enumerate() {
        let only = FaultPoints { mode: Mode::Sites(vec![i]), ppm: PPM };
        let mut fired_in = None;
        for sc in SCENARIOS {
            let inp = input(sc, seed, only.clone());
            let r: RunReport = harness::run(&inp);
            assert_eq!(r.fault_enabled.iter().filter(|&&e| e).count(), 1);
            assert!(r.fault_fired.iter().enumerate().all(|(j, &n)| j == i || n == 0), "a disabled site fired");
            assert!(
                r.passed(),
                "{} with only {} enabled failed: {:?}\nreplay: {}",
                sc,
                site.name,
                r.violations,
                replay(&inp)
            );
            if r.fault_fired[i] > 0 {
                let fired = format!("fault point {} fired", site.name);
                let notes = r
                    .trace
                    .events
                    .iter()
                    .filter(|e| matches!(&e.kind, weir_traces::EventKind::Note { text } if *text == fired))
                    .count() as u64;
                assert_eq!(notes, r.fault_fired[i], "every firing of {} is in the trace", site.name);
                fired_in = Some((sc, r.fault_fired[i]));
                break;
            }
        }
        match fired_in {
            Some((sc, n)) => println!("{:<19} fired {n} times in {sc}", site.name),
            None => unreached.push(site.name),
        }
    }
    assert!(unreached.is_empty(), "sites that never fired (seed {seed}, ppm {PPM}): {unreached:?}");
}

#[test]
fn fault_points_are_deterministic() {
    for sc in ["raft-basic", "js-single"] {
        let fp = FaultPoints { mode: Mode::All, ppm: 5_000 };
        let a = harness::run(&input(sc, 11, fp.clone()));
        let b = harness::run(&input(sc, 11, fp));
        assert!(a.fault_fired.iter().sum::<u64>() > 0, "{sc}: nothing fired");
        assert_eq!(a.fault_fired, b.fault_fired, "{sc}");
        assert_eq!(a.hash, b.hash, "{sc}: same seed and selection, different traces");
    }
}

#[test]
fn sites_that_never_fire_perturb_nothing() {
    // Every site enabled but never firing draws from the fault-point RNG at every hit;
    // the run must be event for event the run with fault points off.
    for sc in ["raft-basic", "js-single", "store-crashes"] {
        let off = harness::run(&input(sc, 5, FaultPoints::OFF));
        let silent = harness::run(&input(sc, 5, FaultPoints { mode: Mode::All, ppm: 0 }));
        assert_eq!(silent.fault_fired.iter().sum::<u64>(), 0);
        assert_eq!(off.hash, silent.hash, "{sc}: fault-point draws changed the run");
    }
}

#[test]
fn the_swarm_selection_is_recorded_and_replayed() {
    let i = input("raft-basic", 21, FaultPoints::default());
    let r = harness::run(&i);
    let h = &r.trace.header;
    assert_eq!(h.fault_points, i.fault_points.enabled_names(21));
    assert_eq!(h.fault_ppm, i.fault_points.ppm);
    let again = FaultPoints::recorded(&h.fault_points, h.fault_ppm).unwrap();
    let r2 = harness::run(&input("raft-basic", 21, again));
    assert_eq!(r.hash, r2.hash, "the recorded selection did not reproduce the run");
}
