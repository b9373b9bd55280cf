//! The recorder and its sink adapter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_traces::{Event, EventKind, EventSink, HARNESS, Recorder, Trace, TraceHasher, TraceHeader};

use crate::common::canonical_trace;

fn feed(recorder: &Recorder, events: &[Event]) {
    for e in events {
        recorder.record(e.time_us, e.node, e.kind.clone());
    }
}

#[test]
fn records_everything_by_default() {
    let events = canonical_trace().events;
    let recorder = Recorder::new();
    assert!(recorder.is_empty());
    feed(&recorder, &events);
    assert_eq!(recorder.len(), events.len());
    assert_eq!(recorder.stored_len(), events.len());
    assert_eq!(recorder.dropped(), 0);
    assert_eq!(recorder.events(), events);
    assert_eq!(recorder.hash(), TraceHasher::hash_events(&events));
}

#[test]
fn clones_share_the_log() {
    let a = Recorder::new();
    let b = a.clone();
    a.record(1, 1, EventKind::NodeCrash);
    b.record(2, 2, EventKind::NodeCrash);
    assert_eq!(a.len(), 2);
    assert_eq!(a.events(), b.events());
    assert_eq!(a.hash(), b.hash());
}

#[test]
fn capacity_limit_bounds_storage_but_not_hashing() {
    let events = canonical_trace().events;
    let recorder = Recorder::with_capacity_limit(3);
    feed(&recorder, &events);
    assert_eq!(recorder.len(), events.len());
    assert_eq!(recorder.stored_len(), 3);
    assert_eq!(recorder.dropped(), (events.len() - 3) as u64);
    assert_eq!(recorder.events(), events[..3].to_vec());
    assert_eq!(recorder.hash(), TraceHasher::hash_events(&events));
}

#[test]
fn disabled_recorder_hashes_without_storing() {
    let events = canonical_trace().events;
    let recorder = Recorder::new();
    recorder.set_enabled(false);
    assert!(!recorder.is_enabled());
    feed(&recorder, &events);
    assert_eq!(recorder.len(), events.len());
    assert_eq!(recorder.stored_len(), 0);
    assert_eq!(recorder.dropped(), 0);
    assert_eq!(recorder.hash(), TraceHasher::hash_events(&events));

    recorder.set_enabled(true);
    recorder.record(9, 1, EventKind::NodeCrash);
    assert_eq!(recorder.stored_len(), 1);
}

#[test]
fn take_events_drains_but_keeps_the_hash() {
    let events = canonical_trace().events;
    let recorder = Recorder::new();
    feed(&recorder, &events);
    let h = recorder.hash();
    assert_eq!(recorder.take_events(), events);
    assert_eq!(recorder.stored_len(), 0);
    assert_eq!(recorder.hash(), h);
    assert_eq!(recorder.len(), events.len());
}

#[test]
fn take_trace_matches_recorder_hash() {
    let events = canonical_trace().events;
    let recorder = Recorder::new();
    feed(&recorder, &events);
    let h = recorder.hash();
    let trace: Trace = recorder.take_trace(TraceHeader::new("r", 5));
    assert_eq!(trace.hash(), h);
    assert_eq!(trace.events, events);
}

#[test]
fn clock_sink_timestamps_with_the_clock() {
    let recorder = Recorder::new();
    let now = Arc::new(AtomicU64::new(0));
    let clock = Arc::clone(&now);
    let sink: Arc<dyn EventSink> = Arc::new(recorder.sink(move || clock.load(Ordering::SeqCst)));
    sink.emit(HARNESS, EventKind::Note { text: "start".into() });
    now.store(1_500_000, Ordering::SeqCst);
    sink.emit(2, EventKind::RaftCommit { commit: 4 });
    assert_eq!(
        recorder.events(),
        vec![
            Event::new(0, HARNESS, EventKind::Note { text: "start".into() }),
            Event::new(1_500_000, 2, EventKind::RaftCommit { commit: 4 }),
        ]
    );
}

#[test]
fn debug_output_is_a_summary() {
    let recorder = Recorder::with_capacity_limit(1);
    feed(&recorder, &canonical_trace().events);
    let debug = format!("{recorder:?}");
    assert!(debug.contains("stored: 1") && debug.contains("dropped: 18"), "{debug}");
    assert!(!debug.contains("raft-log"), "{debug}");
}
