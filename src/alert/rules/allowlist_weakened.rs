//! Rule 2: inbound allowlist enforcement disabled, or a whole top-level group admitted.

use serde_json::json;

use super::{Check, Finding, RuleDef};
use crate::alert::id::project_key;
use crate::alert::rule_id::RuleId;
use crate::alert::settings::RuleSettings;
use crate::model::{AllowlistChange, AllowlistChangeKind, AuditEvent, AuditMeaning};

pub const RULE: RuleDef = RuleDef {
    id: RuleId::AllowlistWeakened,
    check: Check::Audit(check),
};

fn check(ev: &AuditEvent, _: &RuleSettings) -> Option<Finding> {
    match &ev.meaning {
        AuditMeaning::Allowlist(c) => allowlist_weakened(ev, c),
        _ => None,
    }
}

fn allowlist_weakened(ev: &AuditEvent, c: &AllowlistChange) -> Option<Finding> {
    let member = c.member_path.as_deref().unwrap_or("");
    let (action, summary) = match c.change {
        AllowlistChangeKind::InboundDisabled => (
            "allowlist.inbound_disabled",
            format!(
                "{} disabled the job-token allowlist of {}",
                ev.author_name, c.protected_project_path
            ),
        ),
        AllowlistChangeKind::GroupAdded if !member.is_empty() && !member.contains('/') => (
            "allowlist.top_level_group_added",
            format!(
                "{} admitted the whole top-level group {member} to the job-token allowlist of {}",
                ev.author_name, c.protected_project_path
            ),
        ),
        _ => return None,
    };
    let mut f = Finding::from_audit(RuleId::AllowlistWeakened, ev, summary);
    f.action = action.to_string();
    f.source_key = if member.is_empty() {
        String::new()
    } else {
        project_key(c.member_id, member)
    };
    f.source_project_path = member.to_string();
    f.target_key = project_key(c.protected_project_id, &c.protected_project_path);
    f.target_project_path = c.protected_project_path.clone();
    f.details
        .insert("target_project_id".into(), json!(c.protected_project_id));
    f.details.insert("member_type".into(), json!(c.member_type));
    f.details.insert("member_id".into(), json!(c.member_id));
    Some(f)
}
