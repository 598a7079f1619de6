//! OCSF 1.x mappings (https://schema.ocsf.io, github.com/ocsf/ocsf-schema).
//!
//! * **Token use → API Activity (6003).** A job token is a credential a CI job presents to
//!   GitLab's API (REST, Git over HTTP, registries) to act on a project. API Activity models
//!   exactly that: an `actor` (the job's user) calling an `api.operation` (the action, e.g.
//!   `repository.read`) from a `src_endpoint` (the runner's IP) on `resources` (the target
//!   project), with CRUD activities. Authentication (3002) would only fit the `auth_only`
//!   records and loses the action and target; Web Resource Access Activity (6004) is about
//!   policy decisions on web resources, which tokentrail does not observe. One class for all
//!   token uses keeps SIEM queries simple; `auth_only` records use activity 99 (Other).
//! * **Token lifecycle → Entity Management (3004).** The managed entity is the token itself
//!   (type = token kind, uid = token id). Account Change (3001) requires the affected `user`
//!   account, but access tokens, deploy tokens and deploy keys are credentials, not accounts.
//! * **Alert → Detection Finding (2004)**, with Create / Update / Close activities following
//!   the alert's status.
//!
//! Everything GitLab-specific that has no OCSF attribute is kept under `unmapped.gitlab`.
//! The required attributes and enum ranges are checked by `tests/siem_ocsf_schema.rs` against
//! `schemas/ocsf/classes.json`, which cites the schema files they come from.

use serde_json::{Map, Value, json};

use super::record::{
    ActionVerb, LifecycleChange, LifecycleRecord, Severity, SiemRecord, StoredAlert,
    StoredTokenUse, action_verb, lifecycle_change, lifecycle_failed,
};
use super::{PRODUCT, PRODUCT_VERSION, VENDOR};
use crate::model::{ActorKind, Alert};

/// The OCSF release the events declare in `metadata.version`.
pub const OCSF_VERSION: &str = "1.3.0";

pub const API_ACTIVITY: u32 = 6003;
pub const DETECTION_FINDING: u32 = 2004;
pub const ENTITY_MANAGEMENT: u32 = 3004;

/// Renders one record as an OCSF event.
pub fn to_ocsf(record: &SiemRecord) -> Value {
    match record {
        SiemRecord::TokenUse(r) => token_use(r),
        SiemRecord::Lifecycle(r) => lifecycle(r),
        SiemRecord::Alert(r) => alert(r),
    }
}

/// `severity_id` (base event): 0 Unknown, 1 Informational, 2 Low, 3 Medium, 4 High,
/// 5 Critical, 6 Fatal, 99 Other.
pub fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Unknown => 0,
        Severity::Informational => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// The classification attributes every event carries; `type_uid = class_uid * 100 +
/// activity_id`.
fn classification(
    category: (u32, &str),
    class: (u32, &str),
    activity: (u32, &str),
    severity: Severity,
    time_ms: i64,
) -> Map<String, Value> {
    let (class_uid, class_name) = class;
    let (activity_id, activity_name) = activity;
    let mut m = Map::new();
    m.insert("category_uid".into(), json!(category.0));
    m.insert("category_name".into(), json!(category.1));
    m.insert("class_uid".into(), json!(class_uid));
    m.insert("class_name".into(), json!(class_name));
    m.insert("activity_id".into(), json!(activity_id));
    m.insert("activity_name".into(), json!(activity_name));
    m.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    m.insert(
        "type_name".into(),
        json!(format!("{class_name}: {activity_name}")),
    );
    m.insert("severity_id".into(), json!(severity_id(severity)));
    m.insert("severity".into(), json!(severity.caption()));
    m.insert("time".into(), json!(time_ms));
    m
}

fn metadata(uid: &str, log_name: &str, logged_time_ms: Option<i64>) -> Value {
    let mut m = json!({
        "version": OCSF_VERSION,
        "product": {
            "name": PRODUCT,
            "vendor_name": VENDOR,
            "version": PRODUCT_VERSION,
        },
        "uid": uid,
        "log_name": log_name,
    });
    if let Some(t) = logged_time_ms {
        m["logged_time"] = json!(t);
    }
    m
}

