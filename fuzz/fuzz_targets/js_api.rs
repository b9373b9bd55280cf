//! The JetStream API handlers under libFuzzer: see `weir_core::jetstream::engine::fuzz_js_api`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_core::jetstream::engine::fuzz_js_api(data));
