//! Request authentication: GitLab's static shared tokens, compared in constant time, and the
//! Standard-Webhooks HMAC-SHA256 signature of signed webhooks (docs/gitlab-events.md §1.1, §4.1).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// True when `presented` equals `expected`. Both sides are hashed first so the comparison
/// takes the same time whatever the presented length is (a plain constant-time compare still
/// leaks the length of the expected token).
pub fn token_matches(expected: &Secret, presented: Option<&[u8]>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(expected.expose().as_bytes());
    let b = Sha256::digest(presented);
    a.ct_eq(&b).into()
}

/// The signing key of a Standard-Webhooks secret: base64, optionally after `whsec_`, decoded
/// as the spec's reference libraries do (config validation refuses other values); a value that
/// does not decode is used as its raw bytes (tests only).
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn from_secret(secret: &Secret) -> Self {
        let text = secret.expose();
        let b64 = text.strip_prefix("whsec_").unwrap_or(text);
        let key = BASE64
            .decode(b64)
            .ok()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| text.as_bytes().to_vec());
        SigningKey(key)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Why a signature was refused. The messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a Unix timestamp in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {skew_secs} s away from now (tolerance {tolerance_secs} s)")]
    OutsideTolerance { skew_secs: i64, tolerance_secs: u64 },
    #[error("no v1 signature in webhook-signature matches the body")]
    Mismatch,
}

/// The three Standard-Webhooks headers of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`. The header may
/// carry several space-separated `v1,<base64>` signatures (key rotation); one match suffices.
pub fn verify_signature(
    key: &SigningKey,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now_unix_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let id = headers
        .id
        .ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Replays of an old signed request are refused outside the tolerance window.
    let skew_secs = now_unix_secs.saturating_sub(sent_at);
    if skew_secs.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::OutsideTolerance {
            skew_secs,
            tolerance_secs,
        });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).map_err(|_| SignatureError::Mismatch)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matched = signatures
        .split_ascii_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|sig| bool::from(sig.as_slice().ct_eq(expected.as_slice())));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs like GitLab does; used by tests and the load generator.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC accepts any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let expected = Secret::new("s3cret");
        assert!(token_matches(&expected, Some(b"s3cret")));
        assert!(!token_matches(&expected, Some(b"s3cre")));
        assert!(!token_matches(&expected, Some(b"s3cret ")));
        assert!(!token_matches(&expected, Some(b"S3CRET")));
        assert!(!token_matches(&expected, Some(b"")));
        assert!(!token_matches(&expected, None));
        // An unset token never authenticates anything, not even an empty header.
        assert!(!token_matches(&Secret::default(), Some(b"")));
    }

    /// The example from the Standard-Webhooks specification's reference implementations.
    #[test]
    fn verifies_the_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let body = br#"{"test": 2432232314}"#;
        let headers = SignatureHeaders {
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            timestamp: Some("1614265330"),
            signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        };
        assert_eq!(
            verify_signature(&key, headers, body, 1614265330, 300),
            Ok(())
        );
        // The same secret without the prefix is the same key (as in the spec's libraries).
        let bare = SigningKey::from_secret(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!(
            verify_signature(&bare, headers, body, 1614265330, 300),
            Ok(())
        );
        // One byte of the body changed: refused.
        let err = verify_signature(&key, headers, br#"{"test": 2432232315}"#, 1614265330, 300);
        assert_eq!(err, Err(SignatureError::Mismatch));
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    #[test]
    fn signature_round_trip_with_rotation_and_tolerance() {
        let key = SigningKey::from_secret(&Secret::new("plain-signing-token"));
        let other = SigningKey::from_secret(&Secret::new("old-token"));
        let body = b"{\"object_kind\":\"build\"}";
        let good = sign(&key, "idem-1", 1_000, body);
        let stale = sign(&other, "idem-1", 1_000, body);
        let both = format!("{stale} {good}");
        let h = headers("idem-1", "1000", &both);
        assert_eq!(verify_signature(&key, h, body, 1_000, 300), Ok(()));
        assert_eq!(
            verify_signature(&key, headers("idem-1", "1000", &stale), body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_signature(&key, h, body, 1_300, 300), Ok(()));
        assert!(matches!(
            verify_signature(&key, h, body, 1_301, 300),
            Err(SignatureError::OutsideTolerance { skew_secs: 301, .. })
        ));
        assert!(matches!(
            verify_signature(&key, h, body, 699, 300),
            Err(SignatureError::OutsideTolerance {
                skew_secs: -301,
                ..
            })
        ));
        // The id is signed: the same signature under another id is refused.
        assert_eq!(
            verify_signature(&key, headers("idem-2", "1000", &both), body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let key = SigningKey::from_secret(&Secret::new("k"));
        let full = SignatureHeaders {
            id: Some("i"),
            timestamp: Some("10"),
            signature: Some("v1,AAAA"),
        };
        let mut h = full;
        h.signature = None;
        assert_eq!(
            verify_signature(&key, h, b"", 10, 5),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
        let mut h = full;
        h.timestamp = Some("yesterday");
        assert_eq!(
            verify_signature(&key, h, b"", 10, 5),
            Err(SignatureError::BadTimestamp)
        );
        let mut h = full;
        h.signature = Some("v2,AAAA not-base64 v1,%%%");
        assert_eq!(
            verify_signature(&key, h, b"", 10, 5),
            Err(SignatureError::Mismatch)
        );
    }
}
