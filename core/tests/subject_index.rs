//! The subscription index: unit tests, proptests against a brute-force model, and a throughput measurement.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::subject::{Match, SubId, SubIndex, SubjectError, matches};

fn q(name: &str) -> Arc<str> {
    Arc::from(name)
}

#[test]
fn plain_and_queue_matches_in_insertion_order() {
    let mut idx = SubIndex::new();
    let a = idx.insert("foo.>", None, "a").unwrap();
    let _b = idx.insert("foo.bar", None, "b").unwrap();
    let _c = idx.insert("foo.*", Some("workers"), "c").unwrap();
    let _d = idx.insert("*.bar", None, "d").unwrap();
    let _e = idx.insert(">", Some("workers"), "e").unwrap();
    let _f = idx.insert("foo.bar", Some("audit"), "f").unwrap();
    let _g = idx.insert("foo.baz", None, "g").unwrap();
    let m = idx.matching("foo.bar");
    assert_eq!(m.plain, vec!["a", "b", "d"]);
    assert_eq!(m.queues, BTreeMap::from([(q("audit"), vec!["f"]), (q("workers"), vec!["c", "e"])]));
    assert_eq!(m.len(), 6);
    assert_eq!(idx.len(), 7);
    assert!(idx.interest("foo.bar"));
    assert!(idx.interest("x"));
    assert_eq!(idx.remove(a), Some("a"));
    assert_eq!(idx.remove(a), None);
    assert_eq!(idx.matching("foo.bar").plain, vec!["b", "d"]);
}

#[test]
fn no_match_and_no_interest() {
    let mut idx = SubIndex::new();
    idx.insert("foo.*", None, 1).unwrap();
    idx.insert("bar.>", None, 2).unwrap();
    assert!(idx.matching("foo").is_empty());
    assert!(idx.matching("foo.a.b").is_empty());
    assert!(idx.matching("bar").is_empty());
    assert!(!idx.interest("foo"));
    assert!(!idx.interest("bar"));
    assert!(idx.interest("bar.x.y"));
    assert!(idx.interest("foo.x"));
    // Malformed subjects match nothing.
    assert!(idx.matching("foo.").is_empty());
    assert!(idx.matching("").is_empty());
    assert!(!idx.interest("bar..x"));
}

#[test]
fn insert_validates() {
    let mut idx = SubIndex::new();
    assert_eq!(idx.insert("foo..bar", None, ()), Err(SubjectError::EmptyToken { index: 1 }));
    assert_eq!(idx.insert("foo.>.bar", None, ()), Err(SubjectError::FullWildcardNotLast));
    assert_eq!(idx.insert("foo", Some(""), ()), Err(SubjectError::EmptyQueue));
    assert!(idx.is_empty());
    assert_eq!(idx.node_count(), 0);
}

#[test]
fn duplicate_subscriptions_are_distinct() {
    let mut idx = SubIndex::new();
    let a = idx.insert("foo", None, 7).unwrap();
    let b = idx.insert("foo", None, 7).unwrap();
    assert_ne!(a, b);
    assert_eq!(idx.matching("foo").plain, vec![7, 7]);
    idx.remove(a);
    assert_eq!(idx.matching("foo").plain, vec![7]);
    assert_eq!(idx.get(b), Some(&7));
    assert_eq!(idx.subscription(b), Some(("foo", None)));
}

#[test]
fn trie_is_pruned() {
    let mut idx = SubIndex::new();
    let a = idx.insert("a.b.c.d", None, ()).unwrap();
    assert_eq!(idx.node_count(), 4);
    let b = idx.insert("a.b.*.>", Some("q"), ()).unwrap();
    assert_eq!(idx.node_count(), 6);
    let c = idx.insert("a.b", None, ()).unwrap();
    assert_eq!(idx.node_count(), 6);
    idx.remove(a);
    assert_eq!(idx.node_count(), 4);
    idx.remove(c);
    assert_eq!(idx.node_count(), 4);
    idx.remove(b);
    assert_eq!(idx.node_count(), 0);
    assert_eq!(idx.recount_nodes(), 0);
    assert!(idx.is_empty());
}

