//! A stable-toolchain smoke run of the JetStream API fuzz target (scripts/fuzz-js-api):
//! the committed seeds and crash reproducers go through `fuzz_js_api`, then seeded random
//! mutations of them (WEIR_SEED pins the seed; it is printed on failure).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use weir_core::jetstream::engine::fuzz_js_api;

/// Every file in the fuzz inputs directory `dir` (relative to the repository's `fuzz/`), dot files aside.
fn inputs(dir: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn seeds_and_regressions_pass() {
    let seeds = inputs("seeds/js_api");
    assert!(seeds.len() >= 4);
    for input in seeds.iter().chain(&inputs("regressions/js_api")) {
        fuzz_js_api(input);
    }
}

#[test]
fn random_mutations_of_the_seeds_pass() {
    let seed = std::env::var("WEIR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x15);
    let seeds = inputs("seeds/js_api");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..300 {
        let mut m = seeds[rng.gen_range(0..seeds.len())].clone();
        for _ in 0..rng.gen_range(1..8) {
            let at = rng.gen_range(0..=m.len());
            match rng.gen_range(0..4) {
                0 if at < m.len() => m[at] = rng.r#gen(),
                1 => m.insert(at, rng.r#gen()),
                2 => m.truncate(at.max(m.len() / 2)),
                _ => {
                    let end = rng.gen_range(at..=m.len());
                    let copy = m[at..end].to_vec();
                    m.extend_from_slice(&copy);
                }
            }
        }
        if std::panic::catch_unwind(|| fuzz_js_api(&m)).is_err() {
            panic!("mutant {i} of WEIR_SEED={seed} failed; input: {m:?}");
        }
    }
}
