//! Turns normalized audit events and job webhooks into [`TokenUse`] records.
//!
//! Pure and deterministic: no I/O, no clock. Time is event time; the caller either advances the
//! watermark itself ([`Correlator::advance`]) or lets the correlator track
//! `max event time seen - lateness` ([`CorrelatorConfig::auto_lateness_ms`]).
//!
//! - [`join`]: auth ↔ resource join (1:1, nearest first, decided once the window closed).
//! - [`allowlist`]: inbound allowlists over time, with each member's recent history.
//! - [`enrich`]: `job_id -> JobInfo` cache from job webhooks, applied when a record is emitted.
//!
//! Records and their correlation methods:
//! - `auth+resource`: an auth and a resource event of the same author and IP within the window.
//! - `auth_only`: an auth with no resource event (action `auth`, target unknown, gap 0).
//! - `resource_lineage`: a `multi_project_downstream_pipeline_created` event (it names the
//!   upstream project) that matched no auth. The event alone proves a cross-project trigger,
//!   which is usually made by a trigger job server-side, with no job-token request to join.
//!   Source = upstream path (no id in the event), pipeline = upstream pipeline id.
//!
//! Other resource events with no auth are ordinary user access, not token use: they are
//! dropped here (counted as `unmatched_resources`) and kept in the store as audit rows.
//!
//! `allowlisted` is the allowlist's answer *at the record's event time*, not at its release:
//! changes are kept for [`CorrelatorConfig::horizon_ms`] behind the watermark, so a change
//! read before the record is released counts exactly when it was made, whichever was read
//! first. A change read after the record was released (later than `lateness` plus the hold)
//! does not revise it, like any late event.

pub mod actors;
pub mod allowlist;
pub mod enrich;
mod held;
pub mod join;

use serde::Serialize;

use crate::model::{Action, ActorKind, AuditEvent, AuditMeaning, Correlation, JobInfo, TokenUse};
use allowlist::{AllowlistState, same_project};
use enrich::JobCache;
use join::{AuthSide, Join, Outcome, ResourceSide, Side};

pub const TOKEN_TYPE: &str = "ci_job_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelatorConfig {
    /// Largest `|t_resource - t_auth|` for a match.
    pub window_ms: i64,
    /// Held auth + resource events; above it the oldest segment is committed early.
    pub max_pending: usize,
    /// Job enrichment cache size.
    pub max_jobs: usize,
    /// Longest a busy key's segment is held open (raised to at least `2 * window_ms + 1`).
    pub max_hold_ms: i64,
    /// `Some(l)`: every audit event advances the watermark to `max event time seen - l`.
    /// `None`: only [`Correlator::advance`] moves it.
    pub auto_lateness_ms: Option<i64>,
}

impl CorrelatorConfig {
    /// Longest a record's event time can trail the watermark when it is released: its window,
    /// plus the longest hold (raised as in [`Join::new`]). Allowlist history is kept this far
    /// back, and a window more for events the watermark passes between two advances.
    pub fn horizon_ms(&self) -> i64 {
        let hold = self.max_hold_ms.max(2 * self.window_ms + 1);
        2 * self.window_ms + hold
    }
}

/// How far the watermark trails the newest event time by default; `config::CorrelateSettings`
/// takes its `lateness_ms` default from here.
///
/// Covers GitLab's usual delivery spread (tenths of a second, seconds in the tail): measured
/// with examples/correlation_latency.rs, 3 s keeps precision and recall at 0.9999 on simulated
/// traffic and puts matched records about 3-4 s behind their events; 10 s gains nothing
/// measurable and triples alert latency.
pub const DEFAULT_LATENESS_MS: i64 = 3_000;

/// The defaults `config::CorrelateSettings` starts from as well.
impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            window_ms: 5_000,
            max_pending: 100_000,
            max_jobs: 200_000,
            max_hold_ms: 15_000,
            auto_lateness_ms: Some(DEFAULT_LATENESS_MS),
        }
    }
}

/// Items committed early, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EvictionStats {
    /// Auths committed because `max_pending` was exceeded (still emitted).
    pub pending_auths: u64,
    pub pending_resources: u64,
    /// Committed because their segment stayed open longer than `max_hold_ms`.
    pub held_too_long_auths: u64,
    pub held_too_long_resources: u64,
    /// Jobs dropped from the enrichment cache.
    pub jobs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorrelatorStats {
    pub pending_auths: usize,
    pub pending_resources: usize,
    pub pending_keys: usize,
    pub cached_jobs: usize,
    pub allowlist_projects: usize,
    /// Allowlist member versions held (one settled per member, plus the horizon's changes).
    pub allowlist_versions: usize,
    pub emitted: u64,
    pub matched: u64,
    pub auth_only: u64,
    pub lineage: u64,
    /// Resource events that found no auth (ordinary access, not token use).
    pub unmatched_resources: u64,
    /// Events whose window had already closed when they arrived.
    pub late_events: u64,
    pub duplicates: u64,
    pub allowlist_changes: u64,
    /// Allowlist changes naming no project or member.
    pub allowlist_ignored: u64,
    pub evicted: EvictionStats,
    pub watermark_ms: Option<i64>,
}