/// OCSF `user.type_id`: 1 User, 4 Service, 0 Unknown, 99 Other (with `type`).
fn user_type_id(kind: ActorKind) -> u8 {
    match kind {
        ActorKind::Human => 1,
        ActorKind::ProjectBot | ActorKind::GroupBot | ActorKind::ServiceAccount => 4,
        ActorKind::Unknown => 0,
        ActorKind::DeployToken | ActorKind::DeployKey | ActorKind::Unauthenticated => 99,
    }
}

fn user(uid: i64, name: &str, full_name: Option<&str>, kind: ActorKind) -> Value {
    let mut u = json!({
        "uid": uid.to_string(),
        "name": name,
        "type_id": user_type_id(kind),
        "type": kind.as_str(),
    });
    if let Some(full) = full_name.filter(|f| !f.is_empty() && *f != name) {
        u["full_name"] = json!(full);
    }
    u
}

fn project(path: &str, id: Option<i64>) -> Value {
    let mut p = json!({ "type": "project", "name": path });
    if let Some(id) = id {
        p["uid"] = json!(id.to_string());
    }
    p
}

fn insert_all(event: &mut Map<String, Value>, extra: Value) {
    if let Value::Object(extra) = extra {
        event.extend(extra);
    }
}

/// API Activity `activity_id`: 1 Create, 2 Read, 3 Update, 4 Delete, 0 Unknown, 99 Other.
fn api_activity(verb: ActionVerb) -> (u32, &'static str) {
    match verb {
        ActionVerb::Trigger => (1, "Create"),
        ActionVerb::Read => (2, "Read"),
        // `<resource>.write` covers pushes, publishes and release edits: modifications of an
        // existing project's data, hence Update rather than Create.
        ActionVerb::Write => (3, "Update"),
        ActionVerb::AuthOnly => (99, "Other"),
        ActionVerb::Unknown => (0, "Unknown"),
    }
}

fn token_use(r: &StoredTokenUse) -> Value {
    let t = &r.token_use;
    let mut ev = classification(
        (6, "Application Activity"),
        (API_ACTIVITY, "API Activity"),
        api_activity(action_verb(t.action.as_str())),
        r.severity(),
        t.event_time_ms,
    );
    let user_name = t.actor_username.as_deref().unwrap_or(&t.actor_name);
    let mut src_endpoint = Map::new();
    if t.ip_address.parse::<std::net::IpAddr>().is_ok() {
        src_endpoint.insert("ip".into(), json!(t.ip_address));
    }
    if let Some(runner) = t.runner_id {
        src_endpoint.insert("uid".into(), json!(format!("runner:{runner}")));
    }
    if src_endpoint.is_empty() {
        // A job token is always presented by a CI job on a runner; name the service when
        // neither the IP nor the runner is known (network_endpoint needs one identifier).
        src_endpoint.insert("svc_name".into(), json!("gitlab-runner"));
    }
    let message = r.message();
    insert_all(
        &mut ev,
        json!({
            "message": message,
            "status_id": 1,
            "status": "Success",
            "metadata": metadata(&r.record_key, "token_use", Some(r.ingested_at_ms)),
            "actor": {
                "user": user(t.actor_id, user_name, Some(&t.actor_name), t.actor_kind),
                "app_name": "GitLab CI job token",
            },
            "api": {
                "operation": t.action,
                "service": { "name": "GitLab" },
            },
            "src_endpoint": src_endpoint,
            "resources": [project(&t.target_project_path, t.target_project_id)],
            "unmapped": { "gitlab": {
                "source_project": project(&t.source_project_path, t.source_project_id),
                "job_id": t.job_id,
                "pipeline_id": t.pipeline_id,
                "git_ref": t.git_ref,
                "runner_id": t.runner_id,
                "token_type": t.token_type,
                "ip_address": t.ip_address,
                "same_project": t.same_project,
                "allowlisted": t.allowlisted,
                "correlation": t.correlation,
                "gap_ms": t.gap_ms,
            }},
        }),
    );
    Value::Object(ev)
}

/// Entity Management `activity_id`: 1 Create, 2 Read, 3 Update, 4 Delete, 99 Other.
fn entity_activity(change: LifecycleChange) -> (u32, &'static str) {
    match change {
        LifecycleChange::Created => (1, "Create"),
        LifecycleChange::Changed => (3, "Update"),
        // A revoked token cannot be re-enabled in GitLab: for the SIEM it is gone.
        LifecycleChange::Removed => (4, "Delete"),
        LifecycleChange::Other => (99, "Other"),
    }
}

