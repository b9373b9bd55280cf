//! Checkers: pure functions that judge a run from its events and the replicas'
//! final states. They know nothing about madsim, so they are unit-tested directly and
//! can be re-run over a stored trace.

pub mod heap;
pub mod js;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use weir_core::testing::{LogApp, chain};
use weir_traces::{Event, EventKind, NodeNo, Role};

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Invariant name (stable, short).
    pub invariant: &'static str,
    /// What exactly went wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

pub(crate) fn v(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

pub(crate) fn at(e: &Event) -> String {
    format!("{:.6}s", e.time_us as f64 / 1e6)
}

/// At most one leader per term.
pub fn election_safety(events: &[Event]) -> Vec<Violation> {
    let mut leaders: BTreeMap<u64, (NodeNo, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        if let EventKind::RaftRole { term, role: Role::Leader } = e.kind {
            match leaders.get(&term) {
                Some(&(n, t)) if n != e.node => out.push(v(
                    "election-safety",
                    format!("two leaders in term {term}: n{n} at {:.6}s and n{} at {}", t as f64 / 1e6, e.node, at(e)),
                )),
                Some(_) => {}
                None => {
                    leaders.insert(term, (e.node, e.time_us));
                }
            }
        }
    }
    out
}

/// The commit index never moves backwards within one incarnation of a node.
pub fn commit_monotonic(events: &[Event]) -> Vec<Violation> {
    let mut last: BTreeMap<NodeNo, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        match e.kind {
            EventKind::NodeStart { .. } => {
                last.remove(&e.node);
            }
            EventKind::RaftCommit { commit } => {
                let prev = last.insert(e.node, commit).unwrap_or(0);
                if commit < prev {
                    out.push(v("commit-monotonic", format!("n{} commit went {prev} -> {commit} at {}", e.node, at(e))));
                }
            }
            _ => {}
        }
    }
    out
}

