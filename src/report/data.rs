//! Reads what the report needs from ClickHouse into [`ReportData`]: read-only, and only
//! through the named queries of `schemas/queries/` (most of which read the daily rollups, so
//! the report takes seconds at 10M uses) plus `outside-uses.sql` beside this file and the
//! `alerts_latest` view.

use std::collections::BTreeMap;

use clickhouse::Client;
use serde_json::Value;

use super::model::*;
use crate::query::params::{ParamValue, QueryParams};
use crate::query::recommend::RecommendOptions;
use crate::query::render::ResultSet;
use crate::query::{self, Binding, QueryError};

/// Rows asked of the whole-window queries: all of them in practice.
const ALL_ROWS: u64 = 10_000_000;
/// Individual uses outside the allowlist, changes and alerts listed (newest first).
pub const LISTED_ROWS: u64 = 500;

const OUTSIDE_USES_SQL: &str = include_str!("outside-uses.sql");

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("alerts: {0}")]
    Alerts(#[from] crate::alert::query::QueryError),
    #[error("{query}: no column {column:?} in the result")]
    Column { query: String, column: String },
}

/// What to read: the scope, and "now" for the unused-entry check.
pub struct Request<'a> {
    pub client: &'a Client,
    pub database: &'a str,
    pub binding: Binding,
    pub scope: Scope,
    pub now_ms: i64,
}

/// The number of steps [`fetch`] reports to `progress`.
pub const STEPS: u64 = 9;

/// Runs every query; `progress` is called before each with what it reads.
pub async fn fetch(req: &Request<'_>, progress: &dyn Fn(&str)) -> Result<ReportData, DataError> {
    let mut p = QueryParams::new(req.now_ms.min(req.scope.to_ms));
    p.from_ms = req.scope.from_ms;
    p.to_ms = req.scope.to_ms;
    p.limit = ALL_ROWS;
    p.unused_days = req.scope.unused_days;
    let run = |name: &'static str, params: QueryParams| async move {
        progress(name);
        named(req, name, &params).await
    };

    let rs = run("latest-use", p.clone()).await?;
    let pairs = rows(&rs, "latest-use", |r| {
        Ok(PairUse {
            source: r.str("source")?,
            target: r.str("target")?,
            uses: r.u64("uses")?,
            last_used: r.str("last_used")?,
            last_actor: r.str("last_actor")?,
            last_job_id: r.opt_i64("last_job_id")?,
        })
    })?;
    let rs = run("outside-allowlist", p.clone()).await?;
    let outside = rows(&rs, "outside-allowlist", |r| {
        Ok(OutsidePair {
            target: r.str("target")?,
            source: r.str("source")?,
            uses: r.u64("uses")?,
            actions: r.str("actions")?,
            first_used: r.str("first_used")?,
            last_used: r.str("last_used")?,
        })
    })?;
    progress("outside-uses");
    let mut listed = p.clone();
    listed.limit = LISTED_ROWS;
    let rs =
        query::execute_sql(req.client, req.binding, OUTSIDE_USES_SQL, &listed.values()).await?;
    let outside_uses = rows(&rs, "outside-uses", |r| {
        Ok(OutsideUse {
            at: r.str("at")?,
            source: r.str("source")?,
            target: r.str("target")?,
            action: r.str("action")?,
            actor_name: r.str("actor")?,
            actor_username: r.str("actor_username")?,
            actor_kind: r.str("actor_kind")?,
            job_id: r.opt_i64("job_id")?,
        })
    })?;
    let rs = run("allowlist-vs-use", p.clone()).await?;
    let allowlist = rows(&rs, "allowlist-vs-use", |r| {
        Ok(AllowlistRow {
            project: r.str("project")?,
            inbound: r.str("inbound")?,
            member_type: r.str("member_type")?,
            member_path: r.str("member_path")?,
            status: r.str("status")?,
            uses: r.u64("uses")?,
            last_used: r.str("last_used")?,
        })
    })?;
    let rs = run("unused-allowlist-entries", p.clone()).await?;
    let unused_entries = rows(&rs, "unused-allowlist-entries", |r| {
        Ok(UnusedEntry {
            project: r.str("project")?,
            member_type: r.str("member_type")?,
            member_path: r.str("member_path")?,
            last_used: r.str("last_used")?,
        })
    })?;
    let rs = run("actions-over-time", p.clone()).await?;
    let mut summed: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for a in rows(&rs, "actions-over-time", |r| {
        Ok(PairAction {
            source: r.str("source")?,
            target: r.str("target")?,
            action: r.str("action")?,
            uses: r.u64("uses")?,
        })
    })? {
        *summed.entry((a.source, a.target, a.action)).or_default() += a.uses;
    }
    let actions = summed
        .into_iter()
        .map(|((source, target, action), uses)| PairAction {
            source,
            target,
            action,
            uses,
        })
        .collect();
    progress(query::RECOMMENDED_ALLOWLIST);
    let files = query::find(query::RECOMMENDED_ALLOWLIST)
        .expect("a named query")
        .files;
    let values = p.values();
    let consumers = query::execute_sql(req.client, req.binding, files[0].1, &values).await?;
    let known = query::execute_sql(req.client, req.binding, files[1].1, &values).await?;
    let recommendations = query::recommendations(&consumers, &known, RecommendOptions::default())?;
    let rs = run("changes", listed.clone()).await?;
    let changes = rows(&rs, "changes", |r| {
        Ok(Change {
            at: r.str("at")?,
            kind: r.str("kind")?,
            what: r.str("what")?,
            subject: r.str("subject")?,
            scope: r.str("scope")?,
            author_name: r.str("author_name")?,
            author_kind: r.str("author_kind")?,
        })
    })?;
    progress("alerts");
    let open =
        crate::alert::query::list(req.client, req.database, Some("open"), None, ALL_ROWS).await?;
    let open_alerts = open.len() as u64;
    let alerts = open
        .into_iter()
        .map(|row| row.alert)
        .filter(|a| a.last_seen_ms >= req.scope.from_ms && a.first_seen_ms < req.scope.to_ms)
        .take(LISTED_ROWS as usize)
        .collect();
    Ok(ReportData {
        scope: req.scope.clone(),
        pairs,
        outside,
        outside_uses,
        allowlist,
        unused_entries,
        actions,
        recommendations,
        changes,
        alerts,
        open_alerts,
    })
}

