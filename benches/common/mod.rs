//! Shared by the in-process benches: simulated GitLab traffic and the pipeline's per-message
//! work without Kafka and ClickHouse.
//!
//! `InProcess::on_message` makes the calls `ingest::pipeline::Loop::on_message` makes between
//! Kafka and the writer: header copy → `Processor::normalize` → `Processor::on_message`
//! (offsets, event rows, alerts, correlation, token-use rows), and batches are sealed and
//! treated as written at once. Not included: the dead-letter producer and the commit.

#![allow(dead_code)]

pub mod clock;

use tokentrail::alert::{AlertEngine, AlertingSettings};
use tokentrail::config::Settings;
use tokentrail::correlate::actors::KnownBots;
use tokentrail::ingest::correlation::CorrelationStage;
use tokentrail::ingest::process::Processor;
use tokentrail::kafka::offsets::OffsetTracker;
use tokentrail::model::{Event, HeaderSource, InputMessage, SourceKind};
use tokentrail::simulate::{SimConfig, SimMessage, generate};
use tokentrail::telemetry::metrics::Metrics;

/// One simulated Kafka record as the consumer sees it: topic, offset, raw bytes.
pub struct KafkaRecord {
    pub source: SourceKind,
    pub topic: &'static str,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// Header values as bytes, the way librdkafka hands them over.
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl KafkaRecord {
    /// The normalizer's view of this record, with `headers` (the record's own, or a copy).
    pub fn input<'a>(&'a self, headers: &'a dyn HeaderSource) -> InputMessage<'a> {
        InputMessage {
            source: self.source,
            topic: self.topic,
            partition: 0,
            offset: self.offset,
            timestamp_ms: Some(self.timestamp_ms),
            headers,
            payload: Some(&self.payload),
        }
    }
}

pub const AUDIT_TOPIC: &str = "gitlab.audit_events";
pub const WEBHOOK_TOPIC: &str = "gitlab.webhooks";

/// What the traffic looks like, for the report.
#[derive(Debug, Default)]
pub struct TrafficStats {
    pub messages: usize,
    pub events: usize,
    pub audit_events: usize,
    pub webhook_events: usize,
    pub rejected: usize,
    pub payload_bytes: usize,
}

impl TrafficStats {
    pub fn bytes_per_event(&self) -> usize {
        self.payload_bytes / self.events.max(1)
    }
}

/// The simulator's default traffic mix (job and pipeline hooks, job-token auths and the
/// resource events they lead to, allowlist changes, noise, batched arrays, duplicates and a
/// few poison messages), `jobs` jobs long, one partition per topic.
pub fn simulated_traffic(jobs: usize) -> (Vec<KafkaRecord>, TrafficStats) {
    let (messages, _truth) = generate(&SimConfig {
        jobs,
        ..SimConfig::default()
    });
    let mut stats = TrafficStats::default();
    let (mut audit_offset, mut webhook_offset) = (0, 0);
    let records: Vec<KafkaRecord> = messages
        .iter()
        .map(|m: &SimMessage| {
            let (topic, offset) = match m.source {
                SourceKind::AuditStream => (AUDIT_TOPIC, &mut audit_offset),
                SourceKind::Webhook => (WEBHOOK_TOPIC, &mut webhook_offset),
            };
            *offset += 1;
            let normalized = m.normalize(topic);
            stats.messages += 1;
            stats.events += normalized.events.len();
            stats.rejected += normalized.rejected.len();
            for e in &normalized.events {
                match e {
                    Event::Audit(_) => stats.audit_events += 1,
                    Event::Webhook(_) => stats.webhook_events += 1,
                }
            }
            stats.payload_bytes += m.payload.len();
            KafkaRecord {
                source: m.source,
                topic,
                offset: *offset - 1,
                timestamp_ms: m.timestamp_ms,
                headers: m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect(),
                payload: m.payload.clone(),
            }
        })
        .collect();
    (records, stats)
}

/// The consumer loop's in-memory state, with default settings (alerting on).
pub struct InProcess {
    tracker: OffsetTracker,
    work: Processor,
    /// Rows handed to the (absent) writer, so the work cannot be optimized away.
    pub sealed_rows: usize,
    pub sealed_bytes: usize,
}

/// A setting from the environment, for measuring the tuning knobs without editing code.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Default for InProcess {
    /// Default settings, except `TT_BENCH_MAX_ROWS` (`batch.max_rows`) and
    /// `TT_BENCH_ALERTING` (`alerting.enabled`, `true`/`false`) when set.
    fn default() -> Self {
        let mut settings = Settings::default();
        settings.batch.max_rows = knob("TT_BENCH_MAX_ROWS", settings.batch.max_rows);
        settings.alerting = AlertingSettings {
            enabled: knob("TT_BENCH_ALERTING", true),
            ..AlertingSettings::default()
        };
        let stage = CorrelationStage::new(&settings.correlate);
        let alerts = AlertEngine::new(&settings.alerting);
        InProcess {
            tracker: OffsetTracker::new(),
            work: Processor::new(
                &settings,
                stage,
                alerts,
                KnownBots::default(),
                Metrics::new(),
            ),
            sealed_rows: 0,
            sealed_bytes: 0,
        }
    }
}

impl InProcess {
    /// One Kafka record through the loop's own calls (`Processor::normalize`, then
    /// `Processor::on_message`); returns the events it carried.
    pub fn on_message(&mut self, rec: &KafkaRecord, now_ms: i64) -> usize {
        // The loop looks headers up in the record when asked (`kafka::consumer::RecordHeaders`).
        let input = rec.input(&rec.headers);
        let normalized = self.work.normalize(&input);
        let events = normalized.events.len();
        self.work
            .on_message(&input, normalized.events, &mut self.tracker, now_ms);
        if self.work.batch_full() {
            self.seal();
        }
        events
    }

    /// Seals the batch and treats it as written at once (the writer and ClickHouse are not
    /// part of this measurement).
    pub fn seal(&mut self) {
        let sealed = self.work.seal();
        self.sealed_rows += sealed.batch.rows;
        self.sealed_bytes += sealed.batch.bytes;
        self.work.written(&sealed.released);
    }

    /// End of stream: decide everything held and seal.
    pub fn finish(&mut self, now_ms: i64) {
        self.work.flush_all(now_ms);
        self.seal();
    }
}
