//! Property test of the collector's body handling, as routes.rs chains it:
//! `Content-Encoding` (encoding.rs) → decoded size limit → records (body.rs). Arbitrary bytes,
//! JSON-like bodies, codings (valid, unknown, garbage), gzip/deflate of those and truncated
//! streams: nothing panics, and every input is either accepted as records cut from the
//! decoded body or refused with a 4xx status, an error kind and a reason.

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use proptest::prelude::*;
use std::io::Write;

use super::body::{self, Record};
use super::encoding;

const LIMIT: usize = 4096;

/// What the collector does with the body (before Kafka): records, or `(status, kind, reason)`.
fn judge(
    webhook: bool,
    coding: Option<&HeaderValue>,
    raw: &Bytes,
) -> Result<(Bytes, Vec<Record>), (StatusCode, String, String)> {
    let refused = |r: encoding::Refused| (r.status, r.kind.to_string(), r.reason);
    let coding = encoding::coding(coding).map_err(refused)?;
    let decoded = encoding::decode(coding, raw, LIMIT).map_err(refused)?;
    let records = if webhook {
        body::webhook_record(&decoded).map(|r| vec![r])
    } else {
        body::audit_records(&decoded)
    };
    records.map(|r| (decoded.clone(), r)).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            e.kind.as_str().to_string(),
            e.message,
        )
    })
}

fn compress(kind: u8, data: &[u8]) -> Vec<u8> {
    match kind {
        0 => {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

fn json_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        r#"[\[\]{}",:0-9a-z_ \n]{0,200}"#.prop_map(String::into_bytes),
        (0u64..10_000, "[a-z_]{1,12}").prop_map(|(id, k)| {
            format!(r#"{{"author_id": {id}, "{k}": "v", "user": {{"id": {id}}}}}"#).into_bytes()
        }),
        proptest::collection::vec((0u64..100, "[a-z]{1,6}"), 0..8).prop_map(|v| {
            let items: Vec<String> = v
                .iter()
                .map(|(id, k)| format!(r#"{{"author_id":{id},"{k}":1}}"#))
                .collect();
            format!("[{}]", items.join(",")).into_bytes()
        }),
        // Inflates past LIMIT.
        Just(vec![b' '; LIMIT * 3]),
    ]
}

/// (Content-Encoding header, body as sent).
fn request() -> impl Strategy<Value = (Option<String>, Vec<u8>)> {
    let header = prop_oneof![
        Just(None),
        Just(Some("identity".to_string())),
        Just(Some("gzip".to_string())),
        Just(Some("x-gzip".to_string())),
        Just(Some("deflate".to_string())),
        "[ -~]{0,16}".prop_map(Some),
    ];
    (
        header,
        json_like(),
        0u8..2,
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(header, data, kind, truncate, cut)| {
            let encoded = match header.as_deref() {
                Some("gzip" | "x-gzip") => Some(compress(0, &data)),
                Some("deflate") => Some(compress(kind, &data)),
                _ => None,
            };
            match encoded {
                Some(mut e) if truncate && !e.is_empty() => {
                    e.truncate(cut.index(e.len()));
                    (header, e)
                }
                Some(e) => (header, e),
                None => (header, data),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn every_body_is_accepted_or_refused_with_a_status_and_reason(
        (coding, raw) in request(),
        webhook in any::<bool>(),
    ) {
        let header = coding.as_deref().and_then(|c| HeaderValue::from_str(c).ok());
        let raw = Bytes::from(raw);
        match judge(webhook, header.as_ref(), &raw) {
            Ok((decoded, records)) => {
                prop_assert!(!records.is_empty());
                prop_assert!(decoded.len() <= LIMIT);
                for r in &records {
                    // Every record is bytes of the decoded body, never re-serialised.
                    let inside = decoded.as_ptr_range();
                    prop_assert!(inside.contains(&r.payload.as_ptr()) || r.payload.is_empty());
                    prop_assert!(!r.payload.is_empty());
                }
                if webhook {
                    prop_assert_eq!(records.len(), 1);
                }
            }
            Err((status, kind, reason)) => {
                prop_assert!(
                    [StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE,
                     StatusCode::UNSUPPORTED_MEDIA_TYPE].contains(&status),
                    "{status}"
                );
                prop_assert!(!kind.is_empty() && !reason.is_empty());
            }
        }
    }

    /// What was compressed comes back unchanged, whatever it is.
    #[test]
    fn compressed_bodies_decode_to_what_was_sent(data in json_like(), kind in 0u8..2) {
        let coding = if kind == 0 { encoding::Coding::Gzip } else { encoding::Coding::Deflate };
        let sent = Bytes::from(compress(kind, &data));
        match encoding::decode(coding, &sent, LIMIT) {
            Ok(decoded) => prop_assert_eq!(&decoded[..], &data[..]),
            Err(e) => {
                prop_assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
                prop_assert!(data.len() > LIMIT);
            }
        }
    }
}
