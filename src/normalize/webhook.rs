//! Webhook bodies (docs/gitlab-events.md §4) → `WebhookEvent`.
//!
//! Webhooks carry no token-use information; they enrich job ids with project, pipeline,
//! user, ref and runner (docs/gitlab-events.md §4.3 "Role in the pipeline"). They are read loosely:
//! an odd field only leaves that piece of enrichment empty, and the whole body is kept in
//! `payload_json`, so nothing is lost by not rejecting.

use super::json::{Map, Value};

use super::dedup;
use super::fields::{get, get_obj, get_path, loose_id, loose_str, loose_text};
use super::time;
use crate::model::{JobInfo, WebhookEvent};

pub struct WebhookHeaders<'a> {
    pub event: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub kafka_timestamp_ms: Option<i64>,
}

/// `raw` is the body text as received: stored verbatim in `payload_json` so it can be
/// re-processed later exactly (a parse/serialize round trip may alter float digits).
pub fn webhook_event(
    body: &Value<'_>,
    obj: &Map<'_>,
    raw: String,
    h: &WebhookHeaders,
) -> WebhookEvent {
    let object_kind = loose_text(get(obj, "object_kind")).unwrap_or_default();
    let (jobs, hook_time) = match object_kind.as_str() {
        "build" => job_hook(obj),
        "pipeline" => pipeline_hook(obj),
        _ => (Vec::new(), generic_time(obj)),
    };
    WebhookEvent {
        // docs/gitlab-events.md §4.1: Idempotency-Key is stable across retries;
        // X-Gitlab-Webhook-UUID is fresh per request and must never be part of the key.
        dedup_key: dedup::webhook_key(h.idempotency_key, body),
        event_header: h
            .event
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map_or_else(|| object_kind.clone(), str::to_owned),
        project_id: loose_id(get(obj, "project_id"))
            .or_else(|| loose_id(get_path(obj, &["project", "id"]))),
        project_path: project_path(obj).unwrap_or_default(),
        object_kind,
        event_time_ms: hook_time
            .or(h.kafka_timestamp_ms.filter(|&ms| time::is_storable(ms)))
            .unwrap_or(0),
        payload_json: raw,
        jobs,
    }
}

fn project_path(obj: &Map<'_>) -> Option<String> {
    loose_text(get_path(obj, &["project", "path_with_namespace"])).filter(|p| !p.is_empty())
}

/// A webhook time, read loosely like every webhook field: unparseable text and a time
/// outside the storable range (`time::is_storable`) both read as absent, so a job's
/// `started_at`/`finished_at` and the event time are never stored wrapped, and the job
/// information in the hook is still kept.
fn time_of(obj: &Map<'_>, key: &str) -> Option<i64> {
    loose_str(get(obj, key))
        .and_then(time::parse_ms)
        .filter(|&ms| time::is_storable(ms))
}

/// `source_pipeline {project {id, path_with_namespace}, pipeline_id, job_id}`
/// (docs/gitlab-events.md §4.2, §4.3).
fn lineage(obj: &Map<'_>) -> (Option<i64>, Option<i64>, Option<String>) {
    match get_obj(obj, "source_pipeline") {
        Some(sp) => (
            loose_id(get(sp, "pipeline_id")),
            loose_id(get_path(sp, &["project", "id"])),
            loose_text(get_path(sp, &["project", "path_with_namespace"])).filter(|p| !p.is_empty()),
        ),
        None => (None, None, None),
    }
}

fn runner(obj: &Map<'_>) -> (Option<i64>, Option<String>) {
    match get_obj(obj, "runner") {
        Some(r) => (loose_id(get(r, "id")), loose_text(get(r, "description"))),
        None => (None, None),
    }
}

