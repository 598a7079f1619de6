//! Dedup keys. The store deduplicates on these exact strings, so their format is fixed.
//!
//! Reference §1.1 ("`id` caveat"): stream-only audit events get a fresh random UUID per
//! dispatch, so their `id` cannot identify them; we hash their content instead. Saved
//! events carry their database id. Reference §4.1: webhooks retry with the same
//! `Idempotency-Key` but a new `X-Gitlab-Webhook-UUID`, so only the former is used.

use std::io::Write;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How an audit `id` field identifies the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditId {
    /// A database id: stable across re-deliveries.
    Saved(String),
    /// Missing, a UUID, or any other text we cannot trust to be stable.
    StreamOnly,
}

/// Classifies an already type-checked `id` (integer or string).
pub fn classify_audit_id(id: Option<&Value>) -> AuditId {
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
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// `saved:<id>` or `content:<sha256 of the object without "id">`.
pub fn audit_key(obj: &Map<String, Value>, id: &AuditId) -> String {
    match id {
        AuditId::Saved(id) => format!("saved:{id}"),
        AuditId::StreamOnly => content_key(|out| write_object(out, obj, Some("id"))),
    }
}

/// `idem:<Idempotency-Key>` or `content:<sha256 of the canonical body>`.
pub fn webhook_key(idempotency_key: Option<&str>, body: &Value) -> String {
    match idempotency_key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) => format!("idem:{key}"),
        None => content_key(|out| write_value(out, body)),
    }
}

fn content_key(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut buf = Vec::with_capacity(1024);
    write(&mut buf);
    format!("content:{}", hex::encode(Sha256::digest(&buf)))
}

/// Canonical compact JSON text: object keys sorted bytewise at every level.
///
/// With serde_json's default `BTreeMap`-backed `Map` this equals `serde_json::to_string`;
/// writing it out explicitly keeps keys identical even if some crate in the final build
/// turns on serde_json's `preserve_order` feature (features are unified per build).
pub fn canonical_json(v: &Value) -> String {
    let mut buf = Vec::new();
    write_value(&mut buf, v);
    // Only serde_json output and ASCII punctuation were written: valid UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// [`canonical_json`] of an object, without wrapping (and cloning) it into a `Value`.
pub fn canonical_object(map: &Map<String, Value>) -> String {
    let mut buf = Vec::new();
    write_object(&mut buf, map, None);
    String::from_utf8(buf).unwrap_or_default()
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => write_object(out, map, None),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own escaping and number formatting. Writing into a Vec
        // cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>, skip: Option<&str>) {
    let mut entries: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        let _ = out.write_all(b":");
        write_value(out, v);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let v: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn uuid_detection() {
        assert!(is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2"));
        assert!(is_uuid_like("5B0C9A7E2F414C8E9B2D61F0A3E4D7C2"));
        assert!(!is_uuid_like("552211"));
        assert!(!is_uuid_like("5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7cz"));
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
