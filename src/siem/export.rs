//! `tokentrail export`: follow ClickHouse and feed the SIEM, or backfill a time range.
//!
//! **Why poll ClickHouse rather than run a second Kafka consumer group.** Token-use records
//! only exist after correlation, which happens inside `ingest`; the raw Kafka topics carry
//! GitLab events, not records. A consumer group would need ingest to publish its records to
//! a new topic (an extra write on the hot path, and a second delivery contract to keep).
//! ClickHouse already holds exactly what the SIEM needs, deduplicated by the same record
//! keys, and the same reader serves backfills. The price is latency (one poll interval plus
//! the batch interval of ingest) and the look-back described in [`super::state`].
//!
//! Follow mode, per table: read the rows whose follow column (`ingested_at_ms`,
//! `updated_at_ms`; `event_time_ms` for `token_lifecycle`, which has no insert time) lies
//! in `[watermark - lookback, now]`, skip the ones already sent, deliver the rest in
//! batches, and save the position after each acknowledged batch.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{SiemSettings, SinkKind};
use super::delivery::SinkError;
use super::encode::{Format, encode};
use super::record::RecordKind;
use super::sink::Sink;
use super::source::{self, Cursor, PageMode, SourceError, TableReader, TableSpec};
use super::state::{ExportState, StateError, TableState};
use crate::kafka::settings::KafkaSettings;
use crate::store::settings::ClickHouseSettings;
use crate::store::sink as store_sink;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Everything an export run needs.
pub struct Exporter {
    reader: TableReader,
    sink: Sink,
    format: Format,
    batch_rows: usize,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Exporter {
    pub fn new(
        clickhouse: &ClickHouseSettings,
        kafka: &KafkaSettings,
        siem: &SiemSettings,
        format: Format,
        sink: SinkKind,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Exporter, ExportError> {
        let client = store_sink::client(clickhouse);
        Ok(Exporter {
            reader: TableReader::new(client, &clickhouse.database),
            sink: Sink::new(kafka, siem, sink, format, metrics, cancel)?,
            format,
            batch_rows: siem.batch_rows,
        })
    }

    /// The tables to export: `alerts` only once the alerting stage has created it.
    async fn tables(&self) -> Result<Vec<&'static TableSpec>, ExportError> {
        let mut specs = vec![&source::TOKEN_USE, &source::TOKEN_LIFECYCLE];
        if self.reader.table_exists(source::ALERTS.table).await? {
            specs.push(&source::ALERTS);
        }
        Ok(specs)
    }

    async fn deliver(&mut self, rows: &[source::SourceRow]) -> Result<(), ExportError> {
        let batch: Vec<_> = rows
            .iter()
            .map(|r| encode(self.format, &r.record))
            .collect();
        self.sink.deliver(&batch).await?;
        Ok(())
    }

    /// One follow pass over one table; returns how many rows were delivered.
    async fn follow_table(
        &mut self,
        spec: &TableSpec,
        state: &mut TableState,
        lookback_ms: i64,
        save: &mut impl FnMut(&TableState) -> Result<(), StateError>,
    ) -> Result<u64, ExportError> {
        let mode = PageMode::Follow { until_ms: now_ms() };
        let mut after = state.scan_start(lookback_ms);
        let mut delivered = 0;
        loop {
            let page = self
                .reader
                .page(spec, mode, &after, self.batch_rows)
                .await?;
            let full = page.len() == self.batch_rows;
            if let Some(last) = page.last() {
                after = last.cursor.clone();
            }
            let fresh: Vec<_> = page
                .into_iter()
                .filter(|r| !state.was_sent(&r.cursor))
                .collect();
            if !fresh.is_empty() {
                self.deliver(&fresh).await?;
                for r in &fresh {
                    state.mark_sent(&r.cursor);
                }
                state.prune(lookback_ms);
                save(state)?;
                delivered += fresh.len() as u64;
            }
            if !full {
                return Ok(delivered);
            }
        }
    }

    /// Follows the tables until `cancel` fires, resuming from `state_file`.
    pub async fn follow(
        &mut self,
        siem: &SiemSettings,
        state_file: PathBuf,
        cancel: CancellationToken,
    ) -> Result<(), ExportError> {
        let mut state = ExportState::load(&state_file)?;
        let poll = Duration::from_millis(siem.poll_interval_ms);
        while !cancel.is_cancelled() {
            let mut delivered = 0;
            for spec in self.tables().await? {
                let lookback = match spec.kind {
                    RecordKind::TokenLifecycle => siem.lifecycle_lookback_ms,
                    _ => siem.lookback_ms,
                };
                let mut table = state.table(spec.kind).clone();
                let mut save = |t: &TableState| {
                    let mut snapshot = state.clone();
                    *snapshot.table(spec.kind) = t.clone();
                    snapshot.save(&state_file)
                };
                let result = self
                    .follow_table(spec, &mut table, lookback, &mut save)
                    .await;
                *state.table(spec.kind) = table;
                match result {
                    Ok(n) => delivered += n,
                    Err(ExportError::Sink(SinkError::Cancelled)) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            if delivered > 0 {
                tracing::info!(delivered, "SIEM records exported");
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    /// Exports every row whose event time lies in `[from_ms, to_ms)`, reading the
    /// deduplicated (FINAL) tables. `progress` gets the total first, then each batch size.
    pub async fn backfill(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        progress: &indicatif::ProgressBar,
    ) -> Result<u64, ExportError> {
        let mode = PageMode::Backfill { from_ms, to_ms };
        let tables = self.tables().await?;
        let mut total = 0;
        for spec in &tables {
            total += self.reader.count(spec, mode).await?;
        }
        progress.set_length(total);
        let mut delivered = 0;
        for spec in tables {
            let mut after = Cursor {
                order_ms: from_ms,
                key: String::new(),
            };
            loop {
                let page = self
                    .reader
                    .page(spec, mode, &after, self.batch_rows)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.cursor.clone();
                self.deliver(&page).await?;
                delivered += page.len() as u64;
                progress.inc(page.len() as u64);
                if page.len() < self.batch_rows {
                    break;
                }
            }
        }
        Ok(delivered)
    }
}
