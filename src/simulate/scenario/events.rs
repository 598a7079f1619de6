//! Turns scenario facts into GitLab bodies and hands them to the outbox.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::json;

use super::jobs::{Job, Pipe};
use super::{Person, Scenario};
use crate::simulate::gitlab::{self as gl, Actor, AuditId, AuditSpec, CustomMessage, Extra, Obj};
use crate::simulate::world::{AclOp, Member};

const COMMITS: &[&str] = &[
    "Bump ledger client\n",
    "Fix flaky test\n",
    "Add retry to uploader\n",
    "Update CI image\n",
];

fn project_obj(id: i64, text: &str) -> Obj {
    Obj {
        id,
        kind: "Project",
        text: text.to_string(),
    }
}

impl Scenario {
    fn actor(p: &Person) -> Actor {
        Actor {
            id: p.id,
            name: p.name.clone(),
        }
    }

    fn stream_id(&mut self) -> AuditId {
        AuditId::Stream(crate::simulate::faults::uuid(&mut self.rng))
    }

    fn send(&mut self, spec: AuditSpec) {
        let at = spec.at_ms;
        let mut body = gl::audit(spec);
        self.out.audit(&mut body, at, &mut self.rng);
    }

    pub(super) fn emit_auth(&mut self, p: &Pipe, job: &Job, ip: &str, at: i64) {
        let id = self.stream_id();
        let src = &self.world.projects[p.project];
        let spec = AuditSpec {
            event_type: gl::JOB_TOKEN_AUTH,
            id,
            actor: Self::actor(&p.person),
            entity: project_obj(src.id, &src.path),
            target: Obj {
                id: job.id,
                kind: "Ci::Build",
                text: job.id.to_string(),
            },
            ip: ip.to_string(),
            at_ms: at,
            message: CustomMessage::Text(format!(
                "{} authenticated using job token of job id: {}",
                p.person.name, job.id
            )),
            extra: Extra::default(),
        };
        self.send(spec);
    }

    pub(super) fn emit_resource(
        &mut self,
        action: &str,
        p: &Pipe,
        t: usize,
        obj_id: i64,
        ip: &str,
        at: i64,
    ) {
        let tp = &self.world.projects[t];
        let entity = project_obj(tp.id, &tp.path);
        let (event_type, target, message, extra) = match action {
            "repository.read" | "repository.write" => {
                let (verb, git_action) = match action {
                    "repository.write" => ("push", "git-receive-pack"),
                    _ if self.rng.random_bool(0.3) => ("pull", "git-upload-pack"),
                    _ => ("clone", "git-upload-pack"),
                };
                let msg = CustomMessage::Git {
                    protocol: "http",
                    action: git_action,
                    verb,
                };
                let extra = Extra(vec![("user_agent", json!("git/2.45.2"))]);
                (gl::GIT_OPERATION, project_obj(tp.id, &tp.name), msg, extra)
            }
            "artifact.read" => {
                self.ids.artifact += self.rng.random_range(1..50);
                let expire = gl::utc_s(at + 7 * 86_400_000);
                let msg = CustomMessage::Text(format!(
                    "Downloaded artifact artifacts.zip (expiration: {expire})"
                ));
                let extra = Extra(vec![
                    ("filename", json!("artifacts.zip")),
                    ("artifact_id", json!(self.ids.artifact)),
                    ("artifact_type", json!("archive")),
                    ("expire_at", json!(gl::iso_ms(at + 7 * 86_400_000))),
                ]);
                (
                    gl::ARTIFACT_DOWNLOADED,
                    Obj {
                        id: obj_id,
                        kind: "Ci::Pipeline",
                        text: obj_id.to_string(),
                    },
                    msg,
                    extra,
                )
            }
            "pipeline.trigger" => {
                // Message text not documented in docs/gitlab-events.md; the details keys are.
                let msg =
                    CustomMessage::Text("Multi-project downstream pipeline created".to_string());
                let extra = Extra(vec![
                    ("upstream_root_pipeline_id", json!(p.root.1)),
                    ("upstream_root_project_path", json!(p.root.0)),
                ]);
                (
                    gl::DOWNSTREAM_CREATED,
                    Obj {
                        id: obj_id,
                        kind: "Ci::Pipeline",
                        text: obj_id.to_string(),
                    },
                    msg,
                    extra,
                )
            }
            _ => {
                let raw = json!({ "type": "response", "request": { "operation": "read", "path": format!("secrets/kv/data/explicit/{}", "DB_PASSWORD") } });
                let msg = CustomMessage::Text("Read project secret DB_PASSWORD".to_string());
                let extra = Extra(vec![("raw_audit_log_json", json!(raw.to_string()))]);
                (
                    gl::SECRET_READ,
                    project_obj(tp.id, &format!("Project: {}", tp.path)),
                    msg,
                    extra,
                )
            }
        };
        let id = self.stream_id();
        let spec = AuditSpec {
            event_type,
            id,
            actor: Self::actor(&p.person),
            entity,
            target,
            ip: ip.to_string(),
            at_ms: at,
            message,
            extra,
        };
        self.send(spec);
    }

