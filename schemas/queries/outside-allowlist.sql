-- outside-allowlist: job-token access from source projects that were NOT on the target's
-- inbound allowlist at the time of the use (the correlator's allowlisted = 0, computed from
-- the allowlist history; same-project uses never count). Uses whose allowlist state was
-- unknown (no allowlist history for the target yet) are not included.
--
-- Reads token_use_outside_allowlist, the copy of token_use's uses outside the allowlist that
-- a view makes on every insert (migration 0011), without FINAL: a replayed record is copied
-- again under the same record_key with the same content, so counts are
-- uniqExact(record_key) and min/max/uniqExact give the answer token_use_dedup would give.
-- Such uses are rare, so the table is a fraction of a percent of token_use.
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
FROM token_use_outside_allowlist
WHERE event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR target_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND (source_id = toInt64OrZero({project:String})
                OR target_id = toInt64OrZero({project:String}))))
GROUP BY target_project_path, source_project_path
ORDER BY uses DESC, target, source
LIMIT {limit:UInt64}
