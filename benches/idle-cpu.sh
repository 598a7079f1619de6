#!/usr/bin/env bash
# What an idle `tokentrail ingest` spends, by thread: ingest on empty topics of its own, the
# CPU ticks (utime + stime, 1/100 s) each thread used over SECONDS once it has settled.
# Against the local services (deploy/local/services start); the database and group it makes
# are named after this run and the database is dropped at the end.
#
#   benches/idle-cpu.sh [SECONDS] [BINARY]
#
# BINARY defaults to target/release/tokentrail (built with `cargo build --release`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-30}"
bin="${2:-target/release/tokentrail}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a number" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "no binary at $bin (cargo build --release)" >&2; exit 2; }
services=deploy/local/services
eval "$("$services" env)"

p="idle_$$"
export TOKENTRAIL__KAFKA__AUDIT_TOPICS="$p.audit_events" TOKENTRAIL__KAFKA__WEBHOOK_TOPICS="$p.webhooks"
export TOKENTRAIL__KAFKA__DEAD_LETTER_TOPIC="$p.dlq" TOKENTRAIL__ALERTING__OUTPUTS__KAFKA_TOPIC="$p.alerts"
export TOKENTRAIL__KAFKA__GROUP_ID="$p.tokentrail" TOKENTRAIL__CLICKHOUSE__DATABASE="tt_$p"
export TOKENTRAIL__TELEMETRY__LISTEN="127.0.0.1:0"
for t in audit_events webhooks dlq alerts; do "$services" create-topic "$p.$t" 1 >/dev/null 2>&1; done
RUST_LOG=warn "$bin" migrate >/dev/null

RUST_LOG=warn "$bin" ingest >/dev/null 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  curl -sS --fail "$TOKENTRAIL__CLICKHOUSE__URL/" --data-binary "DROP DATABASE IF EXISTS tt_$p" >/dev/null || true
}
trap cleanup EXIT

# Each thread's ticks, keyed by its id (names repeat: librdkafka's broker threads).
ticks() {
  local t
  for t in /proc/"$pid"/task/*; do
    echo "${t##*/} $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | sort
}
sleep 10
kill -0 "$pid" 2>/dev/null || { echo "tokentrail ingest exited" >&2; exit 1; }
before="$(ticks)"
sleep "$seconds"
after="$(ticks)"
echo "CPU ticks (1/100 s) by thread over $seconds s idle; threads that used none are left out:"
join <(echo "$before") <(echo "$after") |
  awk -v s="$seconds" '{ d = $5 - $3; if (d > 0) printf "  %-20s %4d ticks  %.2f %% of a core\n", $2, d, d / s }'