fn lifecycle(r: &LifecycleRecord) -> Value {
    let mut ev = classification(
        (3, "Identity & Access Management"),
        (ENTITY_MANAGEMENT, "Entity Management"),
        entity_activity(lifecycle_change(&r.operation)),
        r.severity(),
        r.event_time_ms,
    );
    let failed = lifecycle_failed(&r.operation);
    let mut entity = json!({
        "type": r.token_kind,
        "name": if r.target_details.is_empty() { &r.token_kind } else { &r.target_details },
    });
    if let Some(id) = r.token_id {
        entity["uid"] = json!(id.to_string());
    }
    insert_all(
        &mut ev,
        json!({
            "message": format!(
                "{} {} in {} {} by {}",
                r.token_kind, r.operation, r.scope_type, r.scope_path, r.author_name
            ),
            "status_id": if failed { 2 } else { 1 },
            "status": if failed { "Failure" } else { "Success" },
            "metadata": metadata(&r.dedup_key, "token_lifecycle", None),
            "actor": {
                "user": user(r.author_id, &r.author_name, None, r.actor_kind),
            },
            "entity": entity,
            "unmapped": { "gitlab": {
                "event_type": r.event_type,
                "operation": r.operation,
                "scope": { "type": r.scope_type, "id": r.scope_id, "path": r.scope_path },
            }},
        }),
    );
    Value::Object(ev)
}

/// Finding `activity_id`: 1 Create, 2 Update, 3 Close.
fn finding_activity(a: &Alert) -> (u32, &'static str) {
    match a.status.as_str() {
        "resolved" | "closed" | "suppressed" => (3, "Close"),
        "open" | "new" if a.acked_by.is_empty() && a.last_seen_ms == a.first_seen_ms => {
            (1, "Create")
        }
        _ => (2, "Update"),
    }
}

/// Finding `status_id`: 1 New, 2 In Progress, 3 Suppressed, 4 Resolved, 99 Other.
fn finding_status(status: &str) -> (u32, String) {
    match status {
        "open" | "new" => (1, "New".into()),
        "acked" | "acknowledged" | "in_progress" => (2, "In Progress".into()),
        "suppressed" => (3, "Suppressed".into()),
        "resolved" | "closed" => (4, "Resolved".into()),
        other => (99, other.into()),
    }
}

fn alert(r: &StoredAlert) -> Value {
    let a = &r.alert;
    let activity = finding_activity(a);
    let mut ev = classification(
        (2, "Findings"),
        (DETECTION_FINDING, "Detection Finding"),
        activity,
        r.severity(),
        r.updated_at_ms,
    );
    let (status_id, status) = finding_status(a.status.as_str());
    let mut resources = Vec::new();
    if !a.target_project_path.is_empty() {
        resources.push(project(&a.target_project_path, None));
    }
    let extra = json!({
        "message": a.summary,
        "status_id": status_id,
        "status": status,
        "is_alert": activity.0 != 3,
        "count": a.count,
        "start_time": a.first_seen_ms,
        "end_time": a.last_seen_ms,
        "metadata": metadata(&format!("{}@{}", a.alert_id, r.updated_at_ms), "alerts", Some(r.updated_at_ms)),
        "finding_info": {
            "uid": a.alert_id,
            "title": a.summary,
            "types": [a.rule],
            "analytic": { "uid": a.rule, "name": a.rule, "type_id": 1, "type": "Rule" },
            "created_time": a.first_seen_ms,
            "first_seen_time": a.first_seen_ms,
            "last_seen_time": a.last_seen_ms,
            "modified_time": r.updated_at_ms,
        },
        "resources": resources,
        "unmapped": { "gitlab": {
            "source_project_path": a.source_project_path,
            "target_project_path": a.target_project_path,
            "action": a.action,
            "job_id": a.job_id,
            "actor_kind": a.actor_kind,
            "event_time": a.event_time_ms,
            "acked_by": a.acked_by,
            "details": a.details,
        }},
        "actor": { "user": {
            "uid": a.actor_id.to_string(),
            "type": a.actor_kind,
        }},
    });
    insert_all(&mut ev, extra);
    Value::Object(ev)
}
