//! `weir stream ls | info | subjects | add | rm | purge`.

use super::client::{AdminError, Api};
use super::show::{self, Block, Table, boolean, count, int, string};
use super::{config_file, duration_ns, print_raw, size};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `weir stream add` flags: the common StreamConfig fields. Flags override `--config`;
/// fields left unset are left to the server's defaults.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Stream name (or `name` in --config).
    pub stream: Option<String>,
    /// StreamConfig JSON file (the shape of `weir stream info S --json`'s `config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Subjects the stream stores, comma-separated or repeated [default: the stream name].
    #[arg(long, value_delimiter = ',')]
    pub subjects: Vec<String>,
    /// Storage backend.
    #[arg(long, value_parser = ["file", "memory"])]
    pub storage: Option<String>,
    /// Retention policy.
    #[arg(long, value_parser = ["limits", "interest", "workqueue", "work"])]
    pub retention: Option<String>,
    /// Most messages kept (-1 = unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_msgs: Option<i64>,
    /// Most bytes kept, e.g. 1GiB (-1 = unlimited).
    #[arg(long, allow_hyphen_values = true, value_parser = size)]
    pub max_bytes: Option<i64>,
    /// Oldest message kept, e.g. 1h, 7d, 1y (0 = unlimited).
    #[arg(long, allow_hyphen_values = true, value_parser = duration_ns)]
    pub max_age: Option<i64>,
    /// Most messages kept per subject (-1 = unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_msgs_per_subject: Option<i64>,
    /// Largest message accepted, e.g. 1MiB (-1 = unlimited).
    #[arg(long, allow_hyphen_values = true, value_parser = size)]
    pub max_msg_size: Option<i64>,
    /// Most consumers (-1 = unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_consumers: Option<i64>,
    /// What to do at a limit: drop the oldest messages or refuse new ones.
    #[arg(long, value_parser = ["old", "new"])]
    pub discard: Option<String>,
    /// With --discard new: apply the per-subject limit per subject.
    #[arg(long)]
    pub discard_per_subject: bool,
    /// Window for duplicate detection by Nats-Msg-Id, e.g. 2m.
    #[arg(long, value_parser = duration_ns)]
    pub dupe_window: Option<i64>,
    /// Replicas.
    #[arg(long)]
    pub replicas: Option<i64>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Allow Nats-Rollup headers.
    #[arg(long)]
    pub allow_rollup: bool,
    /// Forbid deleting messages.
    #[arg(long)]
    pub deny_delete: bool,
    /// Forbid purging.
    #[arg(long)]
    pub deny_purge: bool,
    /// Allow direct get.
    #[arg(long)]
    pub allow_direct: bool,
    /// Do not acknowledge publishes.
    #[arg(long)]
    pub no_ack: bool,
}

impl AddArgs {
    /// The StreamConfig JSON: `--config`'s object with the flags laid over it.
    pub fn to_config(&self) -> Result<Value, AdminError> {
        let mut c = config_file(self.config.as_ref())?;
        let mut set = |k: &str, v: Value| {
            c.insert(k.to_owned(), v);
        };
        if let Some(n) = &self.stream {
            set("name", json!(n));
        }
        if !self.subjects.is_empty() {
            set("subjects", json!(self.subjects));
        }
        if let Some(s) = &self.storage {
            set("storage", json!(s));
        }
        if let Some(r) = &self.retention {
            set("retention", json!(if r == "work" { "workqueue" } else { r }));
        }
        let ints = [
            ("max_msgs", self.max_msgs),
            ("max_bytes", self.max_bytes),
            ("max_age", self.max_age),
            ("max_msgs_per_subject", self.max_msgs_per_subject),
            ("max_msg_size", self.max_msg_size),
            ("max_consumers", self.max_consumers),
            ("duplicate_window", self.dupe_window),
            ("num_replicas", self.replicas),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                set(k, json!(v));
            }
        }
        if let Some(d) = &self.discard {
            set("discard", json!(d));
        }
        if let Some(d) = &self.description {
            set("description", json!(d));
        }
        let flags = [
            ("discard_new_per_subject", self.discard_per_subject),
            ("allow_rollup_hdrs", self.allow_rollup),
            ("deny_delete", self.deny_delete),
            ("deny_purge", self.deny_purge),
            ("allow_direct", self.allow_direct),
            ("no_ack", self.no_ack),
        ];
        for (k, on) in flags {
            if on {
                set(k, json!(true));
            }
        }
        if !c.get("name").is_some_and(Value::is_string) {
            return Err(AdminError::Other("a stream name is needed (argument or `name` in --config)".into()));
        }
        Ok(Value::Object(c))
    }
}

