//! The ingest loop's per-message work, without I/O: a message is normalized, its events become
//! rows of the open batch, alert rows, and (through the correlation stage) token-use records
//! and their rows. `pipeline::Loop` drives it between Kafka and the writer; the in-process
//! benchmark drives the very same calls without them.

use prometheus::IntCounter;

use super::batcher::{Batcher, FlushPolicy, SealedBatch};
use super::correlation::{CorrelationStage, Released, record_key};
use super::route;
use crate::alert::{AlertEngine, Emitted, RowVersions};
use crate::config::Settings;
use crate::correlate::CorrelatorStats;
use crate::correlate::actors::KnownBots;
use crate::kafka::offsets::OffsetTracker;
use crate::model::{Correlation, Event, InputMessage, Normalized, SourceKind, TokenUse};
use crate::normalize::{self, Limits};
use crate::store::block::TopicPartition;
use crate::telemetry::metrics::Metrics;

/// How often (in event-loop milliseconds) the correlator's stats reach the metrics.
const STATS_EXPORT_INTERVAL_MS: i64 = 1_000;

/// See `Processor::topics`.
const MAX_SHARED_TOPIC_NAMES: usize = 64;

/// The counters bumped per event, resolved once: `with_label_values` hashes its labels on
/// every call, about 1 % of the in-process path's samples (benches/README.md).
struct PerEventCounters {
    audit_events: IntCounter,
    webhook_events: IntCounter,
    /// By `Correlation as usize`.
    token_uses: [IntCounter; 3],
}

impl PerEventCounters {
    fn new(metrics: &Metrics) -> Self {
        PerEventCounters {
            audit_events: metrics.events.with_label_values(&["audit_stream"]),
            webhook_events: metrics.events.with_label_values(&["webhook"]),
            token_uses: Correlation::ALL
                .map(|c| metrics.token_uses.with_label_values(&[c.as_str()])),
        }
    }
}

pub struct Processor {
    limits: Limits,
    batcher: Batcher,
    stage: CorrelationStage,
    alerts: AlertEngine,
    /// Bot user ids seen in job webhooks, to re-classify audit events' authors.
    bots: KnownBots,
    versions: RowVersions,
    /// Alert rows routed into the open batch, in order (for the paging outputs).
    outbox: Vec<Emitted>,
    /// `outbox[undispatched..]`: alerts not yet handed out by [`Processor::fresh_alerts`].
    undispatched: usize,
    /// Where correlation records that no single message triggered (idle flush) are filed.
    last_position: Option<(TopicPartition, i64)>,
    metrics: Metrics,
    counters: PerEventCounters,
    /// Each topic's name as the batch's positions share it, made once per topic instead of
    /// once per message.
    topics: Vec<std::sync::Arc<str>>,
    /// The correlator's cumulative counters as last added to `correlator_events_total`.
    exported: CorrelatorStats,
    /// `now_ms` from which the next push exports the correlator's stats.
    next_stats_export_ms: i64,
}

/// What a sealed batch carries to the writer besides its rows.
pub struct SealedWork {
    pub batch: SealedBatch,
    /// Messages the correlator had decided by the time the batch was sealed.
    pub released: Released,
    /// Alert rows in the batch, counted once they are durable.
    pub alerts: Vec<Emitted>,
}

impl Processor {
    /// `stage`, `alerts` and `bots` come in restored from the store (allowlists, alert memory,
    /// bot users).
    pub fn new(
        settings: &Settings,
        stage: CorrelationStage,
        alerts: AlertEngine,
        bots: KnownBots,
        metrics: Metrics,
    ) -> Self {
        Processor {
            limits: Limits {
                max_message_bytes: settings.normalize.max_message_bytes,
            },
            batcher: Batcher::new(FlushPolicy::from_settings(&settings.batch)),
            stage,
            alerts,
            bots,
            versions: RowVersions::default(),
            outbox: Vec::new(),
            undispatched: 0,
            last_position: None,
            counters: PerEventCounters::new(&metrics),
            topics: Vec::new(),
            metrics,
            exported: CorrelatorStats::default(),
            next_stats_export_ms: i64::MIN,
        }
    }

