//! Fault points: named places in the core where a simulated run may make a rare
//! failure happen on purpose (FoundationDB's BUGGIFY), so that error paths that real
//! disks, sockets and timers reach once a year run in every sweep.
//!
//! A site is written [`fault_point!`]`("name")` and evaluates to `bool`: `true` means
//! "fail here now", and the code behind it must then take the *real* error path (the
//! disk seam returns the `io::Error` a real disk would, a ledger refusal is the same
//! `false` a full account gives, a dropped Raft message is counted like an unrouted
//! one). Every site is listed once in [`SITES`]; naming an unlisted site does not
//! compile.
//!
//! In the normal build the macro is the constant `false`: nothing is compiled in. In
//! the simulation build (`--cfg madsim`) the harness [`install`]s a selection for the
//! run (which sites are enabled, the chance per hit that an enabled site fires, the
//! seed) on the thread that runs the simulation. Draws come from the selection's own
//! RNG, seeded from the run seed and taken only when an *enabled* site is reached, so
//! a run with no site enabled draws nothing and behaves exactly as before; madsim's
//! scheduler is deterministic, so the same seed and build reach the sites in the same
//! order and fire the same ones.

/// One fault point: its name (as written in [`fault_point!`] and on the command line)
/// and what firing does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// The site's name, `area.op.failure`.
    pub name: &'static str,
    /// What happens when it fires (one line for `weir-sim fault-points`).
    pub describe: &'static str,
}

/// Every fault point, in a stable order (the order of swarm draws and of reports).
pub const SITES: &[Site] = &[
    Site { name: "disk.read.fail", describe: "a disk read fails with EIO" },
    Site {
        name: "disk.read.short",
        describe: "a ranged disk read comes back short (UnexpectedEof, as read_exact reports)",
    },
    Site { name: "disk.write.fail", describe: "a disk write fails with EIO, nothing written" },
    Site { name: "disk.write.short", describe: "a disk append writes a prefix of its bytes, then fails with EIO" },
    Site { name: "disk.write.enospc", describe: "a disk append writes a prefix of its bytes, then fails with ENOSPC" },
    Site { name: "disk.sync.fail", describe: "an fsync of a file or directory fails with EIO" },
    Site { name: "route.write.fail", describe: "a route frame write fails (broken pipe); the connection ends" },
    Site {
        name: "route.write.stall",
        describe: "a route frame write stalls for the stall timeout; the connection ends as stalled",
    },
    Site { name: "timer.tick.delay", describe: "a Raft or JetStream timer tick runs late (up to 200 ms)" },
    Site { name: "ledger.refuse", describe: "a ledger charge is refused as if the account were at its limit" },
    Site { name: "raft.apply.slow", describe: "applying committed Raft entries takes up to 100 ms longer" },
    Site { name: "js.commit.slow", describe: "a JetStream group commit (engine step) takes up to 100 ms longer" },
    Site { name: "raft.send.drop", describe: "a Raft message is dropped at the sender (counted as unrouted)" },
];

