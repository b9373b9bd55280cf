//! The NATS client protocol parser under libFuzzer: see `weir_core::proto::fuzz_client_parser`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_core::proto::fuzz_client_parser(data));
