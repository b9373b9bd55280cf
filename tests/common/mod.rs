//! Starting and stopping an in-process weir NATS server on a free loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use weir_core::server::nats::{self, Monitor, NatsConfig, NatsServer};

pub mod js;
#[cfg(not(madsim))]
pub mod procs;

/// A running server; [`TestServer::stop`] shuts it down and waits for it.
pub struct TestServer {
    /// Client address.
    pub addr: SocketAddr,
    /// Monitoring handle.
    pub monitor: Monitor,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// `nats://` URL for clients.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Shut down (draining) and wait until the listener is gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
    }
}

/// Test defaults: port 0 unless given, a fixed seed.
pub fn config() -> NatsConfig {
    NatsConfig { listen: "127.0.0.1:0".parse().unwrap(), seed: 7, ..NatsConfig::default() }
}

/// Start a server with `cfg`.
pub async fn start(cfg: NatsConfig) -> TestServer {
    let ledger = nats::ledger_for(&cfg);
    start_with_ledger(cfg, ledger).await
}

/// Start a server with `cfg` charging `ledger` (a test's own limits).
pub async fn start_with_ledger(cfg: NatsConfig, ledger: std::sync::Arc<weir_core::mem::Ledger>) -> TestServer {
    let server = NatsServer::bind(cfg, ledger).await.expect("bind");
    let addr = server.local_addr();
    let monitor = server.monitor();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestServer { addr, monitor, stop: Some(tx), task }
}

/// The external server from `NATS_SERVER_URL` (`nats://host:port`), if the suites should use one.
pub fn external_url() -> Option<String> {
    std::env::var("NATS_SERVER_URL").ok().filter(|u| !u.is_empty())
}

/// The address of the external server, if one is set.
pub fn external_addr() -> Option<SocketAddr> {
    addr_from_env("NATS_SERVER_URL")
}

/// The address in environment variable `var` (`nats://host:port`), if set.
pub fn addr_from_env(var: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let url = std::env::var(var).ok().filter(|u| !u.is_empty())?;
    let hostport = url.strip_prefix("nats://").unwrap_or(&url);
    Some(
        hostport
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("{var} host:port: {e}"))
            .next()
            .unwrap_or_else(|| panic!("{var} does not resolve")),
    )
}

/// A subject prefix unique to this test process, so runs against a shared external server do not collide.
pub fn prefix(test: &str) -> String {
    format!("t{}.{test}", std::process::id())
}

/// Wait until the server has processed everything `c` sent before this call (its SUBs
/// above all), so a message another connection publishes next reaches them.
///
/// async-nats's `flush` only writes the socket; it does not wait for the server. This
/// round-trips a request nobody answers: the no-responders status comes back on the same
/// connection, after the server handled every earlier operation from it.
pub async fn sync(c: &async_nats::Client) {
    let r = tokio::time::timeout(Duration::from_secs(10), c.request(c.new_inbox(), "".into())).await;
    let e = r.expect("sync: no-responders round trip timed out").expect_err("sync: nobody should answer");
    assert_eq!(e.kind(), async_nats::client::RequestErrorKind::NoResponders, "sync: {e}");
}

/// A fresh temporary directory for a test's JetStream store (removed first if present).
pub fn store_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weir-js-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Test defaults with JetStream on, its data in `dir` (a real disk).
pub fn js_config(dir: &std::path::Path) -> NatsConfig {
    let disk = std::sync::Arc::new(weir_core::disk::RealDisk::new(dir).expect("store dir"));
    #[allow(clippy::disallowed_methods, reason = "tests outside the simulation: the wall clock seam")]
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let js = nats::JetStreamOptions::new(disk, dir.join("jetstream").display().to_string(), epoch);
    NatsConfig { jetstream: Some(js), ..config() }
}
