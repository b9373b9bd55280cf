//! `weir serve`: merge the config file and flags into a [`NatsConfig`], bind, announce
//! the listeners as nats-server does (log lines, ports file, pid file) and serve until a
//! signal.
//!
//! Signals, as nats-server's: SIGINT/SIGTERM stop (draining), SIGUSR2 enters lame-duck
//! mode, SIGHUP reloads the config file ([`reload`]; what may change is in
//! `weir_core::server::nats::reload`), SIGUSR1 reopens the log file. SIGHUP and SIGUSR1
//! never stop the server, whatever the reload or reopen meets.
//!
//! Startup lines (on stderr, or the `-l` file) that harnesses wait for, in nats-server's words:
//! `Listening for client connections on HOST:PORT` (the real port when `-p -1`), then
//! `Server is ready`.

use crate::cli::ServeArgs;
use crate::config::{self, FileConfig};
use crate::{logging, monitor, shutdown};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_core::server::nats::{self, Auth, NatsConfig, NatsServer};
use weir_core::server::tls::TlsConfig;

/// Flags and file merged (flags win), with what the shell itself needs besides [`NatsConfig`].
pub struct Settings {
    /// The server's configuration.
    pub nats: NatsConfig,
    /// Client host as configured (printed in the startup line).
    pub host: String,
    /// Monitoring address, if any.
    pub http: Option<SocketAddr>,
    /// PID file.
    pub pid_file: Option<PathBuf>,
    /// Ports file directory.
    pub ports_file_dir: Option<PathBuf>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// Log filter when `RUST_LOG` is not set.
    pub log_level: &'static str,
    /// Config keys accepted without effect, logged as warnings at start.
    pub warnings: Vec<String>,
}

/// The address to listen on for `host`: an IP address, or a host name resolved once at
/// start (`listen: localhost:4222`, as nats-server takes it), its first IPv4 address
/// preferred.
fn resolve_host(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let ips: Vec<IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
        .map_err(|e| format!("--addr '{host}': not an IP address, and it does not resolve: {e}"))?
        .map(|a| a.ip())
        .collect();
    ips.iter()
        .find(|ip| ip.is_ipv4())
        .or(ips.first())
        .copied()
        .ok_or_else(|| format!("--addr '{host}': resolves to no address"))
}

