#!/usr/bin/env bash
# Where ClickHouse's work goes, per table of one database: the INSERTs of that database
# (system.query_log: count, rows, wall time, CPU time of the query's threads, which includes
# the materialized views an INSERT feeds) and the merges of its parts (system.part_log: count,
# rows, wall time; a merge runs on one thread, so its time is about its CPU). Reads the
# shared server of deploy/local/services, which logs both (deploy/local/lib/clickhouse.sh).
#
#   benches/clickhouse-cost.sh DATABASE [EVENTS]
#
# EVENTS (optional) divides the totals into per-million-events figures. Keep the database
# (TT_E2E_KEEP=1 benches/e2e.sh …) to measure an e2e run; the logs outlive the database.
set -euo pipefail
db="${1:?usage: $0 DATABASE [EVENTS]}"
events="${2:-0}"
[[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || { echo "bad database name: $db" >&2; exit 2; }
[[ "$events" =~ ^[0-9]+$ ]] || { echo "EVENTS must be a number" >&2; exit 2; }
port="${TOKENTRAIL_CH_TCP_PORT:-19000}"
q() { clickhouse-client --port "$port" --format PrettyCompactMonoBlock -q "$1"; }

clickhouse-client --port "$port" -q "SYSTEM FLUSH LOGS"
per_m="if($events = 0, nan, 1e6 / $events)"

echo "INSERTs into $db (query_log; CPU = UserTime + SystemTime of the query's threads;"
echo "blocks written, with those of the views an INSERT feeds, and how many of them arrived"
echo "in the table's key order so that ClickHouse did not sort them: benches/clickhouse-presort.sh)"
q "SELECT
    extract(query, 'INSERT INTO [\`\"]?[A-Za-z0-9_]*[\`\"]?\\\\.?[\`\"]?([A-Za-z0-9_]+)') AS table,
    count() AS inserts,
    sum(written_rows) AS rows_written,
    round(sum(query_duration_ms) / 1000, 2) AS wall_s,
    round(sum(arraySum(arrayMap((n, v) -> if(n IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), v, 0), ProfileEvents.Names, ProfileEvents.Values))) / 1e6, 2) AS cpu_s,
    round(cpu_s * $per_m, 2) AS cpu_s_per_m_events,
    sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterBlocks')]) AS blocks,
    sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterBlocksAlreadySorted')]) AS already_sorted
  FROM system.query_log
  WHERE type = 2 AND query LIKE 'INSERT INTO%' AND (query LIKE '%$db.%' OR query LIKE '%\`$db\`.%')
  GROUP BY table WITH TOTALS ORDER BY cpu_s DESC"

echo "Merges of $db's parts (part_log; one thread each, so wall time ~ CPU time)"
q "SELECT table,
    count() AS merges,
    sum(rows) AS rows_merged,
    round(sum(size_in_bytes) / 1e6, 1) AS mb_written,
    round(sum(duration_ms) / 1000, 2) AS wall_s,
    round(wall_s * $per_m, 2) AS s_per_m_events
  FROM system.part_log
  WHERE event_type = 2 AND database = '$db'
  GROUP BY table WITH TOTALS ORDER BY wall_s DESC"

echo "New parts of $db (part_log: one per INSERT block and partition)"
q "SELECT table, count() AS new_parts, sum(rows) AS rows
  FROM system.part_log WHERE event_type = 1 AND database = '$db'
  GROUP BY table WITH TOTALS ORDER BY new_parts DESC"
