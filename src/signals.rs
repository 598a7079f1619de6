//! Process signals shared by the long-running commands.

use tokio_util::sync::CancellationToken;

/// SIGINT or SIGTERM starts a graceful shutdown: stop fetching, flush, commit, exit.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    cancel.cancel();
}