/// Read the config file (if any) and merge the flags over it.
pub async fn settings(args: ServeArgs) -> Result<Settings, String> {
    let file = match &args.config {
        Some(path) => config::load(path).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    let tls = tls_settings(&args, file.tls.clone())?;
    let host = args.addr.or(file.host).unwrap_or_else(|| "127.0.0.1".to_owned());
    let ip = resolve_host(&host)?;
    let port = listen_port("port", args.port.or(file.port).unwrap_or(4222))?;
    let mut cfg = NatsConfig { listen: SocketAddr::new(ip, port), seed: seed_from_os(), ..NatsConfig::default() };
    if let Some(n) = args.server_name.or(file.server_name) {
        cfg.server_name = n;
    }
    if let Some(n) = args.max_payload.or(file.max_payload) {
        if n == 0 || n > weir_core::proto::MAX_PAYLOAD_LIMIT as u64 {
            return Err(format!("max_payload {n} must be between 1 and 64MB"));
        }
        cfg.max_payload = n as usize;
    }
    if let Some(n) = args.max_pending.or(file.max_pending) {
        if n < cfg.max_payload as u64 {
            return Err(format!("max_pending {n} must be at least max_payload {}", cfg.max_payload));
        }
        cfg.max_pending = n;
    }
    if let Some(n) = file.max_control_line {
        if !(32..=weir_core::proto::MAX_CONTROL_LINE_LIMIT as u64).contains(&n) {
            return Err(format!("max_control_line {n} must be between 32 and 1MB"));
        }
        cfg.max_control_line = n as usize;
    }
    if let Some(n) = args.max_connections.or(file.max_connections) {
        cfg.max_connections = n;
    }
    if let Some(n) = args.max_subscriptions.or(file.max_subscriptions) {
        cfg.max_subscriptions = n;
    }
    cfg.client_advertise = args.client_advertise.clone().or(file.client_advertise.clone());
    if let Some(d) = file.lame_duck_duration {
        cfg.lame_duck_duration = d;
    }
    if let Some(d) = file.lame_duck_grace_period {
        cfg.lame_duck_grace_period = d;
    }
    if let Some(d) = args.ping_interval.or(file.ping_interval) {
        if d.is_zero() {
            return Err("ping_interval must be above zero".into());
        }
        cfg.ping_interval = d;
    }
    if let Some(n) = file.ping_max {
        cfg.ping_max = n;
    }
    if let Some(d) = file.write_deadline {
        if d.is_zero() {
            return Err("write_deadline must be above zero".into());
        }
        cfg.write_deadline = d;
    }
    if let Some(d) = file.auth_timeout {
        cfg.auth_timeout = d;
    } else if let Some(t) = &tls {
        // nats-server's default with TLS: the TLS timeout plus a second.
        cfg.auth_timeout = t.timeout + Duration::from_secs(1);
    }
    cfg.tls = tls;
    if let Some(v) = args.nats_version.or(file.nats_version) {
        if v.split('.').count() != 3 || !v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("nats_version '{v}' is not MAJOR.MINOR.PATCH"));
        }
        cfg.nats_version = v;
    }
    cfg.auth = auth(args.auth.or(file.token), args.user.or(file.user), args.pass.or(file.password))?;
    if !file.users.is_empty() {
        if cfg.auth != Auth::None {
            return Err("use either a users list or a token or single user, not both".into());
        }
        cfg.auth = Auth::Users(std::sync::Arc::new(nats::auth::Users {
            users: file.users.clone(),
            no_auth_user: file.no_auth_user.clone(),
        }));
    }
    if let Some(u) = &file.no_auth_user
        && !matches!(&cfg.auth, Auth::Users(users) if users.users.iter().any(|x| x.name() == u))
    {
        return Err(format!(
            "no_auth_user: \"{u}\" not present as user or nkey in authorization block or account configuration"
        ));
    }
    if let Some(op) = &file.operator {
        if cfg.auth != Auth::None {
            return Err("operator mode (operator: <JWT>) cannot be combined with other authorization".into());
        }
        let trust = nats::jwt::Trust::new(op, &file.resolver_preload)?;
        cfg.auth = Auth::Operator(std::sync::Arc::new(trust));
    }
    cfg.accounts = file.accounts.clone();
    cfg.account_max_outbound = file.account_max_outbound;
    if let Some(n) = file.account_max_subs_memory {
        cfg.account_max_subs_memory = n;
    }
    let routes: Vec<String> = if args.routes.is_empty() { file.routes.clone() } else { args.routes.clone() };
    if let Some(listen) = args.cluster.or(file.cluster) {
        let listen = config::strip_scheme(&listen);
        // As nats-server: port -1 is a random free port (`--cluster nats://127.0.0.1:-1`).
        let listen = listen.strip_suffix(":-1").map_or_else(|| listen.to_owned(), |h| format!("{h}:0"));
        let listen = listen.as_str();
        let mut cc = nats::ClusterConfig {
            listen: tokio::net::lookup_host(listen)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("--cluster '{listen}' is not a host:port"))?,
            ..nats::ClusterConfig::default()
        };
        for r in routes.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            cc.routes.push(nats::RouteTarget::new(config::strip_scheme(r)));
        }
        if let Some(name) = args.cluster_name.or(file.cluster_name) {
            cc.name = name;
        }
        cc.tls = file.cluster_tls.clone();
        cc.no_advertise = args.no_advertise.or(file.no_advertise).unwrap_or(false);
        // A route queue holds at least two of the largest messages this server accepts
        // (issue 9, fault 3), so a large `max_payload` also crosses routes.
        let largest = weir_core::server::route::largest_msg_frame_cost(cfg.max_payload, cfg.max_control_line);
        cc.max_pending = cc.max_pending.max(2 * largest);
        cfg.cluster = Some(cc);
    } else if !routes.is_empty() {
        return Err("--routes needs --cluster (the route listen address)".into());
    }
    let http = match args.http_port.or(file.http_port) {
        Some(p) => {
            let hip: IpAddr = match &file.http_host {
                Some(h) => h.parse().map_err(|e| format!("http host '{h}': {e}"))?,
                None => ip,
            };
            Some(SocketAddr::new(hip, listen_port("http_port", p)?))
        }
        None => None,
    };
    let mut jetstream = file.jetstream;
    jetstream.enabled |= args.jetstream;
    if let Some(d) = args.store_dir {
        jetstream.store_dir = Some(d);
    }
    if jetstream.enabled {
        cfg.jetstream = Some(jetstream_options(&jetstream)?);
    }
    let (debug, trace) = (args.debug > 0 || file.debug == Some(true), args.trace > 0 || file.trace == Some(true));
    Ok(Settings {
        nats: cfg,
        host,
        http,
        pid_file: args.pid.or(file.pid_file),
        ports_file_dir: args.ports_file_dir.or(file.ports_file_dir),
        log_file: args.log.or(file.log_file),
        log_level: if trace {
            "trace"
        } else if debug {
            "debug"
        } else {
            "info"
        },
        warnings: file.ignored,
    })
}

