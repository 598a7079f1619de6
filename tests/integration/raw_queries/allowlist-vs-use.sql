-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before the daily rollups (0008), reading every use through token_use_dedup (FINAL).
-- Only change: `any` replaced by the deterministic `max` the rollup version uses.
-- allowlist-vs-use: every project's inbound job-token allowlist (enforcement enabled,
-- disabled or never configured, and its current entries) against the projects whose job
-- tokens actually reached it in the window.
--
-- One row per (protected project, member). status is one of:
--   'allowlisted, used'          a project entry whose jobs used their token here
--   'allowlisted, unused'        a project entry with no use in the window
--   'allowlisted group'          a group entry (see unused-allowlist-entries for its use)
--   'used, covered by group'     a consumer admitted through one of the group entries
--   'used, no allowlist history' a consumer of a project with no allowlist events (yet)
--   'used, NOT allowlisted'      a consumer that was not on the allowlist at its last use
-- "at its last use" is the correlator's allowlisted flag, computed from the allowlist history
-- at the time of the use.
--
-- Parameters:
--   {project:String}  protected project path or numeric id; '' = all
--   {from_ms:Int64}   window start for uses, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end for uses, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query allowlist-vs-use --project payments/ledger-service --since 30d
SELECT
    protected_project AS project,
    multiIf(configured = 0, 'not configured', inbound_enabled = 1, 'enabled', 'disabled') AS inbound,
    member_type,
    member_path,
    multiIf(
        max(is_listed) = 1 AND member_type = 'Group', 'allowlisted group',
        max(is_listed) = 1 AND sum(n_uses) > 0, 'allowlisted, used',
        max(is_listed) = 1, 'allowlisted, unused',
        max(is_covered) = 1, 'used, covered by group',
        max(is_covered) = 2, 'used, no allowlist history',
        'used, NOT allowlisted') AS status,
    sum(n_uses) AS uses,
    if(max(n_last_ms) = 0, '', toString(toDateTime(intDiv(max(n_last_ms), 1000), 'UTC'))) AS last_used
FROM
(
    SELECT
        protected_project_path AS protected_project,
        toString(ifNull(protected_project_id, 0)) AS protected_id,
        member_type,
        member_path,
        toUInt8(1) AS is_listed,
        toUInt8(0) AS is_covered,
        toUInt64(0) AS n_uses,
        toInt64(0) AS n_last_ms
    FROM allowlist_state
    WHERE present = 1
    UNION ALL
    SELECT
        target_project_path AS protected_project,
        toString(max(ifNull(target_project_id, 0))) AS protected_id,
        'Project' AS member_type,
        source_project_path AS member_path,
        toUInt8(0) AS is_listed,
        toUInt8(argMax(ifNull(allowlisted, 2), (event_time_ms, record_key))) AS is_covered,
        count() AS n_uses,
        max(event_time_ms) AS n_last_ms
    FROM token_use_dedup
    WHERE same_project = 0
      AND event_time_ms >= {from_ms:Int64}
      AND event_time_ms < {to_ms:Int64}
    GROUP BY target_project_path, source_project_path
) AS members
ANY LEFT JOIN
(
    SELECT
        protected_project_path AS protected_project,
        inbound_enabled,
        toUInt8(1) AS configured
    FROM allowlist_inbound
) AS inbound_state USING protected_project
WHERE {project:String} = ''
   OR protected_project = {project:String}
   OR protected_id = {project:String}
GROUP BY protected_project, inbound, member_type, member_path
ORDER BY project, member_type, member_path
LIMIT {limit:UInt64}
