//! `WEIR_SIM_LOG`: the simulated nodes' own log lines, for reading a failing seed.
//!
//! The code under test logs through `tracing` (the `weir` binary prints those lines).
//! In the simulation the global tracing subscriber is the heap counter's
//! [`crate::heap`] node-span tracker, which ignores events, so by default a run prints
//! nothing of them. With `WEIR_SIM_LOG` set to a level (`error`, `warn`, `info`,
//! `debug`, `trace`; `1` means `info`), events at that level or above are printed to
//! standard error as
//!
//! ```text
//!     12.345678s n2 WARN weir_core::server::nats::conn: slow consumer cid=7
//! ```
//!
//! with the simulated time since the run's start and the cluster node the task runs on
//! (`n0`: the simulator, its clients and the harness). The variable is read once per
//! process. Printing only observes: what the nodes do, and so the trace, is the same
//! with or without it.

use std::fmt::Write as _;
use std::sync::OnceLock;
use tracing::level_filters::LevelFilter;

/// The level `WEIR_SIM_LOG` asks for (`OFF` when unset or unreadable), read once.
pub fn level() -> LevelFilter {
    static LEVEL: OnceLock<LevelFilter> = OnceLock::new();
    *LEVEL.get_or_init(|| match std::env::var("WEIR_SIM_LOG") {
        Ok(v) => parse(&v),
        Err(_) => LevelFilter::OFF,
    })
}

/// `WEIR_SIM_LOG`'s value as a level: a level name, or `1` for `info`; anything
/// else (including `0` and the empty string) turns logging off.
fn parse(v: &str) -> LevelFilter {
    match v.trim() {
        "" => LevelFilter::OFF,
        "1" => LevelFilter::INFO,
        v => v.parse().unwrap_or(LevelFilter::OFF),
    }
}

/// Whether an event with this metadata is printed.
pub fn wants(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= level()
}

/// One event as a line (without the newline): simulated time, node, level, target,
/// message, then the other fields as `name=value`.
pub fn line(event: &tracing::Event<'_>, node: u16) -> String {
    // Outside the simulation build (no madsim runtime) there is no simulated time.
    #[cfg(madsim)]
    let at = madsim::time::TimeHandle::try_current().map(|t| t.elapsed()).unwrap_or_default();
    #[cfg(not(madsim))]
    let at = std::time::Duration::ZERO;
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut out = format!("{:>12.6}s n{node} {} {}: {}", at.as_secs_f64(), meta.level(), meta.target(), fields.message);
    out.push_str(&fields.rest);
    out
}

/// Collects an event's message and its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_names_a_level_or_turns_logging_off() {
        assert_eq!(parse("1"), LevelFilter::INFO);
        assert_eq!(parse("debug"), LevelFilter::DEBUG);
        assert_eq!(parse(" WARN "), LevelFilter::WARN);
        assert_eq!(parse("0"), LevelFilter::OFF);
        assert_eq!(parse(""), LevelFilter::OFF);
        assert_eq!(parse("loud"), LevelFilter::OFF);
    }
}