/// Where JetStream keeps its data when only `-js` is given: `./weir-data` under the
/// working directory (streams then live in `./weir-data/jetstream`). nats-server uses
/// `$TMPDIR/nats` and warns that a reboot may lose it; a directory beside the process
/// survives reboots and is where a user starting `weir -js` in a project looks first.
/// The same parent holds `weir raft-node`'s default data.
pub const DEFAULT_STORE_DIR: &str = "weir-data";

/// JetStream options from the merged settings: a real disk rooted at the store directory
/// (the engine nests its data in `jetstream/` under it, as nats-server does), the limits,
/// and the wall clock read once.
fn jetstream_options(js: &config::JetStreamConfig) -> Result<nats::JetStreamOptions, String> {
    let base = js.store_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_DIR));
    let base = std::path::absolute(&base).map_err(|e| format!("store_dir {}: {e}", base.display()))?;
    let disk = weir_core::disk::RealDisk::new(&base)
        .map_err(|e| format!("cannot use JetStream store directory {}: {e}", base.display()))?;
    #[allow(clippy::disallowed_methods, reason = "the binary's wall-clock seam: read once at start")]
    let epoch_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let shown = base.join("jetstream").display().to_string();
    let mut o = nats::JetStreamOptions::new(std::sync::Arc::new(disk), shown, epoch_ns);
    o.engine.max_memory_store = js.max_memory.unwrap_or_else(default_max_memory);
    if let Some(n) = js.max_file {
        o.engine.max_file_store = n;
    }
    o.engine.consumer_limits = weir_core::consumer::ServerLimits {
        max_request_batch: js.max_request_batch.unwrap_or(0).max(0),
        max_ack_pending: js.max_ack_pending.unwrap_or(0).max(0),
    };
    Ok(o)
}

/// nats-server's default `max_memory_store`: 75% of the machine's memory (from
/// `/proc/meminfo`; the core's default where that cannot be read).
fn default_max_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    });
    total_kib.map_or(nats::js::DEFAULT_MAX_MEMORY_STORE, |k| k.saturating_mul(1024) / 4 * 3)
}

/// A port setting: -1 (nats-server's "random") and 0 both bind a free port.
fn listen_port(key: &str, p: i32) -> Result<u16, String> {
    match p {
        -1 => Ok(0),
        p => u16::try_from(p).map_err(|_| format!("{key} {p} is not a port (0-65535, or -1 for a random one)")),
    }
}

/// Client credentials from a token, or a user and password (not both).
fn auth(token: Option<String>, user: Option<String>, pass: Option<String>) -> Result<Auth, String> {
    match (token, user, pass) {
        (None, None, None) => Ok(Auth::None),
        (Some(t), None, None) if !t.is_empty() => Ok(Auth::Token(t)),
        (None, Some(user), Some(pass)) if !user.is_empty() => Ok(Auth::User { user, pass }),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("use either a token or a user and password, not both".into())
        }
        (None, Some(_), None) | (None, None, Some(_)) => Err("a user needs a password and a password a user".into()),
        _ => Err("the token and the user must not be empty".into()),
    }
}

