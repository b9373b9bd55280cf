//! A client connection's read buffer, charged to the ledger's `client.buffers` account
//! and shrunk back after a burst (issue 9, fault 4).
//!
//! The buffer holds what was read and not yet parsed. It grows while a message larger
//! than a read arrives (the parser needs a whole message in one piece), and a grown
//! buffer used to stay at its peak for the life of the connection, charged to nothing:
//! 40 clients that each sent one 8 MB message kept 300 MiB. Now its capacity is charged
//! after every change, and once what it holds fits a normal read again it is replaced by
//! a normal-sized one. When the account cannot take a growth, the connection reads no
//! more until it can ([`ReadBuf::prepare`] returns false), so TCP pushes back on the client.

use crate::mem::Account;
use bytes::BytesMut;
use std::sync::Arc;

/// Read size, and the capacity a buffer shrinks back to.
pub const READ_CHUNK: usize = 64 * 1024;

/// A connection's read buffer and what it has charged.
#[derive(Debug)]
pub struct ReadBuf {
    buf: BytesMut,
    charged: u64,
    account: Option<Arc<Account>>,
}

impl ReadBuf {
    /// An empty buffer charging `account` (none: uncharged, as in unit tests).
    pub fn new(account: Option<Arc<Account>>) -> ReadBuf {
        ReadBuf { buf: BytesMut::new(), charged: 0, account }
    }

    /// The bytes read and not yet parsed.
    pub fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes charged for this buffer now.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// Shrink a buffer grown by a burst, make room for the next read and charge the
    /// capacity. False means the account refused the growth: do not read until a later
    /// call returns true (the room is reserved but not used meanwhile).
    pub fn prepare(&mut self) -> bool {
        self.shrink();
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        self.settle()
    }

    /// Replace a buffer of more than twice the normal capacity by a normal one once
    /// what it holds fits in half a normal read.
    ///
    /// The decision uses the charge, not `capacity()`: once the parser has split ops off
    /// the front, `capacity()` counts only the tail, while the allocation (which the
    /// next reserve would reclaim whole) is still the grown one.
    fn shrink(&mut self) {
        if self.charged <= 2 * READ_CHUNK as u64 || self.buf.len() > READ_CHUNK / 2 {
            return;
        }
        let mut small = BytesMut::with_capacity(READ_CHUNK);
        small.extend_from_slice(&self.buf);
        self.buf = small;
        if let Some(account) = &self.account {
            account.release(self.charged);
        }
        self.charged = 0;
    }

    /// Raise the charge to the buffer's capacity if it grew; false if that was refused.
    /// The charge only comes down when [`ReadBuf::shrink`] replaces the buffer.
    fn settle(&mut self) -> bool {
        let cap = self.buf.capacity() as u64;
        if cap <= self.charged {
            return true;
        }
        if let Some(account) = &self.account
            && !account.try_charge(cap - self.charged)
        {
            return false;
        }
        self.charged = cap;
        true
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let Some(a) = &self.account {
            a.release(self.charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9, fault 4: a buffer grown for an 8 MB message is charged while it is
    /// needed and goes back to a normal read's size (and charge) once parsed; a growth
    /// the account cannot take is refused.
    #[test]
    fn a_burst_is_charged_and_shrinks_back() {
        let account = Arc::new(Account::new("client.buffers", 32 << 20));
        let mut rb = ReadBuf::new(Some(account.clone()));
        assert!(rb.prepare());
        assert_eq!(account.current(), READ_CHUNK as u64);
        // A large message arrives, read after read.
        while rb.bytes().len() < 8 << 20 {
            assert!(rb.prepare());
            let spare = rb.bytes().capacity() - rb.bytes().len();
            let n = spare.min((8 << 20) - rb.bytes().len());
            rb.bytes().extend_from_slice(&vec![b'x'; n]);
            assert_eq!(account.current(), rb.bytes().capacity() as u64, "the capacity is charged");
        }
        assert!(account.current() >= 8 << 20);
        // Parsed (split off and dropped), with a small remainder of the next op left.
        drop(rb.bytes().split_to((8 << 20) - 10));
        assert!(rb.prepare());
        assert_eq!(rb.bytes().len(), 10);
        assert_eq!(rb.bytes().capacity(), READ_CHUNK);
        assert_eq!(account.current(), READ_CHUNK as u64);
        // An account too small for the next growth refuses it.
        let tight = Arc::new(Account::new("client.buffers", READ_CHUNK as u64));
        let mut rb2 = ReadBuf::new(Some(tight.clone()));
        assert!(rb2.prepare());
        let fill = rb2.bytes().capacity();
        rb2.bytes().extend_from_slice(&vec![b'y'; fill]);
        assert!(!rb2.prepare(), "a growth over the limit is refused");
        assert_eq!(tight.current(), READ_CHUNK as u64);
        drop((rb, rb2));
        assert_eq!((account.current(), tight.current()), (0, 0));
    }
}
