//! The server as an operator runs it, from a NATS client library user's side: started
//! from a config file, SIGHUP reloads that file (what may change, changes; what may not
//! is refused by name and the running config kept; a broken file is logged and the
//! server goes on), SIGHUP without a config file and SIGUSR1 never stop it, and SIGUSR1
//! reopens the log file after logrotate moved it.
//!
//! Server processes on loopback (`tests/common/procs.rs`): `weir serve`, or with
//! `PROCESS_SERVER_BIN=/path/to/nats-server` the same checks against nats-server (the log
//! lines asserted are nats-server's own). Every child is killed when its test ends.

#![cfg(all(unix, not(madsim)))]

mod common;

use common::procs::{Procs, accepts, free_port, info, server, spawn, until};
use futures::StreamExt;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-operator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Wait until `needle` occurs in the log at `path` more than `seen` times; returns the log.
async fn until_logged(path: &Path, needle: &str, seen: usize) -> String {
    let what = format!("{needle:?} in {}", path.display());
    until(&what, || {
        let n = log_text(path).to_lowercase().matches(&needle.to_lowercase()).count();
        async move { n > seen }
    })
    .await;
    log_text(path)
}

fn count(path: &Path, needle: &str) -> usize {
    log_text(path).to_lowercase().matches(&needle.to_lowercase()).count()
}

/// Start a server on loopback `port` with `-l log`, and `-c conf` if given (whose `port`
/// must then be `port`: a `-p` flag would override the file's, reloads included).
async fn start(conf: Option<&Path>, log: &Path, port: u16) -> Procs {
    let mut cmd = server();
    cmd.env_remove("RUST_LOG").args(["-a", "127.0.0.1", "-l"]).arg(log);
    match conf {
        Some(c) => cmd.arg("-c").arg(c),
        None => cmd.args(["-p", &port.to_string()]),
    };
    let procs = Procs(vec![Some(spawn(cmd))]);
    until(&format!("port {port} to accept"), || accepts(port)).await;
    procs
}

