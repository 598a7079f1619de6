//! Alert outputs besides ClickHouse: the Kafka topic (JSON, key = alert id) and an optional
//! HMAC-signed HTTP webhook. Both are delivered as soon as an alert is raised
//! (`ingest::alert_dispatch`), and the writer waits for their acknowledgement *before* the
//! batch's rows are written and its offsets committed; they are retried until acknowledged,
//! so every alert row that becomes durable was delivered at least once (a crash in between
//! re-delivers the same alert id on replay; receivers deduplicate on it).

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rdkafka::producer::FutureRecord;
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::settings::{OutputSettings, WebhookSettings};
use super::{Alert, Emitted};
use crate::kafka::producer::Producer;
use crate::retry::Backoff;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Tokentrail-Signature";
pub const ALERT_ID_HEADER: &str = "X-Tokentrail-Alert-Id";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("alert webhook: building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("alert webhook: gave up after {attempts} attempts: {last}")]
    WebhookExhausted { attempts: u32, last: String },
    #[error("alert output interrupted by shutdown")]
    Interrupted,
}

/// `sha256=<hex>` for `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook body: Slack-compatible `text` plus the whole alert.
pub fn webhook_body(alert: &Alert) -> Vec<u8> {
    let text = format!(
        "[{}] {}: {} (alert {}, seen {}x)",
        alert.severity.as_str(),
        alert.rule,
        alert.summary,
        alert.alert_id,
        alert.count
    );
    serde_json::to_vec(&json!({ "text": text, "alert": alert })).expect("alert serializes")
}

/// The latest row per alert id in `emitted` (input order), and whether any of them is new.
pub fn coalesce(emitted: &[Emitted]) -> Vec<(&Alert, bool)> {
    let mut order: Vec<&str> = Vec::new();
    let mut latest: HashMap<&str, (&Alert, bool)> = HashMap::new();
    for e in emitted {
        let id = e.alert.alert_id.as_str();
        match latest.get_mut(id) {
            Some(slot) => *slot = (&e.alert, slot.1 || e.new),
            None => {
                order.push(id);
                latest.insert(id, (&e.alert, e.new));
            }
        }
    }
    order.into_iter().map(|id| latest[id]).collect()
}

#[derive(Clone)]
pub struct AlertOutputs {
    kafka: Option<(Producer, String)>,
    webhook: Option<Webhook>,
}

impl AlertOutputs {
    pub fn new(cfg: &OutputSettings, producer: Producer) -> Result<Self, OutputError> {
        let kafka = (!cfg.kafka_topic.is_empty()).then(|| (producer, cfg.kafka_topic.clone()));
        let webhook = if cfg.webhook.url.is_empty() {
            None
        } else {
            Some(Webhook::new(&cfg.webhook)?)
        };
        Ok(AlertOutputs { kafka, webhook })
    }

    /// Whether any paging output (Kafka topic or webhook) is configured.
    pub fn pages(&self) -> bool {
        self.kafka.is_some() || self.webhook.is_some()
    }

    /// Delivers a group of alert rows: every alert id's latest row to Kafka, new alerts
    /// to the webhook. Returns once all are acknowledged.
    pub async fn deliver(
        &self,
        emitted: &[Emitted],
        cancel: &CancellationToken,
    ) -> Result<(), OutputError> {
        let latest = coalesce(emitted);
        if let Some((producer, topic)) = &self.kafka {
            // All in flight at once: one broker round trip for the group, not one per alert.
            futures::future::try_join_all(
                latest
                    .iter()
                    .map(|(alert, _)| produce_acked(producer, topic, alert, cancel)),
            )
            .await?;
        }
        if let Some(webhook) = &self.webhook {
            for (alert, new) in &latest {
                if *new {
                    webhook.post(alert, cancel).await?;
                }
            }
        }
        Ok(())
    }
}

/// Produces and waits for the broker's acknowledgement, retrying until it comes.
async fn produce_acked(
    producer: &Producer,
    topic: &str,
    alert: &Alert,
    cancel: &CancellationToken,
) -> Result<(), OutputError> {
    let payload = serde_json::to_vec(alert).expect("alert serializes");
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let record = FutureRecord::<str, [u8]>::to(topic)
            .key(&alert.alert_id)
            .payload(&payload);
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err((e, _)) => {
                tracing::warn!(topic, "alert not acknowledged by Kafka, retrying: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = cancel.cancelled() => return Err(OutputError::Interrupted),
        }
    }
}

#[derive(Clone)]
struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// What one delivery attempt taught us.
enum Attempt {
    Delivered,
    /// 5xx, 408, 429, timeout, connection error: try again.
    Retry(String),
    /// Any other status: the receiver refuses this alert; retrying cannot help.
    Refused(String),
}

impl Webhook {
    fn new(cfg: &WebhookSettings) -> Result<Self, OutputError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .build()
            .map_err(OutputError::Client)?;
        Ok(Webhook {
            client,
            url: cfg.url.clone(),
            secret: cfg.secret.expose().as_bytes().to_vec(),
            max_attempts: cfg.max_attempts,
            initial_backoff: Duration::from_millis(cfg.initial_backoff_ms),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms.max(cfg.initial_backoff_ms)),
        })
    }

    async fn attempt(&self, alert: &Alert, body: &[u8]) -> Attempt {
        let sent = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, body))
            .header(ALERT_ID_HEADER, &alert.alert_id)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered,
            Ok(resp) => {
                let s = resp.status();
                let msg = format!("HTTP {s}");
                if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 {
                    Attempt::Retry(msg)
                } else {
                    Attempt::Refused(msg)
                }
            }
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }

    async fn post(&self, alert: &Alert, cancel: &CancellationToken) -> Result<(), OutputError> {
        let body = webhook_body(alert);
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let last = match self.attempt(alert, &body).await {
                Attempt::Delivered => return Ok(()),
                Attempt::Refused(msg) => {
                    // A 4xx is a configuration problem at the receiver; blocking ingestion
                    // on it would stop all traffic. The alert stays in ClickHouse and Kafka.
                    tracing::error!(alert_id = %alert.alert_id, "alert webhook refused the alert: {msg}");
                    return Ok(());
                }
                Attempt::Retry(msg) => msg,
            };
            if self.max_attempts > 0 && attempts >= self.max_attempts {
                return Err(OutputError::WebhookExhausted { attempts, last });
            }
            tracing::warn!(alert_id = %alert.alert_id, attempts, "alert webhook failed, retrying: {last}");
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = cancel.cancelled() => return Err(OutputError::Interrupted),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
