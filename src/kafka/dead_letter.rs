//! The dead-letter topic: every message (or batched element, or store-rejected row) that
//! cannot be used goes there with the reason in headers, and is acknowledged by Kafka before
//! the offsets of its batch may be committed. A ratio guard stops the consumer when
//! dead-lettering spikes, so a bad deploy cannot quietly dead-letter everything.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::client;
use super::producer::Producer;
use crate::model::is_secret_header;
use crate::retry::Backoff;
use crate::telemetry::metrics::Metrics;

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
    /// Set to `true` when the payload was cut to `dead_letter.max_payload_bytes`.
    pub const TRUNCATED: &str = "tokentrail-truncated";
    /// The original payload's length in bytes (always set).
    pub const ORIGINAL_LENGTH: &str = "tokentrail-original-length";
    /// The original payload's SHA-256, lowercase hex (always set).
    pub const ORIGINAL_SHA256: &str = "tokentrail-original-sha256";
}

/// Longest error message kept in a header: a parser's message can quote the input.
const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Original headers kept on a copy, in bytes all together; later ones are dropped.
const MAX_ORIGINAL_HEADER_BYTES: usize = 64 * 1024;

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
    /// The original message's headers, kept so the item can be replayed as it came (less
    /// the secret-carrying ones, [`crate::model::SECRET_HEADERS`]).
    pub original_headers: &'a [crate::model::Header<'a>],
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// Kafka refused the copy for good (permissions, size): the item's offset must not be
    /// committed, and ingest stops.
    #[error("cannot write to the dead-letter topic {topic}: {source}")]
    Refused {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Shutdown came while Kafka was unavailable: the item was not written, its offset is not
    /// committed, and it is read again after a restart.
    #[error("shutdown while the dead-letter topic {topic} was unavailable; not committed")]
    Interrupted { topic: String },
}

/// Resolves once Kafka acknowledged a copy started by [`DeadLetterProducer::enqueue`].
pub struct DeadLetterTicket {
    delivery: tokio::task::JoinHandle<Result<(), DeadLetterError>>,
    topic: String,
}

impl DeadLetterTicket {
    /// The delivery's outcome. A delivery task stopped by the runtime's shutdown counts as
    /// interrupted: the copy may not be written, so its batch must not be committed.
    pub async fn acknowledged(self) -> Result<(), DeadLetterError> {
        match self.delivery.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(DeadLetterError::Interrupted { topic: self.topic }),
        }
    }

    /// A ticket that resolves to `result` (tests of the writer).
    #[cfg(test)]
    pub(crate) fn settled(result: Result<(), DeadLetterError>) -> Self {
        DeadLetterTicket {
            delivery: tokio::spawn(async move { result }),
            topic: "dead-letters".into(),
        }
    }
}

#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: Producer,
    topic: String,
    max_payload_bytes: usize,
    metrics: Metrics,
}

impl DeadLetterProducer {
    pub fn new(
        producer: Producer,
        topic: String,
        max_payload_bytes: usize,
        metrics: Metrics,
    ) -> Self {
        DeadLetterProducer {
            producer,
            topic,
            max_payload_bytes,
            metrics,
        }
    }

    /// Sends once and waits for Kafka's acknowledgement (the collector: its client retries).
    pub async fn send_once(&self, item: &DeadLetterItem<'_>) -> Result<(), DeadLetterError> {
        let copy = self.copy(item);
        self.attempt(&copy)
            .await
            .map_err(|source| DeadLetterError::Refused {
                topic: self.topic.clone(),
                source,
            })
    }

    /// Sends and waits for Kafka's acknowledgement (ingest's writer, for rows the store
    /// refused). Transient failures (brokers down, delivery timeouts) are retried with capped
    /// backoff until Kafka takes the copy or `cancel` fires; a refusal that retrying cannot
    /// fix is returned at once.
    pub async fn send(
        &self,
        item: &DeadLetterItem<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), DeadLetterError> {
        self.deliver(self.copy(item), cancel).await
    }

    /// Starts writing `item` in the background, retrying as [`DeadLetterProducer::send`]
    /// does, and returns at once. The ingest loop keeps the ticket with the message's batch;
    /// the writer awaits it before the batch's offsets become durable, so a message still
    /// counts as consumed only once its copy is acknowledged, and the loop never waits a
    /// broker round trip per poison message.
    pub fn enqueue(
        &self,
        item: &DeadLetterItem<'_>,
        cancel: &CancellationToken,
    ) -> DeadLetterTicket {
        let copy = self.copy(item);
        let this = self.clone();
        let cancel = cancel.clone();
        DeadLetterTicket {
            delivery: tokio::spawn(async move { this.deliver(copy, &cancel).await }),
            topic: self.topic.clone(),
        }
    }

