//! Rule 8: GitLab's API shows an allowlist that differs from what tokentrail's history (the
//! audit events it received, and earlier syncs) says: an event was missed or never sent.
//! `tokentrail gitlab sync` decides the difference and writes it in the snapshot row's
//! `details.drift` (src/gitlab/snapshot.rs); this rule raises it.

use serde_json::json;

use super::{Check, Finding, RuleDef};
use crate::alert::id::project_key;
use crate::alert::rule_id::RuleId;
use crate::alert::settings::RuleSettings;
use crate::model::{AuditEvent, AuditMeaning};

pub const RULE: RuleDef = RuleDef {
    id: RuleId::AllowlistDrift,
    check: Check::Audit(check),
};

fn check(ev: &AuditEvent, _: &RuleSettings) -> Option<Finding> {
    let AuditMeaning::Allowlist(c) = &ev.meaning else {
        return None;
    };
    if !c.change.is_snapshot() {
        return None;
    }
    let details: serde_json::Value = serde_json::from_str(&ev.details_json).ok()?;
    let drift = details.get("drift")?.as_str()?.to_owned();
    let member = c.member_path.clone().unwrap_or_default();
    let what = match drift.as_str() {
        "missing_from_history" => format!("lists {member}, which tokentrail never saw added"),
        "removed_unseen" => format!("no longer lists {member}, whose removal tokentrail never saw"),
        "policies_differ" => {
            format!("gives {member} other job-token policies than tokentrail recorded")
        }
        "inbound_differs" => {
            "has inbound enforcement set other than tokentrail recorded".to_string()
        }
        other => format!("differs from tokentrail's history ({other})"),
    };
    let summary = format!(
        "GitLab's job-token allowlist of {} {what}: an allowlist event was missed",
        c.protected_project_path
    );
    let mut f = Finding::from_audit(RuleId::AllowlistDrift, ev, summary);
    f.action = format!("allowlist.drift.{drift}");
    f.source_key = if member.is_empty() {
        String::new()
    } else {
        project_key(c.member_id, &member)
    };
    f.source_project_path = member;
    f.target_key = project_key(c.protected_project_id, &c.protected_project_path);
    f.target_project_path = c.protected_project_path.clone();
    f.details.insert("drift".into(), json!(drift));
    f.details.insert("change".into(), json!(c.change));
    f.details
        .insert("target_project_id".into(), json!(c.protected_project_id));
    f.details.insert("member_type".into(), json!(c.member_type));
    f.details.insert("member_id".into(), json!(c.member_id));
    f.details.insert("policies".into(), json!(c.policies));
    Some(f)
}
