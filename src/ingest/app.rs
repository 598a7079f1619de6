//! `tokentrail ingest` from start to stop: [`IngestApp::build`] connects and restores what the
//! stages remember from ClickHouse; [`IngestApp::run_until_stopped`] wires the loop, the
//! writer and the alert dispatcher, runs them, and on shutdown drains within the deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alert_dispatch::AlertDispatch;
use super::correlation::CorrelationStage;
use super::error::IngestError;
pub use super::pipeline::RunSummary;
use super::pipeline::{Loop, LoopIo};
use super::process::Processor;
use super::writer::{Done, Sealed, Writer};
use super::{allowlist_history, bot_history, seal_timer};
use crate::alert::output::AlertOutputs;
use crate::alert::{self, AlertEngine};
use crate::config::Settings;
use crate::correlate::actors::KnownBots;
use crate::kafka::consumer::{self, IngestConsumer, RebalanceShared};
use crate::kafka::dead_letter::{DeadLetterError, DeadLetterProducer};
use crate::kafka::producer;
use crate::store::chunk_pool;
use crate::store::read::{self, ReadError};
use crate::store::schema::Dialect;
use crate::store::sink::{self, ClickHouseSink};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::Health;

/// Runs ingest until `cancel` fires (graceful shutdown) or a fatal error.
pub async fn run(
    settings: &Settings,
    metrics: Metrics,
    health: Health,
    cancel: CancellationToken,
) -> Result<RunSummary, IngestError> {
    IngestApp::build(settings, metrics, health, &cancel)
        .await?
        .run_until_stopped(cancel)
        .await
}

/// Connected and restored, not yet consuming.
pub struct IngestApp {
    settings: Settings,
    metrics: Metrics,
    health: Health,
    store: ClickHouseSink,
    processor: Processor,
    alert_outputs: AlertOutputs,
    consumer: Arc<IngestConsumer>,
    shared: Arc<Mutex<RebalanceShared>>,
    dlq: DeadLetterProducer,
    exit_when_caught_up: bool,
}

impl IngestApp {
    /// Waits for ClickHouse, restores the allowlist history, the known bot users and the
    /// alert rules' memory from it, and creates the Kafka clients (which connect lazily).
    pub async fn build(
        settings: &Settings,
        metrics: Metrics,
        health: Health,
        cancel: &CancellationToken,
    ) -> Result<IngestApp, IngestError> {
        let client = sink::client(&settings.clickhouse);
        let dialect = wait_for_clickhouse(&client, cancel).await?;
        let database = &settings.clickhouse.database;
        let store = ClickHouseSink::new(
            client,
            database.clone(),
            dialect,
            settings.retry.clone(),
            metrics.clone(),
        );
        // One sealed batch is written while the next fills: the chunks of both are reused.
        chunk_pool::make_room_for(2 * settings.batch.max_bytes);
        let mut stage = CorrelationStage::new(&settings.correlate);
        let restored = allowlist_history::restore(
            store.client(),
            database,
            stage.correlator_mut().allowlist_mut(),
        )
        .await
        .map_err(IngestError::Read)?;
        tracing::info!(
            changes = restored,
            "allowlist state restored from ClickHouse"
        );
        let mut bots = KnownBots::default();
        let learned = bot_history::restore(store.client(), database, &mut bots)
            .await
            .map_err(IngestError::Read)?;
        tracing::info!(bots = learned, "known bot users restored from ClickHouse");
        let mut alerts = AlertEngine::new(&settings.alerting);
        if settings.alerting.enabled {
            let hydrated = alert::hydrate::hydrate(
                store.client(),
                database,
                settings.alerting.rules.new_edge.lookback_ms,
                settings.alerting.suppression_window_ms,
                &mut alerts,
            )
            .await
            .map_err(IngestError::Read)?;
            tracing::info!(?hydrated, "alerting state restored from ClickHouse");
        }
        // One producer for the alert output and the dead-letter topic: each librdkafka
        // producer brings its own threads and broker connections, and rdkafka's polling
        // thread spins for part of every 100 ms wait even when nothing is sent
        // (benches/README.md, "Fifteenth session").
        let producer = producer::producer(&settings.kafka)?;
        let alert_outputs = AlertOutputs::new(&settings.alerting.outputs, producer.clone())?;
        let (consumer, shared) = consumer::consumer(&settings.kafka, metrics.clone())?;
        let dlq = DeadLetterProducer::new(
            producer,
            settings.kafka.dead_letter_topic.clone(),
            settings.dead_letter.max_payload_bytes,
            metrics.clone(),
        );
        Ok(IngestApp {
            processor: Processor::new(settings, stage, alerts, bots, metrics.clone()),
            settings: settings.clone(),
            metrics,
            health,
            store,
            alert_outputs,
            consumer: Arc::new(consumer),
            shared,
            dlq,
            exit_when_caught_up: false,
        })
    }

