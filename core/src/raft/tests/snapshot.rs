//! Compaction and snapshot installation.

use super::Net;
use crate::raft::{Message, Role};

#[test]
fn lagging_follower_installs_a_chunked_snapshot() {
    let mut net = Net::new(3, |c| c.snapshot_chunk_bytes = 16);
    let leader = net.elect();
    let lag = if leader == 3 { 2 } else { 3 };
    net.isolated.insert(lag);
    for k in 0..20u32 {
        net.propose(leader, k.to_be_bytes().to_vec()).unwrap();
        net.drain();
    }
    let applied = net.node(leader).applied_index();
    let state: Vec<u8> = net.applied[&leader].iter().flat_map(|x| x.data.clone()).collect();
    net.node(leader).compact(applied, state.clone());
    let rd = net.node(leader).ready();
    let snap = rd.snapshot.expect("compaction is persisted");
    assert!(!rd.restore, "a local snapshot is not restored");
    assert_eq!((snap.meta.last_index, snap.meta.peers.clone()), (applied, vec![1, 2, 3]));
    assert_eq!(net.node(leader).log_len(), 0);
    assert_eq!(net.node(leader).snapshot_index(), applied);

    net.isolated.clear();
    net.advance(1_000);
    let chunks = net.delivered.iter().filter(|m| matches!(m.msg, Message::InstallSnapshot { .. })).count();
    assert!(chunks >= state.len() / 16, "sent in chunks ({chunks})");
    let installed: Vec<_> = net.readies[&lag].iter().filter(|rd| rd.restore).collect();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].snapshot.as_ref().map(|s| &s.data), Some(&state));
    let f = net.node(lag);
    assert_eq!((f.snapshot_index(), f.applied_index(), f.commit_index()), (applied, applied, applied));
    let after = net.applied[&lag].iter().skip_while(|x| x.data != b"<snap>").skip(1);
    assert!(after.clone().all(|x| x.index > applied), "nothing at or below the snapshot is applied after it");

    let idx = net.propose(leader, b"later".to_vec()).unwrap();
    net.advance(100);
    assert_eq!(net.applied[&lag].last().map(|x| (x.index, x.data.clone())), Some((idx, b"later".to_vec())));
    assert_eq!(net.catchup[&leader].current(), 0, "everything acknowledged was released");
}

#[test]
fn restart_from_snapshot_emits_only_entries_after_it() {
    use crate::raft::{HardState, Restored, Snapshot, SnapshotMeta};
    let snap = Snapshot { meta: SnapshotMeta { last_index: 5, last_term: 2, peers: vec![1] }, data: vec![7] };
    let entries = (6..=8).map(|i| super::e(2, i)).collect();
    let restored =
        Restored { hard_state: HardState { term: 2, vote: Some(1), commit: 7 }, snapshot: Some(snap), entries };
    let mut net = Net::with_state(1, |_| {}, move |_| restored.clone(), (1 << 20, 1 << 20));
    let n = net.node(1);
    assert_eq!((n.applied_index(), n.commit_index(), n.last_index(), n.snapshot_index()), (5, 7, 8, 5));
    let rd = n.ready();
    assert_eq!(rd.committed.iter().map(|x| x.index).collect::<Vec<_>>(), vec![6, 7]);
    assert!(rd.entries.is_empty() && rd.snapshot.is_none() && rd.hard_state.is_none());
    net.advance(700);
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).commit_index(), 9);
    assert_eq!(net.applied[&1].iter().map(|x| x.index).collect::<Vec<_>>(), vec![8, 9]);
}
