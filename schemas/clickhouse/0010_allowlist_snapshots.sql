-- Allowlist snapshots read from GitLab's API by `tokentrail gitlab sync` (docs/gitlab-sync.md)
-- are rows of allowlist_changes like GitLab's own events, with the change kinds
-- snapshot_project / snapshot_group (on the list at event_time), snapshot_project_absent /
-- snapshot_group_absent (the history said present, GitLab no longer lists it) and
-- snapshot_inbound_enabled / snapshot_inbound_disabled. The views of 0009 and 0006 read them:
-- the latest row of either kind wins.

DROP TABLE IF EXISTS {{db}}.allowlist_state;

CREATE VIEW IF NOT EXISTS {{db}}.allowlist_state AS
SELECT
    protected_project_path,
    entry_type AS member_type,
    argMaxIf(entry_path, event_time_ms, has_path) AS member_path,
    argMax(protected_project_id, event_time_ms) AS protected_project_id,
    argMax(member_id, event_time_ms) AS member_id,
    argMax(change, event_time_ms) AS last_change,
    if(last_change IN ('project_added', 'group_added', 'policies_updated',
                       'snapshot_project', 'snapshot_group'), 1, 0) AS present,
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
    WHERE change NOT IN ('inbound_enabled', 'inbound_disabled',
                         'snapshot_inbound_enabled', 'snapshot_inbound_disabled')
)
GROUP BY protected_project_path, entry_type, member_key;

DROP TABLE IF EXISTS {{db}}.allowlist_inbound;

CREATE VIEW IF NOT EXISTS {{db}}.allowlist_inbound AS
SELECT
    protected_project_path,
    argMax(protected_project_id, event_time_ms) AS protected_project_id,
    if(argMax(change, event_time_ms) IN ('inbound_enabled', 'snapshot_inbound_enabled'), 1, 0)
        AS inbound_enabled,
    max(event_time_ms) AS changed_at_ms,
    argMax(author_name, event_time_ms) AS changed_by
FROM {{db}}.allowlist_changes FINAL
WHERE change IN ('inbound_enabled', 'inbound_disabled',
                 'snapshot_inbound_enabled', 'snapshot_inbound_disabled')
GROUP BY protected_project_path;
