//! Which HTTP headers travel to Kafka, under which names.
//!
//! Kept: every `X-Gitlab-*` header (event type, instance, UUIDs), `Idempotency-Key` (the
//! webhook dedup key), the Standard-Webhooks `webhook-*` headers, `Content-Type` and
//! `User-Agent` (GitLab's version). Never kept: the shared-secret headers, which would put the
//! credential into every Kafka consumer's hands.

use axum::http::HeaderMap;

/// Header GitLab sends the streaming destination's verification token in
/// (docs/gitlab-events.md §1.1).
pub const STREAMING_TOKEN: &str = "x-gitlab-event-streaming-token";
/// Header GitLab sends a webhook's secret token in (docs/gitlab-events.md §4.1).
pub const WEBHOOK_TOKEN: &str = "x-gitlab-token";
/// Added to every produced message: when the collector received the request (RFC 3339, ms).
pub const RECEIVED_AT: &str = "tokentrail-received-at";
/// Added to each message split from a batched array: `index/count` (0-based index).
pub const BATCH_ELEMENT: &str = "tokentrail-batch-element";

/// Header value as text, when it is valid visible ASCII.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_forwarded(lower_name: &str) -> bool {
    if crate::model::is_secret_header(lower_name) {
        return false;
    }
    lower_name.starts_with("x-gitlab-")
        || lower_name.starts_with("webhook-")
        || matches!(
            lower_name,
            "idempotency-key" | "content-type" | "user-agent"
        )
}

/// `x-gitlab-audit-event-type` → `X-Gitlab-Audit-Event-Type`, the spelling GitLab documents
/// (HTTP lowercases names on the wire; the consumer matches case-insensitively anyway).
/// Standard-Webhooks headers stay lowercase, as that specification spells them.
fn display_name(lower_name: &str) -> String {
    if lower_name.starts_with("webhook-") {
        return lower_name.to_string();
    }
    lower_name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The request headers to keep, as `(name, value)` pairs, in request order.
pub fn forwarded(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| is_forwarded(name.as_str()))
        .map(|(name, value)| (display_name(name.as_str()), value.as_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keeps_gitlab_headers_and_drops_secrets() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("X-Gitlab-Event-Streaming-Token", "secret-1"),
            ("X-Gitlab-Token", "secret-2"),
            ("Authorization", "Bearer secret-3"),
            ("X-Gitlab-Audit-Event-Type", "repository_git_operation"),
            ("X-Gitlab-Instance", "https://gitlab.example.com"),
            ("Idempotency-Key", "idem-1"),
            ("webhook-id", "idem-1"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("User-Agent", "GitLab/18.5.1"),
            ("Accept", "*/*"),
            ("Cookie", "a=b"),
        ] {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let kept = forwarded(&h);
        let names: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Gitlab-Audit-Event-Type",
                "X-Gitlab-Instance",
                "Idempotency-Key",
                "webhook-id",
                "Content-Type",
                "User-Agent"
            ]
        );
        let all: String = kept
            .iter()
            .map(|(k, v)| format!("{k}={};", String::from_utf8_lossy(v)))
            .collect();
        assert!(
            all.contains("X-Gitlab-Audit-Event-Type=repository_git_operation;"),
            "{all}"
        );
        assert!(!all.contains("secret"), "{all}");
    }
}
