//! `weir stream ...` and `weir consumer ...`: JetStream admin commands that talk to any
//! server (weir or nats-server) over the NATS protocol through the `$JS.API.*` JSON
//! requests, with output laid out like the nats CLI's and `--json` for the raw responses.
//!
//! The server comes from `--server`/`-s URL` (comma-separated URLs accepted), else
//! `NATS_URL`, else `nats://127.0.0.1:4222`, as the nats CLI takes it. An error the
//! server answers with is printed with its description, `code` and `err_code`, and the
//! command exits non-zero. Removing and purging need `--force`; nothing prompts.

mod client;
mod consumer;
mod show;
mod stream;

use client::{AdminError, Api};
use std::path::PathBuf;
use std::time::Duration;

/// Flags every admin command takes.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// NATS server URL(s), comma-separated [env: NATS_URL] [default: nats://127.0.0.1:4222].
    #[arg(short = 's', long = "server", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Print the server's raw JSON API response(s) instead of text.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// How long to wait for the connection and for each API answer.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `weir stream`.
#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: StreamCmd,
}

#[derive(clap::Subcommand, Debug)]
enum StreamCmd {
    /// List the streams (STREAM.LIST).
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the names, one a line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Show a stream's configuration and state (STREAM.INFO).
    Info {
        /// Stream name.
        stream: String,
    },
    /// Show how many messages each subject of a stream holds, and the total.
    Subjects {
        /// Stream name.
        stream: String,
        /// Only subjects matching this filter [default: >].
        filter: Option<String>,
    },
    /// Create a stream (STREAM.CREATE) from flags and/or a JSON config file.
    #[command(visible_alias = "create")]
    Add(Box<stream::AddArgs>),
    /// Delete a stream and its messages (STREAM.DELETE); needs --force.
    #[command(visible_alias = "delete")]
    Rm {
        /// Stream name.
        stream: String,
        /// Really delete.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove messages from a stream (STREAM.PURGE); needs --force.
    Purge {
        /// Stream name.
        stream: String,
        /// Really purge.
        #[arg(short = 'f', long)]
        force: bool,
        /// Only messages on subjects matching this filter.
        #[arg(long)]
        subject: Option<String>,
        /// Only messages below this sequence.
        #[arg(long, conflicts_with = "keep")]
        seq: Option<u64>,
        /// Keep this many of the newest messages.
        #[arg(long)]
        keep: Option<u64>,
    },
}

/// `weir consumer`.
#[derive(clap::Args, Debug)]
pub struct ConsumerArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: ConsumerCmd,
}

