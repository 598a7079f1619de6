//! Reading exportable rows back from ClickHouse: keyset pages over `token_use`,
//! `token_lifecycle` and (when the alerting stage created it) `alerts`.
//!
//! Pages are ordered by `(order column, key)` and continue strictly after a cursor, so a
//! page boundary never splits or repeats rows with the same timestamp.

use clickhouse::Client;
use serde::Deserialize;

use super::record::{LifecycleRecord, RecordKind, SiemRecord};
use crate::model::ActorKind;
use crate::store::tables::alerts::{self, StoredAlert};
use crate::store::tables::token_use::{self, StoredTokenUse};
use crate::store::tables::{Table, quote_ident};

#[derive(Debug, thiserror::Error)]
#[error("reading {table} from ClickHouse: {source}")]
pub struct SourceError {
    pub table: &'static str,
    #[source]
    pub source: clickhouse::error::Error,
}

/// Where a page starts: strictly after `(order_ms, key)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub order_ms: i64,
    pub key: String,
}

/// A row with its position in the table's export order.
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub cursor: Cursor,
    pub record: SiemRecord,
}

/// What a table is followed and backfilled by.
pub struct TableSpec {
    pub kind: RecordKind,
    pub table: &'static str,
    /// Followed by: the insert time where the table has one.
    pub follow_column: &'static str,
    /// Backfilled by: when the thing happened.
    pub time_column: &'static str,
    pub key_column: &'static str,
    /// Whether reads may use FINAL (ReplacingMergeTree tables) to skip replayed duplicates.
    pub replacing: bool,
    select: &'static str,
}

const LIFECYCLE_COLUMNS: &str = "dedup_key, event_time_ms, toString(event_type), \
    toString(token_kind), toString(operation), token_id, toString(scope_type), scope_id, \
    scope_path, author_id, author_name, toString(actor_kind), target_details";

pub const TOKEN_USE: TableSpec = TableSpec {
    kind: RecordKind::TokenUse,
    table: Table::TokenUse.name(),
    follow_column: "ingested_at_ms",
    time_column: "event_time_ms",
    key_column: "record_key",
    replacing: true,
    select: token_use::SELECT,
};

/// `token_lifecycle` has no insert time: it is followed by event time with a longer
/// look-back (see `siem.lifecycle_lookback_ms`).
pub const TOKEN_LIFECYCLE: TableSpec = TableSpec {
    kind: RecordKind::TokenLifecycle,
    table: Table::TokenLifecycle.name(),
    follow_column: "event_time_ms",
    time_column: "event_time_ms",
    key_column: "dedup_key",
    replacing: true,
    select: LIFECYCLE_COLUMNS,
};

pub const ALERTS: TableSpec = TableSpec {
    kind: RecordKind::Alert,
    table: Table::Alerts.name(),
    follow_column: "updated_at_ms",
    time_column: "updated_at_ms",
    key_column: "alert_id",
    // Each alert update is its own SIEM event (Update / Close), so every version is read.
    replacing: false,
    select: alerts::SELECT,
};

