#!/usr/bin/env bash
# benches/collect_slowloris.sh — a bounded slowloris run against `tokentrail collect` on loopback.
#
#   eval "$(deploy/local/services env)"        # the running Kafka (never started/stopped here)
#   benches/collect_slowloris.sh               # CONNECTIONS=2000 DURATION=60
#
# Environment: CONNECTIONS (attacking connections, default 2000), DURATION (s, default 60),
# HEADER_CHUNK (bytes of header each attacker adds per trickle, default 1000),
# TRICKLE_SECS (default 2), BIN (default: builds target/release/tokentrail),
# MAX_CONNECTIONS / HEADER_READ_TIMEOUT_SECS (collect settings; default: the defaults).
#
# What it does: starts the collector with the default [collect] limits on 127.0.0.1; samples
# its RSS; opens CONNECTIONS connections that send a partial request head and add
# HEADER_CHUNK bytes of header every TRICKLE_SECS (never finishing it), reconnecting as soon as
# the collector closes one; meanwhile sends one legitimate audit event per second on a fresh
# connection and records its status and latency; at the end prints RSS before/peak/after,
# the attackers' connection counts, and the legitimate requests' outcomes; then stops the
# collector with SIGTERM and reports how long it took to exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${TOKENTRAIL__KAFKA__BROKERS:?run: eval \"\$(deploy/local/services env)\" first}"
: "${TOKENTRAIL_KAFKA_LIBS:?run: eval \"\$(deploy/local/services env)\" first}"
CONNECTIONS="${CONNECTIONS:-2000}"
DURATION="${DURATION:-60}"
HEADER_CHUNK="${HEADER_CHUNK:-1000}"
TRICKLE_SECS="${TRICKLE_SECS:-2}"

