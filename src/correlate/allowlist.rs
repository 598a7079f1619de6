//! Inbound job-token allowlists over time, rebuilt from `secure_ci_job_token_*` audit events.
//!
//! Orientation: in an allowlist event the *entity* is the protected project (the future
//! token-use TARGET) and the *member* is the admitted project or group (the future token-use
//! SOURCE). [`AllowlistState::is_allowlisted`] takes the token-use naming.
//!
//! **As of the use.** Each member keeps its history ([`history`]), so a use is judged by the
//! allowlist in force at the use's own event time, whatever order the change and the use are
//! read or released in: a removal read a second after an earlier use does not make that use
//! `Some(false)`, an addition read before an earlier use does not admit it. A change counts as
//! long as it is read before the use's record is released, i.e. within the correlator's
//! lateness and hold (a change later than that is a late event, like any other). Changes
//! older than the horizon ([`AllowlistState::settle`]: the watermark less the longest a record
//! is held) are folded into one settled version per member, so memory is one version per
//! (protected project, member) ever named plus the changes of the last horizon. A lookup older
//! than the horizon (a late use) gets the oldest state kept.
//!
//! **Members are ids.** GitLab's allowlist stores project and group ids; a path is an attribute
//! learned only from changes that carry a real one (the `Project <path> was …` / `Group <path>
//! was …` messages). `secure_ci_job_token_policies_updated` names a group by its display name,
//! so its `member_path` is never used (rows stored by earlier versions may still hold the name).
//! A group admits a source project if the project's path *at the use* (from the use's own
//! event: projects move between groups) lies under the group's full path as of the use.
//!
//! Meaning of the answer, for a token use `source -> target` at time `t`:
//! - `Some(true)`: source == target (GitLab always admits a project's own jobs), or the source
//!   is a project entry of the target at `t`, or its path lies under a group entry's path.
//! - `Some(false)`: the target had allowlist events at or before `t` and the source is not
//!   admitted by the entries we know. This holds whether inbound is enabled or disabled: with
//!   inbound *disabled* GitLab permits the access, but the source is still not *allowlisted*
//!   (`inbound_enabled` in [`AllowlistState::snapshot`] tells the two apart).
//! - `None`: no allowlist event for the target at or before `t`.
//!
//! Only changes are streamed, so the state is only complete if the caller replays the stored
//! history of `secure_ci_job_token_*` events into [`AllowlistState::apply`] at start-up;
//! entries added before the replayed history begins are unknown and yield `Some(false)`.

mod history;

use std::collections::HashMap;

use serde::Serialize;

use crate::model::{AllowlistChange, AllowlistChangeKind};
use history::{MemberHistory, Version};

/// One admitted project or group, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowlistEntry {
    pub id: Option<i64>,
    pub path: Option<String>,
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
    /// Time of the last change that touched this entry.
    pub updated_at_ms: i64,
}

/// The current inbound allowlist of one protected project.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Project,
    Group,
}

/// How a member is identified: its id, or (only for changes that carry no id) its path,
/// lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemberId {
    Id(i64),
    Path(String),
}

#[derive(Debug, Clone)]
struct Member {
    kind: Kind,
    id: MemberId,
    history: MemberHistory,
}

#[derive(Debug, Clone)]
struct Target {
    project_id: Option<i64>,
    project_path: String,
    /// Time of the first change seen: before it the target's allowlist is unknown.
    first_change_ms: i64,
    updated_at_ms: i64,
    /// Latest inbound enable/disable by event time.
    inbound: Option<(i64, bool)>,
    members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub struct AllowlistState {
    targets: Vec<Target>,
    by_id: HashMap<i64, usize>,
    by_path: HashMap<String, usize>,
    /// Newest full path (by event time) of every group id any change named with one, for group
    /// entries whose own changes carry none (one added before the stored history began).
    group_paths: HashMap<i64, (i64, String)>,
    /// Changes older than this are settled (see [`AllowlistState::settle`]).
    settled_before: i64,
    /// Oldest unsettled change over all members, so `settle` only sweeps when it has work.
    oldest_recent_ms: i64,
}

impl Default for AllowlistState {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            by_id: HashMap::new(),
            by_path: HashMap::new(),
            group_paths: HashMap::new(),
            settled_before: i64::MIN,
            oldest_recent_ms: i64::MAX,
        }
    }
}

