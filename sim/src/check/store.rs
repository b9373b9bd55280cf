//! The store world's checker: judges a run's append/delete history and recovery reports
//! against the store's final contents.
//!
//! The history is Jepsen-style: `invoke` then `ok` (with the sequence), `fail` (definitely
//! not stored) or nothing/`unknown` (a crash or a failed store cut the call short: either
//! outcome is allowed). Deletes are `store-delete` events, `done: false` when asked and
//! `done: true` once they returned. Every payload is [`payload`]`(value, len)` on the
//! subject [`subject_for`]`(client, value)`, so any stored message can be checked on its own.

use super::{Violation, at, v};
use std::collections::{BTreeMap, BTreeSet};
use weir_core::testing::payload;
use weir_traces::{Event, EventKind};

/// The subject client `client` appends `value` on (four subjects per client).
pub fn subject_for(client: u32, value: u64) -> String {
    format!("w{client}.{}", value % 4)
}

/// The client that owns `value` (see `workload::value_for`).
pub fn client_of(value: u64) -> u32 {
    ((value >> 40) as u32).wrapping_sub(1)
}

/// One message read back from the store at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalMsg {
    /// Its sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// The store's contents at the end of the run, as read after a final reopen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalStore {
    /// Oldest stored sequence.
    pub first_seq: u64,
    /// Highest sequence assigned.
    pub last_seq: u64,
    /// Every stored message in sequence order.
    pub msgs: Vec<FinalMsg>,
    /// The `max_msgs` limit in force (0 = none).
    pub max_msgs: u64,
    /// Payload length every append used.
    pub payload_len: usize,
}

/// What the history says about the store.
#[derive(Default)]
struct History {
    invoked: BTreeSet<u64>,
    acked: BTreeMap<u64, u64>,
    acked_by_seq: BTreeMap<u64, u64>,
    failed: BTreeMap<u64, String>,
    delete_asked: BTreeSet<u64>,
    delete_done: BTreeMap<u64, u64>,
    /// Sequences reported lost by some recovery.
    lost: BTreeSet<u64>,
    /// Time of the first corruption fault, if any.
    corrupted_at: Option<u64>,
    /// Whether some recovery found unreadable non-message records (a lost delete).
    lost_delete_record: bool,
}

fn history(events: &[Event], out: &mut Vec<Violation>) -> History {
    let mut h = History::default();
    for e in events {
        match &e.kind {
            EventKind::ClientInvoke { value, .. } => {
                h.invoked.insert(*value);
            }
            EventKind::ClientOk { value, index, .. } => {
                if let Some(&other) = h.acked_by_seq.get(index)
                    && !h.lost.contains(index)
                {
                    out.push(v(
                        "seq-never-reused",
                        format!("sequence {index} acknowledged for {other:#x} and again for {value:#x} at {}", at(e)),
                    ));
                }
                h.acked.insert(*value, *index);
                h.acked_by_seq.insert(*index, *value);
            }
            EventKind::ClientFail { value, reason, .. } => {
                h.failed.insert(*value, reason.clone());
            }
            EventKind::StoreDelete { seq, done: false, .. } => {
                h.delete_asked.insert(*seq);
            }
            EventKind::StoreDelete { seq, done: true, .. } => {
                h.delete_done.insert(*seq, e.time_us);
            }
            EventKind::Fault { desc } if desc.starts_with("corrupt") => {
                h.corrupted_at.get_or_insert(e.time_us);
            }
            EventKind::StoreRecovered { lost, unreadable_other, .. } => {
                if !lost.is_empty() && h.corrupted_at.is_none() {
                    out.push(v(
                        "no-spurious-loss",
                        format!("recovery at {} reported lost sequences {lost:?} but no damage was injected", at(e)),
                    ));
                }
                for &(a, b) in lost {
                    h.lost.extend(a..=b);
                }
                h.lost_delete_record |= *unreadable_other;
            }
            _ => {}
        }
    }
    h
}

