//! Renderers: one text line per event, whole traces as text (optionally
//! filtered), and an SVG chart of memory-ledger samples per account.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Event, EventKind, HARNESS, NodeNo, Trace};

/// Width of the kind column: the longest [`EventKind::name`].
const KIND_WIDTH: usize = 17;

/// A node as printed: `n<k>`, or `--` for the harness.
pub fn node_label(node: NodeNo) -> String {
    if node == HARNESS { "--".to_owned() } else { format!("n{node}") }
}

/// Virtual time in seconds with microsecond precision, e.g. `12.345678s`.
pub fn format_time(time_us: u64) -> String {
    format!("{}.{:06}s", time_us / 1_000_000, time_us % 1_000_000)
}

/// The `key=value` fields of an event kind, space-separated (strings quoted and
/// escaped so that the result stays on one line).
pub fn render_fields(kind: &EventKind) -> String {
    match kind {
        EventKind::Note { text } => format!("text={text:?}"),
        EventKind::Fault { desc } => format!("desc={desc:?}"),
        EventKind::NodeStart { incarnation } => format!("incarnation={incarnation}"),
        EventKind::NodeCrash => String::new(),
        EventKind::ClientInvoke { client, value, target } => {
            format!("client={client} value={value} target={}", node_label(*target))
        }
        EventKind::ClientOk { client, value, index } => format!("client={client} value={value} index={index}"),
        EventKind::ClientFail { client, value, reason } | EventKind::ClientUnknown { client, value, reason } => {
            format!("client={client} value={value} reason={reason:?}")
        }
        EventKind::RaftRole { term, role } => format!("term={term} role={role:?}"),
        EventKind::RaftCommit { commit } => format!("commit={commit}"),
        EventKind::Applied { index, term, data_hash } => format!("index={index} term={term} data={data_hash:016x}"),
        EventKind::SnapshotRestored { index, term, state_hash } => {
            format!("index={index} term={term} state={state_hash:016x}")
        }
        EventKind::Ledger { account, current, peak, limit } => {
            format!("account={account:?} current={current} peak={peak} limit={limit}")
        }
        EventKind::Verdict { pass, detail } => format!("pass={pass} detail={detail:?}"),
        EventKind::StoreRecovered { lost, damaged, unreadable_other, truncated_bytes, first_seq, last_seq } => format!(
            "first={first_seq} last={last_seq} lost={lost:?} damaged={damaged} unreadable_other={unreadable_other} truncated={truncated_bytes}"
        ),
        EventKind::StoreDelete { client, seq, done } => format!("client={client} seq={seq} done={done}"),
        EventKind::Publish { client, value } => format!("client={client} value={value:#x}"),
        EventKind::Deliver { client, value, intact } => format!("client={client} value={value:#x} intact={intact}"),
        EventKind::Js(js) => js.render(),
    }
}

/// One line (no newline), e.g. `   12.345678s n2  raft-role         term=3 role=Leader`.
pub fn render_event(event: &Event) -> String {
    let line = format!(
        "{:>13} {:<3} {:<KIND_WIDTH$} {}",
        format_time(event.time_us),
        node_label(event.node),
        event.kind.name(),
        render_fields(&event.kind)
    );
    line.trim_end().to_owned()
}

/// Whether `event` passes a filter: its kind name is in `kinds` (an empty list
/// allows every kind) and, if `node` is given, it happened on that node.
pub fn event_matches(event: &Event, kinds: &[&str], node: Option<NodeNo>) -> bool {
    (kinds.is_empty() || kinds.contains(&event.kind.name())) && node.is_none_or(|n| n == event.node)
}

/// `s` with control characters escaped, so it prints on one line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn render_header(out: &mut String, trace: &Trace) {
    let h = &trace.header;
    let list = |items: Vec<String>, sep: &str| if items.is_empty() { "(none)".to_owned() } else { items.join(sep) };
    let _ = writeln!(out, "# weir trace (format {}, weir {})", h.format_version, one_line(&h.weir_version));
    let _ = writeln!(out, "# scenario: {}  seed: {}", one_line(&h.scenario), h.seed);
    let _ = writeln!(out, "# bugs: {}", list(h.bugs.iter().map(|b| one_line(b)).collect(), ", "));
    let _ = writeln!(
        out,
        "# overrides: {}",
        list(h.overrides.iter().map(|(k, v)| format!("{}={}", one_line(k), one_line(v))).collect(), " ")
    );
    let config = if h.config.is_empty() { "(none)".to_owned() } else { one_line(&h.config) };
    let _ = writeln!(out, "# config: {config}");
    let _ = writeln!(
        out,
        "# fault points: {} (p={}/1e6)",
        list(h.fault_points.iter().map(|s| one_line(s)).collect(), ", "),
        h.fault_ppm
    );
    let _ = writeln!(out, "# events: {}  hash: {:016x}", trace.events.len(), trace.hash());
}

