# deploy/local/lib/chdb.sh — chdb-core from PyPI in a venv (modern ClickHouse in-process).
# Sourced by deploy/local/services, which sets the variables it uses; not run on its own.
# shellcheck shell=bash

# ------------------------------------------------------------------- chdb ---

chdb_installed() { [[ -f "$VENV/.chdb-core-$CHDB_VERSION" && -x "$VENV/bin/python" ]]; }

chdb_install() {
  if chdb_installed; then return 0; fi
  log "chdb: creating venv $VENV and installing chdb-core==$CHDB_VERSION (~550 MB engine)"
  mkdir -p "$LOGS"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
      "chdb-core==$CHDB_VERSION" >"$LOGS/chdb-pip.log" 2>&1; then
    tail -n 40 "$LOGS/chdb-pip.log" >&2
    die "chdb: pip install failed (full log: $LOGS/chdb-pip.log)"
  fi
  # Import once: proves the engine loads on this machine (not just installed).
  "$CHDB_RUN" --version >/dev/null || die "chdb: installed but cannot run a query"
  rm -f "$VENV"/.chdb-core-*
  touch "$VENV/.chdb-core-$CHDB_VERSION"
}
