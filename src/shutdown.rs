//! Waiting for a request to shut down: Ctrl-C (SIGINT) or, on Unix, SIGTERM.

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
