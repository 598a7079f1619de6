-- History of inbound job-token allowlist changes. Orientation as GitLab sends it:
-- protected_project = the project being accessed (audit entity),
-- member = the project or group being let in (audit target).
CREATE TABLE IF NOT EXISTS {{db}}.allowlist_changes
(
    dedup_key              String,
    event_time_ms          Int64,
    change                 {{lc_string}},
    protected_project_id   Nullable(Int64),
    protected_project_path String,
    member_type            Nullable(String),
    member_id              Nullable(Int64),
    member_path            Nullable(String),
    default_permissions    Nullable(UInt8),
    policies               Array(String),
    author_id              Int64,
    author_name            String,
    actor_kind             {{lc_string}},
    event_time             {{ts_type}} MATERIALIZED {{ts_from_ms:event_time_ms}}
)
ENGINE = ReplacingMergeTree(event_time_ms)
ORDER BY (protected_project_path, event_time_ms, dedup_key)
{{settings}};

-- Access-token, deploy-token and deploy-key lifecycle.
CREATE TABLE IF NOT EXISTS {{db}}.token_lifecycle
(
    dedup_key      String,
    event_time_ms  Int64,
    event_type     {{lc_string}},
    token_kind     {{lc_string}},
    operation      {{lc_string}},
    token_id       Nullable(Int64),
    scope_type     {{lc_string}},
    scope_id       Nullable(Int64),
    scope_path     String,
    author_id      Int64,
    author_name    String,
    actor_kind     {{lc_string}},
    target_details String,
    event_time     {{ts_type}} MATERIALIZED {{ts_from_ms:event_time_ms}}
)
ENGINE = ReplacingMergeTree(event_time_ms)
PARTITION BY toYYYYMM(event_time)
ORDER BY (scope_path, event_time_ms, dedup_key)
{{ttl:event_time}}
{{settings}};
