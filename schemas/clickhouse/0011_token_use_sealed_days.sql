-- Sealed days of token_use: the daily summaries the named queries read instead of the whole
-- history, with state that grows with the (day, pair) combinations, not with the records.
-- Replaces the daily rollups of 0008, whose duplicate-proof sets of record hashes grew with
-- every record (9 of 15 query forms over 1 s at 100M rows, benches/queries.md).
--
-- How a replay cannot change an answer: a summary is not fed by the inserts (which repeat
-- records on a replay) but computed from token_use, deduplicated (uniqExact(record_key)),
-- for whole UTC days at once by `tokentrail seal` (src/store/seal.rs; ingest runs it on a
-- timer). A summary is used only while its day is unchanged since it was computed:
--   * token_use_day_inserts counts the rows ever inserted per day (a view on every insert;
--     a replay adds to it, merges never subtract from it);
--   * token_use_seals records, per sealing of a day, that count as read *before* the day's
--     rows were summarized, and is written after the summary rows;
--   * token_use_sealed_days lists the days whose current count equals a seal's count, with
--     the latest such sealing. Any insert into a day after its seal (late records, a replay)
--     raises the count, so the day is read from token_use again until it is resealed.
-- Queries read the summaries of sealed days that lie wholly inside the window and token_use
-- for everything else (schemas/README.md, "Reading the sealed days").

DROP TABLE IF EXISTS {{db}}.token_use_pairs_daily_mv;
DROP TABLE IF EXISTS {{db}}.token_use_actors_daily_mv;
DROP TABLE IF EXISTS {{db}}.token_use_pairs_daily;
DROP TABLE IF EXISTS {{db}}.token_use_actors_daily;

CREATE TABLE IF NOT EXISTS {{db}}.token_use_day_inserts
(
    day_ms Int64,
    rows   UInt64
)
ENGINE = SummingMergeTree()
ORDER BY day_ms
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_day_inserts_mv
TO {{db}}.token_use_day_inserts
AS SELECT
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms,
    count() AS rows
FROM {{db}}.token_use
GROUP BY day_ms;

CREATE TABLE IF NOT EXISTS {{db}}.token_use_seals
(
    day_ms        Int64,
    inserted_rows UInt64,
    sealed_at_ms  Int64
)
ENGINE = MergeTree()
ORDER BY (day_ms, sealed_at_ms)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE VIEW IF NOT EXISTS {{db}}.token_use_sealed_days AS
SELECT day_ms, max(sealed_at_ms) AS sealed_at_ms
FROM {{db}}.token_use_seals
WHERE (day_ms, inserted_rows) IN (SELECT day_ms, toUInt64(sum(rows)) FROM {{db}}.token_use_day_inserts GROUP BY day_ms)
GROUP BY day_ms;

-- The first day after 1970-01-01 that token_use holds and no valid seal covers (2100-01-01
-- when every day is sealed): the queries read token_use from there on, besides the edges of
-- their window, and a condition on it lets the partition index skip the sealed months.
CREATE VIEW IF NOT EXISTS {{db}}.token_use_unsealed_from AS
SELECT if(count() = 0, toInt64(4102444800000), min(unsealed)) AS day_ms
FROM
(
    SELECT day_ms AS unsealed
    FROM {{db}}.token_use_day_inserts
    WHERE day_ms > 0 AND day_ms NOT IN (SELECT day_ms FROM {{db}}.token_use_sealed_days)
);

-- One row per (day, pair, action, ids, same_project) and sealing. last_use, last_job and
-- last_allowlisted are the encoded "latest use" strings of src/store/seal.rs (max of a
-- string that starts with the use's time, so max picks the latest use). Use counts of rows
-- add up (a record is in one row); job counts do not across days (a job's uses can span
-- midnight) or across the rows of one (day, pair, action) with several project ids
-- (`variants` > 1), so each row keeps its distinct job ids (`job_ids`) for the queries that
-- count jobs over more than one row.
CREATE TABLE IF NOT EXISTS {{db}}.token_use_pairs_sealed
(
    day_ms              Int64,
    sealed_at_ms        Int64,
    target_project_path String,
    source_project_path String,
    action              {{lc_string}},
    target_id           Int64,
    source_id           Int64,
    same_project        UInt8,
    uses                UInt64,
    jobs                UInt64,
    last_ms             Int64,
    last_use            String,
    last_job            String,
    last_allowlisted    String,
    variants            UInt64,
    job_ids             Array(Int64),
    first_ms            Int64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(day_ms, 1000)))
ORDER BY (target_project_path, source_project_path, day_ms, action, target_id, source_id, same_project, sealed_at_ms)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS {{db}}.token_use_actors_sealed
(
    day_ms              Int64,
    sealed_at_ms        Int64,
    actor_kind          {{lc_string}},
    actor_id            Int64,
    target_project_path String,
    source_project_path String,
    target_id           Int64,
    source_id           Int64,
    uses                UInt64,
    last_ms             Int64,
    name                String,
    username            String,
    source_hash         UInt64,
    target_hash         UInt64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(day_ms, 1000)))
ORDER BY (actor_kind, actor_id, day_ms, target_project_path, source_project_path, target_id, source_id, sealed_at_ms)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