#[test]
fn pick_one_member_per_group() {
    let mut idx = SubIndex::new();
    for i in 0..5 {
        idx.insert("jobs.*", Some("w"), i).unwrap();
    }
    idx.insert("jobs.>", Some("v"), 100).unwrap();
    idx.insert("jobs.x", None, 200).unwrap();
    let m = idx.matching("jobs.x");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut seen = [0usize; 5];
    for _ in 0..1000 {
        let picked = m.pick_queue_members(&mut rng);
        assert_eq!(picked.len(), 2);
        assert_eq!(*picked[0], 100); // group "v" sorts first
        seen[*picked[1] as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 100), "picks should be spread: {seen:?}");
    // Same seed, same picks.
    let a: Vec<i32> = m.pick_queue_members(&mut ChaCha8Rng::seed_from_u64(1)).into_iter().copied().collect();
    let b: Vec<i32> = m.pick_queue_members(&mut ChaCha8Rng::seed_from_u64(1)).into_iter().copied().collect();
    assert_eq!(a, b);
}

#[test]
fn iter_lists_subscriptions_in_id_order() {
    let mut idx = SubIndex::new();
    let a = idx.insert("x.>", Some("g"), 'a').unwrap();
    let b = idx.insert("y", None, 'b').unwrap();
    let all: Vec<_> = idx.iter().collect();
    assert_eq!(all, vec![(a, "x.>", Some("g"), &'a'), (b, "y", None, &'b')]);
}

/// The model: every live subscription, filtered with `matches`.
fn brute_force(model: &BTreeMap<SubId, (String, Option<String>, u32)>, subject: &str) -> Match<u32> {
    let mut m = Match::default();
    for (pattern, queue, v) in model.values() {
        if matches(pattern, subject) {
            match queue {
                None => m.plain.push(*v),
                Some(qn) => m.queues.entry(q(qn)).or_default().push(*v),
            }
        }
    }
    m
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "foo", "bar"]).prop_map(str::to_owned),
        2 => Just("*".to_owned()),
        1 => Just("a*".to_owned()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (prop::collection::vec(token(), 1..5), any::<bool>()).prop_map(|(mut t, full)| {
        if full {
            t.push(">".to_owned());
        }
        t.join(".")
    })
}

fn subject() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "foo", "bar", "a*", "*", ">", ""]).prop_map(str::to_owned),
        1..6,
    )
    .prop_map(|t| t.join("."))
}

