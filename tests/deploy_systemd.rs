//! The systemd units in deploy/systemd pass `systemd-analyze verify` (unknown keys, bad
//! values, a missing binary) and keep the exposure rating of `systemd-analyze security` at
//! 2.0 or below ("OK"), so hardening removed by a later edit fails here. The units are
//! checked with ExecStart pointing at the tokentrail binary this build made.

mod deploy_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_common::{repo, tool};

const UNITS: [&str; 3] = [
    "tokentrail-ingest.service",
    "tokentrail-collect.service",
    "tokentrail-migrate.service",
];
const MAX_EXPOSURE: f64 = 2.0;

fn analyze() -> PathBuf {
    tool(
        "systemd-analyze",
        "SYSTEMD_ANALYZE",
        &[],
        "Debian's systemd package; deploy/local/prerequisites installs it",
    )
}

/// The units copied to `dir`, ExecStart on this build's binary; `edit` may change the text.
fn install_units(dir: &Path, edit: impl Fn(&str, String) -> String) -> Vec<PathBuf> {
    UNITS
        .iter()
        .map(|u| {
            let text = std::fs::read_to_string(repo().join("deploy/systemd").join(u)).unwrap();
            assert!(
                text.contains("ExecStart=/usr/local/bin/tokentrail "),
                "{u} runs /usr/local/bin/tokentrail"
            );
            let text = text.replace(
                "/usr/local/bin/tokentrail",
                env!("CARGO_BIN_EXE_tokentrail"),
            );
            let path = dir.join(u);
            std::fs::write(&path, edit(u, text)).unwrap();
            path
        })
        .collect()
}

/// What `systemd-analyze verify` says about the units: an error exit, or any line naming them.
fn verify(units: &[PathBuf]) -> Vec<String> {
    let dir = units[0].parent().unwrap().to_string_lossy().into_owned();
    let out = Command::new(analyze())
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bad: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&dir) || UNITS.iter().any(|u| l.contains(u)))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        bad.push(format!(
            "systemd-analyze verify exited with {}: {text}",
            out.status
        ));
    }
    bad
}

/// `systemd-analyze security --offline=true`'s overall exposure (0 safe .. 10 exposed).
fn exposure(unit: &Path) -> f64 {
    let out = Command::new(analyze())
        .current_dir(unit.parent().unwrap())
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn units_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let units = install_units(dir.path(), |_, t| t);
    let bad = verify(&units);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn units_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    for unit in install_units(dir.path(), |_, t| t) {
        let e = exposure(&unit);
        assert!(
            e <= MAX_EXPOSURE,
            "{}: exposure {e} > {MAX_EXPOSURE}",
            unit.display()
        );
        let text = std::fs::read_to_string(&unit).unwrap();
        for key in [
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "DynamicUser=yes",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(text.contains(key), "{}: {key:?} missing", unit.display());
        }
    }
}

/// Both checks can fail: a misspelt key, a missing binary and removed hardening are caught.
#[test]
fn broken_units_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let units = install_units(dir.path(), |u, t| {
        if u == "tokentrail-ingest.service" {
            t.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
        } else if u == "tokentrail-collect.service" {
            t.replace(env!("CARGO_BIN_EXE_tokentrail"), "/nonexistent/tokentrail")
        } else {
            t
        }
    });
    let bad = verify(&units).join("\n");
    assert!(
        bad.contains("NoNewPrivilege"),
        "misspelt key not caught: {bad}"
    );
    assert!(
        bad.contains("/nonexistent/tokentrail"),
        "missing binary not caught: {bad}"
    );

    let dir = tempfile::tempdir().unwrap();
    let weak = install_units(dir.path(), |_, t| {
        t.lines()
            .filter(|l| {
                ![
                    "ProtectSystem",
                    "PrivateUsers",
                    "SystemCallFilter",
                    "RestrictAddressFamilies",
                    "CapabilityBoundingSet",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert!(
        exposure(&weak[0]) > MAX_EXPOSURE,
        "removed hardening not caught"
    );
}
