//! The built-in rules as pure, stateless checks. Each returns a [`Finding`] when its input
//! is suspicious; exceptions, suppression and ids are the engine's business. The stateful
//! new-edge rule lives in [`super::edges`].

use serde_json::{Map, Value, json};

use super::id::project_key;
use super::settings::{CrownJewelRule, Exception, TokenLifecycleRule, UnexpectedActorRule};
use crate::model::{AllowlistChange, AllowlistChangeKind, AuditEvent, TokenLifecycle, TokenUse};

/// The built-in rules; `as_str` is the `rule` column and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    NotAllowlisted,
    AllowlistWeakened,
    NewEdge,
    Push,
    CrownJewel,
    UnexpectedActor,
    TokenLifecycle,
}

impl RuleId {
    pub const ALL: [RuleId; 7] = [
        RuleId::NotAllowlisted,
        RuleId::AllowlistWeakened,
        RuleId::NewEdge,
        RuleId::Push,
        RuleId::CrownJewel,
        RuleId::UnexpectedActor,
        RuleId::TokenLifecycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::NotAllowlisted => "not_allowlisted",
            RuleId::AllowlistWeakened => "allowlist_weakened",
            RuleId::NewEdge => "new_edge",
            RuleId::Push => "push",
            RuleId::CrownJewel => "crown_jewel",
            RuleId::UnexpectedActor => "unexpected_actor",
            RuleId::TokenLifecycle => "token_lifecycle",
        }
    }
}

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
            action: r.action.clone(),
            job_id: r.job_id,
            event_time_ms: r.event_time_ms,
            details,
        }
    }

    fn from_audit(rule: RuleId, ev: &AuditEvent, summary: String) -> Finding {
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

/// Rule 1: the source was not on the target's inbound allowlist at the time of the use.
pub fn not_allowlisted(r: &TokenUse) -> Option<Finding> {
    (r.allowlisted == Some(false) && !r.same_project).then(|| {
        let summary = format!(
            "{} reached {} ({}) without being on its job-token allowlist",
            r.source_project_path, r.target_project_path, r.action
        );
        Finding::from_record(RuleId::NotAllowlisted, r, summary)
    })
}

/// Rule 2: inbound allowlist enforcement disabled, or a whole top-level group admitted.
pub fn allowlist_weakened(ev: &AuditEvent, c: &AllowlistChange) -> Option<Finding> {
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

/// Rule 4: a job token pushed to a repository.
pub fn push(r: &TokenUse) -> Option<Finding> {
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

/// Rule 5: use against a crown-jewel project (another project's job), or an admin action.
pub fn crown_jewel(r: &TokenUse, cfg: &CrownJewelRule) -> Option<Finding> {
    let admin = cfg
        .admin_action_prefixes
        .iter()
        .any(|p| !p.is_empty() && r.action.starts_with(p.as_str()));
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

/// Rule 6: the actor kind is not one the source project's scope expects.
pub fn unexpected_actor(r: &TokenUse, cfg: &UnexpectedActorRule) -> Option<Finding> {
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

/// Rule 7: a token was created (or otherwise managed) by an actor kind that never should.
pub fn token_lifecycle(
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
