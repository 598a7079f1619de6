//! Snapshots of `normalize()` for every fixture under `tests/fixtures/gitlab/`.
//!
//! Each snapshot records the whole `Normalized` answer (events and rejections). Webhook
//! `payload_json` is checked here to be the fixture verbatim and is then replaced by its
//! size, so the snapshots stay readable.

mod common;

use common::{fixture, headers};
use serde_json::{Value, json};
use tokentrail::model::{Event, Normalized, SourceKind};

fn render(out: &Normalized, input: &[u8]) -> Value {
    let events: Vec<Value> = out
        .events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).expect("events serialize");
            if let Event::Webhook(w) = e {
                assert_eq!(
                    w.payload_json.as_bytes(),
                    input,
                    "payload_json must be the body verbatim"
                );
                v["payload_json"] = json!(format!(
                    "<{} bytes, the input body verbatim>",
                    w.payload_json.len()
                ));
            }
            v
        })
        .collect();
    json!({ "events": events, "rejected": out.rejected })
}

fn snap(name: &str, source: SourceKind, rel: &str, hdrs: &[(&str, &str)]) {
    let input = fixture(rel);
    let out = common::run(source, Some(&input), &headers(hdrs));
    let mut settings = insta::Settings::clone_current();
    settings.set_description(format!("{rel} headers={hdrs:?}"));
    settings.bind(|| insta::assert_json_snapshot!(name, render(&out, &input)));
}

macro_rules! audit_snap {
    ($($name:ident => $file:literal $(, $h:expr)?;)*) => {$(
        #[test]
        fn $name() {
            let hdrs: &[(&str, &str)] = &[$($h)?];
            snap(stringify!($name), SourceKind::AuditStream, concat!("audit-stream/", $file), hdrs);
        }
    )*};
}

macro_rules! webhook_snap {
    ($($name:ident => $file:literal, $h:expr;)*) => {$(
        #[test]
        fn $name() {
            snap(stringify!($name), SourceKind::Webhook, concat!("webhooks/", $file), $h);
        }
    )*};
}

// The shared samples (docs/gitlab-events.md §1.3, §2.4, §2.5).
audit_snap! {
    sample_user_authenticated_using_job_token => "user_authenticated_using_job_token.json",
        ("X-Gitlab-Audit-Event-Type", "user_authenticated_using_job_token");
    sample_repository_git_operation => "repository_git_operation.json";
    sample_secure_ci_job_token_project_added => "secure_ci_job_token_project_added.json";
}

// Allowlist changes (docs/gitlab-events.md §2.1), every kind and every custom_message format.
audit_snap! {
    allowlist_project_removed_with_policies => "secure_ci_job_token_project_removed.json";
    allowlist_project_added_permissions_flag_format => "secure_ci_job_token_project_added_permissions_flag.json";
    allowlist_group_added_with_default_permissions => "secure_ci_job_token_group_added.json";
    allowlist_group_removed => "secure_ci_job_token_group_removed.json";
    allowlist_inbound_enabled => "secure_ci_job_token_inbound_enabled.json";
    allowlist_inbound_disabled => "secure_ci_job_token_inbound_disabled.json";
    allowlist_policies_updated_current_format => "secure_ci_job_token_policies_updated.json";
    allowlist_policies_updated_legacy_format => "secure_ci_job_token_policies_updated_legacy.json";
    // A group entry: GitLab falls back to the group's display name (no target details).
    allowlist_policies_updated_group_display_name => "secure_ci_job_token_policies_updated_group.json";
}

// Rows `tokentrail gitlab sync` and `coverage` produce (src/gitlab/snapshot.rs, coverage.rs;
// docs/gitlab-sync.md): allowlist snapshots are allowlist changes, auth-log rows generic.
audit_snap! {
    gitlab_sync_snapshot_project_with_policies => "tokentrail_allowlist_snapshot_project.json";
    gitlab_sync_snapshot_group_absent_with_drift => "tokentrail_allowlist_snapshot_group_absent_drift.json";
    gitlab_coverage_auth_log_gap => "tokentrail_job_token_auth_log.json";
}