/// Client TLS from the file's `tls { }` and the `--tls*` flags, as nats-server: any
/// `--tls*` flag turns TLS on (flags override the file's settings one by one) and then a
/// certificate and key are required; `--tls=false` turns it off whatever the file says.
fn tls_settings(args: &ServeArgs, file: Option<TlsConfig>) -> Result<Option<TlsConfig>, String> {
    if args.tls == Some(false) {
        return Ok(None);
    }
    let flags = args.tls == Some(true)
        || args.tlsverify.is_some()
        || args.tlscert.is_some()
        || args.tlskey.is_some()
        || args.tlscacert.is_some();
    if !flags {
        return Ok(file);
    }
    let mut t = file.unwrap_or_default();
    if let Some(p) = &args.tlscert {
        t.cert_file = p.clone();
    }
    if let Some(p) = &args.tlskey {
        t.key_file = p.clone();
    }
    if let Some(p) = &args.tlscacert {
        t.ca_file = Some(p.clone());
    }
    if let Some(v) = args.tlsverify {
        t.verify = v;
    }
    if t.cert_file.as_os_str().is_empty() {
        return Err("TLS Server certificate must be present and valid".into());
    }
    if t.key_file.as_os_str().is_empty() {
        return Err("TLS Server private key must be present and valid".into());
    }
    t.check().map_err(|e| e.to_string())?;
    Ok(Some(t))
}

/// Production seeds its RNG from the OS; only the simulator fixes seeds.
pub fn seed_from_os() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// The ports file's name in `dir`, as nats-server names it: `<executable name>_<pid>.ports`.
fn ports_file(dir: &Path) -> PathBuf {
    let exe = std::env::args().next().map(PathBuf::from);
    let name = exe.as_deref().and_then(Path::file_name).map_or("weir".into(), |n| n.to_string_lossy().into_owned());
    dir.join(format!("{name}_{}.ports", std::process::id()))
}

/// A URL per listener, as nats-server's ports file (its `Ports` JSON: `nats`, `monitoring`,
/// `cluster`; empty lists left out). nats-server lists every interface's address for a
/// wildcard host; weir lists the loopback address instead.
fn ports_json(client: SocketAddr, http: Option<SocketAddr>, cluster: Option<SocketAddr>) -> String {
    let url = |scheme: &str, a: SocketAddr| {
        let a = if a.ip().is_unspecified() {
            let lo: IpAddr = if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
            SocketAddr::new(lo, a.port())
        } else {
            a
        };
        serde_json::Value::from(vec![format!("{scheme}://{a}")])
    };
    let mut m = serde_json::Map::new();
    m.insert("nats".into(), url("nats", client));
    if let Some(h) = http {
        m.insert("monitoring".into(), url("http", h));
    }
    if let Some(c) = cluster {
        m.insert("cluster".into(), url("nats", c));
    }
    serde_json::Value::Object(m).to_string()
}

/// What the running process was started with, besides the server's own configuration:
/// none of it may change on reload.
#[derive(Clone, Debug, PartialEq)]
struct Running {
    http: Option<SocketAddr>,
    pid_file: Option<PathBuf>,
    ports_file_dir: Option<PathBuf>,
    log_file: Option<PathBuf>,
}

impl Running {
    fn of(s: &Settings) -> Running {
        Running {
            http: s.http,
            pid_file: s.pid_file.clone(),
            ports_file_dir: s.ports_file_dir.clone(),
            log_file: s.log_file.clone(),
        }
    }
}

