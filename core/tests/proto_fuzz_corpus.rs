//! A stable-toolchain smoke run of the cargo-fuzz target (scripts/fuzz-parser): the
//! committed fuzz seeds and crash reproducers go through `fuzz_client_parser`, then
//! seeded random mutations of them. Coverage-guided fuzzing itself needs cargo-fuzz.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use weir_core::proto::fuzz_client_parser;

/// Every file in the fuzz inputs directory `dir` (relative to the repository's `fuzz/`).
fn inputs(dir: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn seeds_and_regressions_pass() {
    let seeds = inputs("seeds/client_parser");
    assert!(seeds.len() >= 5);
    for input in seeds.iter().chain(&inputs("regressions/client_parser")) {
        fuzz_client_parser(input);
    }
}

/// Fragments that make mutants reach deeper parser states than random bytes would.
const TOKENS: &[&[u8]] = &[
    b"PUB ",
    b"HPUB ",
    b"SUB ",
    b"UNSUB ",
    b"CONNECT {}",
    b"PING",
    b"PONG",
    b"INFO {}",
    b"+OK",
    b"-ERR ",
    b"\r\n",
    b"\n",
    b" ",
    b"\t",
    b"NATS/1.0\r\n\r\n",
    b"999999999",
    b"0",
    b"12",
];

#[test]
fn random_mutations_of_the_seeds_pass() {
    let seeds = inputs("seeds/client_parser");
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for _ in 0..20_000 {
        let mut m = seeds[rng.gen_range(0..seeds.len())].clone();
        for _ in 0..rng.gen_range(1..6) {
            let at = rng.gen_range(0..=m.len());
            match rng.gen_range(0..4) {
                0 if at < m.len() => m[at] = rng.r#gen(),
                1 => {
                    let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                    m.splice(at..at, t.iter().copied());
                }
                2 => m.truncate(at),
                _ => {
                    let end = rng.gen_range(at..=m.len());
                    let copy = m[at..end].to_vec();
                    m.extend_from_slice(&copy);
                }
            }
        }
        fuzz_client_parser(&m);
    }
}
