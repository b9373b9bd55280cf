//! Waiting for a request to shut down: Ctrl-C (SIGINT) or, on Unix, SIGTERM; for
//! SIGUSR2, nats-server's lame-duck signal; and for SIGHUP (reload the config) and
//! SIGUSR1 (reopen the log file), which must never stop the process.

/// Completes when the process is asked to stop; returns the signal's name.
pub async fn signal() -> &'static str {
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                return tokio::select! {
                    _ = tokio::signal::ctrl_c() => "interrupt",
                    _ = term.recv() => "SIGTERM",
                };
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupt"
}

/// A stream of one Unix signal, as nats-server handles it without stopping: SIGHUP
/// (reload), SIGUSR1 (reopen logs) or SIGUSR2 (lame duck). Listening from the start keeps the signal from
/// killing the process (its default action); `None` where it cannot be listened for.
pub struct Repeating {
    #[cfg(all(unix, not(madsim)))]
    inner: tokio::signal::unix::Signal,
}

impl Repeating {
    /// Listen for SIGHUP.
    pub fn hangup() -> Option<Repeating> {
        #[cfg(all(unix, not(madsim)))]
        return Self::listen("SIGHUP", tokio::signal::unix::SignalKind::hangup());
        #[allow(unreachable_code)]
        None
    }

    /// Listen for SIGUSR1.
    pub fn user1() -> Option<Repeating> {
        #[cfg(all(unix, not(madsim)))]
        return Self::listen("SIGUSR1", tokio::signal::unix::SignalKind::user_defined1());
        #[allow(unreachable_code)]
        None
    }

    /// Listen for SIGUSR2 (nats-server's lame-duck signal, `--signal ldm`).
    pub fn user2() -> Option<Repeating> {
        #[cfg(all(unix, not(madsim)))]
        return Self::listen("SIGUSR2", tokio::signal::unix::SignalKind::user_defined2());
        #[allow(unreachable_code)]
        None
    }

    #[cfg(all(unix, not(madsim)))]
    fn listen(name: &str, kind: tokio::signal::unix::SignalKind) -> Option<Repeating> {
        match tokio::signal::unix::signal(kind) {
            Ok(inner) => Some(Repeating { inner }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        }
    }

    /// The next delivery of the signal.
    pub async fn next(&mut self) {
        #[cfg(all(unix, not(madsim)))]
        {
            self.inner.recv().await;
            return;
        }
        #[allow(unreachable_code)]
        std::future::pending::<()>().await
    }
}