// Token lifecycle families (docs/gitlab-events.md §2.3).
audit_snap! {
    lifecycle_personal_access_token_created => "personal_access_token_created.json";
    lifecycle_project_access_token_created => "project_access_token_created.json";
    lifecycle_group_access_token_deleted => "group_access_token_deleted.json";
    lifecycle_deploy_token_revoked => "deploy_token_revoked.json";
    lifecycle_group_deploy_token_created => "group_deploy_token_created.json";
    lifecycle_deploy_key_added => "deploy_key_added.json";
    lifecycle_cluster_agent_token_revoked => "cluster_agent_token_revoked.json";
    lifecycle_ci_runner_token_reset => "ci_runner_token_reset.json";
}

// Resource actions (docs/gitlab-events.md §2.2, §5.3).
audit_snap! {
    resource_job_artifact_downloaded => "job_artifact_downloaded.json";
    resource_git_push_by_deploy_token_message_as_json_string => "repository_git_operation_push_message_as_json_string.json";
    resource_git_ssh_without_verb => "repository_git_operation_ssh_without_verb.json";
    resource_git_unknown_action => "repository_git_operation_unknown_action.json";
    resource_multi_project_downstream_pipeline_created => "multi_project_downstream_pipeline_created.json";
    resource_secrets_manager_read_project_secret => "secrets_manager_read_project_secret.json";
    resource_package_published => "package_registry_package_published.json";
    resource_package_published_group_scope_is_other => "package_registry_package_published_group_scope.json";
    resource_container_repository_created => "container_repository_created.json";
    resource_release_created => "release_created.json";
    resource_deployment_started => "deployment_started.json";
    resource_repository_file_accessed_api => "repository_file_accessed_api.json";
    resource_variable_viewed_api => "variable_viewed_api.json";
}

// Shapes: batched mode, per-scope columns, string ids, nulls, header-only event type, actors.
audit_snap! {
    shape_batch_with_bad_element => "batch_with_bad_element.json";
    shape_per_scope_project_id => "per_scope_project_id.json";
    shape_string_ids_and_ruby_time => "user_authenticated_using_job_token_string_ids.json";
    shape_nulls => "nulls.json";
    shape_event_type_from_header => "event_type_from_header.json",
        ("x-gitlab-audit-event-type", "user_authenticated_using_job_token");
    actor_project_bot_by_username => "merge_request_merged_by_project_bot.json";
    actor_composite_identity => "composite_identity_author.json";
}

const JOB_HOOK: &[(&str, &str)] = &[
    ("X-Gitlab-Event", "Job Hook"),
    (
        "X-Gitlab-Webhook-UUID",
        "3f1c2b7e-8d44-4c1e-a0b9-7e2d5f6a9c01",
    ),
    ("Idempotency-Key", "6c5b4a39-2817-4f06-9e5d-4c3b2a190817"),
];
const PIPELINE_HOOK: &[(&str, &str)] = &[
    ("X-Gitlab-Event", "Pipeline Hook"),
    ("Idempotency-Key", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
];

// Webhooks (docs/gitlab-events.md §4).
webhook_snap! {
    sample_job_hook => "job_hook.json", JOB_HOOK;
    sample_pipeline_hook => "pipeline_hook.json", PIPELINE_HOOK;
    webhook_job_hook_without_idempotency_key => "job_hook.json", &[];
    webhook_job_finished_string_ids_with_lineage => "job_hook_finished_string_ids_with_lineage.json", JOB_HOOK;
    webhook_pipeline_finished_multiple_builds => "pipeline_hook_finished_multiple_builds.json", PIPELINE_HOOK;
    webhook_deployment_hook_is_generic => "deployment_hook.json", &[("X-Gitlab-Event", "Deployment Hook")];
}
