//! The pipeline's view of the correlator: it feeds events in, drives the watermark per
//! partition, and keeps the offsets of messages whose events the correlator still holds, so
//! the commit never passes them.
//!
//! Why: the correlator's state lives in memory. If the offset of an authentication still
//! waiting for its resource event were committed, a crash would lose the token-use record
//! for good. So a message that fed the correlator *pins* its offset until (1) the correlator
//! has certainly decided its events and (2) the batch holding the resulting records is
//! durable. After a crash, replay starts at or before every pinned message, rebuilds the same
//! state, and re-emits the same records under the same `record_key` (ReplacingMergeTree makes
//! the second copy invisible).
//!
//! Watermark: per partition, the newest event time seen; the correlator's watermark is the
//! minimum over recently active partitions minus `lateness_ms`. Events of one author share a
//! partition (GitLab deliveries are keyed by author id), so a lagging partition must hold the
//! watermark back, or its events would be judged late during a backlog.
//!
//! The partitions' clocks, which also make records wait for their jobs' webhooks, are in
//! [`super::clocks`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::CorrelateSettings;
use crate::correlate::{Correlator, CorrelatorConfig};
use crate::model::{AuditMeaning, Event, SourceKind, TokenUse};
use crate::store::block::TopicPartition;

use super::clocks::PartitionClocks;

/// A message whose events may still be held by the correlator.
#[derive(Debug, Clone, Copy)]
struct Held {
    offset: i64,
    /// Newest correlatable event time in the message.
    max_event_ms: i64,
}

/// Offsets decided by the correlator whose records are in a batch not yet durable.
pub type Released = Vec<(TopicPartition, i64)>;

pub struct CorrelationStage {
    correlator: Correlator,
    /// Event-time span after which a held event is certainly decided (window + max hold).
    horizon_ms: i64,
    idle_flush: Duration,
    clocks: PartitionClocks,
    undecided: HashMap<TopicPartition, VecDeque<Held>>,
    /// Decided but not yet durable: offset → number of batches in flight referring to it.
    unwritten: HashMap<TopicPartition, BTreeMap<i64, u32>>,
    last_event: Instant,
    flushed_everything: bool,
    /// Held events above which partitions ahead of the slowest are held back.
    align_above: usize,
    /// Set while partitions ahead of the slowest are held back (see `partitions_ahead`).
    aligning: bool,
}

impl CorrelationStage {
    pub fn new(settings: &CorrelateSettings) -> Self {
        let correlator = Correlator::new(CorrelatorConfig {
            window_ms: settings.window_ms,
            max_pending: settings.max_pending,
            max_jobs: settings.max_jobs,
            max_hold_ms: settings.max_hold_ms,
            auto_lateness_ms: None,
        });
        CorrelationStage {
            correlator,
            horizon_ms: settings.window_ms + settings.max_hold_ms,
            idle_flush: Duration::from_millis(settings.idle_flush_ms),
            clocks: PartitionClocks::new(
                settings.lateness_ms,
                Duration::from_millis(settings.idle_flush_ms),
            ),
            undecided: HashMap::new(),
            unwritten: HashMap::new(),
            last_event: Instant::now(),
            flushed_everything: false,
            align_above: settings.align_pending.min(settings.max_pending / 2),
            aligning: false,
        }
    }

    /// Partitions the consumer should pause so the slowest one catches up.
    ///
    /// The watermark follows the slowest active partition, so while catching up a backlog a
    /// partition that librdkafka happens to serve faster piles its events up in the
    /// correlator. Past `max_pending` they would be evicted and decided early, turning
    /// matches into `auth_only` records; and well before that, the join's work per event
    /// grows with what it holds. So once `align_pending` events are held (at most half of
    /// `max_pending`), the audit partitions ahead are paused (`PartitionClocks::to_pause`),
    /// until the held events drop below half that. Webhook partitions far ahead are paused
    /// regardless.
    pub fn partitions_ahead(&mut self) -> Vec<TopicPartition> {
        let held = self.correlator.pending();
        if held > self.align_above {
            self.aligning = true;
        } else if held < self.align_above / 2 {
            self.aligning = false;
        }
        self.clocks
            .to_pause(self.aligning, self.correlator.jobs_full())
    }

