//! `weir consumer ls | info | add | rm`.

use super::client::{AdminError, Api};
use super::show::{self, Block, Table, boolean, count, int, string};
use super::{config_file, duration_ns, print_raw};
use serde_json::{Value, json};
use std::path::PathBuf;

/// `weir consumer add` flags: the common ConsumerConfig fields. Flags override
/// `--config`; fields left unset are left to the server's defaults, except the ack policy,
/// which is `explicit` unless given (the Go zero value would be `none`).
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Stream name.
    pub stream: String,
    /// Consumer name; durable unless --ephemeral. Without one, the server names an ephemeral.
    pub consumer: Option<String>,
    /// ConsumerConfig JSON file (the shape of `weir consumer info S C --json`'s `config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Not durable: removed after --inactive-threshold without activity.
    #[arg(long)]
    pub ephemeral: bool,
    /// Pull consumer (the default unless --target is given).
    #[arg(long, conflicts_with = "target")]
    pub pull: bool,
    /// Push consumer: the subject deliveries go to.
    #[arg(long, visible_alias = "deliver-subject", value_name = "SUBJECT")]
    pub target: Option<String>,
    /// Push consumer: the queue group of the delivery subject's subscribers.
    #[arg(long)]
    pub deliver_group: Option<String>,
    /// Only messages on these subjects (repeat or comma-separate for several).
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// Where to start: all, last, new, last_per_subject (or `subject`).
    #[arg(long, value_parser = ["all", "last", "new", "last_per_subject", "subject"])]
    pub deliver: Option<String>,
    /// Start at this stream sequence (deliver policy by_start_sequence).
    #[arg(long, conflicts_with_all = ["deliver", "start_time"])]
    pub start_seq: Option<u64>,
    /// Start at this time, RFC 3339 (deliver policy by_start_time).
    #[arg(long, conflicts_with = "deliver")]
    pub start_time: Option<String>,
    /// Ack policy.
    #[arg(long, value_parser = ["explicit", "all", "none"])]
    pub ack: Option<String>,
    /// How long a delivery waits for its ack before redelivery, e.g. 30s.
    #[arg(long, value_parser = duration_ns)]
    pub ack_wait: Option<i64>,
    /// Most deliveries of one message (-1 = unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_deliver: Option<i64>,
    /// Most unacknowledged deliveries at once (-1 = unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub max_ack_pending: Option<i64>,
    /// Pull consumer: most waiting pull requests.
    #[arg(long)]
    pub max_waiting: Option<i64>,
    /// Replay policy.
    #[arg(long, value_parser = ["instant", "original"])]
    pub replay: Option<String>,
    /// Remove the consumer after this long without activity, e.g. 5m.
    #[arg(long, value_parser = duration_ns)]
    pub inactive_threshold: Option<i64>,
    /// Push consumer: idle heartbeat interval, e.g. 5s.
    #[arg(long, value_parser = duration_ns)]
    pub heartbeat: Option<i64>,
    /// Push consumer: flow control (needs --heartbeat).
    #[arg(long)]
    pub flow_control: bool,
    /// Deliver headers only (plus Nats-Msg-Size).
    #[arg(long)]
    pub headers_only: bool,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
}

impl AddArgs {
    /// The ConsumerConfig JSON: `--config`'s object with the flags laid over it.
    pub fn to_config(&self) -> Result<Value, AdminError> {
        let mut c = config_file(self.config.as_ref())?;
        let mut set = |k: &str, v: Value| {
            c.insert(k.to_owned(), v);
        };
        if let Some(n) = &self.consumer {
            set("name", json!(n));
            if !self.ephemeral {
                set("durable_name", json!(n));
            }
        }
        if let Some(t) = &self.target {
            set("deliver_subject", json!(t));
        }
        if let Some(g) = &self.deliver_group {
            set("deliver_group", json!(g));
        }
        match self.filter.as_slice() {
            [] => {}
            [one] => set("filter_subject", json!(one)),
            many => set("filter_subjects", json!(many)),
        }
        if let Some(d) = &self.deliver {
            set("deliver_policy", json!(if d == "subject" { "last_per_subject" } else { d }));
        }
        if let Some(s) = self.start_seq {
            set("deliver_policy", json!("by_start_sequence"));
            set("opt_start_seq", json!(s));
        }
        if let Some(t) = &self.start_time {
            weir_core::jetstream::parse_rfc3339(t).map_err(AdminError::Other)?;
            set("deliver_policy", json!("by_start_time"));
            set("opt_start_time", json!(t));
        }
        if let Some(a) = &self.ack {
            set("ack_policy", json!(a));
        }
        let ints = [
            ("ack_wait", self.ack_wait),
            ("max_deliver", self.max_deliver),
            ("max_ack_pending", self.max_ack_pending),
            ("max_waiting", self.max_waiting),
            ("inactive_threshold", self.inactive_threshold),
            ("idle_heartbeat", self.heartbeat),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                set(k, json!(v));
            }
        }
        if let Some(r) = &self.replay {
            set("replay_policy", json!(r));
        }
        if self.flow_control {
            set("flow_control", json!(true));
        }
        if self.headers_only {
            set("headers_only", json!(true));
        }
        if let Some(d) = &self.description {
            set("description", json!(d));
        }
        c.entry("ack_policy").or_insert_with(|| json!("explicit"));
        Ok(Value::Object(c))
    }
}

