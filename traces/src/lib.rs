//! Weir traces: the event model, an in-memory recorder, the binary file format
//! (bincode 2), a rolling trace hash, replay diffing and text/SVG renderers.
//!
//! - [`event`]: what a run records ([`Event`], [`EventKind`]).
//! - [`header`]: the run's inputs ([`TraceHeader`]).
//! - [`js`]: JetStream client history ([`JsEvent`]).
//! - [`hash`]: the rolling trace hash ([`TraceHasher`]).
//! - [`trace`]: a whole trace and its file format ([`Trace`], [`TraceError`]).
//! - [`recorder`]: collecting events during a run ([`Recorder`], [`ClockSink`]).
//! - [`diff`]: the first divergence between two runs ([`first_divergence`]).
//! - [`render`]: text and SVG output.
//! - [`summary`]: per-kind counts and extents ([`TraceSummary`]).

pub mod diff;
pub mod event;
pub mod hash;
pub mod header;
pub mod js;
pub mod recorder;
pub mod render;
pub mod summary;
pub mod trace;

pub use diff::{Divergence, first_divergence};
pub use event::{Event, EventKind, HARNESS, NodeNo, Role};
pub use hash::TraceHasher;
pub use header::TraceHeader;
pub use js::{AckKind, JsEvent};
pub use recorder::{ClockSink, Recorder};
pub use render::{event_matches, render_event, render_filtered, render_memory_svg, render_text};
pub use summary::TraceSummary;
pub use trace::{MAGIC, Trace, TraceError};

/// Version of the trace file format; bump on any incompatible change.
pub const FORMAT_VERSION: u32 = 3;

/// Where running code sends events. The simulator's sink timestamps them with
/// virtual time and records them; the production server logs them.
pub trait EventSink: Send + Sync + 'static {
    /// Record `kind` as happening now on `node`.
    fn emit(&self, node: NodeNo, kind: EventKind);
}

/// A sink that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&self, _node: NodeNo, _kind: EventKind) {}
}
