//! The Helm chart (deploy/helm/tokentrail), rendered by `helm template` with its defaults and
//! with every option on (ci/full-values.yaml), checked as an operator's admission policy
//! would: no secret value in a ConfigMap, every container non-root on a read-only root with
//! no capabilities, probes on /healthz and /readyz, a pinned image, ingest replicas bounded
//! by the partitions, migrate as a pre-install/pre-upgrade hook, and a configuration that
//! tokentrail itself accepts. Needs helm (deploy/package/install-helm) and python3 with
//! PyYAML (Debian's python3-yaml) to turn the YAML into JSON.

mod deploy_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use deploy_common::{repo, tool};
use serde_json::Value;

fn helm() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    tool(
        "helm",
        "HELM",
        &[home.join("go/bin/helm")],
        "deploy/package/install-helm installs it",
    )
}

const FULL: &str = "deploy/helm/tokentrail/ci/full-values.yaml";

/// `helm template` with these extra arguments: the manifests as JSON values, or helm's error.
fn render(args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(helm())
        .current_dir(repo())
        .args(["template", "tt", "deploy/helm/tokentrail"])
        .args(args)
        .output()
        .expect("run helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // Debian's python3 has python3-yaml (deploy/local/prerequisites); another python3 first
    // on PATH (pyenv) may lack PyYAML.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .unwrap();
    let mut py = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(
        json.status.success(),
        "python3 with PyYAML (python3-yaml) turns YAML into JSON"
    );
    Ok(serde_json::from_slice(&json.stdout).expect("JSON"))
}

fn rendered(args: &[&str]) -> Vec<Value> {
    render(args).unwrap_or_else(|e| panic!("helm template {args:?} failed: {e}"))
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Every pod template in the manifests, with the name of what holds it.
fn pod_specs(docs: &[Value]) -> Vec<(String, &Value)> {
    docs.iter()
        .filter_map(|d| {
            let spec = match d["kind"].as_str()? {
                "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
                    &d["spec"]["template"]["spec"]
                }
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "Pod" => &d["spec"],
                _ => return None,
            };
            Some((name(d), spec))
        })
        .collect()
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect()
}

/// The checks every rendering must pass; returns what is wrong, one line each.
fn violations(docs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let pods = pod_specs(docs);
    if pods.is_empty() {
        bad.push("no pod templates rendered".into());
    }
    for (owner, spec) in &pods {
        let pod_sc = &spec["securityContext"];
        if spec["automountServiceAccountToken"] != false {
            bad.push(format!("{owner}: mounts a service-account token"));
        }
        for c in containers(spec) {
            let who = format!("{owner} container {}", c["name"]);
            let sc = &c["securityContext"];
            let non_root = sc["runAsNonRoot"] == true
                || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == true);
            let uid = if sc["runAsUser"].is_null() {
                &pod_sc["runAsUser"]
            } else {
                &sc["runAsUser"]
            };
            if !non_root || uid.as_i64() == Some(0) {
                bad.push(format!("{who}: not runAsNonRoot"));
            }
            if sc["readOnlyRootFilesystem"] != true {
                bad.push(format!("{who}: root filesystem writable"));
            }
            if sc["allowPrivilegeEscalation"] != false {
                bad.push(format!("{who}: privilege escalation allowed"));
            }
            let drops: Vec<_> = sc["capabilities"]["drop"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            if !drops.iter().any(|d| *d == "ALL") || !sc["capabilities"]["add"].is_null() {
                bad.push(format!("{who}: capabilities not dropped (ALL)"));
            }
            let image = c["image"].as_str().unwrap_or("");
            let pinned = image.contains("@sha256:")
                || image.rsplit_once(':').is_some_and(|(repo, tag)| {
                    !tag.is_empty() && tag != "latest" && !tag.contains('/') && !repo.is_empty()
                });
            if !pinned {
                bad.push(format!(
                    "{who}: image {image:?} not pinned to a tag or digest"
                ));
            }
            if c["resources"]["requests"]["memory"].is_null()
                || c["resources"]["limits"]["memory"].is_null()
            {
                bad.push(format!("{who}: no memory request or limit"));
            }
            if owner.starts_with("Deployment/") {
                for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
                {
                    if c[probe]["httpGet"]["path"] != path {
                        bad.push(format!("{who}: {probe} is not GET {path}"));
                    }
                }
            }
        }
    }
    // No secret in a ConfigMap: no key ending in password/token/secret with a value.
    for cm in kind(docs, "ConfigMap") {
        for (file, text) in cm["data"].as_object().into_iter().flatten() {
            for line in text.as_str().unwrap_or("").lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let (key, value) = (key.trim(), value.trim().trim_matches('"'));
                let secret_key = ["password", "token", "secret"]
                    .iter()
                    .any(|s| key.ends_with(s));
                if secret_key && !value.is_empty() {
                    bad.push(format!("{}: {file} sets {key}", name(cm)));
                }
            }
        }
    }
    // Every Deployment is covered by a PodDisruptionBudget.
    let pdbs = kind(docs, "PodDisruptionBudget");
    for d in kind(docs, "Deployment") {
        let sel = &d["spec"]["selector"]["matchLabels"];
        if !pdbs
            .iter()
            .any(|p| &p["spec"]["selector"]["matchLabels"] == sel)
        {
            bad.push(format!("{}: no PodDisruptionBudget", name(d)));
        }
    }
    bad
}

