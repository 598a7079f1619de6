-- known-projects: every project path tokentrail has seen (as a token source or target, or in
-- a job webhook). The recommended-allowlist algorithm counts, for each candidate group,
-- the known projects under it that were NOT observed as consumers: the unobserved projects a
-- group entry would admit.
--
-- Reads the paths from token_use_pairs, which has a row for every (target, source) pair
-- token_use holds (its view sees every insert, and a pair expires with its last use), so
-- it names the same paths as token_use in a few thousand rows instead of every use. Job paths come from jobs without
-- FINAL: a replayed or updated job row carries a path that was seen either way.
--
-- Parameters: none.
--
-- Example:
--   chdb-run -f schemas/queries/known-projects.sql
SELECT DISTINCT path
FROM
(
    SELECT DISTINCT source_project_path AS path FROM token_use_pairs
    UNION ALL
    SELECT DISTINCT target_project_path AS path FROM token_use_pairs
    UNION ALL
    SELECT DISTINCT project_path AS path FROM jobs
)
WHERE path != ''
ORDER BY path
