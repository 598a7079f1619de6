-- coverage-gaps: job-token uses GitLab's authentication log saw and tokentrail has no record
-- of: edges (origin -> target) whose last authorization, as `tokentrail gitlab coverage`
-- read it (audit events of type tokentrail_job_token_auth_log), lies in the window while
-- token_use has no use of that edge from 5 minutes before it on. Such a use's events never
-- arrived: a streaming outage, a dropped delivery, a blocked event type (docs/gitlab-sync.md).
--
-- GitLab keeps only the *last* authorization per (origin, target), so an edge used during an
-- outage and again after it is not listed; run `tokentrail gitlab coverage` during or right
-- after an incident. Edges are matched by path (the log names the origin's current path).
-- Recomputed at query time: a backfill that supplies the missing uses removes the gap.
--
-- Parameters:
--   {project:String}  project path (matches origin or target); '' = all
--   {from_ms:Int64}   window start (last authorized at), Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail gitlab coverage --group payments && tokentrail query coverage-gaps --since 1d
SELECT
    target,
    origin,
    toString(toDateTime(intDiv(max(authorized_ms), 1000), 'UTC')) AS last_authorized,
    if(max(recorded_ms) = 0, '',
       toString(toDateTime(intDiv(max(recorded_ms), 1000), 'UTC'))) AS last_recorded
FROM
(
    SELECT
        lower(entity_path) AS target,
        lower(target_details) AS origin,
        created_at_ms AS authorized_ms,
        toInt64(0) AS recorded_ms
    FROM audit_events
    WHERE event_type = 'tokentrail_job_token_auth_log'
      AND created_at_ms >= {from_ms:Int64}
      AND created_at_ms < {to_ms:Int64}
    UNION ALL
    SELECT
        lower(target_project_path) AS target,
        lower(source_project_path) AS origin,
        toInt64(0) AS authorized_ms,
        event_time_ms AS recorded_ms
    FROM token_use
    WHERE same_project = 0
      AND event_time_ms >= {from_ms:Int64} - 300000
)
WHERE {project:String} = ''
   OR target = lower({project:String})
   OR origin = lower({project:String})
GROUP BY target, origin
HAVING max(authorized_ms) > 0
   AND max(recorded_ms) < max(authorized_ms) - 300000
ORDER BY target, origin
LIMIT {limit:UInt64}
