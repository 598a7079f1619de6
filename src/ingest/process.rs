//! The ingest loop's per-message work, without I/O: a message's normalized events become
//! rows of the open batch, alert rows, and (through the correlation stage) token-use records
//! and their rows. `pipeline::Loop` drives it between Kafka and the writer; the in-process
//! benchmark drives the very same code without them.

use std::time::Duration;

use super::batch::Batch;
use super::correlation::{CorrelationStage, record_key};
use super::offsets::TopicPartition;
use super::route;
use crate::alert::{AlertEngine, Emitted, RowVersions};
use crate::config::Settings;
use crate::correlate::actors::KnownBots;
use crate::model::{Event, TokenUse};
use crate::telemetry::metrics::Metrics;

pub struct Processor {
    /// Rows not yet sealed.
    pub batch: Batch,
    pub stage: CorrelationStage,
    pub alerts: AlertEngine,
    /// Bot user ids seen in job webhooks, to re-classify audit events' authors.
    pub bots: KnownBots,
    versions: RowVersions,
    /// Alert rows routed into the open batch, in order (for the paging outputs).
    pub outbox: Vec<Emitted>,
    metrics: Metrics,
    max_rows: usize,
    max_bytes: usize,
    max_wait: Duration,
}

impl Processor {
    /// `stage` and `alerts` come in restored from the store (allowlists, alert memory).
    pub fn new(
        settings: &Settings,
        stage: CorrelationStage,
        alerts: AlertEngine,
        metrics: Metrics,
    ) -> Self {
        Processor {
            batch: Batch::default(),
            stage,
            alerts,
            bots: KnownBots::default(),
            versions: RowVersions::default(),
            outbox: Vec::new(),
            metrics,
            max_rows: settings.batch.max_rows,
            max_bytes: settings.batch.max_bytes,
            max_wait: Duration::from_millis(settings.batch.max_wait_ms),
        }
    }

    /// Starts from bot users restored from the store.
    pub fn with_bots(mut self, bots: KnownBots) -> Self {
        self.bots = bots;
        self
    }

    /// The open batch reached `batch.max_rows` or `batch.max_bytes`.
    pub fn batch_full(&self) -> bool {
        self.batch.rows() >= self.max_rows || self.batch.bytes() >= self.max_bytes
    }

    /// The open batch should be sealed: full, or older than `batch.max_wait_ms`.
    pub fn batch_due(&self) -> bool {
        !self.batch.is_empty() && (self.batch_full() || self.batch.age() >= self.max_wait)
    }

    /// Routes one message's events (message `offset` of `tp`): bot authors re-classified,
    /// event rows, the alert rules over the events, then the correlation stage and the
    /// records it decided.
    pub fn on_events(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        events: &mut [Event],
        now_ms: i64,
    ) {
        self.recognize_bots(events);
        let events = &*events;
        for event in events {
            let source = match event {
                Event::Audit(_) => "audit_stream",
                Event::Webhook(_) => "webhook",
            };
            self.metrics.events.with_label_values(&[source]).inc();
            route::push_event_rows(&mut self.batch, tp, offset, event, now_ms);
        }
        let alerts = self.alerts.on_events(events);
        self.push_alerts(tp, offset, alerts, now_ms);
        let records = self.stage.on_events(tp, offset, events);
        if let Some(settled) = self.stage.settled_before() {
            self.alerts.advance_clock(settled);
        }
        self.push_records(tp, offset, records, now_ms);
    }

    /// Learns bot users from job webhooks; marks audit events by known bots as such.
    fn recognize_bots(&mut self, events: &mut [Event]) {
        for event in events {
            match event {
                Event::Webhook(hook) => {
                    for job in &hook.jobs {
                        if let (Some(id), Some(username)) = (job.user_id, &job.username) {
                            self.bots.learn(id, username);
                        }
                    }
                }
                Event::Audit(ev) => ev.actor_kind = self.bots.refine(ev.author_id, ev.actor_kind),
            }
        }
    }

    /// Token-use rows for `records`, filed under message `offset` of `tp`, and the alerts
    /// the rules raise on them.
    pub fn push_records(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        records: Vec<TokenUse>,
        now_ms: i64,
    ) {
        for record in &records {
            self.metrics
                .token_uses
                .with_label_values(&[&record.correlation])
                .inc();
            route::push_token_use(
                &mut self.batch,
                tp,
                offset,
                record,
                &record_key(record),
                now_ms,
            );
        }
        let alerts = self.alerts.on_records(&records);
        self.push_alerts(tp, offset, alerts, now_ms);
    }

    fn push_alerts(&mut self, tp: &TopicPartition, offset: i64, alerts: Vec<Emitted>, now_ms: i64) {
        for emitted in &alerts {
            self.metrics
                .alert_raise_latency
                .with_label_values(&[emitted.alert.rule.as_str()])
                .observe((now_ms - emitted.alert.event_time_ms).max(0) as f64 / 1000.0);
            let version = self.versions.next(now_ms);
            route::push_alert(&mut self.batch, tp, offset, &emitted.alert, version);
        }
        self.outbox.extend(alerts);
    }
}
