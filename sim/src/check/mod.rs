//! Checkers: pure functions that judge a run from its events and the replicas'
//! final states. They know nothing about madsim, so they are unit-tested directly and
//! can be re-run over a stored trace.

pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use weir_core::server::app::{LogApp, chain};
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
        let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(index, value) in &r.app.values {
            seen.entry(value).or_default().push(index);
        }
        let mut lost = Vec::new();
        for (&value, &index) in &acked {
            match seen.get(&value).map(Vec::as_slice) {
                None => lost.push(value),
                Some([i]) if *i == index => {}
                Some(is) => out.push(v(
                    "acked-durability",
                    format!("n{}: acknowledged value {value:#x} (index {index}) found at indices {is:?}", r.node),
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
        for (value, indices) in &seen {
            if !invoked.contains(value) {
                out.push(v("no-phantom", format!("n{}: value {value:#x} at {indices:?} was never proposed", r.node)));
            } else if let Some(reason) = failed.get(value) {
                out.push(v(
                    "failed-not-applied",
                    format!("n{}: value {value:#x} at {indices:?} was reported failed ({reason})", r.node),
                ));
            }
            if indices.len() > 1 {
                out.push(v("exactly-once", format!("n{}: value {value:#x} applied at {indices:?}", r.node)));
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
    fn ledger_over_limit_is_caught() {
        let s = |peak| ev(1, 1, EventKind::Ledger { account: "raft.catchup".into(), current: 0, peak, limit: 100 });
        assert!(memory_bounds(&[s(100)]).is_empty());
        assert_eq!(memory_bounds(&[s(101), s(150)]).len(), 1);
    }
}
