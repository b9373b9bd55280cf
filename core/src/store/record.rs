//! Encoding and decoding of block records (the format is specified in `file.rs`).

use xxhash_rust::xxh3::xxh3_64;

/// Bytes of the fixed record header.
pub(crate) const HDR: usize = 40;
/// Bytes of the checksum trailer.
pub(crate) const TRAILER: usize = 8;
/// Framing bytes of every record.
pub(crate) const OVERHEAD: usize = HDR + TRAILER;
/// Largest record accepted: room for the largest message a server accepts (payload and
/// headers up to [`crate::proto::MAX_PAYLOAD_LIMIT`], a subject up to
/// [`crate::proto::MAX_CONTROL_LINE_LIMIT`]) plus framing, i.e. 65 MiB + 4 KiB. Older
/// blocks (written under the earlier 64 MiB cap) stay readable: the cap only grew.
pub(crate) const MAX_RECORD_LEN: usize = crate::proto::MAX_PAYLOAD_LIMIT + crate::proto::MAX_CONTROL_LINE_LIMIT + 4096;
const _: () =
    assert!(MAX_RECORD_LEN >= OVERHEAD + crate::proto::MAX_PAYLOAD_LIMIT + crate::proto::MAX_CONTROL_LINE_LIMIT);
/// Magic at the start of a block-header record's body.
pub(crate) const MAGIC: &[u8; 8] = b"WEIRBLK1";
/// Length of a block-header record.
pub(crate) const BLOCK_HEADER_LEN: usize = OVERHEAD + 16;
/// Length of a delete or seal record.
pub(crate) const SMALL_LEN: usize = OVERHEAD;

/// Record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// First record of a block: `seq` = base, `aux` = prev_end, `slot` = 1 when the block
    /// truncates the log after `base` ([`FileStore::truncate_after`](super::FileStore::truncate_after)),
    /// body = magic + index.
    Header = 1,
    /// A message: `seq`, `slot`, `aux` = timestamp, body = subject + headers + payload.
    Msg = 2,
    /// Deleted sequences `seq..=aux`.
    Delete = 3,
    /// Last record of a rolled block: `aux` = number of message slots in the block.
    Seal = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Header,
            2 => Kind::Msg,
            3 => Kind::Delete,
            4 => Kind::Seal,
            _ => return None,
        })
    }
}

/// A parsed (header-checked) record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecHeader {
    /// Whole record length.
    pub len: u32,
    /// Kind.
    pub kind: Kind,
    /// Subject length (messages).
    pub subj_len: u16,
    /// Record number in the block.
    pub rec: u32,
    /// Message slot in the block.
    pub slot: u32,
    /// Sequence (meaning depends on kind).
    pub seq: u64,
    /// Second value (meaning depends on kind).
    pub aux: u64,
    /// Header-block length (messages).
    pub hdr_len: u32,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Append a record to `out`: header fields, `body` parts, header check and checksum.
#[allow(clippy::too_many_arguments)]
fn put(
    out: &mut Vec<u8>,
    kind: Kind,
    subj_len: u16,
    rec: u32,
    slot: u32,
    seq: u64,
    aux: u64,
    hdr_len: u32,
    body: &[&[u8]],
) {
    let start = out.len();
    let len = OVERHEAD + body.iter().map(|b| b.len()).sum::<usize>();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&subj_len.to_le_bytes());
    out.extend_from_slice(&rec.to_le_bytes());
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&aux.to_le_bytes());
    out.extend_from_slice(&hdr_len.to_le_bytes());
    let hcheck = xxh3_64(&out[start..start + 36]) as u32;
    out.extend_from_slice(&hcheck.to_le_bytes());
    for b in body {
        out.extend_from_slice(b);
    }
    let sum = xxh3_64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
    debug_assert_eq!(out.len() - start, len);
}

/// Encode a message record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_msg(
    out: &mut Vec<u8>,
    rec: u32,
    slot: u32,
    seq: u64,
    ts_ns: i64,
    subject: &str,
    headers: &[u8],
    payload: &[u8],
) {
    let (s, h) = (subject.as_bytes(), headers);
    put(out, Kind::Msg, s.len() as u16, rec, slot, seq, ts_ns as u64, h.len() as u32, &[s, h, payload]);
}

