//! [`View`]: how consumers read a stream inside the engine. It shows only the durable
//! prefix of the stream (sequences up to `visible`), so that no consumer delivers a
//! message whose PubAck is still waiting for the group commit: a message a power cut
//! can take away is never seen by anyone. Likewise it still shows the messages that
//! such a waiting append evicted (held by the file store, `store::held`): a consumer
//! must not skip a message, or drop it from its pending acks, on account of an
//! eviction that a failed commit would undo.
//!
//! Counting questions are answered from the store's per-subject state when they start
//! at the head of the stream; a count from inside the stream walks the messages between
//! (the one place the engine reads in proportion to a backlog; see the module docs).

use super::anystore::AnyStore;
use crate::consumer::StreamReader;
use crate::store::{MsgStore, StateRequest, StoreError, StoredMsg};
use crate::stream::Stream;

/// A stream as its consumers see it.
pub(super) struct View<'a> {
    pub stream: &'a mut Stream<AnyStore>,
    /// Highest sequence consumers may see.
    pub visible: u64,
}

impl View<'_> {
    fn store(&mut self) -> &mut AnyStore {
        self.stream.store_mut()
    }

    /// The first message at or after `from_seq` on `filter`, counting held ones (any
    /// sequence; the callers cut at `visible`).
    fn next_any(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        let live = self.store().load_next(filter, from_seq)?;
        let held = self.store().file_mut().and_then(|fs| fs.held_next(filter, from_seq));
        match held {
            Some(h) if live.as_ref().is_none_or(|m| h < m.seq) => {
                let fs = self.store().file_mut().expect("held messages are in a file store");
                fs.held_load(h)
            }
            _ => Ok(live),
        }
    }

    /// Whether the store holds evicted messages (see the module docs).
    fn has_held(&mut self) -> bool {
        self.store().file_mut().is_some_and(|fs| fs.has_held())
    }

    /// Newest message matching `filter` at or below `visible`.
    fn last_visible(&mut self, filter: &str) -> Option<u64> {
        let visible = self.visible;
        let m = self.store().load_last(filter).ok().flatten()?;
        if m.seq <= visible {
            return Some(m.seq);
        }
        // The newest is not yet durable (rare: between a publish and its sync): walk.
        let mut best = None;
        let mut from = 0;
        while let Ok(Some(m)) = self.next_any(filter, from) {
            if m.seq > visible {
                break;
            }
            best = Some(m.seq);
            from = m.seq + 1;
        }
        best
    }

    fn count_walk(&mut self, filters: &[String], from_seq: u64) -> u64 {
        let mut n = 0;
        let mut seq = from_seq;
        while let Ok(Some(m)) = self.load_next(filters, seq) {
            n += 1;
            seq = m.seq + 1;
        }
        n
    }
}

impl StreamReader for View<'_> {
    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        if seq > self.visible {
            return Ok(None);
        }
        match self.store().load(seq)? {
            Some(m) => Ok(Some(m)),
            None => match self.store().file_mut() {
                Some(fs) => fs.held_load(seq),
                None => Ok(None),
            },
        }
    }

    fn load_next(&mut self, filters: &[String], from_seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        let visible = self.visible;
        let best = if filters.is_empty() {
            self.next_any(">", from_seq)?
        } else if filters.len() == 1 {
            self.next_any(&filters[0], from_seq)?
        } else {
            let mut best: Option<StoredMsg> = None;
            for f in filters {
                if let Some(m) = self.next_any(f, from_seq)?
                    && best.as_ref().is_none_or(|b| m.seq < b.seq)
                {
                    best = Some(m);
                }
            }
            best
        };
        Ok(best.filter(|m| m.seq <= visible))
    }

    fn last_seq_matching(&mut self, filters: &[String]) -> Option<u64> {
        if filters.is_empty() {
            return self.last_visible(">");
        }
        filters.iter().filter_map(|f| self.last_visible(f)).max()
    }

    fn last_per_subject(&mut self, filters: &[String]) -> Vec<u64> {
        let pats: Vec<String> = if filters.is_empty() { vec![">".to_string()] } else { filters.to_vec() };
        let mut out = Vec::new();
        for p in pats {
            let req = StateRequest { deleted: false, subjects: Some(p) };
            let Ok(st) = self.store().state_with(&req) else { continue };
            for subject in st.subjects.keys() {
                if let Some(seq) = self.last_visible(subject) {
                    out.push(seq);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn seq_for_time(&mut self, ts_ns: i64) -> u64 {
        match self.stream.seq_at_time(ts_ns) {
            Ok(Some(s)) if s <= self.visible => s,
            _ => self.visible + 1,
        }
    }

    fn first_seq(&self) -> u64 {
        let held = match self.stream.store() {
            AnyStore::File(fs) => fs.held_seqs().next(),
            AnyStore::Mem(_) => None,
        };
        let first = self.stream.store_state().first_seq;
        held.map_or(first, |h| h.min(first)).min(self.visible + 1)
    }

    fn last_seq(&self) -> u64 {
        self.visible
    }

    fn num_pending(&mut self, filters: &[String], from_seq: u64) -> u64 {
        let st = self.stream.store_state();
        if st.last_seq > self.visible || from_seq > st.first_seq || self.has_held() {
            // Not durable yet, or counted from inside the stream: walk.
            return self.count_walk(filters, from_seq);
        }
        if filters.is_empty() {
            return st.msgs;
        }
        let mut n = 0;
        for f in filters {
            let req = StateRequest { deleted: false, subjects: Some(f.clone()) };
            match self.store().state_with(&req) {
                Ok(s) => n += s.subjects.values().sum::<u64>(),
                Err(_) => return self.count_walk(filters, from_seq),
            }
        }
        n
    }
}
