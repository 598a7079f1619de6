//! `tokentrail ingest`: the whole flow in one place.
//!
//! ```text
//! Kafka ──recv──▶ normalize (pure) ──▶ correlate (pure) ──▶ route: encode rows into the
//!                      │                                        open Batch
//!                      │                                         │ full or old enough: seal
//!                      └─ rejections ─▶ DLQ (acked)   ▼
//!                                        bounded channel (1 sealed batch)
//!                                                 ▼
//!                 writer task: alert tickets acked, then
//!                              ClickHouse INSERTs (retry / bisect)
//!                                                 ▼ WriteReceipt
//!                         PendingOffsets ──into_durable──▶ OffsetTracker ──▶ sync commit
//! ```
//!
//! Back-pressure: one batch is written while the next fills. When the next is full and the
//! writer is still busy, the assigned partitions are paused; librdkafka's prefetch cap bounds
//! what still arrives. The commit step is last, and only a `WriteReceipt` leads to it; the
//! correlation stage may hold it back further for messages whose events it still holds.
//!
//! Watermark alignment: the correlator decides events once the slowest audit partition's
//! watermark passes them, so a partition that runs far ahead would pile events up in it.
//! While it holds more than half of `correlate.max_pending`, audit partitions ahead of the
//! slowest by more than the lateness are paused until it holds a quarter
//! ([`CorrelationStage::partitions_ahead`]).
//!
//! Alerting rides along: the rules see every token-use record and every audit event as it is
//! routed; their alert rows join the same batch, and are handed at once to the alert
//! dispatcher, which pages (Kafka topic, webhook) without waiting for the batch. The writer
//! awaits the batch's delivery tickets before writing it, so no committed offset has an
//! undelivered alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Headers;
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alert_dispatch::{self, AlertDispatch, Ticket};
use super::allowlist_history;
use super::batch::Block;
use super::bot_history;
use super::correlation::{CorrelationStage, Released};
use super::process::Processor;
use crate::alert::output::{AlertOutputs, OutputError};
use crate::alert::{self, AlertEngine, Emitted};
use crate::config::Settings;
use crate::correlate::actors::KnownBots;
use crate::kafka::client;
use crate::kafka::consumer::{self, IngestConsumer, RebalanceShared};
use crate::kafka::dead_letter::{
    DeadLetterError, DeadLetterItem, DeadLetterProducer, GuardTripped, RatioGuard,
};
use crate::kafka::offsets::{DurableOffsets, PendingOffsets};
use crate::model::{InputMessage, SourceKind, TokenUse};
use crate::normalize::{self, Limits};
use crate::store::block::TopicPartition;
use crate::store::schema::Dialect;
use crate::store::sink::{self, ClickHouseSink, RejectedRow, SinkError, WriteError};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::Health;

/// How often (in messages) the loop re-checks partition alignment while messages keep
/// arriving (the periodic tick does not fire then).
const ALIGN_EVERY_MESSAGES: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error(transparent)]
    Guard(#[from] GuardTripped),
    #[error("ClickHouse: {0}")]
    Store(WriteError),
    #[error(transparent)]
    AlertOutput(Arc<OutputError>),
    #[error("message from unconfigured topic {0:?}")]
    UnknownTopic(String),
}

impl From<OutputError> for IngestError {
    fn from(e: OutputError) -> Self {
        IngestError::AlertOutput(Arc::new(e))
    }
}

/// What a run did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub messages: u64,
    pub rows_written: u64,
    pub dead_lettered: u64,
    pub batches: u64,
}

/// A sealed batch on its way to the writer.
struct Sealed {
    blocks: Vec<Block>,
    pending: PendingOffsets,
    /// Messages the correlator had decided by the time the batch was sealed.
    released: Released,
    oldest_kafka_ts_ms: Option<i64>,
    rows: usize,
    bytes: usize,
    /// Alert rows in `blocks`, counted once they are durable.
    alerts: Vec<Emitted>,
    /// Acknowledgements of the paging outputs for those rows.
    tickets: Vec<Ticket>,
}

