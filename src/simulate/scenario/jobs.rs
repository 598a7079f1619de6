//! Pipelines, jobs and the job-token uses inside them (with their ground truth).

use std::cmp::Reverse;

use rand::Rng;
use rand::seq::IndexedRandom;

use super::{Downstream, Person, Scenario};
use crate::model::{Action, ActorKind, Correlation, TokenUse};
use crate::simulate::gitlab;
use crate::simulate::world::{AclChange, AclOp, Member, POLICY_SETS};

pub(super) struct SourceInfo {
    pub project: usize,
    pub pipeline: i64,
    pub job: i64,
}

pub(super) struct Pipe {
    pub id: i64,
    pub iid: i64,
    pub project: usize,
    pub person: Person,
    pub git_ref: String,
    pub tag: bool,
    pub sha: String,
    pub before_sha: String,
    pub created: i64,
    pub source: Option<SourceInfo>,
    /// Root of the trigger chain (`upstream_root_project_path`, `upstream_root_pipeline_id`).
    pub root: (String, i64),
    pub hook_source: &'static str,
}

pub(super) struct Job {
    pub id: i64,
    pub name: &'static str,
    pub stage: &'static str,
    pub runner: usize,
    pub created: i64,
    pub started: i64,
    pub finished: Option<i64>,
}

/// What one job-token use does.
struct UsePlan {
    target: Option<usize>,
    action: &'static str,
    /// Anomaly kinds of this use besides `new_edge` (which is derived from the pair).
    kinds: Vec<&'static str>,
}

/// Share of ordinary cross-project uses after which the target's maintainer removes the
/// source's project entry seconds later (and adds it back minutes after): the use must still
/// count as allowlisted, though the removal is read while the use is held.
const REMOVAL_AFTER_USE_SHARE: f64 = 0.003;
/// A use's event time can trail its planned time by this much (its gap to the auth event and
/// the shifts that keep one author's uses apart), so ordinary traffic only reaches a target
/// that admits it over this whole span.
const PLAN_SLACK_MS: i64 = 5_000;

const JOBS: &[(&str, &str)] = &[
    ("build", "build"),
    ("unit-test", "test"),
    ("lint", "test"),
    ("integration-test", "test"),
    ("publish-package", "deploy"),
    ("deploy", "deploy"),
];

impl Scenario {
    pub(super) fn regular_pipeline(&mut self, start: i64) {
        let project = self.world.pick_project(&mut self.rng);
        let (person, hook_source) = match self.world.projects[project].bot {
            // Scheduled pipelines owned by the project's access-token bot.
            Some(b) if self.rng.random_bool(0.2) => {
                self.bots_seen.retain(|&seen| seen != b);
                self.bots_seen.push(b);
                (self.bot(b), "schedule")
            }
            _ => {
                let u = self.world.pick_user(&mut self.rng);
                (self.human(u), "push")
            }
        };
        let (git_ref, tag) = self.pick_ref();
        self.ids.pipeline += self.rng.random_range(1..30);
        let id = self.ids.pipeline;
        let root = (self.world.projects[project].path.clone(), id);
        let p = self.new_pipe(
            id,
            project,
            person,
            git_ref,
            tag,
            start,
            None,
            root,
            hook_source,
        );
        self.run_pipeline(p);
    }

    pub(super) fn downstream_pipeline(&mut self, ds: Downstream) {
        let source = Some(SourceInfo {
            project: ds.source_project,
            pipeline: ds.source_pipeline,
            job: ds.source_job,
        });
        let p = self.new_pipe(
            ds.pipeline_id,
            ds.project,
            ds.person,
            "main".into(),
            false,
            ds.start,
            source,
            ds.root,
            "pipeline",
        );
        self.run_pipeline(p);
    }

    #[allow(clippy::too_many_arguments)]
    fn new_pipe(
        &mut self,
        id: i64,
        project: usize,
        person: Person,
        git_ref: String,
        tag: bool,
        created: i64,
        source: Option<SourceInfo>,
        root: (String, i64),
        hook_source: &'static str,
    ) -> Pipe {
        self.ids.pipeline_iid += 1;
        let sha = self.sha();
        let before_sha = self.sha();
        Pipe {
            id,
            iid: self.ids.pipeline_iid,
            project,
            person,
            git_ref,
            tag,
            sha,
            before_sha,
            created,
            source,
            root,
            hook_source,
        }
    }