#[tokio::test]
async fn a_client_uses_a_server_started_from_a_config_file() {
    let dir = temp_dir("conf-start");
    let (port, log, conf) = (free_port(), dir.join("server.log"), dir.join("server.conf"));
    std::fs::write(
        &conf,
        format!("# a deployment's file\nport: {port}\n") + "max_payload: 64KB\nping_interval: \"2m\"\nauthorization {\n  users: [\n    \
         { user: app, password: s3cret, permissions: { publish: [\"app.>\", \"_INBOX.>\"], subscribe: [\"app.>\", \"_INBOX.>\"] } }\n  ]\n}\n",
    )
    .unwrap();
    let _procs = start(Some(&conf), &log, port).await;
    let url = format!("nats://127.0.0.1:{port}");
    assert!(async_nats::connect(&url).await.is_err(), "the file's users list requires credentials");
    let client = async_nats::ConnectOptions::with_user_and_password("app".into(), "s3cret".into())
        .connect(&url)
        .await
        .expect("connect as the file's user");
    assert_eq!(client.server_info().max_payload, 64 * 1024, "max_payload from the file");
    let mut sub = client.subscribe("app.orders").await.unwrap();
    client.publish("app.orders", "one".into()).await.unwrap();
    let m = tokio::time::timeout(common::procs::PROC_WAIT, sub.next()).await.expect("timed out").unwrap();
    assert_eq!(m.payload, "one");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sighup_reloads_what_may_change_and_refuses_what_cannot() {
    let dir = temp_dir("reload");
    let (port, log, conf) = (free_port(), dir.join("server.log"), dir.join("server.conf"));
    std::fs::write(&conf, format!("port: {port}\nmax_payload: 2048\n")).unwrap();
    let procs = start(Some(&conf), &log, port).await;
    assert_eq!(info(port).await["max_payload"], 2048);

    // A setting that may change: later connections see it.
    let reloaded = count(&log, "Reloaded server configuration");
    std::fs::write(&conf, format!("port: {port}\nmax_payload: 4096\n")).unwrap();
    procs.signal(0, "HUP");
    until_logged(&log, "Reloaded server configuration", reloaded).await;
    assert_eq!(info(port).await["max_payload"], 4096);

    // One that cannot (the port) refuses the whole reload, naming it; the rest is kept.
    let failed = count(&log, "Failed to reload server configuration");
    std::fs::write(&conf, format!("port: {}\nmax_payload: 8192\n", free_port())).unwrap();
    procs.signal(0, "HUP");
    let text = until_logged(&log, "Failed to reload server configuration", failed).await;
    assert!(text.to_lowercase().contains("config reload not supported for port"), "{text}");
    assert_eq!(info(port).await["max_payload"], 4096, "the running config is kept");

    // A broken file is an error in the log, not the end of the server.
    std::fs::write(&conf, "max_payload: {{{ not a config\n").unwrap();
    procs.signal(0, "HUP");
    until_logged(&log, "Failed to reload server configuration", failed + 1).await;
    assert_eq!(info(port).await["max_payload"], 4096);

    // Authorization may change: new connections must now authenticate.
    let reloaded = count(&log, "Reloaded server configuration");
    std::fs::write(&conf, format!("port: {port}\nmax_payload: 4096\nauthorization {{ user: bob, password: pw }}\n"))
        .unwrap();
    procs.signal(0, "HUP");
    until_logged(&log, "Reloaded server configuration", reloaded).await;
    assert_eq!(info(port).await["auth_required"], true);
    let url = format!("nats://127.0.0.1:{port}");
    assert!(async_nats::connect(&url).await.is_err(), "no credentials after the reload");
    let c = async_nats::ConnectOptions::with_user_and_password("bob".into(), "pw".into()).connect(&url).await;
    c.expect("the reloaded user connects").flush().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sighup_without_a_config_file_and_sigusr1_keep_the_server_running() {
    let dir = temp_dir("nofile");
    let (port, log) = (free_port(), dir.join("server.log"));
    let mut procs = start(None, &log, port).await;
    procs.signal(0, "HUP");
    let text = until_logged(&log, "Failed to reload server configuration", 0).await;
    assert!(text.contains("can only reload config when a file is provided"), "{text}");
    procs.signal(0, "USR1");
    until_logged(&log, "File log re-opened", 0).await;
    assert!(!procs.exited(0), "the server is still running");
    let c = async_nats::connect(format!("nats://127.0.0.1:{port}")).await.expect("still serving");
    c.flush().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigusr1_reopens_the_log_file_after_logrotate_moved_it() {
    let dir = temp_dir("logrotate");
    let (port, log) = (free_port(), dir.join("server.log"));
    let procs = start(None, &log, port).await;
    until_logged(&log, "Server is ready", 0).await;
    let rotated = dir.join("server.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    procs.signal(0, "USR1");
    let fresh = until_logged(&log, "File log re-opened", 0).await;
    assert!(!fresh.contains("Server is ready"), "the new file starts after the reopen: {fresh}");
    assert!(log_text(&rotated).contains("Server is ready"), "the old lines stay in the rotated file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw client: connects as `user`/`pass`, and reads what the server sends.
struct Raw(tokio::net::TcpStream, Vec<u8>);

impl Raw {
    async fn connect(port: u16, user: &str, pass: &str) -> Raw {
        use tokio::io::AsyncWriteExt;
        let mut r = Raw(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap(), Vec::new());
        r.until("\r\n").await;
        let connect = format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\nPING\r\n");
        r.0.write_all(connect.as_bytes()).await.unwrap();
        r.until("PONG\r\n").await;
        r.1.clear();
        r
    }

    async fn send(&mut self, s: &str) {
        tokio::io::AsyncWriteExt::write_all(&mut self.0, s.as_bytes()).await.unwrap();
    }

    /// Read until `needle` arrives (or the connection closes: then `<closed>` is appended).
    async fn until(&mut self, needle: &str) -> String {
        use tokio::io::AsyncReadExt;
        while !String::from_utf8_lossy(&self.1).contains(needle) {
            let mut b = [0u8; 4096];
            let n = tokio::time::timeout(common::procs::PROC_WAIT, self.0.read(&mut b))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?}; got {:?}", String::from_utf8_lossy(&self.1)))
                .unwrap_or(0);
            if n == 0 {
                self.1.extend_from_slice(b"<closed>");
                break;
            }
            self.1.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&self.1).into_owned()
    }
}

/// A reload checks the connected clients again, as nats-server's: a user the file no
/// longer has is disconnected (silently, as nats-server does), and a user whose
/// permissions changed keeps its connection under the new ones.
#[tokio::test]
async fn a_reload_rechecks_connected_clients() {
    let dir = temp_dir("recheck");
    let (port, log, conf) = (free_port(), dir.join("server.log"), dir.join("server.conf"));
    let users = |stay_publish: &str, gone: bool| {
        format!(
            "port: {port}\nauthorization {{ users: [\n  {{ user: stay, password: s, permissions: {{ publish: {stay_publish} }} }}\n{}] }}\n",
            if gone { "  { user: gone, password: g }\n" } else { "" }
        )
    };
    std::fs::write(&conf, users("[\"a.>\", \"b.>\"]", true)).unwrap();
    let _procs = start(Some(&conf), &log, port).await;
    let mut stay = Raw::connect(port, "stay", "s").await;
    let mut gone = Raw::connect(port, "gone", "g").await;
    stay.send("PUB b.x 0\r\n\r\nPING\r\n").await;
    assert_eq!(stay.until("PONG\r\n").await, "PONG\r\n", "b.> is allowed before the reload");
    stay.1.clear();

    let reloaded = count(&log, "Reloaded server configuration");
    std::fs::write(&conf, users("[\"a.>\"]", false)).unwrap();
    _procs.signal(0, "HUP");
    until_logged(&log, "Reloaded server configuration", reloaded).await;
    // nats-server 2.15.1 closes it without a word; so does weir.
    assert_eq!(gone.until("<closed>").await, "<closed>");
    stay.send("PUB b.x 0\r\n\r\nPUB a.x 0\r\n\r\nPING\r\n").await;
    let text = stay.until("PONG\r\n").await;
    assert_eq!(text, "-ERR 'Permissions Violation for Publish to \"b.x\"'\r\nPONG\r\n", "the new permissions apply");
    let _ = std::fs::remove_dir_all(&dir);
}
