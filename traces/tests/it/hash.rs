//! The rolling trace hash.

use proptest::prelude::*;
use weir_traces::{Event, EventKind, Role, Trace, TraceHasher, TraceHeader};

use crate::common::{arb_event, canonical_trace};

fn trace_of(events: Vec<Event>) -> Trace {
    Trace::new(TraceHeader::new("h", 1), events)
}

#[test]
fn incremental_equals_whole() {
    let trace = canonical_trace();
    let mut hasher = TraceHasher::new();
    for event in &trace.events {
        hasher.update(event);
    }
    assert_eq!(hasher.count(), trace.events.len() as u64);
    assert_eq!(hasher.finish(), trace.hash());
    assert_eq!(TraceHasher::hash_events(&trace.events), trace.hash());
}

#[test]
fn hash_ignores_the_header() {
    let mut a = canonical_trace();
    let h = a.hash();
    a.header.seed += 1;
    a.header.config.push_str(" x=1");
    assert_eq!(a.hash(), h);
}

#[test]
fn different_events_give_different_hashes() {
    let base = canonical_trace().events;
    let h = trace_of(base.clone()).hash();
    let mut variants: Vec<Vec<Event>> = Vec::new();

    let mut v = base.clone();
    v[3].time_us += 1;
    variants.push(v);
    let mut v = base.clone();
    v[3].node += 1;
    variants.push(v);
    let mut v = base.clone();
    v[8].kind = EventKind::RaftRole { term: 3, role: Role::Candidate };
    variants.push(v);
    let mut v = base.clone();
    v.swap(1, 2);
    variants.push(v);
    let mut v = base.clone();
    v.pop();
    variants.push(v);
    let mut v = base.clone();
    v.push(base[0].clone());
    variants.push(v);
    variants.push(Vec::new());

    let mut hashes: Vec<u64> = variants.into_iter().map(|v| trace_of(v).hash()).collect();
    hashes.push(h);
    let n = hashes.len();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), n, "some modifications collide");
}

#[test]
fn empty_hash_is_stable_and_nonzero() {
    assert_eq!(TraceHasher::new().finish(), trace_of(Vec::new()).hash());
    assert_ne!(TraceHasher::new().finish(), 0);
}

proptest! {
    #[test]
    fn incremental_equals_whole_generated(events in prop::collection::vec(arb_event(), 0..30), split in any::<prop::sample::Index>()) {
        let trace = trace_of(events);
        // Feed in two batches to check the state carries over.
        let cut = split.index(trace.events.len() + 1);
        let mut hasher = TraceHasher::default();
        hasher.update_all(&trace.events[..cut]);
        let mut resumed = hasher.clone();
        resumed.update_all(&trace.events[cut..]);
        prop_assert_eq!(resumed.finish(), trace.hash());
    }
}
