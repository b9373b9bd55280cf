//! The store world's checker: judges a run's append/delete history and recovery reports
//! against the store's final contents.
//!
//! The history is Jepsen-style: `invoke` then `ok` (with the sequence), `fail` (definitely
//! not stored) or nothing/`unknown` (a crash or a failed store cut the call short: either
//! outcome is allowed). Every payload is [`payload`]`(value, len)` on the subject
//! [`subject_for`]`(client, value)`, so any stored message can be checked on its own.
//!
//! Deletes, recoveries and the disk's damage come from the world's [`Journal`], in the
//! order they happened. Every excuse is tied to one damaged range and one operation:
//! - a loss a recovery reports is accepted only when the sim disk's record shows damage to
//!   that block before it, and every damaged region a recovery reports must touch a byte
//!   range the disk really damaged (`no-spurious-loss`); only such losses excuse a missing
//!   acknowledged message;
//! - a deleted message may be visible again only when, after its delete returned, the disk
//!   damaged a range that a later recovery reports as holding unreadable records that were
//!   not messages (the delete record may have been one of them);
//! - a delete excuses its message's absence only when it returned, or its outcome is
//!   unknown (a crash or a failed store cut it short) and the next open did not find the
//!   message still there; a delete that failed definitely (a full disk) excuses nothing.

use super::{Violation, at, v};
use crate::disk::Damage;
use std::collections::{BTreeMap, BTreeSet};
use weir_core::store::{DamagedRegion, LostRange, StoreError, StoredMsg};
use weir_core::testing::payload;
use weir_traces::{Event, EventKind};

/// The store's directory on the node's disk.
pub const STORE_DIR: &str = "stream";

/// The disk path of block `block`.
pub fn block_path(block: u64) -> String {
    format!("{STORE_DIR}/{block}.blk")
}

/// One thing that happened to the store, in order (see [`Journal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The sim disk damaged these bytes (copied from [`crate::disk::SimDisk::damage`]).
    Damage(Damage),
    /// A store open found this (from its recovery report).
    Recovered {
        /// Messages it reports lost.
        lost: Vec<LostRange>,
        /// Damaged regions it reports.
        damaged: Vec<DamagedRegion>,
    },
    /// A writer is about to delete this sequence.
    DeleteAsked(u64),
    /// The delete of this sequence failed definitely (nothing was changed).
    DeleteFailed(u64),
    /// The delete of this sequence returned and its disk time passed.
    DeleteDone(u64),
    /// A delete whose outcome was unknown did not happen: the next open found the message.
    DeleteNotApplied(u64),
}

/// The store world's record of deletes, recoveries and disk damage, in order.
pub type Journal = Vec<Entry>;

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
    /// Deletes, recoveries and disk damage over the whole run, in order.
    pub journal: Journal,
}

/// What the history says about the store.
#[derive(Default)]
struct History {
    invoked: BTreeSet<u64>,
    acked: BTreeMap<u64, u64>,
    acked_by_seq: BTreeMap<u64, u64>,
    failed: BTreeMap<u64, String>,
}

