//! A server-launching helper with the API that the async-nats crate's own integration
//! tests import as `nats_server` (upstream keeps its own as an unpublished path
//! dependency; this one is ours). `scripts/outside-async-nats` builds those tests against
//! it, so the same tests run against weir or against nats-server.
//!
//! Which server starts is chosen by the environment of the test process:
//! - `NATS_SHIM_SERVER`: `weir` or `nats-server` (default `nats-server`);
//! - `NATS_SHIM_BIN`: the binary to run (default: `weir` or `nats-server` on `PATH`);
//! - `NATS_SHIM_TMP`: where each server gets its scratch directory (store, log, pid and
//!   ports files; default: the system temp dir). `NATS_SHIM_KEEP=1` keeps it after drop;
//! - `NATS_SHIM_START_SECS`: how long to wait for a server to listen (default 20).
//!
//! Both servers are started the same way, with nats-server's flags (weir accepts them):
//! `--store_dir DIR -p PORT -l LOG -P PIDFILE --ports_file_dir DIR [-c CONFIG]`. A server
//! counts as started once it has written its ports file (`<exe>_<pid>.ports`, JSON with
//! the client URL), which both write after their listeners are bound. Configs are passed
//! unchanged; a server that refuses one (e.g. weir on a `tls {}` block) makes the call
//! panic with the server's own error output, so the test fails with the reason visible.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The server implementation under test, from `NATS_SHIM_SERVER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Weir, this repository's server.
    Weir,
    /// The reference nats-server.
    NatsServer,
}

/// The server kind the environment asks for. Panics on an unknown value, so a typo in
/// the runner does not silently test the wrong server.
pub fn kind() -> Kind {
    match std::env::var("NATS_SHIM_SERVER").as_deref() {
        Ok("weir") => Kind::Weir,
        Ok("nats-server") | Ok("") | Err(_) => Kind::NatsServer,
        Ok(other) => panic!("NATS_SHIM_SERVER={other}: expected 'weir' or 'nats-server'"),
    }
}

fn binary() -> PathBuf {
    match std::env::var_os("NATS_SHIM_BIN") {
        Some(b) if !b.is_empty() => PathBuf::from(b),
        _ => match kind() {
            Kind::Weir => "weir".into(),
            Kind::NatsServer => "nats-server".into(),
        },
    }
}

fn start_timeout() -> Duration {
    let secs = std::env::var("NATS_SHIM_START_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    Duration::from_secs(secs)
}

/// A fresh scratch directory: process id plus a per-process counter (each test runs in
/// its own process under the runner, and several servers may start in one test).
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::var_os("NATS_SHIM_TMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("nats-shim-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("ports")).expect("cannot create the server's scratch directory");
    dir
}

/// A running server, killed (and its scratch directory removed) on drop.
pub struct Server {
    child: Option<Child>,
    dir: PathBuf,
    cfg: String,
    /// Extra flags (cluster membership) kept for restarts.
    extra: Vec<String>,
    port: u16,
    tls: bool,
}

impl Server {
    fn start(cfg: &str, port: Option<&str>, extra: Vec<String>) -> Server {
        let mut s = Server { child: None, dir: scratch_dir(), cfg: cfg.to_owned(), extra, port: 0, tls: false };
        s.spawn(port.unwrap_or("-1"));
        s
    }

