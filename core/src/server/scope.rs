//! Task scoping: every task a node spawns ends when the node's run future ends
//! (returns, fails, or is dropped), so a stopped node leaves no listener bound and no
//! connection half-served. madsim has no `JoinSet`, so this uses a watch channel whose
//! sender lives in the node's run future.

use crate::watch;
use std::future::Future;

/// Held by the owner; dropping it stops every task spawned in the scope.
pub struct Scope {
    _alive: watch::Sender<()>,
    rx: watch::Receiver<()>,
}

/// A handle for spawning tasks into a [`Scope`].
#[derive(Clone)]
pub struct ScopeHandle {
    rx: watch::Receiver<()>,
}

impl Scope {
    /// A new, open scope.
    pub fn new() -> Scope {
        let (tx, rx) = watch::channel(());
        Scope { _alive: tx, rx }
    }

    /// A handle to spawn tasks in this scope.
    pub fn handle(&self) -> ScopeHandle {
        ScopeHandle { rx: self.rx.clone() }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl ScopeHandle {
    /// Spawn `fut`; it is cancelled when the scope's owner goes away.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut rx = self.rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = closed(&mut rx) => {}
                _ = fut => {}
            }
        });
    }
}

async fn closed(rx: &mut watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}
