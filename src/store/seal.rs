//! Seals whole UTC days of `token_use` into the summaries the named queries read
//! (`token_use_pairs_sealed`, `token_use_actors_sealed`; migration 0011 says why a seal
//! stays exact under replays). `tokentrail seal` runs one pass; ingest runs one every
//! `clickhouse.seal_every_secs`.
//!
//! A pass: read each ended day's insert count that no seal has yet, summarize those days
//! from `token_use` (deduplicated by `record_key`), then record the counts as read before
//! the summaries. The order matters: a row inserted after the count was read raises the
//! day's count above the seal's, so the day is read from `token_use` until the next pass.

use clickhouse::Client;

use super::read::{ReadError, classify_read};

pub const DAY_MS: i64 = 86_400_000;

/// A day that needs sealing: its first millisecond and its insert count, read before it is
/// summarized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct DayCount {
    pub day_ms: i64,
    pub inserted: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SealReport {
    /// Days sealed in this pass (first sealings and re-sealings).
    pub days: usize,
}

/// The last day a seal may cover: its rows are found through `event_time` (a `DateTime`
/// on 18.16, which ends in 2106), so a later day, which only a sender with a wrong clock
/// can produce, is never sealed and always read from `token_use`.
pub const LAST_SEALABLE_DAY_MS: i64 = (u32::MAX as i64 / 86_400 - 1) * DAY_MS;

/// The days that ended before `ended_before_ms` whose insert count no seal records, oldest
/// first.
pub fn days_to_seal_sql(ended_before_ms: i64) -> String {
    format!(
        "SELECT day_ms, toUInt64(sum(rows)) AS inserted FROM token_use_day_inserts \
         WHERE day_ms > 0 AND day_ms + {DAY_MS} <= {ended_before_ms} \
         AND day_ms <= {LAST_SEALABLE_DAY_MS} \
         GROUP BY day_ms \
         HAVING (day_ms, inserted) NOT IN (SELECT day_ms, inserted_rows FROM token_use_seals) \
         ORDER BY day_ms"
    )
}

/// A sealing time later than every seal already recorded (so the newest of a day's valid
/// seals is the one just written, even with a clock that stepped back).
pub fn sealed_at_sql() -> &'static str {
    "SELECT toInt64(max(sealed_at_ms)) FROM token_use_seals"
}

/// Days grouped into chunks of one month at most, each summarized by one statement per table
/// (a month is one partition of `token_use`).
fn chunks(days: &[DayCount]) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    for d in days {
        let month = month_of(d.day_ms);
        match out.last_mut() {
            Some(chunk) if month_of(chunk[0]) == month && chunk.len() < 31 => chunk.push(d.day_ms),
            _ => out.push(vec![d.day_ms]),
        }
    }
    out
}

fn month_of(day_ms: i64) -> (i32, u32) {
    use chrono::Datelike;
    let d = chrono::DateTime::from_timestamp_millis(day_ms).unwrap_or_default();
    (d.year(), d.month())
}

/// The `token_use` rows of `days` (UTC day starts, ascending, within one month).
fn day_filter(days: &[i64]) -> String {
    let list = days
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (first, last) = (days[0], days[days.len() - 1]);
    format!(
        "PREWHERE intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} IN ({list}) \
         WHERE event_time >= toDateTime({}) AND event_time < toDateTime({})",
        first / 1000,
        last / 1000 + 86_400
    )
}

/// The latest use of a group as one string whose `max` is that use: the time (sign-flipped,
/// big-endian hex, so it sorts as a string), then the fields the queries report. Ties at one
/// millisecond are broken by (action, record_key), as the raw queries break them.
const TIME_HEX: &str = "hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8)))";

