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
-- Reads token_use_pairs_sealed for the sealed UTC days that lie wholly inside the
-- window and token_use (without FINAL, uniqExact(record_key)) for the rest of the window;
-- the two never cover the same use. See schemas/clickhouse/0011_token_use_sealed_days.sql for
-- why a sealed day is exact under replays, src/store/seal.rs for the string encoding of its
-- "latest use" columns, and schemas/README.md ("Reading the sealed days") for the two parts
-- of this query.
--
-- Example:
--   clickhouse-client -d tokentrail --param_project='' --param_from_ms=0 \
--     --param_to_ms=4102444800000 --param_limit=50 --queries-file schemas/queries/latest-use.sql
--   tokentrail query latest-use --since 30d
SELECT
    source,
    target,
    toString(toDateTime(intDiv(max(last_ms), 1000), 'UTC')) AS last_used,
    substring(splitByChar('\0', max(last_use))[1], 17) AS last_action,
    arrayStringConcat(arraySlice(splitByChar('\0', max(last_use)), 4), '\0') AS last_actor,
    splitByChar('\0', max(last_use))[3] AS last_actor_kind,
    if(substring(max(last_job), 1, 1) = '1', toInt64(splitByChar('\0', max(last_job))[3]), NULL) AS last_job_id,
    toUInt64(sum(n)) AS uses
FROM
(
    -- Sealed days wholly inside the window: each row's own use count.
    SELECT
        source_project_path AS source,
        target_project_path AS target,
        toInt64(uses) AS n,
        last_ms,
        last_use,
        last_job
    FROM token_use_pairs_sealed
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
        source_project_path AS source,
        target_project_path AS target,
        toInt64(uniqExact(record_key)) AS n,
        max(event_time_ms) AS last_ms,
        max(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))),
                   toString(action), '\0', record_key, '\0', toString(actor_kind), '\0', actor_name)) AS last_use,
        max(concat(toString(toUInt8(isNotNull(job_id))),
                   hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))),
                   toString(action), '\0', record_key, '\0', toString(ifNull(job_id, 0)))) AS last_job
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
    GROUP BY target_project_path, source_project_path
)
GROUP BY source, target
ORDER BY max(last_ms) DESC, source, target
LIMIT {limit:UInt64}
