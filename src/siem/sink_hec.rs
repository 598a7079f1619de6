//! Splunk HTTP Event Collector sink.
//!
//! Events are batched as concatenated JSON envelopes in one POST body (HEC's batch format),
//! split at `siem.hec.max_body_bytes`, and sent with `Authorization: Splunk <token>`. A body
//! counts as delivered on HTTP 200 with `{"code":0}`. 429 and 503 (HEC's "busy" answers),
//! other 5xx and network errors are retried, waiting for `Retry-After` when the server
//! sends one; 4xx answers (bad token, malformed data) stop the export without moving its
//! position, so nothing is dropped.

use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::config::{HecSettings, RetryPolicy, SiemSettings};
use super::delivery::{AttemptError, SinkError, after_failure, local_hostname};
use super::encode::{Encoded, Format};
use super::retry::Backoff;
use crate::telemetry::metrics::Metrics;

const SINK: &str = "hec";

pub struct HecSink {
    client: reqwest::Client,
    settings: HecSettings,
    sourcetype: String,
    host: String,
    retry: RetryPolicy,
    metrics: Metrics,
    cancel: CancellationToken,
}

/// The HEC envelope for one event (pure; used by the tests too). `time` is epoch seconds
/// with millisecond precision; `event` is the JSON document itself, or the CEF line as a
/// JSON string.
pub fn envelope(msg: &Encoded, host: &str, source: &str, sourcetype: &str, index: &str) -> String {
    // Milliseconds as fractional seconds: ryu prints the shortest exact form (`….123`).
    let mut head = serde_json::json!({
        "time": msg.time_ms as f64 / 1000.0,
        "host": host,
        "source": source,
        "sourcetype": sourcetype,
    });
    if !index.is_empty() {
        head["index"] = serde_json::json!(index);
    }
    let head = head.to_string();
    let event = if msg.format.is_json() {
        msg.payload.clone()
    } else {
        serde_json::Value::String(msg.payload.clone()).to_string()
    };
    // `head` ends with `}`; the event goes in as the last member.
    format!("{},\"event\":{event}}}", &head[..head.len() - 1])
}

/// Default sourcetype per format.
pub fn default_sourcetype(format: Format) -> String {
    format!("tokentrail:{}", format.as_str())
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Splunk).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl HecSink {
    pub fn new(
        siem: &SiemSettings,
        format: Format,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Self, SinkError> {
        let settings = siem.hec.clone();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|e| SinkError::Setup {
                sink: SINK,
                message: e.to_string(),
            })?;
        let sourcetype = if settings.sourcetype.is_empty() {
            default_sourcetype(format)
        } else {
            settings.sourcetype.clone()
        };
        Ok(HecSink {
            client,
            settings,
            sourcetype,
            host: local_hostname(),
            retry: siem.retry.clone(),
            metrics,
            cancel,
        })
    }

    /// Splits the batch into bodies of at most `max_body_bytes` (a single larger event
    /// still goes alone).
    fn bodies(&self, batch: &[Encoded]) -> Vec<(String, usize)> {
        let mut bodies = Vec::new();
        let (mut body, mut count) = (String::new(), 0);
        for m in batch {
            let ev = envelope(
                m,
                &self.host,
                &self.settings.source,
                &self.sourcetype,
                &self.settings.index,
            );
            if count > 0 && body.len() + ev.len() > self.settings.max_body_bytes {
                bodies.push((std::mem::take(&mut body), count));
                count = 0;
            }
            body.push_str(&ev);
            count += 1;
        }
        if count > 0 {
            bodies.push((body, count));
        }
        bodies
    }

    async fn attempt(&self, body: &str) -> Result<(), AttemptError> {
        let response = self
            .client
            .post(&self.settings.url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Splunk {}", self.settings.token.expose()),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| AttemptError::Retry {
                message: format!("POST {}: {e}", self.settings.url),
                retry_after: None,
            })?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::OK {
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_i64()));
            return match code {
                Some(0) => Ok(()),
                _ => Err(AttemptError::Retry {
                    message: format!("HEC answered 200 without success: {text}"),
                    retry_after: hint,
                }),
            };
        }
        let message = format!("HEC answered {status}: {text}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(AttemptError::Retry {
                message,
                retry_after: hint,
            })
        } else {
            Err(AttemptError::Fatal(message))
        }
    }

    pub async fn deliver(&mut self, batch: &[Encoded]) -> Result<(), SinkError> {
        for (body, count) in self.bodies(batch) {
            let mut backoff = Backoff::new(&self.retry);
            loop {
                match self.attempt(&body).await {
                    Ok(()) => {
                        self.metrics
                            .siem_delivered
                            .with_label_values(&[SINK])
                            .inc_by(count as u64);
                        break;
                    }
                    Err(e) => {
                        after_failure(SINK, &mut backoff, &self.metrics, &self.cancel, e).await?
                    }
                }
            }
        }
        Ok(())
    }
}