fn history(events: &[Event], lost: &BTreeSet<u64>, out: &mut Vec<Violation>) -> History {
    let mut h = History::default();
    for e in events {
        match &e.kind {
            EventKind::ClientInvoke { value, .. } => {
                h.invoked.insert(*value);
            }
            EventKind::ClientOk { value, index, .. } => {
                if let Some(&other) = h.acked_by_seq.get(index)
                    && !lost.contains(index)
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
            _ => {}
        }
    }
    h
}

/// Whether a reported region (closed, `offset..=offset+len`: a cut block reports an empty
/// region at its new end) meets a damaged byte range of the same block.
fn touches(region: &DamagedRegion, d: &Damage) -> bool {
    d.path == block_path(region.block) && region.offset <= d.end && region.offset + region.len >= d.offset
}

/// The excuses the journal allows, each tied to a damaged range or one operation.
#[derive(Default)]
struct Excuses {
    /// Sequences reported lost in a block the disk had damaged.
    lost: BTreeSet<u64>,
    /// Deleted sequences whose delete record may have been destroyed: the position of
    /// each delete's `DeleteDone`, and of every damage a later recovery found to hold
    /// unreadable records that were not messages.
    delete_done: BTreeMap<u64, usize>,
    lost_other_records: Vec<usize>,
    /// Last known state of each asked delete: `true` = may have happened.
    delete_may_have_happened: BTreeMap<u64, bool>,
}

fn excuses(journal: &Journal, out: &mut Vec<Violation>) -> Excuses {
    let mut x = Excuses::default();
    // Damage done so far: (position in the journal, what).
    let mut damage: Vec<(usize, &Damage)> = Vec::new();
    for (pos, entry) in journal.iter().enumerate() {
        match entry {
            Entry::Damage(d) => damage.push((pos, d)),
            Entry::Recovered { lost, damaged } => {
                for l in lost {
                    if damage.iter().any(|(_, d)| d.path == block_path(l.block)) {
                        x.lost.extend(l.seqs.clone());
                    } else {
                        out.push(v(
                            "no-spurious-loss",
                            format!(
                                "recovery #{pos} reported sequences {:?} of block {} lost, but the disk never damaged that block",
                                l.seqs, l.block
                            ),
                        ));
                    }
                }
                for r in damaged {
                    let hits: Vec<usize> = damage.iter().filter(|(_, d)| touches(r, d)).map(|(p, _)| *p).collect();
                    if hits.is_empty() {
                        out.push(v(
                            "no-spurious-loss",
                            format!(
                                "recovery #{pos} reported block {} damaged at {}+{}, where the disk damaged nothing",
                                r.block, r.offset, r.len
                            ),
                        ));
                    } else if r.unreadable_records != Some(0) {
                        x.lost_other_records.extend(hits);
                    }
                }
            }
            Entry::DeleteAsked(seq) => {
                x.delete_may_have_happened.insert(*seq, true);
            }
            Entry::DeleteFailed(seq) | Entry::DeleteNotApplied(seq) => {
                x.delete_may_have_happened.insert(*seq, false);
            }
            Entry::DeleteDone(seq) => {
                x.delete_may_have_happened.insert(*seq, true);
                x.delete_done.entry(*seq).or_insert(pos);
            }
        }
    }
    x
}

impl Excuses {
    /// Whether `seq`, deleted, may be visible again: a delete record written after its
    /// delete returned was in a damaged range a recovery could not read.
    fn resurrection_excused(&self, seq: u64) -> bool {
        self.delete_done.get(&seq).is_some_and(|&done| self.lost_other_records.iter().any(|&d| d > done))
    }
}

/// Check one loaded message on its own: its payload and subject must be what some
/// writer appended.
fn verify(seq: u64, subject: &str, body: &[u8], len: usize) -> Option<String> {
    let value = body.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let ok = value.is_some_and(|v| body == payload(v, len) && subject == subject_for(client_of(v), v));
    (!ok).then(|| format!("seq {seq} read back {} bytes on {subject:?} that no writer appended", body.len()))
}

/// One read the reader makes.
#[derive(Clone, Copy, Debug)]
pub enum ReadAsk {
    /// `load(seq)`.
    Load(u64),
    /// `load_next("w{client}.>", from)`.
    Next {
        /// Whose subjects.
        client: u32,
        /// First sequence asked for.
        from: u64,
    },
}

/// What the reader knows when it judges a read.
pub struct ReadContext<'a> {
    /// Acknowledged messages that must be readable (sequence to value).
    pub present: &'a BTreeMap<u64, u64>,
    /// Retention may have evicted every sequence below this.
    pub evictable_below: u64,
    /// Blocks the disk has damaged (a read there may meet a corrupt record).
    pub damaged_blocks: &'a BTreeSet<u64>,
    /// Payload length every append used.
    pub payload_len: usize,
}

