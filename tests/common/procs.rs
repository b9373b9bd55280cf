//! Server processes on loopback for the process-level suites (tests/discovery.rs,
//! tests/cluster_process.rs, tests/operator.rs): free ports, children killed on drop,
//! polling with a deadline, monitoring GETs.
//!
//! [`server`] is `weir serve`, or the binary named by `PROCESS_SERVER_BIN` (the older
//! name `DISCOVERY_SERVER_BIN` works too), so that the same tests run against
//! nats-server: `PROCESS_SERVER_BIN=$(scripts/nats-server-bin) cargo test --test operator`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a polled condition may take.
pub const PROC_WAIT: Duration = Duration::from_secs(30);

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills every child on drop (pass or fail).
pub struct Procs(pub Vec<Option<Child>>);

impl Procs {
    /// Kill child `i` (if still there) and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.0[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Child `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.0[i].as_ref().expect("child running").id()
    }

    /// Send child `i` a signal by name (`HUP`, `USR1`, `USR2`, ...).
    pub fn signal(&self, i: usize, sig: &str) {
        let st = Command::new("kill").args([&format!("-{sig}"), &self.pid(i).to_string()]).status().expect("run kill");
        assert!(st.success(), "kill -{sig}");
    }

    /// Whether child `i` has exited.
    pub fn exited(&mut self, i: usize) -> bool {
        self.0[i].as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for i in 0..self.0.len() {
            self.kill(i);
        }
    }
}

/// The server binary named by `PROCESS_SERVER_BIN` (or `DISCOVERY_SERVER_BIN`), if the
/// tests run against another server.
pub fn external_bin() -> Option<String> {
    ["PROCESS_SERVER_BIN", "DISCOVERY_SERVER_BIN"].iter().find_map(|v| std::env::var(v).ok().filter(|b| !b.is_empty()))
}

/// A server command taking nats-server's flags: `weir serve`, or [`external_bin`].
pub fn server() -> Command {
    match external_bin() {
        Some(bin) => Command::new(bin),
        None => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
            c.arg("serve");
            c
        }
    }
}

/// Start `cmd` with its output discarded.
pub fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn the server")
}

/// Poll `cond` every 20 ms until it holds; panic with `what` after [`PROC_WAIT`].
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + PROC_WAIT;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether something accepts TCP connections on loopback `port`.
pub async fn accepts(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

/// GET `path` from the monitoring port `http`: the body; `None` while the server is not answering.
pub async fn get(http: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", http)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8(buf).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

/// GET `path` from the monitoring port `http` as JSON; `None` while the server is not answering.
pub async fn get_json(http: u16, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&get(http, path).await?).ok()
}

/// One clustered server's loopback ports.
pub struct Ports {
    /// Client connections.
    pub client: u16,
    /// Routes.
    pub cluster: u16,
    /// Monitoring.
    pub http: u16,
}

/// Start `n` `weir serve` processes routed to each other in cluster `name` (servers
/// `n1`, `n2`, ...), each with the `extra` flags.
pub fn cluster(n: usize, name: &str, extra: &[&str]) -> (Vec<Ports>, Procs) {
    let ports: Vec<Ports> =
        (0..n).map(|_| Ports { client: free_port(), cluster: free_port(), http: free_port() }).collect();
    let mut procs = Procs(Vec::new());
    for (i, p) in ports.iter().enumerate() {
        let routes: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, q)| format!("nats-route://127.0.0.1:{}", q.cluster))
            .collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["serve", "-p", &p.client.to_string(), "-m", &p.http.to_string()])
            .args(["--cluster", &format!("127.0.0.1:{}", p.cluster), "--routes", &routes.join(",")])
            .args(["--server_name", &format!("n{}", i + 1), "--cluster_name", name])
            .args(extra)
            .env("RUST_LOG", "warn");
        procs.0.push(Some(spawn(cmd)));
    }
    (ports, procs)
}

/// The INFO a fresh connection to loopback `port` gets, as JSON.
pub async fn info(port: u16) -> serde_json::Value {
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect for INFO");
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut b = [0u8; 4096];
        let n = c.read(&mut b).await.unwrap();
        assert!(n > 0, "closed before INFO");
        seen.extend_from_slice(&b[..n]);
    }
    let line = String::from_utf8(seen).unwrap();
    serde_json::from_str(line.trim_start_matches("INFO ").trim_end()).unwrap()
}
