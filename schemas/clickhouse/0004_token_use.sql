-- Correlated job-token uses: who, from which project, reached which project, doing what.
-- record_key is stable across replays, so a re-correlated record replaces the earlier one.
CREATE TABLE IF NOT EXISTS {{db}}.token_use
(
    record_key          String,
    event_time_ms       Int64{{codec_delta}},
    actor_id            Int64,
    actor_name          String,
    actor_username      Nullable(String),
    actor_kind          {{lc_string}},
    source_project_id   Nullable(Int64),
    source_project_path String,
    target_project_id   Nullable(Int64),
    target_project_path String,
    action              {{lc_string}},
    job_id              Nullable(Int64),
    pipeline_id         Nullable(Int64),
    git_ref             Nullable(String),
    runner_id           Nullable(Int64),
    token_type          {{lc_string}},
    ip_address          String,
    same_project        UInt8,
    allowlisted         Nullable(UInt8),
    correlation         {{lc_string}},
    gap_ms              Int64,
    ingested_at_ms      Int64,
    event_time          {{ts_type}} MATERIALIZED {{ts_from_ms:event_time_ms}}
)
ENGINE = ReplacingMergeTree(ingested_at_ms)
PARTITION BY toYYYYMM(event_time)
ORDER BY (target_project_path, source_project_path, event_time, record_key)
{{ttl:event_time}}
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.token_use_dedup AS
SELECT *, event_time FROM {{db}}.token_use FINAL;
