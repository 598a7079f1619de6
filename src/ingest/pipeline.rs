//! The ingest loop: the whole flow in one place. `app.rs` builds it and runs it until stopped.
//!
//! ```text
//! Kafka ──recv──▶ normalize (pure) ──▶ correlate (pure) ──▶ route: encode rows into the
//!                      │                                        open Batch
//!                      │                                         │ full or old enough: seal
//!                      └─ rejections ─▶ DLQ (in the background)   ▼
//!                                        bounded channel (≤ 1 sealed batch in flight)
//!                                                 ▼
//!                 writer task: dead-letter and alert tickets acked, then
//!                              ClickHouse INSERTs (retry / bisect)
//!                                                 ▼ WriteReceipt
//!                         PendingOffsets ──into_durable──▶ OffsetTracker ──▶ async commit
//! ```
//!
//! Back-pressure: one sealed batch is with the writer while the next fills. When that one
//! is full too, the loop stops reading; librdkafka's prefetch cap bounds what waits, and
//! after `PAUSE_AFTER` the partitions are paused so the consumer can keep polling. The
//! commit step is last, and only a `WriteReceipt` leads to it; the correlation stage may
//! hold it back further for messages whose events it still holds.
//!
//! Watermark alignment: the correlator decides events once the slowest audit partition's
//! watermark passes them, so a partition that runs far ahead would pile events up in it.
//! While it holds more than `correlate.align_pending` events (at most half of
//! `correlate.max_pending`), audit partitions ahead of the slowest by more than the lateness
//! are paused until it holds half as many ([`CorrelationStage::partitions_ahead`]).
//!
//! Alerting rides along: the rules see every token-use record and every audit event as it is
//! routed; their alert rows join the same batch, and are handed at once to the alert
//! dispatcher, which pages (Kafka topic, webhook) without waiting for the batch. The writer
//! awaits the batch's delivery tickets before writing it, so no committed offset has an
//! undelivered alert.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alert_dispatch::{AlertDispatch, Ticket};
use super::caught_up::{self, CheckClock, PartitionEnds};
use super::commit::Committer;
use super::error::IngestError;
use super::process::Processor;
use super::topics::SubscribedTopics;
use super::writer::{Done, Sealed};
use crate::config::Settings;
use crate::kafka::client;
use crate::kafka::consumer::{self, IngestConsumer, RebalanceShared, RecordHeaders};
use crate::kafka::dead_letter::{DeadLetterItem, DeadLetterProducer, DeadLetterTicket, RatioGuard};
use crate::model::{HeaderSource, InputMessage};
use crate::store::block::TopicPartition;
use crate::store::chunk_pool;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::Health;

/// How often (in messages) the loop re-checks partition alignment while messages keep
/// arriving (the periodic tick does not fire then).
const ALIGN_EVERY_MESSAGES: u64 = 1024;

/// At most this many messages are taken in a row while librdkafka has them ready, before the
/// loop looks at the writer, the cancel token and its tick again.
const BURST_MESSAGES: usize = 64;

/// Sealed batches that may be on their way to the store at once: one, written while the
/// loop fills the next. A second one waiting would keep the writer busy through the loop's
/// hand-over, but the memory it holds buys more as a larger batch: ClickHouse's merges
/// cost less with fewer, larger parts (benches/README.md, "Fifteenth session").
const MAX_IN_FLIGHT: usize = 1;

/// The least time between two Kafka errors the loop handles (see `ride_out_kafka_error`).
const KAFKA_ERROR_SPACING: std::time::Duration = std::time::Duration::from_millis(10);

/// How long the loop stops reading (its batch full, the writer busy) before it pauses the
/// partitions and polls again. A short wait just leaves the prefetched messages queued in
/// librdkafka; pausing discards them (they are fetched again on resume), so it is kept for
/// long waits, where the consumer must keep polling to stay in its group
/// (`max.poll.interval.ms`) and to take part in rebalances.
const PAUSE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// What a run did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub messages: u64,
    pub rows_written: u64,
    pub dead_lettered: u64,
    pub batches: u64,
}

