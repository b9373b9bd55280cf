//! File format: round trips, error classification, robustness to arbitrary bytes.

use proptest::prelude::*;
use weir_traces::{FORMAT_VERSION, MAGIC, Trace, TraceError, TraceHeader};
use xxhash_rust::xxh3::xxh3_64;

use crate::common::{arb_trace, canonical_trace};

/// Frame `body` exactly as `Trace::encode` does, with a valid checksum.
fn frame(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

#[test]
fn round_trip_sample_trace() {
    let trace = canonical_trace();
    let bytes = trace.encode();
    assert_eq!(&bytes[..8], b"WEIRTRCE");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), FORMAT_VERSION);
    let back = Trace::decode(&bytes).expect("decodes");
    assert_eq!(back, trace);
    assert_eq!(back.hash(), trace.hash());
}

#[test]
fn round_trip_empty_trace() {
    let trace = Trace::new(TraceHeader::new("empty", 0), Vec::new());
    assert_eq!(Trace::decode(&trace.encode()).expect("decodes"), trace);
}

#[test]
fn header_new_uses_current_versions() {
    let h = TraceHeader::new("s", 9);
    assert_eq!(h.format_version, FORMAT_VERSION);
    assert_eq!(h.weir_version, env!("CARGO_PKG_VERSION"));
    assert_eq!((h.scenario.as_str(), h.seed), ("s", 9));
}

#[test]
fn error_classification() {
    let good = canonical_trace().encode();
    assert!(matches!(Trace::decode(b""), Err(TraceError::Truncated { .. })));
    assert!(matches!(Trace::decode(b"WEIR"), Err(TraceError::Truncated { .. })));
    assert!(matches!(Trace::decode(b"nope"), Err(TraceError::NotATrace)));
    assert!(matches!(Trace::decode(b"not a trace at all"), Err(TraceError::NotATrace)));
    assert!(matches!(Trace::decode(&good[..10]), Err(TraceError::Truncated { .. })));
    assert!(matches!(Trace::decode(&good[..good.len() - 1]), Err(TraceError::Truncated { .. })));

    let mut future = good.clone();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    match Trace::decode(&future) {
        Err(TraceError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }

    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(matches!(Trace::decode(&flipped), Err(TraceError::Corrupt(_))));

    let mut appended = good.clone();
    appended.push(0);
    assert!(matches!(Trace::decode(&appended), Err(TraceError::Corrupt(_))));
}

#[test]
fn error_messages_are_clear() {
    let good = canonical_trace().encode();
    let msg = Trace::decode(&good[..good.len() - 3]).unwrap_err().to_string();
    assert!(msg.contains("truncated") && msg.contains(&good.len().to_string()), "{msg}");
    assert!(Trace::decode(b"GIF89a..").unwrap_err().to_string().contains("not a Weir trace"));
}

#[test]
fn valid_checksum_with_garbage_body_is_a_decode_error() {
    assert!(matches!(Trace::decode(&frame(FORMAT_VERSION, &[0xff; 5])), Err(TraceError::Decode(_))));
    // A valid body followed by extra bytes (re-checksummed).
    let good = canonical_trace().encode();
    let mut body = good[20..good.len() - 8].to_vec();
    body.push(0);
    assert!(matches!(Trace::decode(&frame(FORMAT_VERSION, &body)), Err(TraceError::Decode(_))));
}

#[test]
fn crafted_huge_length_prefix_does_not_allocate() {
    // format_version = 1, then weir_version's length as a varint u64 of 2^60.
    let mut body = vec![0x01, 0xfd];
    body.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(Trace::decode(&frame(FORMAT_VERSION, &body)), Err(TraceError::Decode(_))));
    // Same for the event vector's length.
    let mut body = bincode::serde::encode_to_vec(TraceHeader::new("s", 1), bincode::config::standard()).unwrap();
    body.push(0xfd);
    body.extend_from_slice(&(1u64 << 59).to_le_bytes());
    assert!(matches!(Trace::decode(&frame(FORMAT_VERSION, &body)), Err(TraceError::Decode(_))));
}

#[test]
fn file_helpers_round_trip_and_name_the_path() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("weir-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("canonical.wtrace");
    let trace = canonical_trace();
    trace.write_to(&path).expect("writes");
    assert_eq!(Trace::read_from(&path).expect("reads"), trace);

    let missing = dir.join("missing.wtrace");
    let err = Trace::read_from(&missing).unwrap_err();
    assert!(matches!(err, TraceError::Io { .. }));
    assert!(err.to_string().contains("missing.wtrace"), "{err}");

    let junk = dir.join("junk.wtrace");
    std::fs::write(&junk, b"hello").unwrap();
    let err = Trace::read_from(&junk).unwrap_err();
    assert!(matches!(&err, TraceError::File { source, .. } if matches!(**source, TraceError::NotATrace)));
    assert!(err.to_string().contains("junk.wtrace") && err.to_string().contains("not a Weir trace"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #[test]
    fn round_trip_generated(trace in arb_trace(40)) {
        let back = Trace::decode(&trace.encode()).expect("decodes");
        prop_assert_eq!(back.hash(), trace.hash());
        prop_assert_eq!(back, trace);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let result = Trace::decode(&bytes);
        if bytes.len() >= 8 && bytes[..8] != MAGIC {
            prop_assert!(matches!(result, Err(TraceError::NotATrace)));
        }
    }

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(
        version in prop_oneof![Just(FORMAT_VERSION), any::<u32>()],
        rest in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&rest);
        prop_assert!(Trace::decode(&bytes).is_err());
    }

    /// Bodies with valid framing and checksum reach the bincode decoder.
    #[test]
    fn arbitrary_checksummed_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Trace::decode(&frame(FORMAT_VERSION, &body));
    }

    #[test]
    fn flipped_byte_is_detected(trace in arb_trace(12), pos in any::<prop::sample::Index>(), mask in 1..=255u8) {
        let mut bytes = trace.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        let result = Trace::decode(&bytes);
        match i {
            0..8 => prop_assert!(matches!(result, Err(TraceError::NotATrace)), "{:?}", result),
            8..12 => prop_assert!(matches!(result, Err(TraceError::UnsupportedVersion { .. })), "{:?}", result),
            12..20 => prop_assert!(
                matches!(result, Err(TraceError::Truncated { .. } | TraceError::Corrupt(_))), "{:?}", result
            ),
            _ => prop_assert!(matches!(result, Err(TraceError::Corrupt(_))), "{:?}", result),
        }
    }

    #[test]
    fn truncation_is_detected(trace in arb_trace(12), cut in any::<prop::sample::Index>()) {
        let bytes = trace.encode();
        let len = cut.index(bytes.len());
        let result = Trace::decode(&bytes[..len]);
        prop_assert!(matches!(result, Err(TraceError::Truncated { .. })), "{:?}", result);
    }

    #[test]
    fn any_modification_is_an_error(
        trace in arb_trace(12),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        extra in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let original = trace.encode();
        let mut bytes = original.clone();
        for (pos, value) in &edits {
            let i = pos.index(bytes.len());
            bytes[i] = *value;
        }
        bytes.extend_from_slice(&extra);
        prop_assume!(bytes != original);
        prop_assert!(Trace::decode(&bytes).is_err());
    }
}
