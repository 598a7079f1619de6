//! Allowlist snapshots as audit events, pure: what `tokentrail gitlab sync` produces into the
//! audit topic for one project, given what GitLab's API says and what tokentrail's history
//! (`allowlist_state`, `allowlist_inbound`) says.
//!
//! **Path.** Snapshots go through Kafka like GitLab's own events, so ingest stays the one way
//! into ClickHouse and the running correlator applies them in order with every other change
//! (`correlate::allowlist`). Each row is a synthetic audit event in GitLab's orientation
//! (entity = protected project, target = member) with a `tokentrail_allowlist_snapshot_*`
//! event type and a GitLab-shaped message (`Project <path> was …, with default permissions:
//! …, job token policies: …`), so the existing normalizer reads member path and policies
//! (`normalize::allowlist`). Its `id` is text, so its dedup key is the content hash: a
//! replayed message collapses, a later sync is a new row at its own time.
//!
//! **Drift.** Compared with the history *for a project tokentrail already has history for*:
//! an entry GitLab lists that the history lacks (`missing_from_history`), an entry the
//! history has that GitLab no longer lists (`removed_unseen`, written as a `*_absent` row),
//! different policies (`policies_differ`, only when policies were read) and a different
//! inbound setting (`inbound_differs`). The difference is carried in `details.drift`, and the
//! `allowlist_drift` rule turns it into an alert. A project without history is a baseline:
//! its rows are written, nothing is called drift.
//!
//! **Incremental.** Unless `full`, a project whose API state equals its history produces no
//! rows (its allowlist status is already known).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::api::{Allowlist, MemberKind};

pub const AUTHOR_NAME: &str = "tokentrail gitlab sync";

/// What the history says of one member of one protected project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownEntry {
    pub present: bool,
    pub path: String,
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
}

/// The history of one protected project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub entries: HashMap<(MemberKind, i64), KnownEntry>,
    pub inbound_enabled: Option<bool>,
}

impl Known {
    pub fn has_history(&self) -> bool {
        !self.entries.is_empty() || self.inbound_enabled.is_some()
    }
}

/// One message for the audit topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub key: String,
    pub event: Value,
    pub drift: Option<&'static str>,
}

/// The rows for one project read at `read_at_ms`.
pub fn messages(a: &Allowlist, known: &Known, read_at_ms: i64, full: bool) -> Vec<Message> {
    let history = known.has_history();
    let mut out = Vec::new();
    let inbound_drift = (history
        && known
            .inbound_enabled
            .is_some_and(|k| k != a.inbound_enabled))
    .then_some("inbound_differs");
    let mut entries_out = Vec::new();
    for e in &a.entries {
        let k = known.entries.get(&(e.kind, e.id));
        let drift = match k {
            _ if !history => None,
            None | Some(KnownEntry { present: false, .. }) => Some("missing_from_history"),
            Some(k)
                if a.policies_read
                    && (k.policies != e.policies
                        || k.default_permissions != e.default_permissions) =>
            {
                Some("policies_differ")
            }
            Some(_) => None,
        };
        let unchanged = k.is_some_and(|k| k.present) && drift.is_none();
        entries_out.push((
            unchanged,
            drift,
            entry_event(
                a,
                e.kind,
                e.id,
                &e.path,
                true,
                e.default_permissions,
                &e.policies,
                read_at_ms,
                drift,
            ),
        ));
    }
    let mut absent: Vec<_> = known
        .entries
        .iter()
        .filter(|(key, k)| k.present && !a.entries.iter().any(|e| (e.kind, e.id) == **key))
        .collect();
    absent.sort_by_key(|((kind, id), _)| (*kind as u8, *id));
    for ((kind, id), k) in absent {
        let drift = Some("removed_unseen");
        entries_out.push((
            false,
            drift,
            entry_event(a, *kind, *id, &k.path, false, None, &[], read_at_ms, drift),
        ));
    }
    let inbound_unchanged = known.inbound_enabled == Some(a.inbound_enabled);
    let all_unchanged = inbound_unchanged && entries_out.iter().all(|(u, _, _)| *u);
    if all_unchanged && !full {
        return out;
    }
    out.push(Message {
        key: a.project.id.to_string(),
        event: inbound_event(a, read_at_ms, inbound_drift),
        drift: inbound_drift,
    });
    for (_, drift, event) in entries_out {
        out.push(Message {
            key: a.project.id.to_string(),
            event,
            drift,
        });
    }
    out
}

fn base_event(
    a: &Allowlist,
    event_type: String,
    read_at_ms: i64,
    message: String,
    drift: Option<&str>,
) -> Value {
    let mut details = json!({
        "custom_message": message,
        "author_name": AUTHOR_NAME,
        "event_name": event_type,
    });
    if let Some(d) = drift {
        details["drift"] = json!(d);
    }
    json!({
        "id": format!("tokentrail-sync-{}-{read_at_ms}", a.project.id),
        "event_type": event_type,
        "author_id": 0,
        "author_name": AUTHOR_NAME,
        "entity_id": a.project.id,
        "entity_type": "Project",
        "entity_path": a.project.path,
        "created_at": rfc3339_ms(read_at_ms),
        "details": details,
    })
}

fn inbound_event(a: &Allowlist, read_at_ms: i64, drift: Option<&str>) -> Value {
    let state = if a.inbound_enabled {
        "enabled"
    } else {
        "disabled"
    };
    let mut ev = base_event(
        a,
        format!("tokentrail_allowlist_snapshot_inbound_{state}"),
        read_at_ms,
        format!(
            "Inbound job token allowlist of {} read as {state} from GitLab's API",
            a.project.path
        ),
        drift,
    );
    ev["target_type"] = json!("ProjectCiCdSetting");
    ev["target_details"] = json!(a.project.path);
    ev
}

