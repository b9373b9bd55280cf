//! [`Report`]: one server's results, as JSON and as a column of a markdown table.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The results of every row against one server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Column label.
    pub name: String,
    /// The version the server reported in INFO.
    pub version: String,
    /// Publish-only throughput with 16-byte payloads, messages per second.
    pub pub_16: f64,
    /// Publish-only throughput with 128-byte payloads, messages per second.
    pub pub_128: f64,
    /// One publisher to one subscriber, 16-byte payloads, messages per second received.
    pub pubsub_16: f64,
    /// One publisher to one subscriber, 128-byte payloads, messages per second received.
    pub pubsub_128: f64,
    /// Sequential request/reply round trips per second (16-byte payloads).
    pub req_rep: f64,
    /// The server process's peak resident set size in KiB, if its pid was given.
    pub peak_rss_kib: Option<u64>,
}

impl Report {
    /// Keep the better of each measurement (the higher rate, the higher peak RSS).
    pub fn merge_best(&mut self, other: &Report) {
        self.pub_16 = self.pub_16.max(other.pub_16);
        self.pub_128 = self.pub_128.max(other.pub_128);
        self.pubsub_16 = self.pubsub_16.max(other.pubsub_16);
        self.pubsub_128 = self.pubsub_128.max(other.pubsub_128);
        self.req_rep = self.req_rep.max(other.req_rep);
        self.peak_rss_kib = self.peak_rss_kib.max(other.peak_rss_kib);
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn rate(v: f64) -> String {
    if v >= 1e6 { format!("{:.2} M/s", v / 1e6) } else { format!("{:.1} k/s", v / 1e3) }
}

/// How one row's cell is shown.
type Cell = fn(&Report) -> String;

/// A markdown table: one row per measurement, one column per server name (files with
/// the same name, from repeated rounds, are merged keeping each row's best).
pub fn table(files: &[PathBuf]) -> Result<String, String> {
    let mut reports: Vec<Report> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r = serde_json::from_str::<Report>(text.trim()).map_err(|e| format!("{}: {e}", f.display()))?;
        match reports.iter_mut().find(|x| x.name == r.name) {
            Some(x) => x.merge_best(&r),
            None => reports.push(r),
        }
    }
    let rows: [(&str, Cell); 6] = [
        ("pub only, 16 B", |r| rate(r.pub_16)),
        ("pub only, 128 B", |r| rate(r.pub_128)),
        ("pub → sub (1:1), 16 B", |r| rate(r.pubsub_16)),
        ("pub → sub (1:1), 128 B", |r| rate(r.pubsub_128)),
        ("request/reply, sequential", |r| rate(r.req_rep)),
        ("server peak RSS", |r| r.peak_rss_kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))),
    ];
    let mut s = String::from("| row |");
    for r in &reports {
        s.push_str(&format!(" {} {} |", r.name, r.version));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(reports.len()));
    s.push('\n');
    for (label, cell) in rows {
        s.push_str(&format!("| {label} |"));
        for r in &reports {
            s.push_str(&format!(" {} |", cell(r)));
        }
        s.push('\n');
    }
    Ok(s)
}
