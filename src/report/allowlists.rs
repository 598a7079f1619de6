//! Allowlists against consumers, per target: for each protected project (a current entry or
//! inbound enforcement enabled) its entries with how they were used, the consumers that were
//! not on the allowlist at the time, and the recommended minimal allowlist
//! (`query::recommend`); for every other target of cross-project uses the recommended
//! allowlist to start from. Each entry carries the fine-grained permissions its consumers'
//! actions need (`permissions`). Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{AllowlistRow, ReportData};
use super::permissions::{self, Permissions};
use crate::query::recommend::{Recommendation, is_under};

/// How an allowlist entry was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryUse {
    /// Used in the window.
    Used,
    /// Not used in the window, but used or changed within `unused_days`.
    NotInWindow,
    /// Neither used nor changed for `unused_days` days.
    Unused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub member_type: String,
    pub member_path: String,
    pub usage: EntryUse,
    pub uses: u64,
    /// Last use of the entry ever ("never" if none), from unused-allowlist-entries; else the
    /// last use in the window.
    pub last_used: String,
    pub permissions: Permissions,
}

/// A consumer whose uses were not covered by the allowlist at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub path: String,
    pub uses: u64,
    pub last_used: String,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommended {
    pub entry_type: String,
    pub path: String,
    pub consumers: usize,
    pub unobserved_admitted: usize,
    pub uses: u64,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedProject {
    pub project: String,
    pub inbound: String,
    pub entries: Vec<Entry>,
    pub missing: Vec<Missing>,
    pub recommended: Vec<Recommended>,
    pub over_limit: bool,
}

/// A target of cross-project uses without an allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unprotected {
    pub project: String,
    /// `not configured` or `disabled`.
    pub inbound: String,
    pub consumers: usize,
    pub uses: u64,
    pub recommended: Vec<Recommended>,
    pub over_limit: bool,
}

/// The protected projects, and the other targets with a recommendation.
pub fn build(data: &ReportData) -> (Vec<ProtectedProject>, Vec<Unprotected>) {
    let mut actions: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for a in &data.actions {
        actions
            .entry((a.target.as_str(), a.source.as_str()))
            .or_default()
            .insert(a.action.as_str());
    }
    // The actions of every consumer a member admits (a group: the projects under it).
    let admitted = |target: &str, member_type: &str, member: &str| -> Permissions {
        permissions::for_actions(
            actions
                .range((target, "")..)
                .take_while(|((t, _), _)| *t == target)
                .filter(|((_, s), _)| {
                    *s == member || (member_type == "Group" && is_under(s, member))
                })
                .flat_map(|(_, a)| a.iter().copied()),
        )
    };
    let unused: BTreeMap<(&str, &str, &str), &str> = data
        .unused_entries
        .iter()
        .map(|u| {
            let key = (
                u.project.as_str(),
                u.member_type.as_str(),
                u.member_path.as_str(),
            );
            (key, u.last_used.as_str())
        })
        .collect();
    let recs: BTreeMap<&str, _> = data
        .recommendations
        .iter()
        .map(|r| (r.project.as_str(), r))
        .collect();
    let mut by_project: BTreeMap<&str, Vec<&AllowlistRow>> = BTreeMap::new();
    for r in &data.allowlist {
        by_project.entry(&r.project).or_default().push(r);
    }
    let recommended = |project: &str, rec: &Recommendation| -> Vec<Recommended> {
        rec.entries
            .iter()
            .map(|e| Recommended {
                entry_type: e.kind.as_str().to_string(),
                path: e.path.clone(),
                consumers: e.consumers,
                unobserved_admitted: e.unobserved,
                uses: e.uses,
                permissions: admitted(project, e.kind.as_str(), &e.path),
            })
            .collect()
    };
    let mut out = Vec::new();
    let mut protected = BTreeSet::new();
    for (project, rows) in &by_project {
        let project = *project;
        let inbound = rows[0].inbound.clone();
        let listed: Vec<_> = rows
            .iter()
            .filter(|r| r.status.starts_with("allowlisted"))
            .collect();
        if listed.is_empty() && inbound != "enabled" {
            continue;
        }
        protected.insert(project);
        let consumers: Vec<_> = rows
            .iter()
            .filter(|r| r.status.starts_with("used"))
            .collect();
        let entries = listed
            .iter()
            .map(|r| {
                let (uses, last) = if r.member_type == "Group" {
                    let under = consumers
                        .iter()
                        // Consumers the group admitted at the time of their last use.
                        .filter(|c| {
                            c.status == "used, covered by group"
                                && is_under(&c.member_path, &r.member_path)
                        });
                    let uses = under.clone().map(|c| c.uses).sum();
                    (
                        uses,
                        under.map(|c| c.last_used.clone()).max().unwrap_or_default(),
                    )
                } else {
                    (r.uses, r.last_used.clone())
                };
                let idle = unused.get(&(project, r.member_type.as_str(), r.member_path.as_str()));
                Entry {
                    member_type: r.member_type.clone(),
                    member_path: r.member_path.clone(),
                    usage: match idle {
                        Some(_) => EntryUse::Unused,
                        None if uses > 0 => EntryUse::Used,
                        None => EntryUse::NotInWindow,
                    },
                    uses,
                    last_used: idle.map(|l| l.to_string()).unwrap_or(last),
                    permissions: admitted(project, &r.member_type, &r.member_path),
                }
            })
            .collect();
        let missing = consumers
            .iter()
            .filter(|r| r.status == "used, NOT allowlisted")
            .map(|r| Missing {
                path: r.member_path.clone(),
                uses: r.uses,
                last_used: r.last_used.clone(),
                permissions: admitted(project, "Project", &r.member_path),
            })
            .collect();
        let rec = recs.get(project);
        out.push(ProtectedProject {
            project: project.to_string(),
            inbound,
            entries,
            missing,
            recommended: rec.map(|r| recommended(project, r)).unwrap_or_default(),
            over_limit: rec.is_some_and(|r| r.over_limit),
        });
    }
    let unprotected = data
        .recommendations
        .iter()
        .filter(|r| !protected.contains(r.project.as_str()))
        .map(|r| Unprotected {
            project: r.project.clone(),
            inbound: by_project
                .get(r.project.as_str())
                .map(|rows| rows[0].inbound.clone())
                .unwrap_or_else(|| "not configured".into()),
            consumers: r.entries.iter().map(|e| e.consumers).sum(),
            uses: r.entries.iter().map(|e| e.uses).sum(),
            recommended: recommended(&r.project, r),
            over_limit: r.over_limit,
        })
        .collect();
    (out, unprotected)
}
