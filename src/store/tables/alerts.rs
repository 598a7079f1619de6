//! The `alerts` table, declared once: its inserted columns, the encoder that fills them, the
//! select list and row type it is read back through (by `tokentrail alerts`, start-up
//! hydration and the SIEM feed), and the conversion back to [`Alert`].

use serde::Deserialize;

use crate::model::{Alert, AlertStatus, Severity};
use crate::store::rowbinary::RowWriter;

/// The inserted columns, in RowBinary order.
pub const COLUMNS: &[&str] = &[
    "alert_id",
    "rule",
    "severity",
    "summary",
    "first_seen_ms",
    "last_seen_ms",
    "count",
    "source_project_path",
    "target_project_path",
    "actor_id",
    "actor_kind",
    "action",
    "job_id",
    "event_time_ms",
    "details",
    "status",
    "acked_by",
    "updated_at_ms",
];

/// [`COLUMNS`] as read into [`StoredAlert`]. Each is cast, which pins the types read
/// whatever the DDL dialect spells (LowCardinality, Enum, DateTime64 on modern servers).
pub const SELECT: &str = "toString(alert_id), toString(rule), toString(severity), \
    toString(summary), toInt64(first_seen_ms), toInt64(last_seen_ms), toUInt64(count), \
    toString(source_project_path), toString(target_project_path), toInt64(actor_id), \
    toString(actor_kind), toString(action), CAST(job_id AS Nullable(Int64)), \
    toInt64(event_time_ms), toString(details), toString(status), toString(acked_by), \
    toInt64(updated_at_ms)";

/// `updated_at_ms` is the version column: the newest row of an alert id wins.
pub fn encode(alert: &Alert, updated_at_ms: i64, buf: &mut Vec<u8>) {
    RowWriter::new(buf)
        .string(&alert.alert_id)
        .string(&alert.rule)
        .string(alert.severity.as_str())
        .string(&alert.summary)
        .i64(alert.first_seen_ms)
        .i64(alert.last_seen_ms)
        .u64(alert.count)
        .string(&alert.source_project_path)
        .string(&alert.target_project_path)
        .i64(alert.actor_id)
        .string(&alert.actor_kind)
        .string(&alert.action)
        .opt_i64(alert.job_id)
        .i64(alert.event_time_ms)
        .string(&alert.details.to_string())
        .string(alert.status.as_str())
        .string(&alert.acked_by)
        .i64(updated_at_ms);
}

/// One stored alert row, as [`SELECT`] reads it.
#[derive(clickhouse::Row, Deserialize, Debug, Clone)]
pub struct StoredAlert {
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

impl StoredAlert {
    /// The alert as the engine holds it. A severity the code does not know reads as high,
    /// and details that are not JSON as null: a stored row is never dropped.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_select_list_reads_the_inserted_columns_in_order() {
        let read: Vec<&str> = SELECT
            .split("), ")
            .map(|item| {
                let inner = item.split_once('(').map_or(item, |(_, rest)| rest);
                inner.split([')', ' ']).next().unwrap_or(inner).trim()
            })
            .collect();
        assert_eq!(read, COLUMNS);
    }
}
