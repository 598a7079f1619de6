//! The alert engine: pure and deterministic. It reads only its inputs (token-use records,
//! normalized audit events, the correlation clock, start-up state) and takes time from them,
//! never from a wall clock.
//!
//! Per finding: rule enabled? → exception (by event time)? → suppression bucket → alert row.
//! Suppression: one alert per (rule, source, target, bucket of `suppression_window_ms` event
//! time); later findings in the bucket bump `count`/`last_seen_ms` and re-emit the row (same
//! id; the store keeps the newest row). Alerts hydrated at start-up carry the event time up to
//! which their count is durable, so findings replayed after a restart are not counted twice.

use std::collections::HashMap;

use super::edges::EdgeMemory;
use super::id::{alert_id, bucket_start, project_key};
use super::rule_id::RuleId;
use super::rules::{self, Check, Finding, REGISTRY};
use super::settings::{AlertingSettings, Exception, Severity};
use super::{Alert, AlertStatus, Emitted};
use crate::model::{Event, TokenUse};

/// How many findings between sweeps of closed buckets and stale edges.
const PRUNE_EVERY: u32 = 4096;

struct OpenAlert {
    alert: Alert,
    bucket_end_ms: i64,
    /// For alerts loaded from the store: findings at or before this event time are already
    /// counted in the stored row (they are being replayed).
    durable_through_ms: Option<i64>,
    /// Dedup keys of the audit events counted: GitLab re-dispatches a saved event with the
    /// same id, and a copy is the same change, not a second finding.
    events: Vec<String>,
}

pub struct AlertEngine {
    cfg: AlertingSettings,
    exceptions: HashMap<RuleId, Vec<(Exception, i64)>>,
    edges: EdgeMemory,
    open: HashMap<String, OpenAlert>,
    /// Event time below which no more findings are expected (`advance_clock`): what the
    /// periodic sweep measures closed buckets and stale edges against.
    clock_ms: i64,
    since_prune: u32,
}

impl AlertEngine {
    /// `cfg` must have passed [`AlertingSettings::validate`] (expiries parse).
    pub fn new(cfg: &AlertingSettings) -> Self {
        let exceptions = RuleId::ALL
            .into_iter()
            .map(|rule| {
                let compiled = cfg
                    .rules
                    .common(rule)
                    .exceptions
                    .iter()
                    .map(|e| (e.clone(), e.expires.to_ms().unwrap_or(i64::MIN)))
                    .collect();
                (rule, compiled)
            })
            .collect();
        AlertEngine {
            cfg: cfg.clone(),
            exceptions,
            edges: EdgeMemory::default(),
            open: HashMap::new(),
            clock_ms: i64::MIN,
            since_prune: 0,
        }
    }

    /// Start-up: edges already used within the lookback (keys from [`project_key`]).
    pub fn remember_edge(&mut self, source_key: String, target_key: String, last_used_ms: i64) {
        self.edges.remember(source_key, target_key, last_used_ms);
    }

    /// Start-up: the newest stored row of alerts whose bucket may still receive findings.
    pub fn resume_alert(&mut self, alert: Alert) {
        let window = self.cfg.suppression_window_ms;
        let bucket_end_ms = bucket_start(alert.first_seen_ms, window) + window;
        let durable = alert.last_seen_ms;
        self.open.insert(
            alert.alert_id.clone(),
            OpenAlert {
                alert,
                bucket_end_ms,
                durable_through_ms: Some(durable),
                events: Vec::new(),
            },
        );
    }

    /// Moves the engine's clock: event time below which no more findings are expected. The
    /// pipeline passes the correlation watermark less the longest an event can be held.
    ///
    /// Why not the newest finding: records are released at the pace of the slowest audit
    /// partition, while audit events raise findings as they are read, so during a backlog a
    /// partition running ahead would move a newest-finding clock past buckets whose records
    /// are still to come, and the sweep would drop their open alerts (a fresh row with count 1
    /// would then replace the stored count).
    pub fn advance_clock(&mut self, settled_before_ms: i64) {
        self.clock_ms = self.clock_ms.max(settled_before_ms);
    }