impl AllowlistState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one change made at `at_ms`. Returns false (and changes nothing) when the change
    /// names neither the protected project nor, for entry changes, the member.
    pub fn apply(&mut self, change: &AllowlistChange, at_ms: i64) -> bool {
        let member = member_of(change);
        if !change.change.is_inbound() && member.is_none() {
            return false;
        }
        let Some(idx) =
            self.protected_index(change.protected_project_id, &change.protected_project_path)
        else {
            return false;
        };
        let t = &mut self.targets[idx];
        t.first_change_ms = t.first_change_ms.min(at_ms);
        t.updated_at_ms = t.updated_at_ms.max(at_ms);
        let Some((kind, id, path)) = member else {
            let enabled = change.change.enables_inbound();
            if t.inbound.is_none_or(|(at, _)| at <= at_ms) {
                t.inbound = Some((at_ms, enabled));
            }
            return true;
        };
        if let (Kind::Group, MemberId::Id(gid), Some(p)) = (kind, &id, &path)
            && self.group_paths.get(gid).is_none_or(|(at, _)| *at <= at_ms)
        {
            self.group_paths.insert(*gid, (at_ms, p.clone()));
        }
        let version = Version {
            at_ms,
            present: !change.change.removes(),
            path,
            default_permissions: change.default_permissions,
            policies: change.policies.clone(),
        };
        // A change without an id (rare) names the member by path: it is the member known
        // under that path, if any.
        let same = |m: &Member| {
            m.kind == kind
                && match &id {
                    MemberId::Path(p) => {
                        m.id == id
                            || m.history
                                .path_at(i64::MAX)
                                .is_some_and(|q| q.eq_ignore_ascii_case(p))
                    }
                    MemberId::Id(_) => m.id == id,
                }
        };
        let m = match t.members.iter().position(same) {
            Some(i) => &mut t.members[i],
            None => {
                t.members.push(Member {
                    kind,
                    id,
                    history: MemberHistory::default(),
                });
                t.members.last_mut().expect("just pushed")
            }
        };
        m.history.record(version, self.settled_before);
        if at_ms >= self.settled_before {
            self.oldest_recent_ms = self.oldest_recent_ms.min(at_ms);
        }
        true
    }

    /// Whether `source` was on `target`'s allowlist at `at_ms` (see the module documentation).
    pub fn is_allowlisted(
        &self,
        source_id: Option<i64>,
        source_path: &str,
        target_id: Option<i64>,
        target_path: &str,
        at_ms: i64,
    ) -> Option<bool> {
        if same_project(source_id, source_path, target_id, target_path) {
            return Some(true);
        }
        let t = self.find(target_id, target_path)?;
        if t.first_change_ms > at_ms {
            return None;
        }
        let admitted = t.members.iter().any(|m| {
            m.history.at(at_ms).is_some_and(|v| v.present)
                && self.admits(m, at_ms, source_id, source_path)
        });
        Some(admitted)
    }

    /// Folds every change older than `before` into its member's settled version. The caller
    /// passes the event time below which no record will be looked up any more.
    pub fn settle(&mut self, before: i64) {
        if before <= self.settled_before {
            return;
        }
        self.settled_before = before;
        if self.oldest_recent_ms >= before {
            return;
        }
        let mut oldest = i64::MAX;
        for m in self.targets.iter_mut().flat_map(|t| t.members.iter_mut()) {
            m.history.settle(before);
            oldest = oldest.min(m.history.oldest_recent_ms().unwrap_or(i64::MAX));
        }
        self.oldest_recent_ms = oldest;
    }

    /// Current state of every protected project we know of, sorted by path then id.
    pub fn snapshot(&self) -> Vec<ProtectedProject> {
        let mut out: Vec<ProtectedProject> = self.targets.iter().map(|t| self.current(t)).collect();
        out.sort_by(|a, b| {
            (a.project_path.as_str(), a.project_id).cmp(&(b.project_path.as_str(), b.project_id))
        });
        out
    }

    /// Protected projects known.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Member versions held (settled and recent), the state's memory in changes.
    pub fn versions(&self) -> usize {
        let members = self.targets.iter().flat_map(|t| t.members.iter());
        members.map(|m| m.history.versions()).sum()
    }

    /// Whether member `m` (present at `at_ms`) admits the source.
    fn admits(&self, m: &Member, at_ms: i64, source_id: Option<i64>, source_path: &str) -> bool {
        match (m.kind, &m.id, source_id) {
            (Kind::Project, MemberId::Id(a), Some(b)) => *a == b,
            (Kind::Project, _, _) => self
                .member_path(m, at_ms)
                .is_some_and(|p| p.eq_ignore_ascii_case(source_path)),
            (Kind::Group, _, _) => self
                .member_path(m, at_ms)
                .is_some_and(|g| under_group(source_path, g)),
        }
    }

    fn member_path<'a>(&'a self, m: &'a Member, at_ms: i64) -> Option<&'a str> {
        m.history.path_at(at_ms).or(match (m.kind, &m.id) {
            (Kind::Group, MemberId::Id(id)) => self.group_paths.get(id).map(|(_, p)| p.as_str()),
            (_, MemberId::Path(p)) => Some(p.as_str()),
            _ => None,
        })
    }

    fn current(&self, t: &Target) -> ProtectedProject {
        let entries = |kind: Kind| -> Vec<AllowlistEntry> {
            t.members
                .iter()
                .filter(|m| m.kind == kind)
                .filter_map(|m| {
                    let v = m.history.current().filter(|v| v.present)?;
                    Some(AllowlistEntry {
                        id: match m.id {
                            MemberId::Id(id) => Some(id),
                            MemberId::Path(_) => None,
                        },
                        path: self.member_path(m, i64::MAX).map(str::to_string),
                        default_permissions: v.default_permissions,
                        policies: v.policies.clone(),
                        updated_at_ms: v.at_ms,
                    })
                })
                .collect()
        };
        ProtectedProject {
            project_id: t.project_id,
            project_path: t.project_path.clone(),
            inbound_enabled: t.inbound.map(|(_, on)| on),
            projects: entries(Kind::Project),
            groups: entries(Kind::Group),
            updated_at_ms: t.updated_at_ms,
        }
    }

    fn find(&self, id: Option<i64>, path: &str) -> Option<&Target> {
        let idx = id
            .and_then(|id| self.by_id.get(&id))
            .or_else(|| self.by_path.get(&path.to_ascii_lowercase()))?;
        Some(&self.targets[*idx])
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
                self.targets.push(Target {
                    project_id: id,
                    project_path: path.to_string(),
                    first_change_ms: i64::MAX,
                    updated_at_ms: i64::MIN,
                    inbound: None,
                    members: Vec::new(),
                });
                self.targets.len() - 1
            }
        };
        let t = &mut self.targets[idx];
        if let Some(id) = id {
            t.project_id.get_or_insert(id);
            self.by_id.insert(id, idx);
        }
        if !key.is_empty() {
            let old = t.project_path.to_ascii_lowercase();
            if old != key && self.by_path.get(&old) == Some(&idx) {
                self.by_path.remove(&old);
            }
            t.project_path = path.to_string();
            self.by_path.insert(key, idx);
        }
        Some(idx)
    }
}

