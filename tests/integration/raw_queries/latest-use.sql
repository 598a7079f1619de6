-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before the daily rollups (0008), reading every use through token_use_dedup (FINAL).
-- Only change: `any` replaced by the deterministic `max` the rollup version uses.
-- latest-use: the most recent job-token use per (source project -> target project), with
-- the action it performed, who ran the job and how often the pair was seen in the window.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Ties at the same millisecond are broken by (action, record_key), so the answer is
-- deterministic on every engine.
--
-- Example:
--   clickhouse-client -d tokentrail --param_project='' --param_from_ms=0 \
--     --param_to_ms=4102444800000 --param_limit=50 --queries-file schemas/queries/latest-use.sql
--   tokentrail query latest-use --since 30d
SELECT
    source_project_path AS source,
    target_project_path AS target,
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS last_used,
    argMax(action, (event_time_ms, action, record_key)) AS last_action,
    argMax(actor_name, (event_time_ms, action, record_key)) AS last_actor,
    argMax(actor_kind, (event_time_ms, action, record_key)) AS last_actor_kind,
    argMax(job_id, (event_time_ms, action, record_key)) AS last_job_id,
    count() AS uses
FROM token_use_dedup
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR toString(ifNull(source_project_id, 0)) = {project:String}
       OR toString(ifNull(target_project_id, 0)) = {project:String})
GROUP BY source_project_path, target_project_path
ORDER BY max(event_time_ms) DESC, source, target
LIMIT {limit:UInt64}
