//! Load shedding and the request budget, applied to the collection routes only.
//!
//! * Concurrency: at most `collect.max_concurrent_requests` requests are handled at once;
//!   the next one is answered 503 + `Retry-After` right away instead of waiting in a queue,
//!   so memory is bounded by `max_concurrent_requests × max_body_bytes` plus the producer
//!   buffer, whatever the offered load.
//! * Time: a request that is not answered within `collect.request_timeout_secs` (slow body,
//!   slow Kafka) is answered 503 + `Retry-After`; GitLab retries it.
//!
//! The body-size limit (413) is applied while reading the body, in the route handler, after
//! authentication, so an unauthenticated client cannot make the collector read 25 MB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::telemetry::metrics::Metrics;

/// Shared by every collection route.
#[derive(Clone)]
pub struct RequestLimits {
    pub permits: Arc<Semaphore>,
    pub timeout: Duration,
    pub retry_after_secs: u64,
    pub metrics: Metrics,
}

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// A JSON error answer: `{"error": kind, "reason": ...}`.
pub fn error_response(status: StatusCode, kind: &str, reason: &str) -> Response {
    json_response(
        status,
        serde_json::json!({ "error": kind, "reason": reason }),
    )
}

/// 503 with `Retry-After`: the answer that makes GitLab try again later.
pub fn unavailable(retry_after_secs: u64, kind: &str, reason: &str) -> Response {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, kind, reason);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// Middleware: concurrency limit, request timeout, and the per-route request metrics.
pub async fn guard(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Matched routes only (this runs as a route layer), so the label set is the configured
    // paths: bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let metrics = &limits.metrics;
    let response = match limits.permits.clone().try_acquire_owned() {
        Err(_) => {
            metrics
                .collect_rejected
                .with_label_values(&["overloaded"])
                .inc();
            unavailable(
                limits.retry_after_secs,
                "overloaded",
                "too many requests in progress",
            )
        }
        Ok(permit) => {
            metrics.collect_in_flight.inc();
            let outcome = tokio::time::timeout(limits.timeout, next.run(request)).await;
            metrics.collect_in_flight.dec();
            drop(permit);
            outcome.unwrap_or_else(|_| {
                metrics
                    .collect_rejected
                    .with_label_values(&["timeout"])
                    .inc();
                unavailable(
                    limits.retry_after_secs,
                    "timeout",
                    "the request was not completed within collect.request_timeout_secs",
                )
            })
        }
    };
    let status = response.status().as_u16().to_string();
    metrics
        .collect_requests
        .with_label_values(&[&route, &status])
        .inc();
    metrics
        .collect_latency
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(max_concurrent: usize, timeout_ms: u64) -> (Router, Metrics) {
        let metrics = Metrics::new();
        let limits = RequestLimits {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            timeout: Duration::from_millis(timeout_ms),
            retry_after_secs: 7,
            metrics: metrics.clone(),
        };
        let router = Router::new()
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(limits, guard));
        (router, metrics)
    }

    fn post_slow() -> Request {
        Request::post("/slow").body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn sheds_load_beyond_the_concurrency_limit() {
        let (router, metrics) = app(2, 5_000);
        let calls = (0..3).map(|_| router.clone().oneshot(post_slow()));
        let responses = futures::future::join_all(calls).await;
        let mut statuses: Vec<u16> = responses
            .iter()
            .map(|r| r.as_ref().unwrap().status().as_u16())
            .collect();
        statuses.sort();
        assert_eq!(statuses, [200, 200, 503]);
        let shed = responses
            .iter()
            .map(|r| r.as_ref().unwrap())
            .find(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
            .unwrap();
        assert_eq!(shed.headers()[header::RETRY_AFTER], "7");
        let text = metrics.render();
        assert!(
            text.contains(r#"tokentrail_collect_rejected_total{reason="overloaded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tokentrail_collect_requests_total{route="/slow",status="200"} 2"#),
            "{text}"
        );
        // Permits are given back: the next request is served.
        let again = router.oneshot(post_slow()).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn answers_503_with_retry_after_when_the_budget_is_spent() {
        let (router, metrics) = app(4, 50);
        let response = router.oneshot(post_slow()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert!(
            metrics
                .render()
                .contains(r#"tokentrail_collect_rejected_total{reason="timeout"} 1"#)
        );
    }
}
