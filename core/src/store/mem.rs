//! `MemStore`: the in-memory reference store (a sequence map plus a per-subject index).

use super::validate_filter;
use super::{
    Discard, LimitKind, MsgStore, PurgeRequest, Result, StateRequest, StoreError, StoreLimits, StoreState, StoredMsg,
    check_size,
};
use crate::subject::{has_wildcards, matches as subject_matches};
use std::collections::{BTreeMap, BTreeSet};

/// An in-memory message store: the reference the file store is tested against.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    limits: StoreLimits,
    msgs: BTreeMap<u64, StoredMsg>,
    subjects: BTreeMap<String, BTreeSet<u64>>,
    last_seq: u64,
    bytes: u64,
}

impl MemStore {
    /// An empty store with `limits`.
    pub fn new(limits: StoreLimits) -> Result<Self> {
        limits.validate()?;
        Ok(MemStore { limits, ..Default::default() })
    }

    fn first_seq(&self) -> u64 {
        self.msgs.keys().next().copied().unwrap_or(self.last_seq + 1)
    }

    fn remove(&mut self, seq: u64) -> bool {
        let Some(m) = self.msgs.remove(&seq) else { return false };
        self.bytes -= m.size();
        let set = self.subjects.get_mut(&m.subject).expect("indexed subject");
        set.remove(&seq);
        if set.is_empty() {
            self.subjects.remove(&m.subject);
        }
        true
    }

    fn remove_all(&mut self, seqs: Vec<u64>) -> u64 {
        seqs.into_iter().map(|s| self.remove(s) as u64).sum()
    }

    /// Evict until the limits hold (per subject, then count and bytes), oldest first.
    fn enforce(&mut self) -> u64 {
        let mut n = 0;
        if let Some(max) = self.limits.max_msgs_per_subject {
            let over: Vec<u64> = self
                .subjects
                .values()
                .flat_map(|set| set.iter().take(set.len().saturating_sub(max as usize)).copied())
                .collect();
            n += self.remove_all(over);
        }
        loop {
            let over_msgs = self.limits.max_msgs.is_some_and(|m| self.msgs.len() as u64 > m);
            let over_bytes = self.limits.max_bytes.is_some_and(|m| self.bytes > m);
            if !(over_msgs || over_bytes) {
                break;
            }
            let first = *self.msgs.keys().next().expect("over a limit means not empty");
            self.remove(first);
            n += 1;
        }
        n
    }

    fn matching(&self, filter: Option<&str>) -> Vec<u64> {
        match filter {
            None => self.msgs.keys().copied().collect(),
            Some(f) if !has_wildcards(f) => {
                self.subjects.get(f).map(|s| s.iter().copied().collect()).unwrap_or_default()
            }
            Some(f) => self.msgs.values().filter(|m| subject_matches(f, &m.subject)).map(|m| m.seq).collect(),
        }
    }
}

impl MsgStore for MemStore {
    fn append(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts_ns: i64) -> Result<u64> {
        let size = check_size(&self.limits, subject, headers, payload)?;
        let l = &self.limits;
        if l.discard == Discard::New {
            let count = self.subjects.get(subject).map_or(0, |s| s.len() as u64);
            if let Some(max) = l.max_msgs_per_subject
                && l.discard_new_per_subject
                && count + 1 > max
            {
                return Err(StoreError::Full { limit: LimitKind::MsgsPerSubject, max });
            }
            if let Some(max) = l.max_msgs
                && self.msgs.len() as u64 + 1 > max
            {
                return Err(StoreError::Full { limit: LimitKind::Msgs, max });
            }
            if let Some(max) = l.max_bytes
                && self.bytes + size > max
            {
                return Err(StoreError::Full { limit: LimitKind::Bytes, max });
            }
        }
        self.last_seq += 1;
        let seq = self.last_seq;
        let m = StoredMsg {
            seq,
            subject: subject.to_string(),
            headers: headers.to_vec(),
            payload: payload.to_vec(),
            ts_ns,
        };
        self.bytes += size;
        self.subjects.entry(m.subject.clone()).or_default().insert(seq);
        self.msgs.insert(seq, m);
        self.enforce();
        Ok(seq)
    }

