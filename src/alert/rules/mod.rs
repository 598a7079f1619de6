//! The rule registry. Each built-in rule is one module here: its pure, stateless check and
//! a [`RuleDef`] listed in [`REGISTRY`]. A check returns a [`Finding`] when its input is
//! suspicious; whether the rule is on, its severity and exceptions
//! (`RuleSettings::common`), suppression and ids are the engine's business. The stateful
//! new-edge rule is run by the engine over [`super::edges`].

mod allowlist_drift;
mod allowlist_weakened;
mod coverage_gap;
mod crown_jewel;
mod not_allowlisted;
mod push;
mod token_lifecycle;
mod unexpected_actor;

use serde_json::{Map, Value, json};

use super::id::project_key;
use super::rule_id::RuleId;
use super::settings::{Exception, RuleSettings};
use crate::model::{AuditEvent, TokenUse};

/// What a rule looks at.
#[derive(Clone, Copy)]
pub enum Check {
    /// Each token-use record.
    Record(fn(&TokenUse, &RuleSettings) -> Option<Finding>),
    /// Each normalized audit event.
    Audit(fn(&AuditEvent, &RuleSettings) -> Option<Finding>),
    /// Each token-use record, with the engine's edge memory (`AlertEngine::new_edge`).
    NewEdge,
}

/// One built-in rule.
#[derive(Clone, Copy)]
pub struct RuleDef {
    pub id: RuleId,
    pub check: Check,
}

/// Every rule, in the order its findings are raised for one input.
pub const REGISTRY: [RuleDef; 9] = [
    not_allowlisted::RULE,
    allowlist_weakened::RULE,
    RuleDef {
        id: RuleId::NewEdge,
        check: Check::NewEdge,
    },
    push::RULE,
    crown_jewel::RULE,
    unexpected_actor::RULE,
    token_lifecycle::RULE,
    allowlist_drift::RULE,
    coverage_gap::RULE,
];

/// What a rule saw. `source_key`/`target_key` (see [`project_key`]) plus the rule and the
/// event-time bucket identify the alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: RuleId,
    pub summary: String,
    pub source_key: String,
    pub target_key: String,
    pub source_project_path: String,
    pub target_project_path: String,
    pub actor_id: i64,
    pub actor_kind: String,
    pub action: String,
    pub job_id: Option<i64>,
    pub event_time_ms: i64,
    pub details: Map<String, Value>,
}

impl Finding {
    /// A finding about a token use; details carry the ids and the record's identity.
    pub fn from_record(rule: RuleId, r: &TokenUse, summary: String) -> Finding {
        let mut details = Map::new();
        details.insert("source_project_id".into(), json!(r.source_project_id));
        details.insert("target_project_id".into(), json!(r.target_project_id));
        details.insert("actor_name".into(), json!(r.actor_name));
        details.insert("pipeline_id".into(), json!(r.pipeline_id));
        details.insert("git_ref".into(), json!(r.git_ref));
        details.insert("ip_address".into(), json!(r.ip_address));
        details.insert("allowlisted".into(), json!(r.allowlisted));
        details.insert("correlation".into(), json!(r.correlation));
        Finding {
            rule,
            summary,
            source_key: project_key(r.source_project_id, &r.source_project_path),
            target_key: project_key(r.target_project_id, &r.target_project_path),
            source_project_path: r.source_project_path.clone(),
            target_project_path: r.target_project_path.clone(),
            actor_id: r.actor_id,
            actor_kind: r.actor_kind.as_str().to_string(),
            action: r.action.to_string(),
            job_id: r.job_id,
            event_time_ms: r.event_time_ms,
            details,
        }
    }

    pub fn from_audit(rule: RuleId, ev: &AuditEvent, summary: String) -> Finding {
        let mut details = Map::new();
        details.insert("audit_dedup_key".into(), json!(ev.dedup_key));
        details.insert("event_type".into(), json!(ev.event_type));
        details.insert("actor_name".into(), json!(ev.author_name));
        details.insert("ip_address".into(), json!(ev.ip_address));
        Finding {
            rule,
            summary,
            source_key: String::new(),
            target_key: String::new(),
            source_project_path: String::new(),
            target_project_path: String::new(),
            actor_id: ev.author_id,
            actor_kind: ev.actor_kind.as_str().to_string(),
            action: ev.event_type.clone(),
            job_id: None,
            event_time_ms: ev.created_at_ms,
            details,
        }
    }
}

/// Whether an exception silences `f` at its event time (`expires_ms` is exclusive).
pub fn exception_applies(e: &Exception, expires_ms: i64, f: &Finding) -> bool {
    let project = |want: &Option<String>, path: &str| {
        want.as_deref()
            .is_none_or(|p| p.is_empty() || p.eq_ignore_ascii_case(path))
    };
    let group = |want: &Option<String>, path: &str| {
        want.as_deref()
            .is_none_or(|g| g.is_empty() || under_group(path, g))
    };
    f.event_time_ms < expires_ms
        && project(&e.project, &f.target_project_path)
        && group(&e.group, &f.target_project_path)
        && project(&e.source_project, &f.source_project_path)
        && group(&e.source_group, &f.source_project_path)
}

/// `path` is inside `group` (any depth), case-insensitively.
pub fn under_group(path: &str, group: &str) -> bool {
    let g = group.trim_end_matches('/');
    !g.is_empty()
        && path.len() > g.len()
        && path.as_bytes()[g.len()] == b'/'
        && path[..g.len()].eq_ignore_ascii_case(g)
}

/// Case-insensitive glob: `*` matches any run of characters (slashes included).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let t = text.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !t.starts_with(first) || t.len() < first.len() + last.len() || !t.ends_with(last) {
        return false;
    }
    let mut rest = &t[first.len()..t.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_rule_once_in_rule_id_order() {
        let ids: Vec<RuleId> = REGISTRY.iter().map(|d| d.id).collect();
        assert_eq!(ids, RuleId::ALL.to_vec());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*secrets*", "Platform/Secrets-Vault"));
        assert!(glob_match("infra/*", "infra/a/b"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(!glob_match("infra/*", "infrastructure/x"));
        assert!(glob_match("exact/path", "EXACT/path"));
        assert!(
            !glob_match("ab*ba", "aba"),
            "prefix and suffix must not overlap"
        );
    }

    #[test]
    fn groups_contain_subgroups_but_not_lookalikes() {
        assert!(under_group("g/sub/p", "g"));
        assert!(under_group("G/p", "g/"));
        assert!(!under_group("gx/p", "g"));
        assert!(!under_group("g", "g"));
    }
}