    /// The record rules (and new-edge) over token-use records.
    pub fn on_records(&mut self, records: &[TokenUse]) -> Vec<Emitted> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in records {
            let mut findings: Vec<Finding> = Vec::new();
            for def in REGISTRY {
                match def.check {
                    Check::Record(check) if self.cfg.rules.common(def.id).enabled => {
                        findings.extend(check(r, &self.cfg.rules));
                    }
                    Check::NewEdge => findings.extend(self.new_edge(r)),
                    _ => {}
                }
            }
            for f in findings {
                out.extend(self.raise(f, None));
            }
        }
        out
    }

    /// The audit-event rules over normalized audit events (allowlist and token-lifecycle
    /// changes).
    pub fn on_events(&mut self, events: &[Event]) -> Vec<Emitted> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        for event in events {
            let Event::Audit(ev) = event else { continue };
            for def in REGISTRY {
                if let Check::Audit(check) = def.check
                    && self.cfg.rules.common(def.id).enabled
                    && let Some(f) = check(ev, &self.cfg.rules)
                {
                    out.extend(self.raise(f, Some(&ev.dedup_key)));
                }
            }
        }
        out
    }

    /// Rule 3. The memory is updated for every cross-project use, even when the rule is off
    /// or excepted, so turning it on later does not flood.
    fn new_edge(&mut self, r: &TokenUse) -> Option<Finding> {
        if r.same_project || r.target_project_path.is_empty() || r.source_project_path.is_empty() {
            return None;
        }
        let cfg = &self.cfg.rules.new_edge;
        let source = project_key(r.source_project_id, &r.source_project_path);
        let target = project_key(r.target_project_id, &r.target_project_path);
        let new = self
            .edges
            .observe(&source, &target, r.event_time_ms, cfg.lookback_ms);
        (new && cfg.enabled).then(|| {
            let summary = format!(
                "first job-token use from {} to {} ({}) within the lookback",
                r.source_project_path, r.target_project_path, r.action
            );
            Finding::from_record(RuleId::NewEdge, r, summary)
        })
    }

    fn severity(&self, rule: RuleId) -> Severity {
        self.cfg.rules.common(rule).severity
    }

    /// Exceptions, then suppression; `None` when nothing is to be written. `event_key`: the
    /// dedup key of the audit event behind the finding (records are deduplicated upstream).
    fn raise(&mut self, f: Finding, event_key: Option<&str>) -> Option<Emitted> {
        if self.exceptions[&f.rule]
            .iter()
            .any(|(e, expires)| rules::exception_applies(e, *expires, &f))
        {
            return None;
        }
        self.maybe_prune();
        let window = self.cfg.suppression_window_ms;
        let bucket = bucket_start(f.event_time_ms, window);
        let id = alert_id(f.rule.as_str(), &f.source_key, &f.target_key, bucket);
        if let Some(open) = self.open.get_mut(&id) {
            if open
                .durable_through_ms
                .is_some_and(|d| f.event_time_ms <= d)
            {
                return None;
            }
            if let Some(k) = event_key {
                if open.events.iter().any(|e| e == k) {
                    return None;
                }
                open.events.push(k.to_string());
            }
            let a = &mut open.alert;
            a.count += 1;
            a.first_seen_ms = a.first_seen_ms.min(f.event_time_ms);
            a.last_seen_ms = a.last_seen_ms.max(f.event_time_ms);
            if f.event_time_ms >= a.event_time_ms {
                a.actor_id = f.actor_id;
                a.actor_kind = f.actor_kind;
                a.action = f.action;
                a.job_id = f.job_id;
                a.event_time_ms = f.event_time_ms;
                a.details = serde_json::Value::Object(f.details);
            }
            return Some(Emitted {
                alert: a.clone(),
                new: false,
            });
        }
        let alert = Alert {
            alert_id: id.clone(),
            rule: f.rule.as_str().to_string(),
            severity: self.severity(f.rule),
            summary: f.summary,
            first_seen_ms: f.event_time_ms,
            last_seen_ms: f.event_time_ms,
            count: 1,
            source_project_path: f.source_project_path,
            target_project_path: f.target_project_path,
            actor_id: f.actor_id,
            actor_kind: f.actor_kind,
            action: f.action,
            job_id: f.job_id,
            event_time_ms: f.event_time_ms,
            details: serde_json::Value::Object(f.details),
            status: AlertStatus::Open,
            acked_by: String::new(),
        };
        self.open.insert(
            id,
            OpenAlert {
                alert: alert.clone(),
                bucket_end_ms: bucket + window,
                durable_through_ms: None,
                events: event_key.into_iter().map(str::to_string).collect(),
            },
        );
        Some(Emitted { alert, new: true })
    }

    /// Forgets buckets that ended a full window before the clock (late findings for them
    /// would open a fresh row with the same id and count 1: rare, and never a new id).
    fn maybe_prune(&mut self) {
        self.since_prune += 1;
        if self.since_prune < PRUNE_EVERY {
            return;
        }
        self.since_prune = 0;
        if self.clock_ms == i64::MIN {
            return; // no clock yet: nothing is known to be closed
        }
        let horizon = self.clock_ms.saturating_sub(self.cfg.suppression_window_ms);
        self.open.retain(|_, o| o.bucket_end_ms >= horizon);
        self.edges.prune(
            self.clock_ms
                .saturating_sub(self.cfg.rules.new_edge.lookback_ms),
        );
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
