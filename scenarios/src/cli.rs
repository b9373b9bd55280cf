//! The `weir-sim` command line.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use weir_faults::FaultSchedule;
use weir_scenarios::{SCENARIOS, catching, find};
use weir_sim::SimConfig;
use weir_sim::bugs::{Bug, BugSet};
use weir_sim::faultpoints::{self, FaultPoints, Mode as FaultPointMode, SiteTable};
use weir_sim::harness::{self, RunInput, RunReport};
use weir_sim::node::NodeNo;
use weir_sim::{schedule, shrink};
use weir_traces::{Trace, TraceSummary, first_divergence, render_filtered, render_memory_svg};

#[derive(Parser)]
#[command(name = "weir-sim", version, about = "Deterministic simulation of a Weir cluster")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone, Default)]
struct RunOpts {
    /// Enable a known bug (repeatable); see `weir-sim bugs`.
    #[arg(long = "bug", value_name = "BUG")]
    bugs: Vec<String>,
    /// Override a configuration field by its dotted key (repeatable), e.g.
    /// `--set run.nodes=5 --set raft.heartbeat_ms=40`; `weir-sim run` prints them all.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Fault points to enable: `swarm` (the default: each site with chance 1/4, drawn
    /// from the seed), `off`, `all` or a comma-separated list of site names; see
    /// `weir-sim fault-points`.
    #[arg(long = "fault-points", value_name = "off|all|swarm|NAME,...")]
    fault_points: Option<String>,
    /// Chance per hit that an enabled fault point fires, in parts per million.
    #[arg(long = "fault-ppm", value_name = "PPM")]
    fault_ppm: Option<u32>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario with one seed.
    Run {
        /// Scenario name.
        #[arg(long)]
        scenario: String,
        /// Seed.
        #[arg(long)]
        seed: u64,
        /// Write the trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print the run's fault schedule (the `--schedule` file format: JSON, one
        /// event a line) and exit without running.
        #[arg(long)]
        print_schedule: bool,
        /// Apply exactly this fault schedule (as `--print-schedule` writes it) instead
        /// of drawing one from the seed; the seed still drives everything else.
        #[arg(long, value_name = "FILE")]
        schedule: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Shrink a failing run: re-run it with fewer faults, shorter faults, a shorter
    /// safety phase, fewer and slower clients while the same invariant still fails,
    /// then print the command that replays the smallest failing run.
    Shrink {
        /// Scenario name.
        #[arg(long)]
        scenario: String,
        /// Seed.
        #[arg(long)]
        seed: u64,
        /// Start from this fault schedule instead of the seed's.
        #[arg(long, value_name = "FILE")]
        schedule: Option<PathBuf>,
        /// Most runs to make (the original included); each is a whole simulation.
        #[arg(long, default_value_t = 80)]
        max_runs: u32,
        /// Where to write the shrunk schedule (default
        /// `target/shrink/SCENARIO-seedN.schedule.json`).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print every attempt.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Run many seeds of one or all scenarios.
    Sweep {
        /// Scenario name (or use --all).
        #[arg(long, conflicts_with = "all")]
        scenario: Option<String>,
        /// Every scenario.
        #[arg(long)]
        all: bool,
        /// Seed range `A..B` (B exclusive) or a single seed.
        #[arg(long, default_value = "0..100")]
        seeds: String,
        /// Parallel runs (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard I of N (`I/N`, 1-based) of the seed range.
        #[arg(long)]
        shard: Option<String>,
        /// Write a JSON summary here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Stop at the first failing seed.
        #[arg(long)]
        fail_fast: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Merge JSON summaries of sweep shards into one.
    Merge {
        /// Shard summaries.
        files: Vec<PathBuf>,
        /// Write the merged summary here (default: print it).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Re-run a recorded trace's inputs and compare event by event.
    Replay {
        /// Trace file.
        file: PathBuf,
    },
    /// Inspect trace files.
    Trace {
        #[command(subcommand)]
        cmd: TraceCmd,
    },
    /// List scenarios (with their world).
    Scenarios,
    /// List the worlds and the fault classes each supports.
    Worlds,
    /// List known-bug switches and the scenarios expected to catch them.
    Bugs,
    /// List the fault points (sites in the core that a simulated run can make fail).
    FaultPoints,
    /// Measure simulated-time / wall-time for a scenario (a benchmark, not a test).
    Bench {
        /// Scenario name.
        #[arg(long, default_value = "raft-basic")]
        scenario: String,
        /// Number of seeds to run (sequentially, one core).
        #[arg(long, default_value_t = 5)]
        runs: u64,
        #[command(flatten)]
        opts: RunOpts,
    },
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Print a trace's events.
    Show {
        /// Trace file.
        file: PathBuf,
        /// Only these event kinds (repeatable), e.g. `--kind raft-role`.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only this node.
        #[arg(long)]
        node: Option<NodeNo>,
        /// Print counts per kind instead of events.
        #[arg(long)]
        summary: bool,
        /// Write a memory-per-account SVG chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// One clear line and a non-zero exit: bad input never panics.
struct CliError(String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { scenario, seed, trace, print_schedule, schedule, opts } => {
            cmd_run(&scenario, seed, trace, print_schedule, schedule, &opts)
        }
        Cmd::Shrink { scenario, seed, schedule, max_runs, out, verbose, opts } => {
            cmd_shrink(&scenario, seed, schedule, max_runs, out, verbose, &opts)
        }
        Cmd::Sweep { scenario, all, seeds, jobs, shard, json, fail_fast, opts } => {
            cmd_sweep(scenario, all, &seeds, jobs, shard, json, fail_fast, &opts)
        }
        Cmd::Merge { files, json } => cmd_merge(&files, json),
        Cmd::Replay { file } => cmd_replay(&file),
        Cmd::Trace { cmd: TraceCmd::Show { file, kinds, node, summary, svg } } => {
            cmd_show(&file, &kinds, node, summary, svg)
        }
        Cmd::Scenarios => {
            for s in SCENARIOS {
                println!("{:<20} {:<7} {}", s.name, s.world, s.description);
            }
            Ok(0)
        }
        Cmd::Worlds => {
            for w in weir_sim::worlds::WORLDS {
                let faults: Vec<&str> = w.faults.iter().map(|f| f.name()).collect();
                println!("{:<7} {} (faults: {})", w.name, w.description, faults.join(", "));
            }
            Ok(0)
        }
        Cmd::Bugs => {
            for b in Bug::ALL {
                let by: Vec<&str> = catching(b).map(|s| s.name).collect();
                let by = if by.is_empty() { "no scenario".to_string() } else { by.join(", ") };
                println!("{:<22} {} (breaks {}; caught by {by})", b.name(), b.describe(), b.invariant());
            }
            Ok(0)
        }
        Cmd::FaultPoints => {
            for s in weir_core::fault::SITES {
                println!("{:<19} {}", s.name, s.describe);
            }
            Ok(0)
        }
        Cmd::Bench { scenario, runs, opts } => cmd_bench(&scenario, runs, &opts),
    };
    match result {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("error: {msg}");
            2
        }
    }
}

/// What a command line says about a run besides the scenario and seed.
struct Opts {
    bugs: BugSet,
    sets: Vec<(String, String)>,
    fault_points: FaultPoints,
}

fn parse_opts(opts: &RunOpts) -> Result<Opts, CliError> {
    let bugs = opts.bugs.iter().map(|b| b.parse::<Bug>()).collect::<Result<BugSet, _>>()?;
    let sets = opts.sets.iter().map(|s| SimConfig::parse_override(s)).collect::<Result<Vec<_>, _>>()?;
    let mut fault_points = FaultPoints::default();
    if let Some(m) = &opts.fault_points {
        fault_points.mode = m.parse()?;
    }
    if let Some(ppm) = opts.fault_ppm {
        if ppm > 1_000_000 {
            return Err(CliError(format!("--fault-ppm {ppm}: at most 1000000 (every hit)")));
        }
        fault_points.ppm = ppm;
    }
    Ok(Opts { bugs, sets, fault_points })
}

fn input_for(scenario: &str, seed: u64, o: &Opts) -> Result<RunInput, CliError> {
    let s = find(scenario)?;
    let config = s.config(seed).apply_overrides(&o.sets)?;
    harness::check_config(&config).map_err(|e| CliError(format!("scenario {} seed {seed}: {e}", s.name)))?;
    Ok(RunInput {
        scenario: s.name.to_string(),
        seed,
        config,
        overrides: o.sets.clone(),
        bugs: o.bugs,
        schedule: None,
        fault_points: o.fault_points.clone(),
    })
}

/// Read a schedule file (`--schedule FILE`) and check that `input`'s world can apply it.
fn read_schedule(path: &PathBuf, input: &RunInput) -> Result<FaultSchedule, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?;
    let s = schedule::from_json(&text).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    let w = harness::world(&input.config.run.world)?;
    schedule::check(&s, &input.config, w.faults).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    Ok(s)
}

/// `cargo sim SUBCOMMAND --scenario S --seed N` with the input's bugs, the schedule
/// file (when the run has an explicit schedule) and the overrides.
fn command_for(sub: &str, input: &RunInput, schedule_file: Option<&std::path::Path>) -> String {
    let mut cmd = format!("cargo sim {sub} --scenario {} --seed {}", input.scenario, input.seed);
    for b in input.bugs.iter() {
        cmd.push_str(&format!(" --bug {b}"));
    }
    if let Some(f) = schedule_file {
        cmd.push_str(&format!(" --schedule {}", f.display()));
    }
    for (k, v) in &input.overrides {
        cmd.push_str(&format!(" --set {k}={v}"));
    }
    let fp = &input.fault_points;
    if fp.mode != FaultPointMode::default() {
        cmd.push_str(&format!(" --fault-points {}", fp.mode));
    }
    if fp.ppm != faultpoints::DEFAULT_PPM {
        cmd.push_str(&format!(" --fault-ppm {}", fp.ppm));
    }
    cmd
}

fn replay_command(input: &RunInput) -> String {
    command_for("run", input, None)
}

fn shrink_command(input: &RunInput) -> String {
    command_for("shrink", input, None)
}

fn verdict_line(input: &RunInput, r: &RunReport, wall_s: f64) -> String {
    format!(
        "{} seed={} scenario={} hash={:016x} events={} sim={:.1}s wall={:.2}s ok={} fail={} unknown={}",
        if r.passed() { "PASS" } else { "FAIL" },
        input.seed,
        input.scenario,
        r.hash,
        r.event_count,
        r.sim_ms as f64 / 1000.0,
        wall_s,
        r.clients.ok,
        r.clients.failed,
        r.clients.unknown
    )
}

fn cmd_run(
    scenario: &str,
    seed: u64,
    trace: Option<PathBuf>,
    print_schedule: bool,
    schedule_file: Option<PathBuf>,
    opts: &RunOpts,
) -> Result<i32, CliError> {
    let o = parse_opts(opts)?;
    let mut input = input_for(scenario, seed, &o)?;
    if let Some(path) = &schedule_file {
        input.schedule = Some(read_schedule(path, &input)?);
    }
    let schedule = input.schedule();
    if print_schedule {
        print!("{}", schedule::to_json(&schedule));
        return Ok(0);
    }
    println!("config: {}", input.config.line());
    let faults = schedule::faults(&schedule);
    println!(
        "faults: {} scheduled ({} events){}",
        faults.len(),
        schedule.events.len(),
        if schedule_file.is_some() { ", from the schedule file" } else { "" }
    );
    println!("{}", input.fault_points.swarm_line(input.seed));
    let t = Instant::now();
    let r = harness::run(&input);
    let wall = t.elapsed().as_secs_f64();
    if let Some(path) = &trace {
        r.trace.write_to(path)?;
    }
    println!("{}", verdict_line(&input, &r, wall));
    if let Some(line) = fired_line(&r) {
        println!("{line}");
    }
    for line in heap_lines(&r) {
        println!("{line}");
    }
    if r.passed() {
        return Ok(0);
    }
    for v in &r.violations {
        println!("  violated {v}");
    }
    println!("replay: {}", command_for("run", &input, schedule_file.as_deref()));
    println!("shrink: {}", command_for("shrink", &input, schedule_file.as_deref()));
    Ok(1)
}

/// Each node's counted heap against its ledger at the memory checkpoints (KiB):
/// uncharged = heap - ledger - checker-held; `-` where the node was down.
fn heap_lines(r: &RunReport) -> Vec<String> {
    let show = |x: Option<weir_sim::check::heap::HeapReading>| {
        x.map_or("-".to_string(), |x| {
            format!("{}k ({}k-{}k-{}k)", x.uncharged() / 1024, x.heap / 1024, x.ledger / 1024, x.held / 1024)
        })
    };
    r.heap
        .iter()
        .map(|n| {
            format!(
                "heap n{}: uncharged (heap-ledger-held) baseline {} after load {} after quiet {}; peak heap {}k",
                n.node,
                show(n.baseline),
                show(n.after_load),
                show(n.after_quiet),
                n.peak_heap / 1024
            )
        })
        .collect()
}

/// Which fault points fired in a run and how often (`None` when none did).
fn fired_line(r: &RunReport) -> Option<String> {
    let fired: Vec<String> = weir_core::fault::SITES
        .iter()
        .zip(&r.fault_fired)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{}={n}", s.name))
        .collect();
    (!fired.is_empty()).then(|| format!("fault points fired: {}", fired.join(", ")))
}

fn cmd_shrink(
    scenario: &str,
    seed: u64,
    schedule_file: Option<PathBuf>,
    max_runs: u32,
    out: Option<PathBuf>,
    verbose: bool,
    opts: &RunOpts,
) -> Result<i32, CliError> {
    let o = parse_opts(opts)?;
    let mut input = input_for(scenario, seed, &o)?;
    if let Some(path) = &schedule_file {
        input.schedule = Some(read_schedule(path, &input)?);
    }
    let t = Instant::now();
    let mut log = |line: &str| {
        if verbose || !line.starts_with("  try") {
            println!("{line}");
        }
    };
    let s = shrink::shrink(&input, max_runs, &mut log)?;
    let out = out.unwrap_or_else(|| {
        PathBuf::from("target/shrink").join(format!("{}-seed{}.schedule.json", input.scenario, input.seed))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError(format!("cannot create {}: {e}", dir.display())))?;
    }
    let shrunk_schedule = s.input.schedule();
    std::fs::write(&out, schedule::to_json(&shrunk_schedule))
        .map_err(|e| CliError(format!("cannot write {}: {e}", out.display())))?;
    println!("invariant: {}", s.invariant);
    println!("original:  {}", s.original);
    println!("shrunk:    {}", s.shrunk);
    println!("runs: {} in {:.1}s", s.runs, t.elapsed().as_secs_f64());
    println!("shrunk faults:");
    for f in schedule::faults(&shrunk_schedule) {
        println!("  {f}");
    }
    for v in s.report.violations.iter().filter(|v| v.invariant == s.invariant) {
        println!("  violated {v}");
    }
    println!("replay: {}", command_for("run", &s.input, Some(&out)));
    Ok(0)
}

/// The JSON summary of a sweep (or of merged shards).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Summary {
    runs: u64,
    failures: Vec<Failure>,
    sim_ms: u64,
    wall_ms: u64,
    events: u64,
    shards: Vec<String>,
    /// CPU time (user + system) of the runs, ms (absent in summaries of old).
    #[serde(default)]
    cpu_ms: u64,
    /// The same figures per scenario (absent in summaries of old).
    #[serde(default)]
    scenarios: BTreeMap<String, ScenarioStats>,
    /// Per fault point: runs that enabled it, how many of those failed, firings.
    #[serde(default)]
    fault_points: SiteTable,
}

/// One scenario's share of a sweep.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ScenarioStats {
    runs: u64,
    failures: u64,
    /// Simulated time, ms.
    sim_ms: u64,
    /// Wall time of the runs, ms (each run timed on its own worker thread).
    wall_ms: u64,
    /// CPU time (user + system) of the runs' worker threads, ms: on a shared machine
    /// the honest measure of speed.
    cpu_ms: u64,
    events: u64,
    /// Simulated seconds per CPU second.
    ratio: f64,
    /// Events per CPU second.
    events_per_s: f64,
}

impl ScenarioStats {
    fn add(&mut self, o: &ScenarioStats) {
        self.runs += o.runs;
        self.failures += o.failures;
        self.sim_ms += o.sim_ms;
        self.wall_ms += o.wall_ms;
        self.cpu_ms += o.cpu_ms;
        self.events += o.events;
        self.finish();
    }