#[derive(Clone, Debug)]
enum Action {
    Insert(String, Option<String>),
    Remove(usize),
    Lookup(String),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (pattern(), prop::option::weighted(0.3, prop::sample::select(vec!["q1", "q2"]).prop_map(str::to_owned)))
            .prop_map(|(p, q)| Action::Insert(p, q)),
        3 => any::<usize>().prop_map(Action::Remove),
        3 => subject().prop_map(Action::Lookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matching_equals_brute_force(actions in prop::collection::vec(action(), 1..80)) {
        let mut idx = SubIndex::new();
        let mut model: BTreeMap<SubId, (String, Option<String>, u32)> = BTreeMap::new();
        for (i, act) in actions.into_iter().enumerate() {
            match act {
                Action::Insert(p, qn) => {
                    let id = idx.insert(&p, qn.as_deref(), i as u32).unwrap();
                    model.insert(id, (p, qn, i as u32));
                }
                Action::Remove(k) => {
                    if !model.is_empty() {
                        let id = *model.keys().nth(k % model.len()).unwrap();
                        let (_, _, v) = model.remove(&id).unwrap();
                        prop_assert_eq!(idx.remove(id), Some(v));
                    }
                }
                Action::Lookup(s) => {
                    let expected = brute_force(&model, &s);
                    prop_assert_eq!(idx.interest(&s), !expected.is_empty());
                    prop_assert_eq!(idx.matching(&s), expected, "subject {}", s);
                }
            }
            prop_assert_eq!(idx.len(), model.len());
            prop_assert_eq!(idx.node_count(), idx.recount_nodes());
        }
        // Remove everything: nothing may leak.
        for id in model.keys() {
            prop_assert!(idx.remove(*id).is_some());
        }
        prop_assert!(idx.is_empty());
        prop_assert_eq!(idx.node_count(), 0);
        prop_assert_eq!(idx.recount_nodes(), 0);
    }

    #[test]
    fn matches_agrees_with_single_entry_index(p in pattern(), s in subject()) {
        let mut idx = SubIndex::new();
        idx.insert(&p, None, ()).unwrap();
        prop_assert_eq!(idx.interest(&s), matches(&p, &s));
        prop_assert_eq!(idx.matching(&s).plain.len(), usize::from(matches(&p, &s)));
    }
}

fn measure(name: &str, idx: &SubIndex<(u32, u32)>, subjects: &[String]) {
    use std::time::Instant;
    let rounds = 50;
    let lookups = (rounds * subjects.len()) as f64;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for s in subjects {
            hits += idx.matching(s).len();
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{name}: {} subscriptions, {} nodes: matching {:.0} lookups/s ({:.0} ns/lookup, {:.2} matches/lookup)",
        idx.len(),
        idx.node_count(),
        lookups / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / lookups,
        hits as f64 / lookups
    );
    let start = Instant::now();
    let mut yes = 0usize;
    for _ in 0..rounds {
        for s in subjects {
            yes += usize::from(idx.interest(s));
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{name}: interest {:.0} lookups/s ({:.0}% with interest)",
        lookups / elapsed.as_secs_f64(),
        100.0 * yes as f64 / lookups
    );
}

/// Lookup throughput with 100k subscriptions, in two shapes. Run with
/// `cargo test --release -p weir-core --test subject_index -- --ignored --nocapture`.
#[test]
#[ignore]
fn lookup_throughput_100k() {
    use rand::Rng;

    let n = 100_000u32;
    let mut rng = ChaCha8Rng::seed_from_u64(42);

    // Low fan-out: one subscription per entity (request/reply inboxes, per-key subjects) plus a
    // few wildcards; a lookup matches about one subscription.
    let mut idx = SubIndex::new();
    for i in 0..n {
        let p = match i % 100 {
            0 => format!("svc.t{}.*", i % 1000),
            1 => format!("_INBOX.c{i}.>"),
            _ => format!("kv.b{}.k{i}", i % 10),
        };
        idx.insert(&p, None, (i, i)).unwrap();
    }
    let subjects: Vec<String> = (0..10_000)
        .map(|_| {
            let i = rng.gen_range(0..n);
            match rng.gen_range(0..10) {
                0 => format!("svc.t{}.get", i % 1000),
                1 => format!("_INBOX.c{i}.r1"),
                _ => format!("kv.b{}.k{i}", i % 10),
            }
        })
        .collect();
    measure("low fan-out", &idx, &subjects);

    // High fan-out: per-entity literals, per-tenant wildcards, `>` filters and some queue groups;
    // a lookup matches ~76 subscriptions.
    let mut idx = SubIndex::new();
    for i in 0..n {
        let tenant = rng.gen_range(0..100);
        let p = match i % 10 {
            0..=5 => format!("orders.t{tenant}.e{i}.created"),
            6 => format!("orders.t{tenant}.*.created"),
            7 => format!("_INBOX.c{i}.*"),
            8 => format!("events.t{tenant}.>"),
            _ => format!("orders.t{tenant}.e{}.*", rng.gen_range(0..n)),
        };
        let queue = (i % 50 == 0).then(|| format!("q{}", i % 7));
        idx.insert(&p, queue.as_deref(), (i, i)).unwrap();
    }
    let subjects: Vec<String> = (0..10_000)
        .map(|_| {
            let tenant = rng.gen_range(0..100);
            let e = rng.gen_range(0..n);
            match rng.gen_range(0..4) {
                0 | 1 => format!("orders.t{tenant}.e{e}.created"),
                2 => format!("events.t{tenant}.x.y"),
                _ => format!("_INBOX.c{e}.r1"),
            }
        })
        .collect();
    measure("high fan-out", &idx, &subjects);
}
