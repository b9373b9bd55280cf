//! Text output of the admin commands, laid out like the nats CLI's: boxed tables with
//! aligned columns, `Label: value` blocks with right-aligned labels, sizes in IEC units
//! (`1.5 KiB`), Go-style durations (`2m0s`), `unlimited` for `-1` limits.

use serde_json::Value;
use weir_core::jetstream::{format_go_duration, parse_rfc3339};

/// A table: an optional title, a header row and rows of cells; `right[i]` right-aligns
/// column `i` (numbers).
pub struct Table {
    /// Printed centred above the header.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, one `Vec` per row, as many as the header.
    pub rows: Vec<Vec<String>>,
    /// Which columns are right-aligned.
    pub right: Vec<bool>,
}

impl Table {
    /// A table with `header`, left-aligned columns unless named in `right`.
    pub fn new(title: impl Into<String>, header: &[&str], right: &[usize]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            right: (0..header.len()).map(|i| right.contains(&i)).collect(),
        }
    }

    /// Append a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table drawn with box characters, one line per row, ending in a newline.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        // A title wider than the columns widens the last column.
        let cols = |w: &[usize]| w.iter().map(|x| x + 2).sum::<usize>() + n - 1;
        let title = self.title.chars().count() + 2;
        if n > 0 && title > cols(&w) {
            w[n - 1] += title - cols(&w);
        }
        let inner = cols(&w);
        let line = |l: &str, m: &str, r: &str| {
            let segs: Vec<String> = w.iter().map(|x| "─".repeat(x + 2)).collect();
            format!("{l}{}{r}\n", segs.join(m))
        };
        let cells = |r: &[String]| {
            let mut s = String::from("│");
            for (i, width) in w.iter().enumerate() {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                let pad = width - c.chars().count();
                if self.right[i] {
                    s.push_str(&format!(" {}{c} │", " ".repeat(pad)));
                } else {
                    s.push_str(&format!(" {c}{} │", " ".repeat(pad)));
                }
            }
            s.push('\n');
            s
        };
        let mut out = String::new();
        if self.title.is_empty() {
            out.push_str(&line("╭", "┬", "╮"));
        } else {
            let t = self.title.chars().count();
            let left = (inner - t) / 2;
            out.push_str(&format!("╭{}╮\n", "─".repeat(inner)));
            out.push_str(&format!("│{}{}{}│\n", " ".repeat(left), self.title, " ".repeat(inner - t - left)));
            out.push_str(&line("├", "┬", "┤"));
        }
        out.push_str(&cells(&self.header));
        out.push_str(&line("├", "┼", "┤"));
        for r in &self.rows {
            out.push_str(&cells(r));
        }
        out.push_str(&line("╰", "┴", "╯"));
        out
    }
}

/// `Label: value` lines with the labels right-aligned to the longest, as the nats CLI's
/// info views; an empty label starts a new section heading given as the value.
#[derive(Default)]
pub struct Block {
    lines: Vec<(String, String)>,
}

impl Block {
    /// Add `label: value`.
    pub fn kv(&mut self, label: &str, value: impl Into<String>) {
        self.lines.push((label.to_owned(), value.into()));
    }

    /// Start a section (`heading:` on its own line, a blank line around it).
    pub fn section(&mut self, heading: &str) {
        self.lines.push((String::new(), heading.to_owned()));
    }

    /// The block as text, ending in a newline.
    pub fn render(&self) -> String {
        let w = self.lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (l, v) in &self.lines {
            if l.is_empty() {
                out.push_str(&format!("\n{v}:\n\n"));
            } else {
                out.push_str(&format!("  {}{l}: {v}\n", " ".repeat(w - l.chars().count())));
            }
        }
        out
    }
}

/// A byte count in IEC units as the nats CLI prints them: `171 B`, `1.0 KiB`, `2.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// An integer field of `v` at `path` (`"state.messages"`), 0 when absent.
pub fn int(v: &Value, path: &str) -> i64 {
    get(v, path).and_then(|x| x.as_i64().or_else(|| x.as_u64().map(|u| u as i64))).unwrap_or(0)
}

