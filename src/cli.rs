//! `weir serve`'s flags, named as nats-server names them, and the argument rewriting that
//! lets weir be started the way client test harnesses start nats-server.
//!
//! nats-server parses flags with Go's `flag` package, so every long flag also works with
//! one dash (`-js`, `-sd DIR`, `-port 4222`, `-routes=...`), and harnesses run it without a
//! subcommand. [`normalize_args`] rewrites such a command line into clap's form:
//! `weir -p -1 -js` becomes `weir serve -p -1 --js`. Combined short flags such as `-DV`,
//! `-VV` and `-DVV` are clap's own short-flag clusters of `-D` (debug) and `-V` (trace).

use crate::config;
use clap::{CommandFactory, Parser};
use std::path::PathBuf;
use std::time::Duration;

/// `weir serve` flags, named like nats-server's where they overlap. Flags override the config file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// Host to listen on for clients [default: 127.0.0.1].
    #[arg(short = 'a', long = "addr", visible_aliases = ["net"], value_name = "HOST")]
    pub addr: Option<String>,
    /// Client port [default: 4222]; -1 (or 0) picks a random free port.
    #[arg(short = 'p', long, allow_negative_numbers = true)]
    pub port: Option<i32>,
    /// Monitoring HTTP port (/healthz, /varz, /metrics); -1 picks a random free port; off unless set.
    #[arg(short = 'm', long = "http_port", visible_aliases = ["monitor_port"], allow_negative_numbers = true)]
    pub http_port: Option<i32>,
    /// Server name reported in INFO and /varz.
    #[arg(short = 'n', long = "name", visible_aliases = ["server_name"])]
    pub server_name: Option<String>,
    /// Config file in nats-server's format (see README). Flags override it.
    #[arg(short = 'c', long)]
    pub config: Option<PathBuf>,
    /// Write the log to FILE instead of stderr.
    #[arg(short = 'l', long = "log", visible_aliases = ["log_file"], value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write the process id to FILE.
    #[arg(short = 'P', long = "pid", visible_aliases = ["pid_file"], value_name = "FILE")]
    pub pid: Option<PathBuf>,
    /// Write `<exe>_<pid>.ports` (JSON: the client, monitoring and cluster URLs) into DIR once listening.
    #[arg(long = "ports_file_dir", value_name = "DIR")]
    pub ports_file_dir: Option<PathBuf>,
    /// Enable JetStream (streams, consumers and the `$JS.API`).
    #[arg(long = "jetstream", visible_aliases = ["js"])]
    pub jetstream: bool,
    /// JetStream store directory; data goes in DIR/jetstream [default: ./weir-data].
    #[arg(long = "store_dir", visible_aliases = ["sd"], value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
    /// Debug logging (`-DV` = debug and trace).
    #[arg(short = 'D', long = "debug", action = clap::ArgAction::Count)]
    pub debug: u8,
    /// Trace logging (`-VV` is accepted too).
    #[arg(short = 'V', long = "trace", action = clap::ArgAction::Count)]
    pub trace: u8,
    /// Largest message a client may publish, e.g. 1048576, 1MB or 1MiB [default: 1MB].
    #[arg(long = "max_payload", value_parser = config::parse_size)]
    pub max_payload: Option<u64>,
    /// Per-client outbound cap, e.g. 64MB; a client over it is a slow consumer [default: 64MB].
    #[arg(long = "max_pending", value_parser = config::parse_size)]
    pub max_pending: Option<u64>,
    /// Most client connections at once [default: 65536] (weir's flag for nats-server's config key).
    #[arg(long = "max_connections", visible_aliases = ["max_conn"])]
    pub max_connections: Option<usize>,
    /// Most subscriptions per connection, 0 = no limit [default: 0] (weir's flag for nats-server's config key).
    #[arg(long = "max_subscriptions", visible_aliases = ["max_subs"])]
    pub max_subscriptions: Option<usize>,
    /// Server PING interval, e.g. 100ms, 2m, or seconds [default: 2m].
    #[arg(long = "ping_interval", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// NATS server level advertised in INFO `version` [default: 2.11.0].
    #[arg(long = "nats_version", value_name = "X.Y.Z")]
    pub nats_version: Option<String>,
    /// Token clients must send in CONNECT (`auth_token`).
    #[arg(long = "auth", value_name = "TOKEN")]
    pub auth: Option<String>,
    /// User clients must send in CONNECT (with --pass).
    #[arg(long)]
    pub user: Option<String>,
    /// Password for --user.
    #[arg(long)]
    pub pass: Option<String>,
    /// Route listen address for clustering, `host:port` (a `nats://` prefix is accepted).
    #[arg(long = "cluster", visible_aliases = ["cluster_listen"], value_name = "HOST:PORT")]
    pub cluster: Option<String>,
    /// Routes to other servers, comma-separated and/or repeated: `nats-route://host:port,...`.
    #[arg(long = "routes", value_name = "URLS", value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Cluster name; servers with different names do not connect [default: weir].
    #[arg(long = "cluster_name")]
    pub cluster_name: Option<String>,
    /// Client address (`host` or `host:port`) advertised to the cluster and through it to clients.
    #[arg(long = "client_advertise", value_name = "HOST:PORT")]
    pub client_advertise: Option<String>,
    /// Do not advertise the cluster's client URLs to clients (INFO `connect_urls`).
    #[arg(long = "no_advertise", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub no_advertise: Option<bool>,
    /// Require TLS from clients (needs --tlscert and --tlskey); `--tls=false` turns off a config file's TLS.
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub tls: Option<bool>,
    /// TLS with client verification: clients need a certificate signed by --tlscacert.
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub tlsverify: Option<bool>,
    /// Server certificate file (PEM); implies --tls.
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Private key of the server certificate (PEM); implies --tls.
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// CA certificate(s) that client certificates must chain to (PEM); implies --tls.
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Send a running server a signal command and exit, as nats-server's: stop, quit, term,
    /// reopen (log file), reload (config file), ldm (lame duck); `=PID` or `=PIDFILE` picks
    /// the process (else the one running weir).
    #[arg(long = "signal", visible_aliases = ["sl"], value_name = "CMD[=PID]")]
    pub signal: Option<String>,
    /// Check the config file given with -c and exit (0 if it loads), as nats-server's -t.
    #[arg(short = 't')]
    pub test_config: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::conf::parse_duration(s)
}

