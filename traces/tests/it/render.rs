//! Text and SVG renderers.

use proptest::prelude::*;
use weir_traces::{
    Event, EventKind, HARNESS, Role, Trace, TraceHeader, render_event, render_filtered, render_memory_svg, render_text,
};

use crate::common::{arb_event, canonical_trace};

#[test]
fn canonical_trace_text() {
    insta::assert_snapshot!(render_text(&canonical_trace()));
}

#[test]
fn event_line_format() {
    let e = Event::new(12_345_678, 2, EventKind::RaftRole { term: 3, role: Role::Leader });
    assert_eq!(render_event(&e), "   12.345678s n2  raft-role         term=3 role=Leader");
    let e = Event::new(5, HARNESS, EventKind::NodeCrash);
    assert_eq!(render_event(&e), "    0.000005s --  node-crash");
    assert_eq!(e.to_string(), render_event(&e));
}

#[test]
fn strings_are_quoted_and_stay_on_one_line() {
    let e = Event::new(0, 1, EventKind::Note { text: "two\nlines \"q\"".into() });
    assert_eq!(render_event(&e), r#"    0.000000s n1  note              text="two\nlines \"q\"""#);
}

#[test]
fn filtered_by_kind_and_node() {
    let trace = canonical_trace();
    let text = render_filtered(&trace, &["raft-role", "raft-commit", "applied"], None);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(text.contains("# filter: kinds=raft-role,raft-commit,applied node=all (3 of 19 events)"), "{text}");

    let text = render_filtered(&trace, &[], Some(2));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l[14..].starts_with("n2 ")), "{text}");

    let text = render_filtered(&trace, &["raft-role"], Some(HARNESS));
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 0, "{text}");
    // No filter: same as render_text.
    assert_eq!(render_filtered(&trace, &[], None), render_text(&trace));
}

/// Check that tags are balanced and properly nested (self-closing tags allowed)
/// and that every `&` starts an entity.
fn check_well_formed(svg: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        check_text(text)?;
        let end = rest[start..].find('>').ok_or("unterminated tag")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or_else(|| format!("close without open: {name}"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        if tag.matches('"').count() % 2 == 1 {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        let name = tag.split_whitespace().next().ok_or("empty tag")?.trim_end_matches('/').to_owned();
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if stack.is_empty() { Ok(()) } else { Err(format!("unclosed: {stack:?}")) }
}

fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| entity.starts_with(e)) {
            return Err(format!("bare & in {text:?}"));
        }
    }
    if text.contains('>') {
        return Err(format!("bare > in {text:?}"));
    }
    Ok(())
}

#[test]
fn well_formedness_checker_rejects_bad_svg() {
    assert!(check_well_formed("<svg><g></svg></g>").is_err());
    assert!(check_well_formed("<svg><line/>").is_err());
    assert!(check_well_formed("<svg><text>a & b</text></svg>").is_err());
    assert!(check_well_formed("<svg><text>a &amp; b</text><line x=\"1\"/></svg>").is_ok());
}

fn ledger_trace() -> Trace {
    let mut events = vec![Event::new(0, HARNESS, EventKind::Note { text: "start".into() })];
    for step in 0..5u64 {
        for node in 1..=2u16 {
            let t = step * 1_000_000;
            let current = 1000 * step + 100 * u64::from(node);
            events.push(Event::new(
                t,
                node,
                EventKind::Ledger { account: "raft-log".into(), current, peak: current, limit: 1 << 20 },
            ));
            events.push(Event::new(
                t,
                node,
                EventKind::Ledger { account: "<cache&buf>".into(), current: current / 2, peak: 0, limit: u64::MAX },
            ));
        }
    }
    Trace::new(TraceHeader::new("mem \"chart\"", 3), events)
}