/// The loop's ends: Kafka in, the dead-letter topic, the alert dispatcher, and what the
/// writer hands back.
pub struct LoopIo {
    pub consumer: Arc<IngestConsumer>,
    pub shared: Arc<Mutex<RebalanceShared>>,
    pub dlq: DeadLetterProducer,
    pub dispatch: AlertDispatch,
    pub done_rx: mpsc::Receiver<Result<Done, IngestError>>,
}

pub struct Loop<'a> {
    settings: &'a Settings,
    metrics: Metrics,
    health: Health,
    /// When the consumer last reported a transient Kafka error; `None` while Kafka works.
    kafka_fault: Option<std::time::Instant>,
    consumer: Arc<IngestConsumer>,
    shared: Arc<Mutex<RebalanceShared>>,
    committer: Committer,
    dlq: DeadLetterProducer,
    guard: RatioGuard,
    topics: SubscribedTopics,
    /// Batch, correlation stage and alert rules: the per-message work.
    work: Processor,
    dispatch: AlertDispatch,
    /// Paging acknowledgements for the alerts of the open batch.
    tickets: Vec<Ticket>,
    /// Acknowledgements of the open batch's dead-letter copies.
    dead_letters: Vec<DeadLetterTicket>,
    in_flight: usize,
    /// Since when the loop has stopped reading: its batch is full and the writer busy.
    blocked_since: Option<std::time::Instant>,
    paused: bool,
    /// Audit partitions paused because they ran ahead of the slowest (watermark alignment).
    held_back: Vec<TopicPartition>,
    summary: RunSummary,
    done_rx: mpsc::Receiver<Result<Done, IngestError>>,
    /// Stop (as on a signal) once every assigned partition is committed to its end.
    exit_when_caught_up: bool,
    caught_up_clock: CheckClock,
}

impl<'a> Loop<'a> {
    pub fn new(
        settings: &'a Settings,
        io: LoopIo,
        work: Processor,
        metrics: Metrics,
        health: Health,
    ) -> Self {
        Loop {
            topics: SubscribedTopics::new(&settings.kafka, &metrics),
            settings,
            committer: Committer::new(io.consumer.clone(), io.shared.clone(), metrics.clone()),
            metrics,
            health,
            kafka_fault: None,
            consumer: io.consumer,
            shared: io.shared,
            dlq: io.dlq,
            guard: RatioGuard::new(
                settings.dead_letter.window_messages,
                settings.dead_letter.max_ratio,
            ),
            work,
            dispatch: io.dispatch,
            tickets: Vec::new(),
            dead_letters: Vec::new(),
            in_flight: 0,
            blocked_since: None,
            paused: false,
            held_back: Vec::new(),
            summary: RunSummary::default(),
            done_rx: io.done_rx,
            exit_when_caught_up: false,
            caught_up_clock: CheckClock::default(),
        }
    }

    /// `ingest --exit-when-caught-up`: [`Loop::run`] returns once everything assigned is
    /// committed to its end (`caught_up`).
    pub fn exit_when_caught_up(mut self, exit: bool) -> Self {
        self.exit_when_caught_up = exit;
        self
    }

    /// Stops the alert dispatcher (once the writer is done) and says what the run did.
    pub fn finish(self) -> RunSummary {
        self.summary
    }