/// What the writer hands back to the loop.
struct Done {
    durable: DurableOffsets,
    released: Released,
    oldest_kafka_ts_ms: Option<i64>,
    rows: usize,
    bytes: usize,
    rows_by_table: Vec<(&'static str, usize)>,
}

/// Runs until `cancel` fires (graceful shutdown) or a fatal error.
pub async fn run(
    settings: &Settings,
    metrics: Metrics,
    health: Health,
    cancel: CancellationToken,
) -> Result<RunSummary, IngestError> {
    let client = sink::client(&settings.clickhouse);
    let dialect = wait_for_clickhouse(&client, &cancel).await?;
    let store = ClickHouseSink::new(
        client,
        settings.clickhouse.database.clone(),
        dialect,
        settings.retry.clone(),
        metrics.clone(),
    );
    let mut stage = CorrelationStage::new(&settings.correlate);
    let restored = allowlist_history::restore(
        store.client(),
        &settings.clickhouse.database,
        stage.correlator_mut().allowlist_mut(),
    )
    .await
    .map_err(IngestError::Store)?;
    tracing::info!(
        changes = restored,
        "allowlist state restored from ClickHouse"
    );
    let mut bots = KnownBots::default();
    let learned = bot_history::restore(store.client(), &settings.clickhouse.database, &mut bots)
        .await
        .map_err(IngestError::Store)?;
    tracing::info!(bots = learned, "known bot users restored from ClickHouse");
    let mut alerts = AlertEngine::new(&settings.alerting);
    if settings.alerting.enabled {
        let hydrated = alert::hydrate::hydrate(
            store.client(),
            &settings.clickhouse.database,
            settings.alerting.rules.new_edge.lookback_ms,
            settings.alerting.suppression_window_ms,
            &mut alerts,
        )
        .await
        .map_err(IngestError::Store)?;
        tracing::info!(?hydrated, "alerting state restored from ClickHouse");
    }
    let alert_outputs = AlertOutputs::new(
        &settings.alerting.outputs,
        client::producer(&settings.kafka)?,
    )?;
    let pages = alert_outputs.pages();
    let (consumer, shared) = consumer::consumer(&settings.kafka, metrics.clone())?;
    let consumer = Arc::new(consumer);
    let dlq = DeadLetterProducer::new(
        client::producer(&settings.kafka)?,
        settings.kafka.dead_letter_topic.clone(),
        settings.dead_letter.max_payload_bytes,
        metrics.clone(),
    );
    health.set_ready(true);

    // The writer may be interrupted only at the shutdown deadline, not at the signal itself:
    // on a signal we still flush and commit what we have.
    let writer_cancel = CancellationToken::new();
    let (dispatch, dispatcher) =
        AlertDispatch::spawn(alert_outputs, writer_cancel.clone(), metrics.clone());
    let (sealed_tx, sealed_rx) = mpsc::channel::<Sealed>(1);
    let (done_tx, done_rx) = mpsc::channel::<Result<Done, IngestError>>(2);
    let writer = tokio::spawn(writer_task(
        store,
        dlq.clone(),
        pages,
        sealed_rx,
        done_tx,
        writer_cancel.clone(),
        metrics.clone(),
    ));

    let mut ingest = Loop {
        settings,
        metrics: metrics.clone(),
        health: health.clone(),
        kafka_fault: None,
        consumer: consumer.clone(),
        shared,
        dlq,
        guard: RatioGuard::new(
            settings.dead_letter.window_messages,
            settings.dead_letter.max_ratio,
        ),
        kinds: consumer::topic_kinds(&settings.kafka),
        limits: Limits {
            max_message_bytes: settings.normalize.max_message_bytes,
        },
        work: Processor::new(settings, stage, alerts, metrics.clone()).with_bots(bots),
        dispatch,
        undispatched: 0,
        tickets: Vec::new(),
        last_position: None,
        in_flight: 0,
        paused: false,
        held_back: Vec::new(),
        summary: RunSummary::default(),
        done_rx,
    };
    let result = match ingest.run(&sealed_tx, &cancel).await {
        // Shutdown while a dead-letter copy waited for Kafka: that message was not consumed
        // (its copy comes first), so everything before it may be drained as usual.
        Err(IngestError::DeadLetter(DeadLetterError::Interrupted { .. })) => Ok(()),
        other => other,
    };

    if let Err(e) = &result {
        // A fatal error stops without committing anything more: the open batch may hold the
        // message that failed (or, for the ratio guard, the window it judged), and batches in
        // flight are replayed and deduplicated after the restart.
        tracing::error!("ingest stopped without committing what it had not yet committed: {e}");
        health.set_unready(format!("stopped: {e}"));
        writer_cancel.cancel();
    } else {
        // Shutdown: seal what is open, let the writer finish within the deadline, commit.
        let deadline = Duration::from_secs(settings.shutdown.deadline_secs);
        let drained = tokio::time::timeout(deadline, ingest.drain(&sealed_tx)).await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown deadline reached with batches in flight; they were not committed \
                 and will be replayed on restart"
            );
            writer_cancel.cancel();
        }
    }
    drop(sealed_tx);
    let _ = writer.await;
    drop(ingest.dispatch);
    let _ = dispatcher.await;
    if result.is_ok() {
        health.set_unready("stopped");
    }
    let summary = ingest.summary.clone();
    tracing::info!(?summary, "ingest stopped");
    result.map(|()| summary)
}

