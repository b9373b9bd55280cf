//! Length-prefixed bincode frames, used on routes and on the internal client port.
//!
//! Wire form: `len: u32 LE` then `len` bytes of bincode 2 (standard config). A frame
//! longer than [`MAX_FRAME`] is refused on both sides: a peer cannot make us
//! allocate without bound.
//!
//! [`MAX_FRAME`] is derived from the largest message a server may accept
//! ([`crate::proto::MAX_PAYLOAD_LIMIT`] of payload and headers, a subject and reply
//! within [`crate::proto::MAX_CONTROL_LINE_LIMIT`]) with room for the rest of a route
//! message frame (account, queue names) or a Raft append carrying one such message, so
//! that no accepted message is too large for a route (issue 9, fault 3).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent: the largest accepted message (payload plus headers)
/// plus 4 MiB for its subject, reply and the frame's other fields (68 MiB).
pub const MAX_FRAME: usize = crate::proto::MAX_PAYLOAD_LIMIT + 4 * 1024 * 1024;
const _: () =
    assert!(MAX_FRAME >= crate::proto::MAX_PAYLOAD_LIMIT + 2 * crate::proto::MAX_CONTROL_LINE_LIMIT + 64 * 1024);
const _: () = assert!(MAX_FRAME <= u32::MAX as usize);

fn bincode_cfg() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode `value` as one frame (prefix included). The buffer is allocated at its exact
/// length (a sizing pass first): a queued frame costs what it holds, not the slack of a
/// growing vector (issue 9, fault 10). An error for a frame over [`MAX_FRAME`] (see
/// [`too_large`]) or a value bincode cannot encode.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, bincode_cfg()).map_err(encode_error)?;
    let len = size.bytes_written;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, FrameTooLarge { len }));
    }
    let mut out = vec![0u8; 4 + len];
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    let written = bincode::serde::encode_into_slice(value, &mut out[4..], bincode_cfg()).map_err(encode_error)?;
    debug_assert_eq!(written, len, "the sizing pass and the encoding agree");
    Ok(out)
}

fn encode_error(e: bincode::error::EncodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("frame encode: {e}"))
}

/// The error inside [`encode`]'s `io::Error` when a frame exceeds [`MAX_FRAME`].
#[derive(Debug, thiserror::Error)]
#[error("frame of {len} bytes exceeds {MAX_FRAME}")]
pub struct FrameTooLarge {
    /// Encoded length without the prefix.
    pub len: usize,
}

/// Whether `e` (from [`encode`]) says the frame was over [`MAX_FRAME`].
pub fn too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<FrameTooLarge>())
}

/// Decode a frame body (without prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    let (v, used) = bincode::serde::decode_from_slice(body, bincode_cfg())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("frame decode: {e}")))?;
    if used != body.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame has trailing bytes"));
    }
    Ok(v)
}

/// Take one whole frame off the front of `buf` (bytes read so far), if there is one;
/// `Ok(None)` while the frame is incomplete. For readers that must be cancel-safe
/// (they read into `buf` with `read_buf` and decode here).
pub fn take<T: DeserializeOwned>(buf: &mut Vec<u8>) -> io::Result<Option<T>> {
    let Some(len) = buf.first_chunk::<4>().map(|l| u32::from_le_bytes(*l) as usize) else { return Ok(None) };
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes exceeds {MAX_FRAME}")));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let v = decode(&buf[4..4 + len])?;
    buf.drain(..4 + len);
    Ok(Some(v))
}

/// Read one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes exceeds {MAX_FRAME}")));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    let v = decode(buf)?;
    // Do not keep a large buffer alive after a large frame.
    if buf.capacity() > 1024 * 1024 {
        *buf = Vec::new();
    }
    Ok(Some(v))
}

/// Write pre-encoded frame bytes and flush (madsim TCP sends nothing until flushed).
pub async fn write_raw<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// Write every buffer of `bufs` in order, then flush, failing with
/// [`io::ErrorKind::TimedOut`] only when the writer takes *no* byte for `stall`: the
/// deadline moves on with every byte written, so a slow but moving peer is not cut
/// (as nats-server retries a slow route write instead of closing the route).
pub async fn write_progressing<W: AsyncWrite + Unpin, B: AsRef<[u8]>>(
    w: &mut W,
    bufs: &[B],
    stall: std::time::Duration,
) -> io::Result<()> {
    use crate::timer::{Deadline, within};
    let mut deadline = Deadline::after(stall);
    let stalled = || io::Error::new(io::ErrorKind::TimedOut, format!("write made no progress for {stall:?}"));
    for b in bufs {
        let mut rest = b.as_ref();
        while !rest.is_empty() {
            match within(&mut deadline, w.write(rest)).await {
                Ok(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(Ok(n)) => {
                    rest = &rest[n..];
                    deadline.reset(tokio::time::Instant::now() + stall);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(stalled()),
            }
        }
    }
    within(&mut deadline, w.flush()).await.map_err(|_| stalled())?
}

/// Encode and write one frame, then flush.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(w: &mut W, value: &T) -> io::Result<()> {
    write_raw(w, &encode(value)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_decodes_whole_frames_only() {
        let mut buf = encode(&7u32).unwrap();
        buf.extend(encode(&9u32).unwrap());
        let last = buf.pop().unwrap();
        assert_eq!(take::<u32>(&mut buf).unwrap(), Some(7));
        assert_eq!(take::<u32>(&mut buf).unwrap(), None, "the second frame is incomplete");
        buf.push(last);
        assert_eq!(take::<u32>(&mut buf).unwrap(), Some(9));
        assert!(buf.is_empty());
        let mut huge = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        assert!(take::<u32>(&mut huge).is_err());
    }

    #[test]
    fn encoded_frames_hold_no_slack_and_too_large_is_typed() {
        for n in [0usize, 1, 13, 100, 4096, 70_000] {
            let f = encode(&serde_bytes::ByteBuf::from(vec![7u8; n])).unwrap();
            assert_eq!(f.capacity(), f.len(), "a frame of {n} payload bytes is allocated exactly");
        }
        let e = encode(&serde_bytes::ByteBuf::from(vec![0u8; MAX_FRAME])).unwrap_err();
        assert!(too_large(&e), "{e}");
        assert!(!too_large(&io::Error::other("x")));
    }

    #[test]
    fn round_trip_and_limits() {
        let f = encode(&(7u64, "x".to_string())).unwrap();
        assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()) as usize, f.len() - 4);
        let v: (u64, String) = decode(&f[4..]).unwrap();
        assert_eq!(v, (7, "x".to_string()));
        assert!(decode::<(u64, String)>(&f[4..f.len() - 1]).is_err());
        let mut extra = f[4..].to_vec();
        extra.push(0);
        assert!(decode::<(u64, String)>(&extra).is_err());
    }
}
