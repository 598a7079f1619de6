#!/usr/bin/env bash
# benches/collect_load.sh — load test of `tokentrail collect` on loopback against the local Kafka.
#
#   eval "$(deploy/local/services env)"        # the running Kafka (never started/stopped here)
#   benches/collect_load.sh [RATE...]          # default rates: 500 1000 2000
#
# Environment: DURATION (s per rate, default 20), REQUESTS (max per rate, default 40000),
# CONNECTIONS (default 64), PARTITIONS (default 3), WRK=0 to skip the wrk run.
#
# What it does:
#   1. builds `tokentrail` and the load generator (examples/collect_load.rs) in release mode;
#   2. creates a fresh topic (and dead-letter topic) on the local Kafka;
#   3. starts `tokentrail collect` on 127.0.0.1 with a generated config file;
#   4. for each RATE, runs examples/collect_load from a second process: fixed offered rate,
#      bounded by DURATION seconds and REQUESTS requests, latency measured from each request's
#      scheduled send time; prints achieved req/s and p50/p90/p99/p99.9/max;
#   5. runs wrk (installed with apt if missing) for DURATION s, closed loop, as the
#      maximum-throughput check (wrk cannot hold a fixed rate; its latencies are optimistic);
#   6. prints the collector's counters and checks the topic holds every 2xx answer.
# Every response is a Kafka-acknowledged write (acks=all, idempotent producer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${TOKENTRAIL__KAFKA__BROKERS:?run: eval \"\$(deploy/local/services env)\" first}"
: "${TOKENTRAIL_KAFKA_LIBS:?run: eval \"\$(deploy/local/services env)\" first}"
DURATION="${DURATION:-20}"
REQUESTS="${REQUESTS:-40000}"
CONNECTIONS="${CONNECTIONS:-64}"
PARTITIONS="${PARTITIONS:-3}"
RATES=("$@")
[[ ${#RATES[@]} -gt 0 ]] || RATES=(500 1000 2000)

log() { echo "[collect_load] $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$TOKENTRAIL_KAFKA_LIBS/*" "$@"
}

log "building (release)"
cargo build --release --quiet --bin tokentrail --example collect_load
BIN=target/release/tokentrail
LOADGEN=target/release/examples/collect_load

WORK="$(mktemp -d)"
COLLECTOR_PID=""
cleanup() {
  # Only the collector this script started, by its pid.
  if [[ -n "$COLLECTOR_PID" ]] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
    kill -TERM "$COLLECTOR_PID" 2>/dev/null || true
    wait "$COLLECTOR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

TOPIC="bench_collect_$(date +%s)_$$"
for t in "$TOPIC" "${TOPIC}_dlq"; do
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TOKENTRAIL__KAFKA__BROKERS" \
    --create --topic "$t" --partitions "$PARTITIONS" --replication-factor 1 >/dev/null
done
log "topic $TOPIC ($PARTITIONS partitions)"

PORT="$(free_port)"
METRICS_PORT="$(free_port)"
TOKEN="bench-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
cat >"$WORK/collect.toml" <<EOF
[kafka]
brokers = "$TOKENTRAIL__KAFKA__BROKERS"
dead_letter_topic = "${TOPIC}_dlq"

[telemetry]
listen = "127.0.0.1:$METRICS_PORT"

[collect]
listen = "127.0.0.1:$PORT"
max_concurrent_requests = 256

[[collect.audit_streams]]
path = "/gitlab/audit-events"
token = "$TOKEN"
topic = "$TOPIC"
EOF
chmod 600 "$WORK/collect.toml"

RUST_LOG=warn "$BIN" collect --config "$WORK/collect.toml" 2>"$WORK/collector.log" &
COLLECTOR_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$COLLECTOR_PID" 2>/dev/null || { cat "$WORK/collector.log" >&2; exit 1; }
  sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { log "collector never became ready"; cat "$WORK/collector.log" >&2; exit 1; }
log "collector pid $COLLECTOR_PID on 127.0.0.1:$PORT"

BODY=tests/fixtures/gitlab/audit-stream/user_authenticated_using_job_token.json
echo "== fixed-rate runs (examples/collect_load; $CONNECTIONS connections, body $(wc -c <"$BODY") bytes, ≤${DURATION}s, ≤$REQUESTS requests each)"
for rate in "${RATES[@]}"; do
  "$LOADGEN" --addr "127.0.0.1:$PORT" --token "$TOKEN" --body "$BODY" \
    --rate "$rate" --duration "$DURATION" --requests "$REQUESTS" --connections "$CONNECTIONS"
done

if [[ "${WRK:-1}" != 0 ]]; then
  if ! command -v wrk >/dev/null; then
    log "installing wrk with apt"
    (apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }) ||
      log "could not install wrk; skipping the closed-loop run"
  fi
  if command -v wrk >/dev/null; then
    cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
local f = assert(io.open("$BODY", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["X-Gitlab-Event-Streaming-Token"] = "$TOKEN"
wrk.headers["X-Gitlab-Audit-Event-Type"] = "user_authenticated_using_job_token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
EOF
    echo "== closed loop (wrk -t2 -c$CONNECTIONS -d${DURATION}s): maximum throughput"
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" \
      "http://127.0.0.1:$PORT/gitlab/audit-events" | grep -Ev '^\s*$'
  fi
fi

echo "== collector counters"
curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" |
  grep -E '^tokentrail_collect_(requests_total|rejected_total|messages_produced_total)' || true
ACKED="$(curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" |
  awk '/^tokentrail_collect_messages_produced_total/ {s += $2} END {print s + 0}')"
STORED="$(kafka_tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$TOKENTRAIL__KAFKA__BROKERS" \
  --topic "$TOPIC" 2>/dev/null | awk -F: '{s += $3} END {print s + 0}')"
echo "acknowledged by the collector: $ACKED, messages in $TOPIC: $STORED"
[[ "$STORED" -ge "$ACKED" ]] || { echo "FAIL: fewer messages in Kafka than acknowledged"; exit 1; }