/// Waits until ClickHouse answers, and picks the DDL dialect from its version.
async fn wait_for_clickhouse(
    client: &clickhouse::Client,
    cancel: &CancellationToken,
) -> Result<Dialect, IngestError> {
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match sink::server_version(client).await {
            Ok(v) => {
                tracing::info!(version = %v, "connected to ClickHouse");
                return Ok(Dialect::for_version(v));
            }
            Err(WriteError::Retryable { message, .. }) => {
                tracing::warn!("ClickHouse not reachable yet: {message}");
            }
            Err(other) => return Err(IngestError::Store(other)),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = cancel.cancelled() => return Err(IngestError::Store(WriteError::Retryable {
                code: None, message: "shutdown before ClickHouse became reachable".into() })),
        }
    }
}

struct Loop<'a> {
    settings: &'a Settings,
    metrics: Metrics,
    health: Health,
    /// Since when Kafka has been failing (the consumer reported a transient error), and the
    /// backoff between retries; `None` while Kafka works.
    kafka_fault: Option<(std::time::Instant, crate::retry::Backoff)>,
    consumer: Arc<IngestConsumer>,
    shared: Arc<Mutex<RebalanceShared>>,
    dlq: DeadLetterProducer,
    guard: RatioGuard,
    kinds: HashMap<String, SourceKind>,
    limits: Limits,
    /// Batch, correlation stage and alert rules: the per-message work.
    work: Processor,
    dispatch: AlertDispatch,
    /// `work.outbox[undispatched..]`: alerts not yet handed to the dispatcher, whose tickets
    /// for the rest are in `tickets`.
    undispatched: usize,
    tickets: Vec<Ticket>,
    /// Where correlation records that no single message triggered (idle flush) are filed.
    last_position: Option<(TopicPartition, i64)>,
    in_flight: usize,
    paused: bool,
    /// Audit partitions paused because they ran ahead of the slowest (watermark alignment).
    held_back: Vec<TopicPartition>,
    summary: RunSummary,
    done_rx: mpsc::Receiver<Result<Done, IngestError>>,
}

