//! The in-memory recorder a run writes its events to, and the [`EventSink`]
//! adapter that timestamps events with the (virtual) clock.
//!
//! The recorder always maintains the rolling trace hash over every event it is
//! given; whether it also keeps the events is a choice (all of them, the first
//! `n`, or none for fast sweeps), so memory stays bounded when asked.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Event, EventKind, EventSink, NodeNo, Trace, TraceHasher, TraceHeader};

/// A cheap-to-clone handle to a shared event log with a running trace hash.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    events: Vec<Event>,
    hasher: TraceHasher,
    enabled: bool,
    limit: Option<usize>,
    dropped: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner { events: Vec::new(), hasher: TraceHasher::new(), enabled: true, limit: None, dropped: 0 }
    }
}

impl Recorder {
    /// A recorder that stores every event.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that stores at most `n` events; later events are still hashed
    /// and counted as dropped.
    pub fn with_capacity_limit(n: usize) -> Self {
        let recorder = Self::default();
        recorder.lock().limit = Some(n);
        recorder
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` inconsistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record `kind` as happening at `time_us` on `node`.
    pub fn record(&self, time_us: u64, node: NodeNo, kind: EventKind) {
        self.record_event(Event { time_us, node, kind });
    }

    /// Record a complete event.
    pub fn record_event(&self, event: Event) {
        let mut inner = self.lock();
        inner.hasher.update(&event);
        let room = inner.limit.is_none_or(|limit| inner.events.len() < limit);
        if inner.enabled && room {
            inner.events.push(event);
        } else if inner.enabled {
            inner.dropped += 1;
        }
    }

    /// Whether events are being stored (they are always hashed).
    pub fn is_enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Start or stop storing events; hashing continues either way. Events given
    /// while disabled are not counted as dropped.
    pub fn set_enabled(&self, enabled: bool) {
        self.lock().enabled = enabled;
    }

    /// Number of events recorded (hashed) so far, stored or not.
    pub fn len(&self) -> usize {
        usize::try_from(self.lock().hasher.count()).unwrap_or(usize::MAX)
    }

    /// Whether no event has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of events currently stored.
    pub fn stored_len(&self) -> usize {
        self.lock().events.len()
    }

    /// Number of events not stored because the capacity limit was reached.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The trace hash over every event recorded so far.
    pub fn hash(&self) -> u64 {
        self.lock().hasher.finish()
    }

    /// A copy of the stored events.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Remove and return the stored events (the hash and counts are unaffected,
    /// and the capacity limit applies afresh to later events).
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// Take the stored events as a [`Trace`] with `header`. Its [`Trace::hash`]
    /// equals [`Recorder::hash`] only if every event was stored.
    pub fn take_trace(&self, header: TraceHeader) -> Trace {
        Trace::new(header, self.take_events())
    }

    /// An [`EventSink`] recording into this recorder, timestamping each event with
    /// `clock()` (microseconds; the simulator passes a closure reading virtual time).
    pub fn sink<F>(&self, clock: F) -> ClockSink<F>
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        ClockSink { recorder: self.clone(), clock }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Recorder")
            .field("recorded", &inner.hasher.count())
            .field("stored", &inner.events.len())
            .field("dropped", &inner.dropped)
            .field("enabled", &inner.enabled)
            .field("limit", &inner.limit)
            .field("hash", &format_args!("{:016x}", inner.hasher.finish()))
            .finish()
    }
}

/// An [`EventSink`] that timestamps events with a clock and records them.
#[derive(Clone)]
pub struct ClockSink<F> {
    recorder: Recorder,
    clock: F,
}

impl<F> ClockSink<F> {
    /// The recorder events go to.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl<F> std::fmt::Debug for ClockSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockSink").field("recorder", &self.recorder).finish_non_exhaustive()
    }
}

impl<F> EventSink for ClockSink<F>
where
    F: Fn() -> u64 + Send + Sync + 'static,
{
    fn emit(&self, node: NodeNo, kind: EventKind) {
        self.recorder.record((self.clock)(), node, kind);
    }
}
