//! The collection endpoints: authenticate, read the body within its limit, split it into
//! records, produce, answer.
//!
//! | outcome                                   | answer                    |
//! |-------------------------------------------|---------------------------|
//! | every record acknowledged by Kafka        | 200 `{"accepted": n}`     |
//! | wrong or missing token / signature        | 401, nothing produced     |
//! | body larger than `collect.max_body_bytes` | 413 (decoded size, too)   |
//! | `Content-Encoding` not gzip/deflate       | 415                       |
//! | not JSON, empty, or the wrong JSON shape  | 400 + dead-letter copy    |
//! | Kafka unavailable, buffer full, timeout   | 503 + `Retry-After`       |

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::auth::{self, SignatureHeaders, SigningKey};
use super::body::{self, BodyError, Record};
use super::encoding::{self, Coding, Refused};
use super::headers::{self, RECEIVED_AT, STREAMING_TOKEN, WEBHOOK_TOKEN};
use super::limits::{error_response, json_response, unavailable};
use super::produce::{PublishError, Publisher};
use crate::config::Secret;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    AuditStream,
    Webhook,
}

/// One configured endpoint.
#[derive(Debug)]
pub struct Destination {
    pub kind: DestinationKind,
    pub path: String,
    pub token: Secret,
    pub signing_key: Option<SigningKey>,
    pub topic: String,
}

/// What every route shares.
pub struct Shared {
    pub publisher: Publisher,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub retry_after_secs: u64,
    pub signature_tolerance_secs: u64,
}

#[derive(Clone)]
pub struct RouteState {
    pub destination: Arc<Destination>,
    pub shared: Arc<Shared>,
}

fn accepted(count: usize) -> Response {
    json_response(StatusCode::OK, serde_json::json!({ "accepted": count }))
}

/// The handler behind every configured path.
pub async fn receive(State(state): State<RouteState>, headers: HeaderMap, body: Body) -> Response {
    let dest = &state.destination;
    let shared = &state.shared;
    // Token first, before reading the body: unauthenticated clients cost no body buffering.
    let token_header = match dest.kind {
        DestinationKind::AuditStream => STREAMING_TOKEN,
        DestinationKind::Webhook => WEBHOOK_TOKEN,
    };
    let token_required = !dest.token.is_empty();
    if token_required
        && !auth::token_matches(&dest.token, headers.get(token_header).map(|v| v.as_bytes()))
    {
        return unauthorized(shared, dest, "token");
    }
    let received = match read_limited(body, shared.max_body_bytes).await {
        Ok(body) => body,
        Err((reason, response)) => return rejected(shared, reason, response),
    };
    let body = match decoded(&headers, &received, shared.max_body_bytes).await {
        Ok(body) => body,
        Err(refused) => {
            let response = error_response(refused.status, refused.kind, &refused.reason);
            return rejected(shared, refused.kind, response);
        }
    };
    if let Some(key) = &dest.signing_key {
        let signature = SignatureHeaders {
            id: headers::text(&headers, "webhook-id"),
            timestamp: headers::text(&headers, "webhook-timestamp"),
            signature: headers::text(&headers, "webhook-signature"),
        };
        let now = chrono::Utc::now().timestamp();
        if let Err(e) =
            auth::verify_signature(key, signature, &body, now, shared.signature_tolerance_secs)
        {
            tracing::debug!(route = %dest.path, "refused webhook signature: {e}");
            return unauthorized(shared, dest, "signature");
        }
    }

    let mut forwarded = headers::forwarded(&headers);
    let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    forwarded.push((RECEIVED_AT.to_string(), received_at.into_bytes()));

    let records: Result<Vec<Record>, BodyError> = match dest.kind {
        DestinationKind::AuditStream => body::audit_records(&body),
        DestinationKind::Webhook => body::webhook_record(&body).map(|r| vec![r]),
    };
    match records {
        Ok(records) => match shared
            .publisher
            .publish(&dest.topic, &records, &forwarded)
            .await
        {
            Ok(()) => accepted(records.len()),
            Err(e) => publish_failed(shared, dest, e),
        },
        Err(bad) => {
            // Answer 400 only once the copy is safe in the dead-letter topic; if Kafka cannot
            // take it, 503 makes GitLab send the body again.
            let kind = bad.kind.as_str();
            // The copy is the body as received, with its Content-Encoding, so it can be
            // replayed or inspected exactly.
            if let Some(coding) = headers.get(header::CONTENT_ENCODING) {
                forwarded.push(("Content-Encoding".into(), coding.as_bytes().to_vec()));
            }
            match shared
                .publisher
                .dead_letter(&dest.topic, kind, &bad.message, &received, &forwarded)
                .await
            {
                Ok(()) => rejected(
                    shared,
                    kind,
                    error_response(StatusCode::BAD_REQUEST, kind, &bad.message),
                ),
                Err(e) => publish_failed(shared, dest, e),
            }
        }
    }
}

