//! The whole in-process path per core: bytes of a Kafka message → normalize → correlate →
//! alert rules → RowBinary rows in batch blocks, on simulated GitLab traffic. Everything the
//! consumer loop does except Kafka and ClickHouse I/O (see `common::InProcess`).
//! `cargo bench --bench in_process` (`TT_BENCH_JOBS`: simulated jobs, 2,000 by default; a
//! larger world shows what a larger working set costs)

mod common;

use std::hint::black_box;

use common::clock::BenchClock;
use criterion::{Throughput, criterion_group, criterion_main};

type Criterion = criterion::Criterion<BenchClock>;

const NOW_MS: i64 = 1_750_000_000_000;

fn bench(c: &mut Criterion) {
    let jobs = std::env::var("TT_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (traffic, stats) = common::simulated_traffic(jobs);
    let run = || {
        let mut path = common::InProcess::default();
        let mut events = 0;
        for rec in &traffic {
            events += path.on_message(black_box(rec), NOW_MS);
        }
        path.finish(NOW_MS);
        (events, path.sealed_rows, path.sealed_bytes)
    };
    let (events, rows, bytes) = run();
    assert_eq!(events, stats.events);
    eprintln!(
        "in_process: {} messages, {} events ({} audit, {} webhook, {} rejected elements), \
         {} B of JSON per event → {rows} rows, {bytes} B of RowBinary",
        stats.messages,
        stats.events,
        stats.audit_events,
        stats.webhook_events,
        stats.rejected,
        stats.bytes_per_event()
    );

    let mut g = c.benchmark_group("in_process");
    g.sample_size(10);
    g.throughput(Throughput::Elements(stats.events as u64));
    g.bench_function("whole_path_simulated", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::criterion();
    targets = bench
}
criterion_main!(benches);