    fn run_pipeline(&mut self, p: Pipe) {
        let n = self.rng.random_range(1..=4).min(self.jobs_left);
        self.jobs_left -= n;
        let mut jobs = Vec::with_capacity(n);
        for j in 0..n {
            self.ids.job += self.rng.random_range(1..6);
            let (name, stage) = *JOBS.choose(&mut self.rng).expect("non-empty");
            let created = p.created + 100 * j as i64 + self.rng.random_range(0..100);
            let started = created + self.rng.random_range(500..15_000);
            let planned = started + self.rng.random_range(20_000..180_000);
            let runner = self.rng.random_range(0..self.world.runners.len());
            let mut job = Job {
                id: self.ids.job,
                name,
                stage,
                runner,
                created,
                started,
                finished: None,
            };
            self.job_hook(&p, &job);
            let last = self.job_uses(&p, &job, planned);
            let finished = planned.max(last + self.rng.random_range(500..2_000));
            self.noise(&p, started, finished);
            job.finished = Some(finished);
            self.job_hook(&p, &job);
            jobs.push(job);
        }
        self.pipeline_hook(&p, &jobs);
    }

    /// 1-4 token uses spread over the job's run time; returns the time of the last event.
    fn job_uses(&mut self, p: &Pipe, job: &Job, planned_end: i64) -> i64 {
        let k = self.rng.random_range(1..=4);
        let lo = job.started + 2_000;
        let hi = (planned_end - 1_000).max(lo + 1);
        let mut desired: Vec<i64> = (0..k).map(|_| self.rng.random_range(lo..hi)).collect();
        desired.sort_unstable();
        desired
            .into_iter()
            .map(|d| self.token_use(p, job, d))
            .max()
            .unwrap_or(job.started)
    }

    fn token_use(&mut self, p: &Pipe, job: &Job, desired: i64) -> i64 {
        let plan = self.plan_use(p, desired);
        let s = p.project;
        let ip = self.world.runners[job.runner].ip;
        let author = p.person.id;
        let gap = if plan.target.is_some() {
            self.rng.random_range(50..=1_500)
        } else {
            0
        };
        let at = self.reserve(author, ip, desired, gap);
        let source_id = self.world.projects[s].id;
        let auth_at = self.unique_time(gitlab::JOB_TOKEN_AUTH, author, source_id, job.id, at);
        let mut end = auth_at;
        let mut event_time = auth_at;
        let mut downstream_id = None;
        if let Some(t) = plan.target {
            let (event_type, obj_id) = match plan.action {
                "repository.read" | "repository.write" => {
                    (gitlab::GIT_OPERATION, self.world.projects[t].id)
                }
                "artifact.read" => (
                    gitlab::ARTIFACT_DOWNLOADED,
                    self.rng
                        .random_range(400_000..self.ids.pipeline.max(400_001)),
                ),
                "pipeline.trigger" => {
                    self.ids.pipeline += self.rng.random_range(1..30);
                    downstream_id = Some(self.ids.pipeline);
                    (gitlab::DOWNSTREAM_CREATED, self.ids.pipeline)
                }
                _ => (gitlab::SECRET_READ, self.world.projects[t].id),
            };
            let target_id = self.world.projects[t].id;
            event_time = self.unique_time(event_type, author, target_id, obj_id, auth_at + gap);
            end = event_time;
            let ip_text = self.world.runner_ips[ip].clone();
            self.emit_auth(p, job, &ip_text, auth_at);
            self.emit_resource(plan.action, p, t, obj_id, &ip_text, event_time);
        } else {
            let ip_text = self.world.runner_ips[ip].clone();
            self.emit_auth(p, job, &ip_text, auth_at);
        }
        self.occupy(author, ip, auth_at, end);
        if let (Some(ds), Some(t)) = (downstream_id, plan.target) {
            self.ids.seq += 1;
            let start = event_time + self.rng.random_range(2_000..6_000);
            self.downstream.push(Reverse((start, self.ids.seq)));
            let d = Downstream {
                start,
                pipeline_id: ds,
                project: t,
                person: p.person.clone(),
                source_project: s,
                source_pipeline: p.id,
                source_job: job.id,
                root: p.root.clone(),
            };
            self.downstream_by_seq.insert(self.ids.seq, d);
        }
        self.record_use(p, job, &plan, auth_at, event_time);
        if let Some(t) = plan.target
            && plan.kinds.is_empty()
        {
            self.maybe_remove_after_use(s, t, event_time);
        }
        end
    }

