//! `weir-sim`: run, sweep, replay and inspect deterministic simulations.
//! Built in the simulation build only (`cargo sim ...` sets `--cfg madsim`).

#[cfg(madsim)]
mod cli;

// Simulations allocate and free many small buffers; mimalloc is markedly faster at
// that than the system allocator (see README, Benchmarks).
#[cfg(madsim)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("weir-sim is built for the simulator only: run it as `cargo sim <command>` (it sets --cfg madsim)");
    std::process::exit(2);
}