    fn hook_user(p: &Person) -> gl::HookUser {
        gl::hook_user(p.id, &p.name, &p.username)
    }

    fn source_pipeline(&self, p: &Pipe) -> Option<gl::SourcePipeline> {
        p.source.as_ref().map(|s| {
            let sp = &self.world.projects[s.project];
            gl::SourcePipeline {
                project: gl::SourcePipelineProject {
                    id: sp.id,
                    web_url: format!("{}/{}", gl::INSTANCE, sp.path),
                    path_with_namespace: sp.path.clone(),
                },
                job_id: s.job,
                pipeline_id: s.pipeline,
            }
        })
    }

    fn hook_runner(&self, r: usize) -> gl::HookRunner {
        let r = &self.world.runners[r];
        gl::HookRunner {
            id: r.id,
            description: r.description.clone(),
            runner_type: r.runner_type,
            active: true,
            is_shared: r.runner_type == "instance_type",
            tags: r.tags.clone(),
        }
    }

    /// `running` hook at start, `success` hook once `job.finished` is set.
    pub(super) fn job_hook(&mut self, p: &Pipe, job: &Job) {
        let pr = &self.world.projects[p.project];
        let at = job.finished.unwrap_or(job.started);
        let status = if job.finished.is_some() {
            "success"
        } else {
            "running"
        };
        let email = format!("{}@example.com", p.person.username);
        let commit_msg = COMMITS[(p.id % COMMITS.len() as i64) as usize];
        let hook = gl::JobHook {
            object_kind: "build",
            git_ref: p.git_ref.clone(),
            tag: p.tag,
            before_sha: "0000000000000000000000000000000000000000".into(),
            sha: p.sha.clone(),
            retries_count: 0,
            build_id: job.id,
            build_name: job.name.into(),
            build_stage: job.stage.into(),
            build_status: status,
            build_created_at: gl::iso_ms(job.created),
            build_started_at: gl::iso_ms(job.started),
            build_finished_at: job.finished.map(gl::iso_ms),
            build_created_at_iso: gl::iso_s(job.created),
            build_started_at_iso: gl::iso_s(job.started),
            build_finished_at_iso: job.finished.map(gl::iso_s),
            build_duration: job.finished.map(|f| (f - job.started) as f64 / 1000.0),
            build_queued_duration: (job.started - job.created) as f64 / 1000.0,
            build_allow_failure: false,
            build_failure_reason: "unknown_failure",
            pipeline_id: p.id,
            runner: self.hook_runner(job.runner),
            project_id: pr.id,
            project_name: self.world.full_name(p.project),
            user: Self::hook_user(&p.person),
            commit: gl::JobCommit {
                id: p.id,
                name: None,
                sha: p.sha.clone(),
                message: commit_msg.into(),
                author_name: p.person.name.clone(),
                author_email: email,
                author_url: format!("{}/{}", gl::INSTANCE, p.person.username),
                status,
                duration: None,
                started_at: gl::iso_ms(p.created),
                started_at_iso: gl::iso_s(p.created),
                finished_at: None,
                finished_at_iso: None,
            },
            repository: gl::hook_repository(&pr.name, &pr.path),
            project: gl::hook_project(
                pr.id,
                &pr.name,
                &pr.path,
                self.world.namespace_name(p.project),
            ),
            environment: None,
            source_pipeline: self.source_pipeline(p),
        };
        let json = serde_json::to_vec(&hook).expect("job hook serializes");
        self.out.webhook(
            "Job Hook",
            Some(p.person.id.to_string()),
            json,
            at,
            &mut self.rng,
        );
    }

