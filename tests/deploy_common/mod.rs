//! Shared by the deployment tests (tests/deploy_manifests.rs, tests/deploy_systemd.rs):
//! finding the tools they drive, and skipping when a tool is missing outside CI.

use std::path::{Path, PathBuf};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a missing tool is an error rather than a reason to skip: on CI, and under
/// `deploy/local/test` (the same rule as tests/integration/common.rs).
fn tools_required() -> bool {
    ["CI", "TOKENTRAIL_REQUIRE_SERVICES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"))
}

/// The path of `name`: `$env_var` if set, else the first of `candidates` that exists, else
/// `name` on PATH. Missing: a panic on CI, else this test binary ends successfully with a
/// message saying what it skipped and how to install the tool.
pub fn tool(name: &str, env_var: &str, candidates: &[PathBuf], install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name));
    if let Some(found) = candidates
        .iter()
        .cloned()
        .chain(on_path)
        .find(|p| p.is_file())
    {
        return found;
    }
    if tools_required() {
        panic!("{name} not found ({install}); CI must run these tests");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: {name} not found ({install}). With CI or TOKENTRAIL_REQUIRE_SERVICES set, \
         this is an error.\n"
    );
    std::process::exit(0)
}
