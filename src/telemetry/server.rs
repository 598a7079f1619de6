//! `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use super::metrics::Metrics;

/// Readiness, set by the pipeline: ready once it has a ClickHouse connection and a consumer.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
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

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
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
