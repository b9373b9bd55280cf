//! TLS for clients and routes: async-nats and raw TCP against in-process weir servers
//! (real tokio, loopback), with throwaway certificates made by rcgen for each run.
//!
//! The same cases run against other servers (scripts/compat-nats-server starts
//! nats-servers for them) when these are set:
//! - `NATS_TLS_CERTS`: a directory with `ca.pem`, `server-cert.pem`, `server-key.pem`,
//!   `client-cert.pem`, `client-key.pem` (the server certificate names `localhost` and
//!   `127.0.0.1`; the client certificate is signed by the same CA);
//! - `NATS_TLS_SERVER_URL`: TLS required, client certificates not checked;
//! - `NATS_TLS_VERIFY_SERVER_URL`: TLS with `verify: true` and `ca_file`;
//! - `NATS_TLS_FIRST_SERVER_URL`: TLS with `handshake_first: true`;
//! - `NATS_TLS_CLUSTER_URLS`: the client URLs of two servers joined by a TLS route.
//!
//! Tests about weir's own start-up (bad files, flags) run only against weir.

#![cfg(not(madsim))]

mod common;

use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_core::server::nats::{self, ClusterConfig, NatsConfig, NatsServer, RouteTarget};
use weir_core::server::tls::TlsConfig;

const WAIT: Duration = Duration::from_secs(10);
const ERR_TLS_REQUIRED: &str = "-ERR 'Secure Connection - TLS Required'\r\n";

/// Write a CA, a server certificate (`localhost`, `127.0.0.1`) and a client certificate
/// into `dir`, under the names the module doc lists.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "weir test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: &[&str], usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = usages;
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}-cert.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    };
    // Routes use the server certificate both ways, so it serves both purposes.
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    leaf("server", &["localhost", "127.0.0.1"], vec![ServerAuth, ClientAuth]);
    leaf("client", &["client.weir.test"], vec![ClientAuth]);
}

/// The certificate directory: `NATS_TLS_CERTS`, or one made once for this process.
fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var("NATS_TLS_CERTS").ok().filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-certs-{}", std::process::id()));
            make_certs(&d);
            d
        }
    })
}

fn cert(name: &str) -> PathBuf {
    certs().join(name)
}

/// Weir's TLS settings with the test certificates.
fn server_tls() -> TlsConfig {
    TlsConfig {
        cert_file: cert("server-cert.pem"),
        key_file: cert("server-key.pem"),
        ca_file: Some(cert("ca.pem")),
        ..TlsConfig::default()
    }
}

fn external(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|u| !u.is_empty())
}

fn addr_of(url: &str) -> SocketAddr {
    let hostport = url.split("://").last().unwrap();
    hostport.to_socket_addrs().unwrap().next().unwrap()
}

/// A TLS server: the external one named by `var`, or a fresh in-process weir with `tls`.
struct Target {
    url: String,
    local: Option<common::TestServer>,
}

impl Target {
    async fn new(var: &str, tls: TlsConfig) -> Target {
        match external(var) {
            Some(url) => Target { url, local: None },
            None => {
                let mut cfg = common::config();
                cfg.tls = Some(tls);
                let s = common::start(cfg).await;
                Target { url: s.url(), local: Some(s) }
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        addr_of(&self.url)
    }

    fn is_weir(&self) -> bool {
        self.local.is_some()
    }

    async fn stop(self) {
        if let Some(s) = self.local {
            s.stop().await;
        }
    }
}

/// Options trusting the test CA.
fn trusting() -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new().add_root_certificates(cert("ca.pem")).require_tls(true)
}

/// Options trusting the test CA and presenting the client certificate.
fn with_client_cert() -> async_nats::ConnectOptions {
    trusting().add_client_certificate(cert("client-cert.pem"), cert("client-key.pem"))
}

/// Connect with `opts`, publish and receive one message.
async fn round_trip(url: &str, opts: async_nats::ConnectOptions, test: &str) {
    let c = tokio::time::timeout(WAIT, opts.connect(url)).await.expect("connect timed out").expect("connect");
    let subject = common::prefix(test);
    let mut sub = c.subscribe(subject.clone()).await.unwrap();
    c.publish(subject, "over tls".into()).await.unwrap();
    let m = tokio::time::timeout(WAIT, sub.next()).await.expect("no message").unwrap();
    assert_eq!(&m.payload[..], b"over tls");
}

/// Read the INFO line byte by byte (so nothing after it is consumed), as JSON.
async fn read_info(s: &mut TcpStream) -> serde_json::Value {
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before INFO; got {:?}", String::from_utf8_lossy(&seen));
        seen.push(b[0]);
    }
    let line = String::from_utf8(seen).unwrap();
    assert!(line.starts_with("INFO "), "{line}");
    serde_json::from_str(line.trim_start_matches("INFO ").trim_end()).unwrap()
}