/// Whether `name` is a listed site (usable in constant context, which is how
/// [`fault_point!`] rejects unknown names at compile time).
pub const fn known(name: &str) -> bool {
    let mut i = 0;
    while i < SITES.len() {
        if str_eq(SITES[i].name, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The index of site `name` in [`SITES`].
pub fn index(name: &str) -> Option<usize> {
    SITES.iter().position(|s| s.name == name)
}

/// `fault_point!("site")`: `true` when the simulated run's selection makes this site
/// fire now; always `false` (and compiled to nothing) outside the simulation build.
/// The name must be listed in [`SITES`](crate::fault::SITES).
#[macro_export]
macro_rules! fault_point {
    ($name:literal) => {{
        const _: () = assert!($crate::fault::known($name), concat!("unknown fault point ", $name));
        $crate::fault::__hit($name)
    }};
}

/// The macro's body outside the simulation build: never fires.
#[cfg(not(madsim))]
#[doc(hidden)]
#[inline(always)]
pub const fn __hit(_name: &'static str) -> bool {
    false
}

/// Outside the simulation build no site fires, so no magnitude is ever asked for.
#[cfg(not(madsim))]
pub fn pick(_n: u64) -> u64 {
    0
}

/// Whether fault points may fire now (never outside the simulation build). A fault a
/// site started that lasts (a stalled write) ends early once this turns `false`: the
/// simulator heals every fault before its liveness phase.
#[cfg(not(madsim))]
pub fn active() -> bool {
    false
}

/// A delay in ms for a site that fired: `1..=max` from the selection's RNG.
pub fn pick_ms(max: u64) -> u64 {
    1 + pick(max)
}

#[cfg(madsim)]
pub use active::{__hit, Fired, Selection, active, fired, install, pick, set_enabled, uninstall};

#[cfg(madsim)]
mod active {
    use super::{SITES, index};
    use std::cell::RefCell;

    /// What the harness installs for one run.
    pub struct Selection {
        /// Enabled sites, by index in [`SITES`].
        pub enabled: Vec<bool>,
        /// Chance per hit that an enabled site fires, in parts per million.
        pub ppm: u32,
        /// Seed of the selection's own RNG (derived from the run seed).
        pub seed: u64,
        /// Called with the site's name each time one fires (the harness records it).
        pub on_fire: Box<dyn Fn(&'static str)>,
    }

    struct State {
        sel: Selection,
        rng: u64,
        /// Sites stop firing when off (the harness turns them off at heal).
        on: bool,
        fired: Vec<u64>,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// Firing counts of one run, by site index in [`SITES`].
    pub type Fired = Vec<u64>;

    /// Install `sel` for the run on this thread (replacing any earlier one).
    pub fn install(sel: Selection) {
        let n = SITES.len();
        let rng = sel.seed | 1;
        STATE.with(|s| *s.borrow_mut() = Some(State { sel, rng, on: true, fired: vec![0; n] }));
    }

    /// Remove this thread's selection; returns how often each site fired.
    pub fn uninstall() -> Fired {
        STATE.with(|s| s.borrow_mut().take()).map(|st| st.fired).unwrap_or_else(|| vec![0; SITES.len()])
    }

    /// How often each site fired so far in this thread's run.
    pub fn fired() -> Fired {
        STATE.with(|s| s.borrow().as_ref().map(|st| st.fired.clone())).unwrap_or_else(|| vec![0; SITES.len()])
    }

    /// Whether fault points may fire now: installed and not turned off.
    pub fn active() -> bool {
        STATE.with(|s| s.borrow().as_ref().is_some_and(|st| st.on))
    }

    /// Let enabled sites fire (`true`) or stop every site (`false`, the liveness phase).
    pub fn set_enabled(on: bool) {
        STATE.with(|s| {
            if let Some(st) = s.borrow_mut().as_mut() {
                st.on = on;
            }
        });
    }

    fn next(x: &mut u64) -> u64 {
        // xorshift64*: small, fast, and ours alone (no other stream is perturbed).
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The macro's body in the simulation build.
    #[doc(hidden)]
    pub fn __hit(name: &'static str) -> bool {
        let fire = STATE.with(|s| {
            let mut g = s.borrow_mut();
            let Some(st) = g.as_mut() else { return false };
            let Some(i) = index(name) else { return false };
            if !st.on || !st.sel.enabled[i] {
                return false;
            }
            let fire = next(&mut st.rng) % 1_000_000 < u64::from(st.sel.ppm);
            if fire {
                st.fired[i] += 1;
            }
            fire
        });
        if fire {
            // Outside the borrow: the callback may record events that reach other code.
            STATE.with(|s| {
                if let Some(st) = s.borrow().as_ref() {
                    (st.sel.on_fire)(name);
                }
            });
        }
        fire
    }

    /// A magnitude for a site that fired (a delay in ms, a prefix length): uniform in
    /// `0..n` from the selection's RNG (0 when `n` is 0 or nothing is installed).
    pub fn pick(n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        STATE.with(|s| s.borrow_mut().as_mut().map_or(0, |st| next(&mut st.rng) % n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_are_unique_and_known() {
        for (i, s) in SITES.iter().enumerate() {
            assert!(known(s.name));
            assert_eq!(index(s.name), Some(i), "duplicate site {}", s.name);
        }
        assert!(!known("no.such.site"));
        assert!(!known("disk.read"));
    }

    #[cfg(not(madsim))]
    #[test]
    fn sites_never_fire_in_the_normal_build() {
        assert!(!fault_point!("disk.write.fail"));
    }
}
