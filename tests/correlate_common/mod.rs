//! Hand-built `AuditEvent`s and `JobInfo`s, shaped like the normalizer's output for the samples
//! in `/work/shared/samples`.
#![allow(dead_code)] // each test binary uses a different subset

use tokentrail::correlate::{Correlator, CorrelatorConfig};
use tokentrail::model::{
    ActorKind, AllowlistChange, AllowlistChangeKind, AuditEvent, AuditMeaning, JobInfo,
};

pub const WINDOW: i64 = 5_000;

/// Parses an RFC 3339 time to Unix milliseconds.
pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid time")
        .timestamp_millis()
}

/// Watermark only moves when the test says so.
pub fn manual() -> Correlator {
    Correlator::new(CorrelatorConfig {
        auto_lateness_ms: None,
        ..CorrelatorConfig::default()
    })
}

fn base(event_type: &str, author_id: i64, ip: &str, t: i64, meaning: AuditMeaning) -> AuditEvent {
    AuditEvent {
        id: String::new(),
        dedup_key: String::new(),
        stream_only: true,
        event_type: event_type.to_string(),
        author_id,
        author_name: format!("user-{author_id}"),
        author_class: Some("User".to_string()),
        actor_kind: ActorKind::Human,
        entity_id: None,
        entity_type: "Project".to_string(),
        entity_path: String::new(),
        target_id: None,
        target_type: String::new(),
        target_details: String::new(),
        ip_address: ip.to_string(),
        created_at_ms: t,
        details_json: "{}".to_string(),
        meaning,
    }
}

fn with_entity(mut ev: AuditEvent, id: i64, path: &str) -> AuditEvent {
    ev.entity_id = Some(id);
    ev.entity_path = path.to_string();
    ev.dedup_key = format!(
        "content:{}:{}:{}:{}:{}",
        ev.event_type, ev.author_id, ev.ip_address, ev.created_at_ms, id
    );
    ev.id = ev.dedup_key.clone();
    ev
}

/// `user_authenticated_using_job_token`: entity = the job's project (the source).
pub fn auth(author: i64, ip: &str, t: i64, project: (i64, &str), job: i64) -> AuditEvent {
    let meaning = AuditMeaning::JobTokenAuth { job_id: Some(job) };
    let mut ev = base("user_authenticated_using_job_token", author, ip, t, meaning);
    ev.target_id = Some(job);
    ev.target_type = "Ci::Build".to_string();
    ev.target_details = job.to_string();
    let mut ev = with_entity(ev, project.0, project.1);
    ev.dedup_key.push_str(&format!(":{job}"));
    ev
}

/// A resource event: entity = the accessed project (the target).
pub fn resource(author: i64, ip: &str, t: i64, project: (i64, &str), action: &str) -> AuditEvent {
    let meaning = AuditMeaning::ResourceAccess {
        action: action.into(),
        pipeline_id: None,
        upstream_project_path: None,
        upstream_pipeline_id: None,
    };
    with_entity(
        base("repository_git_operation", author, ip, t, meaning),
        project.0,
        project.1,
    )
}

/// `multi_project_downstream_pipeline_created`.
pub fn downstream(
    author: i64,
    ip: &str,
    t: i64,
    project: (i64, &str),
    upstream_path: &str,
    upstream_pipeline: i64,
) -> AuditEvent {
    let meaning = AuditMeaning::ResourceAccess {
        action: "pipeline.trigger".into(),
        pipeline_id: Some(999_000),
        upstream_project_path: Some(upstream_path.to_string()),
        upstream_pipeline_id: Some(upstream_pipeline),
    };
    let ev = base(
        "multi_project_downstream_pipeline_created",
        author,
        ip,
        t,
        meaning,
    );
    with_entity(ev, project.0, project.1)
}

pub fn change(
    kind: AllowlistChangeKind,
    protected: (i64, &str),
    member: Option<(&str, i64, &str)>,
) -> AllowlistChange {
    AllowlistChange {
        change: kind,
        protected_project_id: Some(protected.0),
        protected_project_path: protected.1.to_string(),
        member_type: member.map(|m| m.0.to_string()),
        member_id: member.map(|m| m.1),
        member_path: member.map(|m| m.2.to_string()),
        default_permissions: member.map(|_| false),
        policies: Vec::new(),
    }
}

/// A `secure_ci_job_token_*` event carrying `change`.
pub fn allowlist_event(t: i64, c: AllowlistChange) -> AuditEvent {
    let (id, path) = (
        c.protected_project_id.unwrap_or(0),
        c.protected_project_path.clone(),
    );
    let ev = base(
        "secure_ci_job_token_project_added",
        77,
        "192.0.2.15",
        t,
        AuditMeaning::Allowlist(c),
    );
    with_entity(ev, id, &path)
}

/// The job of the sample story (`webhooks/job_hook.json`).
pub fn sample_job() -> JobInfo {
    JobInfo {
        job_id: 987_654,
        job_name: "publish-package".to_string(),
        project_id: Some(1337),
        project_path: "platform/app-backend".to_string(),
        pipeline_id: Some(445_566),
        user_id: Some(4821),
        username: Some("dbuilder".to_string()),
        git_ref: Some("main".to_string()),
        sha: Some("4c1f2e9a7b3d5e6f8091a2b3c4d5e6f708192a3b".to_string()),
        runner_id: Some(812),
        runner_description: Some("k8s-runner-a".to_string()),
        status: "running".to_string(),
        started_at_ms: Some(ms("2025-06-03T10:15:20.004Z")),
        finished_at_ms: None,
        source_pipeline_id: None,
        source_project_id: None,
        source_project_path: None,
    }
}

pub const SOURCE: (i64, &str) = (1337, "platform/app-backend");
pub const TARGET: (i64, &str) = (2001, "payments/ledger-service");
pub const IP: &str = "10.20.30.40";

/// The three audit samples: allowlist change, auth, clone.
pub fn sample_events() -> [AuditEvent; 3] {
    let added = change(
        AllowlistChangeKind::ProjectAdded,
        TARGET,
        Some(("Project", SOURCE.0, SOURCE.1)),
    );
    let mut auth_ev = auth(4821, IP, ms("2025-06-03T10:15:42.123Z"), SOURCE, 987_654);
    auth_ev.author_name = "Dana Builder".to_string();
    let mut clone_ev = resource(
        4821,
        IP,
        ms("2025-06-03T10:15:44.900Z"),
        TARGET,
        "repository.read",
    );
    clone_ev.author_name = "Dana Builder".to_string();
    [
        allowlist_event(ms("2025-06-01T08:02:11.000Z"), added),
        auth_ev,
        clone_ev,
    ]
}
