-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before the daily rollups (0008), reading every use through token_use_dedup (FINAL).
-- Only change: `any` replaced by the deterministic `max` the rollup version uses.
-- actor-kinds: person or bot — token uses and distinct actors per actor kind
-- (human, project_bot, group_bot, service_account, ...).
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query actor-kinds --since 30d --format csv
SELECT
    actor_kind,
    uniqExact(actor_id) AS actors,
    count() AS uses
FROM token_use_dedup
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR toString(ifNull(source_project_id, 0)) = {project:String}
       OR toString(ifNull(target_project_id, 0)) = {project:String})
GROUP BY actor_kind
ORDER BY actor_kind
LIMIT {limit:UInt64}
