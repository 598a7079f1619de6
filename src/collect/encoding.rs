//! `Content-Encoding` of request bodies: `gzip` (also `x-gzip`) and `deflate` (zlib, or raw
//! deflate as some clients send it) are decoded; `identity` or no header is the body as is;
//! anything else is 415. `collect.max_body_bytes` applies to the decoded size too, so a small
//! compressed body that inflates past it (a zip bomb) gets 413 after at most
//! `max_body_bytes + 1` decoded bytes.

use std::io::Read;

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// Why a body cannot be decoded: answered with `status` and `{"error": kind, "reason": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
}

/// The body's coding from its `Content-Encoding` header (one coding; case-insensitive).
pub fn coding(header: Option<&HeaderValue>) -> Result<Coding, Refused> {
    let Some(value) = header else {
        return Ok(Coding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        _ => Err(Refused {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: "unsupported_encoding",
            reason: "Content-Encoding must be gzip, deflate or identity".into(),
        }),
    }
}

/// Decodes `body` (already at most `limit` bytes) into at most `limit` bytes.
pub fn decode(coding: Coding, body: &Bytes, limit: usize) -> Result<Bytes, Refused> {
    match coding {
        Coding::Identity => Ok(body.clone()),
        Coding::Gzip => inflate(MultiGzDecoder::new(&body[..]), limit, "gzip"),
        Coding::Deflate => inflate(ZlibDecoder::new(&body[..]), limit, "deflate").or_else(|e| {
            // Raw deflate without the zlib wrapper; if that fails too, the zlib error stands.
            match inflate(DeflateDecoder::new(&body[..]), limit, "deflate") {
                Ok(decoded) => Ok(decoded),
                Err(raw) if raw.status == StatusCode::PAYLOAD_TOO_LARGE => Err(raw),
                Err(_) => Err(e),
            }
        }),
    }
}

fn inflate(reader: impl Read, limit: usize, name: &str) -> Result<Bytes, Refused> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refused {
            status: StatusCode::BAD_REQUEST,
            kind: "undecodable_body",
            reason: format!("the body is not valid {name}: {e}"),
        })?;
    if read > limit {
        return Err(Refused {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "too_large",
            reason: format!(
                "the decoded body is larger than collect.max_body_bytes ({limit} bytes)"
            ),
        });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn header(v: &str) -> Option<HeaderValue> {
        Some(HeaderValue::from_str(v).unwrap())
    }

    #[test]
    fn gzip_and_both_deflates_decode() {
        let text = br#"{"author_id": 1}"#;
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(text).unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(text).unwrap();
        for (name, body) in [
            ("gzip", gzip(text)),
            ("X-Gzip", gzip(text)),
            ("deflate", z.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
            ("identity", text.to_vec()),
        ] {
            let c = coding(header(name).as_ref()).unwrap();
            assert_eq!(
                &decode(c, &Bytes::from(body), 1024).unwrap()[..],
                text,
                "{name}"
            );
        }
        assert_eq!(coding(None), Ok(Coding::Identity));
    }

    #[test]
    fn other_codings_bombs_and_garbage_are_refused() {
        for name in ["br", "zstd", "gzip, gzip", "compress"] {
            let err = coding(header(name).as_ref()).unwrap_err();
            assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}");
        }
        // 10 MB of zeros in about 10 KB: stops at the limit.
        let bomb = Bytes::from(gzip(&vec![0u8; 10 << 20]));
        assert!(bomb.len() < 64 * 1024);
        let err = decode(Coding::Gzip, &bomb, 1 << 20).unwrap_err();
        assert_eq!(
            (err.status, err.kind),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        );
        let whole = gzip(br#"{"a": 1}"#);
        let truncated = Bytes::copy_from_slice(&whole[..whole.len() - 6]);
        let err = decode(Coding::Gzip, &truncated, 1024).unwrap_err();
        assert_eq!(
            (err.status, err.kind),
            (StatusCode::BAD_REQUEST, "undecodable_body")
        );
        let err = decode(Coding::Deflate, &Bytes::from_static(b"{}"), 1024).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}