/// Reload the config file named by `args` (flags still override it, as at start) into
/// the running server; the settings that changed, or why nothing was (nats-server's
/// texts: no config file, a file that does not load, a setting that cannot change).
async fn reload(
    args: &ServeArgs,
    running: &Running,
    reloader: &nats::reload::Reloader,
) -> Result<Vec<&'static str>, String> {
    if args.config.is_none() {
        return Err("can only reload config when a file is provided using -c or --config".into());
    }
    let new = settings(args.clone()).await?;
    let now = Running::of(&new);
    let refuse = |name: &str, old: &dyn std::fmt::Debug, new: &dyn std::fmt::Debug| {
        Err(format!("config reload not supported for {name}: old={old:?}, new={new:?}"))
    };
    if now.http != running.http {
        return refuse("http_port", &running.http, &now.http);
    }
    if now.log_file != running.log_file {
        return refuse("log_file", &running.log_file, &now.log_file);
    }
    if now.pid_file != running.pid_file {
        return refuse("pid_file", &running.pid_file, &now.pid_file);
    }
    if now.ports_file_dir != running.ports_file_dir {
        return refuse("ports_file_dir", &running.ports_file_dir, &now.ports_file_dir);
    }
    let mut changed = reloader.reload(new.nats)?;
    if logging::set_level(new.log_level) {
        changed.push("log level");
    }
    Ok(changed)
}

