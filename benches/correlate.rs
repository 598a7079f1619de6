//! Correlator throughput on synthetic streams: auth + resource pairs, slightly out of order,
//! with the correlator configured and its watermark driven as ingest does.
//! `cargo bench --bench correlate`

use clock::BenchClock;
use criterion::{BatchSize::LargeInput, Throughput, criterion_group, criterion_main};

type Criterion = criterion::Criterion<BenchClock>;
use tokentrail::config::CorrelateSettings;
use tokentrail::correlate::{Correlator, CorrelatorConfig};
use tokentrail::model::AuditEvent;

#[path = "common/clock.rs"]
mod clock;
#[path = "../tests/correlate_common/mod.rs"]
mod common;

/// `pairs` auth+resource pairs, one every `spacing_ms`, spread over `users` users and `ips` IPs
/// (each user on two IPs), resource 0..3 s after its auth, arrival jittered by up to 1 s.
fn stream(pairs: i64, users: i64, ips: i64, spacing_ms: i64) -> Vec<AuditEvent> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: i64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as i64
    };
    let t0 = 1_750_000_000_000;
    let mut keyed = Vec::with_capacity(2 * pairs as usize);
    for i in 0..pairs {
        let user = 1 + rnd(users);
        let ip = format!(
            "10.9.{}.{}",
            (user + rnd(2)) % ips / 256,
            (user + rnd(2)) % ips % 256
        );
        let t = t0 + i * spacing_ms;
        let src = (100 + rnd(5_000), "group/source");
        let dst = (10_000 + rnd(5_000), "group/target");
        let a = common::auth(user, &ip, t, src, i);
        let r = common::resource(user, &ip, t + rnd(3_000), dst, "repository.read");
        keyed.push((a.created_at_ms + rnd(1_000), a));
        keyed.push((r.created_at_ms + rnd(1_000), r));
    }
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, e)| e).collect()
}

/// As `ingest::correlation::CorrelationStage` runs it: default `CorrelateSettings`, no auto
/// lateness, and after each event the watermark advanced to the newest event time seen
/// `behind` events earlier, minus `lateness_ms`. `behind` 0 is one partition read in order;
/// a larger one is a backlog whose partitions are read unevenly, so the slowest holds the
/// watermark back while the others' events pile up (what `correlate.align_pending` bounds).
fn run(events: Vec<AuditEvent>, behind: usize) -> usize {
    let settings = CorrelateSettings::default();
    let mut c = Correlator::new(CorrelatorConfig {
        window_ms: settings.window_ms,
        max_pending: settings.max_pending,
        max_jobs: settings.max_jobs,
        max_hold_ms: settings.max_hold_ms,
        auto_lateness_ms: None,
    });
    let mut newest = Vec::with_capacity(events.len());
    let mut n = 0;
    let mut records = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        let prev = newest.last().copied().unwrap_or(i64::MIN);
        newest.push(prev.max(e.created_at_ms));
        c.on_audit_into(e, &mut records);
        n += records.len();
        records.clear();
        if let Some(read_to) = i.checked_sub(behind) {
            n += c.advance(newest[read_to] - settings.lateness_ms).len();
        }
    }
    n + c.flush_all().len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10);
    for (name, users, ips) in [
        ("1000_users_200_ips", 1_000, 200),
        ("20_users_4_ips", 20, 4),
    ] {
        let events = stream(100_000, users, ips, 1);
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(|| events.clone(), |e| run(e, 0), LargeInput)
        });
    }
    // The correlator's cost per event as a function of what it holds (benches/README.md,
    // "Sixteenth session"): one pair a second, as sparse as the simulated backlog's event
    // time, so read in order it holds a few dozen events; `behind` sets how many it holds.
    let events = stream(100_000, 1_000, 200, 1_000);
    g.throughput(Throughput::Elements(events.len() as u64));
    for behind in [0, 10_000, 40_000] {
        g.bench_function(format!("sparse_{behind}_behind"), |b| {
            b.iter_batched(|| events.clone(), |e| run(e, behind), LargeInput)
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = clock::criterion();
    targets = bench
}
criterion_main!(benches);
