-- token-used-where: where a given job's, pipeline's or project's job token was used:
-- every (source -> target, action) it reached, with counts and first/last use.
--
-- Give at least one of job_id, pipeline_id or project: `tokentrail query token-used-where`
-- refuses to run without one (the whole history is what latest-use and actions-over-time
-- answer, from the sealed days). Without any, this SQL scans every use.
--
-- Reads token_use without FINAL: a replayed record is stored again under the same
-- record_key with the same content, so counts are uniqExact(record_key) and
-- min/max/uniqExact give the answer token_use_dedup would give. How it stays fast:
--   * the rows are restricted to (target, source) pairs, a prefix of token_use's sorting
--     key, so only those pairs' granules are read: the pairs a project has ever been the
--     source of (token_use_pairs), and those of the job's or pipeline's records
--     (token_use_jobs, token_use_pipelines, and the jobs table's jobs of that pipeline).
--     Views fill the three tables on every insert into token_use, and their rows expire
--     no earlier than token_use's; with no filter the set is every pair;
--   * a job's records are also restricted to the months of its days, so the partition
--     index skips the rest;
--   * the job and pipeline filters are the PREWHERE, so only the rows of that job or
--     pipeline are read beyond those two columns.
--
-- Parameters:
--   {job_id:Int64}       the job (CI_JOB_ID) whose token was used; 0 = any job
--   {pipeline_id:Int64}  the pipeline whose jobs' tokens were used (token_use.pipeline_id, or
--                        the job's pipeline in the jobs table); 0 = any pipeline
--   {project:String}     the SOURCE project (path or numeric id) whose jobs' tokens were used; '' = any
--   {from_ms:Int64}      window start, Unix milliseconds UTC (inclusive)
--   {to_ms:Int64}        window end, Unix milliseconds UTC (exclusive)
--   {limit:UInt64}       maximum rows
--
-- Example:
--   tokentrail query token-used-where --job 987654
--   tokentrail query token-used-where --project platform/app-backend --since 7d
SELECT
    source,
    target,
    action,
    toUInt64(sum(n)) AS uses,
    toUInt64(length(groupUniqArrayArray(job_set))) AS jobs,
    toString(toDateTime(intDiv(min(first_ms), 1000), 'UTC')) AS first_used,
    toString(toDateTime(intDiv(max(last_ms), 1000), 'UTC')) AS last_used
FROM
(
    -- Without a job or pipeline: the sealed days wholly inside the window, from their
    -- summaries (job ids kept per row, so distinct jobs are counted across days).
    SELECT
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(uses) AS n,
        job_ids AS job_set,
        first_ms,
        last_ms
    FROM token_use_pairs_sealed
    PREWHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)
         AND ({project:String} = ''
              OR source_project_path = {project:String}
              OR (toString(toInt64OrZero({project:String})) = {project:String}
                  AND source_id = toInt64OrZero({project:String})))
    WHERE {job_id:Int64} = 0
      AND {pipeline_id:Int64} = 0
      AND day_ms > 0
      AND day_ms >= {from_ms:Int64}
      AND day_ms + 86400000 <= {to_ms:Int64}
    UNION ALL
    -- Everything else from token_use: a job's or pipeline's records, or the window's
    -- partial days and the days not sealed.
    SELECT
        source_project_path AS source,
        target_project_path AS target,
        toString(action) AS action,
        toInt64(uniqExact(record_key)) AS n,
        groupUniqArrayIf(assumeNotNull(job_id), isNotNull(job_id)) AS job_set,
        min(event_time_ms) AS first_ms,
        max(event_time_ms) AS last_ms
    FROM token_use
    PREWHERE NOT ({job_id:Int64} = 0
                  AND {pipeline_id:Int64} = 0
                  AND intDiv(event_time_ms, 86400000) * 86400000 > 0
                  AND intDiv(event_time_ms, 86400000) * 86400000 >= {from_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 + 86400000 <= {to_ms:Int64}
                  AND intDiv(event_time_ms, 86400000) * 86400000 IN (SELECT day_ms FROM token_use_sealed_days))
     AND ({job_id:Int64} = 0 OR ifNull(job_id, 0) = {job_id:Int64})
     AND ({pipeline_id:Int64} = 0
          OR ifNull(pipeline_id, 0) = {pipeline_id:Int64}
          -- A record whose job webhook came after it was written has no pipeline id; the
          -- jobs table has it (a job never changes pipeline, so no FINAL is needed).
          OR ifNull(job_id, 0) IN (SELECT job_id FROM jobs
                                   WHERE {pipeline_id:Int64} != 0
                                     AND ifNull(pipeline_id, 0) = {pipeline_id:Int64}))
WHERE (target_project_path, source_project_path) IN
      (SELECT target_project_path, source_project_path
       FROM token_use_pairs
       WHERE {project:String} = ''
          OR source_project_path = {project:String}
          OR (toString(toInt64OrZero({project:String})) = {project:String}
              AND source_id = toInt64OrZero({project:String})))
  -- Each condition is one IN or one range on a key column, with the "no filter" case
  -- folded into its constant, so the primary and partition indexes can use it (an OR of a
  -- parameter test and an index condition would disable them on 18.16).
  AND (target_project_path, source_project_path) IN
      (SELECT target_project_path, source_project_path FROM token_use_pairs WHERE {job_id:Int64} = 0
       UNION ALL
       SELECT target_project_path, source_project_path FROM token_use_jobs WHERE job_id = {job_id:Int64})
  AND (target_project_path, source_project_path) IN
      (SELECT target_project_path, source_project_path FROM token_use_pairs WHERE {pipeline_id:Int64} = 0
       UNION ALL
       SELECT target_project_path, source_project_path FROM token_use_pipelines WHERE pipeline_id = {pipeline_id:Int64}
       UNION ALL
       SELECT target_project_path, source_project_path FROM token_use_jobs
       WHERE job_id IN (SELECT job_id FROM jobs WHERE {pipeline_id:Int64} != 0 AND ifNull(pipeline_id, 0) = {pipeline_id:Int64}))
  -- The months of the job's records (none: 2100-01-01), so the partition index skips the rest.
  AND event_time >= toDateTime(greatest(least(intDiv(if({job_id:Int64} = 0, toInt64(0),
          (SELECT if(count() = 0, toInt64(4102444800000), min(day_ms)) FROM token_use_jobs WHERE job_id = {job_id:Int64})), 1000), 4294967295), 0))
  AND event_time < toDateTime(greatest(least(intDiv(if({job_id:Int64} = 0, toInt64(4294967295000),
          (SELECT toInt64(max(day_ms)) FROM token_use_jobs WHERE job_id = {job_id:Int64})), 1000) + 86400, 4294967295), 0))
  -- Without a job or pipeline, only the window's edges and the months from the first day
  -- not sealed are read (the bounds fold to constants, so the partition index uses them).
  AND (event_time < toDateTime(greatest(least(intDiv({from_ms:Int64}, 1000) + 86401, 4294967295), 0))
       OR event_time >= toDateTime(greatest(least(intDiv({to_ms:Int64}, 1000) - 86401, 4294967295), 0))
       OR event_time < toDateTime(86401)
       OR event_time >= toDateTime(if({job_id:Int64} = 0 AND {pipeline_id:Int64} = 0,
              intDiv((SELECT day_ms FROM token_use_unsealed_from), 1000), 0)))
  AND event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND ifNull(source_project_id, 0) = toInt64OrZero({project:String})))
    GROUP BY source_project_path, target_project_path, action
)
GROUP BY source, target, action
ORDER BY source, target, action
LIMIT {limit:UInt64}