/// Serve SIGHUP (reload) and SIGUSR1 (reopen the log file) until the process ends.
async fn operator_signals(
    (mut hup, mut usr1): (Option<shutdown::Repeating>, Option<shutdown::Repeating>),
    args: ServeArgs,
    running: Running,
    reloader: nats::reload::Reloader,
) {
    loop {
        let next_hup = async {
            match &mut hup {
                Some(h) => h.next().await,
                None => std::future::pending().await,
            }
        };
        let next_usr1 = async {
            match &mut usr1 {
                Some(u) => u.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = next_hup => {
                tracing::info!("Trapped \"hangup\" signal");
                match reload(&args, &running, &reloader).await {
                    Ok(changed) if changed.is_empty() => tracing::info!("Reloaded server configuration (no change)"),
                    Ok(changed) => tracing::info!("Reloaded server configuration: {}", changed.join(", ")),
                    Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                }
            }
            _ = next_usr1 => {
                tracing::info!("Trapped \"user defined signal 1\" signal");
                logging::reopen();
            }
        }
    }
}

/// Bind everything, announce it, and serve until SIGINT/SIGTERM; `args` are the flags
/// it was started with, which a reload (SIGHUP) merges over the config file again.
pub async fn run(s: Settings, args: ServeArgs) -> Result<(), String> {
    let running = Running::of(&s);
    let Settings { nats: cfg, host, http, pid_file, ports_file_dir, warnings: s_warnings, .. } = s;
    tracing::info!("Starting weir {} (NATS server level {})", nats::config::WEIR_VERSION, cfg.nats_version);
    for w in &s_warnings {
        tracing::warn!("{w}");
    }
    if let Some(path) = &pid_file {
        std::fs::write(path, std::process::id().to_string())
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
    }
    let ledger = nats::ledger_for(&cfg);
    let listen = cfg.listen;
    let tls = cfg.tls.as_ref().map(|t| (t.verify, t.handshake_first));
    let server = NatsServer::bind(cfg, ledger).await.map_err(|e| match e.kind() {
        // A TLS file that does not load (the error names it).
        std::io::ErrorKind::InvalidInput => e.to_string(),
        _ => format!("cannot listen on {listen}: {e}"),
    })?;
    if let Some((verify, first)) = tls {
        // nats-server's line, with how clients are checked.
        tracing::info!(verify, handshake_first = first, "TLS required for client connections");
    }
    let addr = server.local_addr();
    // As nats-server: the configured host with the port actually bound.
    let shown = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, addr.port()).to_string(),
        Err(_) => format!("{host}:{}", addr.port()),
    };
    tracing::info!("Listening for client connections on {shown}");
    if let Some(a) = server.cluster_addr() {
        tracing::info!("Listening for route connections on {a}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http_addr = None;
    if let Some(h) = http {
        let listener =
            tokio::net::TcpListener::bind(h).await.map_err(|e| format!("cannot listen on monitoring port {h}: {e}"))?;
        let a = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("Starting http monitor on {a}");
        http_addr = Some(a);
        let mut rx = stop_rx.clone();
        tokio::spawn(monitor::serve(listener, server.monitor(), async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
    }
    let ports = ports_file_dir.as_deref().map(ports_file);
    if let Some(path) = &ports {
        std::fs::write(path, ports_json(addr, http_addr, server.cluster_addr()))
            .map_err(|e| format!("cannot write ports file {}: {e}", path.display()))?;
    }
    // Listening starts here, before "Server is ready": from then on these signals cannot
    // kill the process.
    let signals = (shutdown::Repeating::hangup(), shutdown::Repeating::user1());
    tokio::spawn(operator_signals(signals, args, running, server.reloader()));
    let lame_duck = server.lame_duck();
    if let Some(mut usr2) = shutdown::Repeating::user2() {
        tokio::spawn(async move {
            usr2.next().await;
            tracing::info!("SIGUSR2: entering lame duck mode");
            lame_duck.enter();
        });
    }
    tracing::info!("Server is ready");
    // Freed memory goes back to the system (issue 9, fault 7).
    #[cfg(not(madsim))]
    tokio::spawn(crate::alloc::run_trimmer());
    tokio::spawn(async move {
        let signal = shutdown::signal().await;
        tracing::info!("{signal}: shutting down");
        stop_tx.send_replace(true);
    });
    let mut rx = stop_rx;
    server
        .run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await;
    // nats-server removes its ports file on shutdown.
    if let Some(path) = &ports {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_hosts_are_ip_addresses_or_names() {
        assert_eq!(resolve_host("10.1.2.3").unwrap(), IpAddr::from([10, 1, 2, 3]));
        assert_eq!(resolve_host("::1").unwrap(), std::net::Ipv6Addr::LOCALHOST);
        assert!(resolve_host("localhost").unwrap().is_loopback());
        let e = resolve_host("no such host.invalid").unwrap_err();
        assert!(e.starts_with("--addr 'no such host.invalid': not an IP address"), "{e}");
    }

    #[test]
    fn ports_file_has_nats_servers_shape() {
        let c: SocketAddr = "0.0.0.0:4222".parse().unwrap();
        let h: SocketAddr = "127.0.0.1:8222".parse().unwrap();
        assert_eq!(ports_json(c, None, None), r#"{"nats":["nats://127.0.0.1:4222"]}"#);
        assert_eq!(
            ports_json(c, Some(h), Some("10.0.0.1:6222".parse().unwrap())),
            r#"{"cluster":["nats://10.0.0.1:6222"],"monitoring":["http://127.0.0.1:8222"],"nats":["nats://127.0.0.1:4222"]}"#
        );
        let name = ports_file(Path::new("/d"));
        assert!(name.to_string_lossy().ends_with(&format!("_{}.ports", std::process::id())), "{name:?}");
    }

    #[test]
    fn jetstream_options_from_flags_and_file() {
        let dir = std::env::temp_dir().join(format!("weir-serve-js-{}", std::process::id()));
        let js = config::JetStreamConfig {
            enabled: true,
            store_dir: Some(dir.clone()),
            max_memory: Some(64 << 20),
            max_file: Some(1 << 30),
            ..Default::default()
        };
        let o = jetstream_options(&js).unwrap();
        assert_eq!(
            o.shown_dir,
            dir.join("jetstream").display().to_string(),
            "data nests in jetstream/ as nats-server's"
        );
        assert_eq!((o.engine.max_memory_store, o.engine.max_file_store), (64 << 20, 1 << 30));
        assert_eq!(o.engine.store_dir, "", "the disk is rooted at the store directory");
        assert!(o.epoch_ns > 0);
        let o =
            jetstream_options(&config::JetStreamConfig { store_dir: Some(dir.clone()), ..Default::default() }).unwrap();
        assert_eq!(o.engine.max_file_store, nats::js::DEFAULT_MAX_FILE_STORE);
        assert!(o.engine.max_memory_store > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ports_and_random_ports() {
        assert_eq!(listen_port("port", -1), Ok(0));
        assert_eq!(listen_port("port", 4222), Ok(4222));
        assert!(listen_port("port", -2).is_err());
        assert!(listen_port("port", 70000).is_err());
    }
}
