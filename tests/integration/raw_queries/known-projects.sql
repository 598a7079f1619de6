-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before it read the daily rollups or PREWHERE, scanning token_use with WHERE only.
-- known-projects: every project path tokentrail has seen (as a token source or target, or in
-- a job webhook). The recommended-allowlist algorithm counts, for each candidate group,
-- the known projects under it that were NOT observed as consumers: the unobserved projects a
-- group entry would admit.
--
-- Reads token_use without FINAL: replayed copies of a record carry the same paths.
--
-- Parameters: none.
SELECT DISTINCT path
FROM
(
    SELECT DISTINCT source_project_path AS path FROM token_use
    UNION ALL
    SELECT DISTINCT target_project_path AS path FROM token_use
    UNION ALL
    SELECT project_path AS path FROM jobs_latest
)
WHERE path != ''
ORDER BY path
