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
-- at the time of the use (ties at the same millisecond broken by record_key).
--
-- The uses are read from token_use_pairs_sealed for the sealed UTC days that lie
-- wholly inside the window and from token_use (without FINAL, uniqExact(record_key)) for
-- the rest of the window; see schemas/README.md, "Reading the sealed days". A protected
-- project's numeric id is the greatest id seen for its path.
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
        target AS protected_project,
        toString(max(target_id)) AS protected_id,
        'Project' AS member_type,
        source AS member_path,
        toUInt8(0) AS is_listed,
        toUInt8(substring(max(last_allowlisted), length(max(last_allowlisted)), 1)) AS is_covered,
        toUInt64(sum(n)) AS n_uses,
        max(last_ms) AS n_last_ms
    FROM
    (
        -- Sealed days wholly inside the window: each row's own use count.
        SELECT
            target_project_path AS target,
            source_project_path AS source,
            target_id,
            toInt64(uses) AS n,
            last_ms,
            last_allowlisted
        FROM token_use_pairs_sealed
        PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
        WHERE same_project = 0
          AND day_ms > 0
          AND day_ms >= {from_ms:Int64}
          AND day_ms + 86400000 <= {to_ms:Int64}
        UNION ALL
        -- The rest of the window (its first and last partial day) from token_use.
        SELECT
            target_project_path AS target,
            source_project_path AS source,
            max(ifNull(target_project_id, 0)) AS target_id,
            toInt64(uniqExact(record_key)) AS n,
            max(event_time_ms) AS last_ms,
            max(concat(hex(reverse(toFixedString(reinterpretAsString(bitXor(toUInt64(event_time_ms), toUInt64(9223372036854775808))), 8))),
                       record_key, '\0', toString(ifNull(allowlisted, 2)))) AS last_allowlisted
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
        GROUP BY target_project_path, source_project_path
    )
    GROUP BY target, source
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
