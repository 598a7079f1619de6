//! Kafka sink: one message per record on `siem.kafka.topic`, keyed by the record id (so a
//! record and its re-deliveries land in one partition, in order), with the record kind and
//! format in headers. The producer is idempotent with `acks=all` (`kafka::producer::producer`);
//! a batch counts as delivered when every message is acknowledged, and only the messages
//! that failed are retried.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use super::config::{RetryPolicy, SiemSettings};
use super::delivery::{AttemptError, SinkError, after_failure};
use super::encode::Encoded;
use super::retry::Backoff;
use crate::kafka::producer::Producer;
use crate::kafka::settings::KafkaSettings;
use crate::kafka::{client, producer};
use crate::telemetry::metrics::Metrics;

const SINK: &str = "kafka";

pub struct KafkaSink {
    producer: Producer,
    topic: String,
    retry: RetryPolicy,
    metrics: Metrics,
    cancel: CancellationToken,
}

impl KafkaSink {
    pub fn new(
        kafka: &KafkaSettings,
        siem: &SiemSettings,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Self, SinkError> {
        let producer = producer::producer(kafka).map_err(|e| SinkError::Setup {
            sink: SINK,
            message: e.to_string(),
        })?;
        Ok(KafkaSink {
            producer,
            topic: siem.kafka.topic.clone(),
            retry: siem.retry.clone(),
            metrics,
            cancel,
        })
    }

    pub async fn deliver(&mut self, batch: &[Encoded]) -> Result<(), SinkError> {
        let mut pending: Vec<&Encoded> = batch.iter().collect();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            match self.attempt(&mut pending).await {
                Ok(()) => return Ok(()),
                Err(e) => after_failure(SINK, &mut backoff, &self.metrics, &self.cancel, e).await?,
            }
        }
    }

    /// Sends every pending message; leaves only the unacknowledged ones in `pending`.
    async fn attempt(&self, pending: &mut Vec<&Encoded>) -> Result<(), AttemptError> {
        let sends = pending.iter().map(|m| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tokentrail-record-kind",
                    value: Some(m.kind.as_str()),
                })
                .insert(Header {
                    key: "tokentrail-format",
                    value: Some(m.format.as_str()),
                });
            let record = FutureRecord::to(&self.topic)
                .key(&m.id)
                .payload(&m.payload)
                .headers(headers);
            self.producer.send(record, Duration::from_secs(30))
        });
        let results = futures::future::join_all(sends).await;
        let mut failed = Vec::new();
        let mut last: Option<KafkaError> = None;
        for (m, r) in pending.iter().zip(results) {
            match r {
                Ok(_) => self.metrics.siem_delivered.with_label_values(&[SINK]).inc(),
                Err((e, _)) => {
                    failed.push(*m);
                    last = Some(e);
                }
            }
        }
        *pending = failed;
        match last {
            None => Ok(()),
            Some(e) if client::is_fatal(&e) => Err(AttemptError::Fatal(e.to_string())),
            Some(e) => Err(AttemptError::Retry {
                message: format!("{} of the batch not acknowledged: {e}", pending.len()),
                retry_after: None,
            }),
        }
    }
}
