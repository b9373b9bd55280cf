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

/// Bytes a [`FrameReader`] asks the socket for at once, and the capacity its buffer
/// returns to after a larger frame.
pub const READ_CHUNK: usize = 64 * 1024;

/// A buffered frame reader for a long-lived connection: one read takes as many frames
/// as the socket has (up to [`READ_CHUNK`] bytes), where [`read`] makes two reads per
/// frame (issue 9: the route reader spent over half its time in `recv`). Cancel-safe:
/// [`FrameReader::fill`] is one `read_buf`, and [`FrameReader::take`] does not await.
///
/// The buffer holds at most [`READ_CHUNK`], or one frame's length while a larger frame
/// arrives (up to [`MAX_FRAME`]); once such a frame is taken and nothing else is held,
/// the buffer is freed, so a burst does not leave its peak allocated.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Where the bytes not yet taken start in `buf`.
    start: usize,
}

impl FrameReader {
    /// An empty reader (its buffer is allocated by the first [`FrameReader::fill`]).
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// The length of the frame at the front (prefix excluded), once its prefix is here.
    fn front_len(&self) -> io::Result<Option<usize>> {
        let Some(len) = self.buf[self.start..].first_chunk::<4>().map(|l| u32::from_le_bytes(*l) as usize) else {
            return Ok(None);
        };
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds {MAX_FRAME}"),
            ));
        }
        Ok(Some(len))
    }

    /// Take one whole frame from what was read, if there is one (`Ok(None)`: call
    /// [`FrameReader::fill`]). An error for a frame over [`MAX_FRAME`] or one that does
    /// not decode.
    pub fn take<T: DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        let Some(len) = self.front_len()? else { return Ok(None) };
        let at = self.start + 4;
        if self.buf.len() < at + len {
            return Ok(None);
        }
        let v = decode(&self.buf[at..at + len])?;
        self.start = at + len;
        if self.start == self.buf.len() {
            self.start = 0;
            if self.buf.capacity() > READ_CHUNK {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
        Ok(Some(v))
    }

    /// Bytes read and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Read once more from `r` (at most [`READ_CHUNK`], or the rest of a larger frame);
    /// `Ok(0)` at end of stream.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.start > 0 {
            // What is left is less than one frame: move it to the front.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let want = match self.front_len()? {
            Some(len) => (4 + len).max(READ_CHUNK),
            None => READ_CHUNK,
        };
        if self.buf.capacity() < want {
            self.buf.reserve_exact(want - self.buf.len());
        }
        r.read_buf(&mut self.buf).await
    }
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

/// Most buffers handed to one vectored write (Linux's `IOV_MAX` is 1024).
const MAX_IOV: usize = 256;

