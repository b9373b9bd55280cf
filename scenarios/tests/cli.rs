//! The `weir-sim` binary end to end: verdict lines, determinism across processes,
//! trace files, replay and bad input (simulation build only).

#![cfg(madsim)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn weir_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir-sim")).args(args).output().expect("weir-sim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn verdict(o: &Output) -> String {
    stdout(o).lines().find(|l| l.starts_with("PASS") || l.starts_with("FAIL")).unwrap_or_default().to_string()
}

#[test]
fn run_prints_config_first_then_verdict_and_is_deterministic_across_processes() {
    let args = ["run", "--scenario", "raft-swarm", "--seed", "11", "--set", "run.duration_ms=3000"];
    let a = weir_sim(&args);
    let b = weir_sim(&args);
    assert!(stdout(&a).starts_with("config: "), "config must be printed first:\n{}", stdout(&a));
    let (va, vb) = (verdict(&a), verdict(&b));
    assert!(va.starts_with("PASS seed=11 scenario=raft-swarm hash="), "{}", stdout(&a));
    assert_eq!(a.status.code(), Some(0));
    let hash = |v: &str| v.split_whitespace().find(|w| w.starts_with("hash=")).unwrap().to_string();
    assert_eq!(hash(&va), hash(&vb), "two processes, same seed, different traces");
    assert_eq!(hash(&va).len(), "hash=".len() + 16);
}

#[test]
fn the_store_world_is_deterministic_across_processes() {
    // Crashes, corruption and a full disk on: the seed draws them (store-crashes' mix).
    for seed in ["4", "9"] {
        let args = ["run", "--scenario", "store-crashes", "--seed", seed, "--set", "run.duration_ms=4000"];
        let (a, b) = (weir_sim(&args), weir_sim(&args));
        let (va, vb) = (verdict(&a), verdict(&b));
        assert!(va.starts_with(&format!("PASS seed={seed} scenario=store-crashes hash=")), "{}", stdout(&a));
        let hash = |v: &str| v.split_whitespace().find(|w| w.starts_with("hash=")).unwrap().to_string();
        assert_eq!(hash(&va), hash(&vb), "store-crashes seed {seed}: two processes, different traces");
    }
}

#[test]
fn trace_round_trip_and_replay_is_identical() {
    let path = tmp("basic.trace");
    let p = path.to_str().unwrap();
    let o =
        weir_sim(&["run", "--scenario", "raft-basic", "--seed", "3", "--set", "run.duration_ms=1500", "--trace", p]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let r = weir_sim(&["replay", p]);
    assert!(stdout(&r).starts_with("identical"), "{}", stdout(&r));
    let show = weir_sim(&["trace", "show", p, "--kind", "raft-role"]);
    assert!(stdout(&show).contains("Leader"), "{}", stdout(&show));
    let svg = tmp("mem.svg");
    let s = weir_sim(&["trace", "show", p, "--svg", svg.to_str().unwrap()]);
    assert_eq!(s.status.code(), Some(0));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn failing_run_prints_violation_and_replay_command() {
    let o = weir_sim(&["run", "--scenario", "raft-slow-follower", "--seed", "0", "--bug", "unbounded-catchup"]);
    let out = stdout(&o);
    if o.status.code() == Some(1) {
        assert!(out.contains("FAIL seed=0"), "{out}");
        assert!(
            out.contains("replay: cargo sim run --scenario raft-slow-follower --seed 0 --bug unbounded-catchup"),
            "{out}"
        );
    } else {
        // Seed 0 may not trigger the bug; the sweep test covers catching it.
        assert_eq!(o.status.code(), Some(0), "{out}");
    }
}

#[test]
fn bad_input_gets_one_clear_error_line() {
    let corrupt = tmp("corrupt.trace");
    std::fs::write(&corrupt, b"WEIRTRCE garbage").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--scenario", "nope", "--seed", "1"], "unknown scenario"),
        (vec!["run", "--scenario", "raft-basic", "--seed", "1", "--bug", "nope"], "unknown bug"),
        (vec!["sweep", "--all", "--seeds", "9..3"], "malformed seed range"),
        (vec!["sweep", "--all", "--seeds", "x..y"], "malformed seed range"),
        (vec!["sweep", "--all", "--shard", "3/2"], "malformed shard"),
        (vec!["run", "--scenario", "raft-basic", "--seed", "1", "--set", "run.nodes=zero"], "bad value"),
        (vec!["run", "--scenario", "raft-basic", "--seed", "1", "--set", "nodes=3"], "unknown config field 'nodes'"),
        (
            vec!["run", "--scenario", "pubsub-partitions", "--seed", "1", "--set", "faults.pause=3"],
            "world 'pubsub' does not support pause faults",
        ),
        (vec!["run", "--scenario", "raft-basic", "--seed", "1", "--set", "run.world=nope"], "unknown world 'nope'"),
        (vec!["replay", "/nonexistent/weir.trace"], "/nonexistent/weir.trace"),
        (vec!["replay", corrupt.to_str().unwrap()], "trace"),
    ];
    for (args, needle) in cases {
        let o = weir_sim(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn lists_scenarios_and_bugs() {
    let s = stdout(&weir_sim(&["scenarios"]));
    for name in [
        "raft-basic",
        "raft-partitions",
        "raft-crashes",
        "raft-slow-follower",
        "raft-swarm",
        "pubsub-partitions",
        "js-single",
        "js-single-crashes",
    ] {
        assert!(s.contains(name), "{s}");
    }
    let b = stdout(&weir_sim(&["bugs"]));
    assert_eq!(b.lines().count(), 13, "{b}");
    for name in [
        "votes-not-persisted",
        "commit-before-quorum",
        "unbounded-catchup",
        "lazy-fsync",
        "buffer-leak",
        "ack-before-store",
        "route-drops-interest",
        "queue-double-delivery",
        "ack-floor-skips",
        "dedup-forgets",
        "evict-before-durable",
        "unbounded-buffer-pool",
        "uncharged-buffer",
    ] {
        assert!(b.contains(name), "{b}");
    }
    assert!(b.contains("caught by raft-crashes)") && b.contains("caught by store-crashes)"), "{b}");
    assert!(b.contains("(breaks election-safety;") && b.contains("(breaks memory-baseline;"), "{b}");
    assert!(b.contains("caught by js-single-crashes)"), "{b}");
    assert!(b.contains("(breaks pubsub-queue-once; caught by pubsub-partitions)"), "{b}");
    let w = stdout(&weir_sim(&["worlds"]));
    for name in ["raft ", "pubsub ", "store ", "js "] {
        assert!(w.contains(name), "{w}");
    }
}
