//! Producing `tokentrail gitlab` messages into the audit topic (the first of
//! `kafka.audit_topics`), idempotently and acknowledged by every in-sync replica, as the
//! collector does: ingest then treats them like GitLab's own events.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::kafka::client::{client_config, redact_error};
use crate::kafka::producer::{Producer, durable};
use crate::kafka::settings::KafkaSettings;

/// Kafka header naming the command that produced a message (provenance for readers).
pub const PRODUCER_HEADER: &str = "tokentrail-producer";

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(
        "invalid configuration: kafka.audit_topics: empty; tokentrail gitlab writes to the first audit topic"
    )]
    NoTopic,
    #[error("creating the Kafka producer: {0}")]
    Create(rdkafka::error::KafkaError),
    #[error("Kafka did not acknowledge a message to {topic}: {source}")]
    Send {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

pub struct AuditProducer {
    producer: Producer,
    topic: String,
    producer_name: &'static str,
}

impl AuditProducer {
    pub fn new(kafka: &KafkaSettings, producer_name: &'static str) -> Result<Self, ProduceError> {
        let topic = kafka
            .audit_topics
            .first()
            .cloned()
            .ok_or(ProduceError::NoTopic)?;
        let producer = client_config(
            kafka,
            &[("linger.ms", "20"), ("partitioner", "murmur2_random")],
            &durable(&[("message.timeout.ms", "60000".into())]),
        )
        .create()
        .map_err(|e| ProduceError::Create(redact_error(e)))?;
        Ok(AuditProducer {
            producer,
            topic,
            producer_name,
        })
    }

    /// Sends every `(key, payload)` and waits until all are acknowledged.
    pub async fn send_all(&self, messages: &[(String, Vec<u8>)]) -> Result<(), ProduceError> {
        let sends = messages.iter().map(|(key, payload)| {
            let headers = OwnedHeaders::new().insert(Header {
                key: PRODUCER_HEADER,
                value: Some(self.producer_name.as_bytes()),
            });
            let record = FutureRecord::to(&self.topic)
                .key(key.as_bytes())
                .payload(payload.as_slice())
                .headers(headers);
            async move {
                self.producer
                    .send(record, Duration::from_secs(60))
                    .await
                    .map(|_| ())
                    .map_err(|(source, _)| ProduceError::Send {
                        topic: self.topic.clone(),
                        source,
                    })
            }
        });
        try_join_all(sends).await?;
        Ok(())
    }
}