impl Loop<'_> {
    async fn run(
        &mut self,
        sealed_tx: &mpsc::Sender<Sealed>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        let mut tick = tokio::time::interval(Duration::from_millis(
            (self.settings.batch.max_wait_ms / 4).max(10),
        ));
        let consumer = self.consumer.clone();
        loop {
            self.apply_revocations();
            let can_seal = self.in_flight == 0 && self.work.batch_due();
            if can_seal {
                self.seal(sealed_tx).await;
            }
            // Back-pressure: a full batch that cannot be handed to the busy writer pauses
            // fetching; messages librdkafka already prefetched still arrive and are kept.
            self.set_paused(self.work.batch_full() && self.in_flight > 0)?;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                done = self.done_rx.recv() => match done {
                    Some(done) => self.on_done(done?)?,
                    None => return Ok(()),
                },
                msg = consumer.recv() => {
                    let msg = match msg {
                        Ok(msg) => msg,
                        Err(e) if client::is_fatal(&e) => return Err(e.into()),
                        Err(e) => {
                            self.ride_out_kafka_error(&e, cancel).await;
                            continue;
                        }
                    };
                    self.kafka_recovered();
                    self.on_message(&msg, cancel).await?;
                    self.dispatch_alerts().await;
                    if self.summary.messages.is_multiple_of(ALIGN_EVERY_MESSAGES) {
                        self.align_partitions()?;
                    }
                }
                _ = tick.tick() => {
                    if self.kafka_fault.is_some() && self.brokers_back() {
                        self.kafka_recovered();
                    }
                    self.align_partitions()?;
                    let records = self.work.stage.on_idle();
                    self.push_records_at_last_position(records);
                    self.dispatch_alerts().await;
                    self.unpin_settled();
                }
            }
        }
    }

    /// Seals the open batch and waits for every batch in flight to be written and committed.
    async fn drain(&mut self, sealed_tx: &mpsc::Sender<Sealed>) {
        self.apply_revocations();
        let records = self.work.stage.flush_all();
        self.push_records_at_last_position(records);
        loop {
            if self.in_flight == 0 {
                if self.work.batch.is_empty() {
                    self.unpin_settled();
                    return;
                }
                self.seal(sealed_tx).await;
            }
            match self.done_rx.recv().await {
                Some(Ok(done)) => {
                    if let Err(e) = self.on_done(done) {
                        tracing::warn!("commit during shutdown failed: {e}");
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("batch not written during shutdown (will be replayed): {e}");
                    return;
                }
                None => return,
            }
        }
    }

    /// A transient Kafka error (brokers down, a name that does not resolve, a timeout):
    /// librdkafka reconnects by itself, so the loop counts it, reports not-ready with the
    /// reason, and backs off before polling again. Nothing is committed meanwhile that was
    /// not already durable.
    async fn ride_out_kafka_error(
        &mut self,
        e: &rdkafka::error::KafkaError,
        cancel: &CancellationToken,
    ) {
        self.metrics
            .kafka_errors
            .with_label_values(&[&client::error_kind(e)])
            .inc();
        let (last_error_at, backoff) = self
            .kafka_fault
            .get_or_insert_with(|| (std::time::Instant::now(), crate::retry::Backoff::kafka()));
        *last_error_at = std::time::Instant::now();
        let wait = backoff.next_delay();
        tracing::warn!(brokers = %self.settings.kafka.brokers, "Kafka error, retrying in {wait:?}: {e}");
        self.health.set_unready(format!(
            "Kafka unreachable at {}: {e}",
            self.settings.kafka.brokers
        ));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => {}
        }
    }

    /// Whether librdkafka's statistics, taken well after the last error, show a broker up
    /// again (a quiet topic brings no message to prove it).
    fn brokers_back(&self) -> bool {
        let Some((last_error_at, _)) = &self.kafka_fault else {
            return true;
        };
        let shared = self.shared.lock().expect("rebalance state");
        shared
            .brokers_up_at
            .is_some_and(|at| at > *last_error_at + consumer::STATS_INTERVAL)
    }

    fn kafka_recovered(&mut self) {
        if self.kafka_fault.take().is_some() {
            tracing::info!("Kafka reachable again");
            self.health.set_ready(true);
        }
    }

    fn set_paused(&mut self, pause: bool) -> Result<(), IngestError> {
        if pause == self.paused {
            return Ok(());
        }
        let assignment = self.consumer.assignment()?;
        if pause {
            self.consumer.pause(&assignment)?;
        } else {
            // Partitions held back for alignment stay paused.
            let mut resume = TopicPartitionList::new();
            for e in assignment.elements() {
                let tp: TopicPartition = (Arc::from(e.topic()), e.partition());
                if !self.held_back.contains(&tp) {
                    resume.add_partition(e.topic(), e.partition());
                }
            }
            self.consumer.resume(&resume)?;
        }
        self.paused = pause;
        self.metrics.paused.set(pause as i64);
        Ok(())
    }

    /// Pauses the audit partitions that ran ahead of the slowest while the correlator's
    /// held events pile up, and resumes them once it has caught up
    /// (`CorrelationStage::partitions_ahead`). Without it, a large backlog consumed unevenly
    /// overflows `correlate.max_pending` and matches are decided early as `auth_only`.
    fn align_partitions(&mut self) -> Result<(), IngestError> {
        let want = self.work.stage.partitions_ahead();
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        for tp in want.iter().filter(|tp| !self.held_back.contains(tp)) {
            pause.add_partition(&tp.0, tp.1);
        }
        for tp in self.held_back.iter().filter(|tp| !want.contains(tp)) {
            resume.add_partition(&tp.0, tp.1);
        }
        if pause.count() > 0 {
            tracing::info!(partitions = ?want, "pausing audit partitions ahead of the slowest");
            self.consumer.pause(&pause)?;
        }
        if resume.count() > 0 && !self.paused {
            self.consumer.resume(&resume)?;
        }
        self.held_back = want;
        Ok(())
    }

    /// Applies what the rebalance callbacks recorded since the last look.
    fn apply_revocations(&mut self) {
        let (revoked, assigned) = {
            let mut shared = self.shared.lock().expect("rebalance state");
            (
                std::mem::take(&mut shared.revoked),
                std::mem::take(&mut shared.assigned),
            )
        };
        for tp in &assigned {
            if self.kinds.get(&*tp.0) == Some(&SourceKind::AuditStream) {
                self.work.stage.assign(tp);
            }
        }
        self.held_back.retain(|tp| !revoked.contains(tp));
        for tp in &revoked {
            // Rows of a revoked partition are dropped with their offsets: the new owner
            // re-reads them from the last commit, so nothing is lost.
            self.work.batch.drop_partition(tp);
            self.work.stage.revoke(tp);
        }
    }

    async fn seal(&mut self, sealed_tx: &mpsc::Sender<Sealed>) {
        self.dispatch_alerts().await;
        let batch = std::mem::take(&mut self.work.batch);
        let (rows, bytes) = (batch.rows(), batch.bytes());
        let (blocks, pending, oldest_kafka_ts_ms) = batch.into_parts();
        self.in_flight += 1;
        let sealed = Sealed {
            blocks,
            pending,
            released: self.work.stage.take_decided(),
            oldest_kafka_ts_ms,
            rows,
            bytes,
            alerts: std::mem::take(&mut self.work.outbox),
            tickets: std::mem::take(&mut self.tickets),
        };
        self.undispatched = 0;
        if sealed_tx.send(sealed).await.is_err() {
            tracing::warn!("writer stopped; batch not written (will be replayed)");
        }
    }

    /// Dead-letters what the message cannot give, then routes what it can. The dead-letter
    /// copies come first: a message counts as consumed (and can ever be committed) only once
    /// every copy of it is acknowledged.
    async fn on_message(
        &mut self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        self.apply_revocations();
        let topic = msg.topic();
        let kind = *self
            .kinds
            .get(topic)
            .ok_or_else(|| IngestError::UnknownTopic(topic.to_string()))?;
        let tp: TopicPartition = (Arc::from(topic), msg.partition());
        let offset = msg.offset();
        let kafka_ts = msg.timestamp().to_millis();
        self.metrics.consumed.with_label_values(&[topic]).inc();
        self.summary.messages += 1;

        let headers = owned_headers(msg);
        let input = InputMessage {
            source: kind,
            topic,
            partition: tp.1,
            offset,
            timestamp_ms: kafka_ts,
            headers: &headers,
            payload: msg.payload(),
        };
        let mut normalized = normalize::normalize(&input, &self.limits);
        for rejection in &normalized.rejected {
            self.dlq
                .send(
                    &DeadLetterItem {
                        topic,
                        partition: tp.1,
                        offset,
                        kind: rejection.kind.as_str(),
                        message: &rejection.message,
                        element_index: rejection.index,
                        table: None,
                        key: msg.key(),
                        payload: msg.payload().unwrap_or_default(),
                        original_headers: &headers,
                    },
                    cancel,
                )
                .await?;
            self.metrics
                .dead_lettered
                .with_label_values(&[rejection.kind.as_str()])
                .inc();
            self.summary.dead_lettered += 1;
        }
        {
            let mut shared = self.shared.lock().expect("rebalance state");
            self.work
                .batch
                .consumed(&mut shared.tracker, &tp, offset, kafka_ts);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.work
            .on_events(&tp, offset, &mut normalized.events, now_ms);
        self.last_position = Some((tp.clone(), offset));
        self.guard.observe(!normalized.rejected.is_empty())?;
        Ok(())
    }

    /// Commits the durable prefix of every partition, capped by the correlation pins.
    fn commit(&mut self) {
        let commits = {
            let mut shared = self.shared.lock().expect("rebalance state");
            let RebalanceShared { tracker, caps, .. } = &mut *shared;
            caps.clear();
            for tp in tracker.partitions() {
                caps.insert(tp.clone(), self.work.stage.commit_cap(tp));
            }
            tracker.take_commits(|tp| caps.get(tp).copied().flatten())
        };
        if commits.is_empty() {
            return;
        }
        let list = consumer::commit_list(&commits);
        let consumer = self.consumer.clone();
        // A synchronous commit reports failure, unlike an async one; run it off the async
        // worker so it does not stall other tasks.
        let result = tokio::task::block_in_place(move || consumer.commit(&list, CommitMode::Sync));
        if let Err(e) = result {
            self.metrics.commit_failures.inc();
            tracing::warn!("offset commit failed, will retry with the next batch: {e}");
            self.shared
                .lock()
                .expect("rebalance state")
                .tracker
                .restore_commits(&commits);
        }
    }

    /// With nothing open and nothing in flight, every record emitted so far is durable, so
    /// messages the correlator has decided can be unpinned right away (a quiet stream would
    /// otherwise keep its last offsets uncommitted until new traffic arrives).
    fn unpin_settled(&mut self) {
        if self.in_flight > 0 || !self.work.batch.is_empty() {
            return;
        }
        let released = self.work.stage.take_decided();
        if !released.is_empty() {
            self.work.stage.written(&released);
            self.commit();
        }
    }

    /// Hands the alerts raised since the last call to the dispatcher, which pages at once.
    async fn dispatch_alerts(&mut self) {
        if self.undispatched == self.work.outbox.len() {
            return;
        }
        let fresh = self.work.outbox[self.undispatched..].to_vec();
        self.undispatched = self.work.outbox.len();
        self.tickets.push(self.dispatch.send(fresh).await);
    }

    fn push_records_at_last_position(&mut self, records: Vec<TokenUse>) {
        if records.is_empty() {
            return;
        }
        match self.last_position.clone() {
            Some((tp, offset)) => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                self.work.push_records(&tp, offset, records, now_ms);
            }
            None => tracing::warn!("correlation records without any consumed message"),
        }
    }

    fn on_done(&mut self, done: Done) -> Result<(), IngestError> {
        self.in_flight -= 1;
        self.work.stage.written(&done.released);
        self.shared
            .lock()
            .expect("rebalance state")
            .tracker
            .complete(done.durable);
        self.commit();
        for (table, rows) in &done.rows_by_table {
            self.metrics
                .stored_rows
                .with_label_values(&[table])
                .inc_by(*rows as u64);
        }
        self.metrics.batches.inc();
        self.metrics.batch_rows.observe(done.rows as f64);
        self.metrics.batch_bytes.observe(done.bytes as f64);
        if let Some(ts) = done.oldest_kafka_ts_ms {
            let lag_ms = chrono::Utc::now().timestamp_millis() - ts;
            self.metrics
                .end_to_end_lag
                .observe(lag_ms.max(0) as f64 / 1000.0);
        }
        self.summary.batches += 1;
        self.summary.rows_written += done.rows as u64;
        Ok(())
    }
}