/// `weir consumer ls S`.
pub async fn ls(api: &Api, json: bool, stream: &str, names_only: bool) -> Result<(), AdminError> {
    let (mut consumers, pages) = api.list_all(&format!("$JS.API.CONSUMER.LIST.{stream}"), "consumers").await?;
    if json {
        pages.iter().for_each(|p| print_raw(p));
        return Ok(());
    }
    consumers.sort_by_key(|c| string(c, "name"));
    if names_only {
        consumers.iter().for_each(|c| println!("{}", string(c, "name")));
        return Ok(());
    }
    print!("{}", list_table(stream, &consumers));
    Ok(())
}

/// The `weir consumer ls` table of CONSUMER.LIST's `consumers` (ConsumerInfo values).
pub fn list_table(stream: &str, consumers: &[Value]) -> String {
    if consumers.is_empty() {
        return format!("No Consumers defined on stream {stream}\n");
    }
    let mut t = Table::new(
        format!("Consumers on stream {stream}"),
        &["Name", "Description", "Created", "Ack Pending", "Unprocessed", "Last Delivery"],
        &[3, 4],
    );
    for c in consumers {
        t.row(vec![
            string(c, "name"),
            string(c, "config.description"),
            show::time(&string(c, "created")),
            count(int(c, "num_ack_pending")),
            count(int(c, "num_pending")),
            show::ago(&string(c, "delivered.last_active"), &string(c, "ts")),
        ]);
    }
    t.render()
}

/// `weir consumer info S C`.
pub async fn info(api: &Api, json: bool, stream: &str, consumer: &str) -> Result<(), AdminError> {
    let (raw, v) = api.request_raw(&format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"), &Value::Null).await?;
    if json {
        print_raw(&raw);
    } else {
        print!("{}", info_text(&v));
    }
    Ok(())
}

/// The `weir consumer info` text of a ConsumerInfo: "Configuration:" and "State:".
pub fn info_text(v: &Value) -> String {
    let c = v.get("config").cloned().unwrap_or(Value::Null);
    let mut b = Block::default();
    b.section("Configuration");
    b.kv("Name", string(v, "name"));
    let durable = string(&c, "durable_name");
    if !durable.is_empty() {
        b.kv("Durable Name", durable);
    }
    let desc = string(&c, "description");
    if !desc.is_empty() {
        b.kv("Description", desc);
    }
    let push = string(&c, "deliver_subject");
    if push.is_empty() {
        b.kv("Pull Mode", "true");
    } else {
        b.kv("Delivery Subject", push);
        let group = string(&c, "deliver_group");
        if !group.is_empty() {
            b.kv("Deliver Queue Group", group);
        }
    }
    let filter = string(&c, "filter_subject");
    if !filter.is_empty() {
        b.kv("Filter Subject", filter);
    }
    if let Some(fs) = c.get("filter_subjects").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        let fs: Vec<&str> = fs.iter().filter_map(Value::as_str).collect();
        b.kv("Filter Subjects", fs.join(", "));
    }
    let policy = string(&c, "deliver_policy");
    b.kv(
        "Deliver Policy",
        match policy.as_str() {
            "by_start_sequence" => format!("From Sequence {}", int(&c, "opt_start_seq")),
            "by_start_time" => format!("Since {}", show::time(&string(&c, "opt_start_time"))),
            "" => "All".into(),
            p => show::title(p),
        },
    );
    let ack = string(&c, "ack_policy");
    b.kv("Ack Policy", show::title(if ack.is_empty() { "none" } else { &ack }));
    if ack != "none" && !ack.is_empty() {
        b.kv("Ack Wait", show::duration(int(&c, "ack_wait"), "0s"));
    }
    let replay = string(&c, "replay_policy");
    b.kv("Replay Policy", show::title(if replay.is_empty() { "instant" } else { &replay }));
    b.kv("Maximum Deliveries", show::limit(int(&c, "max_deliver")));
    b.kv("Max Ack Pending", show::limit(int(&c, "max_ack_pending")));
    if string(&c, "deliver_subject").is_empty() {
        b.kv("Max Waiting Pulls", show::limit(int(&c, "max_waiting")));
    } else {
        let hb = int(&c, "idle_heartbeat");
        if hb > 0 {
            b.kv("Idle Heartbeat", show::duration(hb, "0s"));
        }
        b.kv("Flow Control", boolean(&c, "flow_control").to_string());
    }
    let inactive = int(&c, "inactive_threshold");
    if inactive > 0 {
        b.kv("Inactive Threshold", show::duration(inactive, "0s"));
    }
    if boolean(&c, "headers_only") {
        b.kv("Headers Only", "true");
    }
    b.section("State");
    let seqs = |k: &str| {
        format!(
            "Consumer sequence: {} Stream sequence: {}",
            count(int(v, &format!("{k}.consumer_seq"))),
            count(int(v, &format!("{k}.stream_seq")))
        )
    };
    b.kv(
        "Last Delivered Message",
        format!(
            "{} Last delivery: {} ago",
            seqs("delivered"),
            show::ago(&string(v, "delivered.last_active"), &string(v, "ts"))
        ),
    );
    b.kv("Acknowledgment Floor", seqs("ack_floor"));
    let max_ack = int(&c, "max_ack_pending");
    b.kv(
        "Outstanding Acks",
        if max_ack > 0 {
            format!("{} out of maximum {}", count(int(v, "num_ack_pending")), count(max_ack))
        } else {
            count(int(v, "num_ack_pending"))
        },
    );
    b.kv("Redelivered Messages", count(int(v, "num_redelivered")));
    b.kv("Unprocessed Messages", count(int(v, "num_pending")));
    if string(&c, "deliver_subject").is_empty() {
        b.kv(
            "Waiting Pulls",
            format!("{} of maximum {}", count(int(v, "num_waiting")), show::limit(int(&c, "max_waiting"))),
        );
    }
    format!(
        "Information for Consumer {} > {} created {}\n{}",
        string(v, "stream_name"),
        string(v, "name"),
        show::time(&string(v, "created")),
        b.render()
    )
    .replace(" Last delivery: never ago", " Last delivery: never")
}

