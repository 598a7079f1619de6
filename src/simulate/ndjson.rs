//! One `SimMessage` per line, readable by humans and by `jq`:
//! `{"source":"audit_stream","key":"4821","timestamp_ms":1,"headers":{..},"payload":{..}}`.
//!
//! A payload that is single-line JSON is embedded verbatim (not re-serialized, so its bytes
//! survive). Anything else — the poison messages — is stored as `payload_text` (UTF-8) or
//! `payload_b64` (raw bytes). `from_ndjson_line` restores the payload byte for byte.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::SimMessage;
use crate::model::SourceKind;

#[derive(Debug)]
pub struct NdjsonError(pub String);

impl fmt::Display for NdjsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad simulator NDJSON line: {}", self.0)
    }
}

impl std::error::Error for NdjsonError {}

/// Everything before the payload; also used by the reader to locate the verbatim payload.
fn prefix(
    source: SourceKind,
    key: &Option<String>,
    ts: i64,
    headers: &[(String, String)],
) -> String {
    let js = |s: &str| serde_json::to_string(s).expect("string serializes");
    let source = match source {
        SourceKind::AuditStream => "audit_stream",
        SourceKind::Webhook => "webhook",
    };
    let key = key.as_deref().map_or_else(|| "null".to_string(), js);
    let mut out =
        format!("{{\"source\":\"{source}\",\"key\":{key},\"timestamp_ms\":{ts},\"headers\":{{");
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&js(k));
        out.push(':');
        out.push_str(&js(v));
    }
    out.push_str("},");
    out
}

fn embeddable(payload: &[u8]) -> bool {
    !payload.contains(&b'\n')
        && !payload.contains(&b'\r')
        && std::str::from_utf8(payload).is_ok()
        && serde_json::from_slice::<IgnoredAny>(payload).is_ok()
}

/// Encode one message as a line (without the trailing newline).
pub fn to_ndjson_line(m: &SimMessage) -> String {
    let mut line = prefix(m.source, &m.key, m.timestamp_ms, &m.headers);
    if embeddable(&m.payload) {
        line.push_str("\"payload\":");
        line.push_str(std::str::from_utf8(&m.payload).expect("checked UTF-8"));
    } else if let Ok(text) = std::str::from_utf8(&m.payload) {
        line.push_str("\"payload_text\":");
        line.push_str(&serde_json::to_string(text).expect("string serializes"));
    } else {
        line.push_str("\"payload_b64\":\"");
        line.push_str(&b64_encode(&m.payload));
        line.push('"');
    }
    line.push('}');
    line
}

/// Headers as a JSON object, read back in document order (serde_json's map would sort).
struct OrderedHeaders(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedHeaders, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<String, String>()? {
                    v.push((k, val));
                }
                Ok(OrderedHeaders(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Line {
    source: SourceKind,
    key: Option<String>,
    timestamp_ms: i64,
    headers: OrderedHeaders,
    payload: Option<serde_json::Value>,
    payload_text: Option<String>,
    payload_b64: Option<String>,
}

/// Decode a line written by `to_ndjson_line` (trailing `\n`/`\r\n` tolerated).
pub fn from_ndjson_line(line: &str) -> Result<SimMessage, NdjsonError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let l: Line = serde_json::from_str(line).map_err(|e| NdjsonError(e.to_string()))?;
    let payload = if let Some(t) = l.payload_text {
        t.into_bytes()
    } else if let Some(b) = l.payload_b64 {
        b64_decode(&b).ok_or_else(|| NdjsonError("payload_b64 is not base64".into()))?
    } else if let Some(v) = l.payload {
        let head = prefix(l.source, &l.key, l.timestamp_ms, &l.headers.0) + "\"payload\":";
        match line
            .strip_prefix(head.as_str())
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(raw) => raw.as_bytes().to_vec(),
            // Written by something else: the value survives, the exact bytes cannot.
            None => serde_json::to_vec(&v).expect("value serializes"),
        }
    } else {
        return Err(NdjsonError("no payload field".into()));
    };
    Ok(SimMessage {
        source: l.source,
        key: l.key,
        headers: l.headers.0,
        payload,
        timestamp_ms: l.timestamp_ms,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (no dependency for a dozen lines).
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