/// The body without its `Content-Encoding` (encoding.rs), decoded off the async threads.
async fn decoded(headers: &HeaderMap, received: &Bytes, limit: usize) -> Result<Bytes, Refused> {
    let coding = encoding::coding(headers.get(header::CONTENT_ENCODING))?;
    if coding == Coding::Identity {
        return Ok(received.clone());
    }
    let received = received.clone();
    tokio::task::spawn_blocking(move || encoding::decode(coding, &received, limit))
        .await
        .unwrap_or_else(|e| {
            Err(Refused {
                status: StatusCode::BAD_REQUEST,
                kind: "undecodable_body",
                reason: format!("cannot decode the body: {e}"),
            })
        })
}

/// Reads the whole body, refusing it with 413 past `limit` (checked against Content-Length
/// when given, and while streaming when not).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, (&'static str, Response)> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err((
            "too_large",
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the body is larger than collect.max_body_bytes ({limit} bytes)"),
            ),
        )),
        Err(e) => Err((
            "unreadable_body",
            error_response(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                &format!("cannot read the request body: {e}"),
            ),
        )),
    }
}

fn unauthorized(shared: &Shared, dest: &Destination, what: &str) -> Response {
    shared
        .metrics
        .collect_unauthorized
        .with_label_values(&[&dest.path])
        .inc();
    // Never say which check failed or log what was presented: it could be a real secret
    // sent to the wrong path.
    tracing::debug!(route = %dest.path, check = what, "unauthorized request");
    error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong credentials",
    )
}

/// Counts a refused request by reason (`too_large`, `invalid_json`, `empty_payload`, ...).
fn rejected(shared: &Shared, reason: &str, response: Response) -> Response {
    shared
        .metrics
        .collect_rejected
        .with_label_values(&[reason])
        .inc();
    response
}

/// Logs a failed write with its detail (topic, librdkafka error) and answers with a generic
/// reason: the client learns what to do, not how the collector is wired.
fn publish_failed(shared: &Shared, dest: &Destination, error: PublishError) -> Response {
    let (reason, response) = public_answer(&error, shared.retry_after_secs);
    match reason {
        "too_large" => tracing::error!(route = %dest.path, "answering 413: {error}"),
        _ => tracing::warn!(route = %dest.path, "answering 503: {error}"),
    }
    rejected(shared, reason, response)
}

/// The answer to a failed write, and the `rejected_total` reason it counts under.
fn public_answer(error: &PublishError, retry_after_secs: u64) -> (&'static str, Response) {
    match error {
        PublishError::TooLarge { .. } => (
            "too_large",
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large_for_kafka",
                "a message of this request is larger than Kafka accepts",
            ),
        ),
        PublishError::Unavailable { .. } | PublishError::DeadLetter(_) => (
            "kafka_unavailable",
            unavailable(
                retry_after_secs,
                "kafka_unavailable",
                "the request could not be stored; retry later",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    #[tokio::test]
    async fn failed_writes_answer_without_internal_detail() {
        for (source, status) in [
            (RDKafkaErrorCode::MessageTimedOut, 503),
            (RDKafkaErrorCode::MessageSizeTooLarge, 413),
        ] {
            let error = super::super::produce::classify(
                "internal.topic.name",
                KafkaError::MessageProduction(source),
            );
            assert!(error.to_string().contains("internal.topic.name"));
            let (_, response) = public_answer(&error, 10);
            assert_eq!(response.status().as_u16(), status);
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            for detail in [
                "internal.topic",
                "MessageTimedOut",
                "MessageSizeTooLarge",
                "Kafka did not",
            ] {
                assert!(!body.contains(detail), "{body}");
            }
        }
    }
}
