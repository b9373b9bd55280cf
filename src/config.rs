//! `weir serve`'s settings from a config file in nats-server's format (parsed by
//! [`crate::conf`]), under nats-server's key names and a few of weir's own.
//!
//! ```text
//! listen: 127.0.0.1:4222          # or host/net and port (port -1: a random free port)
//! http_port: 8222                 # or monitor_port, or http: host:port
//! server_name: weir-1
//! max_payload: 1MB
//! max_pending: 64MB
//! max_connections: 1000           # or max_conn; 0 refuses every client, as nats-server
//! max_subscriptions: 10000        # or max_subs; per connection, 0 = no limit
//! ping_interval: "100ms"          # durations: Go units, or a plain number of seconds
//! ping_max: 2
//! write_deadline: "10s"
//! authorization { token: s3cret } # or { user: bob, password: pw }, or users:
//! authorization {
//!   users: [
//!     { user: alice, password: pw, permissions: { publish: "orders.>", subscribe: { deny: "secret.>" } } }
//!     { nkey: UAFHG6FUD2UU4SDFVAFUL5LDFO2XM4WYM76UNXTPJYJK7EEMYRBHT2VE }
//!   ]
//! }
//! accounts {                      # isolated subject spaces, each with its users
//!   A: { users: [ { user: a, password: a } ] }
//!   B: { users: [ { user: b, password: b, permissions: { publish: { allow: ["x.>"], deny: "x.y" }, allow_responses: true } } ] }
//! }
//! no_auth_user: a                 # clients without credentials are this user
//! account_max_outbound: 256MB     # weir's own: outbound bytes per NATS account (default: an even share)
//! account_max_subs_memory: 64MB   # weir's own: subscription bytes per NATS account
//! tls {                           # clients must use TLS (see weir_core::server::tls)
//!   cert_file: server-cert.pem
//!   key_file: server-key.pem
//!   ca_file: ca.pem               # needed by verify
//!   verify: true                  # require client certificates signed by ca_file
//!   timeout: 2                    # handshake timeout: seconds, or "500ms"
//!   handshake_first: false        # true: TLS handshake before INFO; "300ms"/auto: wait that
//!                                 # long (auto: 50ms) for it, else INFO in plaintext first
//! }
//! cluster {
//!   name: east
//!   listen: 127.0.0.1:6222
//!   routes: [ nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224 ]
//!   tls { cert_file: route-cert.pem, key_file: route-key.pem, ca_file: ca.pem }
//! }
//! jetstream { store_dir: /var/lib/weir, max_memory_store: 1GB, max_file_store: 10GB }
//! pid_file: /run/weir.pid
//! log_file: /var/log/weir.log
//! ports_file_dir: /tmp
//! nats_version: "2.11.0"          # weir's own: the NATS server level INFO advertises
//! ```
//!
//! Unknown top-level keys are errors naming file, line and column (`unknown field "x"`),
//! as nats-server reports them (it refuses to start on them unless told otherwise), except
//! keys that are only used as `$variables`. Keys nats-server knows but weir does not
//! implement (accounts, gateways, ...) are errors that say so. Inside blocks, unknown
//! keys are errors too. Weir's older flat keys (`token`, `user`, `password`, `routes`,
//! `cluster_name`, `cluster: host:port`) are still accepted.

use crate::conf::{self, ConfError, Map, Node, Pos, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_core::server::nats::auth::{Credential, GLOBAL_ACCOUNT, Permissions, ResponsePerm, SubjectPerm, User};
use weir_core::server::tls::TlsConfig;

/// JetStream settings, parsed and kept for the JetStream work (weir does not serve JetStream yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// `jetstream: true/enabled` or a `jetstream { }` block (nats-server enables it then).
    pub enabled: bool,
    /// `store_dir` (also `store`, `storedir`; or top-level `store_dir`).
    pub store_dir: Option<PathBuf>,
    /// `max_memory_store` (also `max_mem_store`, `max_mem`), bytes.
    pub max_memory: Option<u64>,
    /// `max_file_store` (also `max_file`), bytes.
    pub max_file: Option<u64>,
    /// `strict` (nats-server's default is true).
    pub strict: Option<bool>,
    /// `domain`.
    pub domain: Option<String>,
    /// `limits { max_request_batch }`: default and cap of pull consumers' `max_batch`.
    pub max_request_batch: Option<i64>,
    /// `limits { max_ack_pending }`: cap (and default below 1000) of `max_ack_pending`.
    pub max_ack_pending: Option<i64>,
}

