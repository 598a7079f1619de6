//! Rule 9: GitLab's authentication log shows a job-token use (origin → target) whose last
//! authorization tokentrail has no record of: its events never arrived (a streaming outage).
//! `tokentrail gitlab coverage` decides it against `token_use` and sets
//! `details.coverage_gap` (src/gitlab/coverage.rs); this rule raises it.

use serde_json::json;

use super::{Check, Finding, RuleDef};
use crate::alert::id::project_key;
use crate::alert::rule_id::RuleId;
use crate::alert::settings::RuleSettings;
use crate::model::{AUTH_LOG_EVENT_TYPE, AuditEvent};

pub const RULE: RuleDef = RuleDef {
    id: RuleId::CoverageGap,
    check: Check::Audit(check),
};

fn check(ev: &AuditEvent, _: &RuleSettings) -> Option<Finding> {
    if ev.event_type != AUTH_LOG_EVENT_TYPE {
        return None;
    }
    let details: serde_json::Value = serde_json::from_str(&ev.details_json).ok()?;
    if details.get("coverage_gap") != Some(&json!(true)) {
        return None;
    }
    let origin = ev.target_details.clone();
    let summary = format!(
        "GitLab authorized {origin}'s job token into {} (last at the event time), and tokentrail has no record of it: events were lost",
        ev.entity_path
    );
    let mut f = Finding::from_audit(RuleId::CoverageGap, ev, summary);
    f.action = "coverage.gap".into();
    f.source_key = project_key(ev.target_id, &origin);
    f.source_project_path = origin;
    f.target_key = project_key(ev.entity_id, &ev.entity_path);
    f.target_project_path = ev.entity_path.clone();
    f.details
        .insert("source_project_id".into(), ev.target_id.into());
    f.details
        .insert("target_project_id".into(), ev.entity_id.into());
    f.details.insert(
        "tokentrail_last_recorded_ms".into(),
        details
            .get("tokentrail_last_recorded_ms")
            .cloned()
            .unwrap_or_default(),
    );
    Some(f)
}