    /// Event time below which no more records are expected: the watermark less the longest
    /// an event can be held (window + max hold). `None` before the first watermark.
    pub fn settled_before(&self) -> Option<i64> {
        self.correlator
            .watermark()
            .map(|w| w.saturating_sub(self.horizon_ms))
    }

    pub fn correlator_mut(&mut self) -> &mut Correlator {
        &mut self.correlator
    }

    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    /// Feeds the events of one message, received by the collector at `received_ms` (its
    /// Kafka timestamp); returns the records that became final. The stage is the events'
    /// last reader, so it takes them (`Correlator::on_audit_into`).
    pub fn on_events(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        received_ms: Option<i64>,
        events: Vec<Event>,
    ) -> Vec<TokenUse> {
        let mut records = Vec::new();
        let mut max_correlatable: Option<i64> = None;
        let mut max_audit: Option<i64> = None;
        let mut webhook = false;
        let mut newest_hook_ms: Option<i64> = None;
        for event in events {
            match event {
                Event::Audit(ev) => {
                    if matches!(
                        ev.meaning,
                        AuditMeaning::JobTokenAuth { .. } | AuditMeaning::ResourceAccess { .. }
                    ) {
                        max_correlatable = Some(
                            max_correlatable.map_or(ev.created_at_ms, |m| m.max(ev.created_at_ms)),
                        );
                    }
                    max_audit =
                        Some(max_audit.map_or(ev.created_at_ms, |m| m.max(ev.created_at_ms)));
                    self.correlator.on_audit_into(ev, &mut records);
                }
                Event::Webhook(wh) => {
                    for job in &wh.jobs {
                        self.correlator.on_job(job);
                    }
                    let hook_ms = (wh.event_time_ms > 0).then_some(wh.event_time_ms);
                    webhook = true;
                    newest_hook_ms = newest_hook_ms.max(hook_ms);
                }
            }
        }
        if let Some(event_ms) = max_audit {
            self.clocks.audit_read(tp, received_ms, event_ms);
        }
        if webhook {
            self.clocks.webhook_read(tp, received_ms, newest_hook_ms);
        }
        if let Some(max_event_ms) = max_correlatable {
            self.flushed_everything = false;
            self.last_event = Instant::now();
            self.undecided
                .entry(tp.clone())
                .or_default()
                .push_back(Held {
                    offset,
                    max_event_ms,
                });
        }
        if let Some(wm) = self.clocks.watermark() {
            self.correlator.advance_into(wm, &mut records);
        }
        records
    }

    /// A partition was assigned: the watermark waits for it (`PartitionClocks::assign`).
    pub fn assign(&mut self, tp: &TopicPartition, source: SourceKind) {
        self.clocks.assign(tp, source);
    }

    /// Called periodically: after `idle_flush` without correlatable events, decides everything.
    pub fn on_idle(&mut self) -> Vec<TokenUse> {
        if self.flushed_everything || self.last_event.elapsed() < self.idle_flush {
            return Vec::new();
        }
        self.flush_all()
    }

    /// Decides everything held (idle stream, shutdown).
    pub fn flush_all(&mut self) -> Vec<TokenUse> {
        self.flushed_everything = true;
        self.correlator.flush_all()
    }

    /// Moves messages whose events are certainly decided out of the undecided set; they stay
    /// pinned (as unwritten) until [`CorrelationStage::written`] is called with the result.
    /// Call when sealing a batch: its rows include every record emitted so far.
    pub fn take_decided(&mut self) -> Released {
        let everything = self.flushed_everything;
        let watermark = self.correlator.stats().watermark_ms;
        let horizon = self.horizon_ms;
        let mut released = Vec::new();
        for (tp, held) in &mut self.undecided {
            held.retain(|h| {
                let decided =
                    everything || watermark.is_some_and(|wm| h.max_event_ms + horizon < wm);
                if decided {
                    released.push((tp.clone(), h.offset));
                }
                !decided
            });
        }
        for (tp, offset) in &released {
            *self
                .unwritten
                .entry(tp.clone())
                .or_default()
                .entry(*offset)
                .or_default() += 1;
        }
        released
    }

