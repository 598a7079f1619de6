-- recommended-allowlist-consumers: the SQL part of `tokentrail query recommended-allowlist`.
-- Every (protected project, consumer project) pair observed in the window: the projects
-- whose job tokens reached the protected project. tokentrail turns this into a minimal
-- allowlist per project (see docs/auditor-guide.md, "Recommended minimal allowlist").
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
    count() AS uses
FROM token_use_dedup
WHERE same_project = 0
  AND event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR target_project_path = {project:String}
       OR toString(ifNull(target_project_id, 0)) = {project:String})
GROUP BY target_project_path, source_project_path
ORDER BY project, consumer
