//! The `alerts` table, declared once: its inserted columns, the encoder that fills them, the
//! select list and row type it is read back through (by `tokentrail alerts`, the report,
//! start-up hydration and the SIEM feed): [`StoredAlert`], the one [`Alert`] type plus its
//! version.

use serde::de::SeqAccess;
use serde::{Deserialize, Deserializer};

use super::read_row::{Columns, ReadRow, read_row};
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

/// One stored alert row, as [`SELECT`] reads it: the alert and its version.
#[derive(clickhouse::Row, Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub alert: Alert,
    /// The version column: when this state of the alert was written.
    pub updated_at_ms: i64,
}

impl ReadRow for StoredAlert {
    const COLUMNS: &'static [&'static str] = COLUMNS;

    /// A severity the code does not know reads as high, details that are not JSON as null,
    /// and any status but `acked` as open: a stored row is never dropped.
    fn read<'de, A: SeqAccess<'de>>(c: &mut Columns<'de, A>) -> Result<Self, A::Error> {
        let alert = Alert {
            alert_id: c.column()?,
            rule: c.column()?,
            severity: serde_json::from_value(serde_json::Value::String(c.column()?))
                .unwrap_or(Severity::High),
            summary: c.column()?,
            first_seen_ms: c.column()?,
            last_seen_ms: c.column()?,
            count: c.column()?,
            source_project_path: c.column()?,
            target_project_path: c.column()?,
            actor_id: c.column()?,
            actor_kind: c.column()?,
            action: c.column()?,
            job_id: c.column()?,
            event_time_ms: c.column()?,
            details: serde_json::from_str(&c.column::<String>()?)
                .unwrap_or(serde_json::Value::Null),
            status: if c.column::<String>()? == "acked" {
                AlertStatus::Acked
            } else {
                AlertStatus::Open
            },
            acked_by: c.column()?,
        };
        Ok(StoredAlert {
            alert,
            updated_at_ms: c.column()?,
        })
    }
}

impl<'de> Deserialize<'de> for StoredAlert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_row(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::read_row::{read_back, select_columns};

    #[test]
    fn the_select_list_reads_the_inserted_columns_in_order() {
        assert_eq!(select_columns(SELECT), COLUMNS);
    }

    #[tokio::test]
    async fn rows_read_back_as_they_were_encoded() {
        let alert = |status, acked_by: &str, job_id| Alert {
            alert_id: "not_allowlisted:a->b:1".into(),
            rule: "not_allowlisted".into(),
            severity: Severity::Critical,
            summary: "a | b=c\r\n ✓".into(),
            first_seen_ms: 1_748_944_800_000,
            last_seen_ms: 1_748_944_900_000,
            count: 3,
            source_project_path: "g/a".into(),
            target_project_path: "g/b".into(),
            actor_id: 4821,
            actor_kind: "human".into(),
            action: "repository.read".into(),
            job_id,
            event_time_ms: 1_748_944_900_000,
            details: serde_json::json!({"jobs": [1, 2], "note": "a=b \\ c"}),
            status,
            acked_by: acked_by.into(),
        };
        let want = vec![
            StoredAlert {
                alert: alert(AlertStatus::Open, "", Some(7)),
                updated_at_ms: 1,
            },
            StoredAlert {
                alert: alert(AlertStatus::Acked, "sec", None),
                updated_at_ms: 2,
            },
        ];
        let mut bytes = Vec::new();
        for s in &want {
            encode(&s.alert, s.updated_at_ms, &mut bytes);
        }
        assert_eq!(read_back::<StoredAlert>(bytes).await, want);
    }

    #[tokio::test]
    async fn text_the_code_does_not_know_still_reads() {
        let mut bytes = Vec::new();
        RowWriter::new(&mut bytes)
            .string("id")
            .string("rule")
            .string("severe")
            .string("summary")
            .i64(1)
            .i64(2)
            .u64(1)
            .string("g/a")
            .string("g/b")
            .i64(5)
            .string("human")
            .string("repository.read")
            .opt_i64(None)
            .i64(2)
            .string("not json")
            .string("resolved")
            .string("")
            .i64(3);
        let [row] = read_back::<StoredAlert>(bytes).await.try_into().unwrap();
        assert_eq!(row.alert.severity, Severity::High);
        assert_eq!(row.alert.details, serde_json::Value::Null);
        assert_eq!(row.alert.status, AlertStatus::Open);
        assert_eq!(row.updated_at_ms, 3);
    }
}
