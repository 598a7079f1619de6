//! Token lifecycle events (docs/gitlab-events.md §2.3): access tokens, deploy tokens and keys,
//! cluster agent tokens and runner tokens being created, revoked or removed.

use crate::model::{AuditEvent, TokenLifecycle};

/// `(event_type, token_kind, operation)`; exact names, so `group_deploy_token_*` never
/// matches `deploy_token_*` by prefix.
const TYPES: &[(&str, &str, &str)] = &[
    (
        "personal_access_token_created",
        "personal_access_token",
        "created",
    ),
    (
        "personal_access_token_revoked",
        "personal_access_token",
        "revoked",
    ),
    (
        "project_access_token_created",
        "project_access_token",
        "created",
    ),
    (
        "project_access_token_creation_failed",
        "project_access_token",
        "creation_failed",
    ),
    (
        "project_access_token_deleted",
        "project_access_token",
        "deleted",
    ),
    (
        "project_access_token_deletion_failed",
        "project_access_token",
        "deletion_failed",
    ),
    (
        "group_access_token_created",
        "group_access_token",
        "created",
    ),
    (
        "group_access_token_creation_failed",
        "group_access_token",
        "creation_failed",
    ),
    (
        "group_access_token_deleted",
        "group_access_token",
        "deleted",
    ),
    (
        "group_access_token_deletion_failed",
        "group_access_token",
        "deletion_failed",
    ),
    ("deploy_token_created", "deploy_token", "created"),
    (
        "deploy_token_creation_failed",
        "deploy_token",
        "creation_failed",
    ),
    ("deploy_token_revoked", "deploy_token", "revoked"),
    ("deploy_token_destroyed", "deploy_token", "destroyed"),
    (
        "group_deploy_token_created",
        "group_deploy_token",
        "created",
    ),
    (
        "group_deploy_token_creation_failed",
        "group_deploy_token",
        "creation_failed",
    ),
    (
        "group_deploy_token_revoked",
        "group_deploy_token",
        "revoked",
    ),
    (
        "group_deploy_token_destroyed",
        "group_deploy_token",
        "destroyed",
    ),
    ("deploy_key_added", "deploy_key", "added"),
    ("deploy_key_removed", "deploy_key", "removed"),
    (
        "cluster_agent_token_created",
        "cluster_agent_token",
        "created",
    ),
    (
        "cluster_agent_token_revoked",
        "cluster_agent_token",
        "revoked",
    ),
    ("ci_runner_token_reset", "ci_runner_token", "reset"),
];

/// Target types that are the credential itself, so `target_id` is the token id. Personal
/// access token events target the token *owner* (`User`, docs/gitlab-events.md §2.3), so their id
/// comes from the message instead.
const TOKEN_TARGETS: &[&str] = &[
    "PersonalAccessToken",
    "DeployToken",
    "DeployKey",
    "Key",
    "Clusters::AgentToken",
];

pub fn lifecycle(ev: &AuditEvent, message: &str) -> Option<TokenLifecycle> {
    let (_, kind, op) = TYPES.iter().find(|(t, _, _)| *t == ev.event_type)?;
    let token_id = if TOKEN_TARGETS.contains(&ev.target_type.as_str()) {
        ev.target_id
    } else {
        None
    }
    .or_else(|| parse_token_id(message));
    Some(TokenLifecycle {
        token_kind: (*kind).to_owned(),
        operation: (*op).to_owned(),
        token_id,
        // The entity is the scope the token lives in (user, project or group).
        scope_type: ev.entity_type.clone(),
        scope_id: ev.entity_id,
        scope_path: ev.entity_path.clone(),
    })
}

/// "Created personal access token with id 9001", "… token id: 42", "… token id 42".
pub fn parse_token_id(message: &str) -> Option<i64> {
    const MARKERS: [&str; 3] = ["with id", "token id", "token_id"];
    let lower = message.to_ascii_lowercase();
    MARKERS.iter().find_map(|m| {
        let at = lower.find(m)?;
        let rest = lower[at + m.len()..].trim_start_matches([':', ' ', '=']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::parse_token_id;

    #[test]
    fn token_ids_from_messages() {
        assert_eq!(
            parse_token_id("Created personal access token with id 9001"),
            Some(9001)
        );
        assert_eq!(
            parse_token_id("Revoked personal access token with id 12"),
            Some(12)
        );
        assert_eq!(
            parse_token_id("Created deploy token named x, token id: 77"),
            Some(77)
        );
        assert_eq!(
            parse_token_id("Created project access token with token_id: 5 with scopes"),
            Some(5)
        );
        assert_eq!(parse_token_id("Reset runner registration token"), None);
        assert_eq!(parse_token_id("with id 99999999999999999999999"), None);
    }
}