/// Write every buffer of `bufs` in order, then flush, failing with
/// [`io::ErrorKind::TimedOut`] only when the writer takes *no* byte for `stall`: the
/// deadline moves on with every byte written, so a slow but moving peer is not cut
/// (as nats-server retries a slow route write instead of closing the route).
///
/// The buffers go out in vectored writes of up to [`MAX_IOV`] at a time, so a batch of
/// small frames costs one system call rather than one per frame (issue 9: the route
/// writer spent half its time in `send`). A writer without vectored writes (the
/// simulator's link model) takes the first buffer of each call, as before.
pub async fn write_progressing<W: AsyncWrite + Unpin, B: AsRef<[u8]>>(
    w: &mut W,
    bufs: &[B],
    stall: std::time::Duration,
) -> io::Result<()> {
    use crate::timer::{Deadline, within};
    use std::io::IoSlice;
    let mut deadline = Deadline::after(stall);
    let stalled = || io::Error::new(io::ErrorKind::TimedOut, format!("write made no progress for {stall:?}"));
    // The first unwritten buffer and how much of it is written.
    let (mut i, mut off) = (0, 0);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len().min(MAX_IOV));
    loop {
        while i < bufs.len() && off == bufs[i].as_ref().len() {
            (i, off) = (i + 1, 0);
        }
        if i == bufs.len() {
            break;
        }
        slices.clear();
        slices.push(IoSlice::new(&bufs[i].as_ref()[off..]));
        slices.extend(bufs[i + 1..].iter().take(MAX_IOV - 1).map(|b| IoSlice::new(b.as_ref())));
        match within(&mut deadline, w.write_vectored(&slices)).await {
            Ok(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(Ok(mut n)) => {
                // Step over what was taken: whole buffers, then part of one.
                while n > 0 {
                    let rest = bufs[i].as_ref().len() - off;
                    if n < rest {
                        off += n;
                        break;
                    }
                    n -= rest;
                    (i, off) = (i + 1, 0);
                }
                deadline.reset(tokio::time::Instant::now() + stall);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(stalled()),
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

    #[cfg(not(madsim))]
    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    /// A stream that hands out its bytes `step` at a time.
    #[cfg(not(madsim))]
    struct Chunks {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    #[cfg(not(madsim))]
    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let n = self.step.min(self.data.len() - self.at).min(buf.remaining());
            buf.put_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A writer that takes at most `step` bytes per call, across buffers when vectored.
    #[cfg(not(madsim))]
    struct Takes {
        got: Vec<u8>,
        step: usize,
        calls: usize,
    }

    #[cfg(not(madsim))]
    impl AsyncWrite for Takes {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let k = (self.step - n).min(b.len());
                self.got.extend_from_slice(&b[..k]);
                n += k;
                if n == self.step {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Frames come out whole and in order however the bytes arrive, many per read when
    /// small; a frame larger than a read is gathered, and its buffer freed once taken.
    #[cfg(not(madsim))]
    #[test]
    fn frame_reader_takes_many_frames_per_read_and_frees_a_large_one() {
        let big = vec![5u8; 3 * READ_CHUNK];
        let mut data = Vec::new();
        for i in 0..100u32 {
            data.extend(encode(&i).unwrap());
        }
        data.extend(encode(&serde_bytes::ByteBuf::from(big.clone())).unwrap());
        data.extend(encode(&7u32).unwrap());
        for step in [1, 3, 1000, usize::MAX] {
            let mut src = Chunks { data: data.clone(), at: 0, step };
            let mut r = FrameReader::new();
            let (mut got, mut reads) = (Vec::new(), 0);
            rt().block_on(async {
                while got.len() < 100 {
                    match r.take::<u32>().unwrap() {
                        Some(v) => got.push(v),
                        None => {
                            assert!(r.fill(&mut src).await.unwrap() > 0, "step {step}: the data ends early");
                            reads += 1;
                        }
                    }
                }
                assert_eq!(got, (0..100).collect::<Vec<_>>(), "step {step}");
                if step == usize::MAX {
                    assert_eq!(reads, 1, "one read brings every small frame");
                }
                let b = loop {
                    match r.take::<serde_bytes::ByteBuf>().unwrap() {
                        Some(b) => break b,
                        None => assert!(r.fill(&mut src).await.unwrap() > 0),
                    }
                };
                assert_eq!(b.into_vec(), big, "step {step}");
                assert!(r.buf.capacity() <= READ_CHUNK, "step {step}: a large frame's buffer is not kept");
                let last = loop {
                    match r.take::<u32>().unwrap() {
                        Some(v) => break v,
                        None => assert!(r.fill(&mut src).await.unwrap() > 0),
                    }
                };
                assert_eq!(last, 7);
                assert_eq!(r.buffered(), 0);
                assert_eq!(r.fill(&mut src).await.unwrap(), 0, "end of stream");
            });
        }
        let mut r = FrameReader::new();
        r.buf = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        assert!(r.take::<u32>().is_err(), "a frame over the limit is refused from its prefix");
    }

    /// A batch goes out in few vectored writes, whole and in order, whatever each write takes.
    #[cfg(not(madsim))]
    #[test]
    fn write_progressing_writes_batches_vectored_across_partial_writes() {
        let frames: Vec<Vec<u8>> = (0..600u32).map(|i| encode(&(i, "x".repeat(i as usize % 7))).unwrap()).collect();
        let mut frames_with_empty = frames.clone();
        frames_with_empty.insert(3, Vec::new());
        let all: Vec<u8> = frames.concat();
        for step in [1, 5, 4096, usize::MAX] {
            let mut w = Takes { got: Vec::new(), step, calls: 0 };
            rt().block_on(write_progressing(&mut w, &frames_with_empty, std::time::Duration::from_secs(1))).unwrap();
            assert_eq!(w.got, all, "step {step}");
            if step == usize::MAX {
                assert_eq!(w.calls, frames.len().div_ceil(MAX_IOV), "one call per {MAX_IOV} frames");
            }
        }
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