    fn load(&mut self, seq: u64) -> Result<Option<StoredMsg>> {
        Ok(self.msgs.get(&seq).cloned())
    }

    fn load_last(&mut self, filter: &str) -> Result<Option<StoredMsg>> {
        validate_filter(filter)?;
        let seq = if !has_wildcards(filter) {
            self.subjects.get(filter).and_then(|s| s.last().copied())
        } else {
            self.subjects
                .iter()
                .filter(|(s, _)| subject_matches(filter, s))
                .filter_map(|(_, v)| v.last().copied())
                .max()
        };
        Ok(seq.and_then(|s| self.msgs.get(&s).cloned()))
    }

    fn load_next(&mut self, filter: &str, from_seq: u64) -> Result<Option<StoredMsg>> {
        validate_filter(filter)?;
        let found = if !has_wildcards(filter) {
            self.subjects.get(filter).and_then(|s| s.range(from_seq..).next()).and_then(|s| self.msgs.get(s))
        } else {
            self.msgs.range(from_seq..).map(|(_, m)| m).find(|m| subject_matches(filter, &m.subject))
        };
        Ok(found.cloned())
    }

    fn delete(&mut self, seq: u64) -> Result<bool> {
        Ok(self.remove(seq))
    }

    fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        if req.keep.is_some() && req.up_to_seq.is_some() {
            return Err(StoreError::InvalidRequest("purge cannot combine keep and up_to_seq".into()));
        }
        if let Some(f) = &req.filter {
            validate_filter(f)?;
        }
        let mut seqs = self.matching(req.filter.as_deref());
        if let Some(up_to) = req.up_to_seq {
            seqs.retain(|&s| s < up_to);
        }
        if let Some(keep) = req.keep {
            let n = seqs.len().saturating_sub(keep as usize);
            seqs.truncate(n);
        }
        Ok(self.remove_all(seqs))
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        let below: Vec<u64> = self.msgs.range(..seq).map(|(s, _)| *s).collect();
        let n = self.remove_all(below);
        if seq > self.last_seq + 1 {
            self.last_seq = seq - 1;
        }
        Ok(n)
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        let Some(age) = self.limits.max_age_ns() else { return Ok(0) };
        let cutoff = now_ns.saturating_sub(age);
        let mut n = 0;
        while let Some((&seq, m)) = self.msgs.iter().next() {
            if m.ts_ns > cutoff {
                break;
            }
            self.remove(seq);
            n += 1;
        }
        Ok(n)
    }

    fn set_limits(&mut self, limits: StoreLimits) -> Result<u64> {
        limits.validate()?;
        self.limits = limits;
        Ok(self.enforce())
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn state_with(&self, req: &StateRequest) -> Result<StoreState> {
        let first_seq = self.first_seq();
        let msgs = self.msgs.len() as u64;
        let mut st = StoreState {
            first_seq,
            last_seq: self.last_seq,
            msgs,
            bytes: self.bytes,
            num_deleted: if msgs == 0 { 0 } else { self.last_seq + 1 - first_seq - msgs },
            num_subjects: self.subjects.len() as u64,
            ..Default::default()
        };
        if req.deleted && msgs > 0 {
            let keys: Vec<u64> = self.msgs.keys().copied().collect();
            st.deleted = keys.windows(2).filter(|w| w[1] > w[0] + 1).map(|w| w[0] + 1..=w[1] - 1).collect();
            if let Some(&last) = keys.last()
                && last < self.last_seq
            {
                st.deleted.push(last + 1..=self.last_seq);
            }
        }
        if let Some(f) = &req.subjects {
            validate_filter(f)?;
            st.subjects = self
                .subjects
                .iter()
                .filter(|(s, _)| subject_matches(f, s))
                .map(|(s, v)| (s.clone(), v.len() as u64))
                .collect();
        }
        Ok(st)
    }
}
