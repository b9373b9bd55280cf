//! Which fault points a run enables (the swarm selection), how it is written on the
//! command line and in the trace header, and the per-site sweep statistics.
//!
//! The sites themselves are in the core ([`weir_core::fault::SITES`], written
//! `fault_point!("name")`). By default a run takes the `swarm` selection: each seed
//! enables each site with chance 1/4 (swarm testing: a run with few kinds of fault
//! explores each more deeply than one with all of them), from an RNG stream of its own
//! so that the selection does not perturb any other draw. `--fault-points
//! off|all|swarm|NAME,...` overrides it (README, "Fault points": every scenario sweeps
//! clean with all sites on). An enabled site fires on each hit with chance `ppm` /
//! 1,000,000 during the safety phase only; the harness turns every site off when it
//! heals the faults.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use weir_core::fault::SITES;

/// Salt separating the swarm selection's RNG stream from the others.
const SWARM_SALT: u64 = 0x5A4A_F017;
/// Salt of the firing RNG (the core's per-run stream).
const FIRE_SALT: u64 = 0x0B06_61F7;
/// Default chance per hit that an enabled site fires, in parts per million (0.1%).
pub const DEFAULT_PPM: u32 = 1_000;
/// Chance that the swarm selection enables a site: one in `SWARM_ONE_IN`.
const SWARM_ONE_IN: u32 = 4;

/// Which sites a run enables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Drawn from the seed: each site with chance 1/4 (the default).
    #[default]
    Swarm,
    /// No site.
    Off,
    /// Every site.
    All,
    /// Exactly these sites (indices into [`SITES`], sorted, no duplicates).
    Sites(Vec<usize>),
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim() {
            "swarm" => Ok(Mode::Swarm),
            "off" | "none" | "" => Ok(Mode::Off),
            "all" => Ok(Mode::All),
            list => {
                let mut v = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let i = weir_core::fault::index(name).ok_or_else(|| {
                        let names: Vec<&str> = SITES.iter().map(|s| s.name).collect();
                        format!("unknown fault point '{name}' (known: off, all, swarm, {})", names.join(", "))
                    })?;
                    v.push(i);
                }
                v.sort_unstable();
                v.dedup();
                Ok(if v.is_empty() { Mode::Off } else { Mode::Sites(v) })
            }
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Swarm => f.write_str("swarm"),
            Mode::Off => f.write_str("off"),
            Mode::All => f.write_str("all"),
            Mode::Sites(v) => {
                let names: Vec<&str> = v.iter().map(|&i| SITES[i].name).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// A run's fault-point setting: which sites, and how often an enabled one fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPoints {
    /// Which sites are enabled.
    pub mode: Mode,
    /// Chance per hit that an enabled site fires, in parts per million.
    pub ppm: u32,
}

impl Default for FaultPoints {
    fn default() -> Self {
        FaultPoints { mode: Mode::default(), ppm: DEFAULT_PPM }
    }
}

impl FaultPoints {
    /// No site enabled.
    pub const OFF: FaultPoints = FaultPoints { mode: Mode::Off, ppm: DEFAULT_PPM };

    /// Which sites a run with `seed` enables, by index in [`SITES`].
    pub fn enabled(&self, seed: u64) -> Vec<bool> {
        match &self.mode {
            Mode::Off => vec![false; SITES.len()],
            Mode::All => vec![true; SITES.len()],
            Mode::Sites(v) => (0..SITES.len()).map(|i| v.contains(&i)).collect(),
            Mode::Swarm => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SWARM_SALT);
                SITES.iter().map(|_| rng.gen_range(0..SWARM_ONE_IN) == 0).collect()
            }
        }
    }

    /// The names of the sites a run with `seed` enables, in [`SITES`] order (what the
    /// trace header records).
    pub fn enabled_names(&self, seed: u64) -> Vec<String> {
        self.enabled(seed).iter().zip(SITES).filter(|(on, _)| **on).map(|(_, s)| s.name.to_string()).collect()
    }

    /// The setting a trace header recorded: exactly its sites, at its rate.
    pub fn recorded(names: &[String], ppm: u32) -> Result<FaultPoints, String> {
        Ok(FaultPoints { mode: names.join(",").parse()?, ppm })
    }

    /// The seed of the core's firing RNG for a run with `seed`.
    pub fn fire_seed(seed: u64) -> u64 {
        seed ^ FIRE_SALT
    }

    /// The swarm line `weir-sim run` prints: the enabled sites and how each was chosen.
    pub fn swarm_line(&self, seed: u64) -> String {
        let names = self.enabled_names(seed);
        let how = match self.mode {
            Mode::Swarm => "drawn from the seed",
            _ => "--fault-points",
        };
        format!(
            "fault points: {} of {} enabled ({how}, each fires with p={}/1e6): {}",
            names.len(),
            SITES.len(),
            self.ppm,
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        )
    }
}