/// Everything the server sends until it closes (or resets) the connection.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut rest = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut b)).await.expect("server did not close the connection") {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&rest).into_owned()
}

#[tokio::test]
async fn tls_required_is_in_info_and_async_nats_round_trips() {
    let t = Target::new("NATS_TLS_SERVER_URL", server_tls()).await;
    let mut raw = TcpStream::connect(t.addr()).await.unwrap();
    let info = read_info(&mut raw).await;
    assert_eq!(info["tls_required"], true, "{info}");
    assert_ne!(info["tls_verify"], true, "{info}");
    assert_ne!(info["tls_available"], true, "{info}");
    drop(raw);
    round_trip(&t.url, trusting(), "tls.plain").await;
    // A client certificate is accepted (and not needed) when verify is off.
    round_trip(&t.url, with_client_cert(), "tls.plain.cert").await;
    t.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_upgrade_is_refused() {
    let t = Target::new("NATS_TLS_SERVER_URL", server_tls()).await;
    let mut raw = TcpStream::connect(t.addr()).await.unwrap();
    read_info(&mut raw).await;
    raw.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await.unwrap();
    let rest = read_to_close(&mut raw).await;
    assert!(!rest.contains("PONG"), "a plaintext client was served: {rest:?}");
    if t.is_weir() {
        assert_eq!(rest, ERR_TLS_REQUIRED);
    } else {
        // nats-server closes at once (its TLS library rejects the plaintext record).
        assert!(rest.is_empty() || rest == ERR_TLS_REQUIRED, "{rest:?}");
    }
    // async-nats upgrades on `tls_required`, and without the CA it cannot.
    let untrusting = async_nats::ConnectOptions::new().connect(format!("nats://{}", t.addr())).await;
    assert!(untrusting.is_err(), "connected without trusting the server's CA");
    t.stop().await;
}

#[tokio::test]
async fn verify_requires_a_client_certificate_from_the_ca() {
    let t = Target::new("NATS_TLS_VERIFY_SERVER_URL", TlsConfig { verify: true, ..server_tls() }).await;
    let mut raw = TcpStream::connect(t.addr()).await.unwrap();
    let info = read_info(&mut raw).await;
    assert_eq!((info["tls_required"].clone(), info["tls_verify"].clone()), (true.into(), true.into()), "{info}");
    drop(raw);
    round_trip(&t.url, with_client_cert(), "tls.verify").await;
    let without = tokio::time::timeout(WAIT, trusting().connect(&t.url)).await.expect("connect hung");
    assert!(without.is_err(), "connected without a client certificate");
    t.stop().await;
}

#[tokio::test]
async fn handshake_first_sends_info_inside_tls() {
    let tls = TlsConfig { handshake_first: true, timeout: Duration::from_millis(500), ..server_tls() };
    let t = Target::new("NATS_TLS_FIRST_SERVER_URL", tls).await;
    round_trip(&t.url, trusting().tls_first(), "tls.first").await;
    // A client waiting for a plaintext INFO gets none; it is refused at the TLS timeout.
    let mut raw = TcpStream::connect(t.addr()).await.unwrap();
    let rest = read_to_close(&mut raw).await;
    assert!(!rest.starts_with("INFO"), "INFO before the handshake: {rest:?}");
    if t.is_weir() {
        assert_eq!(rest, ERR_TLS_REQUIRED);
    }
    t.stop().await;
}

#[tokio::test]
async fn handshake_first_with_a_fallback_delay_serves_both_kinds_of_client() {
    // nats-server's `handshake_first: 300ms` (async-nats's `tls_auto` test): a client that
    // starts TLS at once gets INFO inside TLS; one that waits for INFO gets it in
    // plaintext after the delay, then upgrades as usual.
    let tls = TlsConfig { handshake_first: true, first_fallback: Some(Duration::from_millis(100)), ..server_tls() };
    let t = Target::new("NATS_TLS_AUTO_SERVER_URL", tls).await;
    round_trip(&t.url, trusting().tls_first(), "tls.auto.first").await;
    round_trip(&t.url, trusting(), "tls.auto.info").await;
    let mut raw = TcpStream::connect(t.addr()).await.unwrap();
    let mut head = [0u8; 5];
    tokio::time::timeout(WAIT, raw.read_exact(&mut head)).await.expect("no INFO after the delay").unwrap();
    assert_eq!(&head, b"INFO ");
    t.stop().await;
}

/// Two weir servers joined by a TLS route.
struct Pair {
    urls: Vec<String>,
    routes: Vec<SocketAddr>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn tls_pair() -> Pair {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ra, rb) = (free(), free());
    let mut pair = Pair { urls: Vec::new(), routes: vec![ra, rb], stops: Vec::new() };
    for (seed, listen, peer) in [(1, ra, rb), (2, rb, ra)] {
        let cfg = NatsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed,
            cluster: Some(ClusterConfig {
                listen,
                routes: vec![RouteTarget::new(peer.to_string())],
                ping_interval: Duration::from_millis(500),
                tls: Some(server_tls()),
                ..ClusterConfig::default()
            }),
            ..NatsConfig::default()
        };
        let server = NatsServer::bind(cfg, nats::cluster_ledger(1 << 30, 1 << 28)).await.expect("bind");
        pair.urls.push(format!("nats://{}", server.local_addr()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        pair.stops.push(tx);
    }
    pair
}

#[tokio::test]
async fn a_cluster_routes_messages_over_tls() {
    let (urls, _stops) = match external("NATS_TLS_CLUSTER_URLS") {
        Some(list) => (list.split(',').map(str::to_owned).collect::<Vec<_>>(), Vec::new()),
        None => {
            let p = tls_pair().await;
            // The route port speaks TLS: plaintext gets a TLS alert record (0x15) back.
            let mut raw = TcpStream::connect(p.routes[0]).await.unwrap();
            raw.write_all(b"plaintext hello\r\n").await.unwrap();
            let answer = read_to_close(&mut raw).await;
            assert_eq!(answer.as_bytes().first(), Some(&0x15), "not a TLS alert: {answer:?}");
            (p.urls, p.stops)
        }
    };
    assert_eq!(urls.len(), 2, "{urls:?}");
    // Clients of the cluster itself use plain TCP (client TLS is not configured here).
    let a = async_nats::connect(&urls[0]).await.expect("connect A");
    let b = async_nats::connect(&urls[1]).await.expect("connect B");
    let subject = common::prefix("tls.route");
    let mut sub = b.subscribe(subject.clone()).await.unwrap();
    b.flush().await.unwrap();
    // Publish until the subscription's interest has crossed the route and a message arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    let got = loop {
        assert!(tokio::time::Instant::now() < deadline, "no message crossed the TLS route");
        a.publish(subject.clone(), "across".into()).await.unwrap();
        a.flush().await.unwrap();
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            break m.expect("subscription ended");
        }
    };
    assert_eq!(&got.payload[..], b"across");
}

