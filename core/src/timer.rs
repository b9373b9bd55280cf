//! Deadlines and tickers that register with the runtime's timer once per deadline,
//! not once per poll.
//!
//! Why: madsim's `Sleep` (the simulation's `tokio::time::Sleep`) adds a new entry to
//! the simulated timer heap every time it is polled while pending, and an entry stays
//! there until its deadline even after the sleep is dropped (madsim's timer cannot
//! cancel). A `select!` loop that polls an interval on every turn, or a `timeout`
//! around every frame read, therefore filled the heap with hundreds of thousands of
//! dead entries per run, each one popped (and its task woken for nothing) at its
//! deadline: the largest single cost of a simulated run. A [`Deadline`] remembers
//! which deadline and which task it already registered and polls the runtime again
//! only when that registration cannot wake it in time; moving a deadline later
//! ([`Deadline::reset`]) costs nothing until the earlier registration fires. With real
//! tokio the same code is correct (tokio keeps a sleep's registration until the sleep
//! is polled again or dropped) and merely skips some cheap re-polls.
//!
//! Time is tokio's (`tokio::time::Instant`), so the simulation's clock drives it.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};

/// A handle on the runtime's clock, for code that reads the time on every poll.
///
/// `Instant::now()` under the simulation goes through madsim's `clock_gettime`
/// override, which looks up the current runtime and clones two `Arc`s per call (~140
/// instructions; 7% of a `raft-basic` run); a `Clock` looks the runtime up once, when it
/// is made, and then reads the simulated clock directly. Make it inside the runtime whose
/// time it reads (it keeps that runtime's clock). With real tokio it is `Instant::now()`.
#[derive(Clone)]
pub struct Clock {
    #[cfg(madsim)]
    handle: tokio::time::TimeHandle,
}

impl Clock {
    /// The clock of the runtime this is called in (under the simulation it must be
    /// called inside a runtime: it panics outside one).
    pub fn current() -> Clock {
        Clock {
            #[cfg(madsim)]
            handle: tokio::time::TimeHandle::current(),
        }
    }

    /// The current instant, as `Instant::now()` would read it.
    #[cfg(madsim)]
    #[inline]
    pub fn now(&self) -> Instant {
        self.handle.now_instant()
    }