pub fn spec(kind: RecordKind) -> &'static TableSpec {
    match kind {
        RecordKind::TokenUse => &TOKEN_USE,
        RecordKind::TokenLifecycle => &TOKEN_LIFECYCLE,
        RecordKind::Alert => &ALERTS,
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct LifecycleRow {
    dedup_key: String,
    event_time_ms: i64,
    event_type: String,
    token_kind: String,
    operation: String,
    token_id: Option<i64>,
    scope_type: String,
    scope_id: Option<i64>,
    scope_path: String,
    author_id: i64,
    author_name: String,
    actor_kind: String,
    target_details: String,
}

impl From<StoredTokenUse> for SourceRow {
    fn from(r: StoredTokenUse) -> Self {
        SourceRow {
            cursor: Cursor {
                order_ms: r.ingested_at_ms,
                key: r.record_key.clone(),
            },
            record: SiemRecord::TokenUse(r),
        }
    }
}

impl From<LifecycleRow> for SourceRow {
    fn from(r: LifecycleRow) -> Self {
        SourceRow {
            cursor: Cursor {
                order_ms: r.event_time_ms,
                key: r.dedup_key.clone(),
            },
            record: SiemRecord::Lifecycle(LifecycleRecord {
                dedup_key: r.dedup_key,
                event_time_ms: r.event_time_ms,
                event_type: r.event_type,
                token_kind: r.token_kind,
                operation: r.operation,
                token_id: r.token_id,
                scope_type: r.scope_type,
                scope_id: r.scope_id,
                scope_path: r.scope_path,
                author_id: r.author_id,
                author_name: r.author_name,
                actor_kind: ActorKind::parse(&r.actor_kind),
                target_details: r.target_details,
            }),
        }
    }
}

impl From<StoredAlert> for SourceRow {
    fn from(r: StoredAlert) -> Self {
        SourceRow {
            cursor: Cursor {
                order_ms: r.updated_at_ms,
                key: r.alert.alert_id.clone(),
            },
            record: SiemRecord::Alert(r),
        }
    }
}

/// Reads rows of one table from one database.
#[derive(Clone)]
pub struct TableReader {
    client: Client,
    database: String,
}

/// Which column a page is ordered by, and over what range of it.
#[derive(Debug, Clone, Copy)]
pub enum PageMode {
    /// Follow: ordered by the follow column, up to `until_ms` inclusive; all row versions.
    Follow { until_ms: i64 },
    /// Backfill: ordered by the time column in `[from_ms, to_ms)`; FINAL where possible.
    Backfill { from_ms: i64, to_ms: i64 },
}

impl TableReader {
    pub fn new(client: Client, database: &str) -> Self {
        TableReader {
            client,
            database: database.to_owned(),
        }
    }

    pub async fn table_exists(&self, table: &str) -> Result<bool, SourceError> {
        let n: u64 = self
            .client
            .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
            .bind(&self.database)
            .bind(table)
            .fetch_one()
            .await
            .map_err(|source| SourceError {
                table: "system.tables",
                source,
            })?;
        Ok(n > 0)
    }

    fn sql(&self, spec: &TableSpec, mode: PageMode, count_only: bool) -> String {
        let (order, final_kw, range) = match mode {
            PageMode::Follow { .. } => (
                spec.follow_column,
                "",
                format!("{} <= ?", spec.follow_column),
            ),
            PageMode::Backfill { .. } => (
                spec.time_column,
                if spec.replacing { " FINAL" } else { "" },
                format!("{c} >= ? AND {c} < ?", c = spec.time_column),
            ),
        };
        let from = format!("{}.{}{final_kw}", quote_ident(&self.database), spec.table);
        if count_only {
            return format!("SELECT count() FROM {from} WHERE {range}");
        }
        format!(
            "SELECT {} FROM {from} WHERE {range} AND ({order} > ? OR ({order} = ? AND {key} > ?)) \
             ORDER BY {order}, {key} LIMIT ?",
            spec.select,
            key = spec.key_column,
        )
    }

    /// Rows in the range (for the progress bar of a backfill).
    pub async fn count(&self, spec: &TableSpec, mode: PageMode) -> Result<u64, SourceError> {
        let q = self.client.query(&self.sql(spec, mode, true));
        let q = match mode {
            PageMode::Follow { until_ms } => q.bind(until_ms),
            PageMode::Backfill { from_ms, to_ms } => q.bind(from_ms).bind(to_ms),
        };
        q.fetch_one().await.map_err(|source| SourceError {
            table: spec.table,
            source,
        })
    }

    /// Up to `limit` rows strictly after `after`, in `(order, key)` order.
    pub async fn page(
        &self,
        spec: &TableSpec,
        mode: PageMode,
        after: &Cursor,
        limit: usize,
    ) -> Result<Vec<SourceRow>, SourceError> {
        let q = self.client.query(&self.sql(spec, mode, false));
        let q = match mode {
            PageMode::Follow { until_ms } => q.bind(until_ms),
            PageMode::Backfill { from_ms, to_ms } => q.bind(from_ms).bind(to_ms),
        };
        let q = q
            .bind(after.order_ms)
            .bind(after.order_ms)
            .bind(&after.key)
            .bind(limit as u64);
        let err = |source| SourceError {
            table: spec.table,
            source,
        };
        let mut rows: Vec<SourceRow> = match spec.kind {
            RecordKind::TokenUse => q
                .fetch_all::<StoredTokenUse>()
                .await
                .map_err(err)?
                .into_iter()
                .map(Into::into)
                .collect(),
            RecordKind::TokenLifecycle => q
                .fetch_all::<LifecycleRow>()
                .await
                .map_err(err)?
                .into_iter()
                .map(Into::into)
                .collect(),
            RecordKind::Alert => q
                .fetch_all::<StoredAlert>()
                .await
                .map_err(err)?
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        // In backfill mode the page is ordered by the time column: re-key the cursor.
        if let PageMode::Backfill { .. } = mode {
            for r in &mut rows {
                r.cursor.order_ms = match &r.record {
                    SiemRecord::TokenUse(t) => t.token_use.event_time_ms,
                    SiemRecord::Lifecycle(l) => l.event_time_ms,
                    SiemRecord::Alert(a) => a.updated_at_ms,
                };
            }
        }
        Ok(rows)
    }
}
