//! Trace summaries.

use weir_traces::{Trace, TraceHeader, TraceSummary};

use crate::common::canonical_trace;

#[test]
fn summary_of_canonical_trace() {
    let trace = canonical_trace();
    let s = TraceSummary::of(&trace);
    assert_eq!(s.events, 19);
    assert_eq!(s.per_kind.len(), 19);
    assert!(s.per_kind.values().all(|&n| n == 1));
    assert_eq!(s.first_us, Some(7));
    assert_eq!(s.last_us, Some(18 * 250_125 + 7));
    assert_eq!(s.span_us(), 18 * 250_125);
    assert_eq!(s.node_count(), 3);
    assert_eq!(s.verdict, Some((true, "linearizable; 3 ok, 1 fail, 1 unknown".into())));
    assert_eq!(s.hash, trace.hash());
    let text = s.to_string();
    assert!(text.contains("19 events over 4.502250s"), "{text}");
    assert!(text.contains("3 nodes") && text.contains("verdict: pass"), "{text}");
}

#[test]
fn summary_counts_repeated_kinds() {
    let mut trace = canonical_trace();
    let extra = trace.events[5].clone();
    trace.events.push(extra.clone());
    trace.events.push(extra);
    let s = TraceSummary::of(&trace);
    assert_eq!(s.per_kind["ok"], 3);
    assert_eq!(s.per_kind["note"], 1);
}

#[test]
fn summary_of_empty_trace() {
    let s = TraceSummary::of(&Trace::new(TraceHeader::new("e", 1), Vec::new()));
    assert_eq!((s.events, s.span_us(), s.node_count(), s.first_us), (0, 0, 0, None));
    assert!(s.to_string().contains("verdict: none"));
}
