-- Alerts raised by the detection rules (issue 6). One row per alert_id; every update
-- (count, last_seen, status) inserts a new version and the highest updated_at_ms wins.
CREATE TABLE IF NOT EXISTS {{db}}.alerts
(
    alert_id            String,
    rule                {{lc_string}},
    severity            {{lc_string}},
    summary             String,
    first_seen_ms       Int64,
    last_seen_ms        Int64{{codec_delta}},
    count               UInt64,
    source_project_path String,
    target_project_path String,
    actor_id            Int64,
    actor_kind          {{lc_string}},
    action              {{lc_string}},
    job_id              Nullable(Int64),
    details             String{{codec_zstd}},
    status              {{lc_string}},
    updated_at_ms       Int64,
    last_seen           {{ts_type}} MATERIALIZED {{ts_from_ms:last_seen_ms}}
)
ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY alert_id
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.alerts_latest AS
SELECT *, last_seen FROM {{db}}.alerts FINAL;
