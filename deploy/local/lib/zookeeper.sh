# deploy/local/lib/zookeeper.sh — Apache ZooKeeper from Maven Central jars: install only.
# Sourced by deploy/local/services, which sets the variables it uses; not run on its own.
# No shared ZooKeeper runs: the cluster tests (tests/integration/cluster.rs) start their own
# with two ClickHouse replicas, from these jars ($TOKENTRAIL_ZOOKEEPER_LIBS).
# shellcheck shell=bash

zk_stamp() { sha256sum <"$SCRIPT_DIR/zookeeper-pom.xml" | cut -d' ' -f1; }

zk_installed() {
  [[ -f "$ZK_LIBS/.installed" ]] && [[ "$(<"$ZK_LIBS/.installed")" == "$(zk_stamp)" ]]
}

zk_install() {
  if zk_installed; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  log "zookeeper: resolving org.apache.zookeeper:zookeeper with Maven"
  local tmp="$ZK_LIBS.tmp"
  rm -rf "$tmp"
  mkdir -p "$LOGS" "$(dirname "$ZK_LIBS")"
  # Into a temp dir and renamed, as kafka_install does: never a half-filled libs/.
  if ! mvn -B -q -f "$SCRIPT_DIR/zookeeper-pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LOGS/zookeeper-mvn.log" 2>&1; then
    tail -n 40 "$LOGS/zookeeper-mvn.log" >&2
    die "zookeeper: maven resolution failed (full log: $LOGS/zookeeper-mvn.log)"
  fi
  rm -rf "$ZK_LIBS"
  mv "$tmp" "$ZK_LIBS"
  zk_stamp >"$ZK_LIBS/.installed"
  log "zookeeper: $(find "$ZK_LIBS" -name '*.jar' | wc -l) jars in $ZK_LIBS"
}
