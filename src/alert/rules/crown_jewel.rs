//! Rule 5: use against a crown-jewel project (another project's job), or an admin action.

use serde_json::json;

use super::{Check, Finding, RuleDef, glob_match};
use crate::alert::rule_id::RuleId;
use crate::alert::settings::{CrownJewelRule, RuleSettings};
use crate::model::TokenUse;

pub const RULE: RuleDef = RuleDef {
    id: RuleId::CrownJewel,
    check: Check::Record(check),
};

fn check(r: &TokenUse, settings: &RuleSettings) -> Option<Finding> {
    crown_jewel(r, &settings.crown_jewel)
}

fn crown_jewel(r: &TokenUse, cfg: &CrownJewelRule) -> Option<Finding> {
    let admin = cfg
        .admin_action_prefixes
        .iter()
        .any(|p| !p.is_empty() && r.action.as_str().starts_with(p.as_str()));
    let crown = !r.same_project
        && cfg
            .patterns
            .iter()
            .any(|p| glob_match(p, &r.target_project_path));
    if !(admin || crown) {
        return None;
    }
    let summary = if crown {
        format!(
            "{} used a job token against crown-jewel project {} ({})",
            r.source_project_path, r.target_project_path, r.action
        )
    } else {
        format!(
            "{} performed admin action {} on {} with a job token",
            r.source_project_path, r.action, r.target_project_path
        )
    };
    let mut f = Finding::from_record(RuleId::CrownJewel, r, summary);
    f.details.insert(
        "reason".into(),
        json!(if crown {
            "crown_jewel_target"
        } else {
            "admin_action"
        }),
    );
    Some(f)
}
