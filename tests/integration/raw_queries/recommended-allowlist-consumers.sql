-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before it read the daily rollups or PREWHERE, scanning token_use with WHERE only.
-- recommended-allowlist-consumers: the SQL part of `tokentrail query recommended-allowlist`.
-- Every (protected project, consumer project) pair observed in the window: the projects
-- whose job tokens reached the protected project. tokentrail turns this into a minimal
-- allowlist per project (see docs/auditor-guide.md, "Recommended minimal allowlist").
--
-- Reads token_use without FINAL, which is what makes it fast: a replayed record is stored
-- again under the same record_key with the same content, so counts are uniqExact(record_key)
-- and max/min/argMax/uniqExact/any give the answer token_use_dedup would give.
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
    target_project_path AS project,
    source_project_path AS consumer,
    uniqExact(record_key) AS uses
FROM token_use
WHERE same_project = 0
  AND event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR target_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND ifNull(target_project_id, 0) = toInt64OrZero({project:String})))
GROUP BY target_project_path, source_project_path
ORDER BY project, consumer