/// Per-site sweep statistics: how many runs enabled the site, how many of those
/// failed, and how often it fired in all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStats {
    /// Runs that enabled the site.
    pub runs: u64,
    /// Of those, runs that failed.
    pub failed: u64,
    /// Times the site fired, over every run.
    pub fired: u64,
}

/// Sweep statistics of every site, by name (a `BTreeMap` for a stable order).
pub type SiteTable = BTreeMap<String, SiteStats>;

/// Count one run into `table`: its enabled sites, firings (by index in [`SITES`])
/// and verdict.
pub fn count_run(table: &mut SiteTable, enabled: &[bool], fired: &[u64], passed: bool) {
    for (i, site) in SITES.iter().enumerate() {
        let e = table.entry(site.name.to_string()).or_default();
        if enabled.get(i).copied().unwrap_or(false) {
            e.runs += 1;
            e.failed += u64::from(!passed);
        }
        e.fired += fired.get(i).copied().unwrap_or(0);
    }
}

/// Add `other` into `table` (merging shard summaries).
pub fn merge(table: &mut SiteTable, other: &SiteTable) {
    for (name, s) in other {
        let e = table.entry(name.clone()).or_default();
        e.runs += s.runs;
        e.failed += s.failed;
        e.fired += s.fired;
    }
}

/// The per-site block of a sweep's text summary (empty when no run enabled a site).
pub fn render_table(table: &SiteTable) -> String {
    use std::fmt::Write;
    if table.values().all(|s| s.runs == 0) {
        return String::new();
    }
    let mut out = String::from("fault points:          runs  failed    fired\n");
    for (name, s) in table {
        let _ = writeln!(out, "  {name:<19} {:>6} {:>7} {:>8}", s.runs, s.failed, s.fired);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("off".parse::<Mode>().unwrap(), Mode::Off);
        assert_eq!("all".parse::<Mode>().unwrap(), Mode::All);
        assert_eq!("swarm".parse::<Mode>().unwrap(), Mode::Swarm);
        // Every scenario sweeps clean with all sites on, so runs take the swarm by default.
        assert_eq!(FaultPoints::default().mode, Mode::Swarm);
        let m: Mode = "raft.send.drop,disk.read.fail,raft.send.drop".parse().unwrap();
        assert_eq!(m.to_string(), "disk.read.fail,raft.send.drop");
        assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        assert!("disk.nope".parse::<Mode>().unwrap_err().contains("unknown fault point 'disk.nope'"));
    }

    #[test]
    fn swarm_is_a_function_of_the_seed_and_varies() {
        let fp = FaultPoints { mode: Mode::Swarm, ppm: DEFAULT_PPM };
        assert_eq!(fp.enabled(7), fp.enabled(7));
        let counts: Vec<usize> = (0..64).map(|s| fp.enabled(s).iter().filter(|&&b| b).count()).collect();
        assert!(counts.iter().any(|&c| c != counts[0]), "every seed enabled the same number of sites");
        // Roughly a quarter of the sites over many seeds.
        let total: usize = counts.iter().sum();
        let expected = 64 * SITES.len() / 4;
        assert!(total > expected / 2 && total < expected * 2, "{total} enabled, expected about {expected}");
    }

    #[test]
    fn recorded_selection_reproduces_the_swarm() {
        let fp = FaultPoints { mode: Mode::Swarm, ppm: DEFAULT_PPM };
        for seed in 0..32 {
            let r = FaultPoints::recorded(&fp.enabled_names(seed), fp.ppm).unwrap();
            assert_eq!(r.enabled(seed), fp.enabled(seed), "seed {seed}");
        }
    }

    #[test]
    fn table_counts_enabled_runs_and_failures() {
        let mut t = SiteTable::new();
        let mut on = vec![false; SITES.len()];
        on[0] = true;
        let mut fired = vec![0; SITES.len()];
        fired[0] = 3;
        count_run(&mut t, &on, &fired, false);
        count_run(&mut t, &on, &fired, true);
        assert_eq!(t[SITES[0].name], SiteStats { runs: 2, failed: 1, fired: 6 });
        assert_eq!(t[SITES[1].name], SiteStats::default());
        assert!(render_table(&t).contains(SITES[0].name));
    }
}