    /// Recompute the derived rates from the totals.
    fn finish(&mut self) {
        let cpu_s = self.cpu_ms as f64 / 1000.0;
        self.ratio = if cpu_s > 0.0 { self.sim_ms as f64 / 1000.0 / cpu_s } else { 0.0 };
        self.events_per_s = if cpu_s > 0.0 { self.events as f64 / cpu_s } else { 0.0 };
    }
}

/// CPU time (user + system) the calling thread has used so far, in seconds. Each
/// simulation runs on a thread of its own from start to end, so the difference around a run is
/// that run's CPU time, whatever else shares the machine. Falls back to `None` where
/// the platform has no per-thread figure.
fn thread_cpu_s() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage only writes the struct we pass; an all-zero rusage is valid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD with a valid pointer to a live rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Some(tv(ru.ru_utime) + tv(ru.ru_stime));
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Run one simulation, timing it: the report, wall seconds and CPU seconds (wall
/// seconds where the platform has no per-thread CPU time).
fn timed_run(input: &RunInput) -> (RunReport, f64, f64) {
    // Timed on the run's own thread (see `harness::on_fresh_thread`).
    harness::on_fresh_thread(|| {
        let cpu0 = thread_cpu_s();
        let t = Instant::now();
        let r = harness::run_on_this_thread(input);
        let wall = t.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_s()) {
            (Some(a), Some(b)) => b - a,
            _ => wall,
        };
        (r, wall, cpu)
    })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Failure {
    scenario: String,
    seed: u64,
    violations: Vec<String>,
    replay: String,
    /// The command that shrinks the failing run (absent in summaries of old).
    #[serde(default)]
    shrink: String,
}

fn parse_seeds(s: &str) -> Result<(u64, u64), CliError> {
    let bad = || CliError(format!("malformed seed range '{s}': expected A..B with A < B, or a single seed"));
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().map_err(|_| bad())?;
            let b: u64 = b.trim().parse().map_err(|_| bad())?;
            if a >= b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let a: u64 = s.trim().parse().map_err(|_| bad())?;
            Ok((a, a + 1))
        }
    }
}

