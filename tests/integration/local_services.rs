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
/// `start` passes them (deploy/local/README.md). Without them the server hands allocations
/// of 8 MiB and more back to the kernel as soon as they are freed (benches/README.md,
/// "Fourteenth session").
#[test]
fn the_local_clickhouse_runs_with_upstreams_jemalloc_options() {
    let _ = crate::common::services();
    let local = PathBuf::from(std::env::var("TOKENTRAIL_LOCAL_DIR").expect(
        "TOKENTRAIL_LOCAL_DIR is printed by `deploy/local/services env` with the other settings",
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

/// `ch_check_malloc_conf` of deploy/local/lib/clickhouse.sh, run with `options` as the
/// server's `MALLOC_CONF`: its exit status and what it wrote to stderr.
fn check_malloc_conf(options: &str) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            r#"source "$0/deploy/local/lib/common.sh"; source "$0/deploy/local/lib/clickhouse.sh"
               CH_MALLOC_CONF="$1"; ch_check_malloc_conf"#,
            root,
            options,
        ])
        .output()
        .expect("bash runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// jemalloc only warns about options it cannot read and runs without them; `start` refuses
/// them instead, naming the variable and each option jemalloc rejected.
#[test]
fn services_start_refuses_jemalloc_options_that_jemalloc_cannot_read() {
    let _ = crate::common::services();
    let (ok, stderr) = check_malloc_conf(&declared_malloc_conf());
    assert!(ok, "the declared options are accepted: {stderr}");
    let (ok, stderr) = check_malloc_conf("");
    assert!(ok, "empty (jemalloc's defaults) is accepted: {stderr}");

    let (ok, stderr) =
        check_malloc_conf("percpu_arena:percpu,oversize_treshold:0,dirty_decay_ms:soon");
    assert!(!ok, "misspelt options are refused");
    for expected in [
        "TOKENTRAIL_CH_MALLOC_CONF",
        "Invalid conf pair: oversize_treshold:0",
        "Invalid conf value: dirty_decay_ms:soon",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in: {stderr}");
    }
}