    /// The batch carrying these messages' records is durable: unpin them.
    pub fn written(&mut self, released: &Released) {
        for (tp, offset) in released {
            if let Some(map) = self.unwritten.get_mut(tp)
                && let Some(n) = map.get_mut(offset)
            {
                *n -= 1;
                if *n == 0 {
                    map.remove(offset);
                }
            }
        }
    }

    /// The highest offset that may be committed for `tp` (the lowest pinned message).
    pub fn commit_cap(&self, tp: &TopicPartition) -> Option<i64> {
        let undecided = self
            .undecided
            .get(tp)
            .and_then(|h| h.iter().map(|h| h.offset).min());
        let unwritten = self
            .unwritten
            .get(tp)
            .and_then(|m| m.keys().next().copied());
        match (undecided, unwritten) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A partition was revoked: its pins go (the new owner replays from the last commit).
    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.undecided.remove(tp);
        self.unwritten.remove(tp);
        self.clocks.revoke(tp);
    }
}

/// A key that is the same every time the same record is derived, so replays replace it.
pub fn record_key(r: &TokenUse) -> String {
    let mut h = Sha256::new();
    let fields = [
        r.correlation.as_str(),
        r.action.as_str(),
        r.source_project_path.as_str(),
        r.target_project_path.as_str(),
        r.ip_address.as_str(),
    ];
    for f in fields {
        h.update(f.as_bytes());
        h.update([0]);
    }
    for n in [
        r.event_time_ms,
        r.actor_id,
        r.job_id.unwrap_or(i64::MIN),
        r.source_project_id.unwrap_or(i64::MIN),
        r.target_project_id.unwrap_or(i64::MIN),
        r.gap_ms,
    ] {
        h.update(n.to_le_bytes());
    }
    let mut key = String::with_capacity(32);
    crate::hashing::push_hex(&mut key, &h.finalize()[..16]);
    key
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ingest::clocks::WEBHOOK_LEAD_MS;
    use crate::model::{Action, ActorKind, AuditEvent, Correlation};
    use std::sync::Arc;

    fn settings() -> CorrelateSettings {
        CorrelateSettings {
            window_ms: 1_000,
            max_pending: 1_000,
            align_pending: 1_000,
            max_jobs: 1_000,
            lateness_ms: 0,
            max_hold_ms: 2_000,
            idle_flush_ms: 60_000,
        }
    }

    /// A job-token authentication at `t` for `job` (also used by `process`'s tests).
    pub(crate) fn auth(t: i64, job: i64) -> Event {
        Event::Audit(AuditEvent {
            id: format!("id-{t}"),
            dedup_key: format!("content:{t}"),
            stream_only: true,
            event_type: "user_authenticated_using_job_token".into(),
            author_id: 7,
            author_name: "A".into(),
            author_class: None,
            actor_kind: ActorKind::Human,
            entity_id: Some(1),
            entity_type: "Project".into(),
            entity_path: "g/src".into(),
            target_id: Some(job),
            target_type: "Ci::Build".into(),
            target_details: job.to_string(),
            ip_address: "10.0.0.1".into(),
            created_at_ms: t,
            details_json: "{}".into(),
            meaning: AuditMeaning::JobTokenAuth { job_id: Some(job) },
        })
    }

    #[test]
    fn held_message_pins_the_commit_until_decided_and_written() {
        let mut stage = CorrelationStage::new(&settings());
        let tp: TopicPartition = (Arc::from("t"), 0);
        assert!(
            stage
                .on_events(&tp, 5, None, vec![auth(10_000, 1)])
                .is_empty()
        );
        assert_eq!(stage.commit_cap(&tp), Some(5), "pinned while undecided");
        assert!(stage.take_decided().is_empty());

        // Much later event time: the first auth is decided (auth_only) and released.
        let records = stage.on_events(&tp, 6, None, vec![auth(20_000, 2)]);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].action, "auth");
        let released = stage.take_decided();
        assert_eq!(released, vec![(tp.clone(), 5)]);
        assert_eq!(
            stage.commit_cap(&tp),
            Some(5),
            "pinned until its batch is durable"
        );
        stage.written(&released);
        assert_eq!(
            stage.commit_cap(&tp),
            Some(6),
            "now only the second message pins"
        );

        let rest = stage.flush_all();
        assert_eq!(rest.len(), 1);
        let released = stage.take_decided();
        stage.written(&released);
        assert_eq!(stage.commit_cap(&tp), None);
    }

    #[test]
    fn lagging_partition_holds_the_watermark_back() {
        let mut stage = CorrelationStage::new(&settings());
        let p0: TopicPartition = (Arc::from("t"), 0);
        let p1: TopicPartition = (Arc::from("t"), 1);
        stage.on_events(&p1, 0, None, vec![auth(1_000, 1)]);
        // Partition 0 races far ahead; partition 1's auth must not be decided yet.
        let records = stage.on_events(&p0, 0, None, vec![auth(100_000, 2)]);
        assert!(records.is_empty(), "{records:?}");
    }

    #[test]
    fn assigned_partition_without_events_holds_the_watermark_back() {
        let mut stage = CorrelationStage::new(&settings());
        let p0: TopicPartition = (Arc::from("t"), 0);
        let p1: TopicPartition = (Arc::from("t"), 1);
        stage.assign(&p0, SourceKind::AuditStream);
        stage.assign(&p1, SourceKind::AuditStream);
        stage.on_events(&p0, 0, None, vec![auth(1_000, 1)]);
        let records = stage.on_events(&p0, 1, None, vec![auth(100_000, 2)]);
        assert!(records.is_empty(), "p1 has not been read yet: {records:?}");
        let records = stage.on_events(&p1, 0, None, vec![auth(100_000, 3)]);
        assert_eq!(
            records.len(),
            1,
            "now both partitions are past the first auth"
        );
    }

    /// A backlog whose audit partition is read before the webhook partition: records wait
    /// for the webhooks, so each takes its job's pipeline. Before webhook partitions held
    /// the watermark, most records were decided with no job known (benches/README.md).
    #[test]
    fn records_of_a_backlog_wait_for_their_jobs_webhooks() {
        use crate::simulate::{SimConfig, generate};
        let (messages, _) = generate(&SimConfig::small());
        let mut stage = CorrelationStage::new(&CorrelateSettings::default());
        let audit: TopicPartition = (Arc::from("audit"), 0);
        let hooks: TopicPartition = (Arc::from("webhooks"), 0);
        stage.assign(&audit, SourceKind::AuditStream);
        stage.assign(&hooks, SourceKind::Webhook);
        let (audits, webhooks): (Vec<_>, Vec<_>) = messages
            .iter()
            .partition(|m| m.source == SourceKind::AuditStream);
        let mut pipelines = HashMap::new();
        let mut records = Vec::new();
        // The audit partition is read far ahead: a third of it before the first webhook.
        let ahead = audits.len() / 3;
        let mut feed = |stage: &mut CorrelationStage,
                        tp: &TopicPartition,
                        offset,
                        m: &&crate::simulate::SimMessage| {
            let events = m.normalize(&tp.0).events;
            for e in &events {
                if let Event::Webhook(wh) = e {
                    for job in &wh.jobs {
                        if let Some(p) = job.pipeline_id {
                            pipelines.insert(job.job_id, p);
                        }
                    }
                }
            }
            stage.on_events(tp, offset, Some(m.timestamp_ms), events)
        };
        for (i, m) in audits.iter().take(ahead).enumerate() {
            records.extend(feed(&mut stage, &audit, i as i64, m));
        }
        let (mut a, mut w) = (ahead, 0);
        while a < audits.len() || w < webhooks.len() {
            if w < webhooks.len() {
                records.extend(feed(&mut stage, &hooks, w as i64, &webhooks[w]));
                w += 1;
            }
            if a < audits.len() {
                records.extend(feed(&mut stage, &audit, a as i64, &audits[a]));
                a += 1;
            }
        }
        records.extend(stage.flush_all());
        let with_job: Vec<&TokenUse> = records
            .iter()
            .filter(|r| r.job_id.is_some_and(|j| pipelines.contains_key(&j)))
            .collect();
        assert!(with_job.len() > 100, "{} records", with_job.len());
        let bare = with_job.iter().filter(|r| r.pipeline_id.is_none()).count();
        assert_eq!(
            bare,
            0,
            "{bare} of {} records lack their job's pipeline",
            with_job.len()
        );
    }

    /// A job hook whose own time says `hook_ms` (the sender's word).
    fn job_hook(hook_ms: i64, job: i64) -> Event {
        Event::Webhook(crate::model::WebhookEvent {
            dedup_key: format!("idem:{job}-{hook_ms}"),
            event_header: "Job Hook".into(),
            object_kind: "build".into(),
            project_id: Some(1),
            project_path: "g/src".into(),
            event_time_ms: hook_ms,
            payload_json: "{}".into(),
            jobs: vec![crate::model::JobInfo {
                job_id: job,
                pipeline_id: Some(job * 10),
                ..Default::default()
            }],
        })
    }

    #[test]
    fn a_webhook_partition_is_timed_by_receipt_not_by_the_hook_s_own_times() {
        let mut stage = CorrelationStage::new(&settings());
        let audit: TopicPartition = (Arc::from("audit"), 0);
        let hooks: TopicPartition = (Arc::from("webhooks"), 0);
        stage.assign(&audit, SourceKind::AuditStream);
        stage.assign(&hooks, SourceKind::Webhook);
        // A hostile or broken sender dates its hooks in 1970: were that the partition's
        // time, it would hold every record back (and pause every audit partition) for good.
        stage.on_events(&hooks, 0, Some(200_000), vec![job_hook(1, 1)]);
        stage.on_events(&audit, 0, Some(1_000), vec![auth(1_000, 1)]);
        let records = stage.on_events(&audit, 1, Some(100_000), vec![auth(100_000, 2)]);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].pipeline_id, Some(10));
    }

    #[test]
    fn a_webhook_partition_holds_records_back_until_it_is_read_that_far() {
        let mut stage = CorrelationStage::new(&settings());
        let audit: TopicPartition = (Arc::from("audit"), 0);
        let hooks: TopicPartition = (Arc::from("webhooks"), 0);
        stage.on_events(&hooks, 0, Some(500), vec![job_hook(500, 9)]);
        stage.on_events(&audit, 0, Some(1_000), vec![auth(1_000, 1)]);
        let records = stage.on_events(&audit, 1, Some(100_000), vec![auth(100_000, 2)]);
        assert!(
            records.is_empty(),
            "job 1's hook is not read yet: {records:?}"
        );
        let records = stage.on_events(&hooks, 1, Some(90_000), vec![job_hook(900, 1)]);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].pipeline_id, Some(10));
    }

    #[test]
    fn a_webhook_partition_far_ahead_of_the_audits_is_paused_until_half_as_far() {
        let mut stage = CorrelationStage::new(&settings());
        let audit: TopicPartition = (Arc::from("audit"), 0);
        let hooks: TopicPartition = (Arc::from("webhooks"), 0);
        stage.on_events(&audit, 0, Some(1_000), vec![auth(1_000, 1)]);
        stage.on_events(
            &hooks,
            0,
            Some(1_000 + WEBHOOK_LEAD_MS),
            vec![job_hook(0, 1)],
        );
        assert!(
            stage.partitions_ahead().is_empty(),
            "not more than the lead"
        );
        stage.on_events(
            &hooks,
            1,
            Some(2_000 + WEBHOOK_LEAD_MS),
            vec![job_hook(0, 2)],
        );
        assert_eq!(stage.partitions_ahead(), vec![hooks.clone()]);
        stage.on_events(
            &audit,
            1,
            Some(1_500 + WEBHOOK_LEAD_MS / 2),
            vec![auth(1_500 + WEBHOOK_LEAD_MS / 2, 3)],
        );
        assert_eq!(
            stage.partitions_ahead(),
            vec![hooks.clone()],
            "still over half"
        );
        stage.on_events(
            &audit,
            2,
            Some(3_000 + WEBHOOK_LEAD_MS / 2),
            vec![auth(3_000 + WEBHOOK_LEAD_MS / 2, 4)],
        );
        assert!(
            stage.partitions_ahead().is_empty(),
            "resumed at half the lead"
        );
    }

    #[test]
    fn record_key_is_stable_and_distinguishes_records() {
        let mut stage = CorrelationStage::new(&settings());
        let tp: TopicPartition = (Arc::from("t"), 0);
        let mut records = stage.on_events(&tp, 0, None, vec![auth(1_000, 1), auth(50_000, 2)]);
        records.extend(stage.flush_all());
        assert_eq!(records.len(), 2);
        let keys: Vec<String> = records.iter().map(record_key).collect();
        assert_ne!(keys[0], keys[1]);
        assert_eq!(keys[0], record_key(&records[0].clone()));
        assert_eq!(keys[0].len(), 32);
    }

    /// Keys already stored must come out the same: the values are SHA-256 of the fields as
    /// `record_key` feeds them, computed independently of this code.
    #[test]
    fn record_keys_are_pinned() {
        let matched = TokenUse {
            event_time_ms: 1_700_000_000_123,
            actor_id: 42,
            actor_name: "ada".into(),
            actor_username: None,
            actor_kind: ActorKind::Human,
            source_project_id: Some(101),
            source_project_path: "g/src".into(),
            target_project_id: None,
            target_project_path: "g/dst".into(),
            action: Action::known("repository.read"),
            job_id: Some(777),
            pipeline_id: None,
            git_ref: None,
            runner_id: None,
            token_type: "ci_job_token".into(),
            ip_address: "10.0.0.1".into(),
            same_project: false,
            allowlisted: None,
            correlation: Correlation::Matched,
            gap_ms: 37,
        };
        assert_eq!(record_key(&matched), "d506f65ed7ccd0b97a9bcad56ffc8584");
        let auth_only = TokenUse {
            event_time_ms: 1_700_000_000_000,
            target_project_path: String::new(),
            action: Action::AUTH,
            correlation: Correlation::AuthOnly,
            gap_ms: 0,
            ..matched
        };
        assert_eq!(record_key(&auth_only), "34d0ab9d38f2efbfb6eb890bc48f046a");
    }

    #[test]
    fn partitions_ahead_of_the_slowest_are_held_back_while_events_pile_up() {
        let mut stage = CorrelationStage::new(&CorrelateSettings {
            max_pending: 16,
            ..settings()
        });
        let p0: TopicPartition = (Arc::from("a"), 0);
        let p1: TopicPartition = (Arc::from("a"), 1);
        stage.on_events(&p1, 0, None, vec![auth(100, 1)]);
        assert!(stage.partitions_ahead().is_empty(), "little is held");
        for (i, t) in (10_000..10_009).enumerate() {
            stage.on_events(&p0, i as i64, None, vec![auth(t, 10 + i as i64)]);
        }
        // 10 held > 16 / 2: p0 is 9.9 s ahead of p1, which holds the watermark back.
        assert_eq!(stage.partitions_ahead(), vec![p0.clone()]);
        // p1 catches up: the watermark passes p0's events, they are decided, and with
        // fewer than 16 / 4 held the pause ends.
        stage.on_events(&p1, 1, None, vec![auth(20_000, 2)]);
        stage.on_events(&p0, 9, None, vec![auth(20_000, 3)]);
        assert!(stage.correlator().pending() < 4);
        assert!(stage.partitions_ahead().is_empty());
    }

    #[test]
    fn by_default_alignment_starts_at_ten_thousand_held_far_below_max_pending() {
        // A backlog read unevenly: what runs ahead piles up, and the join's cost per event
        // grows with it (benches/correlate.rs, `sparse_*_behind`). Half of `max_pending`
        // (50,000 by default) was the threshold before; 10,000 is.
        let defaults = CorrelateSettings::default();
        assert!(defaults.max_pending / 2 > 10_001);
        let mut stage = CorrelationStage::new(&defaults);
        let p0: TopicPartition = (Arc::from("a"), 0);
        let p1: TopicPartition = (Arc::from("a"), 1);
        stage.on_events(&p1, 0, None, vec![auth(100, 1)]);
        for i in 0..10_000 {
            stage.on_events(&p0, i, None, vec![auth(1_000_000 + i, 10 + i)]);
        }
        assert_eq!(stage.correlator().pending(), 10_001);
        assert_eq!(stage.partitions_ahead(), vec![p0.clone()]);
        // Settings can lower it, and half of `max_pending` still caps it.
        let mut small = CorrelationStage::new(&CorrelateSettings {
            max_pending: 100,
            align_pending: 10_000,
            ..defaults
        });
        small.on_events(&p1, 0, None, vec![auth(100, 1)]);
        for i in 0..50 {
            small.on_events(&p0, i, None, vec![auth(1_000_000 + i, 10 + i)]);
        }
        assert_eq!(small.partitions_ahead(), vec![p0]);
    }
}