fn parse_shard(s: &str) -> Result<(u64, u64), CliError> {
    let bad = || CliError(format!("malformed shard '{s}': expected I/N with 1 <= I <= N"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.parse().map_err(|_| bad())?;
    let n: u64 = n.parse().map_err(|_| bad())?;
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

#[allow(clippy::too_many_arguments)]
fn cmd_sweep(
    scenario: Option<String>,
    all: bool,
    seeds: &str,
    jobs: Option<usize>,
    shard: Option<String>,
    json: Option<PathBuf>,
    fail_fast: bool,
    opts: &RunOpts,
) -> Result<i32, CliError> {
    let o = parse_opts(opts)?;
    let scenarios: Vec<&str> = match (scenario, all) {
        (Some(s), _) => vec![find(&s)?.name],
        (None, true) => SCENARIOS.iter().map(|s| s.name).collect(),
        (None, false) => return Err(CliError("sweep needs --scenario NAME or --all".into())),
    };
    let (a, b) = parse_seeds(seeds)?;
    let (si, sn) = match &shard {
        Some(s) => parse_shard(s)?,
        None => (1, 1),
    };
    let mut work = Vec::new();
    for seed in (a..b).filter(|s| (s - a) % sn == si - 1) {
        for sc in &scenarios {
            work.push(input_for(sc, seed, &o)?);
        }
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let bar = ProgressBar::new(work.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}<{eta_precise}]")
            .expect("static template"),
    );
    let next = AtomicUsize::new(0);
    let failed_count = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, RunReport, f64, f64)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    #[allow(clippy::disallowed_methods, reason = "the CLI runs independent simulations on worker threads")]
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(work.len().max(1)) {
            scope.spawn(|| {
                loop {
                    if fail_fast && failed_count.load(Ordering::Relaxed) > 0 {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = work.get(i) else { return };
                    let (mut r, wall, cpu) = timed_run(input);
                    r.trace.events = Vec::new();
                    if !r.passed() {
                        failed_count.fetch_add(1, Ordering::Relaxed);
                        bar.println(format!(
                            "FAIL seed={} scenario={}: {}",
                            input.seed, input.scenario, r.violations[0]
                        ));
                    }
                    bar.set_message(format!("{} failed", failed_count.load(Ordering::Relaxed)));
                    bar.inc(1);
                    results.lock().expect("results").push((i, r, wall, cpu));
                }
            });
        }
    });
    bar.finish_and_clear();
    let wall_total = t0.elapsed();
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|r| r.0);
    let mut summary = Summary { shards: vec![format!("{seeds} shard {si}/{sn}")], ..Summary::default() };
    for (i, r, wall, cpu) in &results {
        let input = &work[*i];
        let run = ScenarioStats {
            runs: 1,
            failures: u64::from(!r.passed()),
            sim_ms: r.sim_ms,
            wall_ms: (wall * 1000.0) as u64,
            cpu_ms: (cpu * 1000.0) as u64,
            events: r.event_count,
            ..ScenarioStats::default()
        };
        summary.runs += 1;
        summary.sim_ms += run.sim_ms;
        summary.wall_ms += run.wall_ms;
        summary.cpu_ms += run.cpu_ms;
        summary.events += run.events;
        summary.scenarios.entry(input.scenario.clone()).or_default().add(&run);
        faultpoints::count_run(&mut summary.fault_points, &r.fault_enabled, &r.fault_fired, r.passed());
        if !r.passed() {
            summary.failures.push(Failure {
                scenario: input.scenario.clone(),
                seed: input.seed,
                violations: r.violations.iter().map(|v| v.to_string()).collect(),
                replay: replay_command(input),
                shrink: shrink_command(input),
            });
        }
    }
    print_summary(&summary, wall_total.as_secs_f64());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(if summary.failures.is_empty() { 0 } else { 1 })
}

