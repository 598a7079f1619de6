//! RowBinary encoding throughput: normalized simulated traffic → rows of every table
//! (audit_events, webhook_events, jobs, allowlist_changes, token_lifecycle, token_use with its
//! record key) appended to batch blocks, exactly as `ingest::route` does it.
//! `cargo bench --bench encode`

mod common;

use std::hint::black_box;
use std::sync::Arc;

use common::clock::BenchClock;
use criterion::{Throughput, criterion_group, criterion_main};

type Criterion = criterion::Criterion<BenchClock>;
use tokentrail::config::CorrelateSettings;
use tokentrail::ingest::batch::Batch;
use tokentrail::ingest::correlation::{CorrelationStage, record_key};
use tokentrail::ingest::route;
use tokentrail::kafka::offsets::OffsetTracker;
use tokentrail::model::{Event, TokenUse, header_views};
use tokentrail::normalize::{Limits, normalize};
use tokentrail::store::block::TopicPartition;

const NOW_MS: i64 = 1_750_000_000_000;

fn bench(c: &mut Criterion) {
    let (traffic, stats) = common::simulated_traffic(2_000);
    // Normalize and correlate once; only encoding is measured.
    let mut stage = CorrelationStage::new(&CorrelateSettings::default());
    let mut messages: Vec<(TopicPartition, i64, Vec<Event>, Vec<TokenUse>)> = Vec::new();
    for rec in &traffic {
        let tp: TopicPartition = (Arc::from(rec.topic), 0);
        let headers = header_views(&rec.headers);
        let events = normalize(&rec.input(&headers), &Limits::default()).events;
        let records = stage.on_events(&tp, rec.offset, Some(rec.timestamp_ms), &events);
        messages.push((tp, rec.offset, events, records));
    }
    let tail = stage.flush_all();
    messages.last_mut().expect("traffic").3.extend(tail);

    let run = || {
        let mut tracker = OffsetTracker::new();
        let mut batch = Batch::default();
        for (tp, offset, events, records) in &messages {
            batch.consumed(&mut tracker, tp, *offset, None);
            for event in events {
                route::push_event_rows(&mut batch, tp, *offset, event, NOW_MS);
            }
            for record in records {
                route::push_token_use(&mut batch, tp, *offset, record, &record_key(record), NOW_MS);
            }
        }
        (batch.rows(), batch.bytes())
    };
    let (rows, bytes) = run();
    eprintln!(
        "encode: {} events ({} B of JSON per event) → {rows} rows, {bytes} B of RowBinary",
        stats.events,
        stats.bytes_per_event()
    );

    let mut g = c.benchmark_group("encode");
    g.sample_size(20);
    g.throughput(Throughput::Elements(stats.events as u64));
    g.bench_function("rowbinary_simulated", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::criterion();
    targets = bench
}
criterion_main!(benches);
