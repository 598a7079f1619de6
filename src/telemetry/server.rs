//! `/metrics`, `/healthz` and `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use super::metrics::Metrics;

/// Readiness, set by the pipeline: ready once it has a ClickHouse connection and a consumer,
/// and not while Kafka is unreachable. When not ready, `/readyz` says why (the last reason
/// given), so an operator sees "Kafka unreachable: …" or "stopped: dead-letter ratio guard …"
/// without reading logs. Reasons never carry secrets: they are built from error texts that
/// name endpoints, not credentials.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        if ready {
            self.reason.lock().expect("health reason").clear();
        }
    }
    /// Not ready, because of `reason` (shown by `/readyz`).
    pub fn set_unready(&self, reason: impl Into<String>) {
        self.ready.store(false, Ordering::Relaxed);
        *self.reason.lock().expect("health reason") = reason.into();
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    /// Why it is not ready, if a reason was given.
    pub fn reason(&self) -> String {
        self.reason.lock().expect("health reason").clone()
    }
    /// The `/readyz` answer: 200 `ready`, or 503 `not ready` with the reason.
    pub fn readyz(&self) -> (StatusCode, String) {
        if self.is_ready() {
            return (StatusCode::OK, "ready\n".into());
        }
        match self.reason() {
            r if r.is_empty() => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
            r => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {r}\n")),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics, health })
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    state.health.readyz()
}

/// Serves the router on `telemetry.listen` unless it is empty (telemetry off); a bind error
/// names the key.
pub async fn serve_configured(
    listen: &str,
    metrics: Metrics,
    health: Health,
) -> Result<(), std::io::Error> {
    if listen.is_empty() {
        return Ok(());
    }
    serve(listen, metrics, health)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("telemetry.listen {listen}: {e}")))
}

/// Serves the router on `listen` until the process exits.
pub async fn serve(listen: &str, metrics: Metrics, health: Health) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "telemetry endpoint listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(metrics, health)).await {
            tracing::warn!("telemetry server stopped: {e}");
        }
    });
    Ok(())
}
