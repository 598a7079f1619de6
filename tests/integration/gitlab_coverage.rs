//! A simulated three-hour streaming outage (issue 18; cf. GitLab.com 2026-05-19 15:48–18:54,
//! every streamed audit event dropped): tokentrail receives the uses before and after it,
//! GitLab's authentication log (from the API double) knows every edge's last authorization,
//! and `gitlab coverage` + `query coverage-gaps` list exactly the edges whose last use fell
//! into the outage, each raising `coverage_gap`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokentrail::gitlab::api::{ProjectRef, Scope};
use tokentrail::gitlab::client::Client;
use tokentrail::gitlab::coverage::check;
use tokentrail::gitlab::produce::AuditProducer;
use tokentrail::query::{self, Binding, params::QueryParams, recommend::RecommendOptions};

use crate::allowlist::{iso, produce, use_of};
use crate::common::*;
use crate::gitlab_double::{Double, Reply, fixture};

/// 2026-05-19T13:00:00Z; the outage is T+2h48m .. T+5h54m.
const T: i64 = 1_779_195_600_000;
const MIN: i64 = 60_000;
const GAP: (i64, i64) = (T + 168 * MIN, T + 354 * MIN);

const LEDGER: (i64, &str) = (3001, "payments/ledger");
const BILLING: (i64, &str) = (3002, "payments/core/billing");

#[derive(clickhouse::Row, Deserialize)]
struct StoredAlert {
    source_project_path: String,
    target_project_path: String,
}

