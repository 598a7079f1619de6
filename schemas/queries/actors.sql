-- actors: who triggered the jobs whose tokens were used (the job's user: a person or a bot),
-- one row per actor, busiest first.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- actor_name and actor_username are the greatest value seen for the actor (they do not
-- change between an actor's uses; max makes the answer deterministic).
--
-- Reads token_use_actors_sealed for the sealed UTC days that lie wholly inside the
-- window and token_use (without FINAL, uniqExact(record_key)) for the rest of the window;
-- see schemas/README.md, "Reading the sealed days".
--
-- Example:
--   tokentrail query actors --project payments/ledger-service --since 30d
SELECT
    actor_kind,
    actor_id,
    max(name) AS actor_name,
    max(username) AS actor_username,
    toUInt64(sum(n)) AS uses,
    uniqExact(source_hash) AS sources,
    uniqExact(target_hash) AS targets,
    toString(toDateTime(intDiv(max(last_ms), 1000), 'UTC')) AS last_used
FROM
(
    -- Sealed days wholly inside the window: each row's own use count.
    SELECT
        toString(actor_kind) AS actor_kind,
        actor_id,
        name,
        username,
        toInt64(uses) AS n,
        source_hash,
        target_hash,
        last_ms
    FROM token_use_actors_sealed
    PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
         AND ({project:String} = ''
         OR source_project_path = {project:String}
         OR target_project_path = {project:String}
         OR toString(source_id) = {project:String}
         OR toString(target_id) = {project:String})
    WHERE day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    UNION ALL
    -- The rest of the window (its first and last partial day) from token_use.
    SELECT
        toString(actor_kind) AS actor_kind,
        actor_id,
        max(actor_name) AS name,
        max(ifNull(actor_username, '')) AS username,
        toInt64(uniqExact(record_key)) AS n,
        cityHash64(source_project_path) AS source_hash,
        cityHash64(target_project_path) AS target_hash,
        max(event_time_ms) AS last_ms
    FROM token_use
    PREWHERE event_time_ms >= {from_ms:Int64}
         AND event_time_ms < {to_ms:Int64}
         AND NOT (intDiv(event_time_ms, 86400000) * 86400000 > 0
                  AND intDiv(event_time_ms, 86400000) * 86400000 >= {from_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {to_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 IN (SELECT day_ms FROM token_use_sealed_days))
    WHERE (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + 86401, 4294967295), 0))
           OR event_time >= toDateTime(greatest(least(intDiv({to_ms:Int64}, 1000) - 86401, 4294967295), 0))
           OR event_time < toDateTime(86401)
           OR event_time >= toDateTime(intDiv((SELECT day_ms FROM token_use_unsealed_from), 1000)))
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR toString(ifNull(source_project_id, 0)) = {project:String}
           OR toString(ifNull(target_project_id, 0)) = {project:String})
    GROUP BY actor_kind, actor_id, source_project_path, target_project_path
)
GROUP BY actor_kind, actor_id
ORDER BY uses DESC, actor_id
LIMIT {limit:UInt64}
