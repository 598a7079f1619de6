//! `tokentrail report` end to end on ClickHouse 18.16: simulated data plus one hostile use
//! (markup and quotes in a project path and an author name) loaded into a fresh database,
//! the report's queries run, and the figures checked against the simulator's ground truth.
//! Then a real browser: headless Debian `chromium` opens the HTML file, its script must run
//! without console errors and report the graph's node and edge counts, the hostile
//! `<script>` must not run, and a PNG screenshot is written for review
//! (target/report-browser-test.png). Without chromium the browser part is skipped with a
//! message, unless CI is set, where it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokentrail::model::{AuditMeaning, Event, SourceKind};
use tokentrail::query::Binding;
use tokentrail::query::params::FAR_FUTURE_MS;
use tokentrail::report::data::{self, Request};
use tokentrail::report::model::Scope;
use tokentrail::report::{Format, graph, render, view};
use tokentrail::simulate::{self, SimConfig};
use tokentrail::store::migrate;
use tokentrail::store::tables::{self, Table};

use crate::common::*;

const HOSTILE_PATH: &str = "evil/\"><script>document.title='pwned'</script>";
const HOSTILE_NAME: &str = "Mallory \"<script>document.title='pwned'</script>";

#[tokio::test]
async fn report_on_clickhouse_18_16_and_in_a_real_browser() {
    let svc = services();
    let (messages, truth) = simulate::generate(&SimConfig::small());
    let mut uses = truth.token_uses.clone();
    let mut hostile = uses
        .iter()
        .find(|u| !u.same_project && !u.target_project_path.is_empty())
        .unwrap()
        .clone();
    hostile.source_project_path = HOSTILE_PATH.into();
    hostile.source_project_id = Some(999_999);
    hostile.actor_name = HOSTILE_NAME.into();
    hostile.allowlisted = Some(false);
    uses.push(hostile.clone());

    let mut token_use = Vec::new();
    for (i, u) in uses.iter().enumerate() {
        tables::token_use::encode(u, &format!("tu-{i:08}"), 1, &mut token_use);
    }
    let (mut allowlist, mut lifecycle, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for m in &messages {
        for event in m.normalize("t").events {
            match event {
                Event::Audit(ev) if m.source == SourceKind::AuditStream => {
                    if !seen.insert(ev.dedup_key.clone()) {
                        continue;
                    }
                    match &ev.meaning {
                        AuditMeaning::Allowlist(c) => {
                            tables::encode_allowlist_change(&ev, c, &mut allowlist)
                        }
                        AuditMeaning::TokenLifecycle(tl) => {
                            tables::encode_token_lifecycle(&ev, tl, &mut lifecycle)
                        }
                        _ => {}
                    }
                }
                Event::Webhook(wh) => {
                    for job in &wh.jobs {
                        tables::encode_job(job, wh.event_time_ms, &mut jobs);
                    }
                }
                _ => {}
            }
        }
    }
    let db = unique("it_report");
    let client = clickhouse(&svc.clickhouse_url, &db);
    migrate::migrate(&client, &db, 0, None).await.unwrap();
    for (table, bytes) in [
        (Table::TokenUse, token_use),
        (Table::AllowlistChanges, allowlist),
        (Table::TokenLifecycle, lifecycle),
        (Table::Jobs, jobs),
    ] {
        let mut insert = client.insert_formatted_with(table.insert_sql(&db));
        insert.send(bytes.into()).await.unwrap();
        insert.end().await.unwrap();
    }

    let last = uses.iter().map(|u| u.event_time_ms).max().unwrap();
    let scope = Scope {
        from_ms: 0,
        to_ms: FAR_FUTURE_MS,
        generated_at_ms: last,
        group: String::new(),
        unused_days: 90,
    };
    let steps = std::sync::Mutex::new(Vec::new());
    let report_data = data::fetch(
        &Request {
            client: &client,
            database: &db,
            binding: Binding::ClientSide,
            scope,
            now_ms: last + 1,
        },
        &|step| steps.lock().unwrap().push(step.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(steps.lock().unwrap().len() as u64, data::STEPS);
    let report = view::build(
        &report_data,
        "https://gitlab.example.com",
        graph::AGGREGATE_ABOVE,
    );

    let f = report.headline;
    assert_eq!(f.token_uses, uses.len() as u64);
    let edges: BTreeSet<(&str, &str)> = uses
        .iter()
        .filter(|u| {
            !u.target_project_path.is_empty() && u.source_project_path != u.target_project_path
        })
        .map(|u| {
            (
                u.source_project_path.as_str(),
                u.target_project_path.as_str(),
            )
        })
        .collect();
    assert_eq!(f.cross_project_edges, edges.len() as u64);
    let outside = uses
        .iter()
        .filter(|u| u.allowlisted == Some(false) && !u.same_project)
        .count();
    assert_eq!(f.uses_outside_allowlist, outside as u64);
    assert!(f.uses_outside_allowlist >= 1);
    assert!(
        !report.projects.is_empty(),
        "the simulation protects projects"
    );
    assert!(report.projects.iter().any(|p| !p.recommended.is_empty()));
    assert!(!report.changes.is_empty());
    let listed = report
        .outside_uses
        .iter()
        .find(|u| u.source == HOSTILE_PATH)
        .expect("the hostile use is listed");
    assert_eq!(listed.actor_name, HOSTILE_NAME);

    let html = render(&report, Format::Html);
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(
        html.contains("Mallory &quot;&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;")
    );
    let md = render(&report, Format::Md);
    assert!(!md.contains("<script"));
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    assert_eq!(json["headline"]["token_uses"], uses.len() as u64);

    client
        .query(&format!("DROP DATABASE {db}"))
        .execute()
        .await
        .unwrap();

    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let (dom, log) = run_chromium(&chromium, dir.path(), &["--dump-dom"], &page);
    assert!(!log.contains("Uncaught"), "console errors:\n{log}");
    assert!(
        dom.contains("data-report-ready=\"1\""),
        "the page's script did not finish:\n{log}"
    );
    let nodes = report.graph.nodes.len();
    let edges = report.graph.edges.len();
    assert!(
        dom.contains(&format!("data-graph-nodes=\"{nodes}\"")),
        "{nodes} nodes expected"
    );
    assert!(
        dom.contains(&format!("data-graph-edges=\"{edges}\"")),
        "{edges} edges expected"
    );
    assert_eq!(dom.matches("class=\"node\"").count(), nodes);
    assert_eq!(dom.matches("class=\"edge ").count(), edges);
    assert!(
        !dom.contains("<title>pwned</title>"),
        "the hostile script ran"
    );
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/report-browser-test.png");
    let arg = format!("--screenshot={}", shot.display());
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &chromium,
        dir.path(),
        &[&arg, "--window-size=1400,1000"],
        &page,
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// The chromium binary, or None (skip) when it is missing outside CI.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(
            !ci,
            "chromium is required in CI: run deploy/local/prerequisites"
        );
        // To the process's stderr directly, as common::skip_all does: libtest captures
        // eprintln! of a passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED the report's browser check: no chromium on PATH \
             (deploy/local/prerequisites installs it; with CI set this is an error).\n"
        );
    }
    found
}

/// A chromium process group, killed with the test (also on a panic or a timeout).
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); its renderers are in it too.
        let pgid = self.0.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Runs headless chromium on `page` with `extra` flags; returns (stdout, stderr).
fn run_chromium(bin: &Path, dir: &Path, extra: &[&str], page: &Path) -> (String, String) {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::tempdir_in(dir).unwrap();
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out).unwrap())
    .stderr(std::fs::File::create(&err).unwrap())
    .process_group(0);
    let mut browser = Browser(cmd.spawn().expect("start chromium"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(&err).unwrap_or_default();
            assert!(status.success(), "chromium failed ({status}):\n{log}");
            break;
        }
        assert!(Instant::now() < deadline, "chromium did not finish in 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(browser);
    (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}
