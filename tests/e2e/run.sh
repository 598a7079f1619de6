#!/usr/bin/env bash
# Runs the delivery stress tests (tests/integration/resilience.rs) at a chosen size, in
# release mode, against the local services:
#
#   tests/e2e/run.sh [MESSAGES] [KILLS] [OUTAGE_SECS]     e.g. tests/e2e/run.sh 500000 10 30
#
# CI runs the same tests with small defaults through deploy/local/test. Figures (throughput,
# peak RSS, recovery times) are printed by the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export TOKENTRAIL_E2E_MESSAGES="${1:-200000}"
export TOKENTRAIL_E2E_KILLS="${2:-10}"
export TOKENTRAIL_E2E_OUTAGE_SECS="${3:-30}"
services=deploy/local/services
started=0
if ! "$services" status >/dev/null 2>&1; then "$services" start >/dev/null; started=1; fi
trap 'if ((started)); then "$services" stop; fi' EXIT
eval "$("$services" env)"
# One at a time: at full size each test wants the machine to itself.
cargo test --release --locked --test integration resilience -- --nocapture --test-threads 1
