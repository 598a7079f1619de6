//! `tokentrail gitlab coverage`: GitLab's job-token authentication log against `token_use`.
//!
//! GitLab keeps, per target project, one row per origin project with the *last* time its
//! job token was authorized (`Project.ciJobTokenAuthLogs`, GraphQL; Maintainer;
//! /work/shared/reference/gitlab-2026-update.md "Authentication log"). An edge whose last
//! authorization tokentrail has no record near (`token_use` of origin → target at or after
//! `last_authorized_at - tolerance`) is a gap: the events of that use never arrived (a
//! streaming outage, a denylisted event type, a dropped delivery). Only the *last*
//! authorization is known, so an edge used during an outage and again after it is covered.
//!
//! Each observation is produced into the audit topic as a `tokentrail_job_token_auth_log`
//! event (entity = target project, target = origin project, `created_at` = last authorized
//! at) with `details.coverage_gap` decided here against `token_use`; the `coverage_gap` rule
//! raises the gaps, and the named query `coverage-gaps` recomputes them from the stored
//! observations at any later time (after a backfill, say).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ProjectRef, global_id};
use super::client::{Client, GitlabError};
use super::snapshot::{AUTHOR_NAME, rfc3339_ms};
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::quote_ident;

pub use crate::model::AUTH_LOG_EVENT_TYPE as EVENT_TYPE;

/// One row of GitLab's authentication log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLog {
    pub target: ProjectRef,
    pub origin: ProjectRef,
    pub last_authorized_ms: i64,
}

const AUTH_LOG_QUERY: &str = "query($path: ID!, $after: String) { project(fullPath: $path) { \
  ciJobTokenAuthLogs(first: 100, after: $after) { \
    nodes { lastAuthorizedAt originProject { id fullPath } } \
    pageInfo { hasNextPage endCursor } } } }";

/// Every authentication-log row of `target`, all pages.
pub async fn auth_logs(
    client: &Client,
    target: &ProjectRef,
    max_pages: u32,
) -> Result<Vec<AuthLog>, GitlabError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..max_pages {
        let data = client
            .graphql(
                "ciJobTokenAuthLogs",
                AUTH_LOG_QUERY,
                json!({ "path": target.path, "after": after }),
            )
            .await?;
        let (rows, next) = parse_page(target, &data)?;
        out.extend(rows);
        match next {
            None => return Ok(out),
            Some(cursor) if !seen.insert(cursor.clone()) => {
                return Err(GitlabError::Pagination {
                    path: "/api/graphql ciJobTokenAuthLogs".into(),
                    reason: format!("the cursor {cursor:?} came back: a pagination loop"),
                });
            }
            Some(cursor) => after = Some(cursor),
        }
    }
    Err(GitlabError::Pagination {
        path: "/api/graphql ciJobTokenAuthLogs".into(),
        reason: format!("more than gitlab.max_pages = {max_pages} pages"),
    })
}

fn bad(reason: String) -> GitlabError {
    GitlabError::Malformed {
        path: "/api/graphql ciJobTokenAuthLogs".into(),
        reason,
    }
}

/// One page: its rows and the cursor of the next, if any.
pub fn parse_page(
    target: &ProjectRef,
    data: &Value,
) -> Result<(Vec<AuthLog>, Option<String>), GitlabError> {
    let logs = data
        .pointer("/project/ciJobTokenAuthLogs")
        .filter(|v| !v.is_null())
        .ok_or_else(|| bad(format!("no project.ciJobTokenAuthLogs for {}", target.path)))?;
    let nodes = logs
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("nodes is not a list".into()))?;
    let mut rows = Vec::with_capacity(nodes.len());
    for n in nodes {
        let origin = n
            .get("originProject")
            .ok_or_else(|| bad("a row without originProject".into()))?;
        let id = global_id(origin.get("id"))
            .ok_or_else(|| bad("originProject.id is not a GitLab global id".into()))?;
        let path = origin
            .get("fullPath")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| bad("originProject.fullPath is not a non-empty string".into()))?;
        let at = n
            .get("lastAuthorizedAt")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| {
                bad(format!(
                    "lastAuthorizedAt of {path} is not an ISO 8601 time"
                ))
            })?;
        rows.push(AuthLog {
            target: target.clone(),
            origin: ProjectRef {
                id,
                path: path.to_owned(),
            },
            last_authorized_ms: at,
        });
    }
    let page_info = logs.get("pageInfo");
    let has_next = page_info
        .and_then(|p| p.get("hasNextPage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let next = if has_next {
        Some(
            page_info
                .and_then(|p| p.get("endCursor"))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| bad("hasNextPage without an endCursor".into()))?
                .to_owned(),
        )
    } else {
        None
    };
    Ok((rows, next))
}

/// What a coverage check found.
#[derive(Debug, Default)]
pub struct CoverageReport {
    /// `(kafka key, event)` for every observation, gap or not.
    pub observations: Vec<(String, Value)>,
    pub gaps: Vec<(AuthLog, Option<i64>)>,
    /// Projects whose log could not be read (403, 404, no such GraphQL field), with why.
    pub failed: Vec<(String, String)>,
}

