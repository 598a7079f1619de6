//! Current inbound job-token allowlists, rebuilt from `secure_ci_job_token_*` audit events.
//!
//! Orientation (reference §2.1): in an allowlist event the *entity* is the protected project
//! (the future token-use TARGET) and the *member* is the admitted project or group (the future
//! token-use SOURCE). [`AllowlistState::is_allowlisted`] takes the token-use naming.
//!
//! Meaning of the answer, for a token use `source -> target`:
//! - `Some(true)`: source == target (GitLab always lists a project on its own allowlist and
//!   never restricts same-project use), or the source is an explicit project entry of the
//!   target, or the source path lies under an allowed group (`group/` prefix, subgroups
//!   included, as GitLab admits all projects of the group and its subgroups).
//! - `Some(false)`: we have seen at least one allowlist event for the target and the source is
//!   not admitted by the entries we know. This holds whether inbound is enabled or disabled:
//!   with inbound *disabled* GitLab permits the access, but the source is still not
//!   *allowlisted* (`inbound_enabled` in [`AllowlistState::snapshot`] tells the two apart).
//! - `None`: no allowlist event was ever seen for the target.
//!
//! Only changes are streamed, so the state is only complete if the caller replays the stored
//! history of `secure_ci_job_token_*` events into [`AllowlistState::apply`] at start-up;
//! entries added before the replayed history begins are unknown and yield `Some(false)`.
//! The history itself is not kept here (the store has it); only current state is. The state is
//! not capped: GitLab limits allowlists to a few hundred entries per project.

use std::collections::HashMap;

use serde::Serialize;

use crate::model::{AllowlistChange, AllowlistChangeKind};

/// One admitted project or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowlistEntry {
    pub id: Option<i64>,
    pub path: Option<String>,
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
    /// Time of the last change that touched this entry.
    pub updated_at_ms: i64,
}

/// The known inbound allowlist of one protected project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedProject {
    pub project_id: Option<i64>,
    pub project_path: String,
    /// `None` until an inbound enable/disable event is seen.
    pub inbound_enabled: Option<bool>,
    pub projects: Vec<AllowlistEntry>,
    pub groups: Vec<AllowlistEntry>,
    pub updated_at_ms: i64,
}

#[derive(Debug, Default, Clone)]
pub struct AllowlistState {
    projects: Vec<ProtectedProject>,
    by_id: HashMap<i64, usize>,
    by_path: HashMap<String, usize>,
}

impl AllowlistState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one change. Returns false (and changes nothing) when the change names neither
    /// the protected project nor, for entry changes, the member.
    pub fn apply(&mut self, change: &AllowlistChange, at_ms: i64) -> bool {
        use AllowlistChangeKind as K;
        let member_known = change.member_id.is_some() || non_empty(&change.member_path);
        let entry_change = !matches!(change.change, K::InboundEnabled | K::InboundDisabled);
        if entry_change && !member_known {
            return false;
        }
        let Some(idx) =
            self.protected_index(change.protected_project_id, &change.protected_project_path)
        else {
            return false;
        };
        let p = &mut self.projects[idx];
        p.updated_at_ms = p.updated_at_ms.max(at_ms);
        match change.change {
            K::InboundEnabled => p.inbound_enabled = Some(true),
            K::InboundDisabled => p.inbound_enabled = Some(false),
            K::ProjectAdded => upsert(&mut p.projects, change, at_ms),
            K::GroupAdded => upsert(&mut p.groups, change, at_ms),
            K::ProjectRemoved => remove(&mut p.projects, change),
            K::GroupRemoved => remove(&mut p.groups, change),
            // A policy update implies the entry exists: upsert so a missed `*_added` heals.
            K::PoliciesUpdated => {
                let is_group = change
                    .member_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("group"));
                upsert(
                    if is_group {
                        &mut p.groups
                    } else {
                        &mut p.projects
                    },
                    change,
                    at_ms,
                )
            }
        }
        true
    }

    /// See the module documentation for the exact meaning of the answer.
    pub fn is_allowlisted(
        &self,
        source_id: Option<i64>,
        source_path: &str,
        target_id: Option<i64>,
        target_path: &str,
    ) -> Option<bool> {
        if same_project(source_id, source_path, target_id, target_path) {
            return Some(true);
        }
        let p = self.find(target_id, target_path)?;
        let by_project = p
            .projects
            .iter()
            .any(|e| entry_matches(e, source_id, Some(source_path)));
        let by_group = !source_path.is_empty()
            && p.groups.iter().any(|g| {
                g.path
                    .as_deref()
                    .is_some_and(|gp| !gp.is_empty() && under_group(source_path, gp))
            });
        Some(by_project || by_group)
    }

    /// Current state of every protected project we know of, sorted by path then id.
    pub fn snapshot(&self) -> Vec<ProtectedProject> {
        let mut out = self.projects.clone();
        out.sort_by(|a, b| {
            (a.project_path.as_str(), a.project_id).cmp(&(b.project_path.as_str(), b.project_id))
        });
        out
    }

    pub fn len(&self) -> usize {
        self.projects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.projects.is_empty()
    }

    fn find(&self, id: Option<i64>, path: &str) -> Option<&ProtectedProject> {
        let idx = id
            .and_then(|id| self.by_id.get(&id))
            .or_else(|| self.by_path.get(&path.to_ascii_lowercase()))?;
        Some(&self.projects[*idx])
    }

    /// Finds or creates the protected project, keeping both indexes current (a change that
    /// carries a new path for a known id is a rename: the old path stops resolving).
    fn protected_index(&mut self, id: Option<i64>, path: &str) -> Option<usize> {
        let key = path.to_ascii_lowercase();
        let found = id.and_then(|id| self.by_id.get(&id).copied()).or_else(|| {
            (!key.is_empty())
                .then(|| self.by_path.get(&key).copied())
                .flatten()
        });
        let idx = match found {
            Some(idx) => idx,
            None if id.is_none() && key.is_empty() => return None,
            None => {
                self.projects.push(ProtectedProject {
                    project_id: id,
                    project_path: path.to_string(),
                    inbound_enabled: None,
                    projects: Vec::new(),
                    groups: Vec::new(),
                    updated_at_ms: i64::MIN,
                });
                self.projects.len() - 1
            }
        };
        let p = &mut self.projects[idx];
        if let Some(id) = id {
            p.project_id.get_or_insert(id);
            self.by_id.insert(id, idx);
        }
        if !key.is_empty() {
            let old = p.project_path.to_ascii_lowercase();
            if old != key && self.by_path.get(&old) == Some(&idx) {
                self.by_path.remove(&old);
            }
            p.project_path = path.to_string();
            self.by_path.insert(key, idx);
        }
        Some(idx)
    }
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

