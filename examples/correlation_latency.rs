//! How the correlation settings trade accuracy for latency, on simulated GitLab traffic and
//! without Kafka or ClickHouse:
//!
//!   cargo run --release --example correlation_latency -- [JOBS] [CONCURRENCY] [WINDOW_MS:LATENESS_MS ...]
//!
//! CONCURRENCY is the simulator's number of jobs running at once, which sets the message
//! rate (printed); the watermark only moves as fast as the quietest partition's events, so
//! the hold depends on the rate as much as on the settings.
//!
//! The messages go, in delivery order and spread over three partitions by author (as the
//! collector keys them), through the same `CorrelationStage` that `tokentrail ingest` runs.
//! For each `window:lateness` pair it prints precision and recall of the token-use records
//! against the simulator's ground truth, and the *hold*: from a record's event time to the
//! simulated delivery time of the message after which the correlator emitted it, for matched
//! (`auth+resource`) records, which the alert rules mostly fire on, and for all records. That is
//! GitLab's delivery delay plus the correlation wait, the part of alert latency before
//! batching and outputs, on the simulated clock, so machine load does not enter it.

use std::collections::HashSet;
use std::sync::Arc;

use tokentrail::config::CorrelateSettings;
use tokentrail::ingest::correlation::CorrelationStage;
use tokentrail::model::{Correlation, SourceKind, TokenUse};
use tokentrail::simulate::{self, SimConfig};
use tokentrail::store::block::TopicPartition;

const PARTITIONS: u64 = 3;

type Key = (Option<i64>, Option<i64>, Option<i64>, String, i64);

fn key(r: &TokenUse) -> Key {
    (
        r.job_id,
        r.source_project_id,
        r.target_project_id,
        r.action.to_string(),
        r.event_time_ms,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let mut pairs: Vec<(i64, i64)> = args
        .iter()
        .skip(2)
        .filter_map(|a| {
            let (w, l) = a.split_once(':')?;
            Some((w.parse().ok()?, l.parse().ok()?))
        })
        .collect();
    if pairs.is_empty() {
        pairs = vec![
            (5_000, 10_000),
            (2_000, 2_000),
            (1_000, 1_000),
            (1_000, 500),
        ];
    }
    let cfg = SimConfig {
        jobs,
        concurrency,
        anomaly_share: 0.0,
        bad_share: 0.0,
        ..SimConfig::default()
    };
    let (messages, truth) = simulate::generate(&cfg);
    let normalized: Vec<_> = messages
        .iter()
        .map(|m| {
            let topic = match m.source {
                SourceKind::AuditStream => "audit",
                SourceKind::Webhook => "webhooks",
            };
            let partition = m
                .key
                .as_deref()
                .and_then(|k| k.parse::<u64>().ok())
                .unwrap_or(0)
                % PARTITIONS;
            let tp: TopicPartition = (Arc::from(topic), partition as i32);
            (tp, m.timestamp_ms, m.normalize(topic).events)
        })
        .collect();
    let want: HashSet<Key> = truth.token_uses.iter().map(key).collect();
    let span_s = messages.last().map_or(0, |m| m.timestamp_ms)
        - messages.first().map_or(0, |m| m.timestamp_ms);
    println!(
        "{} messages over {:.0} s of simulated time ({:.0} messages/s), {} expected token uses, \
         {PARTITIONS} audit partitions",
        messages.len(),
        span_s as f64 / 1000.0,
        messages.len() as f64 * 1000.0 / span_s.max(1) as f64,
        want.len()
    );
    println!(
        "{:>9} {:>11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "window_ms",
        "lateness_ms",
        "precision",
        "recall",
        "match p50",
        "match p99",
        "all p99",
        "all max"
    );
    for (window_ms, lateness_ms) in pairs {
        let settings = CorrelateSettings {
            window_ms,
            lateness_ms,
            max_hold_ms: (3 * window_ms).max(window_ms + 2 * lateness_ms),
            ..CorrelateSettings::default()
        };
        let mut stage = CorrelationStage::new(&settings);
        for p in 0..PARTITIONS {
            stage.assign(&(Arc::from("audit"), p as i32), SourceKind::AuditStream);
        }
        let mut got: HashSet<Key> = HashSet::new();
        let mut holds: Vec<i64> = Vec::new();
        let mut matched_holds: Vec<i64> = Vec::new();
        for (offset, (tp, delivered_ms, events)) in normalized.iter().enumerate() {
            for r in stage.on_events(tp, offset as i64, Some(*delivered_ms), events.clone()) {
                holds.push(delivered_ms - r.event_time_ms);
                if r.correlation == Correlation::Matched {
                    matched_holds.push(delivered_ms - r.event_time_ms);
                }
                got.insert(key(&r));
            }
        }
        for r in stage.flush_all() {
            got.insert(key(&r));
        }
        let hits = got.intersection(&want).count() as f64;
        println!(
            "{window_ms:>9} {lateness_ms:>11} {:>9.4} {:>7.4} {:>8.2}s {:>8.2}s {:>8.2}s {:>8.2}s",
            hits / got.len() as f64,
            hits / want.len() as f64,
            quantile(&mut matched_holds, 0.5),
            quantile(&mut matched_holds, 0.99),
            quantile(&mut holds, 0.99),
            quantile(&mut holds, 1.0),
        );
    }
}

/// The `p` quantile of `v` in seconds (nearest rank; 0 for an empty set).
fn quantile(v: &mut [i64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}
