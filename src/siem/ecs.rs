//! Elastic Common Schema (ECS 8.x) mappings.
//!
//! ECS fields carry what ECS defines (`@timestamp`, `event.*`, `user.*`, `source.ip`,
//! `related.*`, `rule.*`, `observer.*`); everything GitLab-specific goes under the custom
//! `gitlab.*` namespace (ECS reserves no `gitlab` field set), and the few values worth
//! filtering on in every SIEM view are repeated in `labels` (flat keyword strings).
//! `event.category` / `event.type` use only values ECS allows for each category.

use serde_json::{Map, Value, json};

use super::record::{
    ActionVerb, LifecycleChange, LifecycleRecord, Severity, SiemRecord, StoredAlert,
    StoredTokenUse, action_verb, lifecycle_change, lifecycle_failed, rfc3339_ms,
};
use super::{PRODUCT, PRODUCT_VERSION, VENDOR};

/// The ECS version the documents declare in `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";

/// Renders one record as an ECS document.
pub fn to_ecs(record: &SiemRecord) -> Value {
    let mut doc = match record {
        SiemRecord::TokenUse(r) => token_use(r),
        SiemRecord::Lifecycle(r) => lifecycle(r),
        SiemRecord::Alert(r) => alert(r),
    };
    let common = json!({
        "@timestamp": rfc3339_ms(record.time_ms()),
        "ecs": { "version": ECS_VERSION },
        "observer": { "vendor": VENDOR, "product": PRODUCT, "version": PRODUCT_VERSION, "type": "audit" },
    });
    merge(&mut doc, common);
    let event = doc["event"].as_object_mut().expect("event object");
    event.insert("id".into(), json!(record.id()));
    event.insert("module".into(), json!("tokentrail"));
    event.insert(
        "dataset".into(),
        json!(format!("tokentrail.{}", record.kind().as_str())),
    );
    event.insert("severity".into(), json!(severity_number(record.severity())));
    doc
}

/// `event.severity` is numeric and source-defined; we use the OCSF scale (0..=5).
fn severity_number(s: Severity) -> u8 {
    super::ocsf::severity_id(s)
}

fn merge(doc: &mut Value, extra: Value) {
    if let (Value::Object(d), Value::Object(e)) = (doc, extra) {
        d.extend(e);
    }
}

/// ECS `source.ip` must be an IP address; anything else stays in `gitlab.ip_address` only.
fn valid_ip(ip: &str) -> Option<&str> {
    ip.parse::<std::net::IpAddr>().ok().map(|_| ip)
}

fn related(users: &[&str], ips: &[&str]) -> Value {
    let mut r = Map::new();
    let users: Vec<&str> = users.iter().copied().filter(|u| !u.is_empty()).collect();
    if !users.is_empty() {
        r.insert("user".into(), json!(users));
    }
    let ips: Vec<&str> = ips.iter().copied().filter_map(valid_ip).collect();
    if !ips.is_empty() {
        r.insert("ip".into(), json!(ips));
    }
    Value::Object(r)
}

fn token_use(r: &StoredTokenUse) -> Value {
    let t = &r.token_use;
    let verb = action_verb(t.action.as_str());
    // `api` accepts access/change/creation/info; `authentication` accepts start/end/info.
    let (category, kind) = match verb {
        ActionVerb::Read => ("api", "access"),
        ActionVerb::Write => ("api", "change"),
        ActionVerb::Trigger => ("api", "creation"),
        ActionVerb::Unknown => ("api", "info"),
        ActionVerb::AuthOnly => ("authentication", "info"),
    };
    let user_name = t.actor_username.as_deref().unwrap_or(&t.actor_name);
    let mut doc = json!({
        "message": if verb == ActionVerb::AuthOnly {
            format!("CI job token of {} authenticated", t.source_project_path)
        } else {
            format!("CI job token of {} used for {} on {}", t.source_project_path, t.action, t.target_project_path)
        },
        "event": {
            "kind": "event",
            "category": [category],
            "type": [kind],
            "action": t.action,
            "outcome": "success",
            "ingested": rfc3339_ms(r.ingested_at_ms),
        },
        "user": {
            "id": t.actor_id.to_string(),
            "name": user_name,
            "full_name": t.actor_name,
        },
        "related": related(&[user_name], &[&t.ip_address]),
        "labels": {
            "source_project": t.source_project_path,
            "target_project": t.target_project_path,
            "correlation": t.correlation,
        },
        "gitlab": {
            "actor_kind": t.actor_kind.as_str(),
            "source_project": { "id": t.source_project_id, "path": t.source_project_path },
            "target_project": { "id": t.target_project_id, "path": t.target_project_path },
            "job": { "id": t.job_id },
            "pipeline": { "id": t.pipeline_id },
            "git_ref": t.git_ref,
            "runner": { "id": t.runner_id },
            "token_type": t.token_type,
            "ip_address": t.ip_address,
            "same_project": t.same_project,
            "allowlisted": t.allowlisted,
            "correlation": t.correlation,
            "gap_ms": t.gap_ms,
        },
    });
    if let Some(ip) = valid_ip(&t.ip_address) {
        doc["source"] = json!({ "ip": ip });
    }
    doc
}

fn lifecycle(r: &LifecycleRecord) -> Value {
    // `iam` accepts creation/deletion/change/info.
    let kind = match lifecycle_change(&r.operation) {
        LifecycleChange::Created => "creation",
        LifecycleChange::Removed => "deletion",
        LifecycleChange::Changed => "change",
        LifecycleChange::Other => "info",
    };
    json!({
        "message": format!("{} {} in {} {} by {}", r.token_kind, r.operation, r.scope_type, r.scope_path, r.author_name),
        "event": {
            "kind": "event",
            "category": ["iam"],
            "type": [kind],
            "action": r.event_type,
            "outcome": if lifecycle_failed(&r.operation) { "failure" } else { "success" },
        },
        "user": {
            "id": r.author_id.to_string(),
            "name": r.author_name,
        },
        "related": related(&[&r.author_name], &[]),
        "labels": {
            "token_kind": r.token_kind,
            "scope_path": r.scope_path,
        },
        "gitlab": {
            "actor_kind": r.actor_kind.as_str(),
            "token": { "kind": r.token_kind, "id": r.token_id, "details": r.target_details },
            "operation": r.operation,
            "scope": { "type": r.scope_type, "id": r.scope_id, "path": r.scope_path },
        },
    })
}

fn alert(r: &StoredAlert) -> Value {
    let a = &r.alert;
    json!({
        "message": a.summary,
        "event": {
            "kind": "alert",
            // `intrusion_detection` accepts allowed/denied/info.
            "category": ["intrusion_detection"],
            "type": ["info"],
            "action": a.rule,
            "start": rfc3339_ms(a.first_seen_ms),
            "end": rfc3339_ms(a.last_seen_ms),
            "created": rfc3339_ms(a.first_seen_ms),
        },
        "rule": { "id": a.rule, "name": a.rule },
        "labels": {
            "alert_status": a.status,
            "target_project": a.target_project_path,
        },
        "gitlab": {
            "alert": {
                "id": a.alert_id,
                "severity": a.severity,
                "status": a.status,
                "count": a.count,
                "acked_by": a.acked_by,
                "details": a.details,
            },
            "source_project": { "path": a.source_project_path },
            "target_project": { "path": a.target_project_path },
            "actor_kind": a.actor_kind,
            "action": a.action,
            "job": { "id": a.job_id },
            "event_time": rfc3339_ms(a.event_time_ms),
        },
        "user": { "id": a.actor_id.to_string() },
    })
}
