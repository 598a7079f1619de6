-- outside-uses: the latest individual job-token uses whose source was NOT on the target's
-- inbound allowlist at the time of the use (the correlator's allowlisted = 0; same-project
-- uses never count), with who ran the job and which job it was. The per-pair totals are
-- schemas/queries/outside-allowlist.sql; `tokentrail report` lists these uses beside them.
--
-- Reads token_use without FINAL: a replayed record has the same record_key and content, so
-- grouping by record_key shows each use once. The two flag columns are the PREWHERE, as in
-- outside-allowlist.sql: uses outside the allowlist are rare, so only their rows are read.
--
-- Parameters:
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
SELECT
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS at,
    any(source_project_path) AS source,
    any(target_project_path) AS target,
    any(toString(action)) AS action,
    any(actor_name) AS actor,
    any(ifNull(actor_username, '')) AS actor_username,
    any(toString(actor_kind)) AS actor_kind,
    any(job_id) AS job_id
FROM token_use
PREWHERE allowlisted = 0
     AND same_project = 0
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
GROUP BY record_key
ORDER BY max(event_time_ms) DESC, record_key
LIMIT {limit:UInt64}
