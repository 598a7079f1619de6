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
-- Reads the daily rollup token_use_actors_daily for the UTC days that lie wholly inside the
-- window and token_use (without FINAL, uniqExact(record_key)) for the rest of the window;
-- see schemas/README.md, "Reading the rollups".
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
    -- Rollup rows of whole days: each row's own use count.
    SELECT
        toString(actor_kind) AS actor_kind,
        actor_id,
        finalizeAggregation(name) AS name,
        finalizeAggregation(username) AS username,
        toInt64(finalizeAggregation(uses)) AS n,
        source_hash,
        target_hash,
        finalizeAggregation(last_ms) AS last_ms
    FROM token_use_actors_daily
    PREWHERE {project:String} = ''
         OR source_project_path = {project:String}
         OR target_project_path = {project:String}
         OR toString(source_id) = {project:String}
         OR toString(target_id) = {project:String}
    WHERE day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    UNION ALL
    -- A key with rows in several parts not merged yet: what a replayed use counted twice
    -- above (the merged count minus the sum of the rows' counts; 0 without duplicates).
    -- A part never holds a key twice, so only partitions with more than one active part
    -- (system.parts) are searched for such keys: once merged, a month costs nothing here.
    SELECT
        toString(actor_kind) AS actor_kind,
        actor_id,
        '' AS name,
        '' AS username,
        toInt64(uniqExactMerge(uses)) - toInt64(sum(finalizeAggregation(uses))) AS n,
        any(source_hash) AS source_hash,
        any(target_hash) AS target_hash,
        toInt64(0) AS last_ms
    FROM token_use_actors_daily
    PREWHERE key_hash IN (SELECT key_hash FROM token_use_actors_daily
                          WHERE _partition_id IN (SELECT partition_id FROM system.parts
                                                  WHERE active AND database = currentDatabase() AND table = 'token_use_actors_daily'
                                                  GROUP BY partition_id HAVING count() > 1)
                            AND day_ms > 0 AND day_ms >= {from_ms:Int64} AND day_ms + 86400000 <= {to_ms:Int64}
                          GROUP BY key_hash HAVING count() > 1)
    WHERE day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
      AND ({project:String} = ''
           OR source_project_path = {project:String}
           OR target_project_path = {project:String}
           OR toString(source_id) = {project:String}
           OR toString(target_id) = {project:String})
    GROUP BY actor_kind, actor_id, day_ms, target_project_path, source_project_path, target_id, source_id
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
                  AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {to_ms:Int64})
    WHERE (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + 86401, 4294967295), 0))
           OR event_time >= toDateTime(greatest(least(intDiv({to_ms:Int64}, 1000) - 86401, 4294967295), 0))
           OR event_time < toDateTime(86401))
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
