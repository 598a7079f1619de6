//! Beside the loop, not in it: every `clickhouse.seal_every_secs`, seals the ended days of
//! token_use that changed (`store::seal`). Nothing waits for it and nothing is committed by
//! it: an unsealed day is read from token_use, only more slowly, so a failed pass is
//! logged, counted and tried again at the next tick.

use std::time::Duration;

use clickhouse::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::seal;
use crate::telemetry::metrics::Metrics;

/// Starts the timer; `every` zero starts nothing. Stops when `cancel` fires (a pass cut
/// short leaves summary rows without their seal, which no query reads).
pub fn spawn(
    client: Client,
    cluster: Option<String>,
    every: Duration,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let pass = tokio::select! {
                () = cancel.cancelled() => return,
                r = seal::seal(&client, now_ms, cluster.as_deref()) => r,
            };
            match pass {
                Ok(report) => {
                    metrics.seal_passes.with_label_values(&["ok"]).inc();
                    metrics.sealed_days.inc_by(report.days as u64);
                    if report.days > 0 {
                        tracing::info!(days = report.days, "sealed days of token_use");
                    }
                }
                Err(e) => {
                    metrics.seal_passes.with_label_values(&["error"]).inc();
                    tracing::warn!("sealing days of token_use failed (retried next tick): {e}");
                }
            }
        }
    }))
}