    /// First half of a message: its events and what must be dead-lettered. The caller
    /// dead-letters the rejections before it hands the events to [`Processor::on_message`]:
    /// a message counts as consumed only once every copy of it is acknowledged.
    pub fn normalize(&self, input: &InputMessage<'_>) -> Normalized {
        normalize::normalize(input, &self.limits)
    }

    /// Second half: counts the message towards the open batch's offsets (in `tracker`) and
    /// routes its events.
    pub fn on_message(
        &mut self,
        input: &InputMessage<'_>,
        events: Vec<Event>,
        tracker: &mut OffsetTracker,
        now_ms: i64,
    ) {
        let tp: TopicPartition = (self.topic_name(input.topic), input.partition);
        self.batcher
            .open()
            .consumed(tracker, &tp, input.offset, input.timestamp_ms);
        self.on_events(&tp, input.offset, input.timestamp_ms, events, now_ms);
        self.last_position = Some((tp, input.offset));
    }

    fn topic_name(&mut self, topic: &str) -> std::sync::Arc<str> {
        if let Some(name) = self.topics.iter().find(|name| &***name == topic) {
            return name.clone();
        }
        let name = std::sync::Arc::<str>::from(topic);
        // The subscription names the topics; the bound only keeps a surprise from growing it.
        if self.topics.len() < MAX_SHARED_TOPIC_NAMES {
            self.topics.push(name.clone());
        }
        name
    }

    /// No message for a while: records the correlator can decide by the clock alone.
    pub fn on_idle(&mut self, now_ms: i64) {
        let records = self.stage.on_idle();
        self.push_records_at_last_position(records, now_ms);
    }

    /// Shutdown: decide everything the correlator holds.
    pub fn flush_all(&mut self, now_ms: i64) {
        let records = self.stage.flush_all();
        self.push_records_at_last_position(records, now_ms);
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        self.batcher.policy()
    }

    pub fn batch_full(&self) -> bool {
        self.batcher.is_full()
    }

    pub fn batch_due(&self) -> bool {
        self.batcher.is_due()
    }

    pub fn batch_is_empty(&self) -> bool {
        self.batcher.is_empty()
    }

    /// Seals the open batch with the alerts routed into it and the messages the correlator
    /// has decided so far.
    pub fn seal(&mut self) -> SealedWork {
        self.undispatched = 0;
        SealedWork {
            batch: self.batcher.seal(),
            released: self.stage.take_decided(),
            alerts: std::mem::take(&mut self.outbox),
        }
    }

    /// Alerts raised since the last call, for the paging outputs (which do not wait for the
    /// batch).
    pub fn fresh_alerts(&mut self) -> Vec<Emitted> {
        let fresh = self.outbox[self.undispatched..].to_vec();
        self.undispatched = self.outbox.len();
        fresh
    }

    /// A partition was assigned: the correlator's watermark waits for it.
    pub fn assign_partition(&mut self, tp: &TopicPartition, source: SourceKind) {
        self.stage.assign(tp, source);
    }

