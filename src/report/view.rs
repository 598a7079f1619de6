//! The report as rendered: [`build`] turns [`ReportData`] into [`Report`] (headline figures,
//! the graph, one section per protected project), filtered to the `--group`. Pure; the HTML,
//! Markdown and JSON formats all render this value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use super::allowlists::{Entry, EntryUse, Missing, ProtectedProject, Recommended, Unprotected};
use super::graph::{self, EdgeStatus, Graph};
use super::model::{Change, OutsideUse, ReportData, Scope, in_group, serialize_alerts};
use crate::model::Alert;

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scope: Scope,
    /// The GitLab instance links point to (empty: no links).
    pub gitlab_url: String,
    pub headline: Headline,
    pub graph: Graph,
    pub projects: Vec<ProtectedProject>,
    /// Targets of cross-project uses without an allowlist, with the allowlist to start from.
    pub unprotected: Vec<Unprotected>,
    pub outside_uses: Vec<OutsideUse>,
    pub changes: Vec<Change>,
    #[serde(serialize_with = "serialize_alerts")]
    pub alerts: Vec<Alert>,
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
    let (projects, unprotected) = super::allowlists::build(data);
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
        unprotected: unprotected
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
            .filter(|a| pair_in(&a.source_project_path, &a.target_project_path))
            .cloned()
            .collect(),
    }
}

fn is_cross_project(source: &str, target: &str) -> bool {
    !source.is_empty() && !target.is_empty() && source != target
}
