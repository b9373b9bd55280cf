//! Waiting for a request to shut down: Ctrl-C (SIGINT) or, on Unix, SIGTERM; and for
//! SIGUSR2, nats-server's lame-duck signal.

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

/// Completes on SIGUSR2 (nats-server's lame-duck signal, `--signal ldm`); never where
/// there is no such signal. Listening also keeps SIGUSR2 from killing the process.
pub async fn lame_duck_signal() {
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::user_defined2()) {
            Ok(mut s) => {
                s.recv().await;
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGUSR2; no lame-duck mode by signal"),
        }
    }
    std::future::pending::<()>().await
}
