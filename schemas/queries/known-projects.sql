-- known-projects: every project path tokentrail has seen (as a token source or target, or in
-- a job webhook). The recommended-allowlist algorithm counts, for each candidate group,
-- the known projects under it that were NOT observed as consumers: the unobserved projects a
-- group entry would admit.
--
-- Reads the paths from the daily rollup token_use_pairs_daily, which has a row for every
-- (target, source) pair of every day token_use holds (its view sees every insert, and its
-- days expire no earlier than token_use's rows), so it names the same paths as token_use
-- in a few hundred thousand rows instead of every use. Job paths come from jobs without
-- FINAL: a replayed or updated job row carries a path that was seen either way.
--
-- Parameters: none.
--
-- Example:
--   chdb-run -f schemas/queries/known-projects.sql
SELECT DISTINCT path
FROM
(
    SELECT DISTINCT source_project_path AS path FROM token_use_pairs_daily
    UNION ALL
    SELECT DISTINCT target_project_path AS path FROM token_use_pairs_daily
    UNION ALL
    SELECT DISTINCT project_path AS path FROM jobs
)
WHERE path != ''
ORDER BY path
