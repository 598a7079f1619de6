#!/usr/bin/env bash
# Recovery after `kill -9`: seconds from a restarted `tokentrail ingest`'s start to its
# partitions being assigned again, for three membership settings. Needs the local services
# (eval "$(deploy/local/services env)") and a built binary (TT_BIN, default target/debug).
#   benches/kill9_recovery.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${TT_BIN:-target/debug/tokentrail}
run_id=k9_$$_$(date +%s)
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true' EXIT
deploy/local/services create-topic "${run_id}_audit" 3 >/dev/null 2>&1
deploy/local/services create-topic "${run_id}_hooks" 1 >/dev/null 2>&1

measure() { # name, extra toml
  local name=$1 extra=$2 cfg="$dir/$1.toml"
  printf '[kafka]\ngroup_id = "%s_%s"\naudit_topics = ["%s_audit"]\nwebhook_topics = ["%s_hooks"]\ndead_letter_topic = "%s_dlq"\n%s\n[clickhouse]\ndatabase = "%s"\n[telemetry]\nlisten = ""\n' \
    "$run_id" "$name" "$run_id" "$run_id" "$run_id" "$extra" "$run_id" >"$cfg"
  env -u TOKENTRAIL__KAFKA__BROKERS RUST_LOG=info "$bin" ingest --config "$cfg" >"$dir/$name.1" 2>&1 &
  local p=$!
  sleep 8
  kill -9 "$p"; wait "$p" 2>/dev/null || true
  local start; start=$(date +%s.%N)
  env -u TOKENTRAIL__KAFKA__BROKERS RUST_LOG=info "$bin" ingest --config "$cfg" >"$dir/$name.2" 2>&1 &
  p=$!
  local deadline=$((SECONDS + 90))
  until grep -q "partitions assigned" "$dir/$name.2"; do
    ((SECONDS < deadline)) || { echo "$name: no assignment within 90 s"; kill -9 "$p"; return; }
    sleep 0.1
  done
  local end; end=$(date +%s.%N)
  kill -9 "$p"; wait "$p" 2>/dev/null || true
  printf '%-44s %6.1f s\n' "$name" "$(echo "$end - $start" | bc)"
}

"$bin" migrate --config <(printf '[clickhouse]\ndatabase = "%s"\n' "$run_id") >/dev/null 2>&1 ||
  env -u TOKENTRAIL__KAFKA__BROKERS TOKENTRAIL__CLICKHOUSE__DATABASE="$run_id" "$bin" migrate >/dev/null
echo "restart after kill -9 -> partitions assigned"
measure before_librdkafka_default_45s '[kafka.options]
"session.timeout.ms" = "45000"'
measure after_default_dynamic_10s ''
measure after_static_group_instance_id 'group_instance_id = "k9-instance-0"'
