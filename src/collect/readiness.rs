//! `/readyz` for the collector: ready while a metadata request to Kafka succeeds and every
//! topic the collector writes to exists. A load balancer then stops sending GitLab traffic to
//! an instance that could only answer 503.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::kafka::producer::Producer;
use crate::telemetry::server::Health;

const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe found wrong, for the log line on a readiness change.
fn check(producer: &Producer, topics: &[String]) -> Result<(), String> {
    let metadata = producer
        .client()
        .fetch_metadata(None, PROBE_TIMEOUT)
        .map_err(|e| format!("Kafka metadata request failed: {e}"))?;
    let missing: Vec<&str> = topics
        .iter()
        .filter(|t| {
            !metadata
                .topics()
                .iter()
                .any(|m| m.name() == t.as_str() && m.error().is_none())
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("topics missing in Kafka: {missing:?}"))
    }
}

pub async fn probe(
    producer: Producer,
    topics: Vec<String>,
    health: Health,
    cancel: CancellationToken,
) {
    let mut was_ready = None;
    while !cancel.is_cancelled() {
        let (p, t) = (producer.clone(), topics.clone());
        // fetch_metadata blocks its thread for up to PROBE_TIMEOUT.
        let result = tokio::task::spawn_blocking(move || check(&p, &t))
            .await
            .unwrap_or_else(|e| Err(format!("readiness probe panicked: {e}")));
        let ready = result.is_ok();
        health.set_ready(ready);
        if was_ready != Some(ready) {
            match &result {
                Ok(()) => tracing::info!("collector ready: Kafka reachable, topics present"),
                Err(why) => tracing::warn!("collector not ready: {why}"),
            }
            was_ready = Some(ready);
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}