-- Every (target, source) pair token_use holds, with the latest day it was seen (so a pair
-- expires with its last use): known-projects and token-used-where --project read it.
CREATE TABLE IF NOT EXISTS {{db}}.token_use_pairs
(
    target_project_path String,
    source_project_path String,
    target_id           Int64,
    source_id           Int64,
    day_ms              Int64
)
ENGINE = ReplacingMergeTree(day_ms)
ORDER BY (target_project_path, source_project_path, target_id, source_id)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_pairs_mv
TO {{db}}.token_use_pairs
AS SELECT
    target_project_path,
    source_project_path,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    max(intDiv(event_time_ms, 86400000) * 86400000) AS day_ms
FROM {{db}}.token_use
GROUP BY target_project_path, source_project_path, target_id, source_id;

-- Where each job's and pipeline's records are: the (target, source) pairs and days, so
-- token-used-where --job/--pipeline reads only those pairs' granules of those months.
CREATE TABLE IF NOT EXISTS {{db}}.token_use_jobs
(
    job_id              Int64,
    target_project_path String,
    source_project_path String,
    day_ms              Int64
)
ENGINE = ReplacingMergeTree()
ORDER BY (job_id, target_project_path, source_project_path, day_ms)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_jobs_mv
TO {{db}}.token_use_jobs
AS SELECT
    assumeNotNull(job_id) AS job_id,
    target_project_path,
    source_project_path,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms
FROM {{db}}.token_use
WHERE isNotNull(job_id)
GROUP BY job_id, target_project_path, source_project_path, day_ms;

CREATE TABLE IF NOT EXISTS {{db}}.token_use_pipelines
(
    pipeline_id         Int64,
    target_project_path String,
    source_project_path String,
    day_ms              Int64
)
ENGINE = ReplacingMergeTree()
ORDER BY (pipeline_id, target_project_path, source_project_path, day_ms)
{{ttl:intDiv(day_ms, 1000) + 86399}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_pipelines_mv
TO {{db}}.token_use_pipelines
AS SELECT
    assumeNotNull(pipeline_id) AS pipeline_id,
    target_project_path,
    source_project_path,
    intDiv(event_time_ms, 86400000) * 86400000 AS day_ms
FROM {{db}}.token_use
WHERE isNotNull(pipeline_id)
GROUP BY pipeline_id, target_project_path, source_project_path, day_ms;

-- The uses outside the allowlist (allowlisted = 0, not same-project; a fraction of a percent of
-- the records), copied with the columns outside-allowlist reads. A replay copies a record
-- again, which that query's uniqExact/min/max/groupUniqArray cannot see.
CREATE TABLE IF NOT EXISTS {{db}}.token_use_outside_allowlist
(
    target_project_path String,
    source_project_path String,
    target_id           Int64,
    source_id           Int64,
    event_time_ms       Int64,
    record_key          String,
    job_id              Nullable(Int64),
    action              {{lc_string}},
    actor_id            Int64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(event_time_ms, 1000)))
ORDER BY (target_project_path, source_project_path, event_time_ms)
{{ttl:intDiv(event_time_ms, 1000)}}
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.token_use_outside_allowlist_mv
TO {{db}}.token_use_outside_allowlist
AS SELECT
    target_project_path,
    source_project_path,
    ifNull(target_project_id, 0) AS target_id,
    ifNull(source_project_id, 0) AS source_id,
    event_time_ms,
    record_key,
    job_id,
    action,
    actor_id
FROM {{db}}.token_use
WHERE allowlisted = 0 AND same_project = 0;

-- Backfill from the rows token_use already holds. The views exist first, so a row inserted
-- while this runs may be counted by both: the day counts then stay above what a seal reads
-- only by rows that the seal's summary also holds (a count only needs to grow with every
-- insert), the three lookup tables collapse repeats, and outside-allowlist's reader cannot
-- see a repeated record.
INSERT INTO {{db}}.token_use_day_inserts
SELECT intDiv(event_time_ms, 86400000) * 86400000 AS day_ms, count() AS rows
FROM {{db}}.token_use
GROUP BY day_ms;

INSERT INTO {{db}}.token_use_pairs
SELECT target_project_path, source_project_path, ifNull(target_project_id, 0) AS target_id,
       ifNull(source_project_id, 0) AS source_id, max(intDiv(event_time_ms, 86400000) * 86400000) AS day_ms
FROM {{db}}.token_use
GROUP BY target_project_path, source_project_path, target_id, source_id;

INSERT INTO {{db}}.token_use_jobs
SELECT assumeNotNull(job_id) AS job_id, target_project_path, source_project_path,
       intDiv(event_time_ms, 86400000) * 86400000 AS day_ms
FROM {{db}}.token_use
WHERE isNotNull(job_id)
GROUP BY job_id, target_project_path, source_project_path, day_ms;

INSERT INTO {{db}}.token_use_pipelines
SELECT assumeNotNull(pipeline_id) AS pipeline_id, target_project_path, source_project_path,
       intDiv(event_time_ms, 86400000) * 86400000 AS day_ms
FROM {{db}}.token_use
WHERE isNotNull(pipeline_id)
GROUP BY pipeline_id, target_project_path, source_project_path, day_ms;

INSERT INTO {{db}}.token_use_outside_allowlist
SELECT target_project_path, source_project_path, ifNull(target_project_id, 0) AS target_id,
       ifNull(source_project_id, 0) AS source_id, event_time_ms, record_key, job_id, action, actor_id
FROM {{db}}.token_use
WHERE allowlisted = 0 AND same_project = 0;