/// The statements that summarize `days` into both sealed tables, stamped `sealed_at_ms`.
fn summarize_sql(days: &[DayCount], sealed_at_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in chunks(days) {
        let filter = day_filter(&chunk);
        out.push(format!(
            "INSERT INTO token_use_pairs_sealed (day_ms, sealed_at_ms, target_project_path, \
             source_project_path, action, target_id, source_id, same_project, uses, jobs, last_ms, \
             last_use, last_job, last_allowlisted, variants, job_ids, first_ms) \
             SELECT day, toInt64({sealed_at_ms}), target_project_path, source_project_path, action, \
             target, source, same_project, uses, toUInt64(length(job_set)), last, last_use, last_job, \
             last_allowlisted, variants, job_set, earliest \
             FROM (SELECT intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} AS day, \
             target_project_path, source_project_path, action, \
             ifNull(target_project_id, 0) AS target, ifNull(source_project_id, 0) AS source, same_project, \
             toUInt64(uniqExact(record_key)) AS uses, groupUniqArrayIf(assumeNotNull(job_id), isNotNull(job_id)) AS job_set, \
             max(event_time_ms) AS last, min(event_time_ms) AS earliest, \
             max(concat({TIME_HEX}, toString(action), '\\0', record_key, '\\0', toString(actor_kind), '\\0', actor_name)) AS last_use, \
             max(concat(toString(toUInt8(isNotNull(job_id))), {TIME_HEX}, toString(action), '\\0', record_key, '\\0', toString(ifNull(job_id, 0)))) AS last_job, \
             max(concat({TIME_HEX}, record_key, '\\0', toString(ifNull(allowlisted, 2)))) AS last_allowlisted \
             FROM token_use {filter} \
             GROUP BY day, target_project_path, source_project_path, action, target, source, same_project) AS by_ids \
             ANY LEFT JOIN (SELECT intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} AS day, \
             target_project_path, source_project_path, action, \
             toUInt64(uniqExact(ifNull(target_project_id, 0), ifNull(source_project_id, 0), same_project)) AS variants \
             FROM token_use {filter} \
             GROUP BY day, target_project_path, source_project_path, action) AS by_action \
             USING (day, target_project_path, source_project_path, action)"
        ));
        out.push(format!(
            "INSERT INTO token_use_actors_sealed (day_ms, sealed_at_ms, actor_kind, actor_id, \
             target_project_path, source_project_path, target_id, source_id, uses, last_ms, name, username, \
             source_hash, target_hash) \
             SELECT intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} AS day, toInt64({sealed_at_ms}), \
             actor_kind, actor_id, target_project_path, source_project_path, \
             ifNull(target_project_id, 0) AS target, ifNull(source_project_id, 0) AS source, \
             toUInt64(uniqExact(record_key)), max(event_time_ms), max(actor_name), max(ifNull(actor_username, '')), \
             cityHash64(source_project_path), cityHash64(target_project_path) \
             FROM token_use {filter} \
             GROUP BY day, actor_kind, actor_id, target_project_path, source_project_path, target, source"
        ));
    }
    out
}

/// Records the seals, after their summaries are written.
fn record_seals_sql(days: &[DayCount], sealed_at_ms: i64) -> String {
    let values = days
        .iter()
        .map(|d| format!("({}, {}, {sealed_at_ms})", d.day_ms, d.inserted))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO token_use_seals (day_ms, inserted_rows, sealed_at_ms) VALUES {values}")
}

/// The statements of one pass over `days` (as `days_to_seal_sql` listed them), in order:
/// the summaries, then the seals. `latest_sealed_at_ms` is `sealed_at_sql`'s answer; the
/// pass is stamped later than it and no earlier than `now_ms`.
pub fn pass_sql(days: &[DayCount], now_ms: i64, latest_sealed_at_ms: i64) -> Vec<String> {
    let sealed_at_ms = now_ms.max(latest_sealed_at_ms + 1);
    let mut statements = summarize_sql(days, sealed_at_ms);
    // In chunks, so one statement stays small after a long outage.
    statements.extend(days.chunks(1000).map(|c| record_seals_sql(c, sealed_at_ms)));
    statements
}

