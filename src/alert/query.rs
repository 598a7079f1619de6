//! `tokentrail alerts list|show|ack`, backed by the `alerts_latest` view. An acknowledgement
//! is a new row (same id, status `acked`, higher `updated_at_ms`), never an UPDATE.

use bytes::Bytes;
use serde::Deserialize;

use super::settings::Severity;
use super::{Alert, AlertStatus};
use crate::store::sink::{WriteError, classify};
use crate::store::tables::{self, Table, quote_ident};

/// The stored columns of `alerts`, as read back.
pub const COLUMNS: &str = "alert_id, rule, severity, summary, first_seen_ms, last_seen_ms, \
    count, source_project_path, target_project_path, actor_id, actor_kind, action, job_id, \
    event_time_ms, details, status, acked_by, updated_at_ms";

#[derive(clickhouse::Row, Deserialize, Debug)]
pub struct AlertRow {
    pub alert_id: String,
    pub rule: String,
    pub severity: String,
    pub summary: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub source_project_path: String,
    pub target_project_path: String,
    pub actor_id: i64,
    pub actor_kind: String,
    pub action: String,
    pub job_id: Option<i64>,
    pub event_time_ms: i64,
    pub details: String,
    pub status: String,
    pub acked_by: String,
    pub updated_at_ms: i64,
}

impl AlertRow {
    pub fn into_alert(self) -> Alert {
        let severity = serde_json::from_value(serde_json::Value::String(self.severity))
            .unwrap_or(Severity::High);
        Alert {
            alert_id: self.alert_id,
            rule: self.rule,
            severity,
            summary: self.summary,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            count: self.count,
            source_project_path: self.source_project_path,
            target_project_path: self.target_project_path,
            actor_id: self.actor_id,
            actor_kind: self.actor_kind,
            action: self.action,
            job_id: self.job_id,
            event_time_ms: self.event_time_ms,
            details: serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null),
            status: if self.status == "acked" {
                AlertStatus::Acked
            } else {
                AlertStatus::Open
            },
            acked_by: self.acked_by,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("ClickHouse: {0}")]
    Store(#[from] WriteError),
    #[error("no alert with id {0:?}")]
    NotFound(String),
}

fn store(e: clickhouse::error::Error) -> QueryError {
    QueryError::Store(classify(&e))
}

/// Newest first; `status` filters on `open`/`acked`, `rule` on the rule name.
pub async fn list(
    client: &clickhouse::Client,
    database: &str,
    status: Option<&str>,
    rule: Option<&str>,
    limit: u64,
) -> Result<Vec<AlertRow>, QueryError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {}.alerts_latest WHERE (? = '' OR status = ?) \
         AND (? = '' OR rule = ?) ORDER BY last_seen_ms DESC, alert_id LIMIT ?",
        quote_ident(database)
    );
    let (status, rule) = (status.unwrap_or(""), rule.unwrap_or(""));
    client
        .query(&sql)
        .bind(status)
        .bind(status)
        .bind(rule)
        .bind(rule)
        .bind(limit)
        .fetch_all()
        .await
        .map_err(store)
}

pub async fn show(
    client: &clickhouse::Client,
    database: &str,
    alert_id: &str,
) -> Result<AlertRow, QueryError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {}.alerts_latest WHERE alert_id = ?",
        quote_ident(database)
    );
    client
        .query(&sql)
        .bind(alert_id)
        .fetch_optional()
        .await
        .map_err(store)?
        .ok_or_else(|| QueryError::NotFound(alert_id.to_string()))
}

/// Records an acknowledgement as a new row; returns the acknowledged alert.
pub async fn ack(
    client: &clickhouse::Client,
    database: &str,
    alert_id: &str,
    by: &str,
    now_ms: i64,
) -> Result<Alert, QueryError> {
    let row = show(client, database, alert_id).await?;
    // Strictly newer than the row it replaces, even with a clock behind the writer's.
    let version = now_ms.max(row.updated_at_ms + 1);
    let mut alert = row.into_alert();
    alert.status = AlertStatus::Acked;
    alert.acked_by = by.to_string();
    let mut buf = Vec::new();
    tables::encode_alert(&alert, version, &mut buf);
    let mut insert = client.insert_formatted_with(Table::Alerts.insert_sql(database));
    insert.send(Bytes::from(buf)).await.map_err(store)?;
    insert.end().await.map_err(store)?;
    Ok(alert)
}
