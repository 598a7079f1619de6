-- actor-kinds: person or bot — token uses and distinct actors per actor kind
-- (human, project_bot, group_bot, service_account, ...).
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
-- Example:
--   tokentrail query actor-kinds --since 30d --format csv
SELECT
    actor_kind,
    count() AS actors,
    sum(actor_uses) AS uses
FROM
(
    SELECT
        actor_kind,
        actor_id,
        uniqExact(record_key) AS actor_uses
    FROM token_use
    WHERE event_time_ms >= {from_ms:Int64}
      AND event_time_ms < {to_ms:Int64}
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR (toString(toInt64OrZero({project:String})) = {project:String}
               AND (ifNull(source_project_id, 0) = toInt64OrZero({project:String})
                    OR ifNull(target_project_id, 0) = toInt64OrZero({project:String}))))
    GROUP BY actor_kind, actor_id
)
GROUP BY actor_kind
ORDER BY actor_kind
LIMIT {limit:UInt64}
