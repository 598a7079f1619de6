//! `secure_ci_job_token_*` events: inbound allowlist changes (docs/gitlab-events.md §2.1).
//!
//! Orientation is reversed relative to a token use: the event's **entity is the protected
//! project** (the allowlist owner, the future *target* of token uses) and its **target is the
//! admitted member** (the project or group whose jobs may now use their token, the *source*).

use crate::model::{AllowlistChange, AllowlistChangeKind, AuditEvent};

/// The allowlist change kind for an event type, if it is one.
pub fn change_kind(event_type: &str) -> Option<AllowlistChangeKind> {
    use AllowlistChangeKind::*;
    Some(match event_type {
        "secure_ci_job_token_project_added" => ProjectAdded,
        "secure_ci_job_token_project_removed" => ProjectRemoved,
        "secure_ci_job_token_group_added" => GroupAdded,
        "secure_ci_job_token_group_removed" => GroupRemoved,
        "secure_ci_job_token_inbound_enabled" => InboundEnabled,
        "secure_ci_job_token_inbound_disabled" => InboundDisabled,
        "secure_ci_job_token_policies_updated" => PoliciesUpdated,
        // Written by `tokentrail gitlab sync` from GitLab's API (src/gitlab/snapshot.rs), in
        // the same orientation and message format as GitLab's own allowlist events.
        "tokentrail_allowlist_snapshot_project" => SnapshotProject,
        "tokentrail_allowlist_snapshot_group" => SnapshotGroup,
        "tokentrail_allowlist_snapshot_project_absent" => SnapshotProjectAbsent,
        "tokentrail_allowlist_snapshot_group_absent" => SnapshotGroupAbsent,
        "tokentrail_allowlist_snapshot_inbound_enabled" => SnapshotInboundEnabled,
        "tokentrail_allowlist_snapshot_inbound_disabled" => SnapshotInboundDisabled,
        _ => return None,
    })
}

pub fn change(kind: AllowlistChangeKind, ev: &AuditEvent, message: &str) -> AllowlistChange {
    // docs/gitlab-events.md §2.1: inbound enable/disable targets `ProjectCiCdSetting`,
    // not a member.
    let has_member = !kind.is_inbound();
    let member_type = has_member
        .then(|| member_type(kind, &ev.target_type))
        .flatten();
    // Only the `Project <path> was …` / `Group <path> was …` messages carry a full path.
    // `target_details` is a name: GitLab's policies-update service passes none for a group,
    // so the event falls back to the group's display name ("Platform Engineering"), and a
    // project's is its short name. Members are identified by `member_id`.
    let member_path = has_member.then(|| parse_member_path(message)).flatten();
    AllowlistChange {
        change: kind,
        // docs/gitlab-events.md §2.1: entity is the protected project (allowlist owner).
        protected_project_id: ev.entity_id,
        protected_project_path: ev.entity_path.clone(),
        member_type,
        member_id: if has_member { ev.target_id } else { None },
        member_path,
        default_permissions: parse_default_permissions(message),
        policies: parse_policies(message),
    }
}

/// `Project`/`Group` from the target type, else implied by the event type.
fn member_type(kind: AllowlistChangeKind, target_type: &str) -> Option<String> {
    use AllowlistChangeKind::*;
    match target_type {
        "Project" | "Group" => Some(target_type.to_owned()),
        _ => match kind {
            ProjectAdded | ProjectRemoved | SnapshotProject | SnapshotProjectAbsent => {
                Some("Project".to_owned())
            }
            GroupAdded | GroupRemoved | SnapshotGroup | SnapshotGroupAbsent => {
                Some("Group".to_owned())
            }
            _ => None,
        },
    }
}

/// "Project platform/app-backend was added to …" / "Group platform was removed from …".
pub fn parse_member_path(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("Project ")
        .or_else(|| message.strip_prefix("Group "))?;
    let end = rest.find(" was ")?;
    let path = rest[..end].trim();
    (!path.is_empty() && !path.contains(' ')).then(|| path.to_owned())
}

/// "… default permissions: false, …" (current add/update messages).
pub fn parse_default_permissions(message: &str) -> Option<bool> {
    let at = message.find("default permissions:")?;
    let rest = message[at + "default permissions:".len()..].trim_start();
    let word = rest.split([',', ' ']).next()?;
    match word {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The policy list, always the last clause of the message. Formats seen in GitLab's code:
/// - "…, with default permissions: false, job token policies: read_packages, read_releases"
///   (add project/group),
/// - "…, with job token policies: read_deployments" (remove),
/// - "CI job token updated to default permissions: true, policies: a, b" (update, current),
/// - "CI job token policies updated to: a, b" (update, earlier),
/// - "…, with job token permissions: a, b" (add, behind the earlier
///   `add_policies_to_ci_job_token` flag; found in GitLab history, not in docs/gitlab-events.md).
pub fn parse_policies(message: &str) -> Vec<String> {
    const MARKERS: [&str; 3] = [
        "policies updated to:",
        "policies:",
        "job token permissions:",
    ];
    let Some(list) = MARKERS
        .iter()
        .find_map(|m| message.rfind(m).map(|at| &message[at + m.len()..]))
    else {
        return Vec::new();
    };
    list.trim()
        .trim_end_matches('.')
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(
            parse_member_path("Project platform/app-backend was added to inbound list of allowed projects for payments/ledger-service").as_deref(),
            Some("platform/app-backend")
        );
        assert_eq!(
            parse_member_path("Group platform/tools was removed from list of allowed groups for payments/ledger-service").as_deref(),
            Some("platform/tools")
        );
        assert_eq!(
            parse_member_path("CI job token policies updated to: read_jobs"),
            None
        );
    }

    #[test]
    fn policy_formats() {
        let cases: [(&str, Option<bool>, &[&str]); 6] = [
            (
                "Project a/b was added to inbound list of allowed projects for c/d, with default permissions: false, job token policies: read_packages, read_releases",
                Some(false),
                &["read_packages", "read_releases"],
            ),
            (
                "Project a/b was removed from inbound list of allowed projects for c/d, with job token policies: read_deployments",
                None,
                &["read_deployments"],
            ),
            (
                "CI job token updated to default permissions: true, policies: read_jobs, admin_packages",
                Some(true),
                &["read_jobs", "admin_packages"],
            ),
            (
                "CI job token policies updated to: read_packages, read_releases",
                None,
                &["read_packages", "read_releases"],
            ),
            (
                "Project a/b was added to inbound list of allowed projects for c/d, with job token permissions: read_jobs",
                None,
                &["read_jobs"],
            ),
            (
                "CI job token updated to default permissions: true, policies: ",
                Some(true),
                &[],
            ),
        ];
        for (msg, default, policies) in cases {
            assert_eq!(parse_default_permissions(msg), default, "{msg}");
            assert_eq!(parse_policies(msg), policies, "{msg}");
        }
        assert!(parse_policies("Secure ci_job_token was enabled for inbound").is_empty());
    }
}
