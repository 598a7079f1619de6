-- Deduplicated reads of the allowlist and token-lifecycle histories, and the current state
-- of every inbound job-token allowlist derived from the history.

CREATE VIEW IF NOT EXISTS {{db}}.allowlist_changes_dedup AS
SELECT *, event_time FROM {{db}}.allowlist_changes FINAL;

CREATE VIEW IF NOT EXISTS {{db}}.token_lifecycle_dedup AS
SELECT *, event_time FROM {{db}}.token_lifecycle FINAL;

-- One row per (protected project, member) ever named by a change. The latest change wins
-- (argMax over event_time_ms): present = 1 while the member is on the allowlist. Removed
-- members stay visible with present = 0 so auditors can see when they left.
CREATE VIEW IF NOT EXISTS {{db}}.allowlist_state AS
SELECT
    protected_project_path,
    entry_type AS member_type,
    entry_path AS member_path,
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
GROUP BY protected_project_path, entry_type, entry_path;

-- Whether inbound enforcement is on for each project that ever changed it (latest wins).
CREATE VIEW IF NOT EXISTS {{db}}.allowlist_inbound AS
SELECT
    protected_project_path,
    argMax(protected_project_id, event_time_ms) AS protected_project_id,
    if(argMax(change, event_time_ms) = 'inbound_enabled', 1, 0) AS inbound_enabled,
    max(event_time_ms) AS changed_at_ms,
    argMax(author_name, event_time_ms) AS changed_by
FROM {{db}}.allowlist_changes FINAL
WHERE change IN ('inbound_enabled', 'inbound_disabled')
GROUP BY protected_project_path;
