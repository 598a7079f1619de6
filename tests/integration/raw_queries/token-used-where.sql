-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before it read the daily rollups or PREWHERE, scanning token_use with WHERE only
-- (with the same pipeline semantics: token_use.pipeline_id or the job's pipeline in jobs).
-- token-used-where: where a given job's, pipeline's or project's job token was used:
-- every (source -> target, action) it reached, with counts and first/last use.
--
-- Reads token_use without FINAL, which is what makes it fast: a replayed record is stored
-- again under the same record_key with the same content, so counts are uniqExact(record_key)
-- and max/min/argMax/uniqExact/any give the answer token_use_dedup would give.
--
-- Parameters:
--   {job_id:Int64}       the job (CI_JOB_ID) whose token was used; 0 = any job
--   {pipeline_id:Int64}  the pipeline whose jobs' tokens were used; 0 = any pipeline
--   {project:String}     the SOURCE project (path or numeric id) whose jobs' tokens were used; '' = any
--   {from_ms:Int64}      window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}        window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}       maximum rows
--
-- Example:
--   tokentrail query token-used-where --job 987654
--   tokentrail query token-used-where --project platform/app-backend --since 7d
SELECT
    source_project_path AS source,
    target_project_path AS target,
    action,
    uniqExact(record_key) AS uses,
    uniqExact(job_id) AS jobs,
    toString(toDateTime(intDiv(min(event_time_ms), 1000), 'UTC')) AS first_used,
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS last_used
FROM token_use
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({job_id:Int64} = 0 OR ifNull(job_id, 0) = {job_id:Int64})
  AND ({pipeline_id:Int64} = 0
       OR ifNull(pipeline_id, 0) = {pipeline_id:Int64}
       OR ifNull(job_id, 0) IN (SELECT job_id FROM jobs_latest
                                WHERE {pipeline_id:Int64} != 0
                                  AND ifNull(pipeline_id, 0) = {pipeline_id:Int64}))
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND ifNull(source_project_id, 0) = toInt64OrZero({project:String})))
GROUP BY source_project_path, target_project_path, action
ORDER BY source, target, action
LIMIT {limit:UInt64}