    /// Sometimes removes `source`'s project entry from `target` a few seconds after this use,
    /// and adds it back minutes later: only when no use generated so far is later than this
    /// one, so no ground truth already written changes.
    fn maybe_remove_after_use(&mut self, source: usize, target: usize, event_time: i64) {
        if source == target
            || self.last_use.get(&(source, target)) != Some(&event_time)
            || !self.world.project_entry_at(source, target, event_time)
            || !self.rng.random_bool(REMOVAL_AFTER_USE_SHARE)
        {
            return;
        }
        let removed_at = event_time + self.rng.random_range(300..4_000);
        let back_at = removed_at + self.rng.random_range(120_000..1_200_000);
        // A policies update needs the entry: none may fall while it is away.
        let member = Member::Project(source);
        if self
            .world
            .policies_update_between(target, member, removed_at, back_at)
        {
            return;
        }
        for (at, op) in [
            (removed_at, AclOp::Removed(member)),
            (back_at, AclOp::Added(member)),
        ] {
            self.schedule_acl(AclChange {
                at,
                target,
                op,
                policies: POLICY_SETS[0],
                anomaly: None,
            });
        }
    }

    fn record_use(&mut self, p: &Pipe, job: &Job, plan: &UsePlan, auth_at: i64, event_time: i64) {
        let s = p.project;
        let src = &self.world.projects[s];
        let (tid, tpath) = match plan.target {
            Some(t) => (
                Some(self.world.projects[t].id),
                self.world.projects[t].path.clone(),
            ),
            None => (None, String::new()),
        };
        // A project's own jobs are always admitted; report that only where state is known.
        let allowlisted = plan.target.and_then(|t| {
            let known = self.world.allowlisted(s, t, event_time);
            if t == s { known.map(|_| true) } else { known }
        });
        let runner = &self.world.runners[job.runner];
        let u = TokenUse {
            event_time_ms: event_time,
            actor_id: p.person.id,
            actor_name: p.person.name.clone(),
            actor_username: Some(p.person.username.clone()),
            actor_kind: p.person.kind,
            source_project_id: Some(src.id),
            source_project_path: src.path.clone(),
            target_project_id: tid,
            target_project_path: tpath,
            action: Action::known(plan.action),
            job_id: Some(job.id),
            pipeline_id: Some(p.id),
            git_ref: Some(p.git_ref.clone()),
            runner_id: Some(runner.id),
            token_type: "ci_job_token".to_string(),
            ip_address: self.world.runner_ips[runner.ip].clone(),
            same_project: plan.target == Some(s),
            allowlisted,
            correlation: if plan.target.is_some() {
                Correlation::Matched
            } else {
                Correlation::AuthOnly
            },
            gap_ms: event_time - auth_at,
        };
        self.push_use(u);
        if let Some(t) = plan.target {
            let last = self.last_use.entry((s, t)).or_insert(event_time);
            *last = (*last).max(event_time);
        }
        let actor = Some(p.person.id);
        for kind in &plan.kinds {
            let detail = format!("{} via {}", plan.action, job.id);
            self.anomaly(
                kind,
                event_time,
                actor,
                Some(job.id),
                (Some(s), plan.target),
                detail,
            );
        }
        if let Some(t) = plan.target
            && t != s
            && !self.world.projects[s].deps.contains(&t)
            && self.anomalous_pairs.insert((s, t))
        {
            let detail = format!(
                "{} -> {}",
                self.world.projects[s].path, self.world.projects[t].path
            );
            self.anomaly(
                "new_edge",
                event_time,
                actor,
                Some(job.id),
                (Some(s), Some(t)),
                detail,
            );
        }
    }