/// What `weir stream purge` removes.
pub struct PurgeArgs {
    /// Subject filter.
    pub subject: Option<String>,
    /// Purge below this sequence.
    pub seq: Option<u64>,
    /// Keep this many newest.
    pub keep: Option<u64>,
}

/// `weir stream ls`.
pub async fn ls(api: &Api, json: bool, names_only: bool) -> Result<(), AdminError> {
    let (mut streams, pages) = api.list_all("$JS.API.STREAM.LIST", "streams").await?;
    if json {
        pages.iter().for_each(|p| print_raw(p));
        return Ok(());
    }
    streams.sort_by_key(|s| string(s, "config.name"));
    if names_only {
        streams.iter().for_each(|s| println!("{}", string(s, "config.name")));
        return Ok(());
    }
    print!("{}", list_table(&streams));
    Ok(())
}

/// The `weir stream ls` table of STREAM.LIST's `streams` (StreamInfo values).
pub fn list_table(streams: &[Value]) -> String {
    if streams.is_empty() {
        return "No Streams defined\n".into();
    }
    let mut t = Table::new("Streams", &["Name", "Description", "Created", "Messages", "Size", "Last Message"], &[3, 4]);
    for s in streams {
        t.row(vec![
            string(s, "config.name"),
            string(s, "config.description"),
            show::time(&string(s, "created")),
            count(int(s, "state.messages")),
            show::bytes(int(s, "state.bytes") as u64),
            show::ago(&string(s, "state.last_ts"), &string(s, "ts")),
        ]);
    }
    t.render()
}

/// `weir stream info S`.
pub async fn info(api: &Api, json: bool, stream: &str) -> Result<(), AdminError> {
    let (raw, v) = api.request_raw(&format!("$JS.API.STREAM.INFO.{stream}"), &Value::Null).await?;
    if json {
        print_raw(&raw);
    } else {
        print!("{}", info_text(&v));
    }
    Ok(())
}

/// The `weir stream info` text of a StreamInfo: a "Configuration:" and a "State:" section.
pub fn info_text(v: &Value) -> String {
    let c = v.get("config").cloned().unwrap_or(Value::Null);
    let mut b = Block::default();
    b.section("Configuration");
    b.kv("Name", string(&c, "name"));
    let desc = string(&c, "description");
    if !desc.is_empty() {
        b.kv("Description", desc);
    }
    let subjects: Vec<String> = c
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    b.kv("Subjects", subjects.join(", "));
    b.kv("Replicas", int(&c, "num_replicas").max(1).to_string());
    b.kv("Storage", show::title(&string(&c, "storage")));
    b.kv("Retention", show::title(&string(&c, "retention")));
    b.kv("Acknowledgments", (!boolean(&c, "no_ack")).to_string());
    let discard = show::title(&string(&c, "discard"));
    b.kv(
        "Discard Policy",
        if boolean(&c, "discard_new_per_subject") { format!("{discard} Per Subject") } else { discard },
    );
    b.kv("Duplicate Window", show::duration(int(&c, "duplicate_window"), "0s"));
    b.kv("Direct Get", boolean(&c, "allow_direct").to_string());
    b.kv("Allows Msg Delete", (!boolean(&c, "deny_delete")).to_string());
    b.kv("Allows Purge", (!boolean(&c, "deny_purge")).to_string());
    b.kv("Allows Rollups", boolean(&c, "allow_rollup_hdrs").to_string());
    if boolean(&c, "sealed") {
        b.kv("Sealed", "true");
    }
    b.kv("Maximum Messages", show::limit(int(&c, "max_msgs")));
    b.kv("Maximum Per Subject", show::limit(int(&c, "max_msgs_per_subject")));
    b.kv("Maximum Bytes", show::byte_limit(int(&c, "max_bytes")));
    b.kv("Maximum Age", show::duration(int(&c, "max_age"), "unlimited"));
    b.kv("Maximum Message Size", show::byte_limit(int(&c, "max_msg_size")));
    b.kv("Maximum Consumers", show::limit(int(&c, "max_consumers")));
    b.section("State");
    b.kv("Messages", count(int(v, "state.messages")));
    b.kv("Bytes", show::bytes(int(v, "state.bytes") as u64));
    let at = |seq: &str, ts: &str| {
        let n = int(v, seq);
        if n == 0 { "0".to_owned() } else { format!("{} @ {}", count(n), show::time(&string(v, ts))) }
    };
    b.kv("First Sequence", at("state.first_seq", "state.first_ts"));
    b.kv("Last Sequence", at("state.last_seq", "state.last_ts"));
    let deleted = int(v, "state.num_deleted");
    if deleted > 0 {
        b.kv("Deleted Messages", count(deleted));
    }
    b.kv("Active Consumers", count(int(v, "state.consumer_count")));
    b.kv("Number of Subjects", count(int(v, "state.num_subjects")));
    format!(
        "Information for Stream {} created {}\n{}",
        string(&c, "name"),
        show::time(&string(v, "created")),
        b.render()
    )
}

