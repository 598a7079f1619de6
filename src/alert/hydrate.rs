//! Start-up state for the engine, read from ClickHouse: edges used within the new-edge
//! lookback (from `token_use`) and alerts whose suppression bucket may still be open (from
//! `alerts`). Both are durable only together with the rows that produced them, so a replay
//! after a crash neither re-alerts a known edge nor counts a finding twice.

use serde::Deserialize;

use super::engine::AlertEngine;
use super::id::project_key;
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::alerts::{SELECT, StoredAlert};
use crate::store::tables::quote_ident;

#[derive(clickhouse::Row, Deserialize)]
struct EdgeRow {
    source_project_id: Option<i64>,
    source_project_path: String,
    target_project_id: Option<i64>,
    target_project_path: String,
    last_used_ms: i64,
}

/// What was restored, for the start-up log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hydrated {
    pub edges: usize,
    pub open_alerts: usize,
}

/// Loads both kinds of state into `engine`. The lookback and the open buckets are measured
/// back from the newest stored event time, not the wall clock: the engine runs on event time.
pub async fn hydrate(
    client: &clickhouse::Client,
    database: &str,
    lookback_ms: i64,
    suppression_window_ms: i64,
    engine: &mut AlertEngine,
) -> Result<Hydrated, ReadError> {
    let db = quote_ident(database);
    // Read once, for both horizons (a scan of the column; 0 when there are no records).
    let newest_record_ms: i64 = client
        .query_raw(&format!("SELECT max(event_time_ms) FROM {db}.token_use"))
        .fetch_one()
        .await
        .map_err(|e| classify_read(&e))?;
    let edges: Vec<EdgeRow> = client
        .query_raw(&format!(
            "SELECT source_project_id, source_project_path, target_project_id, \
             target_project_path, max(event_time_ms) AS last_used_ms \
             FROM {db}.token_use_dedup \
             WHERE same_project = 0 AND source_project_path != '' \
               AND target_project_path != '' \
               AND event_time_ms >= {newest_record_ms} - {lookback_ms} \
             GROUP BY source_project_id, source_project_path, target_project_id, \
               target_project_path"
        ))
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    let mut done = Hydrated {
        edges: edges.len(),
        ..Hydrated::default()
    };
    for e in edges {
        engine.remember_edge(
            project_key(e.source_project_id, &e.source_project_path),
            project_key(e.target_project_id, &e.target_project_path),
            e.last_used_ms,
        );
    }
    // Two windows back: the current bucket and the previous one can still receive findings.
    // Back from the older of the newest alert and the newest record: records are stored at
    // the pace of the slowest audit partition, where the replay starts, while alerts on audit
    // events of a partition that ran ahead can be much newer. (No records yet: max is 0, and
    // every alert is loaded; there are few then.)
    let alerts: Vec<StoredAlert> = client
        .query_raw(&format!(
            "SELECT {SELECT} FROM {db}.alerts_latest \
             WHERE last_seen_ms >= least((SELECT max(last_seen_ms) FROM {db}.alerts), \
                                         {newest_record_ms}) - {}",
            2 * suppression_window_ms
        ))
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    done.open_alerts = alerts.len();
    for row in alerts {
        engine.resume_alert(row.alert);
    }
    Ok(done)
}
