//! Shared helpers for the normalizer tests: fixture loading and message building.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use tokentrail::model::{InputMessage, Normalized, SourceKind};
use tokentrail::normalize::{Limits, normalize};

/// The Kafka timestamp every test message carries (2025-06-03T10:16:00Z).
pub const KAFKA_TS: i64 = 1_748_945_760_000;

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitlab")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixture_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

pub fn run(source: SourceKind, payload: Option<&[u8]>, hdrs: &[(String, Vec<u8>)]) -> Normalized {
    run_with(source, payload, hdrs, &Limits::default())
}

pub fn run_with(
    source: SourceKind,
    payload: Option<&[u8]>,
    hdrs: &[(String, Vec<u8>)],
    limits: &Limits,
) -> Normalized {
    let hdrs = tokentrail::model::header_views(hdrs);
    let msg = InputMessage {
        source,
        topic: "gitlab.test",
        partition: 0,
        offset: 42,
        timestamp_ms: Some(KAFKA_TS),
        headers: &hdrs,
        payload,
    };
    normalize(&msg, limits)
}

pub fn audit(payload: &[u8]) -> Normalized {
    run(SourceKind::AuditStream, Some(payload), &[])
}

pub fn webhook(payload: &[u8], hdrs: &[(String, Vec<u8>)]) -> Normalized {
    run(SourceKind::Webhook, Some(payload), hdrs)
}