/// Encode a delete record for `from..=to`.
pub(crate) fn put_delete(out: &mut Vec<u8>, rec: u32, slots: u32, from: u64, to: u64) {
    put(out, Kind::Delete, 0, rec, slots, from, to, 0, &[]);
}

/// Encode a block-header record; `truncates` marks a block that discards every earlier
/// sequence above `base`.
pub(crate) fn put_block_header(out: &mut Vec<u8>, index: u64, base: u64, prev_end: u64, truncates: bool) {
    put(out, Kind::Header, 0, 0, truncates as u32, base, prev_end, 0, &[MAGIC, &index.to_le_bytes()]);
}

/// Encode a seal record.
pub(crate) fn put_seal(out: &mut Vec<u8>, rec: u32, slots: u64) {
    put(out, Kind::Seal, 0, rec, 0, 0, slots, 0, &[]);
}

/// Parse and check a record header from at least [`HDR`] bytes; `None` when the header
/// check fails or the fields are inconsistent.
pub(crate) fn parse_header(b: &[u8]) -> Option<RecHeader> {
    if b.len() < HDR || xxh3_64(&b[..36]) as u32 != u32_at(b, 36) || b[5] != 0 {
        return None;
    }
    let h = RecHeader {
        len: u32_at(b, 0),
        kind: Kind::from_u8(b[4])?,
        subj_len: u16::from_le_bytes([b[6], b[7]]),
        rec: u32_at(b, 8),
        slot: u32_at(b, 12),
        seq: u64_at(b, 16),
        aux: u64_at(b, 24),
        hdr_len: u32_at(b, 32),
    };
    let len = h.len as usize;
    let ok = match h.kind {
        Kind::Msg => {
            h.subj_len > 0 && len >= OVERHEAD + h.subj_len as usize + h.hdr_len as usize && len <= MAX_RECORD_LEN
        }
        Kind::Header => len == BLOCK_HEADER_LEN && h.subj_len == 0 && h.hdr_len == 0 && h.slot <= 1,
        Kind::Delete => len == SMALL_LEN && h.subj_len == 0 && h.hdr_len == 0 && h.seq <= h.aux,
        Kind::Seal => len == SMALL_LEN && h.subj_len == 0 && h.hdr_len == 0,
    };
    ok.then_some(h)
}

/// Whether a whole record's checksum is right.
pub(crate) fn checksum_ok(rec: &[u8]) -> bool {
    rec.len() >= OVERHEAD && xxh3_64(&rec[..rec.len() - TRAILER]) == u64_at(rec, rec.len() - TRAILER)
}

/// The block index stored in a checked block-header record.
pub(crate) fn header_index(rec: &[u8]) -> Option<u64> {
    (rec.len() == BLOCK_HEADER_LEN && &rec[HDR..HDR + 8] == MAGIC).then(|| u64_at(rec, HDR + 8))
}

/// Subject, headers and payload of a checked message record.
pub(crate) fn msg_parts<'a>(h: &RecHeader, rec: &'a [u8]) -> Option<(&'a str, &'a [u8], &'a [u8])> {
    let s_end = HDR + h.subj_len as usize;
    let h_end = s_end + h.hdr_len as usize;
    let subject = std::str::from_utf8(&rec[HDR..s_end]).ok()?;
    Some((subject, &rec[s_end..h_end], &rec[h_end..rec.len() - TRAILER]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = Vec::new();
        put_msg(&mut b, 3, 2, 42, -7, "a.b", b"hdr", b"payload");
        let h = parse_header(&b).unwrap();
        assert_eq!((h.kind, h.rec, h.slot, h.seq, h.aux as i64), (Kind::Msg, 3, 2, 42, -7));
        assert_eq!(h.len as usize, b.len());
        assert!(checksum_ok(&b));
        assert_eq!(msg_parts(&h, &b).unwrap(), ("a.b", &b"hdr"[..], &b"payload"[..]));
        b[45] ^= 1;
        assert!(!checksum_ok(&b));
        b[10] ^= 1;
        assert!(parse_header(&b).is_none());

        let mut b = Vec::new();
        put_block_header(&mut b, 9, 100, 90, false);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.kind, h.seq, h.aux, h.slot), (Kind::Header, 100, 90, 0));
        assert_eq!(header_index(&b), Some(9));

        let mut b = Vec::new();
        put_block_header(&mut b, 10, 50, 90, true);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.kind, h.seq, h.aux, h.slot), (Kind::Header, 50, 90, 1));
    }
}