/// The whole trace as text: `# `-prefixed header lines, then one line per event.
pub fn render_text(trace: &Trace) -> String {
    render_filtered(trace, &[], None)
}

/// Like [`render_text`], but only events passing [`event_matches`]`(kinds, node)`;
/// a header line says what was filtered.
pub fn render_filtered(trace: &Trace, kinds: &[&str], node: Option<NodeNo>) -> String {
    let mut out = String::new();
    render_header(&mut out, trace);
    let filtering = !kinds.is_empty() || node.is_some();
    let shown: Vec<&Event> = trace.events.iter().filter(|e| event_matches(e, kinds, node)).collect();
    if filtering {
        let kinds = if kinds.is_empty() { "all".to_owned() } else { kinds.join(",") };
        let node = node.map_or_else(|| "all".to_owned(), node_label);
        let _ = writeln!(out, "# filter: kinds={kinds} node={node} ({} of {} events)", shown.len(), trace.events.len());
    }
    for event in shown {
        out.push_str(&render_event(event));
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// SVG memory chart

const SVG_WIDTH: f64 = 960.0;
const PLOT_LEFT: f64 = 90.0;
const PLOT_RIGHT: f64 = 740.0;
const PLOT_TOP: f64 = 50.0;
const PLOT_BOTTOM: f64 = 470.0;
/// Space below the plot for tick labels and the axis title.
const BELOW_PLOT: f64 = 70.0;
const LEGEND_ROW: f64 = 18.0;
const TARGET_TICKS: u64 = 5;
const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Escape text for use in SVG content or attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `x` with at most two decimals, trailing zeros removed.
fn short_decimal(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Bytes in binary units, e.g. `1.5 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", short_decimal(value), UNITS[unit])
}

/// Virtual time for an axis label: seconds without trailing zeros, e.g. `1.25s`.
fn short_time(time_us: u64) -> String {
    let secs = format!("{}.{:06}", time_us / 1_000_000, time_us % 1_000_000);
    format!("{}s", secs.trim_end_matches('0').trim_end_matches('.'))
}

/// A tick step for bytes: the smallest power of two giving at most
/// [`TARGET_TICKS`] intervals up to `max`.
fn byte_step(max: u64) -> u64 {
    max.div_ceil(TARGET_TICKS).max(1).checked_next_power_of_two().unwrap_or(1 << 63)
}

/// A tick step for time: the smallest 1, 2 or 5 × 10^k µs giving at most
/// [`TARGET_TICKS`] intervals up to `max`.
fn time_step(max: u64) -> u64 {
    let raw = max.div_ceil(TARGET_TICKS).max(1);
    let mut pow = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = pow.saturating_mul(m);
            if step >= raw {
                return step;
            }
        }
        pow = pow.saturating_mul(10);
    }
}

/// The memory-ledger samples of a trace as series keyed by (account, node), each
/// a list of (time µs, current bytes), plus each account's largest finite limit.
type LedgerSeries = BTreeMap<(String, NodeNo), Vec<(u64, u64)>>;

fn ledger_series(trace: &Trace) -> (LedgerSeries, BTreeMap<String, u64>) {
    let mut series: LedgerSeries = BTreeMap::new();
    let mut limits: BTreeMap<String, u64> = BTreeMap::new();
    for event in &trace.events {
        if let EventKind::Ledger { account, current, limit, .. } = &event.kind {
            series.entry((account.clone(), event.node)).or_default().push((event.time_us, *current));
            // 0 and u64::MAX mean "no limit".
            if *limit != 0 && *limit != u64::MAX {
                let l = limits.entry(account.clone()).or_default();
                *l = (*l).max(*limit);
            }
        }
    }
    for samples in series.values_mut() {
        samples.sort_by_key(|&(t, _)| t);
    }
    (series, limits)
}

/// An SVG line chart of the trace's [`EventKind::Ledger`] samples: one polyline
/// per (node, account) of current bytes over virtual time, each account's limit
/// as a dashed line, axes with tick labels, and a legend.
pub fn render_memory_svg(trace: &Trace) -> String {
    let (series, limits) = ledger_series(trace);
    let t_top = series.values().flatten().map(|&(t, _)| t).max().unwrap_or(0).max(1);
    let b_top = series.values().flatten().map(|&(_, c)| c).chain(limits.values().copied()).max().unwrap_or(0).max(1);
    let (t_step, b_step) = (time_step(t_top), byte_step(b_top));
    let (t_ticks, b_ticks) = (t_top.div_ceil(t_step), b_top.div_ceil(b_step));
    let t_max = (t_step as f64) * (t_ticks as f64);
    let b_max = (b_step as f64) * (b_ticks as f64);
    let x_of = |t: u64| PLOT_LEFT + (t as f64) / t_max * (PLOT_RIGHT - PLOT_LEFT);
    let y_of = |b: u64| PLOT_BOTTOM - (b as f64) / b_max * (PLOT_BOTTOM - PLOT_TOP);
    let legend_bottom = PLOT_TOP + LEGEND_ROW * series.len() as f64;
    let height = (PLOT_BOTTOM + BELOW_PLOT).max(legend_bottom + LEGEND_ROW);
    let mid_x = (PLOT_LEFT + PLOT_RIGHT) / 2.0;
    let mid_y = (PLOT_TOP + PLOT_BOTTOM) / 2.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{height}" viewBox="0 0 {SVG_WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{SVG_WIDTH}" height="{height}" fill="white"/>"#);
    let title = format!("memory per account: {} seed {}", trace.header.scenario, trace.header.seed);
    let _ =
        writeln!(svg, r#"<text x="{mid_x}" y="24" text-anchor="middle" font-size="16">{}</text>"#, xml_escape(&title));

    // Grid, ticks and tick labels.
    for i in 0..=b_ticks {
        let bytes = b_step.saturating_mul(i);
        let y = y_of(bytes);
        let _ =
            writeln!(svg, r##"<line x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}" stroke="#e0e0e0"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            PLOT_LEFT - 8.0,
            y + 4.0,
            human_bytes(bytes)
        );
    }
    for i in 0..=t_ticks {
        let t = t_step.saturating_mul(i);
        let x = x_of(t);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{PLOT_BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="black"/>"#,
            PLOT_BOTTOM + 5.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            PLOT_BOTTOM + 20.0,
            short_time(t)
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        svg,
        r#"<line x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{PLOT_RIGHT}" y2="{PLOT_BOTTOM}" stroke="black"/>"#
    );
    let _ =
        writeln!(svg, r#"<line x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{PLOT_LEFT}" y2="{PLOT_BOTTOM}" stroke="black"/>"#);
    let _ =
        writeln!(svg, r#"<text x="{mid_x}" y="{:.1}" text-anchor="middle">virtual time</text>"#, PLOT_BOTTOM + 45.0);
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{mid_y}" text-anchor="middle" transform="rotate(-90 20 {mid_y})">current bytes</text>"#
    );

    if series.is_empty() {
        let _ = writeln!(svg, r#"<text x="{mid_x}" y="{mid_y}" text-anchor="middle">no ledger samples</text>"#);
    }

    // Limits: dashed, labelled at the right end.
    for (account, &limit) in &limits {
        let y = y_of(limit);
        let _ = writeln!(
            svg,
            r##"<line x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}" stroke="#555555" stroke-dasharray="6 4"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555555">limit {} ({})</text>"##,
            PLOT_RIGHT - 4.0,
            y - 4.0,
            xml_escape(account),
            human_bytes(limit)
        );
    }

    // Series and legend.
    for (i, ((account, node), samples)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = samples.iter().map(|&(t, c)| format!("{:.1},{:.1}", x_of(t), y_of(c))).collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let ly = PLOT_TOP + LEGEND_ROW * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/>"#,
            PLOT_RIGHT + 15.0,
            PLOT_RIGHT + 35.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{} {}</text>"#,
            PLOT_RIGHT + 40.0,
            ly + 4.0,
            node_label(*node),
            xml_escape(account)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
