//! Publishes simulated GitLab traffic to Kafka the way the collector would: audit bodies to
//! the audit topic, webhooks to the webhook topic, keyed by author, GitLab headers as Kafka
//! headers. Used by `tokentrail simulate`, the demo and the end-to-end tests.

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::producer::future_producer::OwnedDeliveryResult;

use crate::config::KafkaSettings;
use crate::kafka::producer::Producer;
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
///
/// Each message is handed to librdkafka the moment it is due (`send_result`), not when a
/// delivery future is first polled: a lazily polled future would sit unsent until the
/// in-flight window filled, adding seconds to every paced message's latency.
pub async fn publish(
    producer: &Producer,
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
            SourceKind::AuditStream => topics.audit.as_str(),
            SourceKind::Webhook => topics.webhooks.as_str(),
        };
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
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(&msg.payload)
            .headers(headers);
        if let Some(key) = &msg.key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    let topic = topic.to_owned();
                    in_flight.push(delivery.map(move |r| acknowledged(topic, r)));
                    break;
                }
                // librdkafka's local queue is full: wait for a delivery, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    match in_flight.next().await {
                        Some(r) => r?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((source, _)) => {
                    return Err(PublishError {
                        topic: topic.to_owned(),
                        source,
                    });
                }
            }
        }
        sent += 1;
        // Reap what is already acknowledged, so a failure surfaces early.
        while let Some(Some(r)) = in_flight.next().now_or_never() {
            r?;
        }
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

fn acknowledged(
    topic: String,
    delivery: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(), PublishError> {
    match delivery {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((source, _))) => Err(PublishError { topic, source }),
        Err(_) => Err(PublishError {
            topic,
            source: KafkaError::Canceled,
        }),
    }
}
