-- Every GitLab webhook delivery, deduplicated on Idempotency-Key (or a content hash).
CREATE TABLE IF NOT EXISTS {{db}}.webhook_events
(
    dedup_key       String,
    event_header    {{lc_string}},
    object_kind     {{lc_string}},
    project_id      Nullable(Int64),
    project_path    String,
    event_time_ms   Int64{{codec_delta}},
    payload         String{{codec_zstd}},
    kafka_topic     {{lc_string}},
    kafka_partition Int32,
    kafka_offset    Int64,
    ingested_at_ms  Int64,
    event_time      {{ts_type}} MATERIALIZED {{ts_from_ms:event_time_ms}}
)
ENGINE = ReplacingMergeTree(ingested_at_ms)
PARTITION BY toYYYYMM(event_time)
ORDER BY (object_kind, dedup_key)
{{ttl:event_time}}
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.webhook_events_dedup AS
SELECT *, event_time FROM {{db}}.webhook_events FINAL;
