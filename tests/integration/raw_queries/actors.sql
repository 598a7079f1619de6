-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before the daily rollups (0008), reading every use through token_use_dedup (FINAL).
-- Only change: `any` replaced by the deterministic `max` the rollup version uses.
-- actors: who triggered the jobs whose tokens were used (the job's user: a person or a bot),
-- one row per actor, busiest first.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query actors --project payments/ledger-service --since 30d
SELECT
    actor_kind,
    actor_id,
    max(actor_name) AS actor_name,
    max(ifNull(actor_username, '')) AS actor_username,
    count() AS uses,
    uniqExact(source_project_path) AS sources,
    uniqExact(target_project_path) AS targets,
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS last_used
FROM token_use_dedup
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR toString(ifNull(source_project_id, 0)) = {project:String}
       OR toString(ifNull(target_project_id, 0)) = {project:String})
GROUP BY actor_kind, actor_id
ORDER BY uses DESC, actor_id
LIMIT {limit:UInt64}