#[allow(clippy::too_many_arguments)]
fn entry_event(
    a: &Allowlist,
    kind: MemberKind,
    id: i64,
    path: &str,
    present: bool,
    default_permissions: Option<bool>,
    policies: &[String],
    read_at_ms: i64,
    drift: Option<&str>,
) -> Value {
    let (noun, ty, list) = match kind {
        MemberKind::Project => ("project", "Project", "inbound list of allowed projects"),
        MemberKind::Group => ("group", "Group", "list of allowed groups"),
    };
    let suffix = if present { "" } else { "_absent" };
    // The message format of GitLab's own events (docs/gitlab-events.md §2.1), so
    // normalize::allowlist reads path, default permissions and policies the same way.
    let mut message = if present {
        format!(
            "{ty} {path} was on the {list} for {} (read from GitLab's API)",
            a.project.path
        )
    } else {
        format!(
            "{ty} {path} was no longer on the {list} for {} (read from GitLab's API)",
            a.project.path
        )
    };
    if let Some(d) = default_permissions {
        message.push_str(&format!(
            ", with default permissions: {d}, job token policies: {}",
            policies.join(", ")
        ));
    }
    let mut ev = base_event(
        a,
        format!("tokentrail_allowlist_snapshot_{noun}{suffix}"),
        read_at_ms,
        message,
        drift,
    );
    ev["id"] = json!(format!(
        "tokentrail-sync-{}-{noun}-{id}-{read_at_ms}",
        a.project.id
    ));
    ev["target_id"] = json!(id);
    ev["target_type"] = json!(ty);
    ev["target_details"] = json!(path);
    ev
}

/// `2026-05-19T15:48:00.123Z`
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::super::api::{Entry, ProjectRef};
    use super::*;

    fn list(inbound: bool, entries: &[(MemberKind, i64, &str)]) -> Allowlist {
        Allowlist {
            project: ProjectRef {
                id: 10,
                path: "pay/ledger".into(),
            },
            inbound_enabled: inbound,
            entries: entries
                .iter()
                .map(|(k, id, p)| Entry {
                    kind: *k,
                    id: *id,
                    path: (*p).into(),
                    default_permissions: None,
                    policies: vec![],
                })
                .collect(),
            policies_read: false,
        }
    }

    fn known(inbound: Option<bool>, present: &[(MemberKind, i64)]) -> Known {
        Known {
            entries: present
                .iter()
                .map(|(k, id)| {
                    (
                        (*k, *id),
                        KnownEntry {
                            present: true,
                            path: format!("p/{id}"),
                            default_permissions: None,
                            policies: vec![],
                        },
                    )
                })
                .collect(),
            inbound_enabled: inbound,
        }
    }

    fn types(m: &[Message]) -> Vec<(String, Option<&'static str>)> {
        m.iter()
            .map(|m| (m.event["event_type"].as_str().unwrap().to_owned(), m.drift))
            .collect()
    }

    #[test]
    fn a_project_without_history_is_a_baseline_without_drift() {
        let a = list(
            true,
            &[
                (MemberKind::Project, 20, "plat/app"),
                (MemberKind::Group, 30, "ops"),
            ],
        );
        let m = messages(&a, &Known::default(), 1_000, false);
        assert_eq!(
            types(&m),
            vec![
                ("tokentrail_allowlist_snapshot_inbound_enabled".into(), None),
                ("tokentrail_allowlist_snapshot_project".into(), None),
                ("tokentrail_allowlist_snapshot_group".into(), None),
            ]
        );
        assert_eq!(
            m[1].event["details"]["custom_message"],
            "Project plat/app was on the inbound list of allowed projects for pay/ledger (read from GitLab's API)"
        );
        assert_eq!(m[1].event["created_at"], "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn differences_from_history_are_drift_and_removals_become_absent_rows() {
        let a = list(false, &[(MemberKind::Project, 20, "plat/app")]);
        let k = known(Some(true), &[(MemberKind::Project, 21)]);
        let m = messages(&a, &k, 5, false);
        assert_eq!(
            types(&m),
            vec![
                (
                    "tokentrail_allowlist_snapshot_inbound_disabled".into(),
                    Some("inbound_differs")
                ),
                (
                    "tokentrail_allowlist_snapshot_project".into(),
                    Some("missing_from_history")
                ),
                (
                    "tokentrail_allowlist_snapshot_project_absent".into(),
                    Some("removed_unseen")
                ),
            ]
        );
        assert_eq!(m[2].event["target_id"], 21);
    }

    #[test]
    fn unchanged_projects_write_nothing_unless_full() {
        let a = list(true, &[(MemberKind::Project, 20, "plat/app")]);
        let k = known(Some(true), &[(MemberKind::Project, 20)]);
        assert!(messages(&a, &k, 5, false).is_empty());
        assert_eq!(messages(&a, &k, 5, true).len(), 2);
        assert!(messages(&a, &k, 5, true).iter().all(|m| m.drift.is_none()));
    }

    #[test]
    fn policies_travel_in_gitlabs_message_format() {
        let mut a = list(true, &[(MemberKind::Group, 30, "ops")]);
        a.policies_read = true;
        a.entries[0].default_permissions = Some(false);
        a.entries[0].policies = vec!["read_jobs".into(), "read_packages".into()];
        let msg = messages(&a, &Known::default(), 5, false)[1].event["details"]["custom_message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            crate::normalize::allowlist::parse_policies(&msg),
            vec!["read_jobs", "read_packages"]
        );
        assert_eq!(
            crate::normalize::allowlist::parse_default_permissions(&msg),
            Some(false)
        );
        assert_eq!(
            crate::normalize::allowlist::parse_member_path(&msg).as_deref(),
            Some("ops")
        );
    }
}