/// One pass over the client's database: seals every day that ended before `now_ms` and
/// changed since its last seal. On a cluster (`clickhouse.cluster`) each replica may take
/// inserts and seal, so two more steps keep a seal exact on every replica:
///   * before summarizing, this replica fetches every part of token_use logged so far
///     (`SYSTEM SYNC REPLICA`): a count read here may include rows another replica took,
///     whose insert logged its token_use part before the view's count part;
///   * the summaries are written with `insert_quorum` of every replica, so a seal, written
///     after them, never reaches a replica before its summaries do. With a replica down the
///     pass fails and its days are read from token_use until a later pass.
pub async fn seal(
    client: &Client,
    now_ms: i64,
    cluster: Option<&str>,
) -> Result<SealReport, ReadError> {
    let run = |client: Client, sql: String| async move {
        client
            .query(&sql)
            .execute()
            .await
            .map_err(|e| classify_read(&e))
    };
    let days: Vec<DayCount> = client
        .query(&days_to_seal_sql(now_ms))
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    if days.is_empty() {
        return Ok(SealReport::default());
    }
    let writer = match cluster {
        None => client.clone(),
        Some(cluster) => {
            let replicas = replica_count(client, cluster).await?;
            run(client.clone(), SYNC_TOKEN_USE.to_string()).await?;
            client
                .clone()
                .with_setting("insert_quorum", replicas.to_string())
                .with_setting("insert_quorum_timeout", QUORUM_TIMEOUT_MS.to_string())
        }
    };
    let latest: i64 = client
        .query(sealed_at_sql())
        .fetch_one()
        .await
        .map_err(|e| classify_read(&e))?;
    for sql in pass_sql(&days, now_ms, latest) {
        run(writer.clone(), sql).await?;
    }
    Ok(SealReport { days: days.len() })
}

/// Fetches the parts of token_use other replicas logged (waits for this replica's queue).
const SYNC_TOKEN_USE: &str = "SYSTEM SYNC REPLICA token_use";

/// How long a summary waits for every replica to have it before the pass fails.
const QUORUM_TIMEOUT_MS: u64 = 60_000;

/// The replicas of the one shard of `cluster`, as this server's `remote_servers` lists them.
async fn replica_count(client: &Client, cluster: &str) -> Result<u64, ReadError> {
    let replicas: u64 = client
        .query("SELECT toUInt64(count()) FROM system.clusters WHERE cluster = ?")
        .bind(cluster)
        .fetch_one()
        .await
        .map_err(|e| classify_read(&e))?;
    if replicas == 0 {
        return Err(ReadError::Fatal {
            code: None,
            message: format!(
                "clickhouse.cluster {cluster:?} is not in the server's remote_servers"
            ),
        });
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> DayCount {
        DayCount {
            day_ms: n * DAY_MS,
            inserted: 1,
        }
    }

    #[test]
    fn days_are_summarized_one_month_per_statement() {
        // 2024-01-30 .. 2024-02-02: two months.
        let jan30 = 19_752;
        let days: Vec<DayCount> = (jan30..jan30 + 4).map(day).collect();
        let sql = summarize_sql(&days, 7);
        assert_eq!(sql.len(), 4, "two months, two tables each");
        assert!(sql[0].contains(&format!(
            "IN ({}, {})",
            jan30 * DAY_MS,
            (jan30 + 1) * DAY_MS
        )));
        assert!(sql[2].contains(&format!(
            "IN ({}, {})",
            (jan30 + 2) * DAY_MS,
            (jan30 + 3) * DAY_MS
        )));
        assert!(sql.iter().all(|s| s.contains("toInt64(7)")));
    }

    #[test]
    fn a_pass_is_stamped_after_every_earlier_seal_and_records_its_seals_last() {
        let days = [day(19_752)];
        let sql = pass_sql(&days, 100, 500);
        assert!(
            sql[0].contains("toInt64(501)"),
            "a clock behind the last seal: {}",
            sql[0]
        );
        assert!(
            sql.last()
                .unwrap()
                .starts_with("INSERT INTO token_use_seals")
        );
        assert!(sql.last().unwrap().ends_with(", 501)"));
        assert!(pass_sql(&days, 900, 500)[0].contains("toInt64(900)"));
    }

    #[test]
    fn the_day_filter_bounds_the_partitions_read() {
        let f = day_filter(&[DAY_MS, 3 * DAY_MS]);
        assert!(f.contains("event_time >= toDateTime(86400)"), "{f}");
        assert!(f.contains("event_time < toDateTime(345600)"), "{f}");
    }

    #[test]
    fn seals_record_the_counts_read_before_summarizing() {
        let sql = record_seals_sql(
            &[DayCount {
                day_ms: DAY_MS,
                inserted: 42,
            }],
            9,
        );
        assert!(sql.ends_with("VALUES (86400000, 42, 9)"), "{sql}");
    }
}
