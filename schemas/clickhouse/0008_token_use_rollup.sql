-- Daily rollups of token_use, so the named queries that aggregate the whole history
-- (latest-use, actors, actor-kinds, actions-over-time, allowlist-vs-use) read a few hundred
-- thousand rows instead of every use. Fed by materialized views on every insert into
-- token_use; the migration backfills the rows token_use already holds.
--
-- Duplicate-proof by construction: token_use receives the same record again when a replay
-- re-emits it (same record_key, same content), and a materialized view sees every insert.
-- So the rollups hold only states that a second copy of a record cannot change:
--   * uses        uniqExact set of sipHash64(record_key) (never count() or sum())
--   * jobs        uniqExact set of job ids (NULL job ids stored as the sentinel
--                 -9223372036854775808, flagged by has_null_job so it is not counted)
--   * last*       max of a tuple that starts with (event_time_ms, action, record_key): the
--                 latest use, ties broken as the raw queries break them; the remaining
--                 elements are the values the queries report for that use
--   * names       max (deterministic, and the same for every copy of a record)
-- and every key column is a function of the record's content (day, paths, ids, action,
-- actor), so each record lands in exactly one rollup row: summing the per-row use counts
-- over rows counts every record once. The *_hash columns are cityHash64 of key columns,
-- computed by the views so queries can group and filter on one UInt64; they end the
-- ORDER BY (a function of the key changes no grouping, and modern servers refuse plain
-- columns outside the sorting key of an AggregatingMergeTree). Queries must still GROUP BY the full key (parts are
-- merged in the background; until then one key can have a row in several parts).
--
-- day_ms is intDiv(event_time_ms, 86400000) * 86400000, the UTC day. The queries use a day
-- only when it lies inside the window (day_ms > 0 AND day_ms >= from_ms AND
-- day_ms + 86400000 <= to_ms) and read the other uses of the window from token_use.
-- Retention: a day expires when its last millisecond would expire from token_use.

CREATE TABLE IF NOT EXISTS {{db}}.token_use_pairs_daily
(
    target_project_path String,
    source_project_path String,
    day_ms              Int64,
    action              {{lc_string}},
    target_id           Int64,
    source_id           Int64,
    same_project        UInt8,
    uses                AggregateFunction(uniqExact, UInt64),
    jobs                AggregateFunction(uniqExact, Int64),
    has_null_job        AggregateFunction(max, UInt8),
    last_ms             AggregateFunction(max, Int64),
    last_use            AggregateFunction(max, String),
    last_job            AggregateFunction(max, String),
    last_allowlisted    AggregateFunction(max, String),
    pair_hash           UInt64,
    key_hash            UInt64
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(day_ms, 1000)))
ORDER BY (target_project_path, source_project_path, day_ms, action, target_id, source_id, same_project,
          pair_hash, key_hash)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_pairs_daily_mv
TO {{db}}.token_use_pairs_daily
AS SELECT
    target_project_path,
    source_project_path,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms,
    action,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    same_project,
    uniqExactState(sipHash64(record_key)) AS uses,
    uniqExactState(ifNull(job_id, toInt64(-9223372036854775808))) AS jobs,
    maxState(toUInt8(isNull(job_id))) AS has_null_job,
    maxState(event_time_ms) AS last_ms,
    maxState(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), toString(action), '\0', record_key,
                    '\0', toString(actor_kind), '\0', actor_name)) AS last_use,
    maxState(concat(toString(toUInt8(isNotNull(job_id))), hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), toString(action), '\0', record_key,
                    '\0', toString(ifNull(job_id, 0)))) AS last_job,
    maxState(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), record_key, '\0', toString(ifNull(allowlisted, 2)))) AS last_allowlisted,
    cityHash64(target_project_path, source_project_path) AS pair_hash,
    cityHash64(target_project_path, source_project_path, day_ms, toString(action), target_id, source_id, same_project) AS key_hash
FROM {{db}}.token_use
GROUP BY target_project_path, source_project_path, day_ms, action, target_id, source_id, same_project;

CREATE TABLE IF NOT EXISTS {{db}}.token_use_actors_daily
(
    actor_kind          {{lc_string}},
    actor_id            Int64,
    day_ms              Int64,
    target_project_path String,
    source_project_path String,
    target_id           Int64,
    source_id           Int64,
    uses                AggregateFunction(uniqExact, UInt64),
    last_ms             AggregateFunction(max, Int64),
    name                AggregateFunction(max, String),
    username            AggregateFunction(max, String),
    source_hash         UInt64,
    target_hash         UInt64,
    key_hash            UInt64
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(day_ms, 1000)))
ORDER BY (actor_kind, actor_id, day_ms, target_project_path, source_project_path, target_id, source_id,
          source_hash, target_hash, key_hash)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_actors_daily_mv
TO {{db}}.token_use_actors_daily
AS SELECT
    actor_kind,
    actor_id,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms,
    target_project_path,
    source_project_path,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    uniqExactState(sipHash64(record_key)) AS uses,
    maxState(event_time_ms) AS last_ms,
    maxState(actor_name) AS name,
    maxState(ifNull(actor_username, '')) AS username,
    cityHash64(source_project_path) AS source_hash,
    cityHash64(target_project_path) AS target_hash,
    cityHash64(toString(actor_kind), actor_id, day_ms, target_project_path, source_project_path, target_id, source_id) AS key_hash
FROM {{db}}.token_use
GROUP BY actor_kind, actor_id, day_ms, target_project_path, source_project_path, target_id, source_id;

-- Backfill: the rows token_use held before the views existed. The views are created first,
-- so a use inserted while this runs is seen by the view, by this INSERT, or by both, which
-- the duplicate-proof states absorb; for the same reason re-running the migration after a
-- failure part-way is safe.
INSERT INTO {{db}}.token_use_pairs_daily
SELECT
    target_project_path,
    source_project_path,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms,
    action,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    same_project,
    uniqExactState(sipHash64(record_key)) AS uses,
    uniqExactState(ifNull(job_id, toInt64(-9223372036854775808))) AS jobs,
    maxState(toUInt8(isNull(job_id))) AS has_null_job,
    maxState(event_time_ms) AS last_ms,
    maxState(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), toString(action), '\0', record_key,
                    '\0', toString(actor_kind), '\0', actor_name)) AS last_use,
    maxState(concat(toString(toUInt8(isNotNull(job_id))), hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), toString(action), '\0', record_key,
                    '\0', toString(ifNull(job_id, 0)))) AS last_job,
    maxState(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))), record_key, '\0', toString(ifNull(allowlisted, 2)))) AS last_allowlisted,
    cityHash64(target_project_path, source_project_path) AS pair_hash,
    cityHash64(target_project_path, source_project_path, day_ms, toString(action), target_id, source_id, same_project) AS key_hash
FROM {{db}}.token_use
GROUP BY target_project_path, source_project_path, day_ms, action, target_id, source_id, same_project;

INSERT INTO {{db}}.token_use_actors_daily
SELECT
    actor_kind,
    actor_id,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms,
    target_project_path,
    source_project_path,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    uniqExactState(sipHash64(record_key)) AS uses,
    maxState(event_time_ms) AS last_ms,
    maxState(actor_name) AS name,
    maxState(ifNull(actor_username, '')) AS username,
    cityHash64(source_project_path) AS source_hash,
    cityHash64(target_project_path) AS target_hash,
    cityHash64(toString(actor_kind), actor_id, day_ms, target_project_path, source_project_path, target_id, source_id) AS key_hash
FROM {{db}}.token_use
GROUP BY actor_kind, actor_id, day_ms, target_project_path, source_project_path, target_id, source_id;
