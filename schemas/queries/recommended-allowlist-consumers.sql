-- recommended-allowlist-consumers: the SQL part of `tokentrail query recommended-allowlist`.
-- Every (protected project, consumer project) pair observed in the window: the projects
-- whose job tokens reached the protected project. tokentrail turns this into a minimal
-- allowlist per project (see docs/auditor-guide.md, "Recommended minimal allowlist").
--
-- Reads token_use_pairs_sealed for the sealed UTC days that lie wholly inside the
-- window and token_use (without FINAL, uniqExact(record_key)) for the rest of the window;
-- the two never cover the same use. See schemas/README.md, "Reading the sealed days".
--
-- Parameters:
--   {project:String}  protected project path or numeric id; '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--
-- Example:
--   chdb-run --param project= --param from_ms=0 --param to_ms=4102444800000 \
--     -f schemas/queries/recommended-allowlist-consumers.sql
SELECT
    target AS project,
    source AS consumer,
    toUInt64(sum(n)) AS uses
FROM
(
    -- Sealed days wholly inside the window: each row's own use count.
    SELECT
        target_project_path AS target,
        source_project_path AS source,
        toInt64(uses) AS n
    FROM token_use_pairs_sealed
    PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
         AND ({project:String} = ''
         OR target_project_path = {project:String}
         OR (toString(toInt64OrZero({project:String})) = {project:String}
             AND target_id = toInt64OrZero({project:String})))
    WHERE same_project = 0
      AND day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    UNION ALL
    -- The rest of the window (its first and last partial day) from token_use.
    SELECT
        target_project_path AS target,
        source_project_path AS source,
        toInt64(uniqExact(record_key)) AS n
    FROM token_use
    PREWHERE event_time_ms >= {from_ms:Int64}
         AND event_time_ms < {to_ms:Int64}
         AND NOT (intDiv(event_time_ms, 86400000) * 86400000 > 0
                  AND intDiv(event_time_ms, 86400000) * 86400000 >= {from_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {to_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 IN (SELECT day_ms FROM token_use_sealed_days))
    WHERE same_project = 0
      AND (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + 86401, 4294967295), 0))
           OR event_time >= toDateTime(greatest(least(intDiv({to_ms:Int64}, 1000) - 86401, 4294967295), 0))
           OR event_time < toDateTime(86401)
           OR event_time >= toDateTime(intDiv((SELECT day_ms FROM token_use_unsealed_from), 1000)))
      AND ({project:String} = ''
           OR target_project_path = {project:String}
           OR (toString(toInt64OrZero({project:String})) = {project:String}
               AND ifNull(target_project_id, 0) = toInt64OrZero({project:String})))
    GROUP BY target_project_path, source_project_path
)
GROUP BY target, source
ORDER BY project, consumer
