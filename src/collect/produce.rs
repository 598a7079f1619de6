//! Writing accepted requests to Kafka, and refused bodies to the dead-letter topic.
//!
//! Every record of a request is enqueued at once and the request is answered only when Kafka
//! acknowledged all of them (idempotent producer, `acks=all`). librdkafka gives up on a record
//! after `collect.delivery_timeout_secs` (`message.timeout.ms`), and refuses new ones when its
//! buffer (`collect.max_buffered_kbytes`) is full: both become a 503 so GitLab retries, and
//! memory stays bounded while the broker is away.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::body::Record;
use super::headers::BATCH_ELEMENT;
use crate::config::Settings;
use crate::kafka::client::client_config;
use crate::kafka::dead_letter::{DeadLetterError, DeadLetterItem, DeadLetterProducer};
use crate::kafka::producer::{Producer, durable};
use crate::telemetry::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Kafka is unreachable, too slow, or refused the write for a reason a retry may fix.
    #[error("Kafka did not acknowledge the write to {topic}: {source}")]
    Unavailable {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// A record is larger than the producer or the topic accepts; retrying cannot help.
    #[error(
        "a message for {topic} is larger than Kafka accepts (raise the topic's max.message.bytes): {source}"
    )]
    TooLarge {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
}

pub(super) fn classify(topic: &str, source: KafkaError) -> PublishError {
    let too_large = matches!(
        source.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    );
    let topic = topic.to_string();
    if too_large {
        PublishError::TooLarge { topic, source }
    } else {
        PublishError::Unavailable { topic, source }
    }
}

/// The producer for one collector, shared by all routes.
#[derive(Clone)]
pub struct Publisher {
    producer: Producer,
    dead_letter: DeadLetterProducer,
    metrics: Metrics,
}

/// Builds the collector's producer: `kafka::client::client_config` with the settings that make
/// "acknowledged" mean "on every in-sync replica, once" and bound how long and how much it
/// may hold while Kafka is away.
pub fn producer(settings: &Settings) -> Result<Producer, KafkaError> {
    let c = &settings.collect;
    // A whole GitLab body must fit (plus record overhead); the broker's own limit is the
    // topic's `max.message.bytes`, which deployments raise for large webhooks.
    let max_message_bytes = (c.max_body_bytes + 64 * 1024).clamp(1_000_000, 1_000_000_000);
    client_config(
        &settings.kafka,
        &[
            ("linger.ms", "5"),
            // The Java client's partitioner: the same key lands on the same partition whoever
            // produces it (other bridges, replays with kafka-console-producer).
            ("partitioner", "murmur2_random"),
            ("message.max.bytes", &max_message_bytes.to_string()),
            // librdkafka's broker thread checks message timeouts between reconnect attempts;
            // with the default 10 s backoff a dead broker is noticed 10 s late, past GitLab's
            // own 8 s timeout. 1 s keeps the 503 close to delivery_timeout_secs.
            ("reconnect.backoff.max.ms", "1000"),
        ],
        &durable(&[
            (
                "message.timeout.ms",
                (c.delivery_timeout_secs * 1000).to_string(),
            ),
            (
                "queue.buffering.max.kbytes",
                c.max_buffered_kbytes.to_string(),
            ),
        ]),
    )
    .create()
    .map_err(crate::kafka::client::redact_error)
}

impl Publisher {
    pub fn new(
        producer: Producer,
        dead_letter_topic: String,
        max_payload_bytes: usize,
        metrics: Metrics,
    ) -> Self {
        Publisher {
            dead_letter: DeadLetterProducer::new(
                producer.clone(),
                dead_letter_topic,
                max_payload_bytes,
                metrics.clone(),
            ),
            producer,
            metrics,
        }
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Produces every record with the request's headers and waits until Kafka acknowledged
    /// all of them. On error some records may already be stored: GitLab's retry then stores
    /// them again, which the consumer's dedup keys absorb (at-least-once).
    pub async fn publish(
        &self,
        topic: &str,
        records: &[Record],
        request_headers: &[(String, Vec<u8>)],
    ) -> Result<(), PublishError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for record in records {
            let position = record.batch_position.map(|(i, n)| format!("{i}/{n}"));
            let mut headers = OwnedHeaders::new_with_capacity(request_headers.len() + 1);
            for (name, value) in request_headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            if let Some(position) = &position {
                headers = headers.insert(Header {
                    key: BATCH_ELEMENT,
                    value: Some(position),
                });
            }
            let mut kafka_record = FutureRecord::<str, [u8]>::to(topic)
                .payload(&record.payload)
                .headers(headers);
            if let Some(key) = &record.key {
                kafka_record = kafka_record.key(key);
            }
            // send_result never waits for buffer space: a full buffer is an immediate 503.
            let delivery = self
                .producer
                .send_result(kafka_record)
                .map_err(|(e, _)| classify(topic, e))?;
            deliveries.push(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(classify(topic, e)),
                    // The producer was dropped with the record queued: not acknowledged.
                    Err(_canceled) => Err(classify(topic, KafkaError::Canceled)),
                }
            });
        }
        try_join_all(deliveries).await?;
        self.metrics
            .collect_produced
            .with_label_values(&[topic])
            .inc_by(records.len() as u64);
        Ok(())
    }

    /// Copies a refused body to the dead-letter topic (same headers as the consumer's dead
    /// letters; partition and offset are -1, as the body never was in Kafka) and waits for
    /// Kafka's acknowledgement.
    pub async fn dead_letter(
        &self,
        intended_topic: &str,
        kind: &str,
        message: &str,
        payload: &[u8],
        request_headers: &[(String, Vec<u8>)],
    ) -> Result<(), PublishError> {
        self.dead_letter
            .send_once(&DeadLetterItem {
                topic: intended_topic,
                partition: -1,
                offset: -1,
                kind,
                message,
                element_index: None,
                table: None,
                key: None,
                payload,
                original_headers: &crate::model::header_views(request_headers),
            })
            .await?;
        self.metrics.dead_lettered.with_label_values(&[kind]).inc();
        Ok(())
    }

    /// Waits for everything still buffered (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!("producer flush at shutdown: {e}");
        }
    }
}
