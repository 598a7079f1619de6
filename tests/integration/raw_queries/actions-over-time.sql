-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before the daily rollups (0008), reading every use through token_use_dedup (FINAL).
-- Only change: `any` replaced by the deterministic `max` the rollup version uses.
-- actions-over-time: which actions a source performed in a target, per time bucket.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {bucket_ms:Int64} bucket width in milliseconds (3600000 = hourly, 86400000 = daily)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query actions-over-time --project platform/ci-templates --bucket 1d --since 30d
SELECT
    toString(toDateTime(intDiv(intDiv(event_time_ms, {bucket_ms:Int64}) * {bucket_ms:Int64}, 1000), 'UTC')) AS bucket_start,
    source_project_path AS source,
    target_project_path AS target,
    action,
    count() AS uses,
    uniqExact(job_id) AS jobs
FROM token_use_dedup
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR toString(ifNull(source_project_id, 0)) = {project:String}
       OR toString(ifNull(target_project_id, 0)) = {project:String})
GROUP BY bucket_start, source, target, action
ORDER BY bucket_start, source, target, action
LIMIT {limit:UInt64}
