//! `weir` started the way client test harnesses start nats-server: no subcommand,
//! nats-server's flags (one-dash long forms included), `-p -1`, a ports file, a pid file,
//! a config file in nats-server's format, and the startup lines on stderr.

#![cfg(not(madsim))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `cmd` (a `weir` command line) with plain log lines on a piped stderr; returns
/// the server (stopped when dropped) and a reader over its log.
fn start(cmd: &mut Command) -> (Server, BufReader<std::process::ChildStderr>) {
    let mut server = Server(
        cmd.env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir"),
    );
    let log = BufReader::new(server.0.stderr.take().unwrap());
    (server, log)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Read stderr lines until one contains `needle`; returns that line.
fn read_until(log: &mut impl BufRead, lines: &mut Vec<String>, needle: &str) -> String {
    loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "weir exited early; log: {lines:?}");
        lines.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    }
}

/// The INFO line of a fresh connection, as JSON.
fn info(port: u16) -> serde_json::Value {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut b = [0u8; 1024];
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed before INFO");
        seen.extend_from_slice(&b[..n]);
    }
    let line = String::from_utf8(seen).unwrap();
    c.write_all(b"CONNECT {}\r\n").unwrap();
    serde_json::from_str(line.trim_start_matches("INFO ").trim_end()).unwrap()
}

/// The whole HTTP/1.0 response to `GET path` from the monitoring URL `base`.
fn http_get(base: &str, path: &str) -> String {
    let mut http = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    http.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    body
}

