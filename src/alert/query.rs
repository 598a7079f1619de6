//! `tokentrail alerts list|show|ack`, backed by the `alerts_latest` view. An acknowledgement
//! is a new row (same id, status `acked`, higher `updated_at_ms`), never an UPDATE.

use bytes::Bytes;

use super::{Alert, AlertStatus};
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::alerts::{self, SELECT, StoredAlert};
use crate::store::tables::{Table, quote_ident};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Store(#[from] ReadError),
    #[error("no alert with id {0:?}")]
    NotFound(String),
}

fn store(e: clickhouse::error::Error) -> QueryError {
    QueryError::Store(classify_read(&e))
}

/// Newest first; `status` filters on `open`/`acked`, `rule` on the rule name.
pub async fn list(
    client: &clickhouse::Client,
    database: &str,
    status: Option<&str>,
    rule: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredAlert>, QueryError> {
    let sql = format!(
        "SELECT {SELECT} FROM {}.alerts_latest WHERE (? = '' OR status = ?) \
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
) -> Result<StoredAlert, QueryError> {
    let sql = format!(
        "SELECT {SELECT} FROM {}.alerts_latest WHERE alert_id = ?",
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
    let mut alert = row.alert;
    alert.status = AlertStatus::Acked;
    alert.acked_by = by.to_string();
    let mut buf = Vec::new();
    alerts::encode(&alert, version, &mut buf);
    let mut insert = client.insert_formatted_with(Table::Alerts.insert_sql(database));
    insert.send(Bytes::from(buf)).await.map_err(store)?;
    insert.end().await.map_err(store)?;
    Ok(alert)
}
