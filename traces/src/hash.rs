//! The trace hash: a rolling xxh3-64 over the bincode encoding of each event, so
//! that a recorder can maintain it as events arrive without keeping them.
//!
//! Definition: `h0 = xxh3_64(b"weir-trace-hash")`, then for each event in order
//! `h = xxh3_64_with_seed(bincode(event), h)`. Printed as `{:016x}`.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::Event;

/// Domain tag hashed to give the initial state (so the empty trace has a
/// distinctive, non-zero hash).
const INITIAL_TAG: &[u8] = b"weir-trace-hash";

/// Incremental trace hasher; feeding a trace's events one at a time gives
/// [`crate::Trace::hash`].
#[derive(Clone, Debug)]
pub struct TraceHasher {
    state: u64,
    count: u64,
    buf: Vec<u8>,
}

impl Default for TraceHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceHasher {
    /// A hasher that has seen no events.
    pub fn new() -> Self {
        TraceHasher { state: xxh3_64(INITIAL_TAG), count: 0, buf: Vec::new() }
    }

    /// Feed the next event.
    pub fn update(&mut self, event: &Event) {
        self.buf.clear();
        encode_event_into(event, &mut self.buf);
        self.state = xxh3_64_with_seed(&self.buf, self.state);
        self.count += 1;
    }

    /// Feed several events in order.
    pub fn update_all<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        for event in events {
            self.update(event);
        }
    }

    /// The hash of the events fed so far.
    pub fn finish(&self) -> u64 {
        self.state
    }

    /// How many events have been fed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of a whole sequence of events.
    pub fn hash_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> u64 {
        let mut hasher = TraceHasher::new();
        hasher.update_all(events);
        hasher.finish()
    }
}

/// Append the bincode (standard config) encoding of `event` to `buf`.
pub(crate) fn encode_event_into(event: &Event, buf: &mut Vec<u8>) {
    // Writing to a Vec cannot fail and events contain only encodable types.
    bincode::serde::encode_into_std_write(event, buf, bincode::config::standard()).expect("events always encode");
}