fn owned_headers(msg: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    match msg.headers() {
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect(),
        None => Vec::new(),
    }
}

/// Writes sealed batches in order; only a successful write (and the acknowledged
/// dead-lettering of rows the store refused) turns their offsets durable.
async fn writer_task(
    store: ClickHouseSink,
    dlq: DeadLetterProducer,
    pages: bool,
    mut sealed_rx: mpsc::Receiver<Sealed>,
    done_tx: mpsc::Sender<Result<Done, IngestError>>,
    cancel: CancellationToken,
    metrics: Metrics,
) {
    while let Some(sealed) = sealed_rx.recv().await {
        // Outputs first: once the alert rows are in ClickHouse, a restart resumes from them
        // and would not re-deliver, so delivery must already have happened.
        for ticket in sealed.tickets {
            match ticket.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if matches!(*e, OutputError::Interrupted) => return,
                Ok(Err(e)) => {
                    let _ = done_tx.send(Err(IngestError::AlertOutput(e))).await;
                    return;
                }
                // The dispatcher stopped (shutdown deadline, or its own failure reported
                // on an earlier ticket): the batch stays unwritten and is replayed.
                Err(_) => return,
            }
        }
        let result = match store.write(&sealed.blocks, &cancel).await {
            Ok(written) => {
                match dead_letter_rejected(&dlq, &written.rejected, &metrics, &cancel).await {
                    Ok(()) => {
                        observe_alerts(&metrics, &sealed.alerts, pages);
                        let mut rows_by_table: Vec<(&'static str, usize)> = Vec::new();
                        for b in &sealed.blocks {
                            rows_by_table.push((b.table.name(), b.rows.len()));
                        }
                        Ok(Done {
                            durable: sealed.pending.into_durable(written.receipt),
                            released: sealed.released,
                            oldest_kafka_ts_ms: sealed.oldest_kafka_ts_ms,
                            rows: sealed.rows - written.rejected.len(),
                            bytes: sealed.bytes,
                            rows_by_table,
                        })
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(SinkError::Interrupted) => return,
            Err(SinkError::Fatal(e)) => Err(IngestError::Store(e)),
        };
        let fatal = result.is_err();
        if done_tx.send(result).await.is_err() || fatal {
            return;
        }
    }
}

/// Every output has acknowledged these alert rows: count them. Their latency is recorded
/// when the paging outputs acknowledged them, or here when ClickHouse is the only output.
fn observe_alerts(metrics: &Metrics, alerts: &[Emitted], pages: bool) {
    for e in alerts {
        let rule = e.alert.rule.as_str();
        metrics.alert_rows.with_label_values(&[rule]).inc();
        if e.new {
            metrics.alerts.with_label_values(&[rule]).inc();
        }
    }
    if !pages {
        alert_dispatch::observe_latency(metrics, alerts);
    }
}

async fn dead_letter_rejected(
    dlq: &DeadLetterProducer,
    rejected: &[RejectedRow],
    metrics: &Metrics,
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
        dlq.send(
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
        metrics
            .dead_lettered
            .with_label_values(&["rejected_by_store"])
            .inc();
    }
    Ok(())
}