/// The member a change names: kind, identity and the full path it carries, if any. `None`
/// for inbound enable/disable, and for an entry change naming no member.
fn member_of(change: &AllowlistChange) -> Option<(Kind, MemberId, Option<String>)> {
    use AllowlistChangeKind as K;
    let kind = match change.change {
        K::InboundEnabled
        | K::InboundDisabled
        | K::SnapshotInboundEnabled
        | K::SnapshotInboundDisabled => return None,
        K::ProjectAdded | K::ProjectRemoved | K::SnapshotProject | K::SnapshotProjectAbsent => {
            Kind::Project
        }
        K::GroupAdded | K::GroupRemoved | K::SnapshotGroup | K::SnapshotGroupAbsent => Kind::Group,
        K::PoliciesUpdated => match change.member_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("group") => Kind::Group,
            _ => Kind::Project,
        },
    };
    // A policies update never carries a full path (see the module documentation).
    let path = match change.change {
        K::PoliciesUpdated => None,
        _ => change.member_path.clone().filter(|p| !p.is_empty()),
    };
    let id = match (change.member_id, &path) {
        (Some(id), _) => MemberId::Id(id),
        (None, Some(p)) => MemberId::Path(p.to_ascii_lowercase()),
        (None, None) => return None,
    };
    Some((kind, id, path))
}

/// Same rule as the token-use `same_project` flag: ids when both known, else non-empty paths.
pub fn same_project(a_id: Option<i64>, a_path: &str, b_id: Option<i64>, b_path: &str) -> bool {
    match (a_id, b_id) {
        (Some(a), Some(b)) => a == b,
        _ => !a_path.is_empty() && a_path.eq_ignore_ascii_case(b_path),
    }
}

/// `project_path` lies in `group_path` or one of its subgroups (GitLab paths ignore case).
fn under_group(project_path: &str, group_path: &str) -> bool {
    let g = group_path.trim_end_matches('/');
    !g.is_empty()
        && project_path.len() > g.len()
        && project_path.as_bytes()[g.len()] == b'/'
        && project_path.as_bytes()[..g.len()].eq_ignore_ascii_case(g.as_bytes())
}
