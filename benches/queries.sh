#!/usr/bin/env bash
# Times every named query on N simulated token-use rows (default 10,000,000) in a fresh
# database on the local ClickHouse server: median of 5 runs per query, first with the parts
# as loaded (background merges still running), then with every table merged; prints the
# storage per table after the load and after the merge.
#
#   eval "$(deploy/local/services env)"
#   benches/queries.sh [N]
#
# Rows come from examples/load_token_use.rs (the simulator's ground truth repeated with
# shifted times) as RowBinary piped into the server's HTTP interface (the materialized views
# of migration 0011 fill the lookup tables during the load); then `tokentrail seal` seals
# every day, as ingest does on its timer. The allowlist,
# token-lifecycle and jobs tables get the rows of the same simulated stream. Each timing is
# one `tokentrail query <name> --format csv` process: connect, version check, query, render.
set -euo pipefail

N="${1:-10000000}"
URL="${TOKENTRAIL__CLICKHOUSE__URL:?run: eval \"\$(deploy/local/services env)\"}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DB="bench_queries_$(date +%s)"
export TOKENTRAIL__CLICKHOUSE__DATABASE="$DB"

cd "$ROOT"
cargo build --release --quiet --bin tokentrail --example load_token_use
BIN="$ROOT/target/release/tokentrail"
GEN="$ROOT/target/release/examples/load_token_use"

"$BIN" migrate >/dev/null
insert() { # table, rows-arg
  local cols
  cols="$("$GEN" columns "$1")"
  "$GEN" "$1" "$2" | curl -sS --fail-with-body -X POST -H "Transfer-Encoding: chunked" -T - \
    "$URL/?query=$(printf 'INSERT INTO %s.%s (%s) FORMAT RowBinary' "$DB" "$1" "$cols" | jq -sRr @uri)"
}
start=$(date +%s.%N)
insert token_use "$N"
for t in allowlist_changes token_lifecycle jobs; do insert "$t" 0; done
loaded=$(date +%s.%N)
# Seal every ended day, as ingest does on its timer (`tokentrail seal`).
"$BIN" seal
sealed=$(date +%s.%N)
rows=$(curl -sS "$URL/" --data-binary "SELECT count() FROM $DB.token_use")
printf 'loaded %s token_use rows into %s in %.1f s; sealed in %.1f s\n' "$rows" "$DB" \
  "$(echo "$loaded - $start" | bc)" "$(echo "$sealed - $loaded" | bc)"

storage() {
  printf '\n%-28s %8s %14s %14s\n' table parts rows bytes
  curl -sS "$URL/" --data-binary "SELECT table, count(), sum(rows), sum(bytes_on_disk) FROM system.parts \
    WHERE active AND database = '$DB' GROUP BY table ORDER BY sum(bytes_on_disk) DESC FORMAT TSV" |
    while IFS=$'\t' read -r t p r b; do printf '%-28s %8s %14s %14s\n' "$t" "$p" "$r" "$b"; done
}

# A project with many uses, for the filtered variants.
PROJECT=$(curl -sS "$URL/" --data-binary \
  "SELECT target_project_path FROM $DB.token_use WHERE target_project_path != '' GROUP BY target_project_path ORDER BY count() DESC LIMIT 1")
read -r JOB PIPELINE SOURCE < <(curl -sS "$URL/" --data-binary \
  "SELECT job_id, pipeline_id, source_project_path FROM $DB.token_use WHERE same_project = 0 AND job_id IS NOT NULL AND pipeline_id IS NOT NULL ORDER BY record_key LIMIT 1 FORMAT TSV")

median_ms() { # command...
  local times=()
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}

all_queries() { # label
  printf '\n%-52s %10s\n' "query (N=$N, $1)" "median ms"
  printf '%-52s %10s\n' "----------------------------------------------------" "----------"
  run() { # label, args...
    local label="$1"; shift
    printf '%-52s %10s\n' "$label" "$(median_ms "$BIN" query "$@" --format csv)"
  }
  for q in latest-use actors actor-kinds actions-over-time changes allowlist-vs-use \
           outside-allowlist unused-allowlist-entries recommended-allowlist; do
    run "$q" "$q"
  done
  run "token-used-where --job $JOB" token-used-where --job "$JOB"
  run "token-used-where --pipeline $PIPELINE" token-used-where --pipeline "$PIPELINE"
  run "token-used-where --project $SOURCE" token-used-where --project "$SOURCE"
  run "latest-use --project $PROJECT" latest-use --project "$PROJECT"
  run "actions-over-time --project $PROJECT" actions-over-time --project "$PROJECT"
  run "outside-allowlist --since 7d" outside-allowlist --since 7d
}

storage
# Parts as loaded, with merges stopped so they do not compete for the two cores (restarted
# on any exit: the setting is server-wide).
trap 'curl -sS "$URL/" --data-binary "SYSTEM START MERGES"' EXIT
curl -sS --fail-with-body "$URL/" --data-binary "SYSTEM STOP MERGES"
all_queries "parts as loaded, merges stopped"
curl -sS --fail-with-body "$URL/" --data-binary "SYSTEM START MERGES"
# Merge every part, as a long-running server eventually does.
merge_start=$(date +%s.%N)
for t in $(curl -sS "$URL/" --data-binary "SELECT name FROM system.tables WHERE database = '$DB' AND engine LIKE '%MergeTree'"); do
  curl -sS --fail-with-body "$URL/" --data-binary "OPTIMIZE TABLE $DB.$t FINAL"
done
printf '\nmerged in %.1f s\n' "$(echo "$(date +%s.%N) - $merge_start" | bc)"
storage
all_queries "merged"

if [[ "${KEEP:-0}" != 1 ]]; then
  curl -sS "$URL/" --data-binary "DROP DATABASE $DB"
else
  echo "kept database $DB"
fi