fn print_summary(s: &Summary, elapsed_s: f64) {
    let run_s = s.wall_ms as f64 / 1000.0;
    // Summaries of old have no CPU time: their rates fall back to run (wall) time.
    let cpu_s = if s.cpu_ms > 0 { s.cpu_ms as f64 / 1000.0 } else { run_s };
    println!(
        "sweep: {} runs, {} failed; simulated {:.0}s in {:.1}s of run time, {:.1}s of CPU time ({:.0}x real time per CPU second), {:.0} events per CPU second; elapsed {:.1}s",
        s.runs,
        s.failures.len(),
        s.sim_ms as f64 / 1000.0,
        run_s,
        cpu_s,
        if cpu_s > 0.0 { s.sim_ms as f64 / 1000.0 / cpu_s } else { 0.0 },
        if cpu_s > 0.0 { s.events as f64 / cpu_s } else { 0.0 },
        elapsed_s
    );
    print_scenario_table(s);
    print!("{}", faultpoints::render_table(&s.fault_points));
    for f in &s.failures {
        println!("FAIL seed={} scenario={}", f.seed, f.scenario);
        for v in &f.violations {
            println!("  violated {v}");
        }
        println!("  replay: {}", f.replay);
        if !f.shrink.is_empty() {
            println!("  shrink: {}", f.shrink);
        }
    }
}

