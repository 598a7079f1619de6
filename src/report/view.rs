//! The report as rendered: [`build`] turns [`ReportData`] into [`Report`] (headline figures,
//! the graph, one section per protected project), filtered to the `--group`. Pure; the HTML,
//! Markdown and JSON formats all render this value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::graph::{self, EdgeStatus, Graph};
use super::model::{AlertItem, Change, OutsideUse, ReportData, Scope, in_group};
use super::permissions::{self, Permissions};
use crate::query::recommend::is_under;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Headline {
    /// Every token use in the window (same-project and authentication-only ones included).
    pub token_uses: u64,
    /// (source, target) pairs of different projects with at least one use.
    pub cross_project_edges: u64,
    /// Uses whose source was not on the target's allowlist at the time.
    pub uses_outside_allowlist: u64,
    /// Targets of cross-project uses with no current allowlist entry and inbound
    /// enforcement not enabled.
    pub targets_without_allowlist: u64,
    pub open_alerts: u64,
}

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scope: Scope,
    /// The GitLab instance links point to (empty: no links).
    pub gitlab_url: String,
    pub headline: Headline,
    pub graph: Graph,
    pub projects: Vec<ProtectedProject>,
    pub outside_uses: Vec<OutsideUse>,
    pub changes: Vec<Change>,
    pub alerts: Vec<AlertItem>,
}

/// Builds the report, graph aggregated above `aggregate_above` projects.
pub fn build(data: &ReportData, gitlab_url: &str, aggregate_above: usize) -> Report {
    let group = data.scope.group.as_str();
    let pair_in = |s: &str, t: &str| in_group(s, group) || in_group(t, group);
    let not_allowed: BTreeMap<(&str, &str), u64> = data
        .outside
        .iter()
        .map(|o| ((o.source.as_str(), o.target.as_str()), o.uses))
        .collect();
    let status_of: BTreeMap<(&str, &str), &str> = data
        .allowlist
        .iter()
        .filter(|r| r.member_type == "Project")
        .map(|r| {
            (
                (r.member_path.as_str(), r.project.as_str()),
                r.status.as_str(),
            )
        })
        .collect();
    let edges: Vec<graph::Edge> = data
        .pairs
        .iter()
        .filter(|p| is_cross_project(&p.source, &p.target) && pair_in(&p.source, &p.target))
        .map(|p| {
            let key = (p.source.as_str(), p.target.as_str());
            let outside = not_allowed.get(&key).copied().unwrap_or(0);
            let status = match status_of.get(&key) {
                _ if outside > 0 => EdgeStatus::NotAllowed,
                Some(&"used, NOT allowlisted") => EdgeStatus::NotAllowed,
                None | Some(&"used, no allowlist history") => EdgeStatus::Unknown,
                Some(_) => EdgeStatus::Allowed,
            };
            graph::Edge {
                source: p.source.clone(),
                target: p.target.clone(),
                uses: p.uses,
                not_allowed_uses: outside,
                status,
            }
        })
        .collect();
    let projects = protected_projects(data);
    let protected: BTreeSet<&str> = projects.iter().map(|p| p.project.as_str()).collect();
    let targets: BTreeSet<&str> = edges.iter().map(|e| e.target.as_str()).collect();
    let headline = Headline {
        token_uses: data
            .pairs
            .iter()
            .filter(|p| pair_in(&p.source, &p.target))
            .map(|p| p.uses)
            .sum(),
        cross_project_edges: edges.len() as u64,
        uses_outside_allowlist: edges.iter().map(|e| e.not_allowed_uses).sum(),
        targets_without_allowlist: targets.difference(&protected).count() as u64,
        open_alerts: data.open_alerts,
    };
    Report {
        scope: data.scope.clone(),
        gitlab_url: gitlab_url.to_string(),
        headline,
        graph: graph::build(&edges, aggregate_above),
        projects: projects
            .into_iter()
            .filter(|p| in_group(&p.project, group))
            .collect(),
        outside_uses: data
            .outside_uses
            .iter()
            .filter(|u| pair_in(&u.source, &u.target))
            .cloned()
            .collect(),
        changes: data
            .changes
            .iter()
            .filter(|c| in_group(&c.scope, group))
            .cloned()
            .collect(),
        alerts: data
            .alerts
            .iter()
            .filter(|a| pair_in(&a.source, &a.target))
            .cloned()
            .collect(),
    }
}

fn is_cross_project(source: &str, target: &str) -> bool {
    !source.is_empty() && !target.is_empty() && source != target
}

/// Projects with a current allowlist entry or inbound enforcement enabled.
fn protected_projects(data: &ReportData) -> Vec<ProtectedProject> {
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
    let mut by_project: BTreeMap<&str, Vec<&super::model::AllowlistRow>> = BTreeMap::new();
    for r in &data.allowlist {
        by_project.entry(&r.project).or_default().push(r);
    }
    let mut out = Vec::new();
    for (project, rows) in by_project {
        let inbound = rows[0].inbound.clone();
        let listed: Vec<_> = rows
            .iter()
            .filter(|r| r.status.starts_with("allowlisted"))
            .collect();
        if listed.is_empty() && inbound != "enabled" {
            continue;
        }
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
                        .filter(|c| is_under(&c.member_path, &r.member_path));
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
            recommended: rec
                .map(|r| {
                    r.entries
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
                })
                .unwrap_or_default(),
            over_limit: rec.is_some_and(|r| r.over_limit),
        });
    }
    out
}