    /// A partition was revoked: its open rows and held events go (the new owner re-reads
    /// them from the last commit).
    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.batcher.drop_partition(tp);
        self.stage.revoke(tp);
    }

    /// The highest offset of `tp` that may be committed as far as correlation is concerned.
    pub fn commit_cap(&self, tp: &TopicPartition) -> Option<i64> {
        self.stage.commit_cap(tp)
    }

    /// Partitions to pause for watermark alignment
    /// (`CorrelationStage::partitions_ahead`).
    pub fn partitions_ahead(&mut self) -> Vec<TopicPartition> {
        self.stage.partitions_ahead()
    }

    /// A batch was written: its records no longer pin their messages.
    pub fn written(&mut self, released: &Released) {
        self.stage.written(released);
    }

    /// With the batch empty and nothing in flight (the caller's part), every record emitted
    /// so far is durable, so the messages the correlator decided can be unpinned at once;
    /// returns whether any were.
    pub fn unpin_decided(&mut self) -> bool {
        if !self.batcher.is_empty() {
            return false;
        }
        let released = self.stage.take_decided();
        if released.is_empty() {
            return false;
        }
        self.stage.written(&released);
        true
    }

    fn push_records_at_last_position(&mut self, records: Vec<TokenUse>, now_ms: i64) {
        if records.is_empty() {
            return;
        }
        match self.last_position.clone() {
            Some((tp, offset)) => self.push_records(&tp, offset, records, now_ms),
            None => tracing::warn!("correlation records without any consumed message"),
        }
    }

    /// Routes one message's events (message `offset` of `tp`, received at `received_ms`): bot
    /// authors re-classified, event rows, the alert rules over the events, then the
    /// correlation stage (which takes the events) and the records it decided.
    fn on_events(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        received_ms: Option<i64>,
        mut events: Vec<Event>,
        now_ms: i64,
    ) {
        self.recognize_bots(&mut events);
        for event in &events {
            match event {
                Event::Audit(_) => self.counters.audit_events.inc(),
                Event::Webhook(_) => self.counters.webhook_events.inc(),
            }
            route::push_event_rows(self.batcher.open(), tp, offset, event, now_ms);
        }
        let alerts = self.alerts.on_events(&events);
        self.push_alerts(tp, offset, alerts, now_ms);
        let records = self.stage.on_events(tp, offset, received_ms, events);
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
    fn push_records(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        records: Vec<TokenUse>,
        now_ms: i64,
    ) {
        for record in &records {
            self.counters.token_uses[record.correlation as usize].inc();
            route::push_token_use(
                self.batcher.open(),
                tp,
                offset,
                record,
                &record_key(record),
                now_ms,
            );
        }
        let alerts = self.alerts.on_records(&records);
        self.push_alerts(tp, offset, alerts, now_ms);
        if now_ms >= self.next_stats_export_ms {
            self.next_stats_export_ms = now_ms + STATS_EXPORT_INTERVAL_MS;
            self.export_correlator_stats();
        }
    }

    /// Adds what the correlator counted since the last call to `correlator_events_total` and
    /// sets `correlator_state_size`. Runs at most once per `STATS_EXPORT_INTERVAL_MS`, after a
    /// message or a set of released records: `stats()` walks the allowlist history, too much
    /// for every message. What an idle tick changes shows with the next export.
    fn export_correlator_stats(&mut self) {
        let now = self.stage.correlator().stats();
        for ((kind, total), (_, before)) in correlator_counters(&now)
            .into_iter()
            .zip(correlator_counters(&self.exported))
        {
            if total > before {
                self.metrics
                    .correlator
                    .with_label_values(&[kind])
                    .inc_by(total - before);
            }
        }
        for (kind, size) in correlator_sizes(&now) {
            self.metrics
                .correlator_state
                .with_label_values(&[kind])
                .set(size as i64);
        }
        self.exported = now;
    }

    fn push_alerts(&mut self, tp: &TopicPartition, offset: i64, alerts: Vec<Emitted>, now_ms: i64) {
        for emitted in &alerts {
            self.metrics
                .alert_raise_latency
                .with_label_values(&[emitted.alert.rule.as_str()])
                .observe((now_ms - emitted.alert.event_time_ms).max(0) as f64 / 1000.0);
            let version = self.versions.next(now_ms);
            route::push_alert(self.batcher.open(), tp, offset, &emitted.alert, version);
        }
        self.outbox.extend(alerts);
    }
}

