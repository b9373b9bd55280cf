//! The `weir serve` config file: one `key: value` per line (`key = value` also works),
//! `#` starts a comment. Sizes take an optional `KB`/`MB`/`GB` suffix (powers of 1024),
//! durations are whole seconds (an `s` suffix is allowed). Unknown keys are errors.
//!
//! ```text
//! host: 127.0.0.1
//! port: 4222
//! http_port: 8222
//! server_name: weir-1
//! max_payload: 1MB
//! max_pending: 64MB
//! ping_interval: 120
//! ping_max: 2
//! write_deadline: 10s
//! # either a token ...
//! token: s3cret
//! # ... or one user
//! user: bob
//! password: "pw"
//! cluster: 127.0.0.1:6222
//! routes: nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224
//! cluster_name: weir
//! ```

use std::time::Duration;

/// Settings read from a config file; `None` where the file says nothing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// Client listen host.
    pub host: Option<String>,
    /// Client listen port.
    pub port: Option<u16>,
    /// Monitoring port.
    pub http_port: Option<u16>,
    /// Server name.
    pub server_name: Option<String>,
    /// Maximum message size.
    pub max_payload: Option<u64>,
    /// Per-client outbound cap.
    pub max_pending: Option<u64>,
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
    /// Route listen address (`host:port`).
    pub cluster: Option<String>,
    /// Routes to dial (URLs or `host:port`), comma-separated in the file.
    pub routes: Vec<String>,
    /// Cluster name.
    pub cluster_name: Option<String>,
}

/// `host:port` without a leading `nats://`, `nats-route://` or `route://`.
pub fn strip_scheme(url: &str) -> &str {
    let u = url.trim();
    ["nats-route://", "nats://", "route://"].iter().find_map(|p| u.strip_prefix(p)).unwrap_or(u).trim_end_matches('/')
}

/// Parse a size: digits with an optional `B`, `KB`, `MB` or `GB` suffix (case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let (digits, mult) = [
        ("GB", 1u64 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| upper.strip_suffix(suf).map(|d| (d.trim().to_owned(), *m)))
    .unwrap_or((upper.clone(), 1));
    let n: u64 = digits.parse().map_err(|_| format!("'{t}' is not a size (e.g. 1048576, 512KB, 64MB)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size '{t}' is too large"))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let n: u64 = t.strip_suffix('s').unwrap_or(t).trim().parse().map_err(|_| format!("'{t}' is not whole seconds"))?;
    Ok(Duration::from_secs(n))
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("'{}' is not a valid number", s.trim()))
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(t).to_owned()
}

/// Parse the text of a config file.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let mut c = FileConfig::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", i + 1);
        let (key, value) = line
            .split_once(':')
            .or_else(|| line.split_once('='))
            .ok_or_else(|| at(format!("expected 'key: value', got '{line}'")))?;
        let value = value.trim();
        match key.trim() {
            "host" | "addr" | "net" | "listen_host" => c.host = Some(unquote(value)),
            "port" => c.port = Some(parse_num(value).map_err(at)?),
            "http_port" => c.http_port = Some(parse_num(value).map_err(at)?),
            "server_name" => c.server_name = Some(unquote(value)),
            "max_payload" => c.max_payload = Some(parse_size(value).map_err(at)?),
            "max_pending" => c.max_pending = Some(parse_size(value).map_err(at)?),
            "ping_interval" => c.ping_interval = Some(parse_secs(value).map_err(at)?),
            "ping_max" => c.ping_max = Some(parse_num(value).map_err(at)?),
            "write_deadline" => c.write_deadline = Some(parse_secs(value).map_err(at)?),
            "token" | "auth_token" => c.token = Some(unquote(value)),
            "user" => c.user = Some(unquote(value)),
            "password" | "pass" => c.password = Some(unquote(value)),
            "cluster" | "cluster_listen" => c.cluster = Some(unquote(value)),
            "routes" => {
                c.routes.extend(unquote(value).split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()))
            }
            "cluster_name" => c.cluster_name = Some(unquote(value)),
            other => return Err(at(format!("unknown key '{other}'"))),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_sizes_and_comments() {
        let c = parse("# weir\nport: 4333\nmax_payload = 2MB  # two\nhost: \"0.0.0.0\"\nping_interval: 30s\n").unwrap();
        assert_eq!(c.port, Some(4333));
        assert_eq!(c.max_payload, Some(2 << 20));
        assert_eq!(c.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(c.ping_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn parses_credentials() {
        let c = parse("token: \"s3cret\"\nuser: bob\npassword = pw\n").unwrap();
        assert_eq!(
            (c.token.as_deref(), c.user.as_deref(), c.password.as_deref()),
            (Some("s3cret"), Some("bob"), Some("pw"))
        );
    }

    #[test]
    fn parses_cluster_keys() {
        let c =
            parse("cluster: 127.0.0.1:6222\nroutes: nats-route://a:1, nats-route://b:2\ncluster_name: east\n").unwrap();
        assert_eq!(c.cluster.as_deref(), Some("127.0.0.1:6222"));
        assert_eq!(c.routes, vec!["nats-route://a:1", "nats-route://b:2"]);
        assert_eq!(c.cluster_name.as_deref(), Some("east"));
        assert_eq!(strip_scheme("nats-route://a:1"), "a:1");
        assert_eq!(strip_scheme("nats://h:2/"), "h:2");
        assert_eq!(strip_scheme("h:3"), "h:3");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert_eq!(parse("colour: red").unwrap_err(), "line 1: unknown key 'colour'");
        assert!(parse("\nport: lots").unwrap_err().starts_with("line 2:"));
        assert!(parse("port 4222").unwrap_err().contains("expected 'key: value'"));
        assert!(parse_size("12XB").is_err());
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
    }
}
