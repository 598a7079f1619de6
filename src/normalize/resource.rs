//! Resource events: the *target + action* side of a token use
//! (docs/gitlab-events.md §2.2, §5.3, §7).

use super::json::{self, Map, Value};

use super::fields::{get, loose_id, loose_str, loose_text};
use crate::model::{Action, AuditEvent, AuditMeaning};

/// Event types that only mean a resource access when their entity is a project (they can
/// also be scoped to groups, where there is no project to name as the target).
fn project_scoped_action(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "package_registry_package_published" | "package_registry_package_deleted" => {
            "package.write"
        }
        t if t.starts_with("container_repository_") => "container_registry.write",
        "release_created"
        | "release_updated"
        | "release_deleted_audit_event"
        | "release_milestones_updated" => "release.write",
        "deployment_started" | "deployment_approved" | "deployment_rejected" => "deployment.write",
        "repository_file_accessed_api" | "repository_file_accessed_web" => "repository.api_read",
        "variable_viewed_api" | "variable_viewed_graphql" => "variable.read",
        _ => return None,
    })
}

pub fn resource_access(
    ev: &AuditEvent,
    custom_message: Option<&Value<'_>>,
    details: Option<&Map<'_>>,
) -> Option<AuditMeaning> {
    let simple = |action: &'static str| AuditMeaning::ResourceAccess {
        action: Action::known(action),
        pipeline_id: None,
        upstream_project_path: None,
        upstream_pipeline_id: None,
    };
    match ev.event_type.as_str() {
        // docs/gitlab-events.md §2.2: target is the artifact's pipeline (`Ci::Pipeline`),
        // else the build.
        "job_artifact_downloaded" => Some(AuditMeaning::ResourceAccess {
            action: Action::known("artifact.read"),
            pipeline_id: (ev.target_type == "Ci::Pipeline")
                .then_some(ev.target_id)
                .flatten(),
            upstream_project_path: None,
            upstream_pipeline_id: None,
        }),
        "repository_git_operation" => Some(simple(git_action(custom_message))),
        // docs/gitlab-events.md §2.2: entity = downstream project, target = downstream pipeline,
        // and the upstream (source) side lives in details.
        "multi_project_downstream_pipeline_created" => Some(AuditMeaning::ResourceAccess {
            action: Action::PIPELINE_TRIGGER,
            pipeline_id: ev
                .target_id
                .or_else(|| ev.target_details.trim().parse().ok()),
            upstream_project_path: details
                .and_then(|d| loose_text(get(d, "upstream_root_project_path")))
                .filter(|p| !p.is_empty()),
            upstream_pipeline_id: details
                .and_then(|d| loose_id(get(d, "upstream_root_pipeline_id"))),
        }),
        "secrets_manager_read_project_secret" | "secrets_manager_read_group_secret" => {
            Some(simple("secret.read"))
        }
        t => project_scoped_action(t)
            .filter(|_| ev.entity_type == "Project")
            .map(simple),
    }
}

/// docs/gitlab-events.md §2.2: `custom_message` is `{protocol, action, verb}` (an object, or the
/// same as JSON text); `verb` exists only in newer versions. The verb is the more specific signal,
/// so it wins; the git service (`action`) is the fallback. Neither known → `repository.unknown`
/// rather than guessing read, so the correlator never reports a push as a read.
pub fn git_action(custom_message: Option<&Value<'_>>) -> &'static str {
    let arena;
    let parsed;
    let obj = match custom_message {
        Some(Value::Object(o)) => Some(*o),
        Some(Value::String(s)) => {
            arena = json::arena_for(s.len());
            parsed = json::from_str(s, &arena).ok();
            parsed.as_ref().and_then(Value::as_object)
        }
        _ => None,
    };
    let Some(obj) = obj else {
        return "repository.unknown";
    };
    let field = |k: &str| loose_str(get(obj, k)).map(|s| s.trim().to_ascii_lowercase());
    match field("verb").as_deref() {
        Some("clone" | "pull" | "fetch") => return "repository.read",
        Some("push") => return "repository.write",
        _ => {}
    }
    match field("action").as_deref() {
        Some("git-upload-pack" | "git-upload-archive") => "repository.read",
        Some("git-receive-pack") => "repository.write",
        _ => "repository.unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::git_action;
    use crate::normalize::json::json;

    #[test]
    fn git_actions() {
        let cases = [
            (
                json!({"protocol": "http", "action": "git-upload-pack", "verb": "clone"}),
                "repository.read",
            ),
            (
                json!({"action": "git-upload-pack", "verb": "pull"}),
                "repository.read",
            ),
            (
                json!({"action": "git-receive-pack", "verb": "push"}),
                "repository.write",
            ),
            (
                json!({"protocol": "ssh", "action": "git-upload-pack"}),
                "repository.read",
            ),
            (
                json!({"protocol": "ssh", "action": "git-receive-pack"}),
                "repository.write",
            ),
            (
                json!({"protocol": "ssh", "action": "git-lfs-authenticate"}),
                "repository.unknown",
            ),
            (
                json!("{\"action\":\"git-receive-pack\",\"verb\":\"push\"}"),
                "repository.write",
            ),
            (json!("not json"), "repository.unknown"),
            (json!(null), "repository.unknown"),
        ];
        for (msg, want) in cases {
            assert_eq!(git_action(Some(&msg)), want, "{msg}");
        }
        assert_eq!(git_action(None), "repository.unknown");
    }
}
