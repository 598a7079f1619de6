# deploy/local/lib/common.sh — logging, ports, pid files and process control shared by the services.
# Sourced by deploy/local/services, which sets the variables it uses; not run on its own.
# shellcheck shell=bash

log() { echo "[services] $*" >&2; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers ---

# True if something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp,
# so no nc/ss dependency).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pid from pid file $1 if that process is alive AND is one of ours (its command
# line mentions $LOCAL_DIR). The second check guards against a stale pid file
# whose pid the kernel has since handed to an unrelated process.
live_pid() {
  local pidfile="$1" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$LOCAL_DIR"* ]] || return 1
  echo "$pid"
}

# Start "$@" detached (own session, so a Ctrl-C or the caller's process group
# going away doesn't take the service down), output to $2, pid into $1. The pid
# is written by the process itself right before exec, so it is the service's
# real pid whether or not setsid had to fork. SPAWNED is the pid of our direct
# child, which `wait` can reap for an exit status if the service dies early.
SPAWNED=
spawn() {
  local pidfile="$1" out="$2"; shift 2
  rm -f "$pidfile"
  # 9>&-: don't let the daemon inherit our flock fd, or the lock would stay
  # held for as long as the service runs and every later call would hang.
  # shellcheck disable=SC2016  # $$/$0/$@ are for the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$out" 2>&1 </dev/null 9>&- &
  SPAWNED=$!
  local i
  for i in $(seq 50); do [[ -s "$pidfile" ]] && return 0; sleep 0.1; done
  die "could not start: $*"
}

# Wait until service $1 (pid file $2) answers the readiness check $3, for at
# most START_TIMEOUT seconds. Liveness here is `kill -0` on the recorded pid,
# not live_pid: while the pid is inside execve its /proc cmdline reads empty,
# and mistaking that instant for a dead server failed a CI start once. If the
# server does exit, print its exit status and the logs named in $4... and fail.
await_ready() {
  local name="$1" pidfile="$2" ready="$3"; shift 3
  local pid t0=$SECONDS deadline=$((SECONDS + START_TIMEOUT)) status
  pid="$(<"$pidfile")"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      status=0
      if [[ -n "$SPAWNED" ]]; then wait "$SPAWNED" 2>/dev/null || status=$?; fi
      log "$name: exited during startup with status $status$( ((status > 128)) && echo " (signal $((status - 128)))")"
      startup_diagnostics "$@"
      return 1
    fi
    if "$ready"; then
      log "$name: ready after $((SECONDS - t0))s (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  startup_diagnostics "$@"
  die "$name: not ready after ${START_TIMEOUT}s (still running as pid $pid; logs in $LOGS)"
}

startup_diagnostics() {
  local f
  for f in "$@"; do
    if [[ -s "$f" ]]; then
      echo "==> $f (last 20 lines) <==" >&2
      tail -n 20 "$f" >&2
    else
      echo "==> $f: missing or empty <==" >&2
    fi
  done
  echo "==> user $(id -un), open-files limit $(ulimit -n), processes limit $(ulimit -u), free memory $(awk '/MemAvailable/ {print $2 " kB"}' /proc/meminfo), free disk under $LOCAL_DIR $(df -Ph "$LOCAL_DIR" | awk 'NR == 2 {print $4}') <==" >&2
}

# Stop the process recorded in pid file $2 (service name $1): TERM, wait up to
# $STOP_TIMEOUT s, then KILL. Only ever signals that one pid, never by name.
stop_pidfile() {
  local name="$1" pidfile="$2" pid i
  if ! pid="$(live_pid "$pidfile")"; then
    [[ -e "$pidfile" ]] && log "$name: removing stale pid file"
    rm -f "$pidfile"
    log "$name: not running"
    return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${STOP_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# Refuse to start if a foreign process already holds one of our ports: we would
# otherwise "wait for readiness" against someone else's server.
require_free_port() {
  local name="$1" port="$2"
  if port_open "$port"; then
    die "$name: port 127.0.0.1:$port is already in use by another process (set the TOKENTRAIL_*_PORT env vars to move ours)"
  fi
}

# Serialise install/start/stop between concurrent invocations (e.g. parallel test
# jobs calling `start`).
take_lock() {
  exec 9>"$LOCAL_DIR/.services.lock"
  flock -w 600 9 || die "another 'services' command has held $LOCAL_DIR/.services.lock for 10 min"
}