/// Settings read from a config file; `None` where the file says nothing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// Client listen host.
    pub host: Option<String>,
    /// Client listen port; -1 picks a random free port.
    pub port: Option<i32>,
    /// Monitoring host (from `http: host:port`).
    pub http_host: Option<String>,
    /// Monitoring port; -1 picks a random free port.
    pub http_port: Option<i32>,
    /// Server name.
    pub server_name: Option<String>,
    /// Maximum message size.
    pub max_payload: Option<u64>,
    /// Per-client outbound cap.
    pub max_pending: Option<u64>,
    /// Longest protocol line.
    pub max_control_line: Option<u64>,
    /// Most client connections at once (0: none at all, as nats-server).
    pub max_connections: Option<usize>,
    /// Most subscriptions per connection (0: unlimited).
    pub max_subscriptions: Option<usize>,
    /// Server PING interval.
    pub ping_interval: Option<Duration>,
    /// Unanswered PINGs before a stale connection.
    pub ping_max: Option<u32>,
    /// Write deadline.
    pub write_deadline: Option<Duration>,
    /// Token clients must present.
    pub token: Option<String>,
    /// User clients must present.
    pub user: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// How long a client has to authenticate.
    pub auth_timeout: Option<Duration>,
    /// Route listen address (`host:port`).
    pub cluster: Option<String>,
    /// Routes to dial (URLs or `host:port`).
    pub routes: Vec<String>,
    /// Cluster name.
    pub cluster_name: Option<String>,
    /// JetStream settings (kept, not served yet).
    pub jetstream: JetStreamConfig,
    /// PID file.
    pub pid_file: Option<PathBuf>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// Directory for the ports file.
    pub ports_file_dir: Option<PathBuf>,
    /// `debug: true`.
    pub debug: Option<bool>,
    /// `trace: true`.
    pub trace: Option<bool>,
    /// NATS server level to advertise in INFO `version`.
    pub nats_version: Option<String>,
    /// Client TLS (`tls { }`).
    pub tls: Option<TlsConfig>,
    /// Route TLS (`cluster { tls { } }`).
    pub cluster_tls: Option<TlsConfig>,
    /// Users of `authorization { users }` (in `$G`) and of every `accounts` entry.
    pub users: Vec<User>,
    /// Accounts of `accounts { }`, in file order.
    pub accounts: Vec<String>,
    /// `no_auth_user`.
    pub no_auth_user: Option<String>,
    /// `account_max_outbound` (weir's own), bytes.
    pub account_max_outbound: Option<u64>,
    /// `account_max_subs_memory` (weir's own), bytes.
    pub account_max_subs_memory: Option<u64>,
    /// `operator`: the operator JWT (read from the file when the value is a path).
    pub operator: Option<String>,
    /// `resolver_preload`: account public key → account JWT.
    pub resolver_preload: Vec<(String, String)>,
    /// `lame_duck_duration`.
    pub lame_duck_duration: Option<Duration>,
    /// `lame_duck_grace_period`.
    pub lame_duck_grace_period: Option<Duration>,
    /// `client_advertise`: the client address told to the cluster.
    pub client_advertise: Option<String>,
    /// `cluster { no_advertise }`: tell neither peers nor clients the cluster's client URLs.
    pub no_advertise: Option<bool>,
    /// Keys accepted but without effect in weir (logging and reporting knobs), each as a
    /// warning `FILE:LINE:COL: ...` the server logs at start.
    pub ignored: Vec<String>,
}

/// `host:port` without a leading `nats://`, `nats-route://` or `route://`.
pub fn strip_scheme(url: &str) -> &str {
    let u = url.trim();
    ["nats-route://", "nats://", "route://"].iter().find_map(|p| u.strip_prefix(p)).unwrap_or(u).trim_end_matches('/')
}

/// Parse a size flag (`1048576`, `512KB`, `64MiB`, ...; see [`conf::parse_size`]).
pub fn parse_size(s: &str) -> Result<u64, String> {
    conf::parse_size(s)
}

/// Read and map the config file at `path`.
pub fn load(path: &Path) -> Result<FileConfig, ConfError> {
    from_map(&conf::parse_file(path)?)
}

/// Keys nats-server knows that weir does not implement: refused with a clear message.
const NOT_SUPPORTED: &[&str] = &[
    "gateway",
    "leaf",
    "leafnodes",
    "websocket",
    "mqtt",
    "system_account_name",
    "mappings",
    "https",
    "https_port",
    "remote_syslog",
];

fn err<T>(pos: &Pos, msg: impl Into<String>) -> Result<T, ConfError> {
    Err(ConfError::at(pos, msg))
}

fn string(key: &str, n: &Node) -> Result<String, ConfError> {
    match &n.value {
        Value::Str(s) => Ok(s.clone()),
        // A bare number where a name is expected (`server_name: 1`) is its text.
        Value::Int(i) => Ok(n.raw.clone().unwrap_or_else(|| i.to_string())),
        v => err(&n.pos, format!("{key}: expected a string, got {}", v.kind())),
    }
}

fn int(key: &str, n: &Node) -> Result<i64, ConfError> {
    match &n.value {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => s.trim().parse().or_else(|_| err(&n.pos, format!("{key}: '{s}' is not an integer"))),
        v => err(&n.pos, format!("{key}: expected an integer, got {}", v.kind())),
    }
}

fn count<T: TryFrom<i64>>(key: &str, n: &Node) -> Result<T, ConfError> {
    let i = int(key, n)?;
    T::try_from(i).or_else(|_| err(&n.pos, format!("{key}: {i} is out of range")))
}

fn port(key: &str, n: &Node) -> Result<i32, ConfError> {
    let p = int(key, n)?;
    if (-1..=65535).contains(&p) {
        Ok(p as i32)
    } else {
        err(&n.pos, format!("{key}: {p} is not a port (0-65535, or -1 for a random one)"))
    }
}

fn size(key: &str, n: &Node) -> Result<u64, ConfError> {
    match &n.value {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Str(s) => conf::parse_size(s).or_else(|e| err(&n.pos, format!("{key}: {e}"))),
        v => err(&n.pos, format!("{key}: expected a size (e.g. 8MB), got {}", v.kind())),
    }
}

fn boolean(key: &str, n: &Node) -> Result<bool, ConfError> {
    match &n.value {
        Value::Bool(b) => Ok(*b),
        v => err(&n.pos, format!("{key}: expected true or false, got {}", v.kind())),
    }
}

/// A duration: a string in Go units, or a number of seconds (as nats-server). A bare
/// number with a size suffix that is also a time unit (`2m`) is read as a duration, where
/// nats-server would read 2,000,000 seconds.
fn duration(key: &str, n: &Node) -> Result<Duration, ConfError> {
    let text = match (&n.value, &n.raw) {
        (Value::Int(_), Some(raw)) => raw.clone(),
        (Value::Int(i), None) if *i >= 0 => return Ok(Duration::from_secs(*i as u64)),
        (Value::Float(f), _) if *f >= 0.0 => {
            return Duration::try_from_secs_f64(*f).or_else(|_| err(&n.pos, format!("{key}: {f} is out of range")));
        }
        (Value::Str(s), _) => s.clone(),
        (v, _) => return err(&n.pos, format!("{key}: expected a duration (e.g. \"100ms\", \"2s\"), got {}", v.kind())),
    };
    conf::parse_duration(&text).or_else(|e| err(&n.pos, format!("{key}: {e}")))
}

fn map<'n>(key: &str, n: &'n Node) -> Result<&'n Map, ConfError> {
    match &n.value {
        Value::Map(m) => Ok(m),
        v => err(&n.pos, format!("{key}: expected a block {{ ... }}, got {}", v.kind())),
    }
}

