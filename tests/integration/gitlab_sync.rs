//! `tokentrail gitlab sync` end to end (issue 18): an allowlist that existed before
//! tokentrail started, read from a GitLab API double, produced into the audit topic, stored by
//! ingest and applied by the correlator to the traffic that follows. Then GitLab's allowlist
//! changes without any event reaching tokentrail, and the next sync raises `allowlist_drift`.
//!
//! `TOKENTRAIL_TEST_SKIP_SYNC=1` skips the first sync (same expectations): it shows the test
//! failing the way tokentrail without the sync does (the use comes out `allowlisted = NULL`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokentrail::gitlab::api::Scope;
use tokentrail::gitlab::client::Client;
use tokentrail::gitlab::produce::AuditProducer;
use tokentrail::gitlab::sync::{SyncOptions, load_history, sync};
use tokentrail::telemetry::metrics::Metrics;

use crate::allowlist::{produce, use_of};
use crate::common::*;
use crate::gitlab_double::{Double, Reply, fixture};

/// 2025-06-03T10:00:00Z
const T: i64 = 1_748_944_800_000;
const HOUR: i64 = 3_600_000;
const LEDGER: (i64, &str) = (3001, "payments/ledger");

#[derive(clickhouse::Row, Deserialize)]
struct StoredUse {
    job_id: Option<i64>,
    allowlisted: Option<u8>,
}

#[derive(clickhouse::Row, Deserialize)]
struct StoredAlert {
    rule: String,
    action: String,
    source_project_path: String,
}

fn gitlab_world(g: &Double, allowlist: serde_json::Value) {
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&json!([fixture("group_projects")[0]]))],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope",
        vec![Reply::json(&fixture("job_token_scope"))],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope/allowlist",
        vec![Reply::json(&allowlist)],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope/groups_allowlist",
        vec![Reply::json(&json!([]))],
    );
    g.route(
        "/api/graphql",
        vec![Reply::json(
            &json!({"errors": [{"message": "not on this GitLab"}]}),
        )],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preexisting_allowlist_is_known_after_sync_and_drift_is_alerted() {
    let svc = services();
    let name = unique("it_gitlab_sync");
    let mut s = settings(&svc, &name);
    s.alerting.enabled = true;
    let g = Double::start().await;
    s.gitlab.url = g.base.clone();
    s.gitlab.token = tokentrail::config::Secret::new("glpat-test");
    s.gitlab.initial_backoff_ms = 10;
    s.gitlab.max_backoff_ms = 50;
    let ch = prepare_ingest(&svc, &s).await;

    // GitLab: ledger admits platform-eng/app-backend (1337), added long before tokentrail ran.
    gitlab_world(&g, fixture("allowlist"));
    let metrics = Metrics::new();
    let client = Client::new(&s.gitlab, Some(metrics.clone())).unwrap();
    let producer = AuditProducer::new(&s.kafka, "gitlab-sync").unwrap();
    let opts = SyncOptions {
        scope: Scope::Group("payments".into()),
        dry_run: false,
        full: false,
    };
    if std::env::var("TOKENTRAIL_TEST_SKIP_SYNC").is_err() {
        let known = load_history(&s.clickhouse).await.unwrap();
        let (report, _) = sync(
            &client,
            &s.gitlab,
            &opts,
            &known,
            Some(&producer),
            &metrics,
            || T - HOUR,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.rows, report.drift),
            (2, 0),
            "a baseline: inbound + one entry, no drift"
        );
    }

    // Then traffic: a use from the allowlisted project and one from outside.
    let mut events = Vec::new();
    events.extend(use_of(
        5001,
        T,
        (1337, "platform-eng/app-backend"),
        LEDGER,
        9101,
    ));
    events.extend(use_of(
        5002,
        T + 1_000,
        (1400, "other/intruder"),
        LEDGER,
        9102,
    ));
    let kafka = producer_for(&svc);
    produce(&kafka, &s.kafka.audit_topics[0], &events).await;

    let run = RunningIngest::start(&s);
    eventually(Duration::from_secs(60), "both uses stored", || async {
        let n: u64 = ch
            .query("SELECT count() FROM token_use_dedup")
            .fetch_one()
            .await
            .unwrap();
        (n >= 2).then_some(())
    })
    .await;
    let uses: Vec<StoredUse> = ch
        .query("SELECT job_id, allowlisted FROM token_use_dedup ORDER BY job_id")
        .fetch_all()
        .await
        .unwrap();
    let got: BTreeMap<i64, Option<u8>> = uses
        .into_iter()
        .filter_map(|u| Some((u.job_id?, u.allowlisted)))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([(9101, Some(1)), (9102, Some(0))]),
        "allowlisted per job: known from the sync, not NULL"
    );

    // GitLab's allowlist changes with no event reaching tokentrail: 1337 removed, 1500 added.
    let mut changed = fixture("allowlist");
    changed[0]["id"] = json!(1500);
    changed[0]["path_with_namespace"] = json!("platform-eng/new-deployer");
    gitlab_world(&g, changed);
    let known = load_history(&s.clickhouse).await.unwrap();
    assert!(
        known.contains_key(&3001),
        "the first snapshot is the history now"
    );
    let (report, _) = sync(
        &client,
        &s.gitlab,
        &opts,
        &known,
        Some(&producer),
        &metrics,
        || T + HOUR,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.rows, report.drift),
        (3, 2),
        "inbound unchanged; one entry new, one gone"
    );

    let alerts: Vec<StoredAlert> = eventually(Duration::from_secs(60), "drift alerts", || async {
        let a: Vec<StoredAlert> = ch
            .query(
                "SELECT rule, action, source_project_path FROM alerts_latest \
                 WHERE rule IN ('allowlist_drift', 'not_allowlisted') ORDER BY rule, action",
            )
            .fetch_all()
            .await
            .unwrap();
        (a.len() >= 3).then_some(a)
    })
    .await;
    run.stop().await;
    let got: Vec<(String, String, String)> = alerts
        .into_iter()
        .map(|a| (a.rule, a.action, a.source_project_path))
        .collect();
    assert_eq!(
        got,
        [
            (
                "allowlist_drift".into(),
                "allowlist.drift.missing_from_history".into(),
                "platform-eng/new-deployer".into()
            ),
            (
                "allowlist_drift".into(),
                "allowlist.drift.removed_unseen".into(),
                "platform-eng/app-backend".into()
            ),
            (
                "not_allowlisted".into(),
                "repository.read".into(),
                "other/intruder".into()
            ),
        ]
    );
    // The allowlist state follows GitLab: 1337 is off, 1500 on.
    let present: Vec<(Option<i64>, u8)> = ch
        .query("SELECT member_id, present FROM allowlist_state WHERE protected_project_path = 'payments/ledger' ORDER BY member_id")
        .fetch_all::<(Option<i64>, u8)>()
        .await
        .unwrap();
    assert_eq!(present, [(Some(1337), 0), (Some(1500), 1)]);
}

