-- unused-allowlist-entries: current allowlist entries that were neither used nor changed
-- in the last N days before {now_ms}. A project entry is used when that project's job token
-- reached the protected project; a group entry when any project under the group did.
--
-- Only the last use per (protected project, source) pair is needed, which replayed copies
-- of a record cannot change. It is the greatest last_ms of token_use_pairs_sealed over the
-- sealed days that ended before now, and of token_use for today up to now and for the days
-- not sealed (the two cover every use before now exactly once). Only protected projects'
-- pairs are read: they are a prefix of both tables' sorting keys.
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
            target AS protected_project_path,
            source AS used_from,
            max(last_ms) AS used_last_ms
        FROM
        (
            -- Sealed days that ended before now.
            SELECT
                target_project_path AS target,
                source_project_path AS source,
                last_ms
            FROM token_use_pairs_sealed
            PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
            WHERE day_ms > 0
              AND day_ms + 86400000 <= {now_ms:Int64}
              AND target_project_path IN (SELECT protected_project_path FROM allowlist_state WHERE present = 1)
            UNION ALL
            -- Today up to now, and the days not sealed, from token_use.
            SELECT
                target_project_path AS target,
                source_project_path AS source,
                max(event_time_ms) AS last_ms
            FROM token_use
            PREWHERE event_time_ms < {now_ms:Int64}
                 AND NOT (intDiv(event_time_ms, 86400000) * 86400000 > 0
                          AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {now_ms:Int64}
                          AND intDiv(event_time_ms, 86400000) * 86400000 IN (SELECT day_ms FROM token_use_sealed_days))
            -- Implied by the PREWHERE; lets the partition index skip the sealed months.
            WHERE (event_time >= toDateTime(greatest(least(intDiv({now_ms:Int64}, 86400000) * 86400, 4294967295), 0))
                   OR event_time < toDateTime(86401)
                   OR event_time >= toDateTime(intDiv((SELECT day_ms FROM token_use_unsealed_from), 1000)))
              AND target_project_path IN (SELECT protected_project_path FROM allowlist_state WHERE present = 1)
            GROUP BY target_project_path, source_project_path
        )
        GROUP BY target, source
    ) AS uses USING protected_project_path
    GROUP BY protected_project_path, member_type, member_path, changed_at_ms, changed_by
)
WHERE greatest(last_used_ms, changed_at_ms) < {now_ms:Int64} - {unused_days:Int64} * 86400000
ORDER BY project, member_type, member_path
LIMIT {limit:UInt64}
