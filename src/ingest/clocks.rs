//! How far each partition has been read, and from that the correlator's watermark and the
//! partitions to pause. Pure: the caller says what was read; only `Instant` tells idleness.
//!
//! Two clocks per partition:
//! - event time (audit partitions): the newest `created_at` read. The watermark is the
//!   minimum over active audit partitions, less `lateness_ms`: events of one author share a
//!   partition, so a partition read slowly during a backlog must not have its events judged
//!   late.
//! - receipt time (every partition): the newest Kafka timestamp read, i.e. when the collector
//!   received the message. A webhook sender cannot set it, and audit and webhook messages
//!   are received on one clock, while their own times are not comparable in a backlog.
//!
//! Webhooks gate the watermark. A token-use record takes its job's pipeline, ref, runner and
//! username from the job webhooks when it is decided (`correlate::enrich`). Draining a
//! backlog, the audit partitions were read ahead of the webhooks and most records were decided
//! before their job's webhook was read (benches/README.md, "Records drained from a backlog").
//! So an audit message counts as *covered* once every active webhook partition has been read
//! to its receipt time, and a little further: `lateness_ms` more, in the hooks' own times or
//! in receipt time, whichever comes first (GitLab may deliver a job's webhook a little after
//! the job's first authentication). The watermark stays below the events of messages not yet
//! covered. The hooks' own times only shorten that margin, so a sender dating its hooks
//! wrongly cannot hold anything back; receipt time alone would make the margin seconds of
//! *receipt*, which is hours of traffic when a backlog was produced faster than GitLab sends
//! (benches/e2e.sh publishes 88 hours of simulated traffic in 16 s). In live traffic the
//! webhooks are read as they arrive and this holds nothing back beyond the lateness the
//! event clock already waits.
//!
//! Pauses: a webhook partition more than [`WEBHOOK_LEAD_MS`] ahead of the audit partitions
//! (in receipt time) is paused, so the bounded job cache (`correlate.max_jobs`) still holds a
//! job when its authentications are read; once the cache is full, more than `lateness_ms`
//! ahead, since each job read then evicts one (a backlog published faster than GitLab sends
//! puts many jobs in a minute of receipt: benches/e2e.sh's 10 M messages took 146 s).
//! While events pile up in the correlator (the caller says when), audit partitions more
//! than `lateness_ms` ahead of the slowest audit partition, or ahead of the webhooks in
//! receipt time, are paused, and resumed once they are no longer ahead at all: resuming at
//! the pausing threshold made equally fast partitions take turns every few milliseconds,
//! and each pause discards the partition's prefetched messages.

use std::collections::VecDeque;

use crate::hashing::HashMap;
use std::time::{Duration, Instant};

use crate::model::SourceKind;
use crate::store::block::TopicPartition;

/// How far (in receipt time) a webhook partition may be read ahead of the slowest active
/// audit partition before it is paused; it resumes at half of it. A minute of jobs is far
/// below the job cache (`correlate.max_jobs`) at any rate GitLab sends, and long enough that
/// the pause does not flap.
pub const WEBHOOK_LEAD_MS: i64 = 60_000;

#[derive(Debug)]
struct Clock {
    source: SourceKind,
    /// Newest event time: audit `created_at`, or a hook's own time; `None` until the first.
    max_event_ms: Option<i64>,
    /// Newest receipt time; `None` until the first message.
    max_received_ms: Option<i64>,
    last_seen: Instant,
}

/// An audit message the webhooks have not been read past yet.
#[derive(Debug, Clone, Copy)]
struct Uncovered {
    seq: u64,
    received_ms: i64,
    event_ms: i64,
}

#[derive(Debug)]
pub struct PartitionClocks {
    lateness_ms: i64,
    idle: Duration,
    clocks: HashMap<TopicPartition, Clock>,
    /// In reading order. Receipt times are nearly ordered; an entry waits for those before it,
    /// which can only hold a record back a little longer.
    uncovered: VecDeque<Uncovered>,
    /// `uncovered`'s minimum event time, as a monotonic queue (increasing event times).
    uncovered_min: VecDeque<(u64, i64)>,
    next_seq: u64,
    webhooks_leading: Vec<TopicPartition>,
    audits_paused: Vec<TopicPartition>,
}

impl PartitionClocks {
    pub fn new(lateness_ms: i64, idle: Duration) -> Self {
        PartitionClocks {
            lateness_ms,
            idle,
            clocks: HashMap::default(),
            uncovered: VecDeque::new(),
            uncovered_min: VecDeque::new(),
            next_seq: 0,
            webhooks_leading: Vec::new(),
            audits_paused: Vec::new(),
        }
    }