    /// The current instant, as `Instant::now()` would read it.
    #[cfg(not(madsim))]
    #[inline]
    pub fn now(&self) -> Instant {
        Instant::now()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A moment to wait for, registered with the runtime at most once per (deadline,
/// task) instead of once per poll; see the module doc.
#[derive(Debug)]
pub struct Deadline {
    /// When the deadline expires.
    at: Instant,
    /// Read on every poll.
    clock: Clock,
    /// The runtime sleep used to register (re-aimed with `reset` before each use).
    sleep: Pin<Box<Sleep>>,
    /// What is registered: the instant the runtime will wake `waker` at. Valid while
    /// that instant is in the future and no later than `at`.
    armed: Option<(Instant, Waker)>,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline::with_clock(at, Clock::current())
    }

    fn with_clock(at: Instant, clock: Clock) -> Deadline {
        Deadline { at, clock, sleep: Box::pin(sleep_until(at)), armed: None }
    }

    /// A deadline `d` from now.
    pub fn after(d: Duration) -> Deadline {
        let clock = Clock::current();
        Deadline::with_clock(clock.now() + d, clock)
    }

    /// When the deadline expires.
    pub fn deadline(&self) -> Instant {
        self.at
    }

    /// Move the deadline to `at`. Moving it later registers nothing now: the earlier
    /// registration wakes the task, which then registers the new deadline.
    pub fn reset(&mut self, at: Instant) {
        self.at = at;
    }

    /// Ready once the deadline has passed; otherwise makes sure the task of `cx` is
    /// woken by then (registering with the runtime only when needed).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.clock.now();
        if now >= self.at {
            return Poll::Ready(());
        }
        if let Some((t, w)) = &self.armed
            && *t > now
            && *t <= self.at
            && w.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        self.sleep.as_mut().reset(self.at);
        if self.sleep.as_mut().poll(cx).is_ready() {
            // The runtime's clock says the deadline has passed (it may round up).
            self.armed = None;
            return Poll::Ready(());
        }
        self.armed = Some((self.at, cx.waker().clone()));
        Poll::Pending
    }

    /// Wait until the deadline has passed.
    pub async fn expired(&mut self) {
        poll_fn(|cx| self.poll_expired(cx)).await
    }
}

/// The error of [`within`]: the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Run `fut` until `deadline`, as `tokio::time::timeout` does (the future is polled
/// first, so a ready future wins over a passed deadline), but with a [`Deadline`] that
/// can outlive the call: a loop that reuses one deadline registers one timer per
/// deadline instead of one per call.
pub async fn within<F: Future>(deadline: &mut Deadline, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        deadline.poll_expired(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// What a [`Ticker`] does after missing ticks (as tokio's `MissedTickBehavior`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// Fire the missed ticks back to back (tokio's default, `Burst`).
    Burst,
    /// Skip them and stay on the original grid (`Skip`).
    Skip,
}

/// A periodic tick, as `tokio::time::interval_at` with the [`Missed`] behaviour, on a
/// [`Deadline`] so that polling it on every turn of a `select!` loop registers one
/// timer per tick, not one per poll. Cancel-safe: a tick is consumed only when
/// [`Ticker::tick`] returns.
#[derive(Debug)]
pub struct Ticker {
    next: Deadline,
    period: Duration,
    missed: Missed,
}

impl Ticker {
    /// Ticks at `start`, then every `period` (which must be non-zero).
    pub fn starting_at(start: Instant, period: Duration, missed: Missed) -> Ticker {
        assert!(!period.is_zero(), "a ticker's period must be non-zero");
        Ticker { next: Deadline::at(start), period, missed }
    }

    /// Ticks now, then every `period`.
    pub fn new(period: Duration, missed: Missed) -> Ticker {
        Ticker::starting_at(Instant::now(), period, missed)
    }

    /// Ready with the tick's scheduled instant once it is due.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.next.poll_expired(cx).is_pending() {
            return Poll::Pending;
        }
        let due = self.next.deadline();
        let next = match self.missed {
            Missed::Burst => due + self.period,
            Missed::Skip => {
                let now = self.next.clock.now();
                let behind = now.saturating_duration_since(due).as_nanos() % self.period.as_nanos();
                now + self.period - Duration::from_nanos(behind as u64)
            }
        };
        self.next.reset(next);
        Poll::Ready(due)
    }

    /// Wait for the next tick.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }
}

// Under the simulation (`cargo simtest -p weir-core`) time is simulated, so these
// assert exact instants without real waiting.
#[cfg(all(test, madsim))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clock_reads_the_simulated_time() {
        let clock = Clock::current();
        let start = Instant::now();
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(clock.now(), Instant::now());
        assert!(clock.now() >= start + Duration::from_millis(250));
    }

    #[tokio::test]
    async fn deadline_expires_and_moves() {
        let start = Instant::now();
        let mut d = Deadline::after(Duration::from_millis(50));
        d.reset(start + Duration::from_millis(120));
        d.expired().await;
        assert!(Instant::now() >= start + Duration::from_millis(120));
    }

    #[tokio::test]
    async fn within_times_out_and_passes() {
        let mut d = Deadline::after(Duration::from_millis(100));
        let ok = within(&mut d, async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let late = within(&mut d, tokio::time::sleep(Duration::from_secs(5))).await;
        assert_eq!(late, Err(Elapsed));
    }

    #[tokio::test]
    async fn ticker_bursts_and_skips() {
        let start = Instant::now();
        let p = Duration::from_millis(10);
        let mut burst = Ticker::starting_at(start, p, Missed::Burst);
        let mut skip = Ticker::starting_at(start, p, Missed::Skip);
        assert_eq!(burst.tick().await, start);
        assert_eq!(skip.tick().await, start);
        tokio::time::sleep(Duration::from_millis(35)).await;
        // Burst fires the missed ticks back to back; Skip jumps to the next grid point.
        assert_eq!(burst.tick().await, start + p);
        assert_eq!(burst.tick().await, start + 2 * p);
        assert_eq!(skip.tick().await, start + p);
        assert_eq!(skip.tick().await, start + 4 * p);
    }
}
