//! From a request body to the Kafka records it becomes, and their keys.
//!
//! Audit streaming bodies are one JSON object, or (batched mode, docs/gitlab-events.md §1.1) a JSON
//! array of objects. An array is split into **one message per element**, each keyed by its own
//! `author_id`: Kafka then keeps every author's events on one partition, in order, which the
//! correlator needs (a job-token authentication and the resource event it led to share the author).
//! One array message would put the whole batch on the partition of one key and mix authors. A
//! single object is forwarded byte for byte; elements are forwarded as the exact bytes GitLab sent
//! for them (`RawValue`), so content-hash dedup keys see the same text.
//!
//! Webhook bodies are one JSON object, forwarded unchanged, keyed by the triggering user's id
//! (`user.id`, else `user_id`), else the project id: with the same partition count as the audit
//! topic, a user's webhooks and audit events land on equal partition numbers, which Kafka's
//! range assignor gives to one consumer.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::model::RejectKind;
use crate::normalize::json;

/// One Kafka message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Bytes,
    /// `(index, count)` when the record is one element of a batched array.
    pub batch_position: Option<(usize, usize)>,
}

/// Why a body cannot be forwarded (answered 400, copied to the dead-letter topic).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct BodyError {
    pub kind: RejectKind,
    pub message: String,
}

fn body_error(kind: RejectKind, message: impl Into<String>) -> BodyError {
    BodyError {
        kind,
        message: message.into(),
    }
}

/// Strips what is not JSON but harmless (a UTF-8 byte-order mark, surrounding whitespace) and
/// refuses an empty body.
fn trimmed(body: &[u8]) -> Result<&[u8], BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(body_error(RejectKind::EmptyPayload, "body is empty"));
    };
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(start);
    Ok(&body[start..=end])
}

fn invalid_json(e: serde_json::Error) -> BodyError {
    body_error(RejectKind::InvalidJson, format!("invalid JSON: {e}"))
}

/// Refuses a body with a key repeated inside one object, at any depth: the normalizer's rule
/// and detection ([`json::Value::first_duplicate_key`]), so a body the collector accepts is
/// never dead-lettered for it later. Invalid JSON passes here and is refused by the caller's
/// own parse, with serde_json's message.
fn refuse_duplicate_keys(text: &[u8]) -> Result<(), BodyError> {
    let arena = json::arena_for(text.len());
    match json::from_slice(text, &arena).map(|v| v.first_duplicate_key()) {
        Ok(Some(dup)) => Err(body_error(RejectKind::DuplicateKey, dup.to_string())),
        _ => Ok(()),
    }
}

/// The fields that decide a key; everything else in the object is skipped by serde.
#[derive(Deserialize)]
struct AuditKeyFields {
    author_id: Option<Value>,
}

#[derive(Deserialize)]
struct WebhookKeyFields {
    user: Option<WebhookUser>,
    user_id: Option<Value>,
    project_id: Option<Value>,
    project: Option<WebhookProject>,
}

#[derive(Deserialize)]
struct WebhookUser {
    id: Option<Value>,
}

#[derive(Deserialize)]
struct WebhookProject {
    id: Option<Value>,
}

/// `4821` and `"4821"` give the same key; anything that is not a number or a non-empty string
/// gives none (the record is then spread by the partitioner).
fn id_key(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// An audit streaming body → one record (object) or one record per element (array).
pub fn audit_records(body: &Bytes) -> Result<Vec<Record>, BodyError> {
    let text = trimmed(body)?;
    match text.first() {
        Some(b'{') => {
            refuse_duplicate_keys(text)?;
            let fields: AuditKeyFields = serde_json::from_slice(text).map_err(invalid_json)?;
            Ok(vec![Record {
                key: id_key(fields.author_id.as_ref()),
                payload: body.slice_ref(text),
                batch_position: None,
            }])
        }
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_slice(text).map_err(invalid_json)?;
            if elements.is_empty() {
                return Err(body_error(
                    RejectKind::EmptyPayload,
                    "batched array has no elements",
                ));
            }
            let count = elements.len();
            let records = elements
                .into_iter()
                .enumerate()
                .map(|(index, raw)| Record {
                    // A non-object element is forwarded unkeyed: the consumer dead-letters that
                    // one element (with its index) and keeps the others of the batch. So is an
                    // element with a duplicate key (the consumer's `duplicate_key`).
                    key: serde_json::from_str::<AuditKeyFields>(raw.get())
                        .ok()
                        .and_then(|f| id_key(f.author_id.as_ref())),
                    payload: body.slice_ref(raw.get().as_bytes()),
                    batch_position: Some((index, count)),
                })
                .collect();
            Ok(records)
        }
        _ => Err(not_object_or_array(text)),
    }
}