/// Reads the authentication log of every project in `projects` and compares it with
/// `token_use` in `database`.
pub async fn check(
    client: &Client,
    ch: &clickhouse::Client,
    database: &str,
    projects: &[ProjectRef],
    tolerance_ms: i64,
    max_pages: u32,
    mut each: impl FnMut(),
) -> Result<CoverageReport, CoverageError> {
    let mut report = CoverageReport::default();
    for p in projects {
        each();
        let logs = match auth_logs(client, p, max_pages).await {
            Ok(l) => l,
            Err(
                e @ (GitlabError::Forbidden { .. }
                | GitlabError::NotFound { .. }
                | GitlabError::GraphQl { .. }),
            ) => {
                report.failed.push((p.path.clone(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if logs.is_empty() {
            continue;
        }
        let recorded = last_recorded(ch, database, p).await?;
        for log in logs {
            let last = recorded.get(&log.origin.path.to_ascii_lowercase()).copied();
            let gap = is_gap(&log, last, tolerance_ms);
            report
                .observations
                .push((log.target.id.to_string(), event(&log, gap, last)));
            if gap {
                report.gaps.push((log, last));
            }
        }
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error("reading token_use from ClickHouse (tokentrail migrate first): {0}")]
    Store(#[from] ReadError),
}

#[derive(clickhouse::Row, Deserialize)]
struct LastUse {
    source_project_path: String,
    last_ms: i64,
}

/// tokentrail's newest `token_use` of each origin path into `target` (cross-project only).
pub async fn last_recorded(
    client: &clickhouse::Client,
    database: &str,
    target: &ProjectRef,
) -> Result<HashMap<String, i64>, ReadError> {
    let db = quote_ident(database);
    let rows: Vec<LastUse> = client
        .query(&format!(
            "SELECT source_project_path, max(event_time_ms) AS last_ms FROM {db}.token_use \
             WHERE same_project = 0 AND (target_project_id = ? OR target_project_path = ?) \
             GROUP BY source_project_path"
        ))
        .bind(target.id)
        .bind(target.path.as_str())
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    Ok(rows
        .into_iter()
        .map(|r| (r.source_project_path.to_ascii_lowercase(), r.last_ms))
        .collect())
}

/// Whether tokentrail lacks the last authorization of `log` (see the module documentation).
pub fn is_gap(log: &AuthLog, last_recorded_ms: Option<i64>, tolerance_ms: i64) -> bool {
    last_recorded_ms.is_none_or(|t| t < log.last_authorized_ms - tolerance_ms)
}

/// The audit-topic event for one observation.
pub fn event(log: &AuthLog, gap: bool, last_recorded_ms: Option<i64>) -> Value {
    json!({
        "id": format!("tokentrail-authlog-{}-{}-{}", log.target.id, log.origin.id, log.last_authorized_ms),
        "event_type": EVENT_TYPE,
        "author_id": 0,
        "author_name": AUTHOR_NAME,
        "entity_id": log.target.id,
        "entity_type": "Project",
        "entity_path": log.target.path,
        "target_id": log.origin.id,
        "target_type": "Project",
        "target_details": log.origin.path,
        "created_at": rfc3339_ms(log.last_authorized_ms),
        "details": {
            "event_name": EVENT_TYPE,
            "custom_message": format!(
                "GitLab's authentication log: {} last authorized a job token into {} (read by tokentrail gitlab coverage)",
                log.origin.path, log.target.path
            ),
            "coverage_gap": gap,
            "tokentrail_last_recorded_ms": last_recorded_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ProjectRef {
        ProjectRef {
            id: 3001,
            path: "payments/ledger".into(),
        }
    }

    #[test]
    fn pages_and_lies() {
        let data = json!({"project": {"ciJobTokenAuthLogs": {
            "nodes": [{"lastAuthorizedAt": "2026-05-19T16:00:00Z", "originProject": {"id": "gid://gitlab/Project/1337", "fullPath": "platform-eng/app-backend"}}],
            "pageInfo": {"hasNextPage": true, "endCursor": "abc"}}}});
        let (rows, next) = parse_page(&target(), &data).unwrap();
        assert_eq!(
            rows[0].origin,
            ProjectRef {
                id: 1337,
                path: "platform-eng/app-backend".into()
            }
        );
        assert_eq!(rows[0].last_authorized_ms, 1_779_206_400_000);
        assert_eq!(next.as_deref(), Some("abc"));
        let lie = json!({"project": {"ciJobTokenAuthLogs": {"nodes": [{"lastAuthorizedAt": 5, "originProject": {"id": "gid://gitlab/Project/1", "fullPath": "a/b"}}]}}});
        assert!(
            parse_page(&target(), &lie)
                .unwrap_err()
                .to_string()
                .contains("lastAuthorizedAt")
        );
        let lie = json!({"project": {"ciJobTokenAuthLogs": {"nodes": [], "pageInfo": {"hasNextPage": true}}}});
        assert!(
            parse_page(&target(), &lie)
                .unwrap_err()
                .to_string()
                .contains("endCursor")
        );
        assert!(parse_page(&target(), &json!({"project": null})).is_err());
    }

    #[test]
    fn gaps_are_edges_whose_last_authorization_tokentrail_lacks() {
        let log = AuthLog {
            target: target(),
            origin: ProjectRef {
                id: 1,
                path: "a/b".into(),
            },
            last_authorized_ms: 1_000_000,
        };
        assert!(is_gap(&log, None, 300_000));
        assert!(is_gap(&log, Some(600_000), 300_000));
        assert!(!is_gap(&log, Some(700_000), 300_000));
        assert!(!is_gap(&log, Some(2_000_000), 300_000));
    }
}
