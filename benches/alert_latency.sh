#!/usr/bin/env bash
# Alert latency (event time → Kafka + webhook + ClickHouse acknowledged) at 5k messages/s,
# against the running local services. Prints the histogram's p50/p99 bucket bounds.
#   TT_BENCH_CARGO_FLAGS (e.g. --release), TT_BENCH_RATE (default 5000) messages/s, TT_BENCH_SECONDS (default 60) of traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(TOKENTRAIL_LOCAL_DIR="${TOKENTRAIL_LOCAL_DIR:-$PWD/.local}" deploy/local/services env)"
cargo test ${TT_BENCH_CARGO_FLAGS:-} --test integration alerts::alert_latency_at_5k_events_per_second \
  -- --ignored --exact --nocapture 2>&1 | grep -E "calibration|published|event → raised|test result|panicked"