    /// Start the process with `-p port_arg` and wait until its ports file names the port.
    fn spawn(&mut self, port_arg: &str) {
        let ports_dir = self.dir.join("ports");
        if let Ok(entries) = fs::read_dir(&ports_dir) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("output.log"))
            .expect("cannot open the server output file");
        let mut cmd = Command::new(binary());
        cmd.arg("--store_dir")
            .arg(self.dir.join("store"))
            .arg("-p")
            .arg(port_arg)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-P")
            .arg(self.dir.join("server.pid"))
            .arg("--ports_file_dir")
            .arg(&ports_dir);
        if !self.cfg.is_empty() {
            cmd.arg("-c").arg(&self.cfg);
        }
        cmd.args(&self.extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("cannot share the output file"))
            .stderr(out);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);

        let deadline = Instant::now() + start_timeout();
        loop {
            if let Some(port) = read_ports_file(&ports_dir) {
                self.port = port;
                break;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "{:?} server exited ({status}) before listening (config {:?}):\n{}",
                    kind(),
                    self.cfg,
                    self.output_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} server did not listen within {:?} (config {:?}):\n{}",
                    kind(),
                    start_timeout(),
                    self.cfg,
                    self.output_tail()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.tls = probe_tls(self.port);
    }

    /// The last lines of the server's output and log, for panic messages.
    fn output_tail(&self) -> String {
        let mut text = String::new();
        for name in ["output.log", "server.log"] {
            if let Ok(t) = fs::read_to_string(self.dir.join(name)) {
                let lines: Vec<&str> = t.lines().collect();
                let from = lines.len().saturating_sub(20);
                text.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
            }
        }
        text
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `nats://localhost:PORT`, or `tls://...` when the server requires TLS (INFO
    /// `tls_required`, or no INFO at all because it expects the TLS handshake first). The
    /// host is `localhost` because the tests' certificates name it (and the tests that want
    /// an IP address build `tls://127.0.0.1:{client_port}` themselves).
    pub fn client_url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://localhost:{}", self.port)
    }

    /// The client port the server listens on (the real one when started with `-p -1`).
    pub fn client_port(&self) -> u16 {
        self.port
    }

    /// [`Server::client_url`] with `user:pass@` credentials.
    pub fn client_url_with(&self, user: &str, pass: &str) -> String {
        self.client_url().replacen("://", &format!("://{user}:{pass}@"), 1)
    }

    /// [`Server::client_url`] with a `token@` credential.
    pub fn client_url_with_token(&self, token: &str) -> String {
        self.client_url().replacen("://", &format!("://{token}@"), 1)
    }

    /// The server's process id, from its pid file.
    pub fn client_pid(&self) -> usize {
        fs::read_to_string(self.dir.join("server.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .expect("server pid file missing or unreadable")
    }

    /// Kill the server (as a crash would) and start it again on the same port, with the same
    /// config and store directory, so clients reconnect to the same URL and JetStream data
    /// written to file storage is recovered.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        self.spawn(&port);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("NATS_SHIM_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The client port in a ports file (`{"nats":["nats://HOST:PORT", ...], ...}`), once one
/// has been written whole.
fn read_ports_file(dir: &Path) -> Option<u16> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        if e.path().extension().is_some_and(|x| x == "ports") {
            let text = fs::read_to_string(e.path()).ok()?;
            let list = text.split("\"nats\"").nth(1)?;
            let url = list.split('"').nth(1)?;
            return url.rsplit(':').next()?.parse().ok();
        }
    }
    None
}

/// Whether the server on `port` requires TLS: its INFO says `"tls_required":true`, or it
/// sends nothing within a second (TLS handshake first).
fn probe_tls(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(n) if n > 0 => line.replace(' ', "").contains("\"tls_required\":true"),
        _ => true,
    }
}

/// Start a server with the config file `cfg` (a path relative to the test's working
/// directory, or `""` for none) on a random port.
pub fn run_server(cfg: &str) -> Server {
    run_server_with_port(cfg, None)
}

/// Start a server with `cfg` on `port` (a decimal string as the `-p` flag takes it), or on a
/// random port when `None`.
pub fn run_server_with_port(cfg: &str, port: Option<&str>) -> Server {
    Server::start(cfg, port, Vec::new())
}

/// Start a server without a config file on a random port.
pub fn run_basic_server() -> Server {
    run_server("")
}

/// Put the server into lame-duck mode: SIGUSR2, the signal nats-server's `--signal ldm`
/// sends (sent directly, so no nats-server binary is needed to signal weir).
pub fn set_lame_duck_mode(s: &Server) {
    let status = Command::new("kill").arg("-USR2").arg(s.client_pid().to_string()).status().expect("cannot run kill");
    assert!(status.success(), "kill -USR2 failed: {status}");
}

/// Three servers routed to each other (full mesh), each with `cfg`.
pub struct Cluster {
    /// The nodes, in start order.
    pub servers: Vec<Server>,
}

impl Cluster {
    /// The first node's client URL.
    pub fn client_url(&self) -> String {
        self.servers[0].client_url()
    }
}

/// A free loopback port, from the OS (released before the server binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("cannot find a free port")
}

/// Start a three-node cluster with `cfg` on every node: route ports picked free, every node
/// routes to the other two, server names `n1`..`n3`, one cluster name per cluster.
pub fn run_cluster(cfg: &str) -> Cluster {
    let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let name = format!("shim-{}-{}", std::process::id(), route_ports[0]);
    let servers = (0..3)
        .map(|i| {
            let routes: Vec<String> = route_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect();
            let extra = vec![
                "-n".to_owned(),
                format!("n{}", i + 1),
                "--cluster_name".to_owned(),
                name.clone(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{}", route_ports[i]),
                "--routes".to_owned(),
                routes.join(","),
            ];
            Server::start(cfg, None, extra)
        })
        .collect();
    Cluster { servers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file_port_is_read() {
        let dir = scratch_dir().join("ports");
        assert_eq!(read_ports_file(&dir), None);
        fs::write(
            dir.join("x_1.ports"),
            r#"{"nats":["nats://127.0.0.1:40123","nats://10.0.0.1:40123"],"monitoring":["http://127.0.0.1:8222"]}"#,
        )
        .unwrap();
        assert_eq!(read_ports_file(&dir), Some(40123));
    }

    #[test]
    fn credentials_go_after_the_scheme() {
        let s =
            Server { child: None, dir: scratch_dir(), cfg: String::new(), extra: Vec::new(), port: 4222, tls: true };
        assert_eq!(s.client_url_with("a", "b"), "tls://a:b@localhost:4222");
        assert_eq!(s.client_url_with_token("t"), "tls://t@localhost:4222");
    }
}
