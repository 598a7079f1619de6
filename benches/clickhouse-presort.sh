#!/usr/bin/env bash
# What ClickHouse's INSERTs would cost if tokentrail sent each block in its table's ORDER BY
# order: a MergeTree INSERT sorts a block that is not in key order and copies every column
# into that order (`MergeTreeDataWriterBlocksAlreadySorted` in system.query_log counts the
# blocks it did not have to sort). Copies the rows of a kept e2e database's two raw tables
# into fresh tables, three times each, in blocks of 13,000 rows (about one batch's
# audit_events rows; a batch holds about 5,400 webhooks) either sorted by the table's key or
# shuffled, and sums this run's INSERTs from query_log. The rows come from Memory tables that hold those blocks, read in order with one
# thread, so both kinds of INSERT read alike; no table is dropped until the end, so no INSERT
# searches past freshly deleted inodes (benches/README.md, "Eleventh session").
#
#   TT_E2E_KEEP=1 TT_E2E_PHASES=backlog benches/e2e.sh 1000000
#   benches/clickhouse-presort.sh tt_e2e<run>_backlog
#
# Reads the shared server of deploy/local/services (it logs every query). The copies are
# dropped at the end; the database is left as it was.
set -euo pipefail
db="${1:?usage: $0 DATABASE}"
[[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || { echo "bad database name: $db" >&2; exit 2; }
port="${TOKENTRAIL_CH_TCP_PORT:-19000}"
started="$(date +%s)"
ch() { clickhouse-client --port "$port" "$@"; }
blocks=(--max_threads=1 --max_block_size=13000 --max_insert_block_size=13000
        --min_insert_block_size_rows=0 --min_insert_block_size_bytes=0)
copies=()
cleanup() { for t in "${copies[@]}" src_sorted src_shuffled; do ch -q "DROP TABLE IF EXISTS $db.$t" || true; done; }
trap cleanup EXIT

# table:its ORDER BY (schemas/clickhouse/0001_audit_events.sql, 0002_webhook_events.sql)
for spec in webhook_events:object_kind,dedup_key audit_events:event_type,created_at,dedup_key; do
  table="${spec%%:*}" key="${spec#*:}"
  ch "${blocks[@]}" -q "CREATE TABLE $db.src_sorted ENGINE = Memory AS SELECT * FROM $db.$table ORDER BY $key"
  ch "${blocks[@]}" -q "CREATE TABLE $db.src_shuffled ENGINE = Memory AS SELECT * FROM $db.$table ORDER BY cityHash64(dedup_key)"
  for round in 1 2 3; do
    for order in sorted shuffled; do
      copy="presort_${table}_${order}_$round"
      copies+=("$copy")
      ch -q "CREATE TABLE $db.$copy AS $db.$table"
      ch -q "SYSTEM STOP MERGES $db.$copy"
      ch "${blocks[@]}" -q "INSERT INTO $db.$copy SELECT * FROM $db.src_$order"
    done
  done
  ch -q "DROP TABLE $db.src_sorted"
  ch -q "DROP TABLE $db.src_shuffled"
done

ch -q "SYSTEM FLUSH LOGS"
event() { echo "sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, '$1')])"; }
echo "INSERTs of the same rows into $db's copies (query_log; CPU = the query's threads)"
ch --format PrettyCompactMonoBlock -q "SELECT
    extract(query, 'INTO [A-Za-z0-9_]+\\\\.presort_([a-z_]+)_[0-9]') AS copy,
    count() AS inserts,
    sum(written_rows) AS rows,
    round($(event UserTimeMicroseconds) / 1e6, 2) AS user_s,
    round($(event SystemTimeMicroseconds) / 1e6, 2) AS system_s,
    $(event MergeTreeDataWriterBlocks) AS blocks,
    $(event MergeTreeDataWriterBlocksAlreadySorted) AS already_sorted,
    $(event SoftPageFaults) AS soft_page_faults
  FROM system.query_log
  WHERE type = 2 AND query LIKE 'INSERT INTO $db.presort\\_%' AND event_time >= toDateTime($started)
  GROUP BY copy ORDER BY copy"
