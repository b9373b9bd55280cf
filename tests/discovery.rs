//! Cluster discovery and lame duck, as a NATS client library's user sees them: server
//! processes on loopback, an async-nats client, conditions polled with a deadline.
//!
//! By default the tests run `weir serve`; with `PROCESS_SERVER_BIN=/path/to/nats-server`
//! they run the same checks against that binary instead (same flags, same config file),
//! e.g. `PROCESS_SERVER_BIN=$(scripts/nats-server-bin) cargo test --test discovery`
//! (helpers in `tests/common/procs.rs`). Every child is killed when its test ends.

#![cfg(not(madsim))]

mod common;

use async_nats::{ConnectOptions, Event};
use common::procs::{Procs, accepts, free_port, server, spawn, until};
use futures::StreamExt;
use std::time::Duration;

const WAIT: Duration = common::procs::PROC_WAIT;

// Once flaky under load: async-nats 0.51 takes `connect_urls` only from the INFO it gets
// when it connects (it ignores them in later INFOs, and `server_info()` is that first
// INFO), so a client that connected before the routes were up never learnt the late peer,
// on weir as on nats-server. The test now waits for the cluster to form (a fresh INFO from
// A lists all three) before the client connects. (Separately, weir now queues async INFOs
// in the order the URL set changed, `Shared::info_order`, for clients that do read them.)
#[tokio::test]
async fn a_client_learns_the_cluster_and_fails_over_to_a_server_it_was_not_given() {
    let (clients, routes): (Vec<u16>, Vec<u16>) = (0..3).map(|_| (free_port(), free_port())).unzip();
    let [a, b, c] = [clients[0], clients[1], clients[2]];
    let mut procs = Procs(Vec::new());
    for i in 0..3 {
        let others: Vec<String> =
            (0..3).filter(|j| *j != i).map(|j| format!("nats-route://127.0.0.1:{}", routes[j])).collect();
        let mut cmd = server();
        cmd.env("RUST_LOG", "warn")
            .args(["-a", "127.0.0.1", "-p", &clients[i].to_string()])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i]), "--routes", &others.join(",")])
            .args(["--server_name", &format!("d{}", i + 1), "--cluster_name", "disc"]);
        procs.0.push(Some(spawn(cmd)));
    }
    for &p in &clients {
        until(&format!("port {p} to accept"), || accepts(p)).await;
    }
    until("A to know the whole cluster", || async move {
        common::procs::info(a).await["connect_urls"].as_array().is_some_and(|u| u.len() == 3)
    })
    .await;

    // Given only A, the client learns B and C from INFO `connect_urls`.
    let a_url = format!("nats://127.0.0.1:{}", clients[0]);
    let client = async_nats::connect(&a_url).await.expect("connect to A");
    assert_eq!(client.server_info().cluster.as_deref(), Some("disc"), "INFO names the cluster");
    until("the client to learn the other two servers", || {
        let client = client.clone();
        async move {
            let pool = client.server_pool().await.unwrap_or_default();
            let discovered: Vec<u16> = pool.iter().filter(|s| s.is_discovered).map(|s| s.addr.port()).collect();
            let ok = [b, c].iter().all(|p| discovered.contains(p));
            if !ok {
                eprintln!("pool so far: {pool:?}; INFO connect_urls: {:?}", client.server_info().connect_urls);
            }
            ok
        }
    })
    .await;
    let pool = client.server_pool().await.unwrap();
    assert!(
        pool.iter().any(|s| !s.is_discovered && s.addr.port() == clients[0]),
        "A stays the explicit server: {pool:?}"
    );

    // Lose A: the client moves to B or C, which it was never given, and works there.
    procs.kill(0);
    until("the client to reconnect to another server", || {
        let client = client.clone();
        async move {
            client.connection_state() == async_nats::connection::State::Connected && client.server_info().port != a
        }
    })
    .await;
    let now = client.server_info().port;
    assert!(now == clients[1] || now == clients[2], "reconnected to {now}, not B or C");
    let mut sub = client.subscribe("disc.check").await.unwrap();
    client.publish("disc.check", "after failover".into()).await.unwrap();
    let m = tokio::time::timeout(WAIT, sub.next()).await.expect("timed out").expect("subscription ended");
    assert_eq!(m.payload, "after failover");
}

/// A client of loopback `port`, and a channel that hears of each lame-duck INFO it gets.
async fn connect_watching_lame_duck(port: u16) -> (async_nats::Client, tokio::sync::mpsc::Receiver<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let client = ConnectOptions::new()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let Event::LameDuckMode = e {
                    let _ = tx.send(()).await;
                }
            }
        })
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect");
    client.flush().await.unwrap();
    (client, rx)
}

#[cfg(unix)]
#[tokio::test]
async fn lame_duck_tells_clients_stops_accepting_and_exits() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("weir-ldm-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ldm.conf");
    // nats-server's smallest lame_duck_duration is 30 s; with one client there is nothing
    // to spread, so the client goes after the grace period.
    std::fs::write(&conf, "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n").unwrap();
    let mut cmd = server();
    cmd.env("RUST_LOG", "warn").args(["-a", "127.0.0.1", "-p", &port.to_string(), "-c", conf.to_str().unwrap()]);
    let mut procs = Procs(vec![Some(spawn(cmd))]);
    until("the server to accept", || accepts(port)).await;

    let (_client, mut rx) = connect_watching_lame_duck(port).await;

    procs.signal(0, "USR2");
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no lame-duck event").expect("event channel closed");
    assert!(!accepts(port).await, "a server in lame-duck mode accepts no new client");

    // After the grace period the client is closed and the server exits on its own.
    until("the server to exit", || {
        let exited = procs.exited(0);
        async move { exited }
    })
    .await;
    procs.0[0] = None;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn lame_duck_in_process_through_the_handle() {
    use weir_core::server::nats::{self, NatsConfig, NatsServer};
    let cfg = NatsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: 3,
        lame_duck_grace_period: Duration::ZERO,
        ..NatsConfig::default()
    };
    let server = NatsServer::bind(cfg, nats::ledger(1 << 30)).await.expect("bind");
    let port = server.local_addr().port();
    let ldm = server.lame_duck();
    let run = tokio::spawn(server.run(std::future::pending()));
    let (_client, mut rx) = connect_watching_lame_duck(port).await;
    ldm.enter();
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no lame-duck event").expect("event channel closed");
    // `run` returns on its own (its shutdown future never completes): clients closed, done.
    // It drops the listener before it returns. (Probing the port afterwards cannot tell: a
    // process started by another test of this binary may have been given the same port.)
    tokio::time::timeout(WAIT, run).await.expect("run did not end after lame duck").unwrap();
}
