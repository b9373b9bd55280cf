//! The route write deadline counts time *without progress*, not the length of the write
//! (`weir_core::server::frame::write_progressing`, used by the route stack): a peer that
//! takes a byte now and then keeps its route however long the whole write takes, and one
//! that takes nothing for the deadline is cut. Virtual time (madsim), so no real waits.

#![cfg(madsim)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use weir_core::server::frame::write_progressing;

/// A peer that takes one byte every `gap`, and nothing at all after `limit` bytes.
struct Trickle {
    gap: Duration,
    limit: usize,
    taken: Vec<u8>,
    next: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Trickle {
    fn new(gap: Duration, limit: usize) -> Trickle {
        Trickle { gap, limit, taken: Vec::new(), next: None }
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.taken.len() >= self.limit {
            return Poll::Pending; // a stopped peer: never ready again
        }
        let gap = self.gap;
        let sleep = self.next.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.next = None;
        self.taken.push(buf[0]);
        Poll::Ready(Ok(1))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn sim<F: std::future::Future<Output = ()> + 'static>(f: F) {
    madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(f);
}

#[test]
fn a_slow_but_moving_peer_is_not_cut() {
    sim(async {
        // 20 bytes, one per 40 ms: 800 ms in all against a 50 ms deadline.
        let mut peer = Trickle::new(Duration::from_millis(40), usize::MAX);
        let start = tokio::time::Instant::now();
        let frames: [&[u8]; 2] = [b"0123456789", b"abcdefghij"];
        write_progressing(&mut peer, &frames, Duration::from_millis(50)).await.expect("a moving write completes");
        assert_eq!(peer.taken, b"0123456789abcdefghij");
        assert!(start.elapsed() >= Duration::from_millis(800), "the whole write outlasted the deadline");
    });
}

#[test]
fn a_peer_that_takes_nothing_for_the_deadline_is_cut() {
    sim(async {
        let mut peer = Trickle::new(Duration::from_millis(10), 3);
        let start = tokio::time::Instant::now();
        let e = write_progressing(&mut peer, &[b"0123456789"], Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert_eq!(peer.taken, b"012", "what the peer took before it stopped");
        // Cut one deadline after the last byte went (3 x 10 ms + 50 ms), not before, and
        // not a whole deadline later.
        let cut = start.elapsed();
        assert!(cut >= Duration::from_millis(80) && cut < Duration::from_millis(130), "cut after {cut:?}");
    });
}
