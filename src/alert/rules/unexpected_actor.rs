//! Rule 6: the actor kind is not one the source project's scope expects.

use super::{Check, Finding, RuleDef, under_group};
use crate::alert::rule_id::RuleId;
use crate::alert::settings::{RuleSettings, UnexpectedActorRule};
use crate::model::TokenUse;

pub const RULE: RuleDef = RuleDef {
    id: RuleId::UnexpectedActor,
    check: Check::Record(check),
};

fn check(r: &TokenUse, settings: &RuleSettings) -> Option<Finding> {
    unexpected_actor(r, &settings.unexpected_actor)
}

fn unexpected_actor(r: &TokenUse, cfg: &UnexpectedActorRule) -> Option<Finding> {
    let scope = cfg.scopes.iter().find(|s| {
        s.project
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(&r.source_project_path))
            || s.group
                .as_deref()
                .is_some_and(|g| under_group(&r.source_project_path, g))
    })?;
    if scope.expected.contains(&r.actor_kind) {
        return None;
    }
    let summary = format!(
        "{} ({}) ran a job in {}, where only {} are expected",
        r.actor_name,
        r.actor_kind.as_str(),
        r.source_project_path,
        scope
            .expected
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Some(Finding::from_record(RuleId::UnexpectedActor, r, summary))
}
