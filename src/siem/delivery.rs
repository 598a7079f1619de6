//! What every SIEM sink shares: its errors, the handling of a failed attempt (count, back
//! off or give up), and the local host name some formats carry.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::retry::Backoff;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink} sink: cannot be set up: {message}")]
    Setup { sink: &'static str, message: String },
    /// Retrying cannot help; the batch was not delivered and the export stops before its
    /// position is saved, so it is sent again once the problem is fixed.
    #[error("{sink} sink: {message}")]
    Fatal { sink: &'static str, message: String },
    #[error("{sink} sink: gave up after {attempts} attempts: {last}")]
    GaveUp {
        sink: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("shutdown requested before the batch was delivered")]
    Cancelled,
}

/// What one delivery attempt reported.
#[derive(Debug)]
pub enum AttemptError {
    /// Try again after the backoff (or after the server's Retry-After).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

/// Handles a failed attempt: counts it, and either waits out the backoff (`Ok`: try again)
/// or says why the batch is abandoned. Each sink runs
/// `loop { match attempt().await { Ok(()) => return Ok(()), Err(e) => after_failure(..).await? } }`.
pub async fn after_failure(
    sink: &'static str,
    backoff: &mut Backoff,
    metrics: &Metrics,
    cancel: &CancellationToken,
    error: AttemptError,
) -> Result<(), SinkError> {
    metrics.siem_failures.with_label_values(&[sink]).inc();
    let (message, hint) = match error {
        AttemptError::Fatal(message) => return Err(SinkError::Fatal { sink, message }),
        AttemptError::Retry {
            message,
            retry_after,
        } => (message, retry_after),
    };
    let Some(delay) = backoff.next_delay(hint) else {
        return Err(SinkError::GaveUp {
            sink,
            attempts: backoff.attempts(),
            last: message,
        });
    };
    tracing::warn!(sink, %message, delay_ms = delay.as_millis() as u64, "SIEM delivery failed; retrying");
    tokio::select! {
        _ = tokio::time::sleep(delay) => Ok(()),
        _ = cancel.cancelled() => Err(SinkError::Cancelled),
    }
}

/// This machine's host name, for syslog HOSTNAME and the HEC `host` field.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "-".into())
}
