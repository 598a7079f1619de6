//! Delivery of encoded records. Every sink retries a batch with capped exponential backoff
//! until it is acknowledged (at-least-once), until `siem.retry.max_attempts` is used up, or
//! until the error cannot be fixed by retrying (bad credentials, a rejected payload), and
//! counts deliveries and failed attempts in `tokentrail_siem_delivered_total{sink}` and
//! `tokentrail_siem_delivery_failures_total{sink}`.

use tokio_util::sync::CancellationToken;

use super::config::{SiemSettings, SinkKind};
use super::delivery::SinkError;
use super::encode::{Encoded, Format};
use super::sink_hec::HecSink;
use super::sink_kafka::KafkaSink;
use super::sink_syslog::SyslogSink;
use crate::kafka::settings::KafkaSettings;
use crate::telemetry::metrics::Metrics;

/// The configured sink.
pub enum Sink {
    Kafka(KafkaSink),
    Syslog(SyslogSink),
    Hec(HecSink),
}

impl Sink {
    pub fn new(
        kafka: &KafkaSettings,
        siem: &SiemSettings,
        kind: SinkKind,
        format: Format,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Sink, SinkError> {
        Ok(match kind {
            SinkKind::Kafka => Sink::Kafka(KafkaSink::new(kafka, siem, metrics, cancel)?),
            SinkKind::Syslog => Sink::Syslog(SyslogSink::new(siem, metrics, cancel)?),
            SinkKind::Hec => Sink::Hec(HecSink::new(siem, format, metrics, cancel)?),
        })
    }

    /// Delivers the whole batch (at-least-once) or returns why it could not.
    pub async fn deliver(&mut self, batch: &[Encoded]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Kafka(s) => s.deliver(batch).await,
            Sink::Syslog(s) => s.deliver(batch).await,
            Sink::Hec(s) => s.deliver(batch).await,
        }
    }
}