    fn plan_use(&mut self, p: &Pipe, at: i64) -> UsePlan {
        if self.cfg.anomaly_share > 0.0
            && self.rng.random_bool(self.cfg.anomaly_share)
            && let Some(plan) = self.plan_anomaly(p, at)
        {
            return plan;
        }
        let human = p.person.kind == ActorKind::Human;
        let s = p.project;
        let r = self.rng.random_range(0..100);
        if r < 15 {
            // An API call whose endpoint writes no audit event: only the auth is visible.
            return UsePlan {
                target: None,
                action: "auth",
                kinds: vec![],
            };
        }
        let deps = &self.world.projects[s].deps;
        if r < 35 || deps.is_empty() {
            let actions: &[&str] = if human {
                &["secret.read", "artifact.read", "repository.read"]
            } else {
                &["secret.read", "artifact.read"]
            };
            let action = actions.choose(&mut self.rng).expect("non-empty");
            return UsePlan {
                target: Some(s),
                action,
                kinds: vec![],
            };
        }
        let t = *deps.choose(&mut self.rng).expect("non-empty");
        // Ordinary traffic reaches only targets that admit it at the time (a project entry
        // removed for a while, a project moved out of an admitted group): a use the allowlist
        // refuses is a labelled anomaly (`plan_anomaly`). Meanwhile the job reads its own.
        let w = &self.world;
        if w.allowlisted(s, t, at) == Some(false)
            || w.allowlisted(s, t, at + PLAN_SLACK_MS) == Some(false)
        {
            return UsePlan {
                target: Some(s),
                action: "artifact.read",
                kinds: vec![],
            };
        }
        // Git streaming audit events exist for human authors only (docs/gitlab-events.md §2.2).
        let action = match self.rng.random_range(0..100) {
            0..=44 if human => "repository.read",
            0..=94 => "artifact.read",
            _ => "pipeline.trigger",
        };
        UsePlan {
            target: Some(t),
            action,
            kinds: vec![],
        }
    }

    fn plan_anomaly(&mut self, p: &Pipe, at: i64) -> Option<UsePlan> {
        let s = p.project;
        let human = p.person.kind == ActorKind::Human;
        let read = if human && self.rng.random_bool(0.5) {
            "repository.read"
        } else {
            "artifact.read"
        };
        let n = self.world.projects.len();
        let first = self.rng.random_range(0..4);
        for k in 0..4 {
            match (first + k) % 4 {
                0 => {
                    // Reaches a project whose enforced allowlist does not admit it (works for
                    // public projects' artifacts and repositories, docs/gitlab-events.md §5.1).
                    for _ in 0..20 {
                        let t = self.rng.random_range(0..n);
                        if t != s
                            && !self.world.projects[t].crown
                            && self.world.inbound_enforced(t, at)
                            && self.world.allowlisted(s, t, at) == Some(false)
                        {
                            return Some(UsePlan {
                                target: Some(t),
                                action: read,
                                kinds: vec!["not_allowlisted"],
                            });
                        }
                    }
                }
                1 if human => {
                    return Some(UsePlan {
                        target: Some(s),
                        action: "repository.write",
                        kinds: vec!["push"],
                    });
                }
                2 => {
                    for _ in 0..20 {
                        let t = self.rng.random_range(0..n);
                        let w = &self.world;
                        if t != s
                            && !w.projects[t].crown
                            && !w.projects[s].deps.contains(&t)
                            && w.allowlisted(s, t, at) != Some(false)
                            && !self.anomalous_pairs.contains(&(s, t))
                        {
                            return Some(UsePlan {
                                target: Some(t),
                                action: read,
                                kinds: vec![],
                            });
                        }
                    }
                }
                3 => {
                    let crown = self.world.crown_projects();
                    if let Some(&t) = crown.choose(&mut self.rng) {
                        return Some(UsePlan {
                            target: Some(t),
                            action: read,
                            kinds: vec!["crown_jewel"],
                        });
                    }
                }
                _ => {}
            }
        }
        None
    }
}