/// Judge one read's result: a message that is not what was appended (`read-integrity`),
/// another sequence than asked (`read-seq`), a message on a subject the filter does not
/// match (`read-subject`), a message that must be present but is not returned
/// (`read-missing`), a corrupt record in a block the disk never damaged or another error
/// (`read-integrity`). Errors that make the world reopen the store (`Failed`, `Io`) are
/// not judged here.
pub fn judge_read(ask: ReadAsk, r: &Result<Option<StoredMsg>, StoreError>, cx: &ReadContext<'_>) -> Option<Violation> {
    let problem = |invariant, detail| Some(Violation { invariant, detail });
    let (from, client) = match ask {
        ReadAsk::Load(seq) => (seq, None),
        ReadAsk::Next { client, from } => (from, Some(client)),
    };
    // The first message at or past `from` the read must return, if any.
    let due = cx
        .present
        .range(from.max(cx.evictable_below)..)
        .find(|&(&seq, &value)| match client {
            None => seq == from,
            Some(c) => client_of(value) == c,
        })
        .map(|(&seq, _)| seq);
    match (ask, r) {
        (ReadAsk::Load(seq), Ok(Some(m))) if m.seq != seq => {
            problem("read-seq", format!("load({seq}) returned seq {}", m.seq))
        }
        (ReadAsk::Next { from, .. }, Ok(Some(m))) if m.seq < from => {
            problem("read-seq", format!("load_next from {from} returned seq {}", m.seq))
        }
        (ReadAsk::Next { client, from }, Ok(Some(m))) if !m.subject.starts_with(&format!("w{client}.")) => problem(
            "read-subject",
            format!("load_next(\"w{client}.>\", {from}) returned seq {} on {:?}", m.seq, m.subject),
        ),
        (_, Ok(Some(m))) if due.is_some_and(|d| d < m.seq) => problem(
            "read-missing",
            format!("{ask:?} returned seq {} past seq {}, which must be present", m.seq, due.unwrap_or(0)),
        ),
        (_, Ok(Some(m))) => {
            verify(m.seq, &m.subject, &m.payload, cx.payload_len).and_then(|d| problem("read-integrity", d))
        }
        (_, Ok(None)) => {
            due.and_then(|d| problem("read-missing", format!("{ask:?} found nothing; seq {d} must be present")))
        }
        (_, Err(StoreError::NoMemory { .. })) => None,
        (_, Err(StoreError::Corrupt { block, .. })) if cx.damaged_blocks.contains(block) => None,
        (_, Err(StoreError::Failed(_) | StoreError::Io { .. })) => None,
        (_, Err(e)) => problem("read-integrity", format!("{ask:?}: {e}")),
    }
}

