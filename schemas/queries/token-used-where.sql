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
    source_project_path AS source,
    target_project_path AS target,
    action,
    uniqExact(record_key) AS uses,
    uniqExact(job_id) AS jobs,
    toString(toDateTime(intDiv(min(event_time_ms), 1000), 'UTC')) AS first_used,
    toString(toDateTime(intDiv(max(event_time_ms), 1000), 'UTC')) AS last_used
FROM token_use
PREWHERE ({job_id:Int64} = 0 OR ifNull(job_id, 0) = {job_id:Int64})
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
  AND event_time_ms >= {from_ms:Int64}
  AND event_time_ms < {to_ms:Int64}
  AND ({project:String} = ''
       OR source_project_path = {project:String}
       OR (toString(toInt64OrZero({project:String})) = {project:String}
           AND ifNull(source_project_id, 0) = toInt64OrZero({project:String})))
GROUP BY source_project_path, target_project_path, action
ORDER BY source, target, action
LIMIT {limit:UInt64}
