-- Alerts raised by the in-stream rules (src/alert). One alert per (rule, source, target,
-- suppression window); every update (count, last_seen, acknowledgement) is a new row with the
-- same alert_id and a higher updated_at_ms, so the latest row wins. Read through alerts_latest.
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
    event_time_ms       Int64,
    details             String{{codec_zstd}},
    status              {{lc_string}},
    acked_by            String,
    updated_at_ms       Int64,
    first_seen          {{ts_type}} MATERIALIZED {{ts_from_ms:first_seen_ms}},
    last_seen           {{ts_type}} MATERIALIZED {{ts_from_ms:last_seen_ms}}
)
ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY alert_id
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.alerts_latest AS
SELECT *, first_seen, last_seen FROM {{db}}.alerts FINAL;