/// Judge the store's final contents against the history.
pub fn store_outcomes(events: &[Event], fin: &FinalStore) -> Vec<Violation> {
    let mut out = Vec::new();
    let x = excuses(&fin.journal, &mut out);
    let h = history(events, &x.lost, &mut out);
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
        if x.delete_done.contains_key(&m.seq) && !x.resurrection_excused(m.seq) {
            out.push(v("deleted-stays-deleted", format!("seq {} was deleted but is stored again", m.seq)));
        }
    }
    // Retention keeps the newest `max_msgs` sequences out of reach of eviction.
    let evictable_below = if fin.max_msgs == 0 { 0 } else { fin.last_seq.saturating_sub(fin.max_msgs) + 1 };
    let mut missing = Vec::new();
    for (&value, &seq) in &h.acked {
        let allowed = seq < evictable_below
            || x.delete_may_have_happened.get(&seq).copied().unwrap_or(false)
            || x.lost.contains(&seq);
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
    use crate::disk::DamageKind;

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
            journal: Vec::new(),
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
        let es2 = history_of(&[(A, Some(1)), (A + 1, Some(2))]);
        let deleted =
            |msgs| FinalStore { journal: vec![Entry::DeleteAsked(1), Entry::DeleteDone(1)], ..store(msgs, 2) };
        assert!(store_outcomes(&es2, &deleted(vec![msg(2, A + 1)])).is_empty());
        let back = store_outcomes(&es2, &deleted(vec![msg(1, A), msg(2, A + 1)]));
        assert_eq!(back[0].invariant, "deleted-stays-deleted");
        let es3 = history_of(&[(A + 1, Some(1)), (A, Some(2))]);
        assert_eq!(store_outcomes(&es3, &store(vec![msg(1, A + 1), msg(2, A)], 2))[0].invariant, "order");
    }

    fn flip(block: u64, offset: u64) -> Entry {
        Entry::Damage(Damage { path: block_path(block), offset, end: offset + 1, kind: DamageKind::FlipBit })
    }

    fn recovered(lost: &[(u64, u64, u64)], damaged: &[(u64, u64, u64, Option<u64>)]) -> Entry {
        Entry::Recovered {
            lost: lost.iter().map(|&(block, a, b)| LostRange { block, seqs: a..=b }).collect(),
            damaged: damaged
                .iter()
                .map(|&(block, offset, len, unreadable_records)| DamagedRegion {
                    block,
                    offset,
                    len,
                    unreadable_records,
                })
                .collect(),
        }
    }

    fn names(es: &[Event], f: &FinalStore) -> Vec<&'static str> {
        store_outcomes(es, f).into_iter().map(|x| x.invariant).collect()
    }

    #[test]
    fn reported_loss_needs_damage_to_that_block_and_excuses_only_it() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2)), (A + 2, Some(3))]);
        let lost_one = recovered(&[(1, 1, 1)], &[(1, 100, 40, Some(1))]);
        let with = |journal: Journal, msgs| FinalStore { journal, ..store(msgs, 3) };
        let f = |j| with(j, vec![msg(2, A + 1), msg(3, A + 2)]);
        // No damage at all, damage to another block, damage elsewhere in the block: spurious.
        let unexcused = ["no-spurious-loss", "no-spurious-loss", "acked-durability"];
        assert_eq!(names(&es, &f(vec![lost_one.clone()])), unexcused);
        assert_eq!(names(&es, &f(vec![flip(2, 120), lost_one.clone()])), unexcused);
        assert_eq!(names(&es, &f(vec![flip(1, 500), lost_one.clone()])), ["no-spurious-loss"]);
        // Damage reported after the recovery excuses nothing.
        assert_eq!(names(&es, &f(vec![lost_one.clone(), flip(1, 120)])), unexcused);
        assert!(names(&es, &f(vec![flip(1, 120), lost_one.clone()])).is_empty());
        // The excuse covers the reported range only: seq 2 missing too is a loss.
        let only_first = with(vec![flip(1, 120), lost_one.clone()], vec![msg(3, A + 2)]);
        assert_eq!(names(&es, &only_first), ["acked-durability"]);
        // A cut block reports an empty region at its new end.
        let cut = Entry::Damage(Damage { path: block_path(1), offset: 300, end: 900, kind: DamageKind::Cut });
        assert!(names(&es, &f(vec![cut, recovered(&[(1, 1, 1)], &[(1, 300, 0, None)])])).is_empty());
    }

    #[test]
    fn a_resurrected_delete_needs_damage_after_it_to_unreadable_records() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2))]);
        let both = |journal: Journal| FinalStore { journal, ..store(vec![msg(1, A), msg(2, A + 1)], 2) };
        let done = [Entry::DeleteAsked(1), Entry::DeleteDone(1)];
        let other = recovered(&[], &[(1, 200, 30, Some(1))]);
        let only_msgs = recovered(&[(1, 2, 2)], &[(1, 200, 30, Some(0))]);
        // Damage before the delete cannot have destroyed its record.
        let before = [vec![flip(1, 210), other.clone()], done.to_vec()].concat();
        assert_eq!(names(&es, &both(before)), ["deleted-stays-deleted"]);
        // Damage after it, but to message records only.
        let msgs_only = [done.to_vec(), vec![flip(1, 210), only_msgs]].concat();
        assert_eq!(names(&es, &both(msgs_only)), ["deleted-stays-deleted"]);
        // Damage after it, to records that were not messages, that the disk really did.
        let after = [done.to_vec(), vec![flip(1, 210), other.clone()]].concat();
        assert!(names(&es, &both(after)).is_empty());
        // The same report with no damage on the disk: spurious, and no excuse.
        let invented = [done.to_vec(), vec![other]].concat();
        assert_eq!(names(&es, &both(invented)), ["no-spurious-loss", "deleted-stays-deleted"]);
    }

    #[test]
    fn only_a_delete_that_may_have_happened_excuses_absence() {
        let es = history_of(&[(A, Some(1)), (A + 1, Some(2))]);
        let gone = |journal: Journal| FinalStore { journal, ..store(vec![msg(2, A + 1)], 2) };
        assert!(names(&es, &gone(vec![Entry::DeleteAsked(1), Entry::DeleteDone(1)])).is_empty());
        // Cut short (outcome unknown): either way.
        assert!(names(&es, &gone(vec![Entry::DeleteAsked(1)])).is_empty());
        // Failed definitely (a full disk), or found still there after a crash: must stay.
        assert_eq!(names(&es, &gone(vec![Entry::DeleteAsked(1), Entry::DeleteFailed(1)])), ["acked-durability"]);
        assert_eq!(names(&es, &gone(vec![Entry::DeleteAsked(1), Entry::DeleteNotApplied(1)])), ["acked-durability"]);
    }

    fn stored(seq: u64, value: u64) -> Result<Option<StoredMsg>, StoreError> {
        let m = msg(seq, value);
        Ok(Some(StoredMsg { seq, subject: m.subject, headers: Vec::new(), payload: m.payload, ts_ns: 0 }))
    }

    #[test]
    fn the_reader_flags_another_seq_a_wrong_subject_and_a_missing_message() {
        const B: u64 = 2 << 40;
        // Seqs 1 (client 0), 2 (client 1) and 4 (client 0) must be present; 3 was deleted.
        let present: BTreeMap<u64, u64> = [(1, A), (2, B), (4, A + 2)].into();
        let damaged: BTreeSet<u64> = [7].into();
        let cx = ReadContext { present: &present, evictable_below: 0, damaged_blocks: &damaged, payload_len: 16 };
        let judge = |ask, r| judge_read(ask, &r, &cx).map(|x| x.invariant);
        let next = |client, from| ReadAsk::Next { client, from };
        assert_eq!(judge(ReadAsk::Load(1), stored(1, A)), None);
        assert_eq!(judge(ReadAsk::Load(3), Ok(None)), None);
        assert_eq!(judge(ReadAsk::Load(1), stored(4, A + 2)), Some("read-seq"));
        assert_eq!(judge(ReadAsk::Load(2), Ok(None)), Some("read-missing"));
        assert_eq!(judge(next(0, 2), stored(4, A + 2)), None);
        assert_eq!(judge(next(0, 2), stored(2, B)), Some("read-subject"));
        assert_eq!(judge(next(0, 1), stored(4, A + 2)), Some("read-missing"));
        assert_eq!(judge(next(0, 5), Ok(None)), None);
        assert_eq!(judge(next(0, 4), Ok(None)), Some("read-missing"));
        assert_eq!(judge(next(1, 3), stored(2, B)), Some("read-seq"));
        // Retention may have evicted the oldest.
        let cx2 = ReadContext { evictable_below: 3, ..cx };
        assert_eq!(judge_read(ReadAsk::Load(2), &Ok(None), &cx2), None);
        let mut garbled = stored(1, A);
        if let Ok(Some(m)) = &mut garbled {
            m.payload[9] ^= 1;
        }
        assert_eq!(judge(ReadAsk::Load(1), garbled), Some("read-integrity"));
        let corrupt = |block| Err(StoreError::Corrupt { block, lost: 1..=1 });
        assert_eq!(judge(ReadAsk::Load(1), corrupt(7)), None);
        assert_eq!(judge(ReadAsk::Load(1), corrupt(8)), Some("read-integrity"));
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