/// Tracks `max event time seen - lateness`, the usual watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkTracker {
    lateness_ms: i64,
    max_seen_ms: Option<i64>,
}

impl WatermarkTracker {
    pub fn new(lateness_ms: i64) -> Self {
        Self {
            lateness_ms,
            max_seen_ms: None,
        }
    }

    /// Records an event time and returns the resulting watermark.
    pub fn observe(&mut self, event_time_ms: i64) -> i64 {
        let max = self
            .max_seen_ms
            .map_or(event_time_ms, |m| m.max(event_time_ms));
        self.max_seen_ms = Some(max);
        max.saturating_sub(self.lateness_ms)
    }

    pub fn watermark(&self) -> Option<i64> {
        self.max_seen_ms.map(|m| m.saturating_sub(self.lateness_ms))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    emitted: u64,
    matched: u64,
    auth_only: u64,
    lineage: u64,
    unmatched_resources: u64,
    allowlist_changes: u64,
    allowlist_ignored: u64,
}

#[derive(Debug)]
pub struct Correlator {
    join: Join,
    jobs: JobCache,
    allowlist: AllowlistState,
    horizon_ms: i64,
    tracker: Option<WatermarkTracker>,
    counters: Counters,
}

impl Correlator {
    pub fn new(cfg: CorrelatorConfig) -> Self {
        Self {
            join: Join::new(cfg.window_ms, cfg.max_pending, cfg.max_hold_ms),
            jobs: JobCache::new(cfg.max_jobs),
            allowlist: AllowlistState::new(),
            horizon_ms: cfg.horizon_ms(),
            tracker: cfg.auto_lateness_ms.map(WatermarkTracker::new),
            counters: Counters::default(),
        }
    }

    /// Feeds one normalized audit event. Returns the records that became final: evictions,
    /// and with `auto_lateness_ms`, whatever the advanced watermark closed. Feeds a copy of
    /// the event, for callers that keep theirs (tests, tools); ingest hands its events over
    /// with [`Correlator::on_audit_into`].
    pub fn on_audit(&mut self, ev: &AuditEvent) -> Vec<TokenUse> {
        let mut records = Vec::new();
        self.on_audit_into(ev.clone(), &mut records);
        records
    }

    /// [`Correlator::on_audit`], appending the records to `records` (the ingest loop's list
    /// for the message, so a record is moved once instead of through two more lists). The
    /// event is taken, not borrowed: a held event's texts (author, project, dedup key) move
    /// into the join instead of being copied.
    pub fn on_audit_into(&mut self, ev: AuditEvent, records: &mut Vec<TokenUse>) {
        let mut out = Vec::new();
        let t = ev.created_at_ms;
        match ev.meaning {
            AuditMeaning::JobTokenAuth { job_id } => {
                let side = Side::Auth(AuthSide {
                    author_name: ev.author_name,
                    actor_kind: ev.actor_kind,
                    project_id: ev.entity_id,
                    project_path: ev.entity_path,
                    job_id,
                });
                let (id, ip) = (ev.author_id, &ev.ip_address);
                self.join.insert(id, ip, t, ev.dedup_key, side, &mut out);
            }
            AuditMeaning::ResourceAccess {
                action,
                upstream_project_path,
                upstream_pipeline_id,
                ..
            } => {
                let side = ResourceSide {
                    author_name: ev.author_name,
                    actor_kind: ev.actor_kind,
                    project_id: ev.entity_id,
                    project_path: ev.entity_path,
                    action,
                    upstream_project_path,
                    upstream_pipeline_id,
                };
                if ev.author_id <= 0 {
                    // Deploy tokens/keys and anonymous access never authenticate with a job
                    // token: decide now instead of holding.
                    out.push(Outcome {
                        author_id: ev.author_id,
                        ip: ev.ip_address,
                        auth: None,
                        resource: Some((t, side)),
                        reason: join::CommitReason::WindowClosed,
                    });
                } else {
                    let (id, ip, side) = (ev.author_id, &ev.ip_address, Side::Resource(side));
                    self.join.insert(id, ip, t, ev.dedup_key, side, &mut out);
                }
            }
            AuditMeaning::Allowlist(change) => {
                if self.allowlist.apply(&change, t) {
                    self.counters.allowlist_changes += 1;
                } else {
                    self.counters.allowlist_ignored += 1;
                }
            }
            AuditMeaning::TokenLifecycle(_) | AuditMeaning::Other => {}
        }
        if let Some(tracker) = &mut self.tracker {
            let wm = tracker.observe(t);
            self.join.advance(wm, &mut out);
        }
        self.finish(out, records);
    }