#[test]
fn default_and_full_renderings_pass_the_policy() {
    for args in [&[][..], &["-f", FULL][..]] {
        let docs = rendered(args);
        let bad = violations(&docs);
        assert!(
            bad.is_empty(),
            "helm template {args:?}:\n{}",
            bad.join("\n")
        );
    }
}

/// The checks above can fail: a rendering with the hardening switched off is caught.
#[test]
fn the_policy_catches_a_weakened_rendering() {
    let mut docs = rendered(&[]);
    for d in &mut docs {
        if d["kind"] == "Deployment" {
            let c = &mut d["spec"]["template"]["spec"]["containers"][0];
            c["securityContext"]["readOnlyRootFilesystem"] = false.into();
            c["image"] = "tokentrail:latest".into();
            c.as_object_mut().unwrap().remove("readinessProbe");
        }
        if d["kind"] == "ConfigMap" {
            d["data"]["tokentrail.toml"] = "[clickhouse]\npassword = \"hunter2\"\n".into();
        }
    }
    let bad = violations(&docs).join("\n");
    for expected in [
        "root filesystem writable",
        "not pinned",
        "readinessProbe",
        "sets password",
    ] {
        assert!(bad.contains(expected), "{expected} not caught in:\n{bad}");
    }
}

#[test]
fn secret_values_land_only_in_secrets() {
    let docs = rendered(&["-f", FULL]);
    let values: Value = {
        let text = std::fs::read_to_string(repo().join(FULL)).unwrap();
        let sentinels: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.split_once("\"ci-sentinel-")
                    .map(|(_, rest)| rest.trim_end_matches('"'))
            })
            .collect();
        sentinels
            .iter()
            .map(|s| format!("ci-sentinel-{s}"))
            .collect::<Vec<_>>()
            .into()
    };
    let sentinels: Vec<&str> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        sentinels.len() >= 3,
        "full-values.yaml has the sentinel secrets"
    );
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for s in &sentinels {
        for cm in kind(&docs, "ConfigMap") {
            let text = cm.to_string();
            assert!(
                !text.contains(s) && !text.contains(&b64(s)),
                "{s} in {}",
                name(cm)
            );
        }
        for (owner, spec) in pod_specs(&docs) {
            assert!(
                !spec.to_string().contains(s),
                "{s} in the pod spec of {owner}"
            );
        }
        let in_secret = kind(&docs, "Secret")
            .iter()
            .any(|sec| sec.to_string().contains(&b64(s)));
        assert!(in_secret, "{s} is in no Secret");
    }
    // A secret put into `config` is refused instead of landing in the ConfigMap.
    let err = render(&["--set", "config.clickhouse.password=hunter2"]).unwrap_err();
    assert!(
        err.contains("config.clickhouse.password holds a secret"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the refusal must not print the secret: {err}"
    );
    // With an existing Secret the chart creates none.
    let docs = rendered(&["-f", FULL, "--set", "secrets.existingSecret=ops-tokentrail"]);
    assert!(kind(&docs, "Secret").is_empty());
    let ingest = kind(&docs, "Deployment")
        .into_iter()
        .find(|d| name(d).ends_with("-ingest"))
        .unwrap();
    assert!(
        ingest
            .to_string()
            .contains("\"secretName\":\"ops-tokentrail\"")
    );
}

