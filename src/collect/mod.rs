//! `tokentrail collect`: the HTTP → Kafka bridge GitLab streams audit events and sends
//! webhooks to (GitLab cannot write to Kafka itself).
//!
//! ```text
//! GitLab ──POST──▶ limits.rs (shed / timeout) ─▶ routes.rs: auth.rs ─▶ body limit ─▶ body.rs
//!                                                     │
//!                     produce.rs ◀─ records ──────────┘ ── bad body ─▶ dead-letter topic
//!                         │ every record acknowledged (acks=all)?
//!                         ▼ 200 │ else 503 + Retry-After, GitLab retries
//! ```
//!
//! This file assembles the server: routes from the configured destinations, the limits,
//! `/healthz` and `/readyz` on the same port (for load balancers), optional TLS, and the
//! readiness probe; server.rs accepts and drives the connections under their limits. `/metrics` is on the telemetry port (`telemetry.listen`), not here: the
//! collector's port faces GitLab, possibly the internet.

pub mod auth;
pub mod body;
#[cfg(test)]
mod body_props;
pub mod encoding;
pub mod headers;
pub mod limits;
pub mod produce;
mod readiness;
pub mod routes;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::Health;
use auth::SigningKey;
use limits::RequestLimits;
use produce::Publisher;
use routes::{Destination, DestinationKind, RouteState, Shared};

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("cannot listen on collect.listen {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the collector's HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The configured destinations, as routes know them.
fn destinations(settings: &Settings) -> Vec<Destination> {
    let c = &settings.collect;
    let audit = c.audit_streams.iter().map(|d| Destination {
        kind: DestinationKind::AuditStream,
        path: d.path.clone(),
        token: d.token.clone(),
        signing_key: None,
        topic: d.topic.clone(),
    });
    let hooks = c.webhooks.iter().map(|d| Destination {
        kind: DestinationKind::Webhook,
        path: d.path.clone(),
        token: d.token.clone(),
        signing_key: (!d.signing_secret.is_empty())
            .then(|| SigningKey::from_secret(&d.signing_secret)),
        topic: d.topic.clone(),
    });
    audit.chain(hooks).collect()
}

/// The collector's router (no listener): collection routes behind the limits, plus health.
pub fn router(
    settings: &Settings,
    publisher: Publisher,
    metrics: Metrics,
    health: Health,
) -> Router {
    let c = &settings.collect;
    let shared = Arc::new(Shared {
        publisher,
        metrics: metrics.clone(),
        max_body_bytes: c.max_body_bytes,
        retry_after_secs: c.retry_after_secs,
        signature_tolerance_secs: c.signature_tolerance_secs,
    });
    let limits = RequestLimits {
        permits: Arc::new(Semaphore::new(c.max_concurrent_requests)),
        timeout: Duration::from_secs(c.request_timeout_secs),
        retry_after_secs: c.retry_after_secs,
        metrics,
    };
    let mut collect = Router::new();
    for destination in destinations(settings) {
        let path = destination.path.clone();
        let state = RouteState {
            destination: Arc::new(destination),
            shared: shared.clone(),
        };
        collect = collect.route(&path, post(routes::receive).with_state(state));
    }
    let collect = collect.route_layer(axum::middleware::from_fn_with_state(limits, limits::guard));
    let health_routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health);
    collect.merge(health_routes)
}

async fn ready(
    axum::extract::State(health): axum::extract::State<Health>,
) -> (axum::http::StatusCode, String) {
    health.readyz()
}

/// A collector bound to its port, not yet serving.
pub struct Collector {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    router: Router,
    publisher: Publisher,
    health: Health,
    topics: Vec<String>,
    limits: server::ConnectionLimits,
}

impl Collector {
    /// Validates the destinations, creates the producer, loads TLS material and binds
    /// `collect.listen` (port 0 picks a free port; see [`Collector::local_addr`]).
    pub async fn bind(
        settings: &Settings,
        metrics: Metrics,
        health: Health,
    ) -> Result<Collector, CollectError> {
        let c = &settings.collect;
        c.require_destinations()?;
        let tls = if c.tls_cert_path.is_empty() {
            None
        } else {
            Some(tls::server_config(
                Path::new(&c.tls_cert_path),
                Path::new(&c.tls_key_path),
            )?)
        };
        let producer = produce::producer(settings)?;
        let publisher = Publisher::new(
            producer,
            settings.kafka.dead_letter_topic.clone(),
            settings.dead_letter.max_payload_bytes,
            metrics.clone(),
        );
        let listener = TcpListener::bind(&c.listen)
            .await
            .map_err(|source| CollectError::Bind {
                addr: c.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(CollectError::Serve)?;
        let mut topics: Vec<String> = destinations(settings)
            .into_iter()
            .map(|d| d.topic)
            .collect();
        topics.push(settings.kafka.dead_letter_topic.clone());
        topics.sort();
        topics.dedup();
        Ok(Collector {
            listener,
            local_addr,
            tls,
            router: router(settings, publisher.clone(), metrics, health.clone()),
            publisher,
            health,
            topics,
            limits: server::ConnectionLimits {
                max_connections: c.max_connections,
                header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
                max_header_bytes: c.max_header_bytes,
                shutdown_deadline: Duration::from_secs(settings.shutdown.deadline_secs),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `cancel`, then finishes the requests in progress and flushes the producer,
    /// all within `shutdown.deadline_secs` however many connections are open (server.rs).
    pub async fn run(self, cancel: CancellationToken) -> Result<(), CollectError> {
        let probe = tokio::spawn(readiness::probe(
            self.publisher.producer().clone(),
            self.topics,
            self.health.clone(),
            cancel.clone(),
        ));
        tracing::info!(listen = %self.local_addr, tls = self.tls.is_some(), "collector listening");
        let stopping = cancel.clone();
        let started = tokio::spawn(async move {
            stopping.cancelled().await;
            tokio::time::Instant::now()
        });
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        server::serve(self.listener, tls, self.router, self.limits, cancel.clone()).await;
        cancel.cancel();
        let _ = probe.await;
        self.health.set_ready(false);
        // The producer gets what is left of the deadline, at most 5 s.
        let spent = started.await.map(|at| at.elapsed()).unwrap_or_default();
        let left = self.limits.shutdown_deadline.saturating_sub(spent);
        self.publisher.flush(left.min(Duration::from_secs(5)));
        Ok(())
    }
}