    pub(super) fn pipeline_hook(&mut self, p: &Pipe, jobs: &[Job]) {
        let pr = &self.world.projects[p.project];
        let end = jobs
            .iter()
            .filter_map(|j| j.finished)
            .max()
            .unwrap_or(p.created)
            + self.rng.random_range(500..3_000);
        let mut stages: Vec<&'static str> = Vec::new();
        for stage in ["build", "test", "deploy"] {
            if jobs.iter().any(|j| j.stage == stage) {
                stages.push(stage);
            }
        }
        let builds = jobs
            .iter()
            .map(|j| gl::PipelineBuild {
                id: j.id,
                stage: j.stage.into(),
                name: j.name.into(),
                status: "success",
                created_at: gl::utc_s(j.created),
                started_at: Some(gl::utc_s(j.started)),
                finished_at: j.finished.map(gl::utc_s),
                duration: j.finished.map(|f| (f - j.started) as f64 / 1000.0),
                queued_duration: Some((j.started - j.created) as f64 / 1000.0),
                failure_reason: None,
                when: "on_success",
                manual: false,
                allow_failure: false,
                user: Self::hook_user(&p.person),
                runner: Some(self.hook_runner(j.runner)),
                artifacts_file: gl::ArtifactsFile {
                    filename: None,
                    size: None,
                },
                environment: None,
            })
            .collect();
        let title = COMMITS[(p.id % COMMITS.len() as i64) as usize];
        let hook = gl::PipelineHook {
            object_kind: "pipeline",
            object_attributes: gl::PipelineAttributes {
                id: p.id,
                iid: p.iid,
                name: None,
                git_ref: p.git_ref.clone(),
                tag: p.tag,
                sha: p.sha.clone(),
                before_sha: p.before_sha.clone(),
                source: p.hook_source,
                status: "success",
                detailed_status: "passed",
                stages,
                created_at: gl::utc_s(p.created),
                finished_at: Some(gl::utc_s(end)),
                duration: Some((end - p.created) / 1000),
                queued_duration: Some(1),
                protected_ref: p.git_ref == "main",
                variables: vec![],
                url: format!("{}/{}/-/pipelines/{}", gl::INSTANCE, pr.path, p.id),
            },
            merge_request: None,
            user: Self::hook_user(&p.person),
            project: gl::hook_project(
                pr.id,
                &pr.name,
                &pr.path,
                self.world.namespace_name(p.project),
            ),
            commit: gl::PipelineCommit {
                id: p.sha.clone(),
                message: title.into(),
                title: title.trim_end().into(),
                timestamp: gl::iso_s(p.created - 60_000),
                url: format!("{}/{}/-/commit/{}", gl::INSTANCE, pr.path, p.sha),
                author: gl::CommitAuthor {
                    name: p.person.name.clone(),
                    email: format!("{}@example.com", p.person.username),
                },
            },
            source_pipeline: self.source_pipeline(p),
            builds,
        };
        let json = serde_json::to_vec(&hook).expect("pipeline hook serializes");
        self.out.webhook(
            "Pipeline Hook",
            Some(p.person.id.to_string()),
            json,
            end,
            &mut self.rng,
        );
    }

