//! A JetStream-capable server for the client suites (tests/js_client.rs, tests/js_py.rs):
//! the one named by `NATS_JS_SERVER_URL` (e.g. a nats-server started with `-js`), or an
//! in-process weir with JetStream on a fresh store directory.

use super::TestServer;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::timeout;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The server under test.
pub struct Target {
    pub url: String,
    /// The in-process server and its store directory (none against an external server).
    pub local: Option<(TestServer, PathBuf)>,
}

/// A store directory unique to this process and call.
pub fn fresh_store_dir(test: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weir-js-client-{}-{test}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create store dir");
    dir
}

/// The in-process server's configuration: JetStream on, storing under `dir/jetstream`
/// (as `weir serve -js --store_dir DIR` does).
pub fn weir_js_config(dir: &Path) -> weir_core::server::nats::NatsConfig {
    let root = dir.join("jetstream");
    let disk = weir_core::disk::RealDisk::new(&root).expect("store dir");
    #[allow(clippy::disallowed_methods, reason = "a test's wall-clock seam: message timestamps clients parse")]
    let epoch_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let js =
        weir_core::server::nats::JetStreamOptions::new(std::sync::Arc::new(disk), root.display().to_string(), epoch_ns);
    weir_core::server::nats::NatsConfig { jetstream: Some(js), ..super::config() }
}

impl Target {
    /// The target for `test`, or `None` (after printing why) when it cannot run JetStream.
    pub async fn new(test: &str) -> Option<Target> {
        let t = match std::env::var("NATS_JS_SERVER_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => Target { url, local: None },
            None => {
                let dir = fresh_store_dir(test);
                let s = super::start(weir_js_config(&dir)).await;
                Target { url: s.url(), local: Some((s, dir)) }
            }
        };
        // An in-process weir without the JetStream API has nobody on `$JS.API.INFO`.
        let c = t.client().await;
        match timeout(WAIT, c.request("$JS.API.INFO", Bytes::new())).await.expect("$JS.API.INFO timed out") {
            Ok(_) => Some(t),
            Err(e) if t.is_weir() => {
                println!("SKIP {test}: weir does not answer $JS.API.INFO ({e})");
                t.stop().await;
                None
            }
            Err(e) => panic!("{}: $JS.API.INFO failed: {e}", t.url),
        }
    }

    pub fn is_weir(&self) -> bool {
        self.local.is_some()
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url).await.expect("connect")
    }

    pub async fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// A check that weir is known to fail (docs/JS-COMPAT.md): passes when `ok`; when not,
    /// fails the test on any other server but on weir only prints `bug` and returns false,
    /// so the test goes on around it (and the note disappears once weir is fixed).
    pub fn known_weir_bug(&self, test: &str, ok: bool, bug: &str) -> bool {
        if ok {
            return true;
        }
        assert!(self.is_weir(), "{test}: {bug}");
        println!("KNOWN WEIR BUG in {test}: {bug}");
        false
    }

    /// Skip the rest of a test on weir only, printing why (a feature not there yet).
    pub fn weir_lacks(&self, test: &str, what: &str) -> bool {
        if self.is_weir() {
            println!("SKIP {test} on weir: {what}");
            return true;
        }
        false
    }

    pub async fn stop(self) {
        if let Some((s, dir)) = self.local {
            s.stop().await;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