    /// Caches job info for enrichment. Records already emitted are not revisited (see
    /// [`enrich`]); records still held pick it up when they are emitted.
    pub fn on_job(&mut self, job: &JobInfo) {
        self.jobs.upsert(job);
    }

    /// Moves the watermark (event time below which no more events are expected) and returns the
    /// records it closes. A watermark at or behind the current one does nothing.
    pub fn advance(&mut self, watermark_ms: i64) -> Vec<TokenUse> {
        let mut records = Vec::new();
        self.advance_into(watermark_ms, &mut records);
        records
    }

    /// [`Correlator::advance`], appending the records to `records` (see `on_audit_into`).
    pub fn advance_into(&mut self, watermark_ms: i64, records: &mut Vec<TokenUse>) {
        let mut out = Vec::new();
        self.join.advance(watermark_ms, &mut out);
        self.finish(out, records);
    }

    /// Commits everything held (shutdown, end of input).
    pub fn flush_all(&mut self) -> Vec<TokenUse> {
        let mut out = Vec::new();
        self.join.flush_all(&mut out);
        let mut records = Vec::new();
        self.finish(out, &mut records);
        records
    }

    /// The join's watermark: event time below which no more events are expected.
    pub fn watermark(&self) -> Option<i64> {
        self.join.watermark()
    }

    /// The job cache is full: a job read now evicts the oldest.
    pub fn jobs_full(&self) -> bool {
        self.jobs.is_full()
    }

    /// Auth and resource events held, waiting for their window to close.
    pub fn pending(&self) -> usize {
        self.join.pending_auths() + self.join.pending_resources()
    }

    pub fn stats(&self) -> CorrelatorStats {
        let j = self.join.counters();
        let c = self.counters;
        CorrelatorStats {
            pending_auths: self.join.pending_auths(),
            pending_resources: self.join.pending_resources(),
            pending_keys: self.join.pending_keys(),
            cached_jobs: self.jobs.len(),
            allowlist_projects: self.allowlist.len(),
            allowlist_versions: self.allowlist.versions(),
            emitted: c.emitted,
            matched: c.matched,
            auth_only: c.auth_only,
            lineage: c.lineage,
            unmatched_resources: c.unmatched_resources,
            late_events: j.late,
            duplicates: j.duplicates,
            allowlist_changes: c.allowlist_changes,
            allowlist_ignored: c.allowlist_ignored,
            evicted: EvictionStats {
                pending_auths: j.evicted_auths,
                pending_resources: j.evicted_resources,
                held_too_long_auths: j.held_too_long_auths,
                held_too_long_resources: j.held_too_long_resources,
                jobs: self.jobs.evicted(),
            },
            watermark_ms: self.join.watermark(),
        }
    }

    pub fn allowlist(&self) -> &AllowlistState {
        &self.allowlist
    }

    /// For replaying stored allowlist history at start-up without touching the watermark.
    pub fn allowlist_mut(&mut self) -> &mut AllowlistState {
        &mut self.allowlist
    }

    /// Appends the join outcomes' records to `records`, in a deterministic order among
    /// themselves (records already in the list stay as they are).
    fn finish(&mut self, outcomes: Vec<Outcome>, records: &mut Vec<TokenUse>) {
        let start = records.len();
        records.reserve(outcomes.len());
        for o in outcomes {
            if let Some(r) = self.record(o) {
                records.push(r);
            }
        }
        let new = &mut records[start..];
        self.counters.emitted += new.len() as u64;
        new.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        // Records still held are at most a horizon behind the watermark: older changes can
        // only matter as the state they leave.
        if let Some(wm) = self.join.watermark() {
            self.allowlist.settle(wm.saturating_sub(self.horizon_ms));
        }
    }

