//! A libFuzzer-style entry point for the client parser (a cargo-fuzz target can call it).

use super::{ClientOp, ClientParser, ParserConfig, ProtoError};
use bytes::BytesMut;

/// What feeding a byte stream produced: the ops and errors in order, ending at the first closing error.
type Outcome = Vec<Result<ClientOp, ProtoError>>;

/// Feed `chunks` one after another, draining all complete ops after each, and check the parser's contract.
fn feed<'a>(cfg: ParserConfig, chunks: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = ClientParser::new(cfg);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match parser.parse(&mut buf) {
                Ok(Some(op)) => {
                    assert!(buf.len() < before, "an op was returned without consuming input");
                    out.push(Ok(op));
                }
                Ok(None) => {
                    assert!(
                        buf.len() <= cfg.max_buffered(),
                        "needs more input while holding {} bytes (bound {})",
                        buf.len(),
                        cfg.max_buffered()
                    );
                    let len = buf.len();
                    assert_eq!(parser.parse(&mut buf), Ok(None), "needs-more is not stable");
                    assert_eq!(buf.len(), len, "needs-more consumed input");
                    break;
                }
                Err(e) => {
                    out.push(Err(e.clone()));
                    if e.closes_connection() {
                        assert_eq!(parser.parse(&mut buf), Err(e), "a failed parser must repeat its error");
                        return out;
                    }
                    assert!(buf.len() < before, "a non-closing error did not consume input");
                }
            }
        }
    }
    out
}

/// Fuzz the client parser with `data`.
///
/// The first byte picks small limits (so that limit errors are reachable) and a
/// chunking seed; the rest is the protocol stream. The stream is parsed once in
/// one piece and once in pseudo-random chunks derived from the seed. Panics if
/// the parser panics, returns an op or a non-closing error without consuming
/// input, reports needs-more while holding more than
/// [`ParserConfig::max_buffered`] bytes, or if the two feedings disagree.
pub fn fuzz_client_parser(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else { return };
    let cfg =
        ParserConfig { max_control_line: 16 + usize::from(seed & 0x0f) * 8, max_payload: usize::from(seed >> 4) * 16 };
    let whole = feed(cfg, std::iter::once(stream));

    // Chunk sizes from a tiny xorshift seeded by the first byte; mostly small, sometimes large.
    let mut state = u32::from(seed) | 0x9e37_0000;
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = if state % 8 == 0 { (state >> 8) as usize % 512 } else { (state >> 8) as usize % 8 } + 1;
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
    }
    let chunked = feed(cfg, chunks.into_iter());
    assert_eq!(whole, chunked, "one-piece and chunked parsing disagree");
}