fn strings(key: &str, n: &Node) -> Result<Vec<String>, ConfError> {
    match &n.value {
        Value::Array(items) => items.iter().map(|i| string(key, i)).collect(),
        // Weir's older form: one string, comma-separated.
        Value::Str(s) => Ok(s.split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect()),
        v => err(&n.pos, format!("{key}: expected an array of URLs, got {}", v.kind())),
    }
}

/// `host:port` (or a bare port) as nats-server's `listen` keys.
fn listen(key: &str, n: &Node) -> Result<(Option<String>, i32), ConfError> {
    if let Value::Int(_) = n.value {
        return Ok((None, port(key, n)?));
    }
    let s = string(key, n)?;
    let hp = strip_scheme(&s);
    let Some((host, p)) = hp.rsplit_once(':') else {
        return err(&n.pos, format!("{key}: could not parse address string \"{s}\""));
    };
    let p: i32 = p.parse().or_else(|_| err(&n.pos, format!("{key}: could not parse port \"{p}\"")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(((!host.is_empty()).then(|| host.to_owned()), p))
}

/// Map a parsed file onto [`FileConfig`].
pub fn from_map(m: &Map) -> Result<FileConfig, ConfError> {
    let mut c = FileConfig::default();
    for (key, kpos, n) in &m.entries {
        let k = key.to_ascii_lowercase();
        match k.as_str() {
            "listen" => {
                let (host, p) = listen(key, n)?;
                c.host = host.or(c.host);
                c.port = Some(p);
            }
            "host" | "net" | "addr" | "listen_host" => c.host = Some(string(key, n)?),
            "port" => c.port = Some(port(key, n)?),
            "http" => {
                let (host, p) = listen(key, n)?;
                c.http_host = host;
                c.http_port = Some(p);
            }
            "http_port" | "monitor_port" => c.http_port = Some(port(key, n)?),
            "server_name" => {
                let s = string(key, n)?;
                if s.contains(' ') {
                    return err(&n.pos, "server name can not contain spaces");
                }
                c.server_name = Some(s);
            }
            "max_payload" => c.max_payload = Some(size(key, n)?),
            "max_pending" => c.max_pending = Some(size(key, n)?),
            "max_control_line" => c.max_control_line = Some(size(key, n)?),
            // nats-server: 0 (or less) means no client may connect.
            "max_connections" | "max_conn" => c.max_connections = Some(int(key, n)?.max(0) as usize),
            "max_subscriptions" | "max_subs" => c.max_subscriptions = Some(int(key, n)?.max(0) as usize),
            "ping_interval" => c.ping_interval = Some(duration(key, n)?),
            "ping_max" => c.ping_max = Some(count(key, n)?),
            "write_deadline" => c.write_deadline = Some(duration(key, n)?),
            "lame_duck_duration" => c.lame_duck_duration = Some(duration(key, n)?),
            "lame_duck_grace_period" => c.lame_duck_grace_period = Some(duration(key, n)?),
            "client_advertise" => c.client_advertise = Some(string(key, n)?),
            "authorization" => authorization(map(key, n)?, &mut c)?,
            "token" | "auth_token" => c.token = Some(string(key, n)?),
            "user" => c.user = Some(string(key, n)?),
            "password" | "pass" => c.password = Some(string(key, n)?),
            "cluster" => match &n.value {
                Value::Map(cm) => cluster(cm, &mut c)?,
                _ => c.cluster = Some(string(key, n)?),
            },
            "cluster_listen" => c.cluster = Some(string(key, n)?),
            "routes" => c.routes = strings(key, n)?,
            "cluster_name" => c.cluster_name = Some(string(key, n)?),
            "jetstream" => jetstream(n, &mut c)?,
            "store_dir" | "storedir" => set_store_dir(&mut c, key, n)?,
            "pid_file" | "pidfile" => c.pid_file = Some(string(key, n)?.into()),
            "log_file" | "logfile" => c.log_file = Some(string(key, n)?.into()),
            "ports_file_dir" => c.ports_file_dir = Some(string(key, n)?.into()),
            "debug" => c.debug = Some(boolean(key, n)?),
            "trace" | "trace_verbose" => c.trace = Some(boolean(key, n)?),
            "logtime" | "logtime_utc" => {
                boolean(key, n)?;
            }
            // Logging and reporting knobs of nats-server that change nothing a client or
            // an operator's tooling depends on: accepted, with a warning at start, so that
            // deployment config files load.
            "syslog" => {
                if boolean(key, n)? {
                    return err(kpos, format!("\"{key}\" is not supported by weir yet"));
                }
            }
            "log_size_limit" | "log_max_num" => {
                size(key, n)?;
                c.ignored.push(format!(
                    "{kpos}: \"{key}\" is ignored: weir does not rotate its log file itself \
                     (rotate it with logrotate, then `weir --signal reopen`)"
                ));
            }
            "max_traced_msg_len" | "connect_error_reports" | "reconnect_error_reports" => {
                int(key, n)?;
                c.ignored.push(format!("{kpos}: \"{key}\" is ignored: weir's log has no such setting"));
            }
            "server_tags" | "no_system_account" => c.ignored.push(format!("{kpos}: \"{key}\" has no effect in weir")),
            // Weir's subject index has no match cache to disable.
            "disable_sublist_cache" | "no_sublist_cache" => {
                boolean(key, n)?;
            }
            "nats_version" => c.nats_version = Some(string(key, n)?),
            "tls" => c.tls = Some(tls(key, kpos, n)?),
            "accounts" => accounts(map(key, n)?, &mut c)?,
            "no_auth_user" => c.no_auth_user = Some(string(key, n)?),
            "account_max_outbound" => c.account_max_outbound = Some(size(key, n)?),
            "account_max_subs_memory" => c.account_max_subs_memory = Some(size(key, n)?),
            "operator" | "operators" | "trusted_operators" => {
                let v = match &n.value {
                    Value::Array(items) if items.len() == 1 => string(key, &items[0])?,
                    Value::Array(_) => return err(&n.pos, format!("{key}: weir supports one operator")),
                    _ => string(key, n)?,
                };
                c.operator = Some(jwt_or_file(key, n, v)?);
            }
            "resolver" => {
                let v = string(key, n).unwrap_or_default();
                if !v.eq_ignore_ascii_case("MEMORY") {
                    return err(&n.pos, format!("resolver: only MEMORY is supported by weir, got {}", n.value.kind()));
                }
            }
            "resolver_preload" => {
                for (k, _, v) in &map(key, n)?.entries {
                    c.resolver_preload.push((k.clone(), string(k, v)?.trim().to_owned()));
                }
            }
            // The system account is only another preloaded account to weir.
            "system_account" => {
                string(key, n)?;
            }
            k if NOT_SUPPORTED.contains(&k) => return err(kpos, format!("\"{key}\" is not supported by weir yet")),
            _ if m.used_as_vars.iter().any(|v| v == key) => {}
            _ => return err(kpos, format!("unknown field \"{key}\"")),
        }
    }
    Ok(c)
}

fn authorization(m: &Map, c: &mut FileConfig) -> Result<(), ConfError> {
    for (key, kpos, n) in &m.entries {
        match key.to_ascii_lowercase().as_str() {
            "user" | "username" => c.user = Some(string(key, n)?),
            "pass" | "password" => c.password = Some(string(key, n)?),
            "token" => c.token = Some(string(key, n)?),
            "timeout" => c.auth_timeout = Some(duration(key, n)?),
            "users" => c.users.extend(users("authorization", n, GLOBAL_ACCOUNT)?),
            "permissions" | "default_permissions" | "auth_callout" => {
                return err(kpos, format!("authorization: \"{key}\" is not supported by weir yet"));
            }
            _ if m.used_as_vars.iter().any(|v| v == key) => {}
            _ => return err(kpos, format!("authorization: unknown field \"{key}\"")),
        }
    }
    let pos = || m.entries.first().map(|e| e.1.clone()).unwrap_or_else(|| Pos { file: "?".into(), line: 0, col: 0 });
    if c.token.is_some() && (c.user.is_some() || c.password.is_some()) {
        return err(&pos(), "Cannot have a user/pass and token");
    }
    if !c.users.is_empty() && (c.token.is_some() || c.user.is_some()) {
        return err(&pos(), "Can not have a token or a single user/pass and a users array");
    }
    Ok(())
}

/// A JWT given inline (`eyJ...`) or as a path to a file holding it.
fn jwt_or_file(key: &str, n: &Node, v: String) -> Result<String, ConfError> {
    if v.trim_start().starts_with("eyJ") {
        return Ok(v.trim().to_owned());
    }
    let base = Path::new(&*n.pos.file).parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(base.join(&v)).or_else(|e| err(&n.pos, format!("{key}: cannot read \"{v}\": {e}")))?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("eyJ"))
        .map(str::to_owned)
        .ok_or_else(|| ConfError::at(&n.pos, format!("{key}: no JWT in \"{v}\"")))
}

/// `accounts { NAME: { users: [ ... ] } ... }` (nats-server's config accounts; exports,
/// imports and per-account JetStream are not supported).
fn accounts(m: &Map, c: &mut FileConfig) -> Result<(), ConfError> {
    for (name, kpos, n) in &m.entries {
        if m.used_as_vars.iter().any(|v| v == name) {
            continue;
        }
        if name == GLOBAL_ACCOUNT {
            return err(kpos, format!("accounts: \"{name}\" is the default account and cannot be configured"));
        }
        if c.accounts.contains(name) {
            return err(kpos, format!("accounts: duplicate account \"{name}\""));
        }
        c.accounts.push(name.clone());
        let am = match &n.value {
            Value::Map(am) => am,
            // nats-server also takes `accounts: [A, B]`-style bare names; an empty entry.
            Value::Str(_) => continue,
            v => return err(&n.pos, format!("accounts: {name}: expected a block {{ ... }}, got {}", v.kind())),
        };
        for (key, kpos, v) in &am.entries {
            match key.to_ascii_lowercase().as_str() {
                "users" => c.users.extend(users(name, v, name)?),
                "exports" | "imports" | "jetstream" | "mappings" | "limits" => {
                    return err(kpos, format!("accounts: {name}: \"{key}\" is not supported by weir yet"));
                }
                _ if am.used_as_vars.iter().any(|x| x == key) => {}
                _ => return err(kpos, format!("accounts: {name}: unknown field \"{key}\"")),
            }
        }
    }
    Ok(())
}

/// A `users: [ { user, password, permissions } | { nkey, permissions } ... ]` array of
/// `account` (`what` names the block in errors).
fn users(what: &str, n: &Node, account: &str) -> Result<Vec<User>, ConfError> {
    let Value::Array(items) = &n.value else {
        return err(&n.pos, format!("{what}: users: expected an array, got {}", n.value.kind()));
    };
    let mut out = Vec::new();
    for item in items {
        let um = map("users", item)?;
        let (mut user, mut pass, mut nkey, mut perms) = (None, None, None, None);
        for (key, kpos, v) in &um.entries {
            match key.to_ascii_lowercase().as_str() {
                "user" | "username" => user = Some(string(key, v)?),
                "pass" | "password" => pass = Some(string(key, v)?),
                "nkey" => nkey = Some(string(key, v)?),
                "permissions" | "permission" => perms = Some(permissions(map(key, v)?)?),
                "allowed_connection_types" | "connection_types" | "account" => {
                    return err(kpos, format!("{what}: users: \"{key}\" is not supported by weir yet"));
                }
                _ if um.used_as_vars.iter().any(|x| x == key) => {}
                _ => return err(kpos, format!("{what}: users: unknown field \"{key}\"")),
            }
        }
        let cred = match (user, pass, nkey) {
            (None, None, Some(k)) => {
                if !k.starts_with('U') || weir_core::server::nats::auth::decode_nkey(&k).is_none() {
                    return err(&item.pos, format!("Not a valid public nkey for a user: \"{k}\""));
                }
                Credential::Nkey(k)
            }
            (Some(user), pass, None) => Credential::Password { user, pass: pass.unwrap_or_default() },
            (_, _, Some(_)) => return err(&item.pos, "Nkey users can not have a user or password"),
            _ => return err(&item.pos, format!("{what}: users: a user needs a \"user\" or an \"nkey\"")),
        };
        out.push(User {
            cred,
            account: account.to_owned(),
            permissions: perms.map(|p| std::sync::Arc::new(p.normalized())),
        });
    }
    Ok(out)
}

/// A `permissions { publish, subscribe, allow_responses }` block (nats-server's forms:
/// a string or a list is an allow list; `{ allow, deny }` each a string or a list).
fn permissions(m: &Map) -> Result<Permissions, ConfError> {
    let mut p = Permissions::default();
    for (key, kpos, v) in &m.entries {
        match key.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => p.publish = Some(subject_perm(key, v)?),
            "sub" | "subscribe" | "export" => p.subscribe = Some(subject_perm(key, v)?),
            "allow_responses" | "allow_response" => {
                p.allow_responses = match &v.value {
                    Value::Bool(false) => None,
                    Value::Bool(true) => Some(ResponsePerm::default()),
                    Value::Map(rm) => {
                        let mut r = ResponsePerm::default();
                        for (rk, rpos, rv) in &rm.entries {
                            match rk.to_ascii_lowercase().as_str() {
                                "max" | "max_msgs" | "max_messages" | "max_responses" => {
                                    r.max_msgs = count::<u32>(rk, rv)?.max(1)
                                }
                                // No wall clock in the broker: replies stay allowed until used.
                                "expires" | "expiration" | "ttl" => {
                                    duration(rk, rv)?;
                                }
                                _ => return err(rpos, format!("allow_responses: unknown field \"{rk}\"")),
                            }
                        }
                        Some(r)
                    }
                    other => {
                        return err(
                            &v.pos,
                            format!("allow_responses: expected true/false or a block, got {}", other.kind()),
                        );
                    }
                }
            }
            _ if m.used_as_vars.iter().any(|x| x == key) => {}
            _ => return err(kpos, format!("permissions: unknown field \"{key}\"")),
        }
    }
    Ok(p)
}

