//! How `deploy/local/services` runs the shared servers the other tests use.

use std::path::PathBuf;

/// The default of `CH_MALLOC_CONF` in `deploy/local/services`, read from the script so that
/// the options are written down once.
fn declared_malloc_conf() -> String {
    let script = include_str!("../../deploy/local/services");
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix("CH_MALLOC_CONF=\"${TOKENTRAIL_CH_MALLOC_CONF-"))
        .expect("deploy/local/services declares CH_MALLOC_CONF with a default");
    line.strip_suffix("}\"")
        .expect("CH_MALLOC_CONF's line ends with }\"")
        .to_owned()
}

/// Debian's server links the system jemalloc without the options upstream builds compile in;
/// `start` passes them (deploy/local/README.md). Without them the server hands an INSERT's
/// large columns back to the kernel as soon as they are freed (benches/README.md,
/// "Fourteenth session").
#[test]
fn the_local_clickhouse_runs_with_upstreams_jemalloc_options() {
    let _ = crate::common::services();
    let local = PathBuf::from(std::env::var("TOKENTRAIL_LOCAL_DIR").expect(
        "TOKENTRAIL_LOCAL_DIR is printed by `deploy/local/services env` with the services'",
    ));
    let pid = std::fs::read_to_string(local.join("run/clickhouse.pid"))
        .expect("the ClickHouse started by `deploy/local/services start` has a pid file");
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim()))
        .expect("the server of the pid file is running");
    let malloc_conf = environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"MALLOC_CONF="))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let declared = declared_malloc_conf();
    assert!(
        declared.contains("oversize_threshold:0"),
        "the declared options keep large allocations in the ordinary arenas: {declared}"
    );
    // A run with the variable set (a benchmark of jemalloc's defaults) expects what it set.
    let expected = std::env::var("TOKENTRAIL_CH_MALLOC_CONF").unwrap_or(declared);
    assert_eq!(
        malloc_conf.as_deref(),
        Some(expected.as_str()),
        "the local ClickHouse (pid {}) runs with jemalloc's options from \
         deploy/local/services; restart it with `deploy/local/services stop` and `start`",
        pid.trim()
    );
}
