//! Publishes simulated GitLab traffic to Kafka the way the collector would: audit bodies to
//! the audit topic, webhooks to the webhook topic, keyed by author, GitLab headers as Kafka
//! headers. Used by `tokentrail simulate`, the demo and the end-to-end tests.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::KafkaSettings;
use crate::model::SourceKind;
use crate::simulate::SimMessage;

#[derive(Debug, thiserror::Error)]
#[error("publishing to Kafka topic {topic}: {source}")]
pub struct PublishError {
    topic: String,
    #[source]
    source: rdkafka::error::KafkaError,
}

/// Where each kind of message goes.
#[derive(Debug, Clone)]
pub struct Topics {
    pub audit: String,
    pub webhooks: String,
}

impl Topics {
    pub fn from_settings(k: &KafkaSettings) -> Option<Topics> {
        Some(Topics {
            audit: k.audit_topics.first()?.clone(),
            webhooks: k.webhook_topics.first()?.clone(),
        })
    }
}

/// Produces every message and waits for all acknowledgements. `rate_per_sec` limits the
/// pace (0 = as fast as possible); `progress` is called with the count sent so far.
pub async fn publish(
    producer: &FutureProducer,
    topics: &Topics,
    messages: impl Iterator<Item = SimMessage>,
    rate_per_sec: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64, PublishError> {
    // Bounded in-flight window: memory stays flat however many messages are sent.
    const MAX_IN_FLIGHT: usize = 10_000;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0u64;
    for msg in messages {
        if rate_per_sec > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / rate_per_sec as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let topic = match msg.source {
            SourceKind::AuditStream => topics.audit.clone(),
            SourceKind::Webhook => topics.webhooks.clone(),
        };
        let producer = producer.clone();
        in_flight.push(async move {
            let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
            for (k, v) in &msg.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            // The Kafka timestamp is left to the producer (now), as the collector's would be:
            // simulated times lie in the past, and broker retention would delete such
            // records before they are consumed.
            let mut record = FutureRecord::<str, [u8]>::to(&topic)
                .payload(&msg.payload)
                .headers(headers);
            if let Some(key) = &msg.key {
                record = record.key(key);
            }
            producer
                .send(record, Duration::from_secs(60))
                .await
                .map(|_| ())
                .map_err(|(source, _)| PublishError {
                    topic: topic.clone(),
                    source,
                })
        });
        sent += 1;
        while in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(r) = in_flight.next().await {
                r?;
            }
        }
        if sent.is_multiple_of(1000) {
            progress(sent);
        }
    }
    while let Some(r) = in_flight.next().await {
        r?;
    }
    progress(sent);
    Ok(sent)
}
