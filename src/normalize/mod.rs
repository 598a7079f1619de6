//! The normalizer: one Kafka message → typed events and per-element rejections.
//!
//! Pure: no I/O, no async, no logging, and no panics on any input (checked by the proptest
//! suite). Every element of a message ends up either as an event or as a rejection.

pub mod actor;
pub mod allowlist;
pub mod audit;
pub mod dedup;
pub mod fields;
pub mod json;
pub mod lifecycle;
pub mod meaning;
pub mod resource;
pub mod time;
pub mod webhook;

use json::Value;

use crate::model::{Event, InputMessage, Normalized, RejectKind, Rejection, SourceKind};
use fields::type_name;

pub use actor::classify_actor;

/// Input limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
}

impl Default for Limits {
    /// 25 MiB: GitLab's own streaming body cap (`REQUEST_BODY_SIZE_LIMIT`,
    /// docs/gitlab-events.md §1.1); anything larger did not come from GitLab.
    fn default() -> Self {
        Limits {
            max_message_bytes: 25 * 1024 * 1024,
        }
    }
}

pub fn normalize(msg: &InputMessage<'_>, limits: &Limits) -> Normalized {
    let arena = json::arena_for(msg.payload.map_or(0, <[u8]>::len));
    match parse(msg.payload, limits, &arena) {
        Ok((value, text)) => match msg.source {
            SourceKind::AuditStream => audit_stream(msg, &value),
            SourceKind::Webhook => webhook(msg, &value, text),
        },
        Err(rejection) => Normalized {
            events: Vec::new(),
            rejected: vec![rejection],
        },
    }
}

fn reject(index: Option<usize>, kind: RejectKind, message: String) -> Rejection {
    Rejection {
        index,
        kind,
        message,
    }
}

/// A document (or batched element) with a key repeated in one object: refused rather than
/// resolved by last-value-wins, the same rule as the collector's (`collect::body`).
fn duplicate_key(index: Option<usize>, dup: &json::DuplicateKey) -> Rejection {
    reject(index, RejectKind::DuplicateKey, dup.to_string())
}

/// Whole-message checks: presence, size, encoding, JSON syntax. Returns the value (in
/// `arena`) and the body text.
fn parse<'a>(
    payload: Option<&'a [u8]>,
    limits: &Limits,
    arena: &'a json::Arena,
) -> Result<(Value<'a>, &'a str), Rejection> {
    let bytes = payload.unwrap_or_default();
    if bytes.len() > limits.max_message_bytes {
        return Err(reject(
            None,
            RejectKind::Oversize,
            format!(
                "payload is {} bytes, the limit is {}",
                bytes.len(),
                limits.max_message_bytes
            ),
        ));
    }
    // A UTF-8 byte-order mark is not JSON but is harmless; some HTTP relays add one.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(reject(
            None,
            RejectKind::EmptyPayload,
            "payload is empty".to_owned(),
        ));
    }
    let invalid =
        |e: serde_json::Error| reject(None, RejectKind::InvalidJson, format!("invalid JSON: {e}"));
    // The whole body is checked as UTF-8 once, so the parser does not check string by
    // string (that was 8 % of the whole path in the profile, benches/README.md).
    match std::str::from_utf8(bytes) {
        Ok(text) => json::from_str(text, arena)
            .map(|v| (v, text))
            .map_err(invalid),
        // Not UTF-8: the byte parser's error says where, in the words it always used.
        Err(utf8) => match json::from_slice(bytes, arena) {
            Err(e) => Err(invalid(e)),
            // JSON outside strings is ASCII and the parser checks every string, so this is
            // not reached; answered anyway rather than assumed.
            Ok(_) => Err(reject(
                None,
                RejectKind::InvalidJson,
                format!("invalid JSON: {utf8}"),
            )),
        },
    }
}

/// docs/gitlab-events.md §1.1: one object per request, or a JSON array in batched mode.
fn audit_stream(msg: &InputMessage<'_>, value: &Value<'_>) -> Normalized {
    // An array's elements are checked one by one below, so one bad element keeps the rest.
    if let Some(rejected) = reject_duplicate_keys(value) {
        return rejected;
    }
    let mut out = Normalized::default();
    match value {
        Value::Object(obj) => {
            match audit::audit_event(obj, || msg.header("X-Gitlab-Audit-Event-Type")) {
                Ok(ev) => out.events.push(Event::Audit(ev)),
                Err(e) => out.rejected.push(reject(None, e.kind, e.to_string())),
            }
        }
        Value::Array(items) if items.is_empty() => out.rejected.push(reject(
            None,
            RejectKind::EmptyPayload,
            "batched array has no elements".to_owned(),
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(obj) = item.as_object() else {
                    out.rejected.push(reject(
                        Some(i),
                        RejectKind::NotAnObject,
                        format!(
                            "array element: expected a JSON object, got {}",
                            type_name(item)
                        ),
                    ));
                    continue;
                };
                if let Some(dup) = item.first_duplicate_key() {
                    out.rejected.push(duplicate_key(Some(i), &dup));
                    continue;
                }
                // No header in batched mode (docs/gitlab-events.md §1.1), and it could not describe
                // every element anyway.
                match audit::audit_event(obj, || None) {
                    Ok(ev) => out.events.push(Event::Audit(ev)),
                    Err(e) => out.rejected.push(reject(Some(i), e.kind, e.to_string())),
                }
            }
        }
        other => out.rejected.push(reject(
            None,
            RejectKind::NotAnObject,
            format!(
                "expected a JSON object or an array of objects, got {}",
                type_name(other)
            ),
        )),
    }
    out
}

/// A whole-object body with a key repeated anywhere in it is refused as one rejection.
fn reject_duplicate_keys(value: &Value<'_>) -> Option<Normalized> {
    let dup = value
        .as_object()
        .and_then(|_| value.first_duplicate_key())?;
    Some(Normalized {
        events: Vec::new(),
        rejected: vec![duplicate_key(None, &dup)],
    })
}

fn webhook(msg: &InputMessage<'_>, value: &Value<'_>, text: &str) -> Normalized {
    if let Some(rejected) = reject_duplicate_keys(value) {
        return rejected;
    }
    let mut out = Normalized::default();
    match value {
        Value::Object(obj) => {
            let [event, idempotency_key] = msg.headers_named(["X-Gitlab-Event", "Idempotency-Key"]);
            let headers = webhook::WebhookHeaders {
                event,
                idempotency_key,
                kafka_timestamp_ms: msg.timestamp_ms,
            };
            let ev = webhook::webhook_event(value, obj, text.to_owned(), &headers);
            out.events.push(Event::Webhook(ev));
        }
        other => out.rejected.push(reject(
            None,
            RejectKind::NotAnObject,
            format!("expected a JSON object, got {}", type_name(other)),
        )),
    }
    out
}
