-- actions-over-time: which actions a source performed in a target, per time bucket.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {bucket_ms:Int64} bucket width in milliseconds (3600000 = hourly, 86400000 = daily)
--   {limit:UInt64}    maximum rows
--
-- Buckets start at multiples of bucket_ms since 1970-01-01 UTC. When bucket_ms is a whole
-- number of days, the buckets that lie wholly inside the window are read from the daily
-- rollup token_use_pairs_daily and the rest from token_use; any other width (hourly, 6h ...)
-- reads token_use only (without FINAL, uniqExact(record_key) and uniqExact(job_id)), which
-- is slower on a long history. Buckets wider than a day merge the rollup's per-day job sets,
-- which costs more than daily buckets. See schemas/README.md, "Reading the rollups".
--
-- Example:
--   tokentrail query actions-over-time --project platform/ci-templates --bucket 1d --since 30d
SELECT
    toString(toDateTime(intDiv(bucket, 1000), 'UTC')) AS bucket_start,
    source,
    target,
    action,
    toUInt64(sum(n)) AS uses,
    toUInt64(sum(j)) AS jobs
FROM
(
    -- Rollup rows of whole buckets: each row's own use and job counts.
    SELECT
        intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} AS bucket,
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(finalizeAggregation(uses)) AS n,
        toInt64(finalizeAggregation(jobs)) - toInt64(finalizeAggregation(has_null_job)) AS j
    FROM token_use_pairs_daily
    PREWHERE {project:String} = ''
         OR source_project_path = {project:String}
         OR target_project_path = {project:String}
         OR toString(source_id) = {project:String}
         OR toString(target_id) = {project:String}
    WHERE {bucket_ms:Int64} % 86400000 = 0
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} > 0
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} >= {from_ms:Int64}
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} + {bucket_ms:Int64} <= {to_ms:Int64}
    UNION ALL
    -- A (bucket, source, target, action) with several rollup rows (several days, project
    -- ids or unmerged parts): what a use or a job counted more than once above (the merged
    -- count minus the sum of the rows' counts).
    SELECT
        intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} AS bucket,
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(uniqExactMerge(uses)) - toInt64(sum(finalizeAggregation(uses))) AS n,
        toInt64(uniqExactMerge(jobs)) - toInt64(maxMerge(has_null_job))
            - (toInt64(sum(finalizeAggregation(jobs))) - toInt64(sum(finalizeAggregation(has_null_job)))) AS j
    FROM token_use_pairs_daily
    PREWHERE cityHash64(intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64}, pair_hash, toString(action)) IN
                 (SELECT cityHash64(intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64}, pair_hash, toString(action)) AS g
                  FROM token_use_pairs_daily
                  WHERE {bucket_ms:Int64} % 86400000 = 0
                    AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} > 0
                    AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} >= {from_ms:Int64}
                    AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} + {bucket_ms:Int64} <= {to_ms:Int64}
                  GROUP BY g HAVING count() > 1)
    WHERE {bucket_ms:Int64} % 86400000 = 0
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} > 0
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} >= {from_ms:Int64}
      AND intDiv(day_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} + {bucket_ms:Int64} <= {to_ms:Int64}
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR toString(source_id) = {project:String}
           OR toString(target_id) = {project:String})
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
        toInt64(uniqExact(job_id)) AS j
    FROM token_use
    PREWHERE event_time_ms >= {from_ms:Int64}
         AND event_time_ms < {to_ms:Int64}
         AND NOT ({bucket_ms:Int64} % 86400000 = 0
                  AND intDiv(event_time_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} > 0
                  AND intDiv(event_time_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} >= {from_ms:Int64}
                  AND intDiv(event_time_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} + {bucket_ms:Int64} <= {to_ms:Int64})
    WHERE (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + intDiv({bucket_ms:Int64}, 1000) + 1, 4294967295), 0))
           OR event_time >= toDateTime(({bucket_ms:Int64} % 86400000 = 0)
                  * greatest(least(intDiv({to_ms:Int64}, 1000) - intDiv({bucket_ms:Int64}, 1000) - 1, 4294967295), 0))
           OR event_time < toDateTime(greatest(least(intDiv({bucket_ms:Int64}, 1000) + 1, 4294967295), 0)))
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR toString(ifNull(source_project_id, 0)) = {project:String}
           OR toString(ifNull(target_project_id, 0)) = {project:String})
    GROUP BY bucket, source, target, action
)
GROUP BY bucket, source, target, action
ORDER BY bucket_start, source, target, action
LIMIT {limit:UInt64}
