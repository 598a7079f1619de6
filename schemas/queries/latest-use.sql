-- latest-use: the most recent job-token use per (source project -> target project), with
-- the action it performed, who ran the job and how often the pair was seen in the window.
--
-- Reads token_use without FINAL, which is what makes it fast: a replayed record is stored
-- again under the same record_key with the same content, so counts are uniqExact(record_key)
-- and max/min/argMax/uniqExact/any give the answer token_use_dedup would give.
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
    tupleElement(argMax((action, actor_name, actor_kind), (event_time_ms, action, record_key)), 1) AS last_action,
    tupleElement(argMax((action, actor_name, actor_kind), (event_time_ms, action, record_key)), 2) AS last_actor,
    tupleElement(argMax((action, actor_name, actor_kind), (event_time_ms, action, record_key)), 3) AS last_actor_kind,
    argMax(job_id, (event_time_ms, action, record_key)) AS last_job_id,
    uniqExact(record_key) AS uses
FROM token_use
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND (ifNull(source_project_id, 0) = toInt64OrZero({project:String})
                OR ifNull(target_project_id, 0) = toInt64OrZero({project:String}))))
GROUP BY source_project_path, target_project_path
ORDER BY max(event_time_ms) DESC, source, target
LIMIT {limit:UInt64}
