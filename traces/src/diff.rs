//! Replay comparison: find the first event at which two traces differ.

use std::fmt;

use crate::Event;
use crate::render::render_event;

/// Where two event sequences first differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event.
    pub index: usize,
    /// The left trace's event there (`None` if the left trace ended).
    pub left: Option<Event>,
    /// The right trace's event there (`None` if the right trace ended).
    pub right: Option<Event>,
}

/// The first index at which `a` and `b` differ, or `None` if they are identical.
/// If one is a prefix of the other, the shorter side of the divergence is `None`.
pub fn first_divergence(a: &[Event], b: &[Event]) -> Option<Divergence> {
    let index = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    if index == a.len() && index == b.len() {
        return None;
    }
    Some(Divergence { index, left: a.get(index).cloned(), right: b.get(index).cloned() })
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |e: &Option<Event>| match e {
            Some(e) => render_event(e),
            None => "<end of trace>".to_owned(),
        };
        writeln!(f, "traces diverge at event #{}:", self.index)?;
        writeln!(f, "  left:  {}", side(&self.left))?;
        write!(f, "  right: {}", side(&self.right))
    }
}