/// One direction's permissions: `"a"`, `["a", "b"]` (allow lists) or `{ allow, deny }`.
fn subject_perm(key: &str, n: &Node) -> Result<SubjectPerm, ConfError> {
    let list = |key: &str, n: &Node| -> Result<Vec<String>, ConfError> {
        let subjects = match &n.value {
            Value::Array(items) => items.iter().map(|i| string(key, i)).collect::<Result<Vec<_>, _>>()?,
            _ => vec![string(key, n)?],
        };
        for s in &subjects {
            if !weir_core::subject::is_valid_pattern(s) {
                return err(&n.pos, format!("{key}: invalid subject \"{s}\""));
            }
        }
        Ok(subjects)
    };
    match &n.value {
        Value::Map(m) => {
            let mut p = SubjectPerm::default();
            for (k, kpos, v) in &m.entries {
                match k.to_ascii_lowercase().as_str() {
                    "allow" => p.allow = Some(list(k, v)?),
                    "deny" => p.deny = list(k, v)?,
                    _ if m.used_as_vars.iter().any(|x| x == k) => {}
                    _ => return err(kpos, format!("{key}: unknown field \"{k}\"")),
                }
            }
            Ok(p)
        }
        _ => Ok(SubjectPerm { allow: Some(list(key, n)?), deny: Vec::new() }),
    }
}

