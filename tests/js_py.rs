//! nats-py's JetStream API on the cases of tests/js_client.rs: runs
//! `tests/js_py/js_suite.py` against an in-process weir with JetStream (or the server in
//! `NATS_JS_SERVER_URL`) and fails if any case fails.
//!
//! The python comes from `scripts/nats-py-venv` (a venv under `target/nats-py/` with a
//! pinned nats-py from PyPI, built on first use). If that venv cannot be built (no
//! `python3`, no `venv` module, no registry), the test says so and passes: the async-nats
//! suite covers the same cases.

#![cfg(not(madsim))]

mod common;

use common::js::Target;
use std::path::Path;
use std::process::Command;

/// Cases that weir does not pass yet, with the reason (`--skip CASE=REASON`); only
/// applied when the target is the in-process weir.
const WEIR_SKIPS: &[(&str, &str)] = &[];

/// The venv's python, or why there is none.
fn python() -> Result<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/nats-py-venv"))
        .output()
        .map_err(|e| format!("cannot run scripts/nats-py-venv: {e}"))?;
    if !out.status.success() {
        return Err(format!("scripts/nats-py-venv failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run the suite at `url` with `args`; returns (success, summary line).
async fn run_suite(py: &str, url: &str, args: Vec<String>) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js_py/js_suite.py");
    let mut cmd = Command::new(py);
    cmd.arg(script).arg(url).args(args);
    // The in-process server runs on this runtime's other worker while python runs.
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let summary = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("(no summary line)").to_string();
    (out.status.success() && summary.contains(" 0 failed"), summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_jetstream_suite() {
    let py = match tokio::task::spawn_blocking(python).await.unwrap() {
        Ok(py) => py,
        Err(why) => {
            println!("SKIP nats-py suite: {why}");
            return;
        }
    };
    let Some(t) = Target::new("py").await else { return };
    let mut args = Vec::new();
    if t.is_weir() {
        args.push("--weir".to_string());
        for (case, why) in WEIR_SKIPS {
            args.push("--skip".to_string());
            args.push(format!("{case}=weir: {why}"));
        }
    }
    let (ok, summary) = run_suite(&py, &t.url, args).await;
    let url = t.url.clone();
    let Some((server, dir)) = t.local else {
        assert!(ok, "nats-py suite: {summary}");
        println!("SKIP restart_setup/restart_check: needs an in-process server to restart (external server at {url})");
        return;
    };
    // Restart: set up, restart over the same store directory, check.
    let run_id = format!("r{}", std::process::id());
    let phase = |case: &str| vec!["--only".to_string(), case.to_string(), "--run-id".to_string(), run_id.clone()];
    let (set_ok, set_summary) = run_suite(&py, &url, phase("restart_setup")).await;
    server.stop().await;
    let server = common::start(common::js::weir_js_config(&dir)).await;
    let (check_ok, check_summary) = run_suite(&py, &server.url(), phase("restart_check")).await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    assert!(ok, "nats-py suite: {summary}");
    assert!(set_ok, "restart_setup: {set_summary}");
    assert!(check_ok, "restart_check: {check_summary}");
}
