//! A reference [`StreamReader`] over any [`MsgStore`], for tests and doc examples.
//!
//! It answers the counting questions by walking the store, which is exactly what the real
//! stream host must not do (it keeps per-subject state instead); here it is the simple
//! oracle the consumer's incremental counts are checked against.

use super::machine::StreamReader;
use crate::store::{MsgStore, StoreError, StoredMsg};
use std::collections::BTreeMap;

/// Wraps a store to read it as a consumer does.
#[derive(Debug)]
pub struct StoreReader<S>(pub S);

impl<S: MsgStore> StoreReader<S> {
    fn all_from(&mut self, filters: &[String], from: u64) -> Vec<StoredMsg> {
        let mut out = Vec::new();
        let mut seq = from;
        while let Ok(Some(m)) = self.load_next(filters, seq) {
            seq = m.seq + 1;
            out.push(m);
        }
        out
    }
}

impl<S: MsgStore> StreamReader for StoreReader<S> {
    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        self.0.load(seq)
    }

    fn load_next(&mut self, filters: &[String], from_seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        if filters.is_empty() {
            return self.0.load_next(">", from_seq);
        }
        let mut best: Option<StoredMsg> = None;
        for f in filters {
            if let Some(m) = self.0.load_next(f, from_seq)?
                && best.as_ref().is_none_or(|b| m.seq < b.seq)
            {
                best = Some(m);
            }
        }
        Ok(best)
    }

    fn last_seq_matching(&mut self, filters: &[String]) -> Option<u64> {
        if filters.is_empty() {
            return self.0.load_last(">").ok().flatten().map(|m| m.seq);
        }
        filters.iter().filter_map(|f| self.0.load_last(f).ok().flatten().map(|m| m.seq)).max()
    }

    fn last_per_subject(&mut self, filters: &[String]) -> Vec<u64> {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for m in self.all_from(filters, 0) {
            last.insert(m.subject, m.seq);
        }
        last.into_values().collect()
    }

    fn seq_for_time(&mut self, ts_ns: i64) -> u64 {
        self.all_from(&[], 0).into_iter().find(|m| m.ts_ns >= ts_ns).map_or(self.last_seq() + 1, |m| m.seq)
    }

    fn first_seq(&self) -> u64 {
        self.0.state().first_seq
    }

    fn last_seq(&self) -> u64 {
        self.0.state().last_seq
    }

    fn num_pending(&mut self, filters: &[String], from_seq: u64) -> u64 {
        self.all_from(filters, from_seq).len() as u64
    }
}
