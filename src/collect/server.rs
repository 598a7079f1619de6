//! The accept loop and the HTTP/1 connections, driven here rather than by `axum::serve`,
//! which exposes none of the limits below.
//!
//! * At most `collect.max_connections` connections are open: a permit is taken *before*
//!   `accept`, so further clients wait in the kernel's listen backlog until one closes.
//! * Each connection must deliver a request's complete headers within
//!   `collect.header_read_timeout_secs` of opening (or of its previous answer: the same timer
//!   is hyper's keep-alive idle limit), and its read buffer holds at most
//!   `collect.max_header_bytes` (longer heads get 431). With TLS, the handshake has its own
//!   limit ([`tls::HANDSHAKE_TIMEOUT`]) and runs under the connection's permit.
//! * On shutdown no connection is accepted any more, open ones are told to close after their
//!   request in progress, and whatever is still open at `shutdown.deadline_secs` is dropped.
//!
//! So an idle or slow client holds at most one permit and `max_header_bytes` of buffer, for
//! at most the header timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls;

/// The connection limits of one collector.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// From the shutdown request to the last connection dropped.
    pub shutdown_deadline: Duration,
}

/// Serves `router` on `listener` until `cancel`, then drains the connections within
/// `limits.shutdown_deadline`. Returns how many connections were still open at the deadline.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    cancel: CancellationToken,
) -> usize {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as large as the open ones.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (http, router, tls, cancel) =
            (http.clone(), router.clone(), tls.clone(), cancel.clone());
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(&http, stream, router, peer, cancel).await,
                Some(acceptor) => {
                    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => connection(&http, stream, router, peer, cancel).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let left = connections.len();
    if drained.is_err() {
        tracing::warn!(
            open = left,
            "connections still open at shutdown.deadline_secs: dropped"
        );
    }
    connections.abort_all();
    left
}

/// One HTTP/1.1 connection, closed gracefully (after the request in progress) on `cancel`.
async fn connection<IO>(
    http: &http1::Builder,
    io: IO,
    router: Router,
    peer: SocketAddr,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Header timeouts, oversized heads, clients that hang up: routine, not errors.
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
