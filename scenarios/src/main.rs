//! `weir-sim`: run, sweep, replay and inspect deterministic simulations.
//! Built in the simulation build only (`cargo sim ...` sets `--cfg madsim`).

#[cfg(madsim)]
mod cli;

// The global allocator (mimalloc under per-node heap counting) comes with weir-sim:
// see `weir_sim::heap`.

#[cfg(madsim)]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("weir-sim is built for the simulator only: run it as `cargo sim <command>` (it sets --cfg madsim)");
    std::process::exit(2);
}
