//! Pages as soon as an alert is raised, without waiting for its batch.
//!
//! Alert rows ride in the ingest batch to ClickHouse, and a batch is sealed when it is full or
//! old enough, which at high rates adds a second or more. The paging outputs (Kafka topic,
//! webhook) must not wait for that: the loop hands each message's alerts to this task at once
//! and keeps a [`Ticket`] for them in the open batch. The writer awaits every ticket of a
//! batch before writing it, so the ordering that makes delivery at-least-once still holds:
//! outputs acknowledged → rows written → offsets committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::alert::Emitted;
use crate::alert::output::{AlertOutputs, OutputError};
use crate::telemetry::metrics::Metrics;

/// Resolves once the outputs acknowledged the alerts it was issued for.
pub type Ticket = oneshot::Receiver<Result<(), Arc<OutputError>>>;

type Job = (Vec<Emitted>, oneshot::Sender<Result<(), Arc<OutputError>>>);

/// Queue between the ingest loop and the delivery task. Bounded: a slow webhook slows the loop
/// down rather than growing memory.
#[derive(Clone)]
pub struct AlertDispatch {
    tx: mpsc::Sender<Job>,
}

impl AlertDispatch {
    /// Starts the delivery task. It stops when every `AlertDispatch` is dropped, on the first
    /// failed delivery, or when `cancel` interrupts a retry.
    pub fn spawn(
        outputs: AlertOutputs,
        cancel: CancellationToken,
        metrics: Metrics,
    ) -> (AlertDispatch, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(deliver_loop(outputs, rx, cancel, metrics));
        (AlertDispatch { tx }, task)
    }

    /// Queues `alerts` for delivery. With the task gone (shutdown or a failed delivery), the
    /// ticket resolves to a closed channel, which the writer treats as "not delivered".
    pub async fn send(&self, alerts: Vec<Emitted>) -> Ticket {
        let (done_tx, done_rx) = oneshot::channel();
        let _ = self.tx.send((alerts, done_tx)).await;
        done_rx
    }
}

async fn deliver_loop(
    outputs: AlertOutputs,
    mut rx: mpsc::Receiver<Job>,
    cancel: CancellationToken,
    metrics: Metrics,
) {
    while let Some(first) = rx.recv().await {
        // Whatever queued up meanwhile goes in the same round: one Kafka row per alert id.
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let alerts: Vec<Emitted> = jobs.iter().flat_map(|(a, _)| a.iter().cloned()).collect();
        let result = outputs.deliver(&alerts, &cancel).await.map_err(Arc::new);
        if result.is_ok() && outputs.pages() {
            observe_latency(&metrics, &alerts);
        }
        let failed = result.is_err();
        for (_, done) in jobs {
            let _ = done.send(result.clone());
        }
        if failed {
            return;
        }
    }
}

/// Event time → acknowledged by the outputs, per alert row.
pub fn observe_latency(metrics: &Metrics, alerts: &[Emitted]) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    for e in alerts {
        let latency_ms = (now_ms - e.alert.event_time_ms).max(0);
        metrics.alert_latency.observe(latency_ms as f64 / 1000.0);
    }
}
