#!/usr/bin/env bash
# End-to-end benchmark: Kafka -> tokentrail ingest (release) -> ClickHouse, against the local
# services (deploy/local/services), plus the Python baseline (benches/baseline/consumer.py)
# on the same topic and server.
#
#   benches/e2e.sh [MESSAGES]          default 1,000,000 Kafka messages (~7 per simulated job)
#
# Phases (each on fresh topics and a fresh database, both deleted at the end unless TT_E2E_KEEP=1):
#   1. backlog: `tokentrail simulate` publishes MESSAGES into Kafka first; then
#      `tokentrail ingest` starts and runs until every audit/webhook/token-use row it produced
#      is acknowledged by ClickHouse (its /metrics: rows_stored_total == rows produced, after
#      all messages were consumed). Reports events/s, MB/s (Kafka log bytes), CPU-seconds per
#      million events, peak RSS (VmHWM) of tokentrail, and the CPU of tokentrail's and
#      ClickHouse's threads by name; then checks the stored distinct counts against the
#      simulator's ground truth.
#   2. baseline: the Python consumer drains the same audit topic (own consumer group, own
#      database) over HTTP (JSONEachRow) and exits at the end of the partitions; same figures;
#      ratio.
#   2b. native: the same consumer with clickhouse-driver over the native TCP protocol and
#      50k-row batches (the careful home-made consumer); same figures; ratio.
#   3. freshness: tokentrail ingest runs first, then `simulate --rate RATE` publishes for
#      FRESH_SECONDS; benches/e2e/probe.py polls ClickHouse every 100 ms for the visible
#      offsets and compares each audit message's Kafka timestamp (publish time) with the
#      poll that first saw its row: p50/p99 of produce -> queryable. Also prints tokentrail's
#      end_to_end_lag_seconds histogram (oldest message of a batch -> commit) as a bucket bound.
#
# Knobs (environment):
#   TT_E2E_PARTITIONS (3)      partitions of the audit and webhook topics
#   TT_E2E_RATE (10000)        messages/s published in the freshness phase
#   TT_E2E_FRESH_SECONDS (60)  length of the paced publication
#   TT_E2E_PHASES ("backlog baseline native freshness")  which phases to run
#   TT_E2E_BAD_SHARE (0)       simulate --bad-share (poison share)
#   TT_E2E_TIMEOUT (1800)      seconds allowed per phase before giving up
#   TT_E2E_METRICS_PORT (29464) tokentrail's telemetry port (loopback)
#   TT_E2E_KEEP (0)            1 keeps the databases and topics
#   TT_E2E_OUT (unset)         directory for each phase's last /metrics scrape
#   TT_E2E_BIN (unset)         a tokentrail binary to use instead of building one (A/B runs)
#   TT_E2E_PROFILE (unset)     FILE.svg: a flame graph of tokentrail draining the backlog
#                              (perf, DWARF call graphs, inferno), and FILE.folded its stacks;
#                              the run's figures then include perf's overhead (not for comparing);
#                              perf attaches once librdkafka's broker thread runs
#   TT_E2E_SETTLE (0)          seconds to wait, counted from the previous run's DROP DATABASE,
#                              before this run starts (see "Runs close together" below)
#   TOKENTRAIL__* variables (batch.*, kafka.max_prefetch_kbytes, kafka.options.*) are passed
#   to `tokentrail ingest` unchanged, for tuning runs.
#
# Kafka, ClickHouse, the publisher and tokentrail share one machine; on a small box they
# compete for the same cores, so figures are for the whole system on this machine.
#
# Runs close together: each run drops its databases at the end, tens of thousands of files.
# On ext4 without a journal (this project's VM) the kernel will not reuse an inode deleted in
# the last 60 s (300 s while its inode-table block is unwritten) and searches past each one
# for every file ClickHouse creates, so the next run's ClickHouse, and everything sharing its
# cores, is slower for minutes (benches/README.md, "Eleventh session"). The script notes when
# the previous drop is under DROP_QUIET_S (360 s) old; TT_E2E_SETTLE=360 waits instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
PARTITIONS="${TT_E2E_PARTITIONS:-3}"
RATE="${TT_E2E_RATE:-10000}"
FRESH_SECONDS="${TT_E2E_FRESH_SECONDS:-60}"
PHASES="${TT_E2E_PHASES:-backlog baseline native freshness}"
PROFILE="${TT_E2E_PROFILE:-}"
BAD_SHARE="${TT_E2E_BAD_SHARE:-0}"
TIMEOUT="${TT_E2E_TIMEOUT:-1800}"
METRICS_PORT="${TT_E2E_METRICS_PORT:-29464}"
KEEP="${TT_E2E_KEEP:-0}"
SETTLE="${TT_E2E_SETTLE:-0}"
# Past the kernel's 300 s for an unwritten inode-table block (see "Runs close together").
DROP_QUIET_S=360