fn upsert(entries: &mut Vec<AllowlistEntry>, change: &AllowlistChange, at_ms: i64) {
    let path = change.member_path.clone().filter(|p| !p.is_empty());
    if let Some(e) = entries
        .iter_mut()
        .find(|e| entry_matches(e, change.member_id, path.as_deref()))
    {
        e.id = e.id.or(change.member_id);
        // `secure_ci_job_token_policies_updated` names the member by its short name (its
        // target_details), not its full path: never let a bare name replace a full path,
        // or every project of an admitted subgroup would stop matching.
        let keeps_full_path = e.path.as_deref().is_some_and(|old| old.contains('/'))
            && path.as_deref().is_some_and(|new| !new.contains('/'));
        if path.is_some() && !keeps_full_path {
            e.path = path;
        }
        e.default_permissions = change.default_permissions.or(e.default_permissions);
        e.policies.clone_from(&change.policies);
        e.updated_at_ms = at_ms;
        return;
    }
    entries.push(AllowlistEntry {
        id: change.member_id,
        path,
        default_permissions: change.default_permissions,
        policies: change.policies.clone(),
        updated_at_ms: at_ms,
    });
}

fn remove(entries: &mut Vec<AllowlistEntry>, change: &AllowlistChange) {
    let path = change.member_path.as_deref().filter(|p| !p.is_empty());
    entries.retain(|e| !entry_matches(e, change.member_id, path));
}

/// Ids decide when both sides have one; otherwise paths (GitLab paths are case-insensitive).
fn entry_matches(e: &AllowlistEntry, id: Option<i64>, path: Option<&str>) -> bool {
    match (e.id, id) {
        (Some(a), Some(b)) => a == b,
        _ => match (e.path.as_deref(), path) {
            (Some(a), Some(b)) => !a.is_empty() && a.eq_ignore_ascii_case(b),
            _ => false,
        },
    }
}

/// Same rule as the token-use `same_project` flag: ids when both known, else non-empty paths.
pub fn same_project(a_id: Option<i64>, a_path: &str, b_id: Option<i64>, b_path: &str) -> bool {
    match (a_id, b_id) {
        (Some(a), Some(b)) => a == b,
        _ => !a_path.is_empty() && a_path.eq_ignore_ascii_case(b_path),
    }
}

fn under_group(project_path: &str, group_path: &str) -> bool {
    let g = group_path.trim_end_matches('/');
    project_path.len() > g.len()
        && project_path.as_bytes()[g.len()] == b'/'
        && project_path.as_bytes()[..g.len()].eq_ignore_ascii_case(g.as_bytes())
}