#[tokio::test]
async fn unusable_files_fail_at_start_with_the_file_named() {
    if external("NATS_TLS_SERVER_URL").is_some() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let bind = |tls: TlsConfig| async move {
        let cfg = NatsConfig { tls: Some(tls), ..common::config() };
        match NatsServer::bind(cfg, nats::ledger(1 << 20)).await {
            Ok(_) => panic!("bound with bad TLS files"),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                e.to_string()
            }
        }
    };
    let missing = dir.join("missing.pem");
    let e = bind(TlsConfig { cert_file: missing.clone(), ..server_tls() }).await;
    assert!(e.contains(&format!("cannot read cert_file '{}'", missing.display())), "{e}");
    let e = bind(TlsConfig { key_file: missing.clone(), ..server_tls() }).await;
    assert!(e.contains(&format!("cannot read key_file '{}'", missing.display())), "{e}");
    let e = bind(TlsConfig { cert_file: garbage.clone(), ..server_tls() }).await;
    assert!(e.contains(&format!("cert_file '{}': no certificate", garbage.display())), "{e}");
    let e = bind(TlsConfig { key_file: garbage.clone(), ..server_tls() }).await;
    assert!(e.contains(&format!("key_file '{}': no private key", garbage.display())), "{e}");
    let e = bind(TlsConfig { ca_file: Some(garbage.clone()), verify: true, ..server_tls() }).await;
    assert!(e.contains(&format!("ca_file '{}': no certificate", garbage.display())), "{e}");
    // The client's key with the server's certificate: they do not match.
    let e = bind(TlsConfig { key_file: cert("client-key.pem"), ..server_tls() }).await;
    assert!(e.contains("cert_file and key_file"), "{e}");
    let e = bind(TlsConfig { ca_file: None, verify: true, ..server_tls() }).await;
    assert!(e.contains("'verify' needs 'ca_file'"), "{e}");
    // Routes always verify, so they need the CA.
    let cluster = ClusterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig { ca_file: None, ..server_tls() }),
        ..ClusterConfig::default()
    };
    let cfg = NatsConfig { cluster: Some(cluster), ..common::config() };
    let e =
        NatsServer::bind(cfg, nats::cluster_ledger(1 << 20, 1 << 20)).await.err().expect("bound without a route CA");
    assert_eq!(
        e.to_string(),
        "cluster tls: 'ca_file' is required: routes verify each other's certificates, as nats-server's do"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_binary_refuses_bad_tls_flags_with_a_clear_error() {
    if external("NATS_TLS_SERVER_URL").is_some() {
        return;
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["-p", "-1", "--tls"]);
    assert!(err.contains("TLS Server certificate must be present and valid"), "{err}");
    let err = run(&["-p", "-1", "--tlscert", "/nonexistent/cert.pem"]);
    assert!(err.contains("TLS Server private key must be present and valid"), "{err}");
    let err = run(&["-p", "-1", "--tlscert", "/nonexistent/cert.pem", "--tlskey", "/nonexistent/key.pem"]);
    assert!(err.contains("cannot read cert_file '/nonexistent/cert.pem'"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A weir process, killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the weir binary on a random loopback port with `args`; wait (polling its log
/// with a deadline) for "Server is ready" and return it with its client URL and log.
async fn spawn_weir(name: &str, args: &[&str]) -> (Process, String, String) {
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}-{}.log", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn weir");
    let mut p = Process(child);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Server is ready") {
            let line = text.lines().find(|l| l.contains("Listening for client connections on ")).unwrap();
            let port = line.trim_end().rsplit(':').next().unwrap().to_owned();
            let _ = std::fs::remove_file(&log);
            return (p, format!("nats://127.0.0.1:{port}"), text);
        }
        if let Ok(Some(status)) = p.0.try_wait() {
            panic!("weir {args:?} exited with {status}: {text}");
        }
        assert!(tokio::time::Instant::now() < deadline, "weir {args:?} did not start: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn info_of(url: &str) -> serde_json::Value {
    let mut raw = TcpStream::connect(addr_of(url)).await.unwrap();
    read_info(&mut raw).await
}

#[tokio::test]
async fn the_binary_serves_tls_from_flags_and_from_a_config_file() {
    if external("NATS_TLS_SERVER_URL").is_some() {
        return;
    }
    let path = |n: &str| cert(n).to_str().unwrap().to_owned();
    let (p, url, log) =
        spawn_weir("flags", &["--tls", "--tlscert", &path("server-cert.pem"), "--tlskey", &path("server-key.pem")])
            .await;
    assert!(log.contains("TLS required for client connections"), "{log}");
    assert_eq!(info_of(&url).await["tls_required"], true);
    round_trip(&url, trusting(), "tls.bin.flags").await;
    drop(p);

    let conf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}.conf", std::process::id()));
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: \"1s\"\n}}\n",
            path("server-cert.pem"),
            path("server-key.pem"),
            path("ca.pem")
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_owned();
    let (p, url, _) = spawn_weir("conf", &["-c", &conf]).await;
    let info = info_of(&url).await;
    assert_eq!((info["tls_required"].clone(), info["tls_verify"].clone()), (true.into(), true.into()), "{info}");
    round_trip(&url, with_client_cert(), "tls.bin.conf").await;
    drop(p);

    // `--tls=false` turns the file's TLS off, as nats-server's `-tls=false`.
    let (p, url, _) = spawn_weir("off", &["-c", &conf, "-tls=false"]).await;
    assert_ne!(info_of(&url).await["tls_required"], true);
    round_trip(&url, async_nats::ConnectOptions::new(), "tls.bin.off").await;
    drop(p);
    std::fs::remove_file(&conf).unwrap();
}

/// A reload re-reads the certificate files, as nats-server's SIGHUP does: after the files
/// were replaced by a certificate from another CA (a rotation), new clients get the new
/// one; a reload whose files do not load is refused and the old certificate stays.
#[tokio::test]
async fn a_reload_serves_a_rotated_certificate() {
    if external("NATS_TLS_SERVER_URL").is_some() {
        return; // in-process only: it rewrites the server's files and reloads it
    }
    let (old_ca, new_ca) = (
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-rotate-old-{}", std::process::id())),
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-rotate-new-{}", std::process::id())),
    );
    make_certs(&old_ca);
    make_certs(&new_ca);
    let live = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-rotate-live-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let install = |from: &Path| {
        for f in ["server-cert.pem", "server-key.pem"] {
            std::fs::copy(from.join(f), live.join(f)).unwrap();
        }
    };
    install(&old_ca);
    let mut cfg = common::config();
    cfg.tls = Some(TlsConfig {
        cert_file: live.join("server-cert.pem"),
        key_file: live.join("server-key.pem"),
        ..TlsConfig::default()
    });
    let server = NatsServer::bind(cfg.clone(), nats::ledger_for(&cfg)).await.unwrap();
    let (url, reloader) = (format!("nats://{}", server.local_addr()), server.reloader());
    tokio::spawn(server.run(std::future::pending()));
    let trusting =
        |ca: &Path| async_nats::ConnectOptions::new().add_root_certificates(ca.join("ca.pem")).require_tls(true);
    let connects = |opts: async_nats::ConnectOptions| {
        let url = url.clone();
        async move { matches!(tokio::time::timeout(WAIT, opts.connect(url)).await, Ok(Ok(_))) }
    };
    round_trip(&url, trusting(&old_ca), "tls.rotate.before").await;
    assert!(!connects(trusting(&new_ca)).await, "the new CA does not vouch for the old certificate");

    install(&new_ca);
    assert_eq!(reloader.reload(cfg.clone()), Ok(vec!["tls"]), "same settings, files re-read");
    round_trip(&url, trusting(&new_ca), "tls.rotate.after").await;
    assert!(!connects(trusting(&old_ca)).await, "the old certificate is no longer served");

    std::fs::write(live.join("server-key.pem"), "not a key").unwrap();
    let err = reloader.reload(cfg.clone()).unwrap_err();
    assert!(err.starts_with("tls: ") && err.contains("server-key.pem"), "{err}");
    round_trip(&url, trusting(&new_ca), "tls.rotate.kept").await;
    for d in [old_ca, new_ca, live] {
        let _ = std::fs::remove_dir_all(d);
    }
}