/// Job Hook (docs/gitlab-events.md §4.2): one job. `event_time` = finished, else started,
/// else created.
fn job_hook(obj: &Map<'_>) -> (Vec<JobInfo>, Option<i64>) {
    // The `_iso` variants are the same instants; used when the plain field is absent.
    let at = |key: &str| time_of(obj, key).or_else(|| time_of(obj, &format!("{key}_iso")));
    let started = at("build_started_at");
    let finished = at("build_finished_at");
    let hook_time = finished.or(started).or_else(|| at("build_created_at"));
    let Some(job_id) = loose_id(get(obj, "build_id")) else {
        return (Vec::new(), hook_time);
    };
    let (runner_id, runner_description) = runner(obj);
    let (source_pipeline_id, source_project_id, source_project_path) = lineage(obj);
    let job = JobInfo {
        job_id,
        job_name: loose_text(get(obj, "build_name")).unwrap_or_default(),
        project_id: loose_id(get(obj, "project_id"))
            .or_else(|| loose_id(get_path(obj, &["project", "id"]))),
        project_path: project_path(obj).unwrap_or_default(),
        pipeline_id: loose_id(get(obj, "pipeline_id")),
        user_id: loose_id(get_path(obj, &["user", "id"])),
        username: loose_text(get_path(obj, &["user", "username"])),
        git_ref: loose_text(get(obj, "ref")),
        sha: loose_text(get(obj, "sha")),
        runner_id,
        runner_description,
        status: loose_text(get(obj, "build_status")).unwrap_or_default(),
        started_at_ms: started,
        finished_at_ms: finished,
        source_pipeline_id,
        source_project_id,
        source_project_path,
    };
    (vec![job], hook_time)
}

/// Pipeline Hook (docs/gitlab-events.md §4.3): one job per `builds[]` element; builds
/// without an id are skipped.
fn pipeline_hook(obj: &Map<'_>) -> (Vec<JobInfo>, Option<i64>) {
    let empty = Map::new();
    let attrs = get_obj(obj, "object_attributes").unwrap_or(&empty);
    let hook_time = time_of(attrs, "finished_at").or_else(|| time_of(attrs, "created_at"));
    let project_id = loose_id(get_path(obj, &["project", "id"]));
    let project_path = project_path(obj).unwrap_or_default();
    let pipeline_id = loose_id(get(attrs, "id"));
    let (source_pipeline_id, source_project_id, source_project_path) = lineage(obj);
    let builds = obj.get("builds").and_then(Value::as_array);
    let jobs = builds
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|b| {
            let (runner_id, runner_description) = runner(b);
            // A build's own user is the one who ran it; the pipeline user is the fallback.
            let user = get_obj(b, "user").or_else(|| get_obj(obj, "user"));
            Some(JobInfo {
                job_id: loose_id(get(b, "id"))?,
                job_name: loose_text(get(b, "name")).unwrap_or_default(),
                project_id,
                project_path: project_path.clone(),
                pipeline_id,
                user_id: user.and_then(|u| loose_id(get(u, "id"))),
                username: user.and_then(|u| loose_text(get(u, "username"))),
                git_ref: loose_text(get(attrs, "ref")),
                sha: loose_text(get(attrs, "sha")),
                runner_id,
                runner_description,
                status: loose_text(get(b, "status")).unwrap_or_default(),
                started_at_ms: time_of(b, "started_at"),
                finished_at_ms: time_of(b, "finished_at"),
                source_pipeline_id,
                source_project_id,
                source_project_path: source_project_path.clone(),
            })
        })
        .collect();
    (jobs, hook_time)
}

/// Other hooks: the most specific time in `object_attributes`, else a deployment hook's
/// top-level `status_changed_at`.
fn generic_time(obj: &Map<'_>) -> Option<i64> {
    let from_attrs = get_obj(obj, "object_attributes").and_then(|attrs| {
        ["finished_at", "updated_at", "created_at"]
            .iter()
            .find_map(|k| time_of(attrs, k))
    });
    from_attrs.or_else(|| time_of(obj, "status_changed_at"))
}