    /// A partition was assigned: until it delivers a message (or stays silent for the idle
    /// period) it holds the watermark back, so its backlog is not judged late, and, for a
    /// webhook partition, so no record is decided before its job's webhook could be read.
    pub fn assign(&mut self, tp: &TopicPartition, source: SourceKind) {
        self.clocks.insert(tp.clone(), Clock::new(source));
    }

    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.clocks.remove(tp);
        self.webhooks_leading.retain(|t| t != tp);
        self.audits_paused.retain(|t| t != tp);
    }

    /// An audit message: its newest event time and its receipt time, if Kafka gave one (one
    /// without is covered at once).
    pub fn audit_read(&mut self, tp: &TopicPartition, received_ms: Option<i64>, event_ms: i64) {
        let clock = self.seen(tp, SourceKind::AuditStream);
        clock.max_event_ms = Some(clock.max_event_ms.map_or(event_ms, |m| m.max(event_ms)));
        if let Some(r) = received_ms {
            clock.max_received_ms = Some(clock.max_received_ms.map_or(r, |m| m.max(r)));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        while self
            .uncovered_min
            .back()
            .is_some_and(|&(_, e)| e >= event_ms)
        {
            self.uncovered_min.pop_back();
        }
        self.uncovered_min.push_back((seq, event_ms));
        self.uncovered.push_back(Uncovered {
            seq,
            received_ms: received_ms.unwrap_or(i64::MIN),
            event_ms,
        });
    }

    /// A webhook message, with the hook's own time if it has one. One without a receipt time
    /// stops its partition gating anything: nothing could ever be compared with it.
    pub fn webhook_read(
        &mut self,
        tp: &TopicPartition,
        received_ms: Option<i64>,
        hook_ms: Option<i64>,
    ) {
        let clock = self.seen(tp, SourceKind::Webhook);
        let r = received_ms.unwrap_or(i64::MAX);
        clock.max_received_ms = Some(clock.max_received_ms.map_or(r, |m| m.max(r)));
        if let Some(h) = hook_ms {
            clock.max_event_ms = Some(clock.max_event_ms.map_or(h, |m| m.max(h)));
        }
    }

    /// A message of `tp`: the partition is still delivering.
    fn seen(&mut self, tp: &TopicPartition, source: SourceKind) -> &mut Clock {
        // Looked up by reference: the key is copied only for a new partition, not per event.
        if !self.clocks.contains_key(tp) {
            self.clocks.insert(tp.clone(), Clock::new(source));
        }
        let clock = self.clocks.get_mut(tp).expect("inserted above");
        clock.last_seen = Instant::now();
        clock
    }

    /// The event time below which the correlator may decide: the slowest active audit
    /// partition less lateness, and below every audit message the webhooks have not been read
    /// past. `None` while an active audit partition has not delivered anything yet.
    pub fn watermark(&mut self) -> Option<i64> {
        let now = Instant::now();
        let mut events: Option<i64> = None;
        for c in self.active(SourceKind::AuditStream, now) {
            let m = c.max_event_ms?;
            events = Some(events.map_or(m, |x| x.min(m)));
        }
        let events = events? - self.lateness_ms;
        self.cover(now);
        Some(match self.uncovered_min.front() {
            Some(&(_, first_uncovered)) => events.min(first_uncovered),
            None => events,
        })
    }

    /// Partitions to pause now. `piling_up`: the correlator holds so many events that the
    /// partitions read faster than the slowest must wait.
    /// `jobs_full`: the job cache is full, so webhooks read ahead evict jobs still needed.
    pub fn to_pause(&mut self, piling_up: bool, jobs_full: bool) -> Vec<TopicPartition> {
        let now = Instant::now();
        let mut pause = self.webhooks_ahead(jobs_full, now);
        if piling_up {
            pause.extend(self.audits_ahead(now));
        } else {
            self.audits_paused.clear();
        }
        pause
    }

    /// Audit partitions more than `lateness_ms` ahead of the slowest one (in event time), or
    /// ahead of the webhooks (in receipt time); a paused one stays paused while it is ahead at
    /// all. The reference is the slowest partition still delivering; a paused one goes quiet
    /// but counts for its idle period.
    fn audits_ahead(&mut self, now: Instant) -> Vec<TopicPartition> {
        let slowest = self
            .active(SourceKind::AuditStream, now)
            .filter_map(|c| c.max_event_ms)
            .min();
        let webhooks = self.webhooks_read_to(now).map(|(received, _)| received);
        let paused = &self.audits_paused;
        let now_paused: Vec<TopicPartition> = self
            .clocks
            .iter()
            .filter(|(_, c)| c.source == SourceKind::AuditStream)
            .filter(|(tp, c)| {
                let margin = if paused.contains(tp) {
                    0
                } else {
                    self.lateness_ms
                };
                let by_event = slowest
                    .zip(c.max_event_ms)
                    .is_some_and(|(s, t)| t > s + margin);
                let by_receipt = webhooks.zip(c.max_received_ms).is_some_and(|(w, r)| r > w);
                by_event || by_receipt
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        self.audits_paused.clone_from(&now_paused);
        now_paused
    }

    fn webhooks_ahead(&mut self, jobs_full: bool, now: Instant) -> Vec<TopicPartition> {
        let (start, keep) = if jobs_full {
            (self.lateness_ms, 0)
        } else {
            (WEBHOOK_LEAD_MS, WEBHOOK_LEAD_MS / 2)
        };
        let Some(slowest_audit) = self
            .active(SourceKind::AuditStream, now)
            .filter_map(|c| c.max_received_ms)
            .min()
        else {
            self.webhooks_leading.clear();
            return Vec::new();
        };
        let leading = &self.webhooks_leading;
        let now_leading: Vec<TopicPartition> = self
            .clocks
            .iter()
            .filter(|(_, c)| c.source == SourceKind::Webhook)
            .filter(|(tp, c)| {
                let lead = if leading.contains(tp) { keep } else { start };
                c.max_received_ms
                    .is_some_and(|r| r != i64::MAX && r > slowest_audit + lead)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        self.webhooks_leading.clone_from(&now_leading);
        now_leading
    }

    /// The receipt time and the hook time every active webhook partition has been read to:
    /// `None` when none is active, `i64::MIN` while one has delivered nothing yet.
    fn webhooks_read_to(&self, now: Instant) -> Option<(i64, i64)> {
        self.active(SourceKind::Webhook, now)
            .map(|c| {
                (
                    c.max_received_ms.unwrap_or(i64::MIN),
                    c.max_event_ms.unwrap_or(i64::MIN),
                )
            })
            .reduce(|(r, h), (r2, h2)| (r.min(r2), h.min(h2)))
    }

    /// Moves the audit messages the webhooks have been read past out of `uncovered`.
    fn cover(&mut self, now: Instant) {
        let read_to = self.webhooks_read_to(now);
        while let Some(first) = self.uncovered.front().copied() {
            let covered = match read_to {
                None => true,
                Some((received, hooks)) => {
                    received >= first.received_ms
                        && (received >= first.received_ms.saturating_add(self.lateness_ms)
                            || hooks >= first.event_ms.saturating_add(self.lateness_ms))
                }
            };
            if !covered {
                break;
            }
            self.uncovered.pop_front();
            if self
                .uncovered_min
                .front()
                .is_some_and(|&(s, _)| s == first.seq)
            {
                self.uncovered_min.pop_front();
            }
        }
    }

    /// The partitions of `source` that delivered within the idle period before `now` (read
    /// once per query: a clock reading per partition was 1.3 % of ingest's samples).
    fn active(&self, source: SourceKind, now: Instant) -> impl Iterator<Item = &Clock> {
        self.clocks.values().filter(move |c| {
            c.source == source && now.saturating_duration_since(c.last_seen) < self.idle
        })
    }
}

impl Clock {
    fn new(source: SourceKind) -> Self {
        Clock {
            source,
            max_event_ms: None,
            max_received_ms: None,
            last_seen: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn clocks() -> (PartitionClocks, TopicPartition, TopicPartition) {
        let mut c = PartitionClocks::new(1_000, Duration::from_secs(60));
        let audit: TopicPartition = (Arc::from("audit"), 0);
        let hooks: TopicPartition = (Arc::from("webhooks"), 0);
        c.assign(&audit, SourceKind::AuditStream);
        c.assign(&hooks, SourceKind::Webhook);
        (c, audit, hooks)
    }

    #[test]
    fn the_watermark_stays_below_audits_the_webhooks_have_not_been_read_past() {
        let (mut c, audit, hooks) = clocks();
        c.audit_read(&audit, Some(10_000), 9_000);
        c.audit_read(&audit, Some(50_000), 49_000);
        assert_eq!(
            c.watermark(),
            Some(9_000),
            "no webhook read: below the first audit"
        );
        c.webhook_read(&hooks, Some(10_500), None);
        assert_eq!(
            c.watermark(),
            Some(9_000),
            "not read to lateness past the first"
        );
        c.webhook_read(&hooks, Some(11_000), None);
        assert_eq!(
            c.watermark(),
            Some(48_000),
            "first covered: below the second's event"
        );
        c.webhook_read(&hooks, Some(51_000), None);
        assert_eq!(
            c.watermark(),
            Some(48_000),
            "all covered: event time less lateness"
        );
    }

    #[test]
    fn messages_without_a_receipt_time_gate_nothing() {
        let (mut c, audit, hooks) = clocks();
        c.webhook_read(&hooks, Some(1), None);
        c.audit_read(&audit, None, 9_000);
        assert_eq!(
            c.watermark(),
            Some(8_000),
            "an audit without one is covered"
        );
        let (mut c, audit, hooks) = clocks();
        c.webhook_read(&hooks, None, None);
        c.audit_read(&audit, Some(10_000), 9_000);
        assert_eq!(
            c.watermark(),
            Some(8_000),
            "a webhook without one stops gating"
        );
        assert!(c.to_pause(true, false).is_empty(), "nor is it ever ahead");
    }

    #[test]
    fn audits_ahead_of_the_webhooks_pause_only_while_events_pile_up() {
        let (mut c, audit, hooks) = clocks();
        c.webhook_read(&hooks, Some(10_000), None);
        c.audit_read(&audit, Some(30_000), 29_000);
        assert!(c.to_pause(false, false).is_empty());
        assert_eq!(c.to_pause(true, false), vec![audit.clone()]);
        c.webhook_read(&hooks, Some(29_999), None);
        assert_eq!(
            c.to_pause(true, false),
            vec![audit.clone()],
            "not read to it yet"
        );
        c.webhook_read(&hooks, Some(30_000), None);
        assert!(
            c.to_pause(true, false).is_empty(),
            "the webhooks reached it"
        );
    }

    #[test]
    fn the_hooks_own_times_can_only_shorten_the_margin() {
        let (mut c, audit, hooks) = clocks();
        c.audit_read(&audit, Some(10_000), 9_000);
        c.audit_read(&audit, Some(10_001), 60_000);
        // Read to the audit's receipt, and hooks dated past its event plus lateness.
        c.webhook_read(&hooks, Some(10_000), Some(10_000));
        assert_eq!(c.watermark(), Some(59_000), "first covered without waiting");
        // Hooks dated in the future do not cover what the webhooks were not read to.
        let (mut c, audit, hooks) = clocks();
        c.audit_read(&audit, Some(10_000), 9_000);
        c.webhook_read(&hooks, Some(9_999), Some(i64::MAX / 2));
        assert_eq!(c.watermark(), Some(8_000));
        c.audit_read(&audit, Some(10_001), 60_000);
        assert_eq!(
            c.watermark(),
            Some(9_000),
            "still below the uncovered first"
        );
        // Hooks dated in 1970 hold nothing: receipt time alone covers after lateness.
        let (mut c, audit, hooks) = clocks();
        c.audit_read(&audit, Some(10_000), 9_000);
        c.audit_read(&audit, Some(10_001), 60_000);
        c.webhook_read(&hooks, Some(11_000), Some(1));
        assert_eq!(c.watermark(), Some(59_000));
    }

    #[test]
    fn a_paused_audit_partition_resumes_only_once_it_is_not_ahead_at_all() {
        let mut c = PartitionClocks::new(1_000, Duration::from_secs(60));
        let p0: TopicPartition = (Arc::from("audit"), 0);
        let p1: TopicPartition = (Arc::from("audit"), 1);
        c.audit_read(&p0, None, 10_000);
        c.audit_read(&p1, None, 8_000);
        assert_eq!(c.to_pause(true, false), vec![p0.clone()]);
        c.audit_read(&p1, None, 9_500);
        assert_eq!(
            c.to_pause(true, false),
            vec![p0.clone()],
            "within lateness, still ahead"
        );
        c.audit_read(&p1, None, 10_000);
        assert!(c.to_pause(true, false).is_empty());
        c.audit_read(&p1, None, 10_500);
        assert!(
            c.to_pause(true, false).is_empty(),
            "p1 within lateness of p0: neither pauses"
        );
    }

    #[test]
    fn with_the_job_cache_full_webhooks_may_lead_only_by_lateness() {
        let (mut c, audit, hooks) = clocks();
        c.audit_read(&audit, Some(10_000), 9_000);
        c.webhook_read(&hooks, Some(10_000 + 2 * 1_000), None);
        assert!(
            c.to_pause(false, false).is_empty(),
            "within the minute's lead"
        );
        assert_eq!(c.to_pause(false, true), vec![hooks.clone()]);
        c.audit_read(&audit, Some(11_999), 11_000);
        assert_eq!(c.to_pause(false, true), vec![hooks.clone()], "still ahead");
        c.audit_read(&audit, Some(12_000), 11_000);
        assert!(c.to_pause(false, true).is_empty(), "the audits reached it");
    }
}
