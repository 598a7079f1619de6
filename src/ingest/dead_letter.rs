//! The dead-letter topic: every message (or batched element, or store-rejected row) that
//! cannot be used goes there with the reason in headers, and is acknowledged by Kafka before
//! the offsets of its batch may be committed. A ratio guard stops the consumer when
//! dead-lettering spikes, so a bad deploy cannot quietly dead-letter everything.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Header names on dead-lettered messages.
pub mod headers {
    pub const ORIGINAL_TOPIC: &str = "tokentrail-original-topic";
    pub const ORIGINAL_PARTITION: &str = "tokentrail-original-partition";
    pub const ORIGINAL_OFFSET: &str = "tokentrail-original-offset";
    pub const ERROR_KIND: &str = "tokentrail-error-kind";
    pub const ERROR_MESSAGE: &str = "tokentrail-error-message";
    pub const ELEMENT_INDEX: &str = "tokentrail-element-index";
    pub const FIRST_SEEN: &str = "tokentrail-first-seen";
    pub const TABLE: &str = "tokentrail-table";
}

/// One item to dead-letter.
#[derive(Debug)]
pub struct DeadLetterItem<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub kind: &'a str,
    pub message: &'a str,
    pub element_index: Option<usize>,
    pub table: Option<&'a str>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// The original message's headers, kept so the item can be replayed as it came.
    pub original_headers: &'a [(String, Vec<u8>)],
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write to the dead-letter topic {topic}: {source}")]
pub struct DeadLetterError {
    topic: String,
    #[source]
    source: rdkafka::error::KafkaError,
}

#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterProducer {
    pub fn new(producer: FutureProducer, topic: String) -> Self {
        DeadLetterProducer { producer, topic }
    }

    /// Sends and waits for Kafka's acknowledgement.
    pub async fn send(&self, item: &DeadLetterItem<'_>) -> Result<(), DeadLetterError> {
        let partition = item.partition.to_string();
        let offset = item.offset.to_string();
        let index = item.element_index.map(|i| i.to_string());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut hdrs = OwnedHeaders::new_with_capacity(item.original_headers.len() + 8);
        for (k, v) in item.original_headers {
            hdrs = hdrs.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut add = |k: &str, v: &str| {
            let h = std::mem::replace(&mut hdrs, OwnedHeaders::new());
            hdrs = h.insert(Header {
                key: k,
                value: Some(v),
            });
        };
        add(headers::ORIGINAL_TOPIC, item.topic);
        add(headers::ORIGINAL_PARTITION, &partition);
        add(headers::ORIGINAL_OFFSET, &offset);
        add(headers::ERROR_KIND, item.kind);
        add(headers::ERROR_MESSAGE, item.message);
        add(headers::FIRST_SEEN, &now);
        if let Some(i) = &index {
            add(headers::ELEMENT_INDEX, i);
        }
        if let Some(t) = item.table {
            add(headers::TABLE, t);
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(item.payload)
            .headers(hdrs);
        if let Some(key) = item.key {
            record = record.key(key);
        }
        self.producer
            .send(record, Duration::from_secs(60))
            .await
            .map(|_| ())
            .map_err(|(source, _)| DeadLetterError {
                topic: self.topic.clone(),
                source,
            })
    }
}

/// Sliding-window share of dead-lettered messages.
#[derive(Debug)]
pub struct RatioGuard {
    window: VecDeque<bool>,
    capacity: usize,
    bad: usize,
    max_ratio: f64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "dead-letter ratio guard tripped: {bad} of the last {window} messages were unusable \
     (limit {max_ratio}); stopping without committing them. Check the dead-letter topic for \
     the reasons, fix the producer or raise dead_letter.max_ratio"
)]
pub struct GuardTripped {
    pub bad: usize,
    pub window: usize,
    pub max_ratio: f64,
}

impl RatioGuard {
    pub fn new(capacity: usize, max_ratio: f64) -> Self {
        RatioGuard {
            window: VecDeque::with_capacity(capacity),
            capacity,
            bad: 0,
            max_ratio,
        }
    }

    /// Records one message; errors once the window is full and over the limit.
    pub fn observe(&mut self, dead_lettered: bool) -> Result<(), GuardTripped> {
        if self.window.len() == self.capacity && self.window.pop_front() == Some(true) {
            self.bad -= 1;
        }
        self.window.push_back(dead_lettered);
        self.bad += dead_lettered as usize;
        let full = self.window.len() == self.capacity;
        if full && self.bad as f64 > self.max_ratio * self.capacity as f64 {
            return Err(GuardTripped {
                bad: self.bad,
                window: self.capacity,
                max_ratio: self.max_ratio,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_waits_for_a_full_window_then_trips() {
        let mut g = RatioGuard::new(4, 0.5);
        for _ in 0..3 {
            g.observe(true).unwrap();
        }
        let err = g.observe(true).unwrap_err();
        assert_eq!((err.bad, err.window), (4, 4));
    }

    #[test]
    fn guard_tolerates_ratio_at_limit_and_slides() {
        let mut g = RatioGuard::new(4, 0.5);
        for bad in [true, true, false, false, false, true] {
            g.observe(bad).unwrap();
        }
        assert_eq!(g.bad, 1, "window is now [F, F, F, T]");
    }
}
