//! The Raft inbox: Raft messages the route stack has read from peers and the node's
//! Raft loop has not stepped yet.
//!
//! It is bounded twice: by count (the channel's capacity) and by bytes, each queued
//! message being charged ([`Envelope::size`] bytes) to the node's `raft.inbox` ledger
//! account until the loop takes it. A count alone does not bound memory: one Append
//! carries up to `max_append_bytes` of entries, and a follower whose loop waits on a
//! slow disk receives a leader's probes and resent windows meanwhile (raft-swarm seed
//! 180 held 2.2 MiB here, uncharged, behind one 180 ms fsync).
//!
//! When the account is full, [`InboxTx::send`] waits until the loop takes messages,
//! so the connection's reader stops reading: the peer's writes back up into its
//! bounded route queue, whose slow-route policy evicts older Raft frames (see
//! `server::route`). An empty inbox always takes one message, even one larger than
//! the whole limit or one the account refuses (the `ledger.refuse` fault point), so
//! nothing can wedge the link waiting for a release that will not come (the overshoot
//! is one message per peer, at most a route frame each).

use crate::mem::Account;
use crate::raft::Envelope;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};

/// What both halves share: the account and the wake-up for senders waiting for room.
struct Shared {
    account: Arc<Account>,
    room: Notify,
}

/// The sending half, one clone per route connection.
#[derive(Clone)]
pub struct InboxTx {
    tx: mpsc::Sender<(Envelope, u64)>,
    shared: Arc<Shared>,
}

/// The receiving half, owned by the node's Raft loop.
pub struct InboxRx {
    rx: mpsc::Receiver<(Envelope, u64)>,
    shared: Arc<Shared>,
}

/// A Raft inbox holding at most `capacity` messages, charging their bytes to `account`
/// (`raft.inbox`).
pub fn inbox(capacity: usize, account: Arc<Account>) -> (InboxTx, InboxRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let shared = Arc::new(Shared { account, room: Notify::new() });
    (InboxTx { tx, shared: shared.clone() }, InboxRx { rx, shared })
}

impl InboxTx {
    /// Queue `env`, waiting while the account has no room for it (or the channel no
    /// slot). `Err` hands it back when the receiver is gone (the node stopped).
    pub async fn send(&self, env: Envelope) -> Result<(), Envelope> {
        let bytes = env.size();
        let account = &self.shared.account;
        loop {
            // Registered before the check, so a release between the check and the
            // wait still wakes us.
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if account.try_charge(bytes) {
                break;
            }
            // An empty inbox takes one message whatever the account says: nothing queued
            // means no release will come to wake us (a message over the whole limit, or a
            // refusal the account gives for another reason, e.g. the `ledger.refuse`
            // fault point, would otherwise wait forever and leave the peer unheard).
            if account.current() == 0 {
                account.force_charge(bytes);
                break;
            }
            if self.tx.is_closed() {
                return Err(env);
            }
            room.await;
        }
        match self.tx.send((env, bytes)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError((env, bytes))) => {
                account.release(bytes);
                Err(env)
            }
        }
    }
}

impl InboxRx {
    /// The next message, waiting for one; `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Envelope> {
        let (env, bytes) = self.rx.recv().await?;
        Some(self.taken(env, bytes))
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        let (env, bytes) = self.rx.try_recv().ok()?;
        Some(self.taken(env, bytes))
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The message left the inbox: release its bytes and wake senders waiting for room.
    /// (The Raft loop steps it at once: its entries move into the `raft.log`-charged
    /// log or are dropped.)
    fn taken(&self, env: Envelope, bytes: u64) -> Envelope {
        self.shared.account.release(bytes);
        self.shared.room.notify_waiters();
        env
    }
}

impl Drop for InboxRx {
    fn drop(&mut self) {
        // Release what is still queued (the node stopped); waiting senders see the
        // channel closed once woken.
        self.rx.close();
        while let Ok((_, bytes)) = self.rx.try_recv() {
            self.shared.account.release(bytes);
        }
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, Message};
    use std::time::Duration;

    fn append(bytes: usize) -> Envelope {
        let entries = vec![Entry { term: 1, index: 1, data: vec![7; bytes] }];
        Envelope {
            group: crate::raft::GroupId::TEST_LOG,
            from: 2,
            to: 1,
            term: 1,
            msg: Message::Append { prev_index: 0, prev_term: 0, entries, commit: 0 },
        }
    }

    #[tokio::test]
    async fn queued_bytes_are_charged_and_senders_wait_for_room() {
        let account = Arc::new(Account::new("raft.inbox", 1000));
        let (tx, mut rx) = inbox(16, account.clone());
        let (a, b) = (append(500), append(400));
        let (sa, sb) = (a.size(), b.size());
        tx.send(a.clone()).await.unwrap();
        assert_eq!(account.current(), sa, "a queued message is charged");
        // The second does not fit beside the first: its sender waits until the loop takes one.
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send(append(400)).await });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished(), "a send past the limit waits");
        assert_eq!(rx.recv().await, Some(a));
        tokio::time::timeout(Duration::from_secs(5), blocked).await.expect("woken by the take").unwrap().unwrap();
        assert_eq!(account.current(), sb);
        assert_eq!(rx.try_recv(), Some(b));
        assert_eq!(account.current(), 0, "taking releases");
        // One message larger than the whole limit goes alone into an empty inbox.
        tx.send(append(2000)).await.unwrap();
        assert_eq!(rx.len(), 1);
        drop(rx);
        assert_eq!(account.current(), 0, "dropping the receiver releases what was queued");
        assert!(tx.send(append(10)).await.is_err(), "no receiver: the message comes back");
        assert_eq!(account.current(), 0);
    }
}
