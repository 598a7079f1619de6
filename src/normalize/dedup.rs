//! Dedup keys. The store deduplicates on these exact strings, so their format is fixed.
//!
//! docs/gitlab-events.md §1.1 ("`id` caveat"): stream-only audit events get a fresh random UUID per
//! dispatch, so their `id` cannot identify them; we hash their content instead. Saved
//! events carry their database id. §4.1: webhooks retry with the same
//! `Idempotency-Key` but a new `X-Gitlab-Webhook-UUID`, so only the former is used.

use sha2::{Digest, Sha256};

use super::json::{Map, Value, canonical_object, write_object, write_value};

/// How an audit `id` field identifies the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditId {
    /// A database id: stable across re-deliveries.
    Saved(String),
    /// Missing, a UUID, or any other text we cannot trust to be stable.
    StreamOnly,
}

/// Classifies an already type-checked `id` (integer or string).
pub fn classify_audit_id(id: Option<&Value<'_>>) -> AuditId {
    match id {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => AuditId::Saved(n.to_string()),
        Some(Value::String(s)) => {
            let s = s.trim();
            if is_uuid_like(s) {
                AuditId::StreamOnly
            } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                // "552211" and 552211 must give the same key.
                let digits = s.trim_start_matches('0');
                AuditId::Saved(if digits.is_empty() { "0" } else { digits }.to_owned())
            } else {
                // Any other text: GitLab only sends DB ids or UUIDs, so this is unknown; a
                // content hash is the safe key when we cannot tell whether it is stable.
                AuditId::StreamOnly
            }
        }
        _ => AuditId::StreamOnly,
    }
}

/// Whether `s` looks like a UUID (hyphenated 8-4-4-4-12 or 32 bare hex digits).
pub fn is_uuid_like(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        // One pass without early exit: every audit event with a stream-only id is checked.
        36 => b.iter().enumerate().fold(true, |ok, (i, &c)| {
            ok & if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        }),
        _ => false,
    }
}

/// `saved:<id>` or `content:<sha256 of the object without "id">`.
pub fn audit_key(obj: &Map<'_>, id: &AuditId) -> String {
    audit_key_and_details(obj, id).0
}

/// [`audit_key`] and [`canonical_object`] of the object's `details` member (`"{}"` unless it
/// is an object). For a stream-only event the canonical text of `details` is part of the
/// hashed text, so it is cut out of it instead of being written a second time.
pub fn audit_key_and_details(obj: &Map<'_>, id: &AuditId) -> (String, String) {
    let details = obj.get("details").and_then(Value::as_object);
    match id {
        AuditId::Saved(id) => (
            format!("saved:{id}"),
            details.map_or_else(|| "{}".to_owned(), canonical_object),
        ),
        AuditId::StreamOnly => {
            let mut buf = String::with_capacity(1024);
            let span = write_object(&mut buf, obj, Some("id"), Some("details"));
            let details_json = match (details, span) {
                (Some(_), Some(span)) => buf[span].to_owned(),
                _ => "{}".to_owned(),
            };
            (content_key(buf.as_bytes()), details_json)
        }
    }
}

/// `idem:<Idempotency-Key>` or `content:<sha256 of the canonical body>`.
pub fn webhook_key(idempotency_key: Option<&str>, body: &Value<'_>) -> String {
    match idempotency_key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) => format!("idem:{key}"),
        None => {
            let mut buf = String::with_capacity(4096);
            write_value(&mut buf, body);
            content_key(buf.as_bytes())
        }
    }
}

fn content_key(canonical: &[u8]) -> String {
    let mut key = String::with_capacity("content:".len() + 64);
    key.push_str("content:");
    crate::hashing::push_hex(&mut key, &Sha256::digest(canonical));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::json::{self, canonical_json, json};

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v = json!({"b": [1, {"z": null, "a": "é\"\n"}], "a": 1.5, "c": {"y": true, "x": -3}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":1.5,"b":[1,{"a":"é\"\n","z":null}],"c":{"x":-3,"y":true}}"#
        );
    }

    /// The brief's definition of "canonical" is serde_json's default (sorted) `Map`. Our
    /// writer sorts explicitly either way, but if this fails some dependency enabled
    /// serde_json's `preserve_order`, and `details_json`/`payload_json` consumers that
    /// re-serialize with serde_json would no longer match.
    #[test]
    fn serde_json_preserve_order_is_off() {
        let v: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":2,"b":1}"#);
    }

    /// Document order and repeated keys do not change the canonical text (serde_json's map
    /// keeps a repeated key's last value).
    #[test]
    fn canonical_text_ignores_member_order_and_keeps_the_last_repeat() {
        let a = json::from_str_leaking(r#"{"z":1,"a":{"y":2,"x":[{"q":1,"p":2}]},"z":3}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":[{"p":2,"q":1}],"y":2},"z":3}"#
        );
        let direct = serde_json::from_str::<serde_json::Value>(r#"{"z":1,"z":3,"a":0}"#).unwrap();
        let ours = json::from_str_leaking(r#"{"z":1,"z":3,"a":0}"#).unwrap();
        assert_eq!(canonical_json(&ours), direct.to_string());
    }

    /// The `details` text cut out of the hashed text equals writing it on its own.
    #[test]
    fn details_cut_from_the_hashed_text_match_their_own_canonical_text() {
        let text = r#"{"id":"5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2","details":{"b":[1,{"d":null,"c":"é"}],"a":1.5},"author_id":1}"#;
        let v = json::from_str_leaking(text).unwrap();
        let obj = v.as_object().unwrap();
        let id = classify_audit_id(obj.get("id"));
        let (key, details) = audit_key_and_details(obj, &id);
        assert_eq!(
            details,
            canonical_object(obj.get("details").unwrap().as_object().unwrap())
        );
        assert_eq!(details, r#"{"a":1.5,"b":[1,{"c":"é","d":null}]}"#);
        assert_eq!(key, audit_key(obj, &id));
        let without_id = r#"{"author_id":1,"details":{"a":1.5,"b":[1,{"c":"é","d":null}]}}"#;
        assert_eq!(
            key,
            format!(
                "content:{}",
                hex::encode(Sha256::digest(without_id.as_bytes()))
            )
        );
        // details null or not an object: "{}", as before.
        for text in [r#"{"details":null}"#, r#"{"details":[1]}"#, r#"{}"#] {
            let v = json::from_str_leaking(text).unwrap();
            let (_, details) = audit_key_and_details(v.as_object().unwrap(), &AuditId::StreamOnly);
            assert_eq!(details, "{}", "{text}");
        }
    }

    #[test]
    fn uuid_detection() {
        assert!(is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2"));
        assert!(is_uuid_like("5B0C9A7E2F414C8E9B2D61F0A3E4D7C2"));
        assert!(!is_uuid_like("552211"));
        assert!(!is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7cz"));
        assert!(!is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d-61f0a-e4d7c2"));
        assert!(!is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d+61f0a3e4d7c2"));
    }

    #[test]
    fn numeric_ids_are_saved_with_one_spelling() {
        assert_eq!(
            classify_audit_id(Some(&json!(552211))),
            AuditId::Saved("552211".into())
        );
        assert_eq!(
            classify_audit_id(Some(&json!("552211"))),
            AuditId::Saved("552211".into())
        );
        assert_eq!(
            classify_audit_id(Some(&json!("00042"))),
            AuditId::Saved("42".into())
        );
        assert_eq!(classify_audit_id(None), AuditId::StreamOnly);
        assert_eq!(
            classify_audit_id(Some(&json!("5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2"))),
            AuditId::StreamOnly
        );
    }
}