/// A webhook body → one record.
pub fn webhook_record(body: &Bytes) -> Result<Record, BodyError> {
    let text = trimmed(body)?;
    if text.first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<&RawValue>(text) {
            Ok(_) => body_error(RejectKind::NotAnObject, "expected a JSON object"),
            Err(e) => invalid_json(e),
        });
    }
    refuse_duplicate_keys(text)?;
    let fields: WebhookKeyFields = serde_json::from_slice(text).map_err(invalid_json)?;
    let key = id_key(fields.user.as_ref().and_then(|u| u.id.as_ref()))
        .or_else(|| id_key(fields.user_id.as_ref()))
        .or_else(|| id_key(fields.project_id.as_ref()))
        .or_else(|| id_key(fields.project.as_ref().and_then(|p| p.id.as_ref())));
    Ok(Record {
        key,
        payload: body.slice_ref(text),
        batch_position: None,
    })
}

fn not_object_or_array(text: &[u8]) -> BodyError {
    match serde_json::from_slice::<&RawValue>(text) {
        Ok(_) => body_error(
            RejectKind::NotAnObject,
            "expected a JSON object or an array of objects",
        ),
        Err(e) => invalid_json(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(text: &str) -> Result<Vec<Record>, BodyError> {
        audit_records(&Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn object_is_forwarded_byte_for_byte_keyed_by_author() {
        let text = "\u{feff}  {\"author_id\": 4821, \"details\": {\"x\": [1, 2]}}\n";
        let records = audit(text).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key.as_deref(), Some("4821"));
        assert_eq!(
            &records[0].payload[..],
            br#"{"author_id": 4821, "details": {"x": [1, 2]}}"#
        );
        assert_eq!(records[0].batch_position, None);
    }

    #[test]
    fn array_is_split_per_element_with_each_author_as_key() {
        let text = r#"[{"author_id":1,"id":"a"}, {"author_id":"2","id":"b"} ,{"id":"c"}]"#;
        let records = audit(text).unwrap();
        let keys: Vec<_> = records.iter().map(|r| r.key.as_deref()).collect();
        assert_eq!(keys, [Some("1"), Some("2"), None]);
        assert_eq!(&records[1].payload[..], br#"{"author_id":"2","id":"b"}"#);
        assert_eq!(records[2].batch_position, Some((2, 3)));
        // A bad element does not sink its batch: it travels alone and unkeyed.
        let records = audit(r#"[{"author_id":1}, 7]"#).unwrap();
        assert_eq!(
            (records[1].key.as_deref(), &records[1].payload[..]),
            (None, &b"7"[..])
        );
    }

    #[test]
    fn unusable_bodies_say_why() {
        let kind = |t: &str| audit(t).unwrap_err().kind;
        assert_eq!(kind("{\"author_id\": 1,"), RejectKind::InvalidJson);
        assert_eq!(kind("author_id=1&x=2"), RejectKind::InvalidJson);
        assert_eq!(kind("[{\"a\":1}] trailing"), RejectKind::InvalidJson);
        assert_eq!(kind(" \n "), RejectKind::EmptyPayload);
        assert_eq!(kind("[]"), RejectKind::EmptyPayload);
        assert_eq!(kind("42"), RejectKind::NotAnObject);
        let err = audit("{\"a\": tru}").unwrap_err();
        assert!(err.message.contains("line 1"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_normalizers_rule() {
        let err = audit(r#"{"author_id": 1, "event_type": "x", "author_id": 666}"#).unwrap_err();
        assert_eq!(err.kind, RejectKind::DuplicateKey);
        assert_eq!(err.message, r#"duplicate key "author_id""#);
        // Keys the collector does not read count too: the normalizer reads them.
        let err = audit(r#"{"details": {"entity_path": "a", "entity_path": "b"}}"#).unwrap_err();
        assert_eq!(err.message, r#"duplicate key "entity_path" in details"#);
        let hook = br#"{"object_kind": "build", "user": {"id": 1, "id": 2}}"#;
        let err = webhook_record(&Bytes::from_static(hook)).unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (RejectKind::DuplicateKey, r#"duplicate key "id" in user"#)
        );
        // In a batch only that element is bad: it travels alone and the consumer
        // dead-letters it, as it does a non-object element.
        let records = audit(r#"[{"author_id": 1}, {"id": "a", "id": "b"}]"#).unwrap();
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn webhook_key_prefers_user_then_project() {
        let rec = |t: &str| {
            webhook_record(&Bytes::copy_from_slice(t.as_bytes()))
                .unwrap()
                .key
        };
        assert_eq!(
            rec(r#"{"user":{"id":7},"project_id":9}"#).as_deref(),
            Some("7")
        );
        assert_eq!(rec(r#"{"user":null,"project_id":9}"#).as_deref(), Some("9"));
        assert_eq!(rec(r#"{"project":{"id":"11"}}"#).as_deref(), Some("11"));
        assert_eq!(rec(r#"{"object_kind":"push"}"#), None);
        let err = webhook_record(&Bytes::from_static(b"[{}]")).unwrap_err();
        assert_eq!(err.kind, RejectKind::NotAnObject);
        let err = webhook_record(&Bytes::from_static(b"{nope")).unwrap_err();
        assert_eq!(err.kind, RejectKind::InvalidJson);
    }
}