log() { echo "[collect_slowloris] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$TOKENTRAIL_KAFKA_LIBS/*" "$@"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

if [[ -z "${BIN:-}" ]]; then
  log "building (release)"
  cargo build --release --quiet --bin tokentrail
  BIN=target/release/tokentrail
fi

WORK="$(mktemp -d)"
COLLECTOR_PID=""
cleanup() {
  # Only the collector this script started, by its pid.
  if [[ -n "$COLLECTOR_PID" ]] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
    kill -KILL "$COLLECTOR_PID" 2>/dev/null || true
    wait "$COLLECTOR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

TOPIC="bench_slowloris_$(date +%s)_$$"
for t in "$TOPIC" "${TOPIC}_dlq"; do
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TOKENTRAIL__KAFKA__BROKERS" \
    --create --topic "$t" --partitions 1 --replication-factor 1 >/dev/null
done

PORT="$(free_port)"
TOKEN="bench-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
cat >"$WORK/collect.toml" <<EOF
[kafka]
brokers = "$TOKENTRAIL__KAFKA__BROKERS"
dead_letter_topic = "${TOPIC}_dlq"

[telemetry]
listen = ""

[collect]
listen = "127.0.0.1:$PORT"
${MAX_CONNECTIONS:+max_connections = $MAX_CONNECTIONS}
${HEADER_READ_TIMEOUT_SECS:+header_read_timeout_secs = $HEADER_READ_TIMEOUT_SECS}

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
BODY=tests/fixtures/gitlab/audit-stream/user_authenticated_using_job_token.json
# Warm-up: one accepted request, so the baseline includes the producer's connections.
curl -fs -o /dev/null -H "X-Gitlab-Event-Streaming-Token: $TOKEN" --data-binary "@$BODY" \
  "http://127.0.0.1:$PORT/gitlab/audit-events"
sleep 1
RSS_BEFORE="$(rss_kb "$COLLECTOR_PID")"
log "collector pid $COLLECTOR_PID on 127.0.0.1:$PORT, RSS ${RSS_BEFORE} KiB; attacking with $CONNECTIONS connections for ${DURATION}s"

# RSS sampler (peak), every 0.5 s.
( peak=0; while kill -0 "$COLLECTOR_PID" 2>/dev/null; do
    r="$(rss_kb "$COLLECTOR_PID" 2>/dev/null || echo 0)"; (( r > peak )) && peak=$r; echo "$peak" >"$WORK/peak"
    sleep 0.5; done ) &
SAMPLER=$!

python3 - "$PORT" "$CONNECTIONS" "$DURATION" "$HEADER_CHUNK" "$TRICKLE_SECS" "$TOKEN" "$BODY" <<'PY'
import asyncio, sys, time, statistics
port, conns, duration, chunk, trickle = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
token, body = sys.argv[6], open(sys.argv[7], "rb").read()
stats = {"opened": 0, "closed_by_server": 0, "connect_failed": 0, "answered_431": 0}
end = time.monotonic() + duration

async def attacker(i):
    while time.monotonic() < end:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except Exception:
            stats["connect_failed"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["opened"] += 1
        try:
            w.write(b"POST /gitlab/audit-events HTTP/1.1\r\nHost: x\r\n")
            await w.drain()
            n = 0
            while time.monotonic() < end:
                w.write(b"X-Pad-%d: %s\r\n" % (n, b"a" * chunk)); n += 1
                await w.drain()
                try:
                    data = await asyncio.wait_for(r.read(64), trickle)
                    if data.startswith(b"HTTP/1.1 431"):
                        stats["answered_431"] += 1
                    stats["closed_by_server"] += 1
                    break
                except asyncio.TimeoutError:
                    pass
        except Exception:
            stats["closed_by_server"] += 1
        finally:
            w.close()

async def legit():
    out = []
    req = (b"POST /gitlab/audit-events HTTP/1.1\r\nHost: x\r\nX-Gitlab-Event-Streaming-Token: "
           + token.encode() + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
           + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await asyncio.sleep(3)  # let the attack fill the slots first
    while time.monotonic() < end - 1:
        t0 = time.monotonic()
        status = "timeout"
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            w.write(req); await w.drain()
            line = await asyncio.wait_for(r.readline(), 30)
            status = line.split(b" ")[1].decode() if line else "closed"
            w.close()
        except Exception as e:
            status = type(e).__name__
        out.append((status, time.monotonic() - t0))
        await asyncio.sleep(max(0, 1 - (time.monotonic() - t0)))
    return out

async def main():
    tasks = [asyncio.create_task(attacker(i)) for i in range(conns)]
    results = await legit()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(t for s, t in results if s == "200")
    codes = {}
    for s, _ in results: codes[s] = codes.get(s, 0) + 1
    print(f"attackers: {conns} connections, opened {stats['opened']} in total, closed by the collector "
          f"{stats['closed_by_server']} ({stats['answered_431']} with 431), connect attempts failed {stats['connect_failed']}")
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print(f"legitimate requests: {len(results)}, statuses {codes}, latency of 200s p50 {q(0.5):.2f} s "
          f"p90 {q(0.9):.2f} s max {(lat[-1] if lat else float('nan')):.2f} s")
asyncio.run(main())
PY

RSS_PEAK="$(cat "$WORK/peak")"
sleep 2
RSS_AFTER="$(rss_kb "$COLLECTOR_PID")"
echo "collector RSS: before ${RSS_BEFORE} KiB, peak during the attack ${RSS_PEAK} KiB, 2 s after it ${RSS_AFTER} KiB"

# SIGTERM while 1000 partial-header connections are open.
python3 - "$PORT" <<'PY' &
import socket, sys, time
socks = []
for _ in range(1000):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        s.sendall(b"POST /gitlab/audit-events HTTP/1.1\r\nHost: x\r\nX-Pad: aaaa")
        socks.append(s)
    except OSError:
        pass
time.sleep(60)
PY
HOLDER=$!
sleep 3
started=$(date +%s.%N)
kill -TERM "$COLLECTOR_PID"
for _ in $(seq 450); do kill -0 "$COLLECTOR_PID" 2>/dev/null && [[ "$(awk '/^State/ {print $2}' /proc/$COLLECTOR_PID/status 2>/dev/null)" != Z ]] || break; sleep 0.1; done
stopped=$(date +%s.%N)
if kill -0 "$COLLECTOR_PID" 2>/dev/null && [[ "$(awk '/^State/ {print $2}' /proc/$COLLECTOR_PID/status)" != Z ]]; then
  echo "SIGTERM with 1000 partial-header connections open: still running after 45 s; killed"
  kill -KILL "$COLLECTOR_PID"
else
  printf 'SIGTERM with 1000 partial-header connections open: exited after %.1f s (shutdown.deadline_secs = 30)\n' \
    "$(python3 -c "print($stopped - $started)")"
fi
wait "$COLLECTOR_PID" 2>/dev/null || true
COLLECTOR_PID=""
kill "$HOLDER" "$SAMPLER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
