-- Reference for tests/integration/queries.rs (rollup_and_raw_paths_agree...): the query as
-- it was before it read the daily rollups or PREWHERE, scanning token_use with WHERE only.
-- outside-allowlist: job-token access from source projects that were NOT on the target's
-- inbound allowlist at the time of the use (the correlator's allowlisted = 0, computed from
-- the allowlist history; same-project uses never count). Uses whose allowlist state was
-- unknown (no allowlist history for the target yet) are not included.
--
-- Reads token_use without FINAL, which is what makes it fast: a replayed record is stored
-- again under the same record_key with the same content, so counts are uniqExact(record_key)
-- and max/min/argMax/uniqExact/any give the answer token_use_dedup would give.
--
-- Parameters:
--   {project:String}  project path or numeric id (matches source or target); '' = all
--   {from_ms:Int64}   window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}     window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}    maximum rows
--
-- Example:
--   tokentrail query outside-allowlist --since 7d --format json
SELECT
    target_project_path AS target,
    source_project_path AS source,
    uniqExact(record_key) AS uses,
    uniqExact(job_id) AS jobs,
    arrayStringConcat(arraySort(groupUniqArray(toString(action))), ',') AS actions,
    uniqExact(actor_id) AS actors,
    toString(toDateTime(intDiv(min(event_time_ms), 1000), 'UTC')) AS first_used,
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS last_used
FROM token_use
WHERE allowlisted = 0
  AND same_project = 0
  AND event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND (ifNull(source_project_id, 0) = toInt64OrZero({project:String})
                OR ifNull(target_project_id, 0) = toInt64OrZero({project:String}))))
GROUP BY target_project_path, source_project_path
ORDER BY uses DESC, target, source
LIMIT {limit:UInt64}