/// `correlator_events_total`'s kinds: the correlator's cumulative counters. Records emitted
/// are counted by `token_use_records_total{correlation}`.
fn correlator_counters(s: &CorrelatorStats) -> [(&'static str, u64); 10] {
    [
        ("unmatched_resources", s.unmatched_resources),
        ("late_events", s.late_events),
        ("duplicates", s.duplicates),
        ("allowlist_changes", s.allowlist_changes),
        ("allowlist_ignored", s.allowlist_ignored),
        ("evicted_pending_auths", s.evicted.pending_auths),
        ("evicted_pending_resources", s.evicted.pending_resources),
        ("held_too_long_auths", s.evicted.held_too_long_auths),
        ("held_too_long_resources", s.evicted.held_too_long_resources),
        ("evicted_jobs", s.evicted.jobs),
    ]
}

/// `correlator_state_size`'s kinds: what the correlator holds at one point in time.
fn correlator_sizes(s: &CorrelatorStats) -> [(&'static str, usize); 6] {
    [
        ("pending_auths", s.pending_auths),
        ("pending_resources", s.pending_resources),
        ("pending_keys", s.pending_keys),
        ("cached_jobs", s.cached_jobs),
        ("allowlist_projects", s.allowlist_projects),
        ("allowlist_versions", s.allowlist_versions),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ingest::correlation::tests::auth;

    #[test]
    fn correlator_stats_are_exported_once_each() {
        let mut settings = Settings::default();
        settings.correlate.window_ms = 1_000;
        settings.correlate.lateness_ms = 0;
        let metrics = Metrics::new();
        let stage = CorrelationStage::new(&settings.correlate);
        let alerts = AlertEngine::new(&settings.alerting);
        let mut work = Processor::new(
            &settings,
            stage,
            alerts,
            KnownBots::default(),
            metrics.clone(),
        );
        let tp: TopicPartition = (Arc::from("audit"), 0);
        // The same event twice (a duplicate), a later one that moves the watermark, then one
        // whose window closed long ago (late), then one more so the totals are exported again.
        for (offset, t) in [
            (0, 10_000),
            (1, 10_000),
            (2, 20_000),
            (3, 1_000),
            (4, 20_001),
        ] {
            // A second apart: the stats are exported at most once per interval.
            work.on_events(
                &tp,
                offset,
                None,
                vec![auth(t, t)],
                offset * STATS_EXPORT_INTERVAL_MS,
            );
        }

        let counter = |kind: &str| metrics.correlator.with_label_values(&[kind]).get();
        let size = |kind: &str| metrics.correlator_state.with_label_values(&[kind]).get();
        assert_eq!(counter("duplicates"), 1);
        assert_eq!(counter("late_events"), 1);
        assert_eq!(counter("evicted_pending_auths"), 0);
        let stats = work.stage.correlator().stats();
        assert!(stats.pending_auths > 0, "{stats:?}");
        assert_eq!(size("pending_auths"), stats.pending_auths as i64);
        assert_eq!(size("allowlist_versions"), stats.allowlist_versions as i64);
        assert_eq!(metrics.events.with_label_values(&["audit_stream"]).get(), 5);
        assert_eq!(metrics.events.with_label_values(&["webhook"]).get(), 0);
    }

    #[test]
    fn each_correlation_kind_counts_under_its_own_label() {
        let metrics = Metrics::new();
        let counters = PerEventCounters::new(&metrics);
        for (n, kind) in Correlation::ALL.into_iter().enumerate() {
            counters.token_uses[kind as usize].inc_by(n as u64 + 1);
        }
        for (n, kind) in Correlation::ALL.into_iter().enumerate() {
            let counted = metrics.token_uses.with_label_values(&[kind.as_str()]).get();
            assert_eq!(counted, n as u64 + 1, "{kind:?}");
        }
    }

    #[test]
    fn a_topic_name_is_made_once() {
        let mut work = Processor::new(
            &Settings::default(),
            CorrelationStage::new(&Settings::default().correlate),
            AlertEngine::new(&Settings::default().alerting),
            KnownBots::default(),
            Metrics::new(),
        );
        let first = work.topic_name("audit");
        assert!(Arc::ptr_eq(&first, &work.topic_name("audit")));
        assert_eq!(&*work.topic_name("webhooks"), "webhooks");
        assert_eq!(work.topics.len(), 2);
    }
}