    /// One `secure_ci_job_token_*` saved event, authored by the target's maintainer.
    pub(super) fn acl_event(&mut self, i: usize) {
        let c = self.world.acl[i].clone();
        let tp = &self.world.projects[c.target];
        let m = &self.world.users[tp.maintainer];
        let actor = Actor {
            id: m.id,
            name: m.name.clone(),
        };
        let ip = self.world.nat_ips[m.nat_ip].clone();
        // Fine-grained permissions are on for most projects; the suffix only appears then.
        let policies = c.policies.join(", ");
        let suffix = if self.rng.random_bool(0.7) {
            format!(", with default permissions: false, job token policies: {policies}")
        } else {
            String::new()
        };
        let member = |mb: Member| match mb {
            Member::Project(p) => {
                let p = &self.world.projects[p];
                (
                    "Project",
                    p.path.clone(),
                    Obj {
                        id: p.id,
                        kind: "Project",
                        text: p.name.clone(),
                    },
                )
            }
            Member::Group(g) => {
                let g = &self.world.groups[g];
                let name = g.path.rsplit('/').next().unwrap_or(&g.path).to_string();
                (
                    "Group",
                    g.path.clone(),
                    Obj {
                        id: g.id,
                        kind: "Group",
                        text: name,
                    },
                )
            }
        };
        let settings = Obj {
            id: tp.id + 500_000,
            kind: "ProjectCiCdSetting",
            text: "unknown".into(),
        };
        let (event_type, target, message) = match c.op {
            AclOp::InboundEnabled => (
                "secure_ci_job_token_inbound_enabled",
                settings,
                "Secure ci_job_token was enabled for inbound".to_string(),
            ),
            AclOp::InboundDisabled => (
                "secure_ci_job_token_inbound_disabled",
                settings,
                "Secure ci_job_token was disabled for inbound".to_string(),
            ),
            AclOp::Added(mb) => {
                let (kind, path, obj) = member(mb);
                if kind == "Project" {
                    (
                        "secure_ci_job_token_project_added",
                        obj,
                        format!(
                            "Project {path} was added to inbound list of allowed projects for {}{suffix}",
                            tp.path
                        ),
                    )
                } else {
                    (
                        "secure_ci_job_token_group_added",
                        obj,
                        format!(
                            "Group {path} was added to list of allowed groups for {}{suffix}",
                            tp.path
                        ),
                    )
                }
            }
            AclOp::Removed(mb) => {
                let (kind, path, obj) = member(mb);
                if kind == "Project" {
                    (
                        "secure_ci_job_token_project_removed",
                        obj,
                        format!(
                            "Project {path} was removed from inbound list of allowed projects for {}",
                            tp.path
                        ),
                    )
                } else {
                    (
                        "secure_ci_job_token_group_removed",
                        obj,
                        format!(
                            "Group {path} was removed from list of allowed groups for {}",
                            tp.path
                        ),
                    )
                }
            }
            AclOp::PoliciesUpdated(mb) => {
                let (_, _, mut obj) = member(mb);
                // GitLab's policies-update service passes no target details for a group: the
                // event falls back to the group's display name.
                if let Member::Group(g) = mb {
                    obj.text.clone_from(&self.world.groups[g].name);
                }
                (
                    "secure_ci_job_token_policies_updated",
                    obj,
                    format!(
                        "CI job token updated to default permissions: false, policies: {policies}"
                    ),
                )
            }
        };
        let entity = project_obj(tp.id, &tp.path);
        let id = AuditId::Saved(self.saved_id());
        let actor_id = actor.id;
        let spec = AuditSpec {
            event_type,
            id,
            actor,
            entity,
            target: target.clone(),
            ip,
            at_ms: c.at,
            message: CustomMessage::Text(message),
            extra: Extra::default(),
        };
        self.send(spec);
        if let Some(kind) = c.anomaly {
            let detail = format!(
                "{event_type}: {} on {}",
                target.text, self.world.projects[c.target].path
            );
            self.anomaly(
                kind,
                c.at,
                Some(actor_id),
                None,
                (None, Some(c.target)),
                detail,
            );
        }
    }