fn producer_for(svc: &Services) -> rdkafka::producer::FutureProducer {
    producer(&svc.brokers)
}

/// `gitlab backfill` after streaming delivered part of the range: the saved event streaming
/// already delivered is stored once, the one it lost is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfilled_saved_events_are_stored_once_beside_their_streamed_copies() {
    use tokentrail::gitlab::backfill::{Source, read};
    let svc = services();
    let name = unique("it_gitlab_backfill");
    let mut s = settings(&svc, &name);
    let g = Double::start().await;
    s.gitlab.url = g.base.clone();
    s.gitlab.token = tokentrail::config::Secret::new("glpat-test");
    let ch = prepare_ingest(&svc, &s).await;

    // Streaming delivered the allowlist change (id 552211, its id as a string, as newer
    // GitLab sends it) but lost the other saved event (id 2).
    let mut saved = fixture("audit_events");
    // The API's `event_name` (the documented example predates it); backfill maps it to the
    // stream's `event_type`.
    saved[0]["event_name"] = json!("group_deletion_marked");
    let mut streamed = saved[1].clone();
    streamed["id"] = json!("552211");
    streamed["entity_path"] = json!("payments/ledger");
    streamed["event_type"] = json!("secure_ci_job_token_project_added");
    let kafka = producer(&svc.brokers);
    produce(&kafka, &s.kafka.audit_topics[0], &[streamed]).await;

    g.route(
        "/api/v4/groups/payments/audit_events",
        vec![Reply::json(&saved)],
    );
    let client = Client::new(&s.gitlab, None).unwrap();
    let from = 1_566_000_000_000; // 2019-08-17, one slice
    let events = read(
        &client,
        &Source::Group("payments".into()),
        from,
        from + 10 * 86_400_000,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 2);
    let payloads: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|(k, e)| (k.clone(), e.to_string().into_bytes()))
        .collect();
    AuditProducer::new(&s.kafka, "gitlab-backfill")
        .unwrap()
        .send_all(&payloads)
        .await
        .unwrap();

    let run = RunningIngest::start(&s);
    let keys: Vec<String> = eventually(Duration::from_secs(60), "audit events stored", || async {
        let n: u64 = ch
            .query("SELECT count() FROM audit_events")
            .fetch_one()
            .await
            .unwrap();
        if n < 3 {
            return None;
        }
        Some(
            ch.query("SELECT dedup_key FROM audit_events_dedup ORDER BY dedup_key")
                .fetch_all::<String>()
                .await
                .unwrap(),
        )
    })
    .await;
    run.stop().await;
    assert_eq!(
        keys,
        ["saved:2", "saved:552211"],
        "three messages, two events"
    );
    let changes: u64 = ch
        .query("SELECT count() FROM allowlist_changes_dedup")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(changes, 1, "the allowlist change once");
}
