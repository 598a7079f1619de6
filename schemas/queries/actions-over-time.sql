-- actions-over-time: which actions a source performed in a target, per time bucket.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {bucket_ms:Int64} bucket width in milliseconds (3600000 = hourly, 86400000 = daily)
--   {limit:UInt64}    maximum rows
--
-- Buckets start at multiples of bucket_ms since 1970-01-01 UTC. With daily buckets (the
-- default), the sealed days that lie wholly inside the window are read from
-- token_use_pairs_sealed and the rest from token_use; any other width (hourly, weekly ...)
-- reads token_use only (without FINAL, uniqExact(record_key) and uniqExact(job_id)), which
-- is slower on a long history: a job's uses can fall on several days, so per-day job counts
-- do not add up to a wider bucket's. See schemas/README.md, "Reading the sealed days".
--
-- Example:
--   tokentrail query actions-over-time --project platform/ci-templates --bucket 1d --since 30d
SELECT
    toString(toDateTime(intDiv(bucket, 1000), 'UTC')) AS bucket_start,
    source,
    target,
    action,
    toUInt64(n) AS uses,
    toUInt64(j) AS jobs
FROM
(
    -- Three disjoint parts, each with one row per (bucket, source, target, action), so no
    -- outer GROUP BY is needed (it cost 0.7 s at 100M rows): a sealed day's (pair, action)
    -- has either one row (first part) or several (second), and the third reads only the
    -- buckets the sealed days do not cover.
    -- Sealed days wholly inside the window (daily buckets only), a (day, pair, action) with
    -- one row: its own use and job counts.
    SELECT
        day_ms AS bucket,
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(uses) AS n,
        toInt64(jobs) AS j
    FROM token_use_pairs_sealed
    PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
         AND variants = 1
         AND ({project:String} = ''
              OR source_project_path = {project:String}
              OR target_project_path = {project:String}
              OR toString(source_id) = {project:String}
              OR toString(target_id) = {project:String})
    WHERE {bucket_ms:Int64} = 86400000
      AND day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    UNION ALL
    -- The same for a (day, pair, action) with several rows (several project ids): their job
    -- ids are kept, so the distinct jobs across them are counted, not added.
    SELECT
        day_ms AS bucket,
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(sum(uses)) AS n,
        toInt64(length(groupUniqArrayArray(job_ids))) AS j
    FROM token_use_pairs_sealed
    PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
         AND variants > 1
         AND ({project:String} = ''
              OR source_project_path = {project:String}
              OR target_project_path = {project:String}
              OR toString(source_id) = {project:String}
              OR toString(target_id) = {project:String})
    WHERE {bucket_ms:Int64} = 86400000
      AND day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    GROUP BY bucket, source, target, action
    UNION ALL
    -- Every other bucket (partial buckets at the window's edges; every bucket when
    -- bucket_ms is not a whole number of days) from token_use.
    SELECT
        intDiv(event_time_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} AS bucket,
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(uniqExact(record_key)) AS n,
        toInt64(uniqExactIf(assumeNotNull(job_id), isNotNull(job_id))) AS j
    FROM token_use
    PREWHERE event_time_ms >= {from_ms:Int64}
         AND event_time_ms < {to_ms:Int64}
         AND NOT ({bucket_ms:Int64} = 86400000
                  AND intDiv(event_time_ms, 86400000) * 86400000 > 0
                  AND intDiv(event_time_ms, 86400000) * 86400000 >= {from_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {to_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 IN (SELECT day_ms FROM token_use_sealed_days))
    WHERE (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + 86401, 4294967295), 0))
           OR event_time >= toDateTime(({bucket_ms:Int64} = 86400000)
                  * greatest(least(intDiv({to_ms:Int64}, 1000) - 86401, 4294967295), 0))
           OR event_time < toDateTime(86401)
           OR event_time >= toDateTime(intDiv((SELECT day_ms FROM token_use_unsealed_from), 1000)))
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR toString(ifNull(source_project_id, 0)) = {project:String}
           OR toString(ifNull(target_project_id, 0)) = {project:String})
    GROUP BY bucket, source, target, action
)
ORDER BY bucket_start, source, target, action
LIMIT {limit:UInt64}
