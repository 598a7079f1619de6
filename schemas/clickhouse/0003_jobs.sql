-- Job enrichment from Job Hook / Pipeline Hook webhooks: the latest hook per job wins.
-- Token-use records whose job hook arrived late can be joined to this table on job_id.
CREATE TABLE IF NOT EXISTS {{db}}.jobs
(
    job_id              Int64,
    job_name            String,
    project_id          Nullable(Int64),
    project_path        String,
    pipeline_id         Nullable(Int64),
    user_id             Nullable(Int64),
    username            Nullable(String),
    git_ref             Nullable(String),
    sha                 Nullable(String),
    runner_id           Nullable(Int64),
    runner_description  Nullable(String),
    status              {{lc_string}},
    started_at_ms       Nullable(Int64),
    finished_at_ms      Nullable(Int64),
    source_pipeline_id  Nullable(Int64),
    source_project_id   Nullable(Int64),
    source_project_path Nullable(String),
    updated_at_ms       Int64
)
ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY job_id
{{settings}};

CREATE VIEW IF NOT EXISTS {{db}}.jobs_latest AS
SELECT * FROM {{db}}.jobs FINAL;