    fn record(&mut self, o: Outcome) -> Option<TokenUse> {
        let c = &mut self.counters;
        match (o.auth, o.resource) {
            (Some((ta, auth)), Some((tr, res))) => {
                c.matched += 1;
                Some(self.auth_record(o.author_id, o.ip, ta, auth, Some((tr, res))))
            }
            (Some((ta, auth)), None) => {
                c.auth_only += 1;
                Some(self.auth_record(o.author_id, o.ip, ta, auth, None))
            }
            (None, Some((tr, res))) if res.upstream_project_path.is_some() => {
                c.lineage += 1;
                Some(lineage(o.author_id, o.ip, tr, res))
            }
            (None, _) => {
                c.unmatched_resources += 1;
                None
            }
        }
    }

    fn auth_record(
        &self,
        actor_id: i64,
        ip: String,
        t_auth: i64,
        auth: AuthSide,
        res: Option<(i64, ResourceSide)>,
    ) -> TokenUse {
        let job = auth.job_id.and_then(|id| self.jobs.get(id));
        let source_id = auth.project_id.or(job.and_then(|j| j.project_id));
        let source_path = match (auth.project_path.is_empty(), job) {
            (true, Some(j)) => j.project_path.as_deref().unwrap_or_default().to_owned(),
            _ => auth.project_path,
        };
        // A webhook names the job's user; only trust its username for the same user.
        let username = job
            .filter(|j| j.user_id.is_none_or(|u| u == actor_id))
            .and_then(|j| j.username.as_deref().map(str::to_string));
        // The username shows bot naming the audit event lacks (see `actors`).
        let actor_kind = match (&username, auth.actor_kind) {
            (Some(name), ActorKind::Human) => actors::kind_from_username(actor_id, name),
            (_, kind) => kind,
        };
        let mut rec = TokenUse {
            event_time_ms: t_auth,
            actor_id,
            actor_name: auth.author_name,
            actor_username: username,
            actor_kind,
            source_project_id: source_id,
            source_project_path: source_path,
            target_project_id: None,
            target_project_path: String::new(),
            action: Action::AUTH,
            job_id: auth.job_id,
            pipeline_id: job.and_then(|j| j.pipeline_id),
            git_ref: job.and_then(|j| j.git_ref.as_deref().map(str::to_string)),
            runner_id: job.and_then(|j| j.runner_id),
            token_type: TOKEN_TYPE.to_string(),
            ip_address: ip,
            same_project: false,
            allowlisted: None,
            correlation: Correlation::AuthOnly,
            gap_ms: 0,
        };
        if let Some((t_res, res)) = res {
            rec.event_time_ms = t_res;
            rec.gap_ms = t_res - t_auth;
            rec.target_project_id = res.project_id;
            rec.target_project_path = res.project_path;
            rec.action = res.action;
            rec.correlation = Correlation::Matched;
            rec.same_project = same_project(
                rec.source_project_id,
                &rec.source_project_path,
                rec.target_project_id,
                &rec.target_project_path,
            );
            rec.allowlisted = self.allowlist.is_allowlisted(
                rec.source_project_id,
                &rec.source_project_path,
                rec.target_project_id,
                &rec.target_project_path,
                rec.event_time_ms,
            );
        }
        rec
    }
}

/// A downstream-pipeline event alone: upstream path -> downstream project. The allowlist is not
/// consulted: creating a downstream pipeline is authorized by the user's permissions, not by
/// the target's job-token allowlist.
fn lineage(actor_id: i64, ip: String, t: i64, res: ResourceSide) -> TokenUse {
    let source_path = res.upstream_project_path.unwrap_or_default();
    TokenUse {
        event_time_ms: t,
        actor_id,
        actor_name: res.author_name,
        actor_username: None,
        actor_kind: res.actor_kind,
        source_project_id: None,
        same_project: same_project(None, &source_path, res.project_id, &res.project_path),
        source_project_path: source_path,
        target_project_id: res.project_id,
        target_project_path: res.project_path,
        action: Action::PIPELINE_TRIGGER,
        job_id: None,
        pipeline_id: res.upstream_pipeline_id,
        git_ref: None,
        runner_id: None,
        token_type: TOKEN_TYPE.to_string(),
        ip_address: ip,
        allowlisted: None,
        correlation: Correlation::Lineage,
        gap_ms: 0,
    }
}

type SortKey<'a> = (
    i64,
    i64,
    &'a str,
    Option<i64>,
    &'a str,
    &'a str,
    &'a str,
    i64,
);

fn sort_key(r: &TokenUse) -> SortKey<'_> {
    (
        r.event_time_ms,
        r.actor_id,
        &r.ip_address,
        r.job_id,
        &r.target_project_path,
        r.action.as_str(),
        r.correlation.as_str(),
        r.gap_ms,
    )
}
