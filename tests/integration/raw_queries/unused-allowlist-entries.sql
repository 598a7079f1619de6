-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before it read the daily rollups or PREWHERE, scanning token_use with WHERE only.
-- unused-allowlist-entries: current allowlist entries that were neither used nor changed
-- in the last N days before {now_ms}. A project entry is used when that project's job token
-- reached the protected project; a group entry when any project under the group did.
--
-- Reads token_use without FINAL: only max(event_time_ms) per pair is used, which replayed
-- copies of a record (same record_key, same content) cannot change.
--
-- Parameters:
--   {project:String}     protected project path or numeric id; '' = all
--   {now_ms:Int64}       "now", Unix milliseconds UTC (tokentrail passes the current time)
--   {unused_days:Int64}  N: the entry must be idle for at least this many days
--   {limit:UInt64}       maximum rows
--
-- Example:
--   tokentrail query unused-allowlist-entries --days 90
SELECT
    protected_project_path AS project,
    member_type,
    member_path,
    if(last_used_ms = 0, 'never', toString(toDateTime(intDiv(last_used_ms, 1000), 'UTC'))) AS last_used,
    toString(toDateTime(intDiv(changed_at_ms, 1000), 'UTC')) AS last_changed,
    changed_by
FROM
(
    SELECT
        protected_project_path,
        member_type,
        member_path,
        changed_at_ms,
        changed_by,
        max(if((member_type = 'Project' AND used_from = member_path)
               OR (member_type = 'Group' AND startsWith(used_from, concat(member_path, '/'))),
               used_last_ms, toInt64(0))) AS last_used_ms
    FROM
    (
        SELECT protected_project_path, member_type, member_path, changed_at_ms, changed_by
        FROM allowlist_state
        WHERE present = 1
          AND ({project:String} = ''
               OR protected_project_path = {project:String}
               OR toString(ifNull(protected_project_id, 0)) = {project:String})
    ) AS entries
    ALL LEFT JOIN
    (
        SELECT
            target_project_path AS protected_project_path,
            source_project_path AS used_from,
            max(event_time_ms) AS used_last_ms
        FROM token_use
        WHERE event_time_ms < {now_ms:Int64}
        GROUP BY target_project_path, source_project_path
    ) AS uses USING protected_project_path
    GROUP BY protected_project_path, member_type, member_path, changed_at_ms, changed_by
)
WHERE greatest(last_used_ms, changed_at_ms) < {now_ms:Int64} - {unused_days:Int64} * 86400000
ORDER BY project, member_type, member_path
LIMIT {limit:UInt64}