/// The per-scenario table of a sweep summary: runs, failures, simulated seconds, wall
/// and CPU seconds of the runs, simulated seconds per CPU second, events per CPU second.
fn print_scenario_table(s: &Summary) {
    if s.scenarios.is_empty() {
        return;
    }
    println!(
        "{:<20} {:>6} {:>6} {:>10} {:>9} {:>9} {:>8} {:>10}",
        "scenario", "runs", "failed", "sim s", "wall s", "cpu s", "ratio", "events/s"
    );
    for (name, st) in &s.scenarios {
        println!(
            "{:<20} {:>6} {:>6} {:>10.1} {:>9.2} {:>9.2} {:>7.0}x {:>10.0}",
            name,
            st.runs,
            st.failures,
            st.sim_ms as f64 / 1000.0,
            st.wall_ms as f64 / 1000.0,
            st.cpu_ms as f64 / 1000.0,
            st.ratio,
            st.events_per_s
        );
    }
}

fn cmd_merge(files: &[PathBuf], json: Option<PathBuf>) -> Result<i32, CliError> {
    if files.is_empty() {
        return Err(CliError("merge needs at least one summary file".into()));
    }
    let mut total = Summary::default();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| CliError(format!("cannot read {}: {e}", f.display())))?;
        let s: Summary = serde_json::from_str(&text)
            .map_err(|e| CliError(format!("{} is not a sweep summary: {e}", f.display())))?;
        total.runs += s.runs;
        total.sim_ms += s.sim_ms;
        total.wall_ms += s.wall_ms;
        total.events += s.events;
        total.cpu_ms += s.cpu_ms;
        for (name, st) in &s.scenarios {
            total.scenarios.entry(name.clone()).or_default().add(st);
        }
        total.failures.extend(s.failures);
        total.shards.extend(s.shards);
        faultpoints::merge(&mut total.fault_points, &s.fault_points);
    }
    total.failures.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    print_summary(&total, 0.0);
    let text = serde_json::to_string_pretty(&total)?;
    match json {
        Some(p) => std::fs::write(&p, text).map_err(|e| CliError(format!("cannot write {}: {e}", p.display())))?,
        None => println!("{text}"),
    }
    Ok(if total.failures.is_empty() { 0 } else { 1 })
}