fn cluster(m: &Map, c: &mut FileConfig) -> Result<(), ConfError> {
    let (mut host, mut port_no) = (None, None);
    for (key, kpos, n) in &m.entries {
        match key.to_ascii_lowercase().as_str() {
            "name" => {
                let s = string(key, n)?;
                if s.contains(' ') {
                    return err(&n.pos, "cluster name cannot contain spaces");
                }
                c.cluster_name = Some(s);
            }
            "listen" => c.cluster = Some(string(key, n).or_else(|_| int(key, n).map(|p| format!("0.0.0.0:{p}")))?),
            "host" | "net" => host = Some(string(key, n)?),
            "port" => port_no = Some(port(key, n)?),
            "routes" => c.routes = strings(key, n)?,
            "tls" => c.cluster_tls = Some(tls("cluster tls", kpos, n)?),
            "authorization" | "pool_size" | "compression" | "accounts" => {
                return err(kpos, format!("cluster: \"{key}\" is not supported by weir yet"));
            }
            "no_advertise" => c.no_advertise = Some(boolean(key, n)?),
            "advertise" | "cluster_advertise" | "connect_retries" => {}
            _ if m.used_as_vars.iter().any(|v| v == key) => {}
            _ => return err(kpos, format!("cluster: unknown field \"{key}\"")),
        }
    }
    if let Some(p) = port_no {
        c.cluster = Some(format!("{}:{}", host.as_deref().unwrap_or("0.0.0.0"), p.max(0)));
    }
    Ok(())
}

/// nats-server's `tls { }` keys that weir does not implement.
const TLS_NOT_SUPPORTED: &[&str] = &[
    "insecure",
    "verify_and_map",
    "verify_cert_and_check_known_urls",
    "allow_insecure_cipher_suites",
    "cipher_suites",
    "curve_preferences",
    "connection_rate_limit",
    "pinned_certs",
    "cert_store",
    "cert_match_by",
    "cert_match",
    "ca_certs_match",
    "cert_match_skip_invalid",
    "ocsp_peer",
    "certs",
    "min_version",
];