async fn named(
    req: &Request<'_>,
    name: &'static str,
    params: &QueryParams,
) -> Result<ResultSet, QueryError> {
    let q = query::find(name).ok_or_else(|| QueryError::Unknown(name.into()))?;
    let values: BTreeMap<&'static str, ParamValue> = params.values();
    query::execute_sql(req.client, req.binding, q.files[0].1, &values).await
}

/// One result row, read by column name.
struct Row<'a> {
    query: &'a str,
    columns: &'a [String],
    values: &'a [Value],
}

impl Row<'_> {
    fn get(&self, column: &str) -> Result<&Value, DataError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| DataError::Column {
                query: self.query.into(),
                column: column.into(),
            })
    }
    fn str(&self, column: &str) -> Result<String, DataError> {
        Ok(match self.get(column)? {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }
    fn u64(&self, column: &str) -> Result<u64, DataError> {
        let v = self.get(column)?;
        Ok(v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0))
    }
    fn opt_i64(&self, column: &str) -> Result<Option<i64>, DataError> {
        let v = self.get(column)?;
        Ok(v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok())))
    }
}

fn rows<T>(
    rs: &ResultSet,
    query: &str,
    f: impl Fn(&Row<'_>) -> Result<T, DataError>,
) -> Result<Vec<T>, DataError> {
    rs.rows
        .iter()
        .map(|values| {
            f(&Row {
                query,
                columns: &rs.columns,
                values,
            })
        })
        .collect()
}