fn auth_log(rows: &[((i64, &str), i64)]) -> Value {
    let nodes: Vec<Value> = rows
        .iter()
        .map(|((id, path), at)| json!({"lastAuthorizedAt": iso(*at), "originProject": {"id": format!("gid://gitlab/Project/{id}"), "fullPath": path}}))
        .collect();
    json!({"data": {"project": {"ciJobTokenAuthLogs": {"nodes": nodes, "pageInfo": {"hasNextPage": false, "endCursor": null}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hour_streaming_gap_shows_exactly_the_missing_edges() {
    let svc = services();
    let name = unique("it_gitlab_coverage");
    let mut s = settings(&svc, &name);
    s.alerting.enabled = true;
    let g = Double::start().await;
    s.gitlab.url = g.base.clone();
    s.gitlab.token = tokentrail::config::Secret::new("glpat-test");
    let ch = prepare_ingest(&svc, &s).await;

    let app_backend = (1337, "platform-eng/app-backend");
    let tools = (1338, "platform-eng/tools");
    let deployer = (1339, "platform-eng/deployer");
    let runner = (1340, "ops/runner");
    let metrics_p = (1341, "ops/metrics");
    // What happened (GitLab's view), and what reached tokentrail (everything outside the gap).
    let uses = [
        (app_backend, LEDGER, T, 9201), // before, and again after the gap
        (app_backend, LEDGER, GAP.1 + 30 * MIN, 9202),
        (tools, LEDGER, T + 10 * MIN, 9203),      // before only
        (deployer, LEDGER, T + 200 * MIN, 9204),  // in the gap only: missing
        (runner, BILLING, T + 240 * MIN, 9205),   // in the gap only: missing
        (metrics_p, BILLING, T + 20 * MIN, 9206), // before, and last in the gap: missing
        (metrics_p, BILLING, T + 300 * MIN, 9207),
    ];
    let mut delivered = Vec::new();
    for (i, (src, dst, at, job)) in uses.iter().enumerate() {
        if *at < GAP.0 || *at >= GAP.1 {
            delivered.extend(use_of(6000 + i as i64, *at, *src, *dst, *job));
        }
    }
    let last = |src: (i64, &str), dst: (i64, &str)| {
        uses.iter()
            .filter(|u| u.0 == src && u.1 == dst)
            .map(|u| u.2 - 100)
            .max()
            .unwrap()
    };
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&fixture("group_projects"))],
    );
    g.route(
        "/api/graphql#payments/ledger",
        vec![Reply::json(&auth_log(&[
            (app_backend, last(app_backend, LEDGER)),
            (tools, last(tools, LEDGER)),
            (deployer, last(deployer, LEDGER)),
        ]))],
    );
    g.route(
        "/api/graphql#payments/core/billing",
        vec![Reply::json(&auth_log(&[
            (runner, last(runner, BILLING)),
            (metrics_p, last(metrics_p, BILLING)),
        ]))],
    );

    let kafka = producer(&svc.brokers);
    produce(&kafka, &s.kafka.audit_topics[0], &delivered).await;
    let run = RunningIngest::start(&s);
    eventually(Duration::from_secs(60), "delivered uses stored", || async {
        let n: u64 = ch
            .query("SELECT count() FROM token_use_dedup")
            .fetch_one()
            .await
            .unwrap();
        (n >= 4).then_some(())
    })
    .await;

    // The coverage check, as `tokentrail gitlab coverage --group payments` runs it.
    let client = Client::new(&s.gitlab, None).unwrap();
    let projects =
        tokentrail::gitlab::api::projects(&client, &Scope::Group("payments".into()), |_| {})
            .await
            .unwrap();
    assert_eq!(
        projects[0],
        ProjectRef {
            id: 3001,
            path: "payments/ledger".into()
        }
    );
    let report = check(&client, &ch, &name, &projects, 5 * MIN, 10, || {})
        .await
        .unwrap();
    let mut gaps: Vec<(String, String)> = report
        .gaps
        .iter()
        .map(|(l, _)| (l.origin.path.clone(), l.target.path.clone()))
        .collect();
    gaps.sort();
    let want = vec![
        (
            "ops/metrics".to_string(),
            "payments/core/billing".to_string(),
        ),
        (
            "ops/runner".to_string(),
            "payments/core/billing".to_string(),
        ),
        (
            "platform-eng/deployer".to_string(),
            "payments/ledger".to_string(),
        ),
    ];
    assert_eq!(
        gaps, want,
        "exactly the edges whose last use fell into the outage"
    );
    assert_eq!(report.observations.len(), 5);
    let payloads: Vec<(String, Vec<u8>)> = report
        .observations
        .iter()
        .map(|(k, e)| (k.clone(), e.to_string().into_bytes()))
        .collect();
    AuditProducer::new(&s.kafka, "gitlab-coverage")
        .unwrap()
        .send_all(&payloads)
        .await
        .unwrap();

    // The alerts, and the named query over the stored observations.
    let alerts: Vec<StoredAlert> = eventually(Duration::from_secs(60), "coverage_gap alerts", || async {
        let a: Vec<StoredAlert> = ch
            .query("SELECT source_project_path, target_project_path FROM alerts_latest WHERE rule = 'coverage_gap' ORDER BY source_project_path")
            .fetch_all()
            .await
            .unwrap();
        (a.len() >= 3).then_some(a)
    })
    .await;
    run.stop().await;
    let got: Vec<(String, String)> = alerts
        .into_iter()
        .map(|a| (a.source_project_path, a.target_project_path))
        .collect();
    assert_eq!(got, want);

    let mut p = QueryParams::new(T + 24 * 60 * MIN);
    p.from_ms = T - 60 * MIN;
    p.to_ms = T + 24 * 60 * MIN;
    let rs = query::run(
        &ch,
        Binding::ClientSide,
        "coverage-gaps",
        &p,
        RecommendOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        rs.columns,
        ["target", "origin", "last_authorized", "last_recorded"]
    );
    let rows: Vec<(String, String, String)> = rs
        .text_rows()
        .into_iter()
        .map(|r| (r[1].clone(), r[0].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "ops/metrics".to_string(),
                "payments/core/billing".to_string(),
                "2026-05-19 13:20:00".to_string()
            ),
            (
                "ops/runner".to_string(),
                "payments/core/billing".to_string(),
                String::new()
            ),
            (
                "platform-eng/deployer".to_string(),
                "payments/ledger".to_string(),
                String::new()
            ),
        ],
        "coverage-gaps lists the same edges (origin, target, tokentrail's last record)"
    );
}