    /// A project access token created *by a bot* (a token minting another token). The bot is
    /// the one that most recently ran a pipeline, if any: automation that mints tokens is an
    /// account that also runs jobs, and a job webhook is where GitLab shows its username
    /// (the audit event does not). Else the drawn bot `b`.
    pub(super) fn bot_token_event(&mut self, b: usize, at: i64) {
        let b = self.bots_seen.last().copied().unwrap_or(b);
        let bot = self.bot(b);
        let project = self.world.bots[b].project;
        let ip =
            self.world.runner_ips[self.rng.random_range(0..self.world.runner_ips.len())].clone();
        self.lifecycle("project_access_token_created", &bot, project, ip, at);
        let detail = format!("{} created a project access token", bot.username);
        self.anomaly(
            "bot_lifecycle",
            at,
            Some(bot.id),
            None,
            (None, Some(project)),
            detail,
        );
    }

    fn lifecycle(
        &mut self,
        event_type: &'static str,
        actor: &Person,
        project: usize,
        ip: String,
        at: i64,
    ) {
        self.ids.token += self.rng.random_range(1..9);
        let token = self.ids.token;
        let pr = &self.world.projects[project];
        let (entity, target, message) = match event_type {
            "personal_access_token_created" | "personal_access_token_revoked" => {
                let verb = if event_type.ends_with("created") {
                    "Created"
                } else {
                    "Revoked"
                };
                let user = Obj {
                    id: actor.id,
                    kind: "User",
                    text: actor.name.clone(),
                };
                (
                    Obj {
                        id: actor.id,
                        kind: "User",
                        text: actor.username.clone(),
                    },
                    user,
                    format!("{verb} personal access token with id {token}"),
                )
            }
            "project_access_token_created" => {
                let target = Obj {
                    id: token,
                    kind: "PersonalAccessToken",
                    text: format!("{} bot", pr.name),
                };
                (
                    project_obj(pr.id, &pr.path),
                    target,
                    format!(
                        "Created project access token with token_id: {token} with scopes: [:read_api, :read_repository] and Developer access level."
                    ),
                )
            }
            _ => {
                let verb = if event_type.ends_with("created") {
                    "Created"
                } else {
                    "Revoked"
                };
                let target = Obj {
                    id: token,
                    kind: "DeployToken",
                    text: "gitlab-deploy-token".into(),
                };
                (
                    project_obj(pr.id, &pr.path),
                    target,
                    format!(
                        "{verb} project deploy token with name: gitlab-deploy-token with token_id: {token} with scopes: [:read_registry]."
                    ),
                )
            }
        };
        let id = AuditId::Saved(self.saved_id());
        let spec = AuditSpec {
            event_type,
            id,
            actor: Self::actor(actor),
            entity,
            target,
            ip,
            at_ms: at,
            message: CustomMessage::Text(message),
            extra: Extra::default(),
        };
        self.send(spec);
    }

