-- allowlist_state, one row per member *id*. Version 0006 grouped by member_path, but GitLab's
-- secure_ci_job_token_policies_updated event names a group by its display name
-- ("Platform Engineering", not platform-eng), which earlier versions stored as member_path:
-- one group showed up twice under two names. Members are GitLab ids; member_path is the
-- newest full path a change carried (never one from a policies update). Changes that name no
-- member id (none that GitLab sends) are grouped by their path, as before.

-- DROP TABLE, not DROP VIEW: ClickHouse 18.16 only knows the former, which drops views too.
DROP TABLE IF EXISTS {{db}}.allowlist_state;

CREATE VIEW IF NOT EXISTS {{db}}.allowlist_state AS
SELECT
    protected_project_path,
    entry_type AS member_type,
    argMaxIf(entry_path, event_time_ms, has_path) AS member_path,
    argMax(protected_project_id, event_time_ms) AS protected_project_id,
    argMax(member_id, event_time_ms) AS member_id,
    argMax(change, event_time_ms) AS last_change,
    if(last_change IN ('project_added', 'group_added', 'policies_updated'), 1, 0) AS present,
    argMax(policies, event_time_ms) AS policies,
    argMax(default_permissions, event_time_ms) AS default_permissions,
    max(event_time_ms) AS changed_at_ms,
    argMax(author_name, event_time_ms) AS changed_by
FROM
(
    SELECT
        protected_project_path,
        ifNull(member_type, '') AS entry_type,
        ifNull(member_path, '') AS entry_path,
        change != 'policies_updated' AND entry_path != '' AS has_path,
        if(isNull(member_id), concat('path:', lower(entry_path)), toString(member_id)) AS member_key,
        protected_project_id,
        member_id,
        change,
        policies,
        default_permissions,
        event_time_ms,
        author_name
    FROM {{db}}.allowlist_changes FINAL
    WHERE change NOT IN ('inbound_enabled', 'inbound_disabled')
)
GROUP BY protected_project_path, entry_type, member_key;