/// A parser for [`ServeArgs`] alone, to list its long names.
#[derive(Parser)]
struct ServeOnly {
    #[command(flatten)]
    args: ServeArgs,
}

/// Every long flag name and alias of `weir serve`.
fn long_names() -> Vec<String> {
    ServeOnly::command()
        .get_arguments()
        .flat_map(|a| {
            a.get_long()
                .into_iter()
                .chain(a.get_all_aliases().unwrap_or_default())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Top-level words that are not `serve` flags.
const SUBCOMMANDS: &[&str] = &["serve", "raft-node", "propose", "stream", "str", "consumer", "con", "help"];

/// Rewrite a nats-server-style command line for clap: with no subcommand and a first
/// argument that is a flag, `serve` is implied; a one-dash long flag (`-js`, `-port`,
/// `-routes=...`) becomes two-dash. `-h`, `--help`, `-v`, `--version` stay top-level.
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut it = args.into_iter();
    let mut out: Vec<String> = it.next().into_iter().collect();
    let rest: Vec<String> = it.collect();
    let first = rest.first().map(String::as_str);
    let serve = match first {
        Some("-h" | "--help" | "-v" | "--version") | None => return out.into_iter().chain(rest).collect(),
        Some(f) if SUBCOMMANDS.contains(&f) => f == "serve",
        Some(f) => {
            if f.starts_with('-') {
                out.push("serve".to_owned());
                true
            } else {
                false
            }
        }
    };
    if !serve {
        return out.into_iter().chain(rest).collect();
    }
    let longs = long_names();
    for a in rest {
        let name = a.strip_prefix('-').filter(|n| !n.starts_with('-')).map(|n| n.split('=').next().unwrap_or(n));
        match name {
            Some(n) if n.len() > 1 && longs.iter().any(|l| l == n) => out.push(format!("-{a}")),
            _ => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        normalize_args(s.split(' ').map(str::to_owned).collect()).join(" ")
    }

    #[test]
    fn harness_command_lines_become_serve_flags() {
        assert_eq!(norm("weir -p -1 -js -sd /tmp/x -DV"), "weir serve -p -1 --js --sd /tmp/x -DV");
        assert_eq!(norm("weir -port 4 -routes=a,b --name x"), "weir serve --port 4 --routes=a,b --name x");
        assert_eq!(norm("weir serve -jetstream -store_dir d"), "weir serve --jetstream --store_dir d");
        assert_eq!(norm("weir --version"), "weir --version");
        assert_eq!(norm("weir raft-node --id 1"), "weir raft-node --id 1");
        // Unknown one-dash words are left for clap to reject (or read as short clusters).
        assert_eq!(norm("weir -DVV -xyz"), "weir serve -DVV -xyz");
    }

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(clap::Subcommand)]
    enum Cmd {
        Serve(ServeArgs),
    }

    fn parse(s: &str) -> ServeArgs {
        let Cmd::Serve(a) = Top::try_parse_from(normalize_args(s.split(' ').map(str::to_owned).collect()))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .cmd;
        a
    }

    #[test]
    fn nats_server_flags_parse() {
        let a =
            parse("weir -a 127.0.0.1 -p -1 -m -1 -n srv -js -sd /tmp/js -DV -l /tmp/l -P /tmp/p --ports_file_dir /tmp");
        assert_eq!((a.addr.as_deref(), a.port, a.http_port), (Some("127.0.0.1"), Some(-1), Some(-1)));
        assert_eq!(a.server_name.as_deref(), Some("srv"));
        assert!(a.jetstream);
        assert_eq!(a.store_dir, Some("/tmp/js".into()));
        assert_eq!((a.debug, a.trace), (1, 1));
        assert_eq!(
            (a.log, a.pid, a.ports_file_dir),
            (Some("/tmp/l".into()), Some("/tmp/p".into()), Some("/tmp".into()))
        );
        let a = parse(
            "weir --net 0.0.0.0 --server_name s -VV -D --routes a,b --routes c --cluster_name e --ping_interval 100ms",
        );
        assert_eq!((a.addr.as_deref(), a.server_name.as_deref()), (Some("0.0.0.0"), Some("s")));
        assert_eq!((a.debug, a.trace), (1, 2));
        assert_eq!(a.routes, vec!["a", "b", "c"]);
        assert_eq!(a.ping_interval, Some(Duration::from_millis(100)));
        let a = parse("weir -auth t -user u -pass p -max_subs 3 -max_connections 9");
        assert_eq!((a.auth.as_deref(), a.user.as_deref(), a.pass.as_deref()), (Some("t"), Some("u"), Some("p")));
        assert_eq!((a.max_subscriptions, a.max_connections), (Some(3), Some(9)));
        let a = parse("weir -tls -tlscert c.pem -tlskey k.pem -tlscacert ca.pem -tlsverify");
        assert_eq!((a.tls, a.tlsverify), (Some(true), Some(true)));
        assert_eq!(
            (a.tlscert, a.tlskey, a.tlscacert),
            (Some("c.pem".into()), Some("k.pem".into()), Some("ca.pem".into()))
        );
        assert_eq!(parse("weir -sl=ldm=/var/run/nats/nats.pid").signal.as_deref(), Some("ldm=/var/run/nats/nats.pid"));
        assert_eq!(parse("weir --signal reload").signal.as_deref(), Some("reload"));
        assert!(parse("weir -t -c x.conf").test_config);
        assert_eq!(parse("weir -tls=false -p 1").tls, Some(false));
        assert_eq!(parse("weir -p 1").tls, None);
    }
}