/// `weir stream subjects S [FILTER]`: STREAM.INFO with `subjects_filter`, paged by
/// `offset` until the response's `total` subjects are read.
pub async fn subjects(api: &Api, json: bool, stream: &str, filter: Option<&str>) -> Result<(), AdminError> {
    let subject = format!("$JS.API.STREAM.INFO.{stream}");
    let filter = filter.unwrap_or(">");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let req = json!({ "subjects_filter": filter, "offset": counts.len() });
        let (raw, v) = api.request_raw(&subject, &req).await?;
        if json {
            print_raw(&raw);
        }
        let before = counts.len();
        if let Some(m) = show::get(&v, "state.subjects").and_then(Value::as_object) {
            for (k, n) in m {
                counts.insert(k.clone(), n.as_u64().unwrap_or(0));
            }
        }
        let total = int(&v, "total").max(0) as usize;
        if counts.len() == before || counts.len() >= total {
            break;
        }
    }
    if !json {
        print!("{}", subjects_text(stream, filter, &counts));
    }
    Ok(())
}

/// The `weir stream subjects` text: a Subject/Messages table sorted by subject, then the totals.
pub fn subjects_text(stream: &str, filter: &str, counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    if counts.is_empty() {
        return format!("No subjects matching {filter} in stream {stream}\n");
    }
    let mut t = Table::new(format!("Subjects in stream {stream} matching {filter}"), &["Subject", "Messages"], &[1]);
    for (s, n) in counts {
        t.row(vec![s.clone(), count(*n as i64)]);
    }
    format!("{}Total: {} subjects, {} messages\n", t.render(), count(counts.len() as i64), count(total as i64))
}

/// `weir stream add`: STREAM.CREATE, then the new stream's info.
pub async fn add(api: &Api, json: bool, args: AddArgs) -> Result<(), AdminError> {
    let cfg = args.to_config()?;
    let name = string(&cfg, "name");
    let (raw, v) = api.request_raw(&format!("$JS.API.STREAM.CREATE.{name}"), &cfg).await?;
    if json {
        print_raw(&raw);
    } else {
        println!("Stream {name} was created\n");
        print!("{}", info_text(&v));
    }
    Ok(())
}

/// `weir stream rm S --force`.
pub async fn rm(api: &Api, json: bool, stream: &str, force: bool) -> Result<(), AdminError> {
    if !force {
        return Err(AdminError::Other(format!("refusing to delete stream {stream} without --force")));
    }
    let (raw, _) = api.request_raw(&format!("$JS.API.STREAM.DELETE.{stream}"), &Value::Null).await?;
    if json {
        print_raw(&raw);
    } else {
        println!("Deleted stream {stream}");
    }
    Ok(())
}