    async fn deliver(&self, copy: Copy, cancel: &CancellationToken) -> Result<(), DeadLetterError> {
        let interrupted = || DeadLetterError::Interrupted {
            topic: self.topic.clone(),
        };
        let mut backoff = Backoff::kafka();
        loop {
            let source = tokio::select! {
                sent = self.attempt(&copy) => match sent {
                    Ok(()) => return Ok(()),
                    Err(source) => source,
                },
                _ = cancel.cancelled() => return Err(interrupted()),
            };
            if client::is_fatal(&source) {
                return Err(DeadLetterError::Refused {
                    topic: self.topic.clone(),
                    source,
                });
            }
            self.metrics
                .kafka_errors
                .with_label_values(&[&client::error_kind(&source)])
                .inc();
            let wait = backoff.next_delay();
            tracing::warn!(
                topic = %self.topic,
                "dead-letter write failed, retrying in {wait:?}: {source}"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Err(interrupted()),
            }
        }
    }

    fn copy(&self, item: &DeadLetterItem<'_>) -> Copy {
        let copy = Copy::of(item, self.max_payload_bytes);
        if copy.truncated {
            self.metrics.dead_letter_truncated.inc();
        }
        copy
    }

    async fn attempt(&self, copy: &Copy) -> Result<(), rdkafka::error::KafkaError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&copy.payload)
            .headers(copy.headers.clone());
        if let Some(key) = &copy.key {
            record = record.key(key);
        }
        self.producer
            .send(record, Duration::from_secs(60))
            .await
            .map(|_| ())
            .map_err(|(source, _)| source)
    }
}

/// What goes to the dead-letter topic for one item: its key, a bounded payload and its
/// headers, owned, so a background delivery can retry it.
struct Copy {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    truncated: bool,
}

impl Copy {
    fn of(item: &DeadLetterItem<'_>, max_payload_bytes: usize) -> Copy {
        let truncated = item.payload.len() > max_payload_bytes;
        let payload = item.payload[..item.payload.len().min(max_payload_bytes)].to_vec();
        let mut hdrs = OwnedHeaders::new_with_capacity(item.original_headers.len() + 11);
        let mut kept = 0usize;
        for (k, v) in item.original_headers {
            if is_secret_header(k) {
                continue;
            }
            kept += k.len() + v.len();
            if kept > MAX_ORIGINAL_HEADER_BYTES {
                break;
            }
            hdrs = hdrs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let partition = item.partition.to_string();
        let offset = item.offset.to_string();
        let index = item.element_index.map(|i| i.to_string());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let length = item.payload.len().to_string();
        let sha256 = hex::encode(Sha256::digest(item.payload));
        let message = cut_at_char_boundary(item.message, MAX_ERROR_MESSAGE_BYTES);
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
        add(headers::ERROR_MESSAGE, message);
        add(headers::FIRST_SEEN, &now);
        add(headers::ORIGINAL_LENGTH, &length);
        add(headers::ORIGINAL_SHA256, &sha256);
        if truncated {
            add(headers::TRUNCATED, "true");
        }
        if let Some(i) = &index {
            add(headers::ELEMENT_INDEX, i);
        }
        if let Some(t) = item.table {
            add(headers::TABLE, t);
        }
        Copy {
            key: item.key.map(<[u8]>::to_vec),
            payload,
            headers: hdrs,
            truncated,
        }
    }
}

fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    use rdkafka::message::Headers;

    fn item<'a>(payload: &'a [u8], headers: &'a [crate::model::Header<'a>]) -> DeadLetterItem<'a> {
        DeadLetterItem {
            topic: "in",
            partition: 0,
            offset: 7,
            kind: "invalid_json",
            message: "expected value",
            element_index: None,
            table: None,
            key: None,
            payload,
            original_headers: headers,
        }
    }

    fn header(c: &Copy, name: &str) -> Option<String> {
        c.headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn a_payload_over_the_cap_is_cut_with_its_length_and_digest() {
        let payload = vec![b'x'; 3000];
        let copy = Copy::of(&item(&payload, &[]), 1024);
        assert_eq!(copy.payload.len(), 1024);
        assert!(copy.truncated);
        assert_eq!(header(&copy, headers::TRUNCATED).as_deref(), Some("true"));
        assert_eq!(
            header(&copy, headers::ORIGINAL_LENGTH).as_deref(),
            Some("3000")
        );
        assert_eq!(
            header(&copy, headers::ORIGINAL_SHA256).unwrap(),
            hex::encode(Sha256::digest(&payload))
        );
        let small = Copy::of(&item(b"{}", &[]), 1024);
        assert!(!small.truncated);
        assert_eq!(small.payload, b"{}");
        assert_eq!(header(&small, headers::TRUNCATED), None);
    }

    #[test]
    fn secret_headers_are_never_copied() {
        let original = vec![
            (
                "X-Gitlab-Event-Streaming-Token".to_string(),
                b"s3cret".to_vec(),
            ),
            ("x-gitlab-token".to_string(), b"s3cret".to_vec()),
            ("Authorization".to_string(), b"Bearer s3cret".to_vec()),
            ("X-Gitlab-Event".to_string(), b"Job Hook".to_vec()),
        ];
        let original = crate::model::header_views(&original);
        let copy = Copy::of(&item(b"{}", &original), 1024);
        let names: Vec<&str> = copy.headers.iter().map(|h| h.key).collect();
        assert!(names.contains(&"X-Gitlab-Event"));
        assert!(
            copy.headers
                .iter()
                .all(|h| !String::from_utf8_lossy(h.value.unwrap_or_default()).contains("s3cret")),
            "{names:?}"
        );
    }

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
