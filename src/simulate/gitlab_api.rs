//! The simulated instance's pre-existing allowlists as a GitLab API double's files, for
//! `deploy/local/gitlab-api-double` (the demo): one JSON file per REST path that
//! `tokentrail gitlab sync --instance` reads, in the documented shapes
//! (https://docs.gitlab.com/api/project_job_token_scopes/, https://docs.gitlab.com/api/projects/).
//! The double lists only the protected projects, as GitLab would for a token that maintains
//! exactly those. Project paths are those at `start_ms` (transfers happen later).

use std::path::Path;

use serde_json::json;

/// One project's allowlist before the simulation starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preexisting {
    pub project: (i64, String),
    pub members: Vec<(i64, String)>,
}

/// Writes `<dir>/api/v4/projects.json` and, per project,
/// `<dir>/api/v4/projects/<id>/job_token_scope{,/allowlist,/groups_allowlist}.json`.
pub fn write_api_double(dir: &Path, lists: &[Preexisting]) -> std::io::Result<()> {
    let api = dir.join("api/v4");
    std::fs::create_dir_all(api.join("projects"))?;
    let project = |(id, path): &(i64, String)| json!({"id": id, "path_with_namespace": path, "name": path.rsplit('/').next()});
    let listing: Vec<_> = lists.iter().map(|l| project(&l.project)).collect();
    std::fs::write(
        api.join("projects.json"),
        serde_json::to_vec_pretty(&listing)?,
    )?;
    for l in lists {
        let scope = api.join(format!("projects/{}/job_token_scope", l.project.0));
        std::fs::create_dir_all(&scope)?;
        std::fs::write(
            api.join(format!("projects/{}/job_token_scope.json", l.project.0)),
            json!({"inbound_enabled": true, "outbound_enabled": false}).to_string(),
        )?;
        let members: Vec<_> = l.members.iter().map(project).collect();
        std::fs::write(
            scope.join("allowlist.json"),
            serde_json::to_vec_pretty(&members)?,
        )?;
        std::fs::write(scope.join("groups_allowlist.json"), "[]")?;
    }
    Ok(())
}

/// GitLab's job-token authentication log of every target, as the GraphQL answer the double
/// serves for `Project.ciJobTokenAuthLogs`: `<dir>/graphql/auth_logs/<target path>.json`,
/// one node per origin project with its last authorization (every use the simulation made,
/// whether or not its events were streamed).
pub fn write_auth_logs(dir: &Path, truth: &super::GroundTruth) -> std::io::Result<()> {
    use std::collections::BTreeMap;
    let mut last: BTreeMap<&str, BTreeMap<(i64, &str), i64>> = BTreeMap::new();
    for u in truth.token_uses.iter().filter(|u| !u.same_project) {
        let Some(origin) = u.source_project_id else {
            continue;
        };
        let at = last
            .entry(&u.target_project_path)
            .or_default()
            .entry((origin, &u.source_project_path))
            .or_insert(i64::MIN);
        *at = (*at).max(u.event_time_ms);
    }
    for (target, origins) in last {
        let nodes: Vec<_> = origins
            .into_iter()
            .map(|((id, path), at)| {
                json!({
                    "lastAuthorizedAt": chrono::DateTime::from_timestamp_millis(at).unwrap_or_default().to_rfc3339(),
                    "originProject": {"id": format!("gid://gitlab/Project/{id}"), "fullPath": path},
                })
            })
            .collect();
        let file = dir.join("graphql/auth_logs").join(format!("{target}.json"));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let answer = json!({"data": {"project": {"ciJobTokenAuthLogs": {
            "nodes": nodes, "pageInfo": {"hasNextPage": false, "endCursor": null}}}}});
        std::fs::write(file, answer.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{SimConfig, Simulator};

    #[test]
    fn preexisting_allowlists_are_in_the_truth_and_never_streamed() {
        let cfg = SimConfig {
            preexisting_allowlists: 0.6,
            ..SimConfig::small()
        };
        let mut sim = Simulator::new(&cfg);
        let lists = sim.preexisting_allowlists();
        assert!(!lists.is_empty());
        let protected: Vec<i64> = lists.iter().map(|l| l.project.0).collect();
        let streamed: Vec<String> = sim
            .by_ref()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        for l in &lists {
            let entity = format!("\"entity_id\":{}", l.project.0);
            assert!(
                !streamed
                    .iter()
                    .any(|m| m.contains("secure_ci_job_token") && m.contains(&entity)),
                "{} has no streamed allowlist event",
                l.project.1
            );
        }
        let truth = sim.into_truth();
        let to_protected: Vec<_> = truth
            .token_uses
            .iter()
            .filter(|u| {
                !u.same_project && u.target_project_id.is_some_and(|t| protected.contains(&t))
            })
            .collect();
        assert!(!to_protected.is_empty());
        assert!(
            to_protected.iter().all(|u| u.allowlisted.is_some()),
            "known from the allowlist that predates the stream"
        );
        // Without the share, the same seed makes the same world as before.
        let plain = Simulator::new(&SimConfig::small());
        assert!(plain.preexisting_allowlists().is_empty());
    }
}