    pub async fn run(
        &mut self,
        sealed_tx: &mpsc::Sender<Sealed>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        let mut tick = tokio::time::interval(self.work.flush_policy().tick());
        let consumer = self.consumer.clone();
        loop {
            self.apply_revocations();
            let can_seal = self.in_flight < MAX_IN_FLIGHT && self.work.batch_due();
            if can_seal {
                self.seal(sealed_tx).await;
            }
            // Back-pressure: a full batch that cannot be handed to the busy writer stops
            // reading (librdkafka's prefetch cap bounds what waits), and pauses the partitions
            // once that lasts (`PAUSE_AFTER`); a message that still arrives is kept.
            let blocked = self.work.batch_full() && self.in_flight >= MAX_IN_FLIGHT;
            self.blocked_since = match (blocked, self.blocked_since) {
                (false, _) => None,
                (true, since) => Some(since.unwrap_or_else(std::time::Instant::now)),
            };
            self.set_paused(
                self.blocked_since
                    .is_some_and(|t| t.elapsed() >= PAUSE_AFTER),
            )?;
            let read = !blocked || self.paused;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                done = self.done_rx.recv() => match done {
                    Some(done) => self.on_done(done?)?,
                    None => return Ok(()),
                },
                msg = consumer.recv(), if read => {
                    if !self.on_received(msg, cancel).await? {
                        continue;
                    }
                    // What librdkafka already holds is taken here, not through `select!`
                    // again: its futures were 1.6 % of a backlog's samples, 0.2 % with the
                    // burst (benches/README.md, "Twenty-third session"). A full batch
                    // goes back to the loop's top to be sealed; an old one, a cancel or the
                    // writer's result waits at most the burst.
                    for _ in 1..BURST_MESSAGES {
                        if self.work.batch_full() {
                            break;
                        }
                        let Some(msg) = consumer.recv().now_or_never() else {
                            break;
                        };
                        if !self.on_received(msg, cancel).await? {
                            break;
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.kafka_fault.is_some() && self.brokers_back() {
                        self.kafka_recovered();
                    }
                    self.align_partitions()?;
                    self.work.on_idle(now_ms());
                    self.dispatch_alerts().await;
                    self.unpin_settled();
                    if self.in_flight == 0 && self.work.batch_is_empty() {
                        // Nothing buffered: a burst's spare chunks go back to the kernel.
                        chunk_pool::release_surplus();
                    }
                    if self.check_caught_up() && self.exit_when_caught_up {
                        tracing::info!("caught up: every assigned partition is committed to its end");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Seals the open batch and waits for every batch in flight to be written and committed.
    pub async fn drain(&mut self, sealed_tx: &mpsc::Sender<Sealed>) {
        self.apply_revocations();
        self.work.flush_all(now_ms());
        loop {
            if self.in_flight == 0 {
                if self.work.batch_is_empty() {
                    self.unpin_settled();
                    let work = &self.work;
                    self.committer.commit_final(|tp| work.commit_cap(tp));
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

    /// One `recv` result: a message handled (`true`), or a transient Kafka error ridden out
    /// (`false`); a fatal one stops the loop.
    async fn on_received(
        &mut self,
        msg: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
        cancel: &CancellationToken,
    ) -> Result<bool, IngestError> {
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) if client::is_fatal(&e) => return Err(e.into()),
            Err(e) => {
                self.ride_out_kafka_error(&e, cancel).await;
                return Ok(false);
            }
        };
        self.kafka_recovered();
        self.metrics.caught_up.set(0);
        self.on_message(&msg, cancel)?;
        self.dispatch_alerts().await;
        if self.summary.messages.is_multiple_of(ALIGN_EVERY_MESSAGES) {
            self.align_partitions()?;
        }
        Ok(true)
    }

    /// A transient Kafka error (brokers down, a name that does not resolve, a timeout):
    /// librdkafka reconnects by itself, so the loop counts it, reports not-ready with the
    /// reason, and polls again. It does not back off: librdkafka queues one error event per
    /// failed connection attempt (already paced by its own reconnect backoff), and a loop
    /// that slept after each one read that queue slower than it filled during an outage, so
    /// after the brokers were back it spent minutes on stale errors before the rebalance and
    /// the messages behind them (`delivery::a_kafka_outage_is_waited_out_without_a_restart`
    /// failed that way). Only errors that arrive back to back are spaced, so a fault that
    /// repeats at once cannot spin the loop. Nothing is committed meanwhile that was not
    /// already durable.
    async fn ride_out_kafka_error(
        &mut self,
        e: &rdkafka::error::KafkaError,
        cancel: &CancellationToken,
    ) {
        self.metrics
            .kafka_errors
            .with_label_values(&[&client::error_kind(e)])
            .inc();
        let now = std::time::Instant::now();
        let previous = self.kafka_fault.replace(now);
        tracing::warn!(brokers = %self.settings.kafka.brokers, "Kafka error (librdkafka reconnects by itself): {e}");
        self.health.set_unready(format!(
            "Kafka unreachable at {}: {e}",
            self.settings.kafka.brokers
        ));
        if previous.is_some_and(|at| now.duration_since(at) < KAFKA_ERROR_SPACING) {
            tokio::select! {
                _ = tokio::time::sleep(KAFKA_ERROR_SPACING) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    /// Whether librdkafka's statistics, taken well after the last error, show a broker up
    /// again (a quiet topic brings no message to prove it).
    fn brokers_back(&self) -> bool {
        let Some(last_error_at) = &self.kafka_fault else {
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
            self.commit();
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
        let want = self.work.partitions_ahead();
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
            self.metrics.alignment_pauses.inc_by(pause.count() as u64);
        }
        if resume.count() > 0 && !self.paused {
            self.consumer.resume(&resume)?;
        }
        self.metrics.partitions_aligning.set(want.len() as i64);
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
        // Every assigned partition holds the watermark until it delivers or goes idle
        // (`PartitionClocks::assign`). Webhook partitions too: gating only from their first
        // message let the first fetch of a backlog's audit partitions be decided before any
        // job webhook was read (tests/integration/token_use.rs). An empty webhook topic
        // costs records the idle period (`correlate.idle_flush_ms`) after a rebalance.
        for tp in &assigned {
            if let Some(topic) = self.topics.get(&tp.0) {
                self.work.assign_partition(tp, topic.kind);
            }
        }
        self.held_back.retain(|tp| !revoked.contains(tp));
        self.metrics
            .partitions_aligning
            .set(self.held_back.len() as i64);
        for tp in &revoked {
            self.work.revoke(tp);
        }
    }

    async fn seal(&mut self, sealed_tx: &mpsc::Sender<Sealed>) {
        self.dispatch_alerts().await;
        self.in_flight += 1;
        let sealed = Sealed {
            work: self.work.seal(),
            tickets: std::mem::take(&mut self.tickets),
            dead_letters: std::mem::take(&mut self.dead_letters),
        };
        if sealed_tx.send(sealed).await.is_err() {
            tracing::warn!("writer stopped; batch not written (will be replayed)");
        }
    }

    /// Dead-letters what the message cannot give, then routes what it can. The dead-letter
    /// copies are written in the background; their tickets travel with the batch that holds
    /// the message's offset, and the writer awaits them before anything of that batch is
    /// stored, so a message counts as consumed (and can ever be committed) only once every
    /// copy of it is acknowledged.
    fn on_message(
        &mut self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        self.apply_revocations();
        let topic = msg.topic();
        let subscribed = self
            .topics
            .get(topic)
            .ok_or_else(|| IngestError::UnknownTopic(topic.to_string()))?;
        let kind = subscribed.kind;
        subscribed.consumed.inc();
        let partition = msg.partition();
        let offset = msg.offset();
        let kafka_ts = msg.timestamp().to_millis();
        self.summary.messages += 1;

        let headers = RecordHeaders(msg);
        let input = InputMessage {
            source: kind,
            topic,
            partition,
            offset,
            timestamp_ms: kafka_ts,
            headers: &headers,
            payload: msg.payload(),
        };
        let normalized = self.work.normalize(&input);
        for rejection in &normalized.rejected {
            let ticket = self.dlq.enqueue(
                &DeadLetterItem {
                    topic,
                    partition,
                    offset,
                    kind: rejection.kind.as_str(),
                    message: &rejection.message,
                    element_index: rejection.index,
                    table: None,
                    key: msg.key(),
                    payload: msg.payload().unwrap_or_default(),
                    original_headers: &headers.all(),
                },
                cancel,
            );
            self.dead_letters.push(ticket);
            self.metrics
                .dead_lettered
                .with_label_values(&[rejection.kind.as_str()])
                .inc();
            self.summary.dead_lettered += 1;
        }
        let mut shared = self.shared.lock().expect("rebalance state");
        self.work
            .on_message(&input, normalized.events, &mut shared.tracker, now_ms());
        drop(shared);
        self.guard.observe(!normalized.rejected.is_empty())?;
        Ok(())
    }

    /// Commits what is durable, unless Kafka is known to be away: a commit then only fails
    /// (and is counted and retried). The durable offsets stay in the tracker and go out with
    /// the commit `kafka_recovered` makes.
    fn commit(&mut self) {
        if self.kafka_fault.is_some() {
            return;
        }
        let work = &self.work;
        self.committer.commit(|tp| work.commit_cap(tp));
    }

    /// With nothing open and nothing in flight, every record emitted so far is durable, so
    /// messages the correlator has decided can be unpinned right away (a quiet stream would
    /// otherwise keep its last offsets uncommitted until new traffic arrives).
    fn unpin_settled(&mut self) {
        if self.in_flight == 0 && self.work.unpin_decided() {
            self.commit();
        }
    }

    /// Whether everything assigned is committed to its end ([`caught_up`]); sets the
    /// `ingest_caught_up` gauge. Asks the brokers at most once per `caught_up::CHECK_INTERVAL`,
    /// and only while nothing is open or in flight (otherwise it cannot be true) and Kafka is
    /// not known to be away.
    fn check_caught_up(&mut self) -> bool {
        if self.in_flight > 0 || !self.work.batch_is_empty() || self.kafka_fault.is_some() {
            self.metrics.caught_up.set(0);
            return false;
        }
        if !self.caught_up_clock.due(std::time::Instant::now()) {
            return self.metrics.caught_up.get() == 1;
        }
        let consumer = self.consumer.clone();
        let timeout = std::time::Duration::from_secs(2);
        // Broker round trips: off the async worker, like the commit.
        let ends = tokio::task::block_in_place(move || {
            let committed = consumer.committed(timeout)?;
            committed
                .elements()
                .iter()
                .map(|e| {
                    let (low, high) =
                        consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
                    Ok(PartitionEnds {
                        low,
                        high,
                        committed: e.offset().to_raw().filter(|o| *o >= 0),
                    })
                })
                .collect::<Result<Vec<_>, rdkafka::error::KafkaError>>()
        });
        let up = match ends {
            Ok(ends) => caught_up::all_caught_up(&ends),
            Err(e) => {
                tracing::debug!("caught-up check failed: {e}");
                false
            }
        };
        self.metrics.caught_up.set(i64::from(up));
        up
    }

    /// Hands the alerts raised since the last call to the dispatcher, which pages at once.
    async fn dispatch_alerts(&mut self) {
        let fresh = self.work.fresh_alerts();
        if !fresh.is_empty() {
            self.tickets.push(self.dispatch.send(fresh).await);
        }
    }

    fn on_done(&mut self, done: Done) -> Result<(), IngestError> {
        self.in_flight -= 1;
        self.work.written(&done.released);
        self.committer.complete(done.durable);
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

/// Wall-clock milliseconds, read once per message. Not through `chrono::Utc::now`, which
/// builds a calendar date that `timestamp_millis` then takes apart again: two thirds of this
/// call's 1.1 % of ingest's CPU on a backlog (benches/README.md, "Nineteenth session").
fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_the_wall_clock_in_milliseconds() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = super::now_ms();
        let after = chrono::Utc::now().timestamp_millis();
        assert!(
            (before..=after).contains(&now),
            "{before} <= {now} <= {after}"
        );
    }
}