    /// Unrelated audit events during a job: settings, members, bot merges, token lifecycle,
    /// and humans' own git traffic from their NAT address (never from a runner address, so
    /// it cannot be mistaken for a job-token use).
    pub(super) fn noise(&mut self, p: &Pipe, from: i64, to: i64) {
        let whole = self.cfg.noise_per_job.max(0.0);
        let n = whole.floor() as usize + usize::from(self.rng.random_bool(whole.fract()));
        for _ in 0..n {
            let at = self.rng.random_range(from..to.max(from + 1));
            let u = if p.person.kind == crate::model::ActorKind::Human && self.rng.random_bool(0.3)
            {
                self.world
                    .users
                    .iter()
                    .position(|x| x.id == p.person.id)
                    .unwrap_or(0)
            } else {
                self.world.pick_user(&mut self.rng)
            };
            let person = self.human(u);
            let ip = self.world.nat_ips[self.world.users[u].nat_ip].clone();
            let project = self.rng.random_range(0..self.world.projects.len());
            match self.rng.random_range(0..100) {
                0..=24 => self.human_git(&person, project, ip, at),
                25..=39 => self.setting_event("ci_variable_updated", &person, project, ip, at),
                40..=54 => self.setting_event("member_created", &person, project, ip, at),
                55..=64 => match self.world.bots.choose(&mut self.rng).map(|b| b.project) {
                    Some(bp) => {
                        let b = self.world.projects[bp].bot.expect("bot's project has it");
                        let bot = self.bot(b);
                        self.setting_event(
                            "merge_request_merged_by_project_bot",
                            &bot,
                            bp,
                            "198.51.100.7".into(),
                            at,
                        );
                    }
                    None => self.setting_event("member_created", &person, project, ip, at),
                },
                65..=69 => self.setting_event(
                    "project_feature_container_registry_access_level_updated",
                    &person,
                    project,
                    ip,
                    at,
                ),
                70..=77 => {
                    self.lifecycle("personal_access_token_created", &person, project, ip, at)
                }
                78..=84 => {
                    self.lifecycle("personal_access_token_revoked", &person, project, ip, at)
                }
                85..=91 => self.lifecycle("project_access_token_created", &person, project, ip, at),
                92..=96 => self.lifecycle("deploy_token_created", &person, project, ip, at),
                _ => self.lifecycle("deploy_token_revoked", &person, project, ip, at),
            }
        }
    }

    fn human_git(&mut self, person: &Person, project: usize, ip: String, at: i64) {
        let pr = &self.world.projects[project];
        let (pid, name, path) = (pr.id, pr.name.clone(), pr.path.clone());
        let at = self.unique_time(gl::GIT_OPERATION, person.id, pid, pid, at);
        let (verb, action) = *[
            ("clone", "git-upload-pack"),
            ("pull", "git-upload-pack"),
            ("push", "git-receive-pack"),
        ]
        .choose(&mut self.rng)
        .expect("non-empty");
        let id = self.stream_id();
        let spec = AuditSpec {
            event_type: gl::GIT_OPERATION,
            id,
            actor: Self::actor(person),
            entity: project_obj(pid, &path),
            target: project_obj(pid, &name),
            ip,
            at_ms: at,
            message: CustomMessage::Git {
                protocol: if verb == "push" { "ssh" } else { "http" },
                action,
                verb,
            },
            extra: Extra(vec![("user_agent", json!("git/2.45.2"))]),
        };
        self.send(spec);
    }

    fn setting_event(
        &mut self,
        event_type: &'static str,
        actor: &Person,
        project: usize,
        ip: String,
        at: i64,
    ) {
        let pr = &self.world.projects[project];
        let (target, message) = match event_type {
            "ci_variable_updated" => (
                Obj {
                    id: pr.id * 10 + 3,
                    kind: "Ci::Variable",
                    text: "DEPLOY_ENV".into(),
                },
                "Changed variable DEPLOY_ENV".to_string(),
            ),
            "member_created" => (
                Obj {
                    id: actor.id,
                    kind: "User",
                    text: actor.name.clone(),
                },
                "Added member with access level Developer".to_string(),
            ),
            "merge_request_merged_by_project_bot" => {
                let iid = self.rng.random_range(1..2_000);
                (
                    Obj {
                        id: pr.id * 100 + iid,
                        kind: "MergeRequest",
                        text: "Update dependency".into(),
                    },
                    format!("Merged merge request !{iid}"),
                )
            }
            _ => (
                project_obj(pr.id, &pr.name),
                "Changed container_registry_access_level from enabled to private".to_string(),
            ),
        };
        let entity = project_obj(pr.id, &pr.path);
        let id = AuditId::Saved(self.saved_id());
        let spec = AuditSpec {
            event_type,
            id,
            actor: Self::actor(actor),
            entity,
            target,
            ip,
            at_ms: at,
            message: CustomMessage::Text(message),
            extra: Extra::default(),
        };
        self.send(spec);
    }
}
