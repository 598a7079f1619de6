#!/usr/bin/env python3
"""Times the named-query SQL files of a directory on an already loaded database, as
benches/queries.sh does but without building or loading: median wall time of REPS runs per
case over HTTP (parameters bound as escaped literals, as tokentrail does on servers < 23.8),
the server's read_rows / read_bytes / memory_usage of the last run (system.query_log), and
a digest of the result rows, so two versions of the queries can be compared on one database.

  eval "$(deploy/local/services env)"
  KEEP=1 benches/queries.sh 1000000          # prints "kept database bench_queries_..."
  mkdir -p /tmp/q0 && git archive HEAD~1 schemas/queries | tar -x -C /tmp/q0
  benches/queries_compare.py bench_queries_... /tmp/q0/schemas/queries 5
  benches/queries_compare.py bench_queries_... schemas/queries 5
"""
import sys, re, time, urllib.request, urllib.parse, uuid, os, statistics
url = os.environ.get("TOKENTRAIL__CLICKHOUSE__URL", "http://127.0.0.1:8123")
db, qdir = sys.argv[1], sys.argv[2]
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
only = sys.argv[4].split(",") if len(sys.argv) > 4 else None
def http(q, params):
    req = urllib.request.Request(url + "/?" + urllib.parse.urlencode(params), data=q.encode())
    return urllib.request.urlopen(req).read().decode()
now = int(time.time() * 1000)
project = http(f"SELECT target_project_path FROM {db}.token_use WHERE target_project_path != '' GROUP BY target_project_path ORDER BY count() DESC LIMIT 1", {}).strip()
job, pipeline, source = http(f"SELECT job_id, pipeline_id, source_project_path FROM {db}.token_use WHERE same_project = 0 AND job_id IS NOT NULL AND pipeline_id IS NOT NULL ORDER BY record_key LIMIT 1 FORMAT TSV", {}).strip().split("\t")
base = dict(project="", from_ms="0", to_ms="4102444800000", limit="100", bucket_ms="86400000", job_id="0", pipeline_id="0", now_ms=str(now), unused_days="90")
cases = [(q, [q], {}) for q in ["latest-use", "actors", "actor-kinds", "actions-over-time", "changes", "allowlist-vs-use", "outside-allowlist", "unused-allowlist-entries"]]
cases.insert(8, ("recommended-allowlist", ["recommended-allowlist-consumers", "known-projects"], {}))
cases += [(f"token-used-where --job {job}", ["token-used-where"], dict(job_id=job)),
          (f"token-used-where --pipeline {pipeline}", ["token-used-where"], dict(pipeline_id=pipeline)),
          (f"token-used-where --project {source}", ["token-used-where"], dict(project=source)),
          (f"latest-use --project {project}", ["latest-use"], dict(project=project)),
          (f"actions-over-time --project {project}", ["actions-over-time"], dict(project=project)),
          ("outside-allowlist --since 7d", ["outside-allowlist"], dict(from_ms=str(now - 7*86400000), to_ms=str(now)))]
def render(f, vals):
    sql = open(os.path.join(qdir, f + ".sql")).read()
    def sub(m):
        v = vals[m.group(1)]
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" if m.group(2) == "String" else v
    sql = re.sub(r"\{(\w+):(\w+)\}", sub, sql)
    return "\n".join(l for l in sql.splitlines() if not l.strip().startswith("--"))
import hashlib
for label, files, extra in cases:
    if only and label.split()[0] not in only: continue
    vals = dict(base, **extra)
    times, stats, digest = [], [], hashlib.md5()
    for r in range(reps):
        t0 = time.time(); qids = []
        for f in files:
            qid = str(uuid.uuid4()); qids.append(qid)
            out = http(render(f, vals), {"database": db, "query_id": qid, "log_queries": "1", "default_format": "JSONCompact", "output_format_json_quote_64bit_integers": "0"})
            if r == 0:
                import json as _j; digest.update(_j.dumps(_j.loads(out)["data"]).encode())
        times.append((time.time() - t0) * 1000)
    http("SYSTEM FLUSH LOGS", {})
    st = [http(f"SELECT read_rows, formatReadableSize(read_bytes), formatReadableSize(memory_usage) FROM system.query_log WHERE query_id = '{q}' AND type = 2 FORMAT TSV", {}).strip().replace("\t", " / ") for q in qids]
    print(f"{label:55s} {statistics.median(times):8.0f} ms  [{' ; '.join(st)}]  {digest.hexdigest()[:8]}", flush=True)
