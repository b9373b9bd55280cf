//! A watch channel (one value, many waiters) whose waiters wake in a deterministic
//! order: the subset of `tokio::sync::watch` the server uses, built on one
//! [`tokio::sync::Notify`].
//!
//! Why not tokio's: its receivers wait on one of eight `Notify` shards picked by a
//! thread-local RNG that tokio seeds from a process-wide counter, and a send wakes the
//! shards in turn, so the order in which waiting tasks wake (which connection of a
//! stopping node notices first) depended on how many threads had drawn that RNG before
//! in the process. A simulation must not depend on what ran before it (a sweep runs
//! thousands in one process): here every waiter waits on the same `Notify`, which
//! wakes them in the order they began to wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

struct Shared<T> {
    value: Mutex<T>,
    /// Bumped by every send; a receiver remembers the last one it saw.
    version: AtomicU64,
    /// The sender is gone.
    closed: AtomicBool,
    notify: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half (one per channel); dropping it ends every wait with [`Closed`].
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A receiving half; clone it for more waiters.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver { shared: self.shared.clone(), seen: self.seen }
    }
}

/// The sender was dropped (as tokio's `watch::error::RecvError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

/// A channel holding `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: Mutex::new(init),
        version: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        notify: Notify::new(),
    });
    (Sender { shared: shared.clone() }, Receiver { shared, seen: 0 })
}

impl<T> Sender<T> {
    /// Store `value`, wake every waiter (in the order they began to wait) and return
    /// the old value.
    pub fn send_replace(&self, value: T) -> T {
        let old = std::mem::replace(&mut *self.shared.lock(), value);
        self.shared.version.fetch_add(1, Ordering::SeqCst);
        self.shared.notify.notify_waiters();
        old
    }

    /// The current value (hold the guard briefly: sends wait for it).
    pub fn borrow(&self) -> MutexGuard<'_, T> {
        self.shared.lock()
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        Receiver { shared: self.shared.clone(), seen: self.shared.version.load(Ordering::SeqCst) }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("value", &*self.shared.lock()).finish()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("value", &*self.shared.lock()).field("seen", &self.seen).finish()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.notify.notify_waiters();
    }
}

impl<T> Receiver<T> {
    /// The current value (hold the guard briefly: sends wait for it).
    pub fn borrow(&self) -> MutexGuard<'_, T> {
        self.shared.lock()
    }

    /// Wait for a value this receiver has not seen; [`Closed`] once the sender is gone
    /// and every value was seen.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        self.wait(|_| false, true).await
    }

    /// Wait until the value satisfies `pred` (checked at once, then after each send);
    /// [`Closed`] if the sender is gone first.
    pub async fn wait_for(&mut self, pred: impl Fn(&T) -> bool) -> Result<(), Closed> {
        self.wait(pred, false).await
    }

    async fn wait(&mut self, pred: impl Fn(&T) -> bool, on_change: bool) -> Result<(), Closed> {
        loop {
            // Registered before the checks, so a send between them is not missed.
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.shared.version.load(Ordering::SeqCst);
            if (on_change && version != self.seen) || pred(&self.shared.lock()) {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(Closed);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_end_on_send_and_on_close() {
        let (tx, mut rx) = channel(false);
        let mut other = tx.subscribe();
        let waiter = tokio::spawn(async move { other.wait_for(|v| *v).await });
        tokio::task::yield_now().await;
        assert!(!*tx.borrow());
        assert!(!tx.send_replace(true));
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // `rx` has not seen the send: `changed` returns at once, then waits for the next.
        assert_eq!(rx.changed().await, Ok(()));
        assert!(*rx.borrow());
        let waiter = tokio::spawn(async move { rx.changed().await });
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(waiter.await.unwrap(), Err(Closed));
    }
}