#[test]
fn ingest_replicas_never_exceed_partitions() {
    let err = render(&["--set", "ingest.replicas=4", "--set", "kafka.partitions=3"]).unwrap_err();
    assert!(
        err.contains("ingest.replicas (4) > kafka.partitions (3)"),
        "{err}"
    );
    let docs = rendered(&["-f", FULL]);
    let ingest = kind(&docs, "Deployment")
        .into_iter()
        .find(|d| name(d).ends_with("-ingest"))
        .unwrap();
    assert_eq!(ingest["spec"]["replicas"], 3);
}

#[test]
fn image_latest_is_refused() {
    let err = render(&["--set", "image.tag=latest"]).unwrap_err();
    assert!(err.contains("not a pinned version"), "{err}");
    let docs = rendered(&[
        "--set",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]);
    for (_, spec) in pod_specs(&docs) {
        for c in containers(spec) {
            assert!(
                c["image"].as_str().unwrap().contains("@sha256:0123"),
                "{}",
                c["image"]
            );
        }
    }
}

#[test]
fn migrate_is_a_pre_install_and_pre_upgrade_hook_and_sync_is_opt_in() {
    let docs = rendered(&[]);
    let hooks: BTreeSet<String> = docs
        .iter()
        .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade")
        .map(name)
        .collect();
    let job = kind(&docs, "Job");
    assert_eq!(job.len(), 1);
    assert!(hooks.contains(&name(job[0])), "{hooks:?}");
    assert_eq!(
        job[0]["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["migrate"])
    );
    // The hook's ConfigMap exists before the job (lower weight): pre-install runs before the
    // release's own ConfigMap is created.
    let cm_name = job[0]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        .as_str()
        .unwrap();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == cm_name)
        .unwrap();
    assert!(hooks.contains(&name(cm)));
    assert_eq!(cm["metadata"]["annotations"]["helm.sh/hook-weight"], "-10");

    assert!(
        kind(&docs, "CronJob").is_empty(),
        "GitLab sync is off by default"
    );
    assert!(kind(&docs, "Ingress").is_empty() && kind(&docs, "ServiceMonitor").is_empty());
    let full = rendered(&["-f", FULL, "--set", "gitlabSync.schedule=0 * * * *"]);
    let cron = kind(&full, "CronJob");
    assert_eq!(cron.len(), 1);
    assert_eq!(cron[0]["spec"]["schedule"], "0 * * * *");
    let c = &cron[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        serde_json::json!(["gitlab", "sync", "--group", "payments"])
    );
    let ingress = kind(&full, "Ingress");
    assert_eq!(ingress[0]["spec"]["tls"][0]["secretName"], "tokentrail-tls");
    assert_eq!(kind(&full, "ServiceMonitor").len(), 1);
}

/// The ConfigMap's tokentrail.toml and each Deployment's container environment (secret files
/// included) make a configuration tokentrail accepts, with the secrets redacted.
#[test]
fn rendered_configuration_is_accepted_by_tokentrail() {
    let docs = rendered(&["-f", FULL]);
    let cm = kind(&docs, "ConfigMap")
        .into_iter()
        .find(|d| name(d).ends_with("tokentrail-config"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokentrail.toml");
    // Secret files live under /etc/tokentrail/secrets in the pod: here, in the temp dir.
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let toml = cm["data"]["tokentrail.toml"].as_str().unwrap();
    std::fs::write(
        &config,
        toml.replace(
            "/etc/tokentrail/secrets/",
            &format!("{}/", secrets.display()),
        ),
    )
    .unwrap();
    let secret = kind(&docs, "Secret")
        .into_iter()
        .find(|d| !name(d).contains("migrate"))
        .unwrap();
    for key in secret["data"].as_object().unwrap().keys() {
        std::fs::write(secrets.join(key), format!("ci-sentinel-file-{key}")).unwrap();
    }
    let deployments = kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 2, "ingest and collect");
    for d in deployments {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrail"));
        cmd.env_clear().arg("--config").arg(&config);
        let mut files = 0;
        for e in c["env"].as_array().unwrap() {
            let (k, v) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
            if k == "TOKENTRAIL_CONFIG" {
                continue;
            }
            if let Some(key) = v.strip_prefix("/etc/tokentrail/secrets/") {
                files += 1;
                cmd.env(k, secrets.join(key));
            } else {
                cmd.env(k, v);
            }
        }
        assert!(files >= 3, "{}: the secrets are read as files", name(d));
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let out = cmd.args(&args).arg("--print-config").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: tokentrail {args:?} rejected the chart's configuration: {}",
            name(d),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("kafka:9092"), "{stdout}");
        assert!(
            !stdout.contains("ci-sentinel"),
            "{}: a secret was printed",
            name(d)
        );
    }
}