/// A `tls { }` block (`what` names it in errors). The files are read when the server
/// starts; here only their presence is checked, as nats-server's texts say it.
fn tls(what: &str, kpos: &Pos, n: &Node) -> Result<TlsConfig, ConfError> {
    let m = map(what, n)?;
    let mut t = TlsConfig::default();
    for (key, kpos, v) in &m.entries {
        match key.to_ascii_lowercase().as_str() {
            "cert_file" => t.cert_file = string(key, v)?.into(),
            "key_file" => t.key_file = string(key, v)?.into(),
            "ca_file" => t.ca_file = Some(string(key, v)?.into()),
            "verify" => t.verify = boolean(key, v)?,
            "timeout" => t.timeout = duration(key, v)?,
            "handshake_first" | "first" | "immediate" => {
                t.handshake_first = match &v.value {
                    Value::Bool(b) => *b,
                    Value::Str(s) if matches!(s.to_ascii_lowercase().as_str(), "true" | "on") => true,
                    Value::Str(s) if matches!(s.to_ascii_lowercase().as_str(), "false" | "off") => false,
                    // A fallback delay: wait that long for the client to start TLS, else
                    // INFO in plaintext first (nats-server's `TLSHandshakeFirstFallback`).
                    Value::Str(s) if s.eq_ignore_ascii_case("auto") => {
                        t.first_fallback = Some(weir_core::server::tls::DEFAULT_FIRST_FALLBACK);
                        true
                    }
                    _ => {
                        let d = duration(key, v)?;
                        if d.is_zero() {
                            return err(&v.pos, format!("{what}: {key}: a fallback delay must be above zero"));
                        }
                        t.first_fallback = Some(d);
                        true
                    }
                }
            }
            k if TLS_NOT_SUPPORTED.contains(&k) => {
                return err(kpos, format!("{what}: \"{key}\" is not supported by weir yet"));
            }
            _ if m.used_as_vars.iter().any(|x| x == key) => {}
            _ => return err(kpos, format!("{what}: unknown field \"{key}\"")),
        }
    }
    t.check().or_else(|e| err(kpos, format!("{what}: {e}")))?;
    Ok(t)
}

fn set_store_dir(c: &mut FileConfig, key: &str, n: &Node) -> Result<(), ConfError> {
    if c.jetstream.store_dir.is_some() {
        return err(&n.pos, "Duplicate 'store_dir' configuration");
    }
    c.jetstream.store_dir = Some(string(key, n)?.into());
    Ok(())
}

fn jetstream(n: &Node, c: &mut FileConfig) -> Result<(), ConfError> {
    match &n.value {
        Value::Bool(b) => c.jetstream.enabled = *b,
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "enable" => c.jetstream.enabled = true,
            "disabled" | "disable" => c.jetstream.enabled = false,
            _ => return err(&n.pos, format!("Expected 'enabled' or 'disabled' for string value, got '{s}'")),
        },
        Value::Map(m) => {
            c.jetstream.enabled = true;
            for (key, kpos, v) in &m.entries {
                match key.to_ascii_lowercase().as_str() {
                    "store" | "store_dir" | "storedir" => set_store_dir(c, key, v)?,
                    "max_memory_store" | "max_mem_store" | "max_mem" => c.jetstream.max_memory = Some(size(key, v)?),
                    "max_file_store" | "max_file" => c.jetstream.max_file = Some(size(key, v)?),
                    "strict" => c.jetstream.strict = Some(boolean(key, v)?),
                    "domain" => c.jetstream.domain = Some(string(key, v)?),
                    "enable" | "enabled" => c.jetstream.enabled = boolean(key, v)?,
                    "limits" => jetstream_limits(key, v, c)?,
                    "sync" | "sync_interval" | "max_outstanding_catchup" | "unique_tag" => {}
                    _ if m.used_as_vars.iter().any(|x| x == key) => {}
                    _ => return err(kpos, format!("jetstream: unknown field \"{key}\"")),
                }
            }
        }
        v => return err(&n.pos, format!("jetstream: expected a boolean, 'enabled' or a block, got {}", v.kind())),
    }
    Ok(())
}