    /// Stop like on a signal (drain, commit, exit) once every assigned partition is committed
    /// to its end: for batch runs, demos and tests (`ingest --exit-when-caught-up`).
    pub fn exit_when_caught_up(mut self, exit: bool) -> Self {
        self.exit_when_caught_up = exit;
        self
    }

    /// Consumes until `cancel` fires or a fatal error. On shutdown, seals what is open and
    /// lets the writer finish within `shutdown.deadline_secs`; on a fatal error, commits
    /// nothing more.
    pub async fn run_until_stopped(
        self,
        cancel: CancellationToken,
    ) -> Result<RunSummary, IngestError> {
        let IngestApp {
            settings,
            metrics,
            health,
            store,
            processor,
            alert_outputs,
            consumer,
            shared,
            dlq,
            exit_when_caught_up,
        } = self;
        health.set_ready(true);
        // The writer may be interrupted only at the shutdown deadline, not at the signal
        // itself: on a signal we still flush and commit what we have.
        let writer_cancel = CancellationToken::new();
        let pages = alert_outputs.pages();
        let (dispatch, dispatcher) =
            AlertDispatch::spawn(alert_outputs, writer_cancel.clone(), metrics.clone());
        let (sealed_tx, sealed_rx) = mpsc::channel::<Sealed>(1);
        let (done_tx, done_rx) = mpsc::channel::<Result<Done, IngestError>>(2);
        let sealing = seal_timer::spawn(
            store.client().clone(),
            settings.clickhouse.cluster(),
            Duration::from_secs(settings.clickhouse.seal_every_secs),
            metrics.clone(),
            cancel.clone(),
        );
        let writer = Writer {
            store,
            dlq: dlq.clone(),
            pages,
            metrics: metrics.clone(),
        };
        let writer = tokio::spawn(writer.run(sealed_rx, done_tx, writer_cancel.clone()));

        let io = LoopIo {
            consumer,
            shared,
            dlq,
            dispatch,
            done_rx,
        };
        let mut ingest = Loop::new(&settings, io, processor, metrics, health.clone())
            .exit_when_caught_up(exit_when_caught_up);
        let result = match ingest.run(&sealed_tx, &cancel).await {
            // Shutdown while a dead-letter copy waited for Kafka: that message was not
            // consumed (its copy comes first), so everything before it may be drained.
            Err(IngestError::DeadLetter(DeadLetterError::Interrupted { .. })) => Ok(()),
            other => other,
        };

        if let Err(e) = &result {
            // A fatal error stops without committing anything more: the open batch may hold
            // the message that failed (or, for the ratio guard, the window it judged), and
            // batches in flight are replayed and deduplicated after the restart.
            tracing::error!("ingest stopped without committing what it had not yet committed: {e}");
            health.set_unready(format!("stopped: {e}"));
            writer_cancel.cancel();
        } else {
            let deadline = Duration::from_secs(settings.shutdown.deadline_secs);
            let drained = tokio::time::timeout(deadline, ingest.drain(&sealed_tx)).await;
            if drained.is_err() {
                tracing::warn!(
                    "shutdown deadline reached with batches in flight; they were not \
                     committed and will be replayed on restart"
                );
                writer_cancel.cancel();
            }
        }
        drop(sealed_tx);
        let _ = writer.await;
        let summary = ingest.finish();
        let _ = dispatcher.await;
        if let Some(sealing) = sealing {
            sealing.abort();
        }
        if result.is_ok() {
            health.set_unready("stopped");
        }
        tracing::info!(?summary, "ingest stopped");
        result.map(|()| summary)
    }
}

/// Waits until ClickHouse answers, and picks the DDL dialect from its version.
async fn wait_for_clickhouse(
    client: &clickhouse::Client,
    cancel: &CancellationToken,
) -> Result<Dialect, IngestError> {
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match read::server_version(client).await {
            Ok(v) => {
                tracing::info!(version = %v, "connected to ClickHouse");
                return Ok(Dialect::for_version(v));
            }
            Err(ReadError::Retryable { message, .. }) => {
                tracing::warn!("ClickHouse not reachable yet: {message}");
            }
            Err(other) => return Err(IngestError::Read(other)),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = cancel.cancelled() => return Err(IngestError::Read(ReadError::Retryable {
                code: None, message: "shutdown before ClickHouse became reachable".into() })),
        }
    }
}