fn read_trace(file: &PathBuf) -> Result<Trace, CliError> {
    Trace::read_from(file).map_err(|e| CliError(e.to_string()))
}

fn cmd_replay(file: &PathBuf) -> Result<i32, CliError> {
    let recorded = read_trace(file)?;
    let h = &recorded.header;
    if h.weir_version != env!("CARGO_PKG_VERSION") {
        eprintln!("warning: trace from weir {}, this is {}", h.weir_version, env!("CARGO_PKG_VERSION"));
    }
    let bugs = h.bugs.iter().map(|b| b.parse::<Bug>()).collect::<Result<BugSet, _>>()?;
    let fault_points = FaultPoints::recorded(&h.fault_points, h.fault_ppm)?;
    let o = Opts { bugs, sets: h.overrides.clone(), fault_points };
    let mut input = input_for(&h.scenario, h.seed, &o)?;
    if let Some(text) = &h.schedule {
        input.schedule = Some(schedule::from_json(text).map_err(|e| CliError(format!("the recorded schedule: {e}")))?);
    }
    if input.config.line() != h.config {
        println!("config differs from the recording (scenario definitions changed?)");
    }
    let r = harness::run(&input);
    match first_divergence(&recorded.events, &r.trace.events) {
        None => {
            println!("identical: {} events, hash {:016x}", r.trace.events.len(), r.hash);
            Ok(0)
        }
        Some(d) => {
            println!("diverged: {d}");
            Ok(1)
        }
    }
}

