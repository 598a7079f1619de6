//! Puts the build's identity into `tokentrail --version` (src/main.rs): the commit, the
//! profile and the flags that shaped the binary, so an operator can tell which build runs.
//! Nothing here reads the clock: two builds of one commit with the same toolchain give the
//! same string (deploy/image/build relies on that for a reproducible image).

use std::process::Command;

fn main() {
    // CI and packagers may state the commit (a source tarball has no .git).
    println!("cargo:rerun-if-env-changed=TOKENTRAIL_BUILD_COMMIT");
    let commit = std::env::var("TOKENTRAIL_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: logs/HEAD is appended on every commit and checkout (in a
    // worktree too, where .git is a file).
    if let Some(path) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        println!("cargo:rerun-if-changed={path}");
    }
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let rustc = Command::new(env("RUSTC"))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The target's C library says how the binary links: glibc builds load libssl and
    // libcurl from the system (why: ARCHITECTURE.md, "Secure connections").
    let linkage = if env("CARGO_CFG_TARGET_ENV") == "musl" {
        "musl"
    } else {
        "glibc, dynamic (libssl, libcurl)"
    };
    // A path-prefix remapping names the build directory, which differs between clones: keep
    // only the side that lands in the binary, so the string stays the same.
    let rustflags = env("CARGO_ENCODED_RUSTFLAGS")
        .split('\x1f')
        .filter(|f| !f.is_empty())
        .map(|f| match f.strip_prefix("--remap-path-prefix=") {
            Some(map) => format!(
                "--remap-path-prefix=…={}",
                map.rsplit('=').next().unwrap_or("")
            ),
            None => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let long = format!(
        "{version}\ncommit: {commit}\ntarget: {target} ({linkage})\nprofile: {profile} (opt-level {opt}, debug {debug})\nrustflags: {flags}\nrdkafka features: ssl, curl\n{rustc}",
        version = env("CARGO_PKG_VERSION"),
        target = env("TARGET"),
        profile = env("PROFILE"),
        opt = env("OPT_LEVEL"),
        debug = env("DEBUG"),
        flags = if rustflags.is_empty() {
            "(none)"
        } else {
            &rustflags
        },
    );
    // A file, not a rustc-env value: cargo reads build-script output line by line, so the
    // multi-line text could not pass through an environment variable.
    let out = std::path::PathBuf::from(env("OUT_DIR")).join("long_version.txt");
    std::fs::write(&out, long).expect("write long_version.txt to OUT_DIR");
    println!(
        "cargo:rustc-env=TOKENTRAIL_SHORT_VERSION={} ({commit})",
        env("CARGO_PKG_VERSION")
    );
}

/// HEAD when this script last ran. No "-dirty" mark: the script reruns when HEAD moves, not
/// when a file is edited, so such a mark would go stale; release builds come from clean clones.
fn git_commit() -> Option<String> {
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
