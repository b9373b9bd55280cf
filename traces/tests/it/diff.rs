//! First divergence between two event sequences.

use proptest::prelude::*;
use weir_traces::{EventKind, first_divergence, render_event};

use crate::common::{arb_event, canonical_trace};

#[test]
fn identical_is_none() {
    let events = canonical_trace().events;
    assert_eq!(first_divergence(&events, &events.clone()), None);
    assert_eq!(first_divergence(&[], &[]), None);
}

#[test]
fn changed_event_is_found_at_its_index() {
    let left = canonical_trace().events;
    for i in [0, 5, left.len() - 1] {
        let mut right = left.clone();
        right[i].time_us += 1;
        let d = first_divergence(&left, &right).expect("diverges");
        assert_eq!(d.index, i);
        assert_eq!(d.left.as_ref(), Some(&left[i]));
        assert_eq!(d.right.as_ref(), Some(&right[i]));
    }
}

#[test]
fn prefix_has_a_missing_side() {
    let long = canonical_trace().events;
    let short = &long[..4];
    let d = first_divergence(short, &long).expect("diverges");
    assert_eq!((d.index, d.left.as_ref(), d.right.as_ref()), (4, None, Some(&long[4])));
    let d = first_divergence(&long, short).expect("diverges");
    assert_eq!((d.index, d.left.as_ref(), d.right.as_ref()), (4, Some(&long[4]), None));
    let d = first_divergence(&[], &long).expect("diverges");
    assert_eq!(d.index, 0);
}

#[test]
fn display_names_index_and_both_events() {
    let left = canonical_trace().events;
    let mut right = left.clone();
    right[8].kind = EventKind::RaftCommit { commit: 99 };
    let text = first_divergence(&left, &right).unwrap().to_string();
    assert!(text.contains("event #8"), "{text}");
    assert!(text.contains(&render_event(&left[8])), "{text}");
    assert!(text.contains(&render_event(&right[8])), "{text}");

    let text = first_divergence(&left[..2], &left).unwrap().to_string();
    assert!(text.contains("left:  <end of trace>"), "{text}");
}

proptest! {
    #[test]
    fn divergence_index_is_first_change(
        events in prop::collection::vec(arb_event(), 1..20),
        at in any::<prop::sample::Index>(),
    ) {
        let i = at.index(events.len());
        let mut changed = events.clone();
        changed[i].time_us = changed[i].time_us.wrapping_add(1);
        let d = first_divergence(&events, &changed).expect("diverges");
        prop_assert_eq!(d.index, i);
    }
}
