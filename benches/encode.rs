//! RowBinary encoding throughput: normalized simulated traffic → rows of every table
//! (audit_events, webhook_events, jobs, allowlist_changes, token_lifecycle, token_use with its
//! record key) appended to batch blocks, exactly as `ingest::route` does it; then the same
//! with the writer's part before the HTTP client: each table's rows put in key order and
//! copied into the pieces it sends (`store::sink`); and that part alone.
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
use tokentrail::store::block::{Block, TopicPartition};
use tokentrail::store::chunks::copied_in_chunks;
use tokentrail::store::key_order::rows_in_key_order;
use tokentrail::store::tables::TimePrecision;

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
        let records = stage.on_events(&tp, rec.offset, Some(rec.timestamp_ms), events.clone());
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
        batch
    };
    // What the writer does with a sealed batch before the HTTP client, per table as
    // `store::sink` groups it: at the 18.16 server's precision, the one benches/e2e.sh runs.
    let ordered_for_insert = |blocks: &[Block]| {
        let mut sent = 0;
        for table in blocks
            .iter()
            .map(|b| b.table)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let group: Vec<&Block> = blocks.iter().filter(|b| b.table == table).collect();
            if let Some(rows) = rows_in_key_order(&group, None, TimePrecision::Seconds) {
                sent += copied_in_chunks(rows.into_iter())
                    .map(|c| c.len())
                    .sum::<usize>();
            }
        }
        sent
    };
    let batch = run();
    let (rows, bytes) = (batch.rows(), batch.bytes());
    eprintln!(
        "encode: {} events ({} B of JSON per event) → {rows} rows, {bytes} B of RowBinary",
        stats.events,
        stats.bytes_per_event()
    );

    let mut g = c.benchmark_group("encode");
    g.sample_size(20);
    g.throughput(Throughput::Elements(stats.events as u64));
    g.bench_function("rowbinary_simulated", |b| {
        b.iter(|| {
            let batch = run();
            black_box((batch.rows(), batch.bytes()))
        })
    });
    g.bench_function("rowbinary_then_key_order_simulated", |b| {
        b.iter(|| {
            let (blocks, _, _) = run().into_parts();
            black_box(ordered_for_insert(&blocks))
        })
    });
    // The writer's part alone, on the blocks of one encoding.
    let (blocks, _, _) = run().into_parts();
    g.bench_function("key_order_simulated", |b| {
        b.iter(|| black_box(ordered_for_insert(&blocks)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::criterion();
    targets = bench
}
criterion_main!(benches);
