//! Rule 1: the source was not on the target's inbound allowlist at the time of the use.

use super::{Check, Finding, RuleDef};
use crate::alert::rule_id::RuleId;
use crate::alert::settings::RuleSettings;
use crate::model::TokenUse;

pub const RULE: RuleDef = RuleDef {
    id: RuleId::NotAllowlisted,
    check: Check::Record(check),
};

fn check(r: &TokenUse, _: &RuleSettings) -> Option<Finding> {
    not_allowlisted(r)
}

fn not_allowlisted(r: &TokenUse) -> Option<Finding> {
    (r.allowlisted == Some(false) && !r.same_project).then(|| {
        let summary = format!(
            "{} reached {} ({}) without being on its job-token allowlist",
            r.source_project_path, r.target_project_path, r.action
        );
        Finding::from_record(RuleId::NotAllowlisted, r, summary)
    })
}