/// `weir consumer add S [C]`: CONSUMER.CREATE (`...CREATE.<stream>.<name>`, or the
/// legacy `...CREATE.<stream>` without a name) with action `create`, then its info.
pub async fn add(api: &Api, json: bool, args: AddArgs) -> Result<(), AdminError> {
    let cfg = args.to_config()?;
    let stream = &args.stream;
    let name = string(&cfg, "name");
    let name = if name.is_empty() { string(&cfg, "durable_name") } else { name };
    let subject = if name.is_empty() {
        format!("$JS.API.CONSUMER.CREATE.{stream}")
    } else {
        format!("$JS.API.CONSUMER.CREATE.{stream}.{name}")
    };
    let req = json!({ "stream_name": stream, "config": cfg, "action": "create" });
    let (raw, v) = api.request_raw(&subject, &req).await?;
    if json {
        print_raw(&raw);
    } else {
        println!("Consumer {stream} > {} was created\n", string(&v, "name"));
        print!("{}", info_text(&v));
    }
    Ok(())
}

/// `weir consumer rm S C --force`.
pub async fn rm(api: &Api, json: bool, stream: &str, consumer: &str, force: bool) -> Result<(), AdminError> {
    if !force {
        return Err(AdminError::Other(format!("refusing to delete consumer {stream} > {consumer} without --force")));
    }
    let (raw, _) = api.request_raw(&format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}"), &Value::Null).await?;
    if json {
        print_raw(&raw);
    } else {
        println!("Deleted consumer {stream} > {consumer}");
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

    fn cfg(args: &[&str]) -> Value {
        Top::parse_from(std::iter::once("x").chain(args.iter().copied())).add.to_config().unwrap()
    }

    #[test]
    fn add_flags_make_a_config() {
        assert_eq!(
            cfg(&["S", "worker", "--filter", "o.new", "--deliver", "last", "--ack-wait", "10s", "--max-deliver", "5"]),
            json!({"name":"worker","durable_name":"worker","filter_subject":"o.new","deliver_policy":"last",
                   "ack_policy":"explicit","ack_wait":10_000_000_000i64,"max_deliver":5})
        );
        assert_eq!(
            cfg(&["S", "p", "--ephemeral", "--target", "d.x", "--filter", "a,b", "--ack", "none", "--start-seq", "7"]),
            json!({"name":"p","deliver_subject":"d.x","filter_subjects":["a","b"],"ack_policy":"none",
                   "deliver_policy":"by_start_sequence","opt_start_seq":7})
        );
        assert!(Top::try_parse_from(["x", "S", "--pull", "--target", "d"]).is_err());
    }

    #[test]
    fn info_text_layout() {
        let v = json!({"stream_name":"ORDERS","name":"worker","created":"2026-08-21T12:00:02.5Z",
            "config":{"durable_name":"worker","name":"worker","deliver_policy":"all","ack_policy":"explicit",
              "ack_wait":30_000_000_000i64,"max_deliver":-1,"filter_subject":"orders.new","replay_policy":"instant",
              "max_waiting":512,"max_ack_pending":1000},
            "delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},
            "num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-08-21T12:00:02.6Z"});
        let s = info_text(&v);
        assert!(s.starts_with("Information for Consumer ORDERS > worker created 2026-08-21 12:00:02\n"), "{s}");
        for line in [
            "Pull Mode: true",
            "Filter Subject: orders.new",
            "Ack Wait: 30s",
            "Maximum Deliveries: unlimited",
            "Outstanding Acks: 0 out of maximum 1,000",
            "Unprocessed Messages: 2",
            "Last delivery: never\n",
        ] {
            assert!(s.contains(line), "{line:?} not in\n{s}");
        }
        assert!(s.find("Configuration:").unwrap() < s.find("State:").unwrap());
    }
}
