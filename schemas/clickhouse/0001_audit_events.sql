-- Every usable GitLab audit event, one row per logical event.
-- Replays and GitLab re-dispatches insert the same dedup_key again; ReplacingMergeTree keeps
-- one row per (event_type, created_at, dedup_key) and audit_events_dedup reads with FINAL.
CREATE TABLE IF NOT EXISTS {{db}}.audit_events
(
    dedup_key       String,
    id              String,
    stream_only     UInt8,
    event_type      {{lc_string}},
    author_id       Int64,
    author_name     String,
    author_class    {{lc_string}},
    actor_kind      {{lc_string}},
    entity_id       Nullable(Int64),
    entity_type     {{lc_string}},
    entity_path     String,
    target_id       Nullable(Int64),
    target_type     {{lc_string}},
    target_details  String,
    ip_address      String,
    created_at_ms   Int64{{codec_delta}},
    details         String{{codec_zstd}},
    kafka_topic     {{lc_string}},
    kafka_partition Int32,
    kafka_offset    Int64,
    ingested_at_ms  Int64,
    created_at      {{ts_type}} MATERIALIZED {{ts_from_ms:created_at_ms}}
)
ENGINE = ReplacingMergeTree(ingested_at_ms)
PARTITION BY toYYYYMM(created_at)
ORDER BY (event_type, created_at, dedup_key)
{{ttl:created_at}}
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.audit_events_dedup AS
SELECT *, created_at FROM {{db}}.audit_events FINAL;