services="$ROOT/deploy/local/services"
started_services=0
ingest_pid=""
probe_pid=""
perf_pid=""
databases=()
WORK="$(mktemp -d /tmp/tokentrail-e2e.XXXXXX)"

cleanup() {
  local rc=$?
  if [[ -n "$probe_pid" ]]; then kill "$probe_pid" 2>/dev/null || true; fi
  if [[ -n "$perf_pid" ]]; then kill -INT "$perf_pid" 2>/dev/null || true; fi
  if [[ -n "$ingest_pid" ]]; then
    kill -TERM "$ingest_pid" 2>/dev/null || true
    wait "$ingest_pid" 2>/dev/null || true
  fi
  if [[ "$KEEP" != 1 && -n "${TOKENTRAIL__CLICKHOUSE__URL:-}" ]]; then
    for db in "${databases[@]}"; do sql "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
    ((${#databases[@]} == 0)) || date +%s >"$DROPPED_AT" 2>/dev/null || true
  fi
  # A 10 M-message run leaves ~15 GB of topics: kept only with TT_E2E_KEEP=1.
  if [[ "$KEEP" != 1 && -n "${RUN:-}" ]] && "$services" status >/dev/null 2>&1; then
    "$services" topics --delete --topic "${RUN//./\\.}\\..*" >/dev/null 2>&1 || true
  fi
  if ((started_services)); then "$services" stop || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
sql() { curl -sS --fail-with-body "$TOKENTRAIL__CLICKHOUSE__URL/" --data-binary "$1"; }
calc() { echo "$*" | bc -l; }
fmt() { printf "%.${2:-1}f" "$1"; }

if ! "$services" status >/dev/null 2>&1; then
  log "starting the local services"
  "$services" start >/dev/null
  started_services=1
fi
eval "$("$services" env)"
BROKERS="$TOKENTRAIL__KAFKA__BROKERS"
CH_PID="$(cat "$TOKENTRAIL_LOCAL_DIR/run/clickhouse.pid")"
KAFKA_PID="$(cat "$TOKENTRAIL_LOCAL_DIR/run/kafka.pid")"
# When a run last dropped its databases (see "Runs close together" above).
DROPPED_AT="$TOKENTRAIL_LOCAL_DIR/run/e2e-dropped-at"
SINCE_DROP=""
if [[ -r "$DROPPED_AT" ]]; then
  SINCE_DROP=$(($(date +%s) - $(cat "$DROPPED_AT")))
  if ((SINCE_DROP < SETTLE)); then
    log "waiting $((SETTLE - SINCE_DROP)) s: the previous run dropped its databases ${SINCE_DROP} s ago (TT_E2E_SETTLE=$SETTLE)"
    sleep $((SETTLE - SINCE_DROP))
    SINCE_DROP="$SETTLE"
  fi
fi
recent_drop() { [[ -n "$SINCE_DROP" ]] && ((SINCE_DROP < DROP_QUIET_S)); }
! recent_drop || log "note: the previous run dropped its databases ${SINCE_DROP} s ago: ClickHouse will be slower for a while (see 'Runs close together' in $0)"

if [[ -n "${TT_E2E_BIN:-}" ]]; then
  BIN="$TT_E2E_BIN"
else
  log "building tokentrail (release)"
  cargo build --release --locked --quiet --bin tokentrail
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tokentrail"
fi

# The baseline's and the probe's Python environment, pinned.
VENV="$TOKENTRAIL_LOCAL_DIR/bench-venv"
REQ="$ROOT/benches/baseline/requirements.txt"
if ! cmp -s "$REQ" "$VENV/requirements.txt" 2>/dev/null; then
  log "creating $VENV (pip: $(grep -v '^#' "$REQ" | tr '\n' ' '))"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/requirements.txt"
fi
PY="$VENV/bin/python"

RUN="e2e$(date +%s)"
CLK_TCK="$(getconf CLK_TCK)"

# CPU seconds (user+system) of a pid so far.
cpu_of() { awk -v hz="$CLK_TCK" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
# Of which system (kernel) CPU seconds: ClickHouse's grow after a recent drop (see "Runs
# close together" above), its user time does not.
sys_of() { awk -v hz="$CLK_TCK" '{ print $15 / hz }' "/proc/$1/stat"; }
# CPU seconds of a pid's threads so far, one "name<TAB>seconds" line per thread name with
# trailing digits dropped (rdk:broker1 and rdk:broker2 are one line). Threads that already
# exited are not in /proc, so the lines may sum to less than cpu_of.
threads_cpu_of() {
  local f
  for f in /proc/"$1"/task/*/stat; do cat "$f" 2>/dev/null; done | awk -v hz="$CLK_TCK" '
    { line = $0; sub(/^[0-9]+ \(/, "", line)
      name = line; sub(/\) [^)]*$/, "", name); gsub(/[0-9]+$/, "", name)
      rest = line; sub(/^.*\) /, "", rest); split(rest, f, " ")
      t[name] += (f[12] + f[13]) / hz }
    END { for (n in t) printf "%s\t%.2f\n", n, t[n] }'
}
# What each thread name used since the lines of threads_cpu_of in $2 (empty for a new
# process), largest first, those that round to 0.1 s or more: "name 1.2, name 0.3".
threads_cpu_since() { # pid before
  { printf '%s\n' "$2" | sed '/^$/d; s/^/-\t/'; threads_cpu_of "$1" | sed 's/^/+\t/'; } \
    | awk -F'\t' '{ d[$2] += ($1 == "+" ? $3 : -$3) }
        END { for (n in d) if (d[n] >= 0.05) printf "%s\t%.1f\n", n, d[n] }' \
    | sort -t$'\t' -k2 -rn | awk -F'\t' '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }'
}
# Minor page faults of a pid so far: memory touched for the first time, or again after the
# allocator gave it back (src/store/chunk_pool.rs).
minflt_of() { awk '{ print $10 }' "/proc/$1/stat"; }

# VmHWM (peak resident set) of a pid, in MB.
hwm_of() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# Bytes of Kafka's log segments of a topic (record batches as stored = as fetched).
topic_bytes() {
  local total=0 f
  for f in "$TOKENTRAIL_LOCAL_DIR"/kafka/data/"$1"-*/*.log; do
    [[ -e "$f" ]] && total=$((total + $(stat -c %s "$f")))
  done
  echo "$total"
}
# Sum of a metric (all label sets, or those matching a label filter) from /metrics.
metric() { # file, name, [label filter]
  awk -v name="tokentrail_$2" -v filt="${3:-}" '
    index($0, name) == 1 && (substr($0, length(name) + 1, 1) == "{" || substr($0, length(name) + 1, 1) == " ") {
      if (filt == "" || index($0, filt) > 0) s += $NF
    }
    END { printf "%.0f", s }' "$1"
}
# Keeps the last /metrics scrape of a phase in $TT_E2E_OUT (if set), for a closer look.
save_metrics() { if [[ -n "${TT_E2E_OUT:-}" ]]; then mkdir -p "$TT_E2E_OUT"; cp "$WORK/m" "$TT_E2E_OUT/$RUN.$1.metrics"; fi; }
scrape() { curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" >"$1" 2>/dev/null; }

# Topic names and tokentrail settings for one phase.
setup_phase() { # name
  local p="$RUN.$1"
  export TOKENTRAIL__KAFKA__AUDIT_TOPICS="$p.audit_events"
  export TOKENTRAIL__KAFKA__WEBHOOK_TOPICS="$p.webhooks"
  export TOKENTRAIL__KAFKA__DEAD_LETTER_TOPIC="$p.dlq"
  export TOKENTRAIL__ALERTING__OUTPUTS__KAFKA_TOPIC="$p.alerts"
  export TOKENTRAIL__KAFKA__GROUP_ID="$p.tokentrail"
  export TOKENTRAIL__CLICKHOUSE__DATABASE="tt_${RUN}_$1"
  export TOKENTRAIL__TELEMETRY__LISTEN="127.0.0.1:$METRICS_PORT"
  local t
  for t in "$TOKENTRAIL__KAFKA__AUDIT_TOPICS:$PARTITIONS" "$TOKENTRAIL__KAFKA__WEBHOOK_TOPICS:$PARTITIONS" \
           "$TOKENTRAIL__KAFKA__DEAD_LETTER_TOPIC:1" "$TOKENTRAIL__ALERTING__OUTPUTS__KAFKA_TOPIC:1"; do
    "$services" create-topic "${t%:*}" "${t##*:}" >/dev/null 2>&1
  done
  databases+=("$TOKENTRAIL__CLICKHOUSE__DATABASE")
  RUST_LOG=warn "$BIN" migrate >/dev/null
}

# `simulate` with its ground truth read from the JSON `--truth` writes: sets SENT,
# TRUTH_AUDIT, TRUTH_WEBHOOKS, TRUTH_USES.
simulate() { # jobs, rate
  "$BIN" simulate --jobs "$1" --rate "$2" --bad-share "$BAD_SHARE" --to kafka \
    --truth "$WORK/truth.json" 2>"$WORK/sim.err" >/dev/null \
    || { cat "$WORK/sim.err" >&2; die "simulate failed"; }
  read -r SENT TRUTH_AUDIT TRUTH_WEBHOOKS TRUTH_USES < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
print(t["audit_messages"] + t["webhook_messages"], t["distinct_audit_events"],
      t["distinct_webhooks"], len(t["token_uses"]))' "$WORK/truth.json")
}

start_ingest() {
  RUST_LOG=warn "$BIN" ingest >"$WORK/ingest.out" 2>"$WORK/ingest.err" &
  ingest_pid=$!
}

# perf samples tokentrail's threads with DWARF call graphs (release builds have debug info
# but no frame pointers); inferno folds the stacks and draws the SVG.
start_profile() {
  command -v perf >/dev/null && command -v inferno-flamegraph >/dev/null \
    || die "TT_E2E_PROFILE needs perf and inferno (cargo install inferno)"
  # Attached as the process started, perf sometimes had librdkafka's broker thread in the
  # profile and sometimes not, as if it sampled only the threads there were when it attached
  # (benches/README.md, "Twenty-second session"). So it waits for a broker thread, up to 10 s,
  # and misses the drain's first moments.
  local waited=0
  until grep -qs '^rdk:broker' /proc/"$ingest_pid"/task/*/comm || (( waited >= 100 )); do
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  perf record -F 199 --call-graph dwarf,16384 -o "$WORK/perf.data" -p "$ingest_pid" \
    >"$WORK/perf.out" 2>&1 &
  perf_pid=$!
}

stop_profile() {
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=""
  local folded="${PROFILE%.svg}.folded"
  perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$folded"
  # Frames under 0.1 % of the samples are left out of the drawing (not of the .folded file).
  inferno-flamegraph --minwidth 0.1 --title "tokentrail ingest draining a $N-message backlog" \
    <"$folded" >"$PROFILE"
  log "backlog: flame graph in $PROFILE, its stacks in $folded ($(wc -l <"$folded") distinct)"
}

stop_ingest() {
  kill -TERM "$ingest_pid" 2>/dev/null || true
  wait "$ingest_pid" 2>/dev/null || true
  ingest_pid=""
}

# Waits until tokentrail consumed $1 messages and ClickHouse acknowledged every row it
# produced from them. Sets DONE_AT (epoch seconds) and leaves the last scrape in $WORK/m.
wait_drained() { # messages, deadline (epoch s)
  local consumed=0 audit_ev webhook_ev uses stored_a stored_w stored_u
  while :; do
    kill -0 "$ingest_pid" 2>/dev/null || { cat "$WORK/ingest.err" >&2; die "tokentrail ingest exited"; }
    if scrape "$WORK/m"; then
      consumed="$(metric "$WORK/m" messages_consumed_total)"
      audit_ev="$(metric "$WORK/m" events_normalized_total 'source="audit_stream"')"
      webhook_ev="$(metric "$WORK/m" events_normalized_total 'source="webhook"')"
      uses="$(metric "$WORK/m" token_use_records_total)"
      stored_a="$(metric "$WORK/m" rows_stored_total 'table="audit_events"')"
      stored_w="$(metric "$WORK/m" rows_stored_total 'table="webhook_events"')"
      stored_u="$(metric "$WORK/m" rows_stored_total 'table="token_use"')"
      if ((consumed >= $1 && stored_a == audit_ev && stored_w == webhook_ev && stored_u == uses)); then
        DONE_AT="$(now)"
        EVENTS=$((audit_ev + webhook_ev))
        AUDIT_EVENTS="$audit_ev"
        return
      fi
    fi
    [[ "$(now | cut -d. -f1)" -lt "$2" ]] || die "not drained within ${TIMEOUT}s (consumed $consumed of $1)"
    sleep 0.2
  done
}

# Waits for ingest's own caught-up signal (the `ingest_caught_up` gauge: every partition
# committed to its end), the one the demo and the tests use too. `wait_drained` above times
# the run to *stored*; this ends it *committed*, after the correlator's idle wait.
wait_caught_up() { # deadline (epoch s)
  while :; do
    if scrape "$WORK/m" && [[ "$(metric "$WORK/m" ingest_caught_up)" == 1 ]]; then return; fi
    [[ "$(date +%s)" -lt "$1" ]] || die "ingest did not report caught up within ${TIMEOUT}s"
    sleep 0.5
  done
}

# Stored distinct rows vs the simulator's ground truth (after the run).
check_truth() { # db
  local a w
  a="$(sql "SELECT count() FROM $1.audit_events_dedup")"
  w="$(sql "SELECT count() FROM $1.webhook_events_dedup")"
  CHECK="audit_events $a/$TRUTH_AUDIT, webhook_events $w/$TRUTH_WEBHOOKS"
  if [[ "$a" != "$TRUTH_AUDIT" || "$w" != "$TRUTH_WEBHOOKS" ]]; then CHECK="$CHECK MISMATCH"; fi
}

declare -A R
jobs_for() { echo $(( ($1 + 6) / 7 )); }

phase_backlog() {
  setup_phase backlog
  BACKLOG_AUDIT_TOPIC="$TOKENTRAIL__KAFKA__AUDIT_TOPICS"
  BACKLOG_DB="$TOKENTRAIL__CLICKHOUSE__DATABASE"
  log "backlog: publishing ~$N messages ($(jobs_for "$N") jobs) to $RUN.backlog.*"
  local t0 t1
  t0="$(now)"
  simulate "$(jobs_for "$N")" 0
  t1="$(now)"
  log "backlog: $SENT messages published in $(fmt "$(calc "$t1 - $t0")") s; ground truth: $TRUTH_AUDIT audit events, $TRUTH_WEBHOOKS webhooks, $TRUTH_USES token uses"
  local bytes_a bytes_w
  bytes_a="$(topic_bytes "$TOKENTRAIL__KAFKA__AUDIT_TOPICS")"
  bytes_w="$(topic_bytes "$TOKENTRAIL__KAFKA__WEBHOOK_TOPICS")"
  BACKLOG_AUDIT_BYTES="$bytes_a"
  local ch0 chs0 k0 chthreads0
  ch0="$(cpu_of "$CH_PID")"; chs0="$(sys_of "$CH_PID")"; k0="$(cpu_of "$KAFKA_PID")"
  chthreads0="$(threads_cpu_of "$CH_PID")"
  log "backlog: tokentrail ingest"
  t0="$(now)"
  start_ingest
  [[ -z "$PROFILE" ]] || start_profile
  wait_drained "$SENT" "$(( $(date +%s) + TIMEOUT ))"
  [[ -z "$PROFILE" ]] || stop_profile
  local secs cpu
  secs="$(calc "$DONE_AT - $t0")"
  cpu="$(cpu_of "$ingest_pid")"
  R[tt_secs]="$secs"
  R[tt_msgs]="$SENT"
  R[tt_events]="$EVENTS"
  R[tt_eps]="$(calc "$EVENTS / $secs")"
  R[tt_mps]="$(calc "$SENT / $secs")"
  R[tt_mbps]="$(calc "($bytes_a + $bytes_w) / 1000000 / $secs")"
  R[tt_cpu]="$cpu"
  R[tt_cpu_per_m]="$(calc "$cpu / $EVENTS * 1000000")"
  R[tt_rss]="$(hwm_of "$ingest_pid")"
  R[tt_minflt_per_m]="$(calc "$(minflt_of "$ingest_pid") / $EVENTS * 1000000")"
  R[tt_ch_cpu]="$(calc "$(cpu_of "$CH_PID") - $ch0")"
  R[tt_ch_cpu_per_m]="$(calc "${R[tt_ch_cpu]} / $EVENTS * 1000000")"
  R[tt_ch_sys_per_m]="$(calc "($(sys_of "$CH_PID") - $chs0) / $EVENTS * 1000000")"
  R[tt_kafka_cpu]="$(calc "$(cpu_of "$KAFKA_PID") - $k0")"
  R[tt_audit_eps]="$(calc "$AUDIT_EVENTS / $secs")"
  save_metrics backlog
  log "backlog: drained in $(fmt "$secs") s: $EVENTS events ($(fmt "${R[tt_eps]}" 0)/s), CPU $(fmt "$cpu") s, peak RSS ${R[tt_rss]} MB"
  log "backlog: tokentrail's CPU-s by thread: $(threads_cpu_since "$ingest_pid" "")"
  log "backlog: ClickHouse's CPU-s by thread meanwhile: $(threads_cpu_since "$CH_PID" "$chthreads0")"
  wait_caught_up "$(( $(date +%s) + TIMEOUT ))"
  stop_ingest
  check_truth "$BACKLOG_DB"
  R[tt_check]="$CHECK"
  R[tt_uses]="$(sql "SELECT count() FROM $BACKLOG_DB.token_use_dedup")/$TRUTH_USES"
  # Records whose job the `jobs` table knows (with a pipeline) but which were emitted without
  # it: enrichment happens once, when a record is emitted (src/correlate/enrich.rs).
  R[tt_unenriched]="$(sql "SELECT countIf(pipeline_id IS NULL AND job_id IN (SELECT job_id FROM $BACKLOG_DB.jobs WHERE pipeline_id IS NOT NULL)) FROM $BACKLOG_DB.token_use FINAL WHERE job_id IS NOT NULL")"
  log "backlog: stored $CHECK; token_use ${R[tt_uses]}, ${R[tt_unenriched]} without the pipeline their job has"
}

# A Python consumer of the backlog's audit topic into a fresh database; sets R[<prefix>_*].
run_python_consumer() { # prefix, label, consumer arguments...
  local prefix="$1" label="$2"
  shift 2
  [[ -n "${BACKLOG_AUDIT_TOPIC:-}" ]] || die "the $label phase needs the backlog phase"
  local db="${prefix}_${RUN}"
  databases+=("$db")
  TOKENTRAIL__CLICKHOUSE__DATABASE="$db" RUST_LOG=warn "$BIN" migrate >/dev/null
  log "$label: Python consumer on $BACKLOG_AUDIT_TOPIC into $db ($*)"
  local t0 t1 ch0 chs0 k0
  ch0="$(cpu_of "$CH_PID")"; chs0="$(sys_of "$CH_PID")"; k0="$(cpu_of "$KAFKA_PID")"
  t0="$(now)"
  timeout "$TIMEOUT" "$PY" "$ROOT/benches/baseline/consumer.py" --brokers "$BROKERS" \
    --topic "$BACKLOG_AUDIT_TOPIC" --group "$RUN.$prefix" \
    --clickhouse-url "$TOKENTRAIL__CLICKHOUSE__URL" --database "$db" --exit-at-eof "$@" \
    >"$WORK/py.json" 2>"$WORK/py.err" || { cat "$WORK/py.err" >&2; die "$label failed"; }
  t1="$(now)"
  local rows cpu secs
  rows="$(jq -r .rows "$WORK/py.json")"
  cpu="$(jq -r .cpu_seconds "$WORK/py.json")"
  secs="$(calc "$t1 - $t0")"
  R[${prefix}_secs]="$secs"
  R[${prefix}_msgs]="$(jq -r .messages "$WORK/py.json")"
  R[${prefix}_events]="$rows"
  R[${prefix}_eps]="$(calc "$rows / $secs")"
  R[${prefix}_mps]="$(calc "${R[${prefix}_msgs]} / $secs")"
  R[${prefix}_mbps]="$(calc "$BACKLOG_AUDIT_BYTES / 1000000 / $secs")"
  R[${prefix}_cpu]="$cpu"
  R[${prefix}_cpu_per_m]="$(calc "$cpu / $rows * 1000000")"
  R[${prefix}_rss]="$(( $(jq -r .peak_rss_kb "$WORK/py.json") / 1024 ))"
  R[${prefix}_ch_cpu]="$(calc "$(cpu_of "$CH_PID") - $ch0")"
  R[${prefix}_ch_cpu_per_m]="$(calc "${R[${prefix}_ch_cpu]} / $rows * 1000000")"
  R[${prefix}_ch_sys_per_m]="$(calc "($(sys_of "$CH_PID") - $chs0) / $rows * 1000000")"
  R[${prefix}_kafka_cpu]="$(calc "$(cpu_of "$KAFKA_PID") - $k0")"
  local distinct same
  distinct="$(sql "SELECT uniqExact(dedup_key) FROM $db.audit_events")"
  same="$(sql "SELECT count() FROM (SELECT DISTINCT dedup_key FROM $db.audit_events) WHERE dedup_key IN (SELECT dedup_key FROM $BACKLOG_DB.audit_events)")"
  R[${prefix}_check]="audit_events $distinct/$TRUTH_AUDIT distinct keys, $same equal to tokentrail's"
  log "$label: $rows rows in $(fmt "$secs") s ($(fmt "${R[${prefix}_eps]}" 0)/s), CPU $(fmt "$cpu") s; ${R[${prefix}_check]}"
}

phase_baseline() { run_python_consumer py baseline --protocol http; }

# The careful home-made consumer: native protocol, 50k-row batches.
phase_native() {
  run_python_consumer nat native --protocol native --batch-rows 50000 \
    --native-port "${TOKENTRAIL_CH_TCP_PORT:-19000}"
}

phase_freshness() {
  setup_phase fresh
  local db="$TOKENTRAIL__CLICKHOUSE__DATABASE" stop="$WORK/probe.stop"
  start_ingest
  # Ready once the consumer joined the group (it reads from the earliest offset anyway).
  local i
  for i in $(seq 1 100); do scrape "$WORK/m" && break; sleep 0.1; done
  ((i < 100)) || die "tokentrail's /metrics did not come up"
  "$PY" "$ROOT/benches/e2e/probe.py" watch --url "$TOKENTRAIL__CLICKHOUSE__URL" --db "$db" \
    --out "$WORK/visible" --stop "$stop" --interval 0.1 2>"$WORK/probe.err" &
  probe_pid=$!
  local jobs since cpu0 t0 t1 ch0 k0
  jobs=$(( (RATE * FRESH_SECONDS + 6) / 7 ))
  log "freshness: publishing $jobs jobs (~$((RATE * FRESH_SECONDS)) messages) at $RATE messages/s"
  since="$(date +%s%3N)"
  cpu0="$(cpu_of "$ingest_pid")"; ch0="$(cpu_of "$CH_PID")"; k0="$(cpu_of "$KAFKA_PID")"
  t0="$(now)"
  simulate "$jobs" "$RATE"
  t1="$(now)"
  wait_drained "$SENT" "$(( $(date +%s) + TIMEOUT ))"
  R[fr_rate]="$(calc "$SENT / ($t1 - $t0)")"
  R[fr_cpu_util]="$(calc "($(cpu_of "$ingest_pid") - $cpu0) / ($DONE_AT - $t0)")"
  R[fr_ch_util]="$(calc "($(cpu_of "$CH_PID") - $ch0) / ($DONE_AT - $t0)")"
  R[fr_kafka_util]="$(calc "($(cpu_of "$KAFKA_PID") - $k0) / ($DONE_AT - $t0)")"
  R[fr_events_rate]="$(calc "$EVENTS / ($t1 - $t0)")"
  R[fr_rss]="$(hwm_of "$ingest_pid")"
  save_metrics freshness
  sleep 0.5
  touch "$stop"
  wait "$probe_pid" 2>/dev/null || true
  probe_pid=""
  # tokentrail's own view: end_to_end_lag_seconds buckets (oldest message of a batch -> commit).
  R[fr_hist]="$(awk '/^tokentrail_end_to_end_lag_seconds_bucket/ {
      match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[++k] = $NF; b[k] = le }
    END { total = n[k]; for (i = 1; i <= k; i++) if (!p50 && n[i] >= 0.5 * total) p50 = b[i];
          for (i = 1; i <= k; i++) if (!p99 && n[i] >= 0.99 * total) p99 = b[i];
          printf "p50 <= %s s, p99 <= %s s over %d batches", p50, p99, total }' "$WORK/m")"
  stop_ingest
  "$PY" "$ROOT/benches/e2e/probe.py" freshness --brokers "$BROKERS" \
    --topic "$TOKENTRAIL__KAFKA__AUDIT_TOPICS" --visible "$WORK/visible" --since-ms "$since" >"$WORK/fresh.json"
  R[fr_p50]="$(jq -r .p50_ms "$WORK/fresh.json")"
  R[fr_p99]="$(jq -r .p99_ms "$WORK/fresh.json")"
  R[fr_max]="$(jq -r .max_ms "$WORK/fresh.json")"
  R[fr_n]="$(jq -r .messages "$WORK/fresh.json")"
  R[fr_unseen]="$(jq -r .unseen "$WORK/fresh.json")"
  R[fr_probe]="$(cat "$WORK/probe.err")"
  log "freshness: p50 ${R[fr_p50]} ms, p99 ${R[fr_p99]} ms over ${R[fr_n]} audit messages; tokentrail histogram ${R[fr_hist]}"
}

for phase in $PHASES; do
  case "$phase" in
    backlog) phase_backlog ;;
    baseline) phase_baseline ;;
    native) phase_native ;;
    freshness) phase_freshness ;;
    *) die "unknown phase $phase" ;;
  esac
done

# ------------------------------------------------------------------------------- table ---
row() { printf '%-34s %16s %16s %16s\n' "$@"; }
v() { # key, decimals
  if [[ -n "${R[$1]:-}" ]]; then fmt "${R[$1]}" "${2:-0}"; else echo "-"; fi
}
echo
echo "tokentrail end to end: run $RUN, $(nproc) cores shared by Kafka, ClickHouse 18.16, the publisher and the consumer"
echo "(one machine; other jobs on it add noise: repeat runs before comparing figures)"
# The server's jemalloc options change its kernel time (benches/README.md, "Fourteenth session").
ch_malloc_conf="$(tr '\0' '\n' <"/proc/$CH_PID/environ" 2>/dev/null | sed -n 's/^MALLOC_CONF=//p')"
[[ -n "$ch_malloc_conf" ]] || ch_malloc_conf="(none: jemalloc's defaults)"
echo "ClickHouse's MALLOC_CONF: $ch_malloc_conf"
if recent_drop; then
  echo "note: the previous run dropped its databases ${SINCE_DROP} s before this one started, so ClickHouse's"
  echo "kernel CPU and everything sharing its cores include ext4's search past the deleted inodes"
  echo "(\"Runs close together\" in benches/e2e.sh; TT_E2E_SETTLE=$DROP_QUIET_S waits instead)"
fi
echo
row "backlog of $N messages" "tokentrail" "python HTTP" "python native"
row "----------------------------------" "----------------" "----------------" "----------------"
row "input" "audit+webhooks" "audit topic" "audit topic"
row "Kafka messages" "$(v tt_msgs)" "$(v py_msgs)" "$(v nat_msgs)"
row "events (rows of the main tables)" "$(v tt_events)" "$(v py_events)" "$(v nat_events)"
row "seconds to drain" "$(v tt_secs 1)" "$(v py_secs 1)" "$(v nat_secs 1)"
row "events/s" "$(v tt_eps)" "$(v py_eps)" "$(v nat_eps)"
row "messages/s" "$(v tt_mps)" "$(v py_mps)" "$(v nat_mps)"
row "MB/s (Kafka log bytes)" "$(v tt_mbps 1)" "$(v py_mbps 1)" "$(v nat_mbps 1)"
row "consumer CPU-s" "$(v tt_cpu 1)" "$(v py_cpu 1)" "$(v nat_cpu 1)"
row "consumer CPU-s per million events" "$(v tt_cpu_per_m 1)" "$(v py_cpu_per_m 1)" "$(v nat_cpu_per_m 1)"
row "consumer peak RSS (VmHWM) MB" "$(v tt_rss)" "$(v py_rss)" "$(v nat_rss)"
row "consumer minor page faults per M events" "$(v tt_minflt_per_m 0)" "-" "-"
row "ClickHouse CPU-s meanwhile" "$(v tt_ch_cpu 1)" "$(v py_ch_cpu 1)" "$(v nat_ch_cpu 1)"
row "ClickHouse CPU-s per million events" "$(v tt_ch_cpu_per_m 1)" "$(v py_ch_cpu_per_m 1)" "$(v nat_ch_cpu_per_m 1)"
row "  of which system (kernel) CPU-s" "$(v tt_ch_sys_per_m 1)" "$(v py_ch_sys_per_m 1)" "$(v nat_ch_sys_per_m 1)"
row "Kafka CPU-s meanwhile" "$(v tt_kafka_cpu 1)" "$(v py_kafka_cpu 1)" "$(v nat_kafka_cpu 1)"
for b in py:baseline nat:native; do
  p="${b%%:*}"
  if [[ -n "${R[tt_eps]:-}" && -n "${R[${p}_eps]:-}" ]]; then
    echo
    echo "ratio tokentrail/${b#*:}: events/s $(fmt "$(calc "${R[tt_eps]} / ${R[${p}_eps]}")" 2)x," \
      "audit events/s $(fmt "$(calc "${R[tt_audit_eps]} / ${R[${p}_eps]}")" 2)x," \
      "CPU-s per million events $(fmt "$(calc "${R[${p}_cpu_per_m]} / ${R[tt_cpu_per_m]}")" 2)x less"
  fi
done
[[ -z "${R[tt_check]:-}" ]] || echo "tokentrail stored (distinct/truth): ${R[tt_check]}; token_use ${R[tt_uses]}"
[[ -z "${R[tt_unenriched]:-}" ]] || echo "token_use records without the pipeline id their job has in \`jobs\`: ${R[tt_unenriched]} (benches/README.md, 'Found: records drained from a backlog are rarely enriched')"
[[ -z "${R[py_check]:-}" ]] || echo "baseline stored: ${R[py_check]}"
[[ -z "${R[nat_check]:-}" ]] || echo "native baseline stored: ${R[nat_check]}"
if [[ -n "${R[fr_p50]:-}" ]]; then
  echo
  echo "freshness at $(v fr_rate) messages/s ($(v fr_events_rate) events/s) for ${FRESH_SECONDS} s, produce -> queryable (audit rows):"
  echo "  p50 ${R[fr_p50]} ms, p99 ${R[fr_p99]} ms, max ${R[fr_max]} ms over ${R[fr_n]} messages (unseen ${R[fr_unseen]}; probe ${R[fr_probe]}, 100 ms polls)"
  echo "  tokentrail end_to_end_lag_seconds: ${R[fr_hist]}"
  echo "  CPU cores busy: tokentrail $(v fr_cpu_util 2), ClickHouse $(v fr_ch_util 2), Kafka $(v fr_kafka_util 2); tokentrail peak RSS $(v fr_rss) MB"
fi