/// Judge the store's final contents against the history.
pub fn store_outcomes(events: &[Event], fin: &FinalStore) -> Vec<Violation> {
    let mut out = Vec::new();
    let h = history(events, &mut out);
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last_seq_of_client: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for m in &fin.msgs {
        let value = m.payload.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).unwrap_or(0);
        let client = client_of(value);
        if !h.invoked.contains(&value)
            || m.payload != payload(value, fin.payload_len)
            || m.subject != subject_for(client, value)
        {
            out.push(v(
                "no-phantom",
                format!("seq {} holds {} bytes on {:?} that no client appended", m.seq, m.payload.len(), m.subject),
            ));
            continue;
        }
        if let Some(reason) = h.failed.get(&value) {
            out.push(v(
                "failed-not-stored",
                format!("value {value:#x} at seq {} was reported failed ({reason})", m.seq),
            ));
        }
        if let Some(prev) = seen.insert(value, m.seq) {
            out.push(v("exactly-once", format!("value {value:#x} stored at seq {prev} and {}", m.seq)));
        }
        if let Some(&acked_seq) = h.acked.get(&value)
            && acked_seq != m.seq
        {
            out.push(v(
                "acked-durability",
                format!("value {value:#x} acknowledged at seq {acked_seq} found at {}", m.seq),
            ));
        }
        if let Some(&(pv, ps)) = last_seq_of_client.get(&client)
            && pv > value
        {
            out.push(v(
                "order",
                format!("client {client}: value {pv:#x} at seq {ps} precedes older value {value:#x} at seq {}", m.seq),
            ));
        }
        last_seq_of_client.insert(client, (value, m.seq));
        if h.delete_done.contains_key(&m.seq) && !h.lost_delete_record {
            out.push(v("deleted-stays-deleted", format!("seq {} was deleted but is stored again", m.seq)));
        }
    }
    // Retention keeps the newest `max_msgs` sequences out of reach of eviction.
    let evictable_below = if fin.max_msgs == 0 { 0 } else { fin.last_seq.saturating_sub(fin.max_msgs) + 1 };
    let mut missing = Vec::new();
    for (&value, &seq) in &h.acked {
        let allowed = seq < evictable_below || h.delete_asked.contains(&seq) || h.lost.contains(&seq);
        if !seen.contains_key(&value) && !allowed {
            missing.push((value, seq));
        }
    }
    if !missing.is_empty() {
        let show: Vec<String> = missing.iter().take(5).map(|(x, s)| format!("{x:#x}@{s}")).collect();
        out.push(v(
            "acked-durability",
            format!(
                "{} acknowledged appends missing (store first={} last={}), e.g. {}",
                missing.len(),
                fin.first_seq,
                fin.last_seq,
                show.join(", ")
            ),
        ));
    }
    if fin.max_msgs > 0 && fin.msgs.len() as u64 > fin.max_msgs {
        out.push(v("retention", format!("{} messages stored, max_msgs {}", fin.msgs.len(), fin.max_msgs)));
    }
    if let Some(max_acked) = h.acked.values().max()
        && fin.last_seq < *max_acked
    {
        out.push(v("seq-never-reused", format!("last_seq {} is below acknowledged seq {max_acked}", fin.last_seq)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, kind: EventKind) -> Event {
        Event { time_us: t, node: 0, kind }
    }

    fn msg(seq: u64, value: u64) -> FinalMsg {
        FinalMsg { seq, subject: subject_for(client_of(value), value), payload: payload(value, 16) }
    }

    fn history_of(values: &[(u64, Option<u64>)]) -> Vec<Event> {
        let mut es = Vec::new();
        for (i, &(value, seq)) in values.iter().enumerate() {
            es.push(ev(i as u64, EventKind::ClientInvoke { client: client_of(value), value, target: 1 }));
            match seq {
                Some(index) => es.push(ev(i as u64, EventKind::ClientOk { client: client_of(value), value, index })),
                None => es.push(ev(i as u64, EventKind::ClientFail { client: 0, value, reason: "full".into() })),
            }
        }
        es
    }

    const A: u64 = 1 << 40;

    fn store(msgs: Vec<FinalMsg>, last: u64) -> FinalStore {
        FinalStore {
            first_seq: msgs.first().map_or(last + 1, |m| m.seq),
            last_seq: last,
            msgs,
            max_msgs: 0,
            payload_len: 16,
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2)), (A + 2, None)]);
        assert!(store_outcomes(&es, &store(vec![msg(1, A), msg(2, A + 1)], 2)).is_empty());
    }

    #[test]
    fn loss_phantom_failure_order_and_resurrection_are_caught() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2)), (A + 2, None)]);
        let names = |f: FinalStore| store_outcomes(&es, &f).into_iter().map(|x| x.invariant).collect::<Vec<_>>();
        assert_eq!(names(store(vec![msg(1, A)], 2)), ["acked-durability"]);
        assert_eq!(names(store(vec![msg(1, A), msg(2, A + 1), msg(3, A + 9)], 3)), ["no-phantom"]);
        assert_eq!(names(store(vec![msg(1, A), msg(2, A + 1), msg(3, A + 2)], 3)), ["failed-not-stored"]);
        let mut garbled = msg(2, A + 1);
        garbled.payload[10] ^= 1;
        assert_eq!(names(store(vec![msg(1, A), garbled], 2)), ["no-phantom", "acked-durability"]);
        assert_eq!(names(store(vec![msg(1, A), msg(2, A + 1)], 1)), ["seq-never-reused"]);
        let swapped = store_outcomes(&[], &store(vec![msg(1, A + 1), msg(2, A)], 2));
        assert!(swapped.iter().all(|x| x.invariant == "no-phantom"), "never invoked");
        let mut es2 = history_of(&[(A, Some(1)), (A + 1, Some(2))]);
        es2.push(ev(9, EventKind::StoreDelete { client: 0, seq: 1, done: false }));
        es2.push(ev(9, EventKind::StoreDelete { client: 0, seq: 1, done: true }));
        assert!(store_outcomes(&es2, &store(vec![msg(2, A + 1)], 2)).is_empty());
        let back = store_outcomes(&es2, &store(vec![msg(1, A), msg(2, A + 1)], 2));
        assert_eq!(back[0].invariant, "deleted-stays-deleted");
        let es3 = history_of(&[(A + 1, Some(1)), (A, Some(2))]);
        assert_eq!(store_outcomes(&es3, &store(vec![msg(1, A + 1), msg(2, A)], 2))[0].invariant, "order");
    }

    #[test]
    fn reported_loss_needs_injected_damage_and_excuses_it() {
        let mut es = history_of(&[(A, Some(1)), (A + 1, Some(2))]);
        let rec = EventKind::StoreRecovered {
            lost: vec![(1, 1)],
            damaged: 1,
            unreadable_other: false,
            truncated_bytes: 0,
            first_seq: 2,
            last_seq: 2,
        };
        es.push(ev(10, rec.clone()));
        let f = store(vec![msg(2, A + 1)], 2);
        assert_eq!(store_outcomes(&es, &f)[0].invariant, "no-spurious-loss");
        es.insert(es.len() - 1, ev(9, EventKind::Fault { desc: "corrupt disk n1".into() }));
        assert!(store_outcomes(&es, &f).is_empty());
    }

    #[test]
    fn retention_excuses_only_the_oldest() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2)), (A + 2, Some(3))]);
        let mut f = store(vec![msg(3, A + 2)], 3);
        f.max_msgs = 1;
        assert!(store_outcomes(&es, &f).is_empty());
        f.msgs = vec![msg(2, A + 1)];
        assert_eq!(store_outcomes(&es, &f)[0].invariant, "acked-durability");
        f.msgs = vec![msg(2, A + 1), msg(3, A + 2)];
        assert_eq!(store_outcomes(&es, &f)[0].invariant, "retention");
    }
}
