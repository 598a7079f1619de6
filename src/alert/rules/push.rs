//! Rule 4: a job token pushed to a repository.

use super::{Check, Finding, RuleDef};
use crate::alert::rule_id::RuleId;
use crate::alert::settings::RuleSettings;
use crate::model::TokenUse;

pub const RULE: RuleDef = RuleDef {
    id: RuleId::Push,
    check: Check::Record(check),
};

fn check(r: &TokenUse, _: &RuleSettings) -> Option<Finding> {
    push(r)
}

fn push(r: &TokenUse) -> Option<Finding> {
    (r.action == "repository.write").then(|| {
        let summary = format!(
            "job {} of {} pushed to {} with its job token",
            r.job_id.map_or("?".into(), |j| j.to_string()),
            r.source_project_path,
            r.target_project_path
        );
        Finding::from_record(RuleId::Push, r, summary)
    })
}
