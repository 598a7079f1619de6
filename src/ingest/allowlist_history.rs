//! Restores the correlator's allowlist state from the stored history at start-up, so token-use
//! records are marked allowlisted or not correctly right after a restart.

use serde::Deserialize;

use crate::correlate::allowlist::AllowlistState;
use crate::model::{AllowlistChange, AllowlistChangeKind};
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::quote_ident;

#[derive(clickhouse::Row, Deserialize)]
struct ChangeRow {
    event_time_ms: i64,
    change: String,
    protected_project_id: Option<i64>,
    protected_project_path: String,
    member_type: Option<String>,
    member_id: Option<i64>,
    member_path: Option<String>,
    default_permissions: Option<u8>,
    policies: Vec<String>,
}

/// Applies every stored change in time order; returns how many were applied.
pub async fn restore(
    client: &clickhouse::Client,
    database: &str,
    state: &mut AllowlistState,
) -> Result<usize, ReadError> {
    let sql = format!(
        "SELECT event_time_ms, change, protected_project_id, protected_project_path, \
         member_type, member_id, member_path, default_permissions, policies \
         FROM {}.allowlist_changes FINAL ORDER BY event_time_ms",
        quote_ident(database)
    );
    let rows: Vec<ChangeRow> =
        client
            .query_raw(&sql)
            .fetch_all()
            .await
            .map_err(|e| match classify_read(&e) {
                ReadError::Fatal {
                    code: Some(60),
                    message,
                } => ReadError::Fatal {
                    code: Some(60),
                    message: format!(
                        "{message} (has `tokentrail migrate` run for database {database}?)"
                    ),
                },
                other => other,
            })?;
    let mut applied = 0;
    for row in rows {
        let Ok(change) =
            serde_json::from_value::<AllowlistChangeKind>(serde_json::Value::String(row.change))
        else {
            continue; // written by a newer version with a kind this one does not know
        };
        let change = AllowlistChange {
            change,
            protected_project_id: row.protected_project_id,
            protected_project_path: row.protected_project_path,
            member_type: row.member_type,
            member_id: row.member_id,
            member_path: row.member_path,
            default_permissions: row.default_permissions.map(|v| v != 0),
            policies: row.policies,
        };
        if state.apply(&change, row.event_time_ms) {
            applied += 1;
        }
    }
    Ok(applied)
}