#[test]
fn memory_svg_has_one_polyline_per_series() {
    let svg = render_memory_svg(&ledger_trace());
    check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<polyline").count(), 4, "{svg}");
    // Each polyline has all five samples.
    for line in svg.lines().filter(|l| l.starts_with("<polyline")) {
        let points = line.split("points=\"").nth(1).unwrap().trim_end_matches("\"/>");
        assert_eq!(points.split(' ').count(), 5, "{line}");
    }
    // Only raft-log has a finite limit.
    assert_eq!(svg.matches("stroke-dasharray").count(), 1, "{svg}");
    assert!(svg.contains("limit raft-log (1 MiB)"), "{svg}");
    // Legend entries, escaped.
    for entry in ["n1 raft-log", "n2 raft-log", "n1 &lt;cache&amp;buf&gt;", "n2 &lt;cache&amp;buf&gt;"] {
        assert!(svg.contains(&format!(">{entry}</text>")), "missing legend {entry}\n{svg}");
    }
    assert!(svg.contains("virtual time") && svg.contains("current bytes"));
}

#[test]
fn memory_svg_without_samples_is_still_valid() {
    let svg = render_memory_svg(&canonical_trace().tap_remove_ledger());
    check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(svg.matches("<polyline").count(), 0);
    assert!(svg.contains("no ledger samples"));
    let svg = render_memory_svg(&canonical_trace());
    check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(svg.matches("<polyline").count(), 1);
}

trait RemoveLedger {
    fn tap_remove_ledger(self) -> Self;
}

impl RemoveLedger for Trace {
    fn tap_remove_ledger(mut self) -> Self {
        self.events.retain(|e| !matches!(e.kind, EventKind::Ledger { .. }));
        self
    }
}

proptest! {
    #[test]
    fn every_event_renders_on_one_line(event in arb_event()) {
        let line = render_event(&event);
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "{:?}", line);
        prop_assert!(line.contains(event.kind.name()));
    }

    #[test]
    fn svg_is_well_formed_for_generated_ledgers(
        samples in prop::collection::vec((0..10_000_000u64, 1..4u16, "[a-z<&>\"']{0,6}", any::<u64>(), any::<u64>()), 0..30)
    ) {
        let events = samples
            .into_iter()
            .map(|(t, node, account, current, limit)| {
                Event::new(t, node, EventKind::Ledger { account, current, peak: current, limit })
            })
            .collect();
        let trace = Trace::new(TraceHeader::new("p", 0), events);
        let svg = render_memory_svg(&trace);
        prop_assert!(check_well_formed(&svg).is_ok(), "{:?}", check_well_formed(&svg));
    }
}

#[test]
#[ignore = "writes target/tmp/ledger.svg for eyeballing"]
fn write_sample_svg() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ledger.svg");
    std::fs::write(&path, render_memory_svg(&ledger_trace())).unwrap();
}

#[test]
fn memory_svg_axis_ticks_are_round() {
    let svg = render_memory_svg(&ledger_trace());
    // Samples up to 4 s and a 1 MiB limit: 1 s and 256 KiB steps.
    for label in [">0s<", ">1s<", ">4s<", ">0 B<", ">256 KiB<", ">768 KiB<", ">1 MiB<"] {
        assert!(svg.contains(label), "missing tick {label}\n{svg}");
    }
    assert!(!svg.contains(">5s<") && !svg.contains(">1.25 MiB<"), "{svg}");
}

#[test]
fn memory_svg_grows_to_fit_the_legend() {
    let events = (0..40u16)
        .map(|i| {
            Event::new(
                u64::from(i),
                1 + i % 5,
                EventKind::Ledger { account: format!("acct-{}", i / 5), current: 10, peak: 10, limit: 0 },
            )
        })
        .collect();
    let svg = render_memory_svg(&Trace::new(TraceHeader::new("many", 0), events));
    assert_eq!(svg.matches("<polyline").count(), 40);
    let height: f64 = svg.split("height=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(height >= 50.0 + 18.0 * 40.0, "height {height}");
    check_well_formed(&svg).unwrap();
}
