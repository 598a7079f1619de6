-- changes: who created, revoked or changed a token (access tokens, deploy tokens, deploy keys)
-- or a job-token allowlist, and when. Newest first.
--
-- Parameters:
--   {project:String}  scope / protected project path or numeric id; '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query changes --project payments/ledger-service --since 90d
SELECT
    toString(toDateTime(intDiv(at_ms, 1000), 'UTC')) AS at,
    kind,
    what,
    subject,
    scope,
    author_name,
    author_id,
    author_kind
FROM
(
    SELECT
        event_time_ms AS at_ms,
        'token' AS kind,
        concat(toString(token_kind), ' ', toString(operation)) AS what,
        ifNull(toString(token_id), '') AS subject,
        scope_path AS scope,
        author_name,
        author_id,
        toString(actor_kind) AS author_kind
    FROM token_lifecycle_dedup
    WHERE event_time_ms >= {from_ms:Int64}
      AND event_time_ms < {to_ms:Int64}
      AND ({project:String} = ''
           OR scope_path = {project:String}
           OR toString(ifNull(scope_id, 0)) = {project:String})
    UNION ALL
    SELECT
        event_time_ms AS at_ms,
        'allowlist' AS kind,
        toString(change) AS what,
        ifNull(member_path, '') AS subject,
        protected_project_path AS scope,
        author_name,
        author_id,
        toString(actor_kind) AS author_kind
    FROM allowlist_changes_dedup
    WHERE event_time_ms >= {from_ms:Int64}
      AND event_time_ms < {to_ms:Int64}
      AND ({project:String} = ''
           OR protected_project_path = {project:String}
           OR toString(ifNull(protected_project_id, 0)) = {project:String})
)
ORDER BY at_ms DESC, kind, scope, what, subject
LIMIT {limit:UInt64}