/// `weir stream purge S --force [--subject F] [--seq N | --keep N]`.
pub async fn purge(api: &Api, json: bool, stream: &str, force: bool, p: PurgeArgs) -> Result<(), AdminError> {
    if !force {
        return Err(AdminError::Other(format!("refusing to purge stream {stream} without --force")));
    }
    let mut req = serde_json::Map::new();
    if let Some(f) = p.subject {
        req.insert("filter".into(), json!(f));
    }
    if let Some(s) = p.seq {
        req.insert("seq".into(), json!(s));
    }
    if let Some(k) = p.keep {
        req.insert("keep".into(), json!(k));
    }
    let body = if req.is_empty() { Value::Null } else { Value::Object(req) };
    let (raw, v) = api.request_raw(&format!("$JS.API.STREAM.PURGE.{stream}"), &body).await?;
    if json {
        print_raw(&raw);
    } else {
        println!("Purged {} messages from stream {stream}", count(int(&v, "purged")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        add: AddArgs,
    }

    #[test]
    fn add_flags_make_a_config() {
        let t = Top::parse_from([
            "x",
            "ORDERS",
            "--subjects",
            "orders.*,ship.>",
            "--storage",
            "memory",
            "--retention",
            "work",
            "--max-msgs=-1",
            "--max-bytes",
            "1KiB",
            "--max-age",
            "1d",
            "--max-msgs-per-subject",
            "5",
            "--discard",
            "new",
            "--dupe-window",
            "30s",
            "--replicas",
            "1",
        ]);
        let c = t.add.to_config().unwrap();
        assert_eq!(
            c,
            json!({"name":"ORDERS","subjects":["orders.*","ship.>"],"storage":"memory","retention":"workqueue",
                   "max_msgs":-1,"max_bytes":1024,"max_age":86_400_000_000_000i64,"max_msgs_per_subject":5,
                   "discard":"new","duplicate_window":30_000_000_000i64,"num_replicas":1})
        );
        let t = Top::parse_from(["x"]);
        assert!(t.add.to_config().unwrap_err().to_string().contains("stream name"));
    }

    #[test]
    fn counts_and_info_text() {
        let v = json!({"config":{"name":"S","subjects":["a.>"],"retention":"limits","storage":"file","discard":"old",
            "max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"max_consumers":-1,
            "duplicate_window":120_000_000_000i64,"num_replicas":1},
            "created":"2026-08-21T12:00:00.5Z",
            "state":{"messages":1200,"bytes":2048,"first_seq":1,"first_ts":"2026-08-21T12:00:01Z","last_seq":1200,
                     "last_ts":"2026-08-21T12:00:02Z","consumer_count":1,"num_subjects":2}});
        let s = info_text(&v);
        assert!(s.starts_with("Information for Stream S created 2026-08-21 12:00:00\n"), "{s}");
        let conf = s.find("\nConfiguration:\n").unwrap();
        let state = s.find("\nState:\n").unwrap();
        assert!(conf < state, "{s}");
        for line in [
            "            Subjects: a.>",
            "    Duplicate Window: 2m0s",
            "    Maximum Messages: unlimited",
            "            Messages: 1,200",
            "               Bytes: 2.0 KiB",
            "       Last Sequence: 1,200 @ 2026-08-21 12:00:02",
        ] {
            assert!(s.contains(line), "{line:?} not in\n{s}");
        }
    }

    #[test]
    fn subjects_text_totals() {
        let m: BTreeMap<String, u64> = [("a.1".to_owned(), 2), ("a.2".to_owned(), 1500)].into();
        let s = subjects_text("S", ">", &m);
        let row = s.lines().find(|l| l.starts_with("│ a.1 ")).unwrap_or_else(|| panic!("{s}"));
        assert!(row.ends_with(" 2 │"), "{s}");
        let row = s.lines().find(|l| l.starts_with("│ a.2 ")).unwrap_or_else(|| panic!("{s}"));
        assert!(row.ends_with(" 1,500 │"), "{s}");
        assert!(s.ends_with("Total: 2 subjects, 1,502 messages\n"), "{s}");
    }
}