/// A string field of `v` at `path`, empty when absent.
pub fn string(v: &Value, path: &str) -> String {
    get(v, path).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A boolean field of `v` at `path`, false when absent.
pub fn boolean(v: &Value, path: &str) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The field of `v` at dotted `path`.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A count limit: `unlimited` for -1 (or 0 where the server means none), else the number.
pub fn limit(n: i64) -> String {
    if n <= 0 { "unlimited".into() } else { count(n) }
}

/// An integer with thousands separators, as the nats CLI prints counts: `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A byte limit: `unlimited` for -1, else [`bytes`].
pub fn byte_limit(n: i64) -> String {
    if n <= 0 { "unlimited".into() } else { bytes(n as u64) }
}

/// A duration in ns as Go prints it; `zero` (e.g. `unlimited`) for 0.
pub fn duration(ns: i64, zero: &str) -> String {
    if ns == 0 { zero.to_owned() } else { format_go_duration(ns) }
}

/// An RFC 3339 time from the API as `YYYY-MM-DD HH:MM:SS` (UTC); `never` for Go's zero
/// time or an absent field.
pub fn time(s: &str) -> String {
    match parse_rfc3339(s) {
        Ok(Some(_)) => format!("{} {}", &s[..10], &s[11..19]),
        Ok(None) => "never".into(),
        Err(_) if s.is_empty() => "never".into(),
        Err(_) => s.to_owned(),
    }
}

/// How long before the response's server time `ts` the time `at` was, e.g. `1m2s`
/// (whole seconds, as the nats CLI's "ago" columns); `never` for the zero time or an
/// absent `at`.
pub fn ago(at: &str, ts: &str) -> String {
    match (parse_rfc3339(at), parse_rfc3339(ts)) {
        (Ok(Some(a)), Ok(Some(t))) => {
            let d = (t - a).max(0);
            format_go_duration(d - d % 1_000_000_000)
        }
        (Ok(None), _) => "never".into(),
        _ if at.is_empty() => "never".into(),
        _ => "-".into(),
    }
}

/// Capitalise an API enum value for display: `limits` -> `Limits`, `last_per_subject`
/// -> `Last Per Subject`.
pub fn title(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new("Streams", &["Name", "Messages"], &[1]);
        t.row(vec!["ORDERS".into(), "3".into()]);
        t.row(vec!["X".into(), "1,234".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{s}");
        assert!(s.contains("│ ORDERS │        3 │"), "{s}");
        assert!(s.contains("│ X      │    1,234 │"), "{s}");
        assert!(lines[1].contains("Streams"), "{s}");
        let mut t = Table::new("A title wider than the columns", &["a", "b"], &[]);
        t.row(vec!["x".into(), "y".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{s}");
    }

    #[test]
    fn block_right_aligns_labels() {
        let mut b = Block::default();
        b.section("State");
        b.kv("Messages", "3");
        b.kv("First Sequence", "1");
        assert_eq!(b.render(), "\nState:\n\n        Messages: 3\n  First Sequence: 1\n");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(171), "171 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(limit(-1), "unlimited");
        assert_eq!(byte_limit(1 << 30), "1.0 GiB");
        assert_eq!(duration(120_000_000_000, "unlimited"), "2m0s");
        assert_eq!(duration(0, "unlimited"), "unlimited");
        assert_eq!(time("2026-08-21T12:00:01.1Z"), "2026-08-21 12:00:01");
        assert_eq!(time("0001-01-01T00:00:00Z"), "never");
        assert_eq!(ago("2026-08-21T12:00:01.1Z", "2026-08-21T12:01:03.5Z"), "1m2s");
        assert_eq!(ago("", "2026-08-21T12:01:03.5Z"), "never");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(limit(1000), "1,000");
        assert_eq!(title("last_per_subject"), "Last Per Subject");
    }
}