#[derive(clap::Subcommand, Debug)]
enum ConsumerCmd {
    /// List a stream's consumers (CONSUMER.LIST).
    #[command(visible_alias = "list")]
    Ls {
        /// Stream name.
        stream: String,
        /// Print only the names, one a line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Show a consumer's configuration and state (CONSUMER.INFO).
    Info {
        /// Stream name.
        stream: String,
        /// Consumer name.
        consumer: String,
    },
    /// Create a consumer (CONSUMER.CREATE) from flags and/or a JSON config file.
    #[command(visible_alias = "create")]
    Add(Box<consumer::AddArgs>),
    /// Delete a consumer (CONSUMER.DELETE); needs --force.
    #[command(visible_alias = "delete")]
    Rm {
        /// Stream name.
        stream: String,
        /// Consumer name.
        consumer: String,
        /// Really delete.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// Run `weir stream ...`.
pub async fn stream(args: StreamArgs) -> Result<(), String> {
    let api = connect(&args.conn).await?;
    let json = args.conn.json;
    let r = match args.cmd {
        StreamCmd::Ls { names } => stream::ls(&api, json, names).await,
        StreamCmd::Info { stream } => stream::info(&api, json, &stream).await,
        StreamCmd::Subjects { stream, filter } => stream::subjects(&api, json, &stream, filter.as_deref()).await,
        StreamCmd::Add(a) => stream::add(&api, json, *a).await,
        StreamCmd::Rm { stream, force } => stream::rm(&api, json, &stream, force).await,
        StreamCmd::Purge { stream, force, subject, seq, keep } => {
            stream::purge(&api, json, &stream, force, stream::PurgeArgs { subject, seq, keep }).await
        }
    };
    r.map_err(|e| e.to_string())
}

/// Run `weir consumer ...`.
pub async fn consumer(args: ConsumerArgs) -> Result<(), String> {
    let api = connect(&args.conn).await?;
    let json = args.conn.json;
    let r = match args.cmd {
        ConsumerCmd::Ls { stream, names } => consumer::ls(&api, json, &stream, names).await,
        ConsumerCmd::Info { stream, consumer } => consumer::info(&api, json, &stream, &consumer).await,
        ConsumerCmd::Add(a) => consumer::add(&api, json, *a).await,
        ConsumerCmd::Rm { stream, consumer, force } => consumer::rm(&api, json, &stream, &consumer, force).await,
    };
    r.map_err(|e| e.to_string())
}

async fn connect(conn: &Conn) -> Result<Api, String> {
    let url = client::server_url(conn.server.as_deref());
    Api::connect(&url, conn.timeout).await.map_err(|e| e.to_string())
}

/// Print a raw API response body (for `--json`).
fn print_raw(body: &[u8]) {
    println!("{}", String::from_utf8_lossy(body));
}

/// A JSON object read from `--config FILE`, or an empty object.
fn config_file(path: Option<&PathBuf>) -> Result<serde_json::Map<String, serde_json::Value>, AdminError> {
    let Some(path) = path else { return Ok(serde_json::Map::new()) };
    let text =
        std::fs::read_to_string(path).map_err(|e| AdminError::Other(format!("cannot read {}: {e}", path.display())))?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(AdminError::Other(format!("{}: the config is not a JSON object", path.display()))),
        Err(e) => Err(AdminError::Other(format!("{}: invalid JSON: {e}", path.display()))),
    }
}

/// A duration flag: Go/nats-server forms (`100ms`, `2m`, `1h30m`, bare seconds) plus the
/// nats CLI's `d`, `w` and `y` suffixes (`7d`, `1y`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    for (suffix, secs) in [("y", 365 * 86_400), ("w", 7 * 86_400), ("d", 86_400)] {
        if let Some(n) = t.strip_suffix(suffix).and_then(|n| n.parse::<f64>().ok()) {
            if n < 0.0 || !n.is_finite() {
                return Err(format!("'{t}' is not a duration"));
            }
            return Ok(Duration::from_secs_f64(n * secs as f64));
        }
    }
    crate::conf::parse_duration(t)
}

/// Nanoseconds of a duration flag, as the API's integer durations; `-1`, `0` and
/// `unlimited` give 0 (no limit).
fn duration_ns(s: &str) -> Result<i64, String> {
    if matches!(s.trim(), "-1" | "0" | "unlimited") {
        return Ok(0);
    }
    Ok(i64::try_from(parse_duration(s)?.as_nanos()).unwrap_or(i64::MAX))
}

/// A size flag in bytes (`1048576`, `512KB`, `1GiB`); `-1` and `unlimited` give -1.
fn size(s: &str) -> Result<i64, String> {
    if matches!(s.trim(), "-1" | "unlimited") {
        return Ok(-1);
    }
    crate::config::parse_size(s).map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1y").unwrap(), Duration::from_secs(365 * 86_400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(2 * 86_400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
        assert_eq!(duration_ns("unlimited").unwrap(), 0);
        assert_eq!(duration_ns("2m").unwrap(), 120_000_000_000);
        assert_eq!(size("-1").unwrap(), -1);
        assert_eq!(size("1KiB").unwrap(), 1024);
        assert!(size("lots").is_err());
    }
}
