//! `weir stream ...` / `weir consumer ...` run as processes against a JetStream server:
//! the one in `NATS_JS_SERVER_URL` (scripts/compat-nats-server starts nats-server with
//! `-js` for it), else a fresh in-process weir with JetStream on a temporary store.
//! Messages are published and consumed with async-nats, the commands' output and exit
//! codes checked.

#![cfg(not(madsim))]

mod common;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use std::process::{Command, Output};

/// The JetStream server under test: `NATS_JS_SERVER_URL`, or an in-process weir kept
/// running while this value lives.
struct Target {
    url: String,
    _local: Option<common::TestServer>,
}

async fn target(test: &str) -> Target {
    match std::env::var("NATS_JS_SERVER_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => Target { url, _local: None },
        None => {
            let server = common::start(common::js_config(&common::store_dir(&format!("admin-{test}")))).await;
            Target { url: server.url(), _local: Some(server) }
        }
    }
}

/// Run `weir ARGS...` against `url` (as `-s URL`) and return its output.
async fn weir(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args).args(["-s", url]).env_remove("NATS_URL");
    tokio::task::spawn_blocking(move || cmd.output().expect("run weir")).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run and require success; returns stdout.
async fn ok(url: &str, args: &[&str]) -> String {
    let o = weir(url, args).await;
    assert!(o.status.success(), "weir {args:?} failed: {}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

/// Run and require failure; returns stderr.
async fn fails(url: &str, args: &[&str]) -> String {
    let o = weir(url, args).await;
    assert!(!o.status.success(), "weir {args:?} succeeded: {}", stdout(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stream name and subject prefix unique to this test process.
fn names(test: &str) -> (String, String) {
    (format!("ADM_{}_{test}", std::process::id()), common::prefix(test))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle() {
    let t = target("life").await;
    let url = t.url.clone();
    let (s, p) = names("life");
    let subjects = format!("{p}.>");
    let out = ok(
        &url,
        &[
            "stream",
            "add",
            &s,
            "--subjects",
            &subjects,
            "--max-msgs-per-subject",
            "10",
            "--max-age",
            "1d",
            "--dupe-window",
            "30s",
        ],
    )
    .await;
    assert!(out.contains(&format!("Stream {s} was created")), "{out}");
    assert!(out.contains(&format!("Subjects: {subjects}")), "{out}");
    assert!(out.contains("Maximum Per Subject: 10") && out.contains("Maximum Age: 24h0m0s"), "{out}");
    assert!(out.contains("Duplicate Window: 30s"), "{out}");

    let client = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(client);
    for (subj, n) in [("a", 3), ("b", 1), ("c.d", 2)] {
        for _ in 0..n {
            js.publish(format!("{p}.{subj}"), Bytes::from_static(b"hello")).await.unwrap().await.unwrap();
        }
    }

    let info = ok(&url, &["stream", "info", &s]).await;
    assert!(info.starts_with(&format!("Information for Stream {s} created ")), "{info}");
    assert!(info.find("Configuration:").unwrap() < info.find("State:").unwrap(), "{info}");
    assert!(info.contains("Messages: 6\n") && info.contains("Last Sequence: 6 @ "), "{info}");
    assert!(info.contains("Number of Subjects: 3\n"), "{info}");

    let raw: Value = serde_json::from_str(&ok(&url, &["stream", "info", &s, "--json"]).await).unwrap();
    assert_eq!(raw["type"], "io.nats.jetstream.api.v1.stream_info_response");
    assert_eq!(raw["state"]["messages"], 6);

    let ls = ok(&url, &["stream", "ls"]).await;
    let row = ls.lines().find(|l| l.contains(&s)).unwrap_or_else(|| panic!("{s} not in\n{ls}"));
    assert!(row.contains(" 6 │"), "{row}");
    assert!(ok(&url, &["stream", "ls", "--names"]).await.lines().any(|l| l == s));

    let subj = ok(&url, &["stream", "subjects", &s]).await;
    for (k, n) in [("a", 3), ("b", 1), ("c.d", 2)] {
        let line = subj.lines().find(|l| l.contains(&format!("{p}.{k} "))).unwrap_or_else(|| panic!("{k}: {subj}"));
        assert!(line.trim_end_matches('│').trim_end().ends_with(&n.to_string()), "{line}");
    }
    assert!(subj.ends_with("Total: 3 subjects, 6 messages\n"), "{subj}");
    let filtered = ok(&url, &["stream", "subjects", &s, &format!("{p}.*")]).await;
    assert!(filtered.ends_with("Total: 2 subjects, 4 messages\n"), "{filtered}");

    // purge and rm refuse without --force, and leave the stream as it was.
    assert!(fails(&url, &["stream", "purge", &s]).await.contains("--force"));
    assert!(fails(&url, &["stream", "rm", &s]).await.contains("--force"));
    let out = ok(&url, &["stream", "purge", &s, "-f", "--subject", &format!("{p}.a")]).await;
    assert_eq!(out, format!("Purged 3 messages from stream {s}\n"));
    let out = ok(&url, &["stream", "purge", &s, "--force", "--keep", "1"]).await;
    assert_eq!(out, format!("Purged 2 messages from stream {s}\n"));
    assert!(ok(&url, &["stream", "info", &s]).await.contains("Messages: 1\n"));

    assert_eq!(ok(&url, &["stream", "rm", &s, "-f"]).await, format!("Deleted stream {s}\n"));
    let err = fails(&url, &["stream", "info", &s]).await;
    assert!(err.contains("stream not found") && err.contains("10059"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_add_errors_and_config_file() {
    let t = target("conf").await;
    let url = t.url.clone();
    let (s, p) = names("conf");
    let dir = std::env::temp_dir().join(format!("weir-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stream.json");
    let cfg = serde_json::json!({"name": s, "subjects": [format!("{p}.>")], "max_msgs": 100, "storage": "memory"});
    std::fs::write(&file, cfg.to_string()).unwrap();
    // Flags override the file.
    let out = ok(&url, &["stream", "add", "--config", file.to_str().unwrap(), "--max-msgs", "50"]).await;
    assert!(out.contains("Maximum Messages: 50\n") && out.contains("Storage: Memory\n"), "{out}");
    // The same name with another config: nats-server's 10058.
    let err = fails(&url, &["stream", "add", &s, "--subjects", &format!("{p}.other")]).await;
    assert!(
        err.contains("stream name already in use with a different configuration") && err.contains("10058"),
        "{err}"
    );
    // A duplicate window longer than max age is an invalid config (10052).
    let (s2, p2) = names("conf2");
    let err = fails(
        &url,
        &["stream", "add", &s2, "--subjects", &format!("{p2}.>"), "--max-age", "1s", "--dupe-window", "1m"],
    )
    .await;
    assert!(err.contains("10052"), "{err}");
    // Malformed --config.
    std::fs::write(&file, "{not json").unwrap();
    assert!(fails(&url, &["stream", "add", "--config", file.to_str().unwrap()]).await.contains("invalid JSON"));
    ok(&url, &["stream", "rm", &s, "-f"]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lifecycle() {
    let t = target("cons").await;
    let url = t.url.clone();
    let (s, p) = names("cons");
    ok(&url, &["stream", "add", &s, "--subjects", &format!("{p}.>")]).await;
    let client = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(client);
    for i in 0..5 {
        let subj = if i % 2 == 0 { "new" } else { "old" };
        js.publish(format!("{p}.{subj}"), Bytes::from_static(b"m")).await.unwrap().await.unwrap();
    }
    let filter = format!("{p}.new");
    let out = ok(
        &url,
        &[
            "consumer",
            "add",
            &s,
            "worker",
            "--filter",
            &filter,
            "--ack-wait",
            "10s",
            "--max-deliver",
            "5",
            "--max-ack-pending",
            "20",
        ],
    )
    .await;
    assert!(out.contains(&format!("Consumer {s} > worker was created")), "{out}");
    for line in ["Durable Name: worker", "Pull Mode: true", "Ack Policy: Explicit", "Ack Wait: 10s"] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    assert!(out.contains(&format!("Filter Subject: {filter}")) && out.contains("Unprocessed Messages: 3\n"), "{out}");

    // Fetch two and ack them: the info shows the floor and the pending count.
    let stream = js.get_stream(&s).await.unwrap();
    let consumer: jetstream::consumer::PullConsumer = stream.get_consumer("worker").await.unwrap();
    let mut batch = consumer.fetch().max_messages(2).messages().await.unwrap();
    while let Some(m) = batch.next().await {
        m.unwrap().double_ack().await.unwrap();
    }
    let info = ok(&url, &["consumer", "info", &s, "worker"]).await;
    assert!(info.starts_with(&format!("Information for Consumer {s} > worker created ")), "{info}");
    assert!(info.contains("Acknowledgment Floor: Consumer sequence: 2 Stream sequence: 3"), "{info}");
    assert!(
        info.contains("Outstanding Acks: 0 out of maximum 20") && info.contains("Unprocessed Messages: 1\n"),
        "{info}"
    );
    let raw: Value = serde_json::from_str(&ok(&url, &["consumer", "info", &s, "worker", "-j"]).await).unwrap();
    assert_eq!(raw["num_pending"], 1);
    assert_eq!(raw["config"]["max_deliver"], 5);

    // An ephemeral push consumer named by the server.
    let out = ok(&url, &["consumer", "add", &s, "--target", &format!("{p}_push"), "--deliver", "new", "--json"]).await;
    let push: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(push["config"]["deliver_policy"], "new");
    let ls = ok(&url, &["consumer", "ls", &s]).await;
    assert!(ls.contains("│ worker "), "{ls}");
    assert!(ls.contains(push["name"].as_str().unwrap()), "{ls}");
    assert_eq!(ok(&url, &["consumer", "ls", &s, "-n"]).await.lines().count(), 2);

    // A different config under the same name with action create: 10148.
    let err = fails(&url, &["consumer", "add", &s, "worker", "--max-deliver", "9"]).await;
    assert!(err.contains("10148"), "{err}");
    assert!(fails(&url, &["consumer", "rm", &s, "worker"]).await.contains("--force"));
    assert_eq!(ok(&url, &["consumer", "rm", &s, "worker", "-f"]).await, format!("Deleted consumer {s} > worker\n"));
    let err = fails(&url, &["consumer", "info", &s, "worker"]).await;
    assert!(err.contains("consumer not found") && err.contains("10014"), "{err}");
    ok(&url, &["stream", "rm", &s, "-f"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_from_nats_url() {
    let t = target("env").await;
    let url = t.url.clone();
    let (s, p) = names("env");
    ok(&url, &["stream", "add", &s, "--subjects", &format!("{p}.>")]).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(["stream", "ls", "-n"]).env("NATS_URL", &url);
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(o.status.success() && stdout(&o).lines().any(|l| l == s), "{}", stdout(&o));
    // Nothing listening: a clear error, non-zero exit.
    let err = fails("nats://127.0.0.1:1", &["stream", "ls", "--timeout", "1s"]).await;
    assert!(err.contains("cannot connect"), "{err}");
    ok(&url, &["stream", "rm", &s, "-f"]).await;
}
