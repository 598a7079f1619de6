//! The writer step: sealed batches in order, the acknowledgements of their dead-letter copies
//! and alert deliveries first, then the store, then the dead-lettering of rows the store
//! refused. Only that sequence turns a batch's offsets
//! durable; what it hands back ([`Done`]) is all the commit step needs.

use std::future::Future;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alert_dispatch::{self, Ticket};
use super::correlation::Released;
use super::error::IngestError;
use super::process::SealedWork;
use crate::alert::Emitted;
use crate::alert::output::OutputError;
use crate::kafka::dead_letter::{
    DeadLetterError, DeadLetterItem, DeadLetterProducer, DeadLetterTicket,
};
use crate::kafka::offsets::DurableOffsets;
use crate::store::block::Block;
use crate::store::sink::{ClickHouseSink, RejectedRow, SinkError, Written};
use crate::telemetry::metrics::Metrics;

/// Where sealed batches are stored: ClickHouse in production, a recording double in the
/// pipeline tests (`ingest::pipeline_tests`).
pub trait BatchWriter: Send + Sync + 'static {
    /// Returns only when every row is stored or refused (refused rows come back in
    /// `Written::rejected`), or with a fatal error, or `SinkError::Interrupted` on `cancel`.
    fn write(
        &self,
        blocks: &[Block],
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Written, SinkError>> + Send;
}

impl BatchWriter for ClickHouseSink {
    fn write(
        &self,
        blocks: &[Block],
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Written, SinkError>> + Send {
        ClickHouseSink::write(self, blocks, cancel)
    }
}

/// A sealed batch on its way to the writer.
pub struct Sealed {
    pub work: SealedWork,
    /// Acknowledgements of the paging outputs for the batch's alert rows.
    pub tickets: Vec<Ticket>,
    /// Acknowledgements of the dead-letter copies of the batch's messages.
    pub dead_letters: Vec<DeadLetterTicket>,
}

/// What the writer hands back to the loop.
pub struct Done {
    pub durable: DurableOffsets,
    pub released: Released,
    pub oldest_kafka_ts_ms: Option<i64>,
    pub rows: usize,
    pub bytes: usize,
    pub rows_by_table: Vec<(&'static str, usize)>,
}

/// The writer task's fixed parts.
pub struct Writer<W> {
    pub store: W,
    pub dlq: DeadLetterProducer,
    /// Whether a paging output exists (alert latency is then measured at its acknowledgement).
    pub pages: bool,
    pub metrics: Metrics,
}

impl<W: BatchWriter> Writer<W> {
    /// Writes sealed batches in order until the channel closes, a batch fails fatally, or
    /// `cancel` interrupts a retry (then the batch stays unwritten and is replayed).
    pub async fn run(
        self,
        mut sealed_rx: mpsc::Receiver<Sealed>,
        done_tx: mpsc::Sender<Result<Done, IngestError>>,
        cancel: CancellationToken,
    ) {
        while let Some(sealed) = sealed_rx.recv().await {
            let Some(result) = self.write(sealed, &cancel).await else {
                return;
            };
            let fatal = result.is_err();
            if done_tx.send(result).await.is_err() || fatal {
                return;
            }
        }
    }

    /// `None`: interrupted, nothing to report.
    async fn write(
        &self,
        sealed: Sealed,
        cancel: &CancellationToken,
    ) -> Option<Result<Done, IngestError>> {
        // A message counts as consumed only once its dead-letter copies are acknowledged.
        for ticket in sealed.dead_letters {
            match ticket.acknowledged().await {
                Ok(()) => {}
                Err(DeadLetterError::Interrupted { .. }) => return None,
                Err(e) => return Some(Err(e.into())),
            }
        }
        // Outputs first: once the alert rows are in ClickHouse, a restart resumes from them
        // and would not re-deliver, so delivery must already have happened.
        for ticket in sealed.tickets {
            match ticket.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if matches!(*e, OutputError::Interrupted) => return None,
                Ok(Err(e)) => return Some(Err(IngestError::AlertOutput(e))),
                // The dispatcher stopped (shutdown deadline, or its own failure reported
                // on an earlier ticket): the batch stays unwritten and is replayed.
                Err(_) => return None,
            }
        }
        let SealedWork {
            batch,
            released,
            alerts,
        } = sealed.work;
        let written = match self.store.write(&batch.blocks, cancel).await {
            Ok(written) => written,
            Err(SinkError::Interrupted) => return None,
            Err(SinkError::Fatal(e)) => return Some(Err(IngestError::Store(e))),
        };
        if let Err(e) = self.dead_letter_rejected(&written.rejected, cancel).await {
            return Some(Err(e.into()));
        }
        self.observe_alerts(&alerts);
        let rows_by_table = batch
            .blocks
            .iter()
            .map(|b| (b.table.name(), b.rows.len()))
            .collect();
        Some(Ok(Done {
            durable: batch.pending.into_durable(written.receipt),
            released,
            oldest_kafka_ts_ms: batch.oldest_kafka_ts_ms,
            rows: batch.rows - written.rejected.len(),
            bytes: batch.bytes,
            rows_by_table,
        }))
    }

    /// Every output has acknowledged these alert rows: count them. Their latency is recorded
    /// when the paging outputs acknowledged them, or here when ClickHouse is the only output.
    fn observe_alerts(&self, alerts: &[Emitted]) {
        for e in alerts {
            let rule = e.alert.rule.as_str();
            self.metrics.alert_rows.with_label_values(&[rule]).inc();
            if e.new {
                self.metrics.alerts.with_label_values(&[rule]).inc();
            }
        }
        if !self.pages {
            alert_dispatch::observe_latency(&self.metrics, alerts);
        }
    }

    async fn dead_letter_rejected(
        &self,
        rejected: &[RejectedRow],
        cancel: &CancellationToken,
    ) -> Result<(), DeadLetterError> {
        for row in rejected {
            tracing::warn!(
                table = row.table.name(),
                topic = %row.tp.0,
                partition = row.tp.1,
                offset = row.offset,
                "ClickHouse rejected a row; dead-lettering it: {}",
                row.message
            );
            self.dlq
                .send(
                    &DeadLetterItem {
                        topic: &row.tp.0,
                        partition: row.tp.1,
                        offset: row.offset,
                        kind: "rejected_by_store",
                        message: &row.message,
                        element_index: None,
                        table: Some(row.table.name()),
                        key: None,
                        payload: &row.row,
                        original_headers: &[],
                    },
                    cancel,
                )
                .await?;
            self.metrics
                .dead_lettered
                .with_label_values(&["rejected_by_store"])
                .inc();
        }
        Ok(())
    }
}