/// `jetstream { limits { ... } }` (nats-server's `parseJetStreamLimits`): the consumer
/// limits are applied; `max_ha_assets`, `duplicate_window` and `batch` are accepted and
/// have no effect on one server; other keys are errors as in nats-server.
fn jetstream_limits(key: &str, n: &Node, c: &mut FileConfig) -> Result<(), ConfError> {
    let Value::Map(m) = &n.value else {
        return err(&n.pos, format!("Expected a map to define JetStreamLimits, got {}", n.value.kind()));
    };
    for (k, kpos, v) in &m.entries {
        match k.to_ascii_lowercase().as_str() {
            "max_request_batch" => c.jetstream.max_request_batch = Some(int(k, v)?),
            "max_ack_pending" => c.jetstream.max_ack_pending = Some(int(k, v)?),
            "max_ha_assets" | "duplicate_window" | "batch" => {}
            _ if m.used_as_vars.iter().any(|x| x == k) => {}
            _ => return err(kpos, format!("{key}: unknown field \"{k}\"")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        let m = conf::parse_str(text, "w.conf", Path::new("."), &|_| None).map_err(|e| e.to_string())?;
        from_map(&m).map_err(|e| e.to_string())
    }

    #[test]
    fn weirs_older_flat_format_still_parses() {
        let c = parse("# weir\nport: 4333\nmax_payload = 2MB  # two\nhost: \"0.0.0.0\"\nping_interval: 30s\n").unwrap();
        assert_eq!(c.port, Some(4333));
        assert_eq!(c.max_payload, Some(2 << 20));
        assert_eq!(c.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(c.ping_interval, Some(Duration::from_secs(30)));
        let c = parse("token: \"s3cret\"\nuser: bob\npassword = pw\n").unwrap();
        assert_eq!(
            (c.token.as_deref(), c.user.as_deref(), c.password.as_deref()),
            (Some("s3cret"), Some("bob"), Some("pw"))
        );
        // The route list was one comma-separated line; it must now be quoted or an array.
        let c = parse("cluster: 127.0.0.1:6222\nroutes: \"nats-route://a:1, nats-route://b:2\"\ncluster_name: east\n")
            .unwrap();
        assert_eq!(c.cluster.as_deref(), Some("127.0.0.1:6222"));
        assert_eq!(c.routes, vec!["nats-route://a:1", "nats-route://b:2"]);
        assert_eq!(c.cluster_name.as_deref(), Some("east"));
        assert_eq!(strip_scheme("nats-route://a:1"), "a:1");
        assert_eq!(strip_scheme("nats://h:2/"), "h:2");
        assert_eq!(strip_scheme("h:3"), "h:3");
    }

    #[test]
    fn nats_server_style_file() {
        let c = parse("listen: 127.0.0.1:-1\nmonitor_port: 8333\nserver_name: $NAME\nNAME = n1\n");
        // A variable must be defined before it is used.
        assert!(c.unwrap_err().contains("variable '$NAME' is not defined"));
        let c = parse(
            "NAME = n1\nlisten: 127.0.0.1:-1\nmonitor_port: 8333\nserver_name: $NAME\n\
             max_connections: 10\nmax_subs: 5\nping_interval: \"100ms\"\nwrite_deadline: 2\n\
             authorization { user: bob\n password: pw\n timeout: 0.5 }\n\
             cluster { name: east, listen: 0.0.0.0:6222, routes: [nats-route://a:1, nats-route://b:2] }\n\
             jetstream { store_dir: /tmp/js, max_mem_store: 1GB, max_file_store: 10G, strict: false }\n\
             pid_file: /tmp/w.pid\nports_file_dir: /tmp\nlog_file: /tmp/w.log\ndebug: true\n",
        )
        .unwrap();
        assert_eq!((c.host.as_deref(), c.port, c.http_port), (Some("127.0.0.1"), Some(-1), Some(8333)));
        assert_eq!(c.server_name.as_deref(), Some("n1"));
        assert_eq!((c.max_connections, c.max_subscriptions), (Some(10), Some(5)));
        assert_eq!(c.ping_interval, Some(Duration::from_millis(100)));
        assert_eq!(c.write_deadline, Some(Duration::from_secs(2)));
        assert_eq!((c.user.as_deref(), c.password.as_deref()), (Some("bob"), Some("pw")));
        assert_eq!(c.auth_timeout, Some(Duration::from_millis(500)));
        assert_eq!(c.cluster_name.as_deref(), Some("east"));
        assert_eq!(c.cluster.as_deref(), Some("0.0.0.0:6222"));
        assert_eq!(c.routes, vec!["nats-route://a:1", "nats-route://b:2"]);
        assert_eq!(
            c.jetstream,
            JetStreamConfig {
                enabled: true,
                store_dir: Some("/tmp/js".into()),
                max_memory: Some(1 << 30),
                max_file: Some(10_000_000_000),
                strict: Some(false),
                domain: None,
                max_request_batch: None,
                max_ack_pending: None,
            }
        );
        assert_eq!(c.pid_file, Some("/tmp/w.pid".into()));
        assert_eq!(c.debug, Some(true));
    }

    #[test]
    fn durations_accept_sub_second_and_bare_units() {
        assert_eq!(parse("ping_interval: 2m\n").unwrap().ping_interval, Some(Duration::from_secs(120)));
        let c =
            parse("lame_duck_duration: 30s\nlame_duck_grace_period: '500ms'\nclient_advertise: \"a.example:4333\"\n")
                .unwrap();
        assert_eq!(c.lame_duck_duration, Some(Duration::from_secs(30)));
        assert_eq!(c.lame_duck_grace_period, Some(Duration::from_millis(500)));
        assert_eq!(c.client_advertise.as_deref(), Some("a.example:4333"));
        assert_eq!(parse("cluster { listen: 6222, no_advertise: true }\n").unwrap().no_advertise, Some(true));
        assert_eq!(parse("ping_interval: '250ms'\n").unwrap().ping_interval, Some(Duration::from_millis(250)));
        assert_eq!(parse("ping_interval: 1h\n").unwrap().ping_interval, Some(Duration::from_secs(3600)));
        assert!(parse("ping_interval: \"soon\"\n").unwrap_err().starts_with("w.conf:1:16: ping_interval:"));
    }

    #[test]
    fn jetstream_limits_block() {
        let c =
            parse("jetstream { limits { max_request_batch: 100, max_ack_pending: 20, max_ha_assets: 2 } }\n").unwrap();
        assert_eq!((c.jetstream.max_request_batch, c.jetstream.max_ack_pending), (Some(100), Some(20)));
        assert!(parse("jetstream { limits { nope: 1 } }\n").unwrap_err().contains("unknown field \"nope\""));
        assert!(parse("jetstream { limits: 5 }\n").unwrap_err().contains("Expected a map"));
    }

    #[test]
    fn jetstream_forms() {
        assert!(parse("jetstream: enabled\n").unwrap().jetstream.enabled);
        assert!(!parse("jetstream: false\n").unwrap().jetstream.enabled);
        let c = parse("store_dir: /a\njetstream: true\n").unwrap();
        assert_eq!(c.jetstream.store_dir, Some("/a".into()));
        assert!(parse("store_dir: /a\njetstream { store_dir: /b }\n").unwrap_err().contains("Duplicate 'store_dir'"));
        assert!(parse("jetstream: maybe\n").unwrap_err().contains("Expected 'enabled' or 'disabled'"));
    }

    /// nats-server refuses to start on an unknown top-level field (`unknown field "x"`,
    /// with the position), unless the key is only used as a variable; weir does the same.
    #[test]
    fn unknown_fields_are_errors_like_nats_server() {
        assert_eq!(parse("port: 1\ncolour: red\n").unwrap_err(), "w.conf:2:1: unknown field \"colour\"");
        assert_eq!(parse("cluster { nme: x }\n").unwrap_err(), "w.conf:1:11: cluster: unknown field \"nme\"");
        assert_eq!(parse("P = 4\nport: $P\n").unwrap().port, Some(4));
        assert_eq!(parse("gateway { name: x }\n").unwrap_err(), "w.conf:1:1: \"gateway\" is not supported by weir yet");
        assert!(parse("\nport: lots").unwrap_err().starts_with("w.conf:2:7: port: 'lots' is not an integer"));
        assert!(parse("port: 70000").unwrap_err().contains("not a port"));
        assert!(
            parse("authorization { token: t, user: u }").unwrap_err().contains("Cannot have a user/pass and token")
        );
    }

    #[test]
    fn tls_blocks_as_nats_server_writes_them() {
        let c = parse(
            "tls {\n  cert_file: \"/c/server.pem\"\n  key_file: /c/key.pem\n  ca_file: /c/ca.pem\n  verify: true\n  timeout: 0.5\n  handshake_first: true\n}\n\
             cluster { listen: 127.0.0.1:6222, tls { cert_file: r.pem, key_file: rk.pem, ca_file: ca.pem, timeout: \"3s\" } }\n",
        )
        .unwrap();
        let t = c.tls.unwrap();
        assert_eq!(
            (t.cert_file, t.key_file, t.ca_file),
            ("/c/server.pem".into(), "/c/key.pem".into(), Some("/c/ca.pem".into()))
        );
        assert!(t.verify && t.handshake_first);
        assert_eq!(t.timeout, Duration::from_millis(500));
        let r = c.cluster_tls.unwrap();
        assert_eq!((r.cert_file, r.timeout, r.verify), ("r.pem".into(), Duration::from_secs(3), false));
        assert!(
            parse("tls { cert_file: c, key_file: k, handshake_first: \"on\" }").unwrap().tls.unwrap().handshake_first
        );
        // nats-server's wording for a half-configured pair; the position is the block's key.
        assert_eq!(
            parse("tls { cert_file: c }").unwrap_err(),
            "w.conf:1:1: tls: missing 'key_file' in TLS configuration"
        );
        assert_eq!(
            parse("\ntls { key_file: k }").unwrap_err(),
            "w.conf:2:1: tls: missing 'cert_file' in TLS configuration"
        );
        assert!(
            parse("tls { cert_file: c, key_file: k, verify: true }").unwrap_err().contains("'verify' needs 'ca_file'")
        );
        assert_eq!(
            parse("tls { cert_file: c, key_file: k, pinned_certs: [] }").unwrap_err(),
            "w.conf:1:34: tls: \"pinned_certs\" is not supported by weir yet"
        );
        assert_eq!(
            parse("tls { cert_file: c, key_file: k, colour: red }").unwrap_err(),
            "w.conf:1:34: tls: unknown field \"colour\""
        );
        let auto = parse("tls { cert_file: c, key_file: k, handshake_first: auto }").unwrap().tls.unwrap();
        assert!(auto.handshake_first);
        assert_eq!(auto.first_fallback, Some(Duration::from_millis(50)));
        let delay = parse("tls { cert_file: c, key_file: k, handshake_first: 300ms }").unwrap().tls.unwrap();
        assert_eq!((delay.handshake_first, delay.first_fallback), (true, Some(Duration::from_millis(300))));
        assert!(parse("tls { cert_file: c, key_file: k, handshake_first: sometimes }").is_err());
        assert!(parse("tls: yes").unwrap_err().contains("expected a block"));
    }

    /// tests/configs/accounts.conf (the file nats-server runs tests/nats_accounts.rs with)
    /// parses to the users that test builds for weir.
    #[test]
    fn accounts_users_permissions_and_nkeys() {
        let text = std::fs::read_to_string("tests/configs/accounts.conf").unwrap();
        let c = parse(&text).unwrap();
        assert_eq!(c.accounts, vec!["A", "B"]);
        assert_eq!(c.no_auth_user.as_deref(), Some("a"));
        let names: Vec<(&str, &str)> = c.users.iter().map(|u| (u.name(), u.account.as_str())).collect();
        assert_eq!(
            names,
            [
                ("a", "A"),
                ("b", "B"),
                ("limited", "$G"),
                ("responder", "$G"),
                ("g", "$G"),
                ("UAMX62ZD4FWIKMWGVPEDR6WNL2TYTPQMO2ZJEAZUAON7VCZ5G2GWCXLM", "$G")
            ]
        );
        let limited = c.users[2].permissions.as_ref().unwrap();
        assert!(limited.can_publish("allowed.x") && !limited.can_publish("allowed.secret"));
        assert!(limited.can_subscribe("_INBOX.1") && !limited.can_subscribe("x"));
        assert!(limited.denies_delivery("allowed.hidden"));
        let responder = c.users[3].permissions.as_ref().unwrap();
        assert!(responder.allow_responses.is_some() && responder.can_publish("none.1") && !responder.can_publish("x"));
        assert!(matches!(c.users[5].cred, Credential::Nkey(_)));
        // The short forms: a string or a list is an allow list; allow_responses as a block.
        let c = parse(
            "authorization { users: [ { user: u, password: p, permissions: { pub: [a, b], sub: c, \
             allow_responses: { max: 3, expires: \"1m\" } } } ] }\naccount_max_outbound: 1MB\n",
        )
        .unwrap();
        let p = c.users[0].permissions.as_ref().unwrap();
        assert!(p.can_publish("a") && p.can_publish("b") && !p.can_publish("c") && p.can_subscribe("c"));
        assert_eq!(p.allow_responses, Some(ResponsePerm { max_msgs: 3 }));
        assert_eq!(c.account_max_outbound, Some(1 << 20));
    }

    #[test]
    fn bad_users_and_accounts_are_errors() {
        assert!(parse("authorization { users: [ { nkey: Ubad } ] }").unwrap_err().contains("Not a valid public nkey"));
        assert!(
            parse("authorization { user: x, password: y, users: [ { user: u } ] }")
                .unwrap_err()
                .contains("users array")
        );
        assert!(parse("accounts { A: { users: [] }, A: {} }").is_ok(), "a repeated key replaces the earlier one");
        assert!(parse("accounts { \"$G\": {} }").unwrap_err().contains("default account"));
        assert!(parse("accounts { A: { exports: [] } }").unwrap_err().contains("\"exports\" is not supported"));
        assert!(
            parse("authorization { users: [ { user: u, permissions: { publish: { allow: \"a..b\" } } } ] }")
                .unwrap_err()
                .contains("invalid subject")
        );
        assert!(
            parse("authorization { users: [ { user: u, permissions: { colour: x } } ] }")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