fn ports_file(dir: &Path) -> serde_json::Value {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("weir-") || name.starts_with("weir_"), "{name}");
    assert!(name.ends_with(".ports"), "{name}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

#[test]
fn harness_style_start_with_random_port_ports_file_and_config() {
    let dir = temp_dir("flags");
    let ports_dir = dir.join("ports");
    std::fs::create_dir_all(&ports_dir).unwrap();
    let conf = dir.join("weir.conf");
    std::fs::write(dir.join("limits.conf"), "max_subscriptions: 7\nping_interval: \"100ms\"\n").unwrap();
    std::fs::write(
        &conf,
        "# nats-server style\nNAME = from-file\nserver_name: $NAME\ninclude limits.conf\n\
         jetstream { max_mem_store: 64MiB, max_file_store: 1GB }\nhttp_port: -1\n",
    )
    .unwrap();
    let pid_file = dir.join("weir.pid");
    let (mut server, mut log) = start(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["-a", "127.0.0.1", "-p", "-1", "-c"])
            .arg(&conf)
            .args(["-n", "from-flag", "-js", "-sd"])
            .arg(dir.join("js"))
            .arg("-DV")
            .arg("-P")
            .arg(&pid_file)
            .arg("--ports_file_dir")
            .arg(&ports_dir),
    );
    let mut lines = Vec::new();
    // JetStream's startup lines, in nats-server's words, before the client listener's.
    read_until(&mut log, &mut lines, "Starting JetStream");
    read_until(&mut log, &mut lines, "Max Memory:      64.00 MB");
    let store = read_until(&mut log, &mut lines, "Store Directory: ");
    assert!(store.contains(&format!("\"{}\"", dir.join("js").join("jetstream").display())), "{store}");
    let listening = read_until(&mut log, &mut lines, "Listening for client connections on ");
    let port: u16 = listening.trim_end().rsplit(':').next().unwrap().parse().expect("a port at the end of the line");
    assert_ne!(port, 0);
    assert!(listening.contains(&format!("Listening for client connections on 127.0.0.1:{port}")), "{listening}");
    read_until(&mut log, &mut lines, "Server is ready");

    let ports = ports_file(&ports_dir);
    assert_eq!(ports["nats"], serde_json::json!([format!("nats://127.0.0.1:{port}")]));
    let monitoring = ports["monitoring"][0].as_str().expect("monitoring URL").to_owned();
    assert!(monitoring.starts_with("http://127.0.0.1:") && !monitoring.ends_with(":0"), "{monitoring}");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), server.0.id().to_string());

    let i = info(port);
    assert_eq!(i["server_name"], "from-flag", "flags override the file");
    assert_eq!(i["version"], "2.11.0");
    assert_eq!(i["weir_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(i["jetstream"], true, "-js advertises JetStream in INFO");

    // The included file's limit is in force: /varz says so.
    let mut http = TcpStream::connect(monitoring.trim_start_matches("http://")).unwrap();
    http.write_all(b"GET /varz HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    assert!(body.contains("\"max_subscriptions\": 7"), "{body}");
    let jsz = http_get(&monitoring, "/jsz?streams=true");
    let jsz: serde_json::Value = serde_json::from_str(jsz.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(jsz["config"]["max_memory"], 64 << 20);
    assert_eq!(jsz["streams"], 0);
    assert_eq!(jsz["account_details"][0]["name"], "$G");
    assert!(http_get(&monitoring, "/metrics").contains("\nweir_jetstream_streams 0\n"));

    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "weir exited with {exit}");
    assert_eq!(std::fs::read_dir(&ports_dir).unwrap().count(), 0, "the ports file is removed on shutdown");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_config_is_refused_with_file_and_line() {
    let dir = temp_dir("badconf");
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "port: 4222\nfavourite_colour: blue\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(["serve", "-c"]).arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:1: unknown field \"favourite_colour\"", conf.display())), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits up to `secs` for the child to exit.
fn wait_exit(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    for _ in 0..secs * 50 {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// `weir` run as a one-shot command (`-t`, `-sl`): exit status, stdout, stderr.
fn weir_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Started the way the NATS Helm chart starts nats-server: its `nats.conf` is one JSON
/// map with `$SERVER_NAME` from the environment, `-t` checks it, and the preStop hook runs
/// `nats-server -sl=ldm=/var/run/nats/nats.pid`; a config reloader sends `reload`.
#[test]
fn deployment_style_json_config_config_check_and_signal_commands() {
    let dir = temp_dir("deploy");
    let conf = dir.join("nats.conf");
    let pid_file = dir.join("nats.pid");
    std::fs::write(
        &conf,
        format!(
            "{{\n  \"http_port\": -1,\n  \"lame_duck_duration\": \"2s\",\n  \"lame_duck_grace_period\": \"100ms\",\n  \
             \"pid_file\": \"{}\",\n  \"port\": -1,\n  \"server_name\": $SERVER_NAME,\n  \
             \"log_size_limit\": 100MB,\n  \"syslog\": false\n}}\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();

    let (ok, out, err) = weir_cmd(&["-t", "-c", conf_s]);
    assert!(!ok && err.contains("SERVER_NAME"), "SERVER_NAME is not set: {out} {err}");
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).args(["-t", "-c", conf_s]).env("SERVER_NAME", "nats-0").output();
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), format!("weir: configuration file {conf_s} is valid"));
    let (ok, _, err) = weir_cmd(&["-t"]);
    assert!(!ok && err.contains("must specify [-c, --config] option"), "{err}");

    let ports_dir = dir.join("ports");
    std::fs::create_dir_all(&ports_dir).unwrap();
    let (mut server, mut log) = start(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["--config", conf_s, "--ports_file_dir"])
            .arg(&ports_dir)
            .env("SERVER_NAME", "nats-0"),
    );
    let mut lines = Vec::new();
    let warn = read_until(&mut log, &mut lines, "log_size_limit");
    assert!(warn.contains("WARN") && warn.contains("is ignored"), "{warn}");
    read_until(&mut log, &mut lines, "Server is ready");
    let port = ports_file(&ports_dir)["nats"][0].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(info(port)["server_name"], "nats-0");
    // The process keeps its name across the allocator's re-exec, so tools find it by name.
    let pid = server.0.id();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim_end(), "weir");

    let pid_arg = |cmd: &str| format!("-sl={cmd}={}", pid_file.display());
    let (ok, _, err) = weir_cmd(&["-sl", "bogus=1"]);
    assert!(!ok && err.contains("unknown signal \"bogus\""), "{err}");
    let (ok, _, err) = weir_cmd(&["--signal", "ldm=notapid"]);
    assert!(!ok && err.contains("invalid pid: notapid"), "{err}");
    let (ok, _, err) = weir_cmd(&[&pid_arg("reload")]);
    assert!(ok, "{err}");
    read_until(&mut log, &mut lines, "Reloaded server configuration");
    let (ok, _, err) = weir_cmd(&[&pid_arg("ldm")]);
    assert!(ok, "{err}");
    read_until(&mut log, &mut lines, "lame duck");
    let exit = wait_exit(&mut server.0, 30).expect("the server leaves lame-duck mode by exiting");
    assert!(exit.success(), "weir exited with {exit}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--cluster nats://127.0.0.1:-1` (and `cluster { listen: "127.0.0.1:-1" }`) picks a
/// free route port, as nats-server's; the ports file lists the one bound.
#[test]
fn a_random_cluster_port_is_bound_and_listed() {
    let dir = temp_dir("randroute");
    let (server, mut log) = start(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["-p", "-1", "--cluster", "nats://127.0.0.1:-1", "--ports_file_dir"])
            .arg(&dir),
    );
    let mut lines = Vec::new();
    let line = read_until(&mut log, &mut lines, "Listening for route connections on ");
    let port: u16 = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "{line}");
    read_until(&mut log, &mut lines, "Server is ready");
    assert_eq!(ports_file(&dir)["cluster"], serde_json::json!([format!("nats://127.0.0.1:{port}")]));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