fn cmd_show(
    file: &PathBuf,
    kinds: &[String],
    node: Option<NodeNo>,
    summary: bool,
    svg: Option<PathBuf>,
) -> Result<i32, CliError> {
    let t = read_trace(file)?;
    if let Some(path) = svg {
        std::fs::write(&path, render_memory_svg(&t))
            .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
        return Ok(0);
    }
    if summary {
        println!("{}", TraceSummary::of(&t));
        return Ok(0);
    }
    if kinds.is_empty() && node.is_none() {
        println!("{}", weir_traces::render_text(&t));
    } else {
        let k: Vec<&str> = kinds.iter().map(String::as_str).collect();
        println!("{}", render_filtered(&t, &k, node));
    }
    Ok(0)
}

fn cmd_bench(scenario: &str, runs: u64, opts: &RunOpts) -> Result<i32, CliError> {
    let o = parse_opts(opts)?;
    let mut sim_ms = 0;
    let mut wall = 0.0;
    let mut events = 0;
    let mut ok = 0;
    let mut cpu = 0.0;
    for seed in 0..runs {
        let input = input_for(scenario, seed, &o)?;
        let (r, w, c) = timed_run(&input);
        println!("{} cpu={c:.2}s", verdict_line(&input, &r, w));
        sim_ms += r.sim_ms;
        wall += w;
        cpu += c;
        events += r.event_count;
        ok += r.clients.ok;
    }
    let sim_s = sim_ms as f64 / 1000.0;
    println!(
        "bench {scenario}: {runs} runs, simulated {sim_s:.1}s in {cpu:.2}s CPU = {:.0}x real time per CPU second ({:.0} events per CPU second); {wall:.2}s wall = {:.0}x; {:.0} acknowledged proposals per simulated second",
        sim_s / cpu,
        events as f64 / cpu,
        sim_s / wall,
        ok as f64 / sim_s
    );
    Ok(0)
}