/// State-machine safety: an index is applied with the same (term, data) everywhere
/// and forever; each node applies contiguously; restored snapshots match the log.
pub fn apply_safety(events: &[Event]) -> Vec<Violation> {
    let mut global: BTreeMap<u64, (u64, u64, NodeNo)> = BTreeMap::new();
    let mut next: BTreeMap<NodeNo, u64> = BTreeMap::new();
    let mut snapshots: Vec<(NodeNo, u64, u64, String)> = Vec::new();
    let mut out = Vec::new();
    for e in events {
        match e.kind {
            EventKind::NodeStart { .. } => {
                next.insert(e.node, 1);
            }
            EventKind::SnapshotRestored { index, state_hash, .. } => {
                next.insert(e.node, index + 1);
                snapshots.push((e.node, index, state_hash, at(e)));
            }
            EventKind::Applied { index, term, data_hash } => {
                let want = next.get(&e.node).copied().unwrap_or(1);
                if index != want {
                    out.push(v(
                        "apply-order",
                        format!("n{} applied index {index}, expected {want}, at {}", e.node, at(e)),
                    ));
                }
                next.insert(e.node, index + 1);
                match global.get(&index) {
                    Some(&(t, h, n)) if (t, h) != (term, data_hash) => out.push(v(
                        "state-machine-safety",
                        format!(
                            "index {index} applied as term {t} data {h:016x} on n{n} but as term {term} data {data_hash:016x} on n{} at {}",
                            e.node,
                            at(e)
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        global.insert(index, (term, data_hash, e.node));
                    }
                }
            }
            _ => {}
        }
    }
    // A snapshot's digest must equal the chain over the log it claims to cover.
    let mut digests: Vec<u64> = vec![0];
    for (i, (idx, (_, h, _))) in global.iter().enumerate() {
        if *idx != i as u64 + 1 {
            break;
        }
        let d = chain(*digests.last().expect("non-empty"), *idx, *h);
        digests.push(d);
    }
    for (node, index, hash, when) in snapshots {
        if let Some(&d) = digests.get(index as usize)
            && d != hash
        {
            out.push(v(
                "snapshot-safety",
                format!(
                    "n{node} restored a snapshot at {index} with digest {hash:016x}, log says {d:016x} (at {when})"
                ),
            ));
        }
    }
    out
}

/// The final state of one replica.
#[derive(Clone, Debug)]
pub struct FinalReplica {
    /// Node number.
    pub node: NodeNo,
    /// Its application state.
    pub app: LogApp,
}

/// Client outcomes against the replicas' final logs: every acknowledged value is
/// present exactly once at its index on every replica, no definitely-failed value is
/// present, nothing appears that no client proposed, and all replicas agree.
pub fn client_outcomes(events: &[Event], finals: &[FinalReplica]) -> Vec<Violation> {
    let mut invoked = BTreeSet::new();
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut failed: BTreeMap<u64, String> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::ClientInvoke { value, .. } => {
                invoked.insert(*value);
            }
            EventKind::ClientOk { value, index, .. } => {
                acked.insert(*value, *index);
            }
            EventKind::ClientFail { value, reason, .. } => {
                failed.insert(*value, reason.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in finals {
        // `(value, index)` sorted (a value's indices ascending, i.e. in log
        // order), walked as groups: one allocation per replica, not a map of vectors.
        let mut by_value: Vec<(u64, u64)> = r.app.values.iter().map(|&(index, value)| (value, index)).collect();
        by_value.sort_unstable();
        let indices = |g: &[(u64, u64)]| g.iter().map(|&(_, i)| i).collect::<Vec<u64>>();
        let mut lost = Vec::new();
        for (&value, &index) in &acked {
            match value_group(&by_value, value) {
                [] => lost.push(value),
                [(_, i)] if *i == index => {}
                g => out.push(v(
                    "acked-durability",
                    format!(
                        "n{}: acknowledged value {value:#x} (index {index}) found at indices {:?}",
                        r.node,
                        indices(g)
                    ),
                )),
            }
        }
        if !lost.is_empty() {
            let show: Vec<String> = lost.iter().take(5).map(|x| format!("{x:#x}")).collect();
            out.push(v(
                "acked-durability",
                format!(
                    "n{}: {} acknowledged values missing from the final log (applied {}), e.g. {}",
                    r.node,
                    lost.len(),
                    r.app.applied,
                    show.join(", ")
                ),
            ));
        }
        for g in by_value.chunk_by(|a, b| a.0 == b.0) {
            let value = g[0].0;
            if !invoked.contains(&value) {
                out.push(v(
                    "no-phantom",
                    format!("n{}: value {value:#x} at {:?} was never proposed", r.node, indices(g)),
                ));
            } else if let Some(reason) = failed.get(&value) {
                out.push(v(
                    "failed-not-applied",
                    format!("n{}: value {value:#x} at {:?} was reported failed ({reason})", r.node, indices(g)),
                ));
            }
            if g.len() > 1 {
                out.push(v("exactly-once", format!("n{}: value {value:#x} applied at {:?}", r.node, indices(g))));
            }
        }
    }
    if let Some(first) = finals.first() {
        for r in &finals[1..] {
            if (r.app.applied, r.app.digest) != (first.app.applied, first.app.digest) {
                out.push(v(
                    "replica-agreement",
                    format!(
                        "n{} ends at applied {} digest {:016x}, n{} at applied {} digest {:016x}",
                        first.node, first.app.applied, first.app.digest, r.node, r.app.applied, r.app.digest
                    ),
                ));
            }
        }
    }
    out
}

/// The `(value, index)` pairs of `value` in `by_value` (sorted by value).
fn value_group(by_value: &[(u64, u64)], value: u64) -> &[(u64, u64)] {
    let from = by_value.partition_point(|&(v, _)| v < value);
    let len = by_value[from..].iter().take_while(|&&(v, _)| v == value).count();
    &by_value[from..from + len]
}

/// Every ledger sample stays within its account's limit.
pub fn memory_bounds(events: &[Event]) -> Vec<Violation> {
    let mut worst: BTreeMap<(NodeNo, String), (u64, u64, String)> = BTreeMap::new();
    for e in events {
        if let EventKind::Ledger { account, peak, limit, .. } = &e.kind
            && peak > limit
        {
            let slot = worst.entry((e.node, account.clone())).or_insert((0, *limit, at(e)));
            if *peak > slot.0 {
                *slot = (*peak, *limit, at(e));
            }
        }
    }
    worst
        .into_iter()
        .map(|((node, account), (peak, limit, when))| {
            v("memory-bound", format!("n{node} {account} peaked at {peak} bytes, limit {limit} (first seen {when})"))
        })
        .collect()
}

/// Marks the start of the final fault-free phase of a pub/sub run (a harness note).
pub const FINAL_PHASE_START: &str = "final phase: start";
/// Marks the end of the final fault-free phase of a pub/sub run (a harness note).
pub const FINAL_PHASE_END: &str = "final phase: end";
/// Note the pub/sub world emits when its cluster becomes whole during the safety phase
/// (every route up, every peer's interest held, route queues drained, every client
/// connected).
pub const CLUSTER_WHOLE: &str = "pubsub: cluster whole";
/// Note the pub/sub world emits when its cluster stops being whole (or its monitor stops
/// at the end of the safety phase).
pub const CLUSTER_BROKEN: &str = "pubsub: cluster not whole";
/// Note a pub/sub subscriber emits (followed by its number) when its connection ends:
/// the server closed it (a slow consumer, when a `client.outbound` charge is refused) or
/// the link broke. What was queued for it is lost, and its interest is gone until
/// [`SUB_RESUBSCRIBED`].
pub const SUB_DISCONNECTED: &str = "pubsub: subscriber disconnected: ";
/// Note a pub/sub subscriber emits (followed by its number) once it is connected and
/// subscribed again after [`SUB_DISCONNECTED`].
pub const SUB_RESUBSCRIBED: &str = "pubsub: subscriber resubscribed: ";
/// A value published in a fault-free window must be delivered when the window lasts
/// this long after its publication.
pub const WINDOW_GRACE_US: u64 = 500_000;

/// Which faults of the schedule are in force, from the `fault` events' descriptions
/// (the `Display` of `weir_faults::FaultKind`) and the harness's healing note.
#[derive(Default)]
struct Disturbance {
    partitioned: bool,
    down: BTreeSet<String>,
    slow: BTreeSet<String>,
}

impl Disturbance {
    fn on(&mut self, e: &EventKind) {
        match e {
            EventKind::Fault { desc } => {
                let node = || desc.split_whitespace().nth(1).unwrap_or_default().to_string();
                if desc.starts_with("partition") {
                    self.partitioned = true;
                } else if desc.starts_with("heal partitions") {
                    self.partitioned = false;
                } else if desc.starts_with("crash ") || desc.starts_with("pause ") {
                    self.down.insert(node());
                } else if desc.starts_with("restart ") || desc.starts_with("resume ") {
                    self.down.remove(&node());
                } else if desc.starts_with("slow link ") {
                    let n = desc.split_whitespace().nth(2).unwrap_or_default().to_string();
                    if desc.contains(" +0ms cap 0 B/s") {
                        self.slow.remove(&n);
                    } else {
                        self.slow.insert(n);
                    }
                }
            }
            EventKind::Note { text } if text.starts_with("liveness phase") => *self = Disturbance::default(),
            _ => {}
        }
    }

    fn any(&self) -> bool {
        self.partitioned || !self.down.is_empty() || !self.slow.is_empty()
    }
}

/// The unique value of pub/sub publisher `client`'s `seq`-th message.
pub fn pubsub_value(client: u32, seq: u64) -> u64 {
    ((client as u64 + 1) << 40) | seq
}

/// The publisher and sequence number of a pub/sub value.
pub fn pubsub_origin(value: u64) -> (u32, u64) {
    (((value >> 40) as u32).wrapping_sub(1), value & ((1 << 40) - 1))
}

/// The subject a pub/sub value is published to: `ps.t0` or `ps.t1`, alternating.
pub fn pubsub_subject(value: u64) -> String {
    format!("ps.t{}", pubsub_origin(value).1 % 2)
}

/// The payload of a pub/sub value: the value (8 bytes, big-endian), then filler
/// derived from it, `len` bytes in all (at least 8).
pub fn pubsub_payload(value: u64, len: usize) -> Vec<u8> {
    let mut p = value.to_be_bytes().to_vec();
    let mut x = value ^ 0x9E37_79B9_7F4A_7C15;
    while p.len() < len.max(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(x as u8);
    }
    p
}

/// One subscription of a pub/sub run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubSpec {
    /// Subscriber number (as in its `Deliver` events).
    pub client: u32,
    /// Node it is connected to.
    pub node: NodeNo,
    /// Subject pattern.
    pub subject: String,
    /// Queue group.
    pub queue: Option<String>,
}

/// Counts violations of one invariant and keeps the first few examples.
pub(crate) struct Tally {
    invariant: &'static str,
    count: usize,
    examples: Vec<String>,
}

impl Tally {
    pub(crate) fn new(invariant: &'static str) -> Tally {
        Tally { invariant, count: 0, examples: Vec::new() }
    }

    pub(crate) fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < 3 {
            self.examples.push(example());
        }
    }

    pub(crate) fn into_violation(self) -> Option<Violation> {
        (self.count > 0).then(|| v(self.invariant, format!("{} cases, e.g. {}", self.count, self.examples.join("; "))))
    }

    /// Push the violation, if any case was counted, onto `out`.
    pub(crate) fn finish(self, out: &mut Vec<Violation>) {
        out.extend(self.into_violation());
    }
}

/// Core NATS delivery (at-most-once) over a pub/sub run's events:
/// - no phantom: every delivered value was published, with subject and payload intact,
///   to a subject the subscriber matches;
/// - no duplicate: a subscriber gets a value at most once, and a queue group's members
///   get it at most once between them;
/// - order: each subscriber sees each publisher's values in publishing order;
/// - completeness: every value published between [`FINAL_PHASE_START`] and
///   [`FINAL_PHASE_END`] (no faults, interest established), and every value published
///   in a fault-free window of the safety phase (no fault in force, none applied or
///   healed in the last `settle_us` (what the world needs to notice a fault's
///   after-effects, such as a route that missed its pings), and the cluster whole, between
///   [`CLUSTER_WHOLE`] and [`CLUSTER_BROKEN`]) that lasted [`WINDOW_GRACE_US`] past it, reached every matching plain subscription and one member of every matching
///   queue group.
pub fn pubsub_delivery(events: &[Event], subs: &[SubSpec], settle_us: u64) -> Vec<Violation> {
    let spec: BTreeMap<u32, &SubSpec> = subs.iter().map(|s| (s.client, s)).collect();
    let mut published: BTreeSet<u64> = BTreeSet::new();
    let mut required: Vec<u64> = Vec::new();
    let mut phase = 0u8;
    // (subscriber, value) seen; value -> (group, member) for queue groups.
    let mut got: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut group_got: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let mut last_seq: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let (mut phantom, mut corrupt, mut unexpected) =
        (Tally::new("pubsub-phantom"), Tally::new("pubsub-corrupt"), Tally::new("pubsub-unexpected"));
    let (mut dup, mut queue_dup, mut order) =
        (Tally::new("pubsub-duplicate"), Tally::new("pubsub-queue-once"), Tally::new("pubsub-order"));
    let mut lost = Tally::new("pubsub-lost-fault-free");
    // Fault-free windows of the safety phase: values published in the open window, with
    // their time, required once the window has lasted the grace past them.
    let (mut disturbance, mut whole, mut last_fault) = (Disturbance::default(), false, None::<u64>);
    let mut in_window: Vec<(u64, u64)> = Vec::new();
    // Messages a route dropped (a full queue or a refused memory charge, at-most-once by
    // design): (value, peer node) and (value, queue group) they never reached that way.
    let (mut dropped_to, mut dropped_for) = (BTreeSet::new(), BTreeSet::new());
    // Times each value was published, and each subscriber's spells without a
    // subscription: from its disconnect (less the grace: what was queued for it then is
    // lost) to its resubscription plus the settle time (its interest reaching the other
    // servers), open-ended while it is still away.
    let mut published_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut away: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for e in events {
        if let EventKind::Note { text } = &e.kind {
            if let Some(client) = text.strip_prefix(SUB_DISCONNECTED).and_then(|c| c.parse::<u32>().ok()) {
                away.entry(client).or_default().push((e.time_us.saturating_sub(WINDOW_GRACE_US), u64::MAX));
            } else if let Some(client) = text.strip_prefix(SUB_RESUBSCRIBED).and_then(|c| c.parse::<u32>().ok())
                && let Some(spell) = away.get_mut(&client).and_then(|v| v.last_mut())
            {
                spell.1 = e.time_us.saturating_add(settle_us);
            }
        }
        if let EventKind::Note { text } = &e.kind
            && let Some((value, peer, queues)) = parse_route_drop(text)
        {
            dropped_to.insert((value, peer));
            dropped_for.extend(queues.into_iter().map(|q| (value, q)));
        }
        let settled = |last: Option<u64>| last.is_none_or(|f| e.time_us >= f + settle_us);
        let was_open = whole && !disturbance.any() && settled(last_fault);
        disturbance.on(&e.kind);
        match &e.kind {
            EventKind::Note { text } if text == CLUSTER_WHOLE => whole = true,
            EventKind::Note { text } if text == CLUSTER_BROKEN => whole = false,
            EventKind::Fault { .. } => last_fault = Some(e.time_us),
            _ => {}
        }
        let open = whole && !disturbance.any() && settled(last_fault);
        if was_open && !open {
            let closed = e.time_us;
            required.extend(in_window.drain(..).filter(|&(t, _)| t + WINDOW_GRACE_US <= closed).map(|(_, v)| v));
        }
        match &e.kind {
            EventKind::Note { text } if text == FINAL_PHASE_START => phase = 1,
            EventKind::Note { text } if text == FINAL_PHASE_END => phase = 2,
            EventKind::Publish { value, .. } => {
                published.insert(*value);
                published_at.insert(*value, e.time_us);
                if phase == 1 {
                    required.push(*value);
                } else if open {
                    in_window.push((e.time_us, *value));
                }
            }
            EventKind::Deliver { client, value, intact } => {
                let (client, value) = (*client, *value);
                if !published.contains(&value) {
                    phantom.add(|| format!("subscriber {client} got {value:#x} at {}", at(e)));
                    continue;
                }
                if !intact {
                    corrupt.add(|| format!("subscriber {client} got {value:#x} altered at {}", at(e)));
                }
                let Some(sub) = spec.get(&client) else {
                    unexpected.add(|| format!("unknown subscriber {client}"));
                    continue;
                };
                if !weir_core::subject::matches(&sub.subject, &pubsub_subject(value)) {
                    unexpected.add(|| format!("subscriber {client} ({}) got {value:#x}", sub.subject));
                }
                if !got.insert((client, value)) {
                    dup.add(|| format!("subscriber {client} got {value:#x} twice (again at {})", at(e)));
                }
                if let Some(q) = &sub.queue
                    && let Some(other) = group_got.insert((q.clone(), value), client)
                    && other != client
                {
                    queue_dup.add(|| format!("group {q}: {value:#x} went to subscribers {other} and {client}"));
                }
                let (publisher, seq) = pubsub_origin(value);
                if let Some(prev) = last_seq.insert((client, publisher), seq)
                    && prev >= seq
                {
                    order.add(|| format!("subscriber {client} got publisher {publisher}'s #{seq} after #{prev}"));
                }
            }
            _ => {}
        }
    }
    let was_away = |client: u32, value: u64| {
        let t = published_at.get(&value).copied().unwrap_or(0);
        away.get(&client).is_some_and(|spells| spells.iter().any(|&(from, to)| from <= t && t <= to))
    };
    for value in required {
        let subject = pubsub_subject(value);
        let mut groups: BTreeSet<&str> = BTreeSet::new();
        for s in subs.iter().filter(|s| weir_core::subject::matches(&s.subject, &subject)) {
            match &s.queue {
                None if !got.contains(&(s.client, value))
                    && !dropped_to.contains(&(value, s.node))
                    && !was_away(s.client, value) =>
                {
                    lost.add(|| format!("{value:#x} ({subject}) never reached subscriber {} on n{}", s.client, s.node))
                }
                None => {}
                Some(q) => {
                    groups.insert(q);
                }
            }
        }
        for q in groups {
            // A member that was away may have been the one the message was routed to.
            let member_away = subs.iter().any(|s| s.queue.as_deref() == Some(q) && was_away(s.client, value));
            if !group_got.contains_key(&(q.to_owned(), value))
                && !dropped_for.contains(&(value, q.to_owned()))
                && !member_away
            {
                lost.add(|| format!("{value:#x} ({subject}) reached no member of group {q}"));
            }
        }
    }
    [phantom, corrupt, unexpected, dup, queue_dup, order, lost].into_iter().filter_map(Tally::into_violation).collect()
}

/// The value, peer node and queue groups of a route's note that it dropped a message
/// (see [`weir_core::server::route::out::DROP_NOTE`]).
fn parse_route_drop(text: &str) -> Option<(u64, NodeNo, Vec<String>)> {
    let rest = text.strip_prefix(weir_core::server::route::out::DROP_NOTE)?;
    let (peer, rest) = rest.split_once(": ")?;
    let head = rest.split(' ').find_map(|f| f.strip_prefix("head=0x"))?;
    let queues = rest.rsplit_once(" queues=")?.1;
    Some((
        u64::from_str_radix(head, 16).ok()?,
        peer.parse().ok()?,
        queues.split(',').filter(|q| !q.is_empty()).map(str::to_string).collect(),
    ))
}

/// Run every event-based checker.
pub fn all_event_checks(events: &[Event]) -> Vec<Violation> {
    let mut out = election_safety(events);
    out.extend(commit_monotonic(events));
    out.extend(apply_safety(events));
    out.extend(memory_bounds(events));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, node: NodeNo, kind: EventKind) -> Event {
        Event { time_us: t, node, kind }
    }

    #[test]
    fn two_leaders_in_a_term_is_caught() {
        let es = [
            ev(1, 1, EventKind::RaftRole { term: 2, role: Role::Leader }),
            ev(2, 2, EventKind::RaftRole { term: 3, role: Role::Leader }),
        ];
        assert!(election_safety(&es).is_empty());
        let bad = [es[0].clone(), ev(3, 3, EventKind::RaftRole { term: 2, role: Role::Leader })];
        assert_eq!(election_safety(&bad).len(), 1);
    }

    #[test]
    fn divergent_apply_and_gaps_are_caught() {
        let es = [
            ev(0, 1, EventKind::NodeStart { incarnation: 0 }),
            ev(0, 2, EventKind::NodeStart { incarnation: 0 }),
            ev(1, 1, EventKind::Applied { index: 1, term: 1, data_hash: 5 }),
            ev(2, 2, EventKind::Applied { index: 1, term: 1, data_hash: 6 }),
            ev(3, 2, EventKind::Applied { index: 3, term: 1, data_hash: 6 }),
        ];
        let vs = apply_safety(&es);
        assert!(vs.iter().any(|x| x.invariant == "state-machine-safety"));
        assert!(vs.iter().any(|x| x.invariant == "apply-order"));
    }

    #[test]
    fn snapshot_digest_is_checked() {
        let good = chain(chain(0, 1, 0), 2, 9);
        let mk = |h| {
            vec![
                ev(0, 1, EventKind::NodeStart { incarnation: 0 }),
                ev(1, 1, EventKind::Applied { index: 1, term: 1, data_hash: 0 }),
                ev(1, 1, EventKind::Applied { index: 2, term: 1, data_hash: 9 }),
                ev(2, 2, EventKind::SnapshotRestored { index: 2, term: 1, state_hash: h }),
            ]
        };
        assert!(apply_safety(&mk(good)).is_empty());
        assert_eq!(apply_safety(&mk(good ^ 1)).len(), 1);
    }

    #[test]
    fn lost_phantom_and_failed_values_are_caught() {
        let es = [
            ev(1, 0, EventKind::ClientInvoke { client: 0, value: 10, target: 1 }),
            ev(2, 0, EventKind::ClientOk { client: 0, value: 10, index: 2 }),
            ev(3, 0, EventKind::ClientInvoke { client: 0, value: 11, target: 1 }),
            ev(4, 0, EventKind::ClientFail { client: 0, value: 11, reason: "x".into() }),
        ];
        let app = |values: Vec<(u64, u64)>| LogApp { applied: 3, digest: 1, values };
        let ok = [FinalReplica { node: 1, app: app(vec![(2, 10)]) }, FinalReplica { node: 2, app: app(vec![(2, 10)]) }];
        assert!(client_outcomes(&es, &ok).is_empty());
        let lost = [FinalReplica { node: 1, app: app(vec![]) }];
        assert_eq!(client_outcomes(&es, &lost)[0].invariant, "acked-durability");
        let phantom = [FinalReplica { node: 1, app: app(vec![(2, 10), (3, 99)]) }];
        assert_eq!(client_outcomes(&es, &phantom)[0].invariant, "no-phantom");
        let failed = [FinalReplica { node: 1, app: app(vec![(2, 10), (3, 11)]) }];
        assert_eq!(client_outcomes(&es, &failed)[0].invariant, "failed-not-applied");
        let dup = [FinalReplica { node: 1, app: app(vec![(2, 10), (3, 10)]) }];
        assert!(client_outcomes(&es, &dup).iter().any(|x| x.invariant == "exactly-once"));
    }

    #[test]
    fn pubsub_invariants_are_checked() {
        let subs = vec![
            SubSpec { client: 10, node: 1, subject: "ps.>".into(), queue: None },
            SubSpec { client: 11, node: 2, subject: "ps.t0".into(), queue: None },
            SubSpec { client: 12, node: 1, subject: "ps.>".into(), queue: Some("q".into()) },
            SubSpec { client: 13, node: 2, subject: "ps.>".into(), queue: Some("q".into()) },
        ];
        let (a, b) = (pubsub_value(0, 0), pubsub_value(0, 1));
        assert_eq!(pubsub_origin(b), (0, 1));
        assert_eq!(pubsub_subject(a), "ps.t0");
        assert_eq!(pubsub_payload(a, 20).len(), 20);
        let publish = |value| EventKind::Publish { client: 0, value };
        let deliver = |client, value| EventKind::Deliver { client, value, intact: true };
        let note = |t: &str| EventKind::Note { text: t.into() };
        let good = [
            ev(0, 0, note(FINAL_PHASE_START)),
            ev(1, 1, publish(a)),
            ev(2, 1, publish(b)),
            ev(3, 0, note(FINAL_PHASE_END)),
            ev(4, 1, deliver(10, a)),
            ev(5, 2, deliver(11, a)),
            ev(6, 1, deliver(12, a)),
            ev(7, 1, deliver(10, b)),
            ev(8, 2, deliver(13, b)),
        ];
        assert!(pubsub_delivery(&good, &subs, 0).is_empty(), "{:?}", pubsub_delivery(&good, &subs, 0));
        let names = |es: &[Event]| pubsub_delivery(es, &subs, 0).iter().map(|x| x.invariant).collect::<Vec<_>>();
        let mut bad = good.to_vec();
        bad.push(ev(9, 2, deliver(13, a)));
        bad.push(ev(9, 2, deliver(11, b)));
        bad.push(ev(9, 1, deliver(10, a)));
        bad.push(ev(9, 1, deliver(10, pubsub_value(3, 3))));
        bad.push(ev(9, 1, EventKind::Deliver { client: 12, value: b, intact: false }));
        let got = names(&bad);
        for want in [
            "pubsub-phantom",
            "pubsub-corrupt",
            "pubsub-unexpected",
            "pubsub-duplicate",
            "pubsub-queue-once",
            "pubsub-order",
        ] {
            assert!(got.contains(&want), "{want} not caught: {got:?}");
        }
        let lost: Vec<Event> = good.iter().filter(|e| e.time_us != 5 && e.time_us != 8).cloned().collect();
        assert_eq!(names(&lost), ["pubsub-lost-fault-free"]);
        // Outside the final phase, losses are allowed (at-most-once).
        let early: Vec<Event> = lost.iter().filter(|e| !matches!(e.kind, EventKind::Note { .. })).cloned().collect();
        assert!(names(&early).is_empty());
    }

    #[test]
    fn a_fault_free_window_of_the_safety_phase_requires_delivery() {
        let subs = vec![SubSpec { client: 10, node: 1, subject: "ps.>".into(), queue: None }];
        let a = pubsub_value(0, 0);
        let note = |t: &str| EventKind::Note { text: t.into() };
        let fault = |d: &str| EventKind::Fault { desc: d.into() };
        let names = |es: &[Event]| pubsub_delivery(es, &subs, 0).iter().map(|x| x.invariant).collect::<Vec<_>>();
        let g = WINDOW_GRACE_US;
        // Whole, no fault: `a` published at 1, the window closes long after; delivered or lost.
        let window = |close: EventKind, at: u64| {
            vec![
                ev(0, 0, note(CLUSTER_WHOLE)),
                ev(1, 1, EventKind::Publish { client: 0, value: a }),
                ev(2, 1, EventKind::Deliver { client: 10, value: a, intact: true }),
                ev(at, 0, close),
            ]
        };
        assert!(names(&window(note(CLUSTER_BROKEN), 1 + g)).is_empty());
        let lost = |es: Vec<Event>| {
            let es: Vec<Event> = es.into_iter().filter(|e| !matches!(e.kind, EventKind::Deliver { .. })).collect();
            names(&es)
        };
        assert_eq!(lost(window(note(CLUSTER_BROKEN), 1 + g)), ["pubsub-lost-fault-free"]);
        assert_eq!(lost(window(fault("partition [1] | rest"), 1 + g)), ["pubsub-lost-fault-free"]);
        assert_eq!(lost(window(fault("crash n2"), 2 * g)), ["pubsub-lost-fault-free"]);
        // A window that closed within the grace, or a fault in force, excuses the loss.
        assert!(lost(window(note(CLUSTER_BROKEN), g)).is_empty());
        let mut slow = window(note(CLUSTER_BROKEN), 2 * g);
        slow.insert(0, ev(0, 0, fault("slow link n2 +40ms cap 10000 B/s")));
        assert!(lost(slow.clone()).is_empty());
        slow.insert(1, ev(0, 0, fault("slow link n2 +0ms cap 0 B/s")));
        assert_eq!(lost(slow), ["pubsub-lost-fault-free"]);
        let mut down = window(note(CLUSTER_BROKEN), 2 * g);
        down.insert(0, ev(0, 0, fault("crash n3")));
        assert!(lost(down.clone()).is_empty());
        down.insert(1, ev(0, 0, fault("restart n3 (heal)")));
        assert_eq!(lost(down.clone()), ["pubsub-lost-fault-free"]);
        // Within the settle time after the last fault (here the restart at 0), not yet.
        let settling = |es: Vec<Event>, settle| {
            let es: Vec<Event> = es.into_iter().filter(|e| !matches!(e.kind, EventKind::Deliver { .. })).collect();
            pubsub_delivery(&es, &subs, settle).iter().map(|x| x.invariant).collect::<Vec<_>>()
        };
        assert!(settling(down.clone(), 2).is_empty());
        assert_eq!(settling(down, 1), ["pubsub-lost-fault-free"]);
    }

    #[test]
    fn a_message_a_route_dropped_is_excused_for_that_peer_only() {
        // Subscribers on n1 and n2 and a queue group on n3; the route from n1 dropped
        // `a` on its way to n2 and to the group's member on n3 (a refused memory charge).
        let subs = vec![
            SubSpec { client: 10, node: 1, subject: "ps.>".into(), queue: None },
            SubSpec { client: 11, node: 2, subject: "ps.>".into(), queue: None },
            SubSpec { client: 12, node: 3, subject: "ps.>".into(), queue: Some("g".into()) },
        ];
        let (a, b) = (pubsub_value(0, 0), pubsub_value(0, 1));
        let note = |t: String| EventKind::Note { text: t };
        let drop = |v: u64, peer: u8, queues: &str| {
            note(format!(
                "{}{peer}: {} head={v:#x} queues={queues}",
                weir_core::server::route::out::DROP_NOTE,
                pubsub_subject(v)
            ))
        };
        let run = |dropped: Vec<EventKind>| {
            let mut es = vec![
                ev(0, 0, note(CLUSTER_WHOLE.into())),
                ev(1, 1, EventKind::Publish { client: 0, value: a }),
                ev(1, 1, EventKind::Publish { client: 0, value: b }),
                ev(2, 1, EventKind::Deliver { client: 10, value: a, intact: true }),
                ev(2, 1, EventKind::Deliver { client: 10, value: b, intact: true }),
            ];
            es.extend(dropped.into_iter().map(|k| ev(1, 1, k)));
            es.push(ev(1 + 2 * WINDOW_GRACE_US, 0, note(CLUSTER_BROKEN.into())));
            pubsub_delivery(&es, &subs, 0).into_iter().map(|v| v.detail).collect::<Vec<_>>()
        };
        // Nothing noted: a and b are lost to n2 and to the group.
        assert_eq!(
            run(vec![]),
            [
                "4 cases, e.g. 0x10000000000 (ps.t0) never reached subscriber 11 on n2; 0x10000000000 (ps.t0) reached no member of group g; 0x10000000001 (ps.t1) never reached subscriber 11 on n2"
            ]
        );
        // a's drops are noted: only b's losses remain.
        let d = run(vec![drop(a, 2, ""), drop(a, 3, "g")]);
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("2 cases") && !d[0].contains("0x10000000000 "), "{d:?}");
        // A drop on the way to another peer, or for another group, excuses nothing.
        assert_eq!(run(vec![drop(a, 3, ""), drop(a, 1, "h"), drop(b, 1, "")])[0].split(',').next().unwrap(), "4 cases");
    }

    #[test]
    fn a_subscriber_away_is_excused_for_what_was_published_meanwhile_only() {
        let subs = vec![
            SubSpec { client: 10, node: 1, subject: "ps.>".into(), queue: None },
            SubSpec { client: 11, node: 2, subject: "ps.>".into(), queue: None },
        ];
        let g = WINDOW_GRACE_US;
        let (a, b) = (pubsub_value(0, 0), pubsub_value(0, 1));
        let note = |t: String| EventKind::Note { text: t };
        // a at 10g, 11 disconnected at 10g + 1 and back at 11g; b at 20g.
        let run = |settle: u64, with_notes: bool| {
            let mut es = vec![
                ev(0, 0, note(CLUSTER_WHOLE.into())),
                ev(10 * g, 1, EventKind::Publish { client: 0, value: a }),
                ev(20 * g, 1, EventKind::Publish { client: 0, value: b }),
                ev(20 * g + 1, 1, EventKind::Deliver { client: 10, value: a, intact: true }),
                ev(20 * g + 1, 1, EventKind::Deliver { client: 10, value: b, intact: true }),
                ev(30 * g, 0, note(CLUSTER_BROKEN.into())),
            ];
            if with_notes {
                es.insert(2, ev(10 * g + 1, 2, note(format!("{SUB_DISCONNECTED}11"))));
                es.insert(3, ev(11 * g, 2, note(format!("{SUB_RESUBSCRIBED}11"))));
                es.sort_by_key(|e| e.time_us);
            }
            pubsub_delivery(&es, &subs, settle).into_iter().map(|v| v.detail).collect::<Vec<_>>()
        };
        assert!(run(0, false)[0].starts_with("2 cases"));
        let d = run(0, true);
        assert!(d[0].starts_with("1 cases") && d[0].contains("0x10000000001"), "{d:?}");
        // b falls inside the settle time after the resubscription: excused too.
        assert!(run(10 * g, true).is_empty());
    }

    #[test]
    fn ledger_over_limit_is_caught() {
        let s = |peak| ev(1, 1, EventKind::Ledger { account: "raft.catchup".into(), current: 0, peak, limit: 100 });
        assert!(memory_bounds(&[s(100)]).is_empty());
        assert_eq!(memory_bounds(&[s(101), s(150)]).len(), 1);
    }
}
