//! How well the token-use records' `allowlisted` flag agrees with the simulator's ground truth,
//! on simulated GitLab traffic and without Kafka or ClickHouse:
//!
//!   cargo run --release --example allowlist_accuracy -- [MESSAGES]
//!
//! MESSAGES (default 1,000,000) sets the number of simulated jobs as `benches/e2e.sh` does
//! (about 7 Kafka messages per job). The messages stream, in delivery order and spread over
//! three partitions by author (as the collector keys them), through the same
//! `CorrelationStage` that `tokentrail ingest` runs, with the default settings. Records are
//! matched to ground-truth uses on (job, source, target, action, event time) and compared on
//! cross-project uses (a project's own jobs are always admitted, which the ground truth reports
//! only where the target's allowlist is known, the records always); for each value
//! of `allowlisted` it prints precision (records with that value whose truth agrees) and
//! recall (truth uses with that value whose record agrees). `false` is what raises a
//! `not_allowlisted` alert.

use std::collections::HashMap;
use std::sync::Arc;

use tokentrail::config::CorrelateSettings;
use tokentrail::ingest::correlation::CorrelationStage;
use tokentrail::model::{SourceKind, TokenUse};
use tokentrail::simulate::{SimConfig, Simulator};
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
    let messages: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = SimConfig {
        jobs: messages.div_ceil(7),
        bad_share: 0.0,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(&cfg);
    let mut stage = CorrelationStage::new(&CorrelateSettings::default());
    for p in 0..PARTITIONS {
        stage.assign(&(Arc::from("audit"), p as i32), SourceKind::AuditStream);
    }
    let mut got: HashMap<Key, Option<bool>> = HashMap::new();
    let mut sent = 0u64;
    for (offset, m) in sim.by_ref().enumerate() {
        sent += 1;
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
        for r in stage.on_events(
            &tp,
            offset as i64,
            Some(m.timestamp_ms),
            m.normalize(topic).events,
        ) {
            got.insert(key(&r), r.allowlisted);
        }
    }
    for r in stage.flush_all() {
        got.insert(key(&r), r.allowlisted);
    }
    let truth = sim.into_truth();
    println!(
        "{sent} messages, {} ground-truth token uses, {} records",
        truth.token_uses.len(),
        got.len()
    );
    // (record value, truth value) -> count, over records matched to a truth use.
    let mut pairs: HashMap<(Option<bool>, Option<bool>), u64> = HashMap::new();
    for u in truth.token_uses.iter().filter(|u| !u.same_project) {
        if let Some(&v) = got.get(&key(u)) {
            *pairs.entry((v, u.allowlisted)).or_default() += 1;
        }
    }
    let matched: u64 = pairs.values().sum();
    println!("cross-project uses matched to a record: {matched}");
    for value in [Some(false), Some(true), None] {
        let hit = pairs.get(&(value, value)).copied().unwrap_or(0);
        let said: u64 = pairs
            .iter()
            .filter(|(k, _)| k.0 == value)
            .map(|(_, n)| n)
            .sum();
        let true_n: u64 = pairs
            .iter()
            .filter(|(k, _)| k.1 == value)
            .map(|(_, n)| n)
            .sum();
        println!(
            "allowlisted={:<5} records {said:>7}, truth {true_n:>7}, agree {hit:>7}: \
             precision {:.4}, recall {:.4}",
            format!("{value:?}").replace("Some(", "").replace(')', ""),
            hit as f64 / said.max(1) as f64,
            hit as f64 / true_n.max(1) as f64,
        );
    }
    let mut wrong: Vec<_> = pairs.iter().filter(|(k, _)| k.0 != k.1).collect();
    wrong.sort();
    println!("disagreements (record, truth): {wrong:?}");
}
