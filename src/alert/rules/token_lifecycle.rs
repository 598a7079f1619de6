//! Rule 7: a token was created (or otherwise managed) by an actor kind that never should.

use serde_json::json;

use super::{Check, Finding, RuleDef};
use crate::alert::id::project_key;
use crate::alert::rule_id::RuleId;
use crate::alert::settings::{RuleSettings, TokenLifecycleRule};
use crate::model::{AuditEvent, AuditMeaning, TokenLifecycle};

pub const RULE: RuleDef = RuleDef {
    id: RuleId::TokenLifecycle,
    check: Check::Audit(check),
};

fn check(ev: &AuditEvent, settings: &RuleSettings) -> Option<Finding> {
    match &ev.meaning {
        AuditMeaning::TokenLifecycle(tl) => token_lifecycle(ev, tl, &settings.token_lifecycle),
        _ => None,
    }
}

fn token_lifecycle(
    ev: &AuditEvent,
    tl: &TokenLifecycle,
    cfg: &TokenLifecycleRule,
) -> Option<Finding> {
    let watched = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    if !cfg.unexpected_actor_kinds.contains(&ev.actor_kind)
        || !watched(&cfg.operations, &tl.operation)
        || !watched(&cfg.token_kinds, &tl.token_kind)
    {
        return None;
    }
    let summary = format!(
        "{} ({}) {} a {} in {}",
        ev.author_name,
        ev.actor_kind.as_str(),
        tl.operation,
        tl.token_kind,
        tl.scope_path
    );
    let mut f = Finding::from_audit(RuleId::TokenLifecycle, ev, summary);
    f.source_key = format!("actor:{}", ev.author_id);
    f.target_key = project_key(tl.scope_id, &tl.scope_path);
    f.target_project_path = tl.scope_path.clone();
    f.action = format!("{}.{}", tl.token_kind, tl.operation);
    f.details.insert("scope_type".into(), json!(tl.scope_type));
    f.details
        .insert("target_project_id".into(), json!(tl.scope_id));
    f.details.insert("token_id".into(), json!(tl.token_id));
    Some(f)
}
