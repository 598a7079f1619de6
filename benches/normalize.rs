//! Throughput of `normalize` on a mix of the shared samples (each audit sample as a single
//! body, all three as one batched array, and both webhook samples), and on simulated traffic.

mod common;

use std::hint::black_box;
use std::path::Path;

use common::clock::BenchClock;
use criterion::{Throughput, criterion_group, criterion_main};

type Criterion = criterion::Criterion<BenchClock>;
use serde::de::IgnoredAny;
use tokentrail::model::{InputMessage, SourceKind, header_views};
use tokentrail::normalize::{Limits, json, normalize};

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitlab")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench(c: &mut Criterion) {
    let audit_names = [
        "audit-stream/user_authenticated_using_job_token.json",
        "audit-stream/repository_git_operation.json",
        "audit-stream/secure_ci_job_token_project_added.json",
    ];
    let audits: Vec<Vec<u8>> = audit_names.iter().map(|n| fixture(n)).collect();
    let batch = {
        let parts: Vec<&str> = audits
            .iter()
            .map(|a| std::str::from_utf8(a).unwrap())
            .collect();
        format!("[{}]", parts.join(",")).into_bytes()
    };
    let hooks = [
        fixture("webhooks/job_hook.json"),
        fixture("webhooks/pipeline_hook.json"),
    ];
    let webhook_headers = vec![
        ("X-Gitlab-Event".to_owned(), b"Job Hook".to_vec()),
        (
            "Idempotency-Key".to_owned(),
            b"6c5b4a39-2817-4f06-9e5d-4c3b2a190817".to_vec(),
        ),
    ];

    type Headers = [(String, Vec<u8>)];
    let mut mix: Vec<(SourceKind, &[u8], &Headers)> = Vec::new();
    for a in &audits {
        mix.push((SourceKind::AuditStream, a, &[]));
    }
    mix.push((SourceKind::AuditStream, &batch, &[]));
    for h in &hooks {
        mix.push((SourceKind::Webhook, h, &webhook_headers));
    }

    let limits = Limits::default();
    let run = || {
        let mut n = 0;
        for (source, payload, headers) in &mix {
            let headers = header_views(headers);
            let msg = InputMessage {
                source: *source,
                topic: "bench",
                partition: 0,
                offset: 0,
                timestamp_ms: Some(1_748_945_742_123),
                headers: &headers,
                payload: Some(payload),
            };
            n += normalize(black_box(&msg), &limits).events.len();
        }
        n
    };
    let events_per_iter = run() as u64;
    assert_eq!(events_per_iter, 8, "the mix should yield 8 events");

    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(events_per_iter));
    group.bench_function("sample_mix", |b| b.iter(|| black_box(run())));
    group.finish();
}

/// The simulator's traffic mix (see `common::simulated_traffic`), message by message.
fn bench_simulated(c: &mut Criterion) {
    let (traffic, stats) = common::simulated_traffic(2_000);
    let limits = Limits::default();
    let run = || {
        let mut n = 0;
        for rec in &traffic {
            let msg = InputMessage {
                source: rec.source,
                topic: rec.topic,
                partition: 0,
                offset: rec.offset,
                timestamp_ms: Some(rec.timestamp_ms),
                headers: &header_views(&rec.headers),
                payload: Some(&rec.payload),
            };
            n += normalize(black_box(&msg), &limits).events.len();
        }
        n
    };
    assert_eq!(run(), stats.events);
    let mut group = c.benchmark_group("normalize");
    group.sample_size(10);
    group.throughput(Throughput::Elements(stats.events as u64));
    group.bench_function("simulated", |b| b.iter(|| black_box(run())));
    group.finish();
}

/// The parse alone, on the simulated payloads: the normalizer's tree (`json::from_str`, into
/// an arena made per document as `normalize` makes it) against serde_json reading the same
/// text and keeping nothing (`IgnoredAny`). The second is a floor for any parser with
/// serde_json's grammar: what a parser that only records where each value is could approach
/// (benches/README.md, "Twentieth session").
fn bench_parse(c: &mut Criterion) {
    let (traffic, _) = common::simulated_traffic(2_000);
    // Bodies that are not JSON (the simulator's truncated poison) fail both alike: left out.
    let payloads: Vec<&str> = traffic
        .iter()
        .filter_map(|rec| std::str::from_utf8(&rec.payload).ok())
        .filter(|p| serde_json::from_str::<IgnoredAny>(p).is_ok())
        .collect();
    let bytes: usize = payloads.iter().map(|p| p.len()).sum();
    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("tree_simulated", |b| {
        b.iter(|| {
            for p in &payloads {
                let arena = json::arena_for(p.len());
                black_box(json::from_str(black_box(p), &arena).expect("simulated JSON"));
            }
        })
    });
    group.bench_function("nothing_kept_simulated", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(serde_json::from_str::<IgnoredAny>(black_box(p)).expect("JSON"));
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::criterion();
    targets = bench, bench_simulated, bench_parse
}
criterion_main!(benches);
