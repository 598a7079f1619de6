//! Alerting end to end on the real services: simulated traffic with labelled anomalies
//! through Kafka → tokentrail → ClickHouse `alerts` (and the Kafka alerts topic, and a local
//! webhook receiver), compared with the simulator's ground truth.
//!
//! How the ground truth maps to rules (suppression: one alert per rule, source, target and
//! window of event time, so truth items are grouped the same way before comparing):
//! - `not_allowlisted`, `push`, `crown_jewel` → the rule of the same name;
//! - `allowlist_disabled`, `group_admitted` → `allowlist_weakened` (told apart by `action`);
//! - `bot_lifecycle` → `token_lifecycle`, where tokentrail can tell the author is a bot.
//!   The simulated bot events carry only a display name ("CI bot") and `author_class: User`,
//!   as GitLab's do; tokentrail knows the author is a bot only once a job webhook showed the
//!   user's `project_<id>_bot…` username (`correlate::actors`). So the expectation for this
//!   rule is built from the stored `token_lifecycle` rows classified as bots, and the
//!   anomaly run asserts there is at least one.
//! - `new_edge` differs by design: the simulator labels edges outside its hidden dependency
//!   graph, while the rule only knows history. On an empty store every edge's first use is
//!   new, so the expected set is "first use of every cross-project pair in the truth's
//!   token uses", which contains every labelled `new_edge`. Against an established history
//!   (second run below) baseline traffic raises nothing at all.
//! - `unexpected_actor` has no label; with no scopes configured it must stay silent.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde::Deserialize;
use tokentrail::alert::id::bucket_start;
use tokentrail::config::{Secret, Settings};
use tokentrail::ingest::app;
use tokentrail::publish::{self, Topics};
use tokentrail::simulate::{GroundTruth, SimConfig, Simulator};
use tokentrail::telemetry::{metrics::Metrics, server::Health};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const WINDOW_MS: i64 = 600_000;

/// (rule, action class, source, target, bucket start) → count
type Expected = BTreeMap<(String, String, Option<i64>, Option<i64>, i64), u64>;

#[derive(clickhouse::Row, Deserialize, Debug)]
struct StoredAlert {
    alert_id: String,
    rule: String,
    action: String,
    first_seen_ms: i64,
    count: u64,
    actor_id: i64,
    details: String,
}

fn alert_settings(svc: &Services, name: &str) -> Settings {
    let mut s = settings(svc, name);
    s.alerting.suppression_window_ms = WINDOW_MS;
    s.alerting.outputs.kafka_topic = format!("{name}_alerts");
    s.alerting.rules.crown_jewel.patterns = vec!["*secrets*".into(), "*prod*".into()];
    s.validate().expect("valid");
    s
}

async fn setup(svc: &Services, s: &Settings) -> clickhouse::Client {
    create_topic(&svc.brokers, &s.kafka.audit_topics[0], 3).await;
    create_topic(&svc.brokers, &s.kafka.webhook_topics[0], 2).await;
    create_topic(&svc.brokers, &s.kafka.dead_letter_topic, 1).await;
    create_topic(&svc.brokers, &s.alerting.outputs.kafka_topic, 1).await;
    let db = &s.clickhouse.database;
    let client = clickhouse(&svc.clickhouse_url, db);
    tokentrail::store::migrate::migrate(&client, db, 0, None)
        .await
        .unwrap();
    client
}

async fn publish_sim(s: &Settings, cfg: &SimConfig) -> (u64, GroundTruth) {
    let mut sim = Simulator::new(cfg);
    let topics = Topics::from_settings(&s.kafka).unwrap();
    let producer = tokentrail::kafka::producer::producer(&s.kafka).unwrap();
    let sent = publish::publish(&producer, &topics, sim.by_ref(), 0, |_| {})
        .await
        .unwrap();
    (sent, sim.into_truth())
}

fn start(s: &Settings) -> (CancellationToken, tokio::task::JoinHandle<app::RunSummary>) {
    let cancel = CancellationToken::new();
    let (s, c) = (s.clone(), cancel.clone());
    let handle = tokio::spawn(async move {
        app::run(&s, Metrics::new(), Health::default(), c)
            .await
            .expect("ingest run")
    });
    (cancel, handle)
}

/// Runs the pipeline until every distinct audit event is stored, then stops it gracefully
/// (which decides what the correlator still holds).
async fn ingest_all(s: &Settings, client: &clickhouse::Client, audit_events: u64) {
    let (cancel, run) = start(s);
    eventually(
        Duration::from_secs(180),
        "all audit events stored",
        || async {
            let n = count(client, "SELECT count() FROM audit_events_dedup").await;
            (n >= audit_events).then_some(())
        },
    )
    .await;
    cancel.cancel();
    run.await.unwrap();
}

/// `token_lifecycle` expectations from what the pipeline stored and classified as bots.
async fn expected_lifecycle(client: &clickhouse::Client, want: &mut Expected) {
    #[derive(clickhouse::Row, Deserialize)]
    struct Row {
        author_id: i64,
        scope_id: Option<i64>,
        event_time_ms: i64,
    }
    let rows: Vec<Row> = client
        .query(
            "SELECT author_id, scope_id, event_time_ms FROM token_lifecycle FINAL \
             WHERE actor_kind IN ('project_bot', 'group_bot') AND operation = 'created'",
        )
        .fetch_all()
        .await
        .unwrap();
    for r in rows {
        let key = (
            "token_lifecycle".to_string(),
            String::new(),
            Some(r.author_id),
            r.scope_id,
            bucket_start(r.event_time_ms, WINDOW_MS),
        );
        *want.entry(key).or_default() += 1;
    }
}

/// Stores one job per token-minting bot of the truth, as an earlier run would have; returns
/// how many. The username is the first word of the anomaly's detail.
async fn known_bot_jobs(client: &clickhouse::Client, truth: &GroundTruth) -> usize {
    let mut rows = Vec::new();
    for (i, a) in truth
        .anomalies
        .iter()
        .filter(|a| a.kind == "bot_lifecycle")
        .enumerate()
    {
        let (Some(id), Some(username)) = (a.actor_id, a.detail.split(' ').next()) else {
            continue;
        };
        rows.push(format!(
            "({}, 'schedule', 'g/p', {id}, '{username}', 'success', 1)",
            900_000_000 + i
        ));
    }
    if !rows.is_empty() {
        client
            .query(&format!(
                "INSERT INTO jobs (job_id, job_name, project_path, user_id, username, status, \
                 updated_at_ms) VALUES {}",
                rows.join(", ")
            ))
            .execute()
            .await
            .unwrap();
    }
    rows.len()
}

async fn stored_alerts(client: &clickhouse::Client) -> Vec<StoredAlert> {
    client
        .query(
            "SELECT alert_id, rule, action, first_seen_ms, count, actor_id, details \
             FROM alerts_latest ORDER BY alert_id",
        )
        .fetch_all()
        .await
        .unwrap()
}

fn action_class(rule: &str, action: &str) -> String {
    if rule == "allowlist_weakened" {
        action.to_string()
    } else {
        String::new()
    }
}

/// What the ground truth says the table must hold, new_edge included (see module docs).
fn expected(truth: &GroundTruth) -> Expected {
    let mut out = Expected::new();
    let mut add = |rule: &str, class: &str, s: Option<i64>, t: Option<i64>, at: i64| {
        let key = (
            rule.to_string(),
            class.to_string(),
            s,
            t,
            bucket_start(at, WINDOW_MS),
        );
        *out.entry(key).or_default() += 1;
    };
    for a in &truth.anomalies {
        let (s, t, at) = (a.source_project_id, a.target_project_id, a.time_ms);
        match a.kind.as_str() {
            "not_allowlisted" | "push" | "crown_jewel" => add(&a.kind, "", s, t, at),
            "allowlist_disabled" => add(
                "allowlist_weakened",
                "allowlist.inbound_disabled",
                None,
                t,
                at,
            ),
            "group_admitted" => add(
                "allowlist_weakened",
                "allowlist.top_level_group_added",
                None,
                t,
                at,
            ),
            "bot_lifecycle" => {} // see module docs: from the stored classification instead
            "new_edge" => {}
            other => panic!("unknown anomaly kind {other}"),
        }
    }
    let mut seen = HashSet::new();
    for u in &truth.token_uses {
        if !u.same_project
            && u.target_project_id.is_some()
            && seen.insert((u.source_project_id, u.target_project_id))
        {
            add(
                "new_edge",
                "",
                u.source_project_id,
                u.target_project_id,
                u.event_time_ms,
            );
        }
    }
    out
}

fn actual(alerts: &[StoredAlert]) -> Expected {
    let mut out = Expected::new();
    for a in alerts {
        let d: serde_json::Value = serde_json::from_str(&a.details).unwrap();
        let target = d["target_project_id"].as_i64();
        let source = match a.rule.as_str() {
            "allowlist_weakened" => None,
            "token_lifecycle" => Some(a.actor_id),
            _ => d["source_project_id"].as_i64(),
        };
        let key = (
            a.rule.clone(),
            action_class(&a.rule, &a.action),
            source,
            target,
            bucket_start(a.first_seen_ms, WINDOW_MS),
        );
        *out.entry(key).or_default() += a.count;
    }
    out
}

fn assert_same(want: &Expected, got: &Expected) {
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(v))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "alerts differ from the ground truth\nexpected but missing or miscounted: {missing:#?}\n\
         stored but unexpected or miscounted: {extra:#?}"
    );
}

fn by_rule(map: &Expected) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (k, _) in map.iter() {
        *out.entry(k.0.clone()).or_default() += 1;
    }
    out
}

fn anomalous() -> SimConfig {
    SimConfig {
        seed: 11,
        jobs: 400,
        anomaly_share: 0.05,
        bad_share: 0.0,
        ..SimConfig::default()
    }
}

/// Distinct keys on the alerts topic.
async fn kafka_alert_ids(s: &Settings, want: usize) -> BTreeSet<String> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.kafka.brokers)
        .set("group.id", unique("it_alerts_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&s.alerting.outputs.kafka_topic])
        .unwrap();
    let mut ids = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ids.len() < want && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
            ids.insert(String::from_utf8_lossy(m.key().unwrap_or_default()).to_string());
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_anomalies_raise_exactly_the_expected_alerts() {
    let svc = services();
    let name = unique("it_alerts");
    let s = alert_settings(&svc, &name);
    let client = setup(&svc, &s).await;
    let (_, truth) = publish_sim(&s, &anomalous()).await;
    let mut want = expected(&truth);
    for rule in [
        "not_allowlisted",
        "push",
        "crown_jewel",
        "allowlist_weakened",
    ] {
        assert!(
            by_rule(&want).contains_key(rule),
            "the run exercises {rule}"
        );
    }
    // Whether a bot's job webhook is read before its token event depends on how the
    // consumer interleaves the two topics. A job stored by an earlier run makes it certain:
    // the bot is learned at start-up from the `jobs` table (`ingest::bot_history`).
    let bots = known_bot_jobs(&client, &truth).await;
    assert!(bots > 0, "the run has a bot minting a token");
    ingest_all(&s, &client, truth.distinct_audit_events).await;
    expected_lifecycle(&client, &mut want).await;
    eprintln!("expected alerts by rule: {:?}", by_rule(&want));
    let lifecycle_truth: BTreeSet<i64> = truth
        .anomalies
        .iter()
        .filter(|a| a.kind == "bot_lifecycle")
        .filter_map(|a| a.actor_id)
        .collect();
    let lifecycle_expected: BTreeSet<i64> = want
        .keys()
        .filter(|k| k.0 == "token_lifecycle")
        .filter_map(|k| k.2)
        .collect();
    assert_eq!(
        lifecycle_expected, lifecycle_truth,
        "every simulated bot that minted a token is recognized as a bot"
    );

    let stored = stored_alerts(&client).await;
    let got = actual(&stored);
    assert_same(&want, &got);
    let labelled_edges = truth.anomalies.iter().filter(|a| a.kind == "new_edge");
    for a in labelled_edges {
        let key = (
            "new_edge".to_string(),
            String::new(),
            a.source_project_id,
            a.target_project_id,
            bucket_start(a.time_ms, WINDOW_MS),
        );
        assert!(got.contains_key(&key), "labelled new edge {a:?} alerted");
    }

    // Every alert id reached the Kafka topic (keyed by alert id).
    let ids: BTreeSet<String> = stored.iter().map(|a| a.alert_id.clone()).collect();
    let on_kafka = kafka_alert_ids(&s, ids.len()).await;
    assert_eq!(on_kafka, ids, "Kafka alert keys equal stored alert ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_traffic_raises_nothing_against_its_history() {
    let svc = services();
    let name = unique("it_alerts_base");
    let s = alert_settings(&svc, &name);
    let client = setup(&svc, &s).await;
    let base = SimConfig {
        seed: 5,
        jobs: 300,
        anomaly_share: 0.0,
        bad_share: 0.0,
        ..SimConfig::default()
    };
    let (_, truth) = publish_sim(&s, &base).await;
    ingest_all(&s, &client, truth.distinct_audit_events).await;
    let got = actual(&stored_alerts(&client).await);
    assert_eq!(
        by_rule(&got).keys().collect::<Vec<_>>(),
        vec!["new_edge"],
        "on an empty store only first uses of edges alert"
    );
    let mut want = expected(&truth);
    expected_lifecycle(&client, &mut want).await;
    assert_same(&want, &got);

    // A day later, the same workload (same world and edges): a restarted tokentrail hydrates
    // the edges from token_use and raises nothing.
    let before = count(&client, "SELECT count() FROM alerts").await;
    let later = SimConfig {
        start_ms: base.start_ms + 86_400_000,
        ..base
    };
    let (_, truth2) = publish_sim(&s, &later).await;
    let total = count(&client, "SELECT count() FROM audit_events_dedup").await;
    let (cancel, run) = start(&s);
    eventually(Duration::from_secs(180), "second day stored", || async {
        let n = count(
            &client,
            &format!(
                "SELECT count() FROM token_use_dedup WHERE event_time_ms >= {}",
                later.start_ms
            ),
        )
        .await;
        (n as usize >= truth2.token_uses.len() * 99 / 100).then_some(())
    })
    .await;
    cancel.cancel();
    run.await.unwrap();
    assert!(count(&client, "SELECT count() FROM audit_events_dedup").await > total);
    let after = count(&client, "SELECT count() FROM alerts").await;
    assert_eq!(after, before, "baseline traffic raised no alert rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_run_neither_loses_nor_duplicates_alerts() {
    let svc = services();
    let name = unique("it_alerts_crash");
    let mut s = alert_settings(&svc, &name);
    s.batch.max_rows = 500; // many batches, so the crash lands mid-stream
    let client = setup(&svc, &s).await;
    let (_, truth) = publish_sim(&s, &anomalous()).await;
    let mut want = expected(&truth);

    let (_cancel, run) = start(&s);
    eventually(Duration::from_secs(180), "some alerts stored", || async {
        let n = count(&client, "SELECT count() FROM alerts").await;
        (n >= want.len() as u64 / 3).then_some(())
    })
    .await;
    // A crash: no graceful flush, no final commit.
    run.abort();
    let _ = run.await;
    let partial = count(&client, "SELECT uniqExact(alert_id) FROM alerts_latest").await;
    eprintln!("alerts before the crash: {partial} of {}", want.len());

    // Restart and wait until the group has committed every input message: only then are the
    // counts final. (Every alert id can be stored before the last findings that bump their
    // counts, and before the last bot's lifecycle rows, so neither is a stopping point.)
    let (cancel, run) = start(&s);
    let inputs = [
        (s.kafka.audit_topics[0].clone(), 3),
        (s.kafka.webhook_topics[0].clone(), 2),
    ];
    eventually(
        Duration::from_secs(180),
        "every input message committed after the restart",
        || async { committed_to_the_end(&s, &inputs).await.then_some(()) },
    )
    .await;
    cancel.cancel();
    run.await.unwrap();
    expected_lifecycle(&client, &mut want).await;
    let stored = stored_alerts(&client).await;
    let distinct = count(&client, "SELECT uniqExact(alert_id) FROM alerts_latest").await;
    assert_same(&want, &actual(&stored));
    assert_eq!(distinct as usize, want.len(), "no alert lost or duplicated");
    assert_eq!(stored.len(), want.len());
}

/// After a crash, the replay starts where the slowest audit partition was, and records are
/// stored at its pace, while alerts on audit events of a partition that ran ahead can be many
/// windows newer. Hydration must still load the open alerts of the slow partition's buckets,
/// or a replayed finding would start their count again at 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydration_reaches_back_to_the_records_not_to_the_newest_alert() {
    use tokentrail::alert::id::{alert_id, project_key};
    let svc = services();
    let name = unique("it_alerts_hydrate");
    let s = alert_settings(&svc, &name);
    let db = &s.clickhouse.database;
    let client = clickhouse(&svc.clickhouse_url, db);
    tokentrail::store::migrate::migrate(&client, db, 0, None)
        .await
        .unwrap();
    let t = bucket_start(1_748_944_800_000, WINDOW_MS) + 1_000;
    let ahead = t + 10 * WINDOW_MS;
    let (source, target) = (project_key(Some(1), "g/a"), project_key(Some(2), "g/b"));
    let slow = alert_id(
        "not_allowlisted",
        &source,
        &target,
        bucket_start(t, WINDOW_MS),
    );
    let fast = alert_id(
        "token_lifecycle",
        "actor:9",
        &target,
        bucket_start(ahead, WINDOW_MS),
    );
    for sql in [
        format!("INSERT INTO token_use (event_time_ms, record_key) VALUES ({t}, 'r1')"),
        format!(
            "INSERT INTO alerts (alert_id, rule, first_seen_ms, last_seen_ms, count, \
             event_time_ms, details, updated_at_ms) VALUES \
             ('{slow}', 'not_allowlisted', {t}, {t}, 3, {t}, '{{}}', 1), \
             ('{fast}', 'token_lifecycle', {ahead}, {ahead}, 1, {ahead}, '{{}}', 1)"
        ),
    ] {
        client.query(&sql).execute().await.unwrap();
    }

    let mut engine = tokentrail::alert::AlertEngine::new(&s.alerting);
    let hydrated = tokentrail::alert::hydrate::hydrate(
        &client,
        db,
        s.alerting.rules.new_edge.lookback_ms,
        WINDOW_MS,
        &mut engine,
    )
    .await
    .unwrap();
    assert_eq!(
        hydrated.open_alerts, 2,
        "both buckets may still receive findings"
    );

    let replayed: tokentrail::model::TokenUse = serde_json::from_value(serde_json::json!({
        "event_time_ms": t + 500, "actor_id": 7, "actor_name": "Ada", "actor_username": "ada",
        "actor_kind": "human", "source_project_id": 1, "source_project_path": "g/a",
        "target_project_id": 2, "target_project_path": "g/b", "action": "artifact.read",
        "job_id": 5, "pipeline_id": 6, "git_ref": "main", "runner_id": 1,
        "token_type": "ci_job_token", "ip_address": "10.0.0.1", "same_project": false,
        "allowlisted": false, "correlation": "auth+resource", "gap_ms": 4
    }))
    .unwrap();
    let emitted = engine.on_records(&[replayed]);
    let row = emitted
        .iter()
        .find(|e| e.alert.rule == "not_allowlisted")
        .expect("a not_allowlisted row");
    assert_eq!(row.alert.alert_id, slow);
    assert!(!row.new, "no second page for a stored alert");
    assert_eq!(row.alert.count, 4, "counted on top of the stored 3");
}

/// A minimal webhook receiver: answers 500 to the first request, 200 afterwards, and keeps
/// (alert id, body, signature, status answered) of every request.
type Received = Arc<Mutex<Vec<(String, Vec<u8>, String, u16)>>>;

async fn receiver() -> (String, Received) {
    use axum::http::{HeaderMap, StatusCode};
    let log: Received = Arc::default();
    let state = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = state.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let mut log = log.lock().unwrap();
                let status = if log.is_empty() { 500 } else { 200 };
                log.push((
                    header("x-tokentrail-alert-id"),
                    body.to_vec(),
                    header("x-tokentrail-signature"),
                    status,
                ));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_and_retried_after_a_500() {
    let svc = services();
    let name = unique("it_alerts_hook");
    let mut s = alert_settings(&svc, &name);
    let (url, log) = receiver().await;
    const SECRET: &str = "test-webhook-secret";
    s.alerting.outputs.webhook.url = url;
    s.alerting.outputs.webhook.secret = Secret::new(SECRET);
    s.alerting.outputs.webhook.initial_backoff_ms = 50;
    s.validate().unwrap();
    let client = setup(&svc, &s).await;
    let cfg = SimConfig {
        jobs: 120,
        ..anomalous()
    };
    let (_, truth) = publish_sim(&s, &cfg).await;
    ingest_all(&s, &client, truth.distinct_audit_events).await;

    let ids: BTreeSet<String> = stored_alerts(&client)
        .await
        .into_iter()
        .map(|a| a.alert_id)
        .collect();
    assert!(!ids.is_empty());
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0].3, 500, "the first delivery was refused");
    assert_eq!(log[1].0, log[0].0, "and retried with the same alert");
    assert_eq!(log[1].3, 200);
    let mut delivered = BTreeSet::new();
    for (id, body, sig, status) in &log {
        assert_eq!(
            sig,
            &tokentrail::alert::output::signature(SECRET.as_bytes(), body),
            "HMAC verifies"
        );
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(json["text"].as_str().unwrap().contains(id.as_str()));
        assert_eq!(json["alert"]["alert_id"], id.as_str());
        if *status == 200 {
            delivered.insert(id.clone());
        }
    }
    assert_eq!(delivered, ids, "every alert paged once it was accepted");
}

/// Cumulative bucket counts (upper bound, count) and the sample sum of a histogram.
fn snapshot(h: &prometheus::Histogram) -> (Vec<(f64, u64)>, f64) {
    use prometheus::core::Collector;
    let mf = h.collect();
    let hist = mf[0].get_metric()[0].get_histogram();
    let buckets = hist
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    (buckets, hist.get_sample_sum())
}

/// Count, mean and p50/p99 upper bounds of what a histogram observed between two snapshots.
fn summary_between(
    before: &(Vec<(f64, u64)>, f64),
    after: &(Vec<(f64, u64)>, f64),
) -> (u64, f64, f64, f64) {
    let counts: Vec<(f64, u64)> = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| (a.0, a.1 - b.1))
        .collect();
    let total = counts.last().map_or(0, |c| c.1);
    let q = |q: f64| {
        counts
            .iter()
            .find(|(_, c)| *c as f64 >= q * total as f64)
            .map_or(f64::INFINITY, |(bound, _)| *bound)
    };
    let mean = (after.1 - before.1) / total.max(1) as f64;
    (total, mean, q(0.5), q(0.99))
}

/// The q-quantile interpolated linearly inside its bucket, as Prometheus'
/// `histogram_quantile` does: an estimate, where the bucket bound is a guarantee.
fn interpolated(before: &(Vec<(f64, u64)>, f64), after: &(Vec<(f64, u64)>, f64), q: f64) -> f64 {
    let counts: Vec<(f64, u64)> = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| (a.0, a.1 - b.1))
        .collect();
    let rank = q * counts.last().map_or(0, |c| c.1) as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for (bound, cumulative) in counts {
        if cumulative as f64 >= rank {
            let inside = (cumulative - below).max(1) as f64;
            return lower + (bound - lower) * (rank - below as f64) / inside;
        }
        (lower, below) = (bound, cumulative);
    }
    f64::INFINITY
}

#[test]
fn quantiles_are_interpolated_inside_their_bucket() {
    let before = (vec![(1.0, 0), (2.0, 0), (5.0, 0)], 0.0);
    let after = (vec![(1.0, 0), (2.0, 50), (5.0, 100)], 0.0);
    assert_eq!(interpolated(&before, &after, 0.5), 2.0);
    assert!((interpolated(&before, &after, 0.99) - 4.94).abs() < 1e-9);
    assert_eq!(summary_between(&before, &after).3, 5.0, "the bound");
}

/// The alert-latency measurement (not a pass/fail test; run it explicitly, see
/// `benches/alert_latency.sh`). Simulated traffic whose event clock tracks the wall clock is
/// published at `TT_BENCH_RATE` messages/s (default 5000) while the pipeline runs; the
/// `alert_latency_seconds` histogram (event time → all outputs acknowledged) gives the p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run benches/alert_latency.sh"]
async fn alert_latency_at_5k_events_per_second() {
    let rate: u64 = std::env::var("TT_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let seconds: u64 = std::env::var("TT_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let svc = services();
    let name = unique("it_alerts_latency");
    let s = alert_settings(&svc, &name);
    // The shipped correlation and batch settings: a matched record is decided about
    // `lateness` after its resource event, and alerts are paged without waiting for their batch.
    s.validate().unwrap();
    let client = setup(&svc, &s).await;

    // The simulator's clock must track the wall clock, or "event time → output" means
    // nothing: messages are published when the wall clock reaches their delivery timestamp.
    // Calibration: at concurrency 40 the steady rate is `tail_rate`, and a job lasts
    // `job_span` s on average; concurrency scales the rate. Jobs are enough for a ramp-up of
    // one job span, `seconds` of steady traffic, and the wind-down; only the steady part is
    // measured (histogram snapshots at its start and end).
    let probe = |concurrency: usize, jobs: usize| SimConfig {
        jobs,
        concurrency,
        anomaly_share: 0.02,
        bad_share: 0.0,
        start_ms: 0,
        ..SimConfig::default()
    };
    let (msgs, _) = tokentrail::simulate::generate(&probe(40, 2_000));
    let per_job = msgs.len() as f64 / 2_000.0;
    let tail = &msgs[msgs.len() / 2..];
    let tail_rate = tail.len() as f64
        / ((tail[tail.len() - 1].timestamp_ms - tail[0].timestamp_ms) as f64 / 1000.0);
    let job_span = 40.0 * per_job / tail_rate;
    // The rate is not linear in concurrency (the first estimate gave ~14 % less): count the
    // messages the measured window of the real configuration holds (the simulator is
    // deterministic, so this is the run to be published), and scale once.
    let jobs_for =
        |concurrency: usize| (concurrency as f64 * (seconds as f64 + job_span) / job_span) as usize;
    let window_rate = |concurrency: usize| {
        let from = (job_span * 1000.0) as i64;
        let to = from + seconds as i64 * 1000;
        Simulator::new(&probe(concurrency, jobs_for(concurrency)))
            .filter(|m| (from..to).contains(&m.timestamp_ms))
            .count() as f64
            / seconds as f64
    };
    let first = (40.0 * rate as f64 / tail_rate).ceil() as usize;
    let steady = window_rate(first);
    let concurrency = (first as f64 * rate as f64 / steady).ceil() as usize;
    let jobs = jobs_for(concurrency);
    let start_ms = chrono::Utc::now().timestamp_millis() + 3_000;
    let cfg = SimConfig {
        start_ms,
        ..probe(concurrency, jobs)
    };
    let steady_from = start_ms + (job_span * 1000.0) as i64;
    let steady_to = steady_from + seconds as i64 * 1000;
    eprintln!(
        "calibration: {tail_rate:.1} msgs/s at concurrency 40, job span {job_span:.0} s, \
         {steady:.0} msgs/s steady at the first estimate; using concurrency {concurrency}, \
         {jobs} jobs; measuring the {seconds} s after a {job_span:.0} s ramp-up"
    );

    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let run = {
        let (s, c, m) = (s.clone(), cancel.clone(), metrics.clone());
        tokio::spawn(async move { app::run(&s, m, Health::default(), c).await })
    };
    let snap_all = |m: &Metrics| {
        let raised: Vec<_> = tokentrail::alert::rule_id::RuleId::ALL
            .iter()
            .map(|r| snapshot(&m.alert_raise_latency.with_label_values(&[r.as_str()])))
            .collect();
        (snapshot(&m.alert_latency), raised)
    };
    let (mut at_start, mut at_end) = (None, None);
    let mut steady_sent = 0u64;
    let mut sim = Simulator::new(&cfg);
    let paced = sim.by_ref().inspect(|m| {
        let wait = m.timestamp_ms - chrono::Utc::now().timestamp_millis();
        if wait > 0 {
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(wait as u64)));
        }
        if m.timestamp_ms >= steady_from && at_start.is_none() {
            at_start = Some(snap_all(&metrics));
        }
        if m.timestamp_ms >= steady_to && at_end.is_none() {
            at_end = Some(snap_all(&metrics));
        }
        if (steady_from..steady_to).contains(&m.timestamp_ms) {
            steady_sent += 1;
        }
    });
    let topics = Topics::from_settings(&s.kafka).unwrap();
    let producer = tokentrail::kafka::producer::producer(&s.kafka).unwrap();
    let started = std::time::Instant::now();
    let sent = publish::publish(&producer, &topics, paced, 0, |_| {})
        .await
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let truth = sim.into_truth();
    eventually(
        Duration::from_secs(180),
        "all audit events stored",
        || async {
            let n = count(&client, "SELECT count() FROM audit_events_dedup").await;
            (n >= truth.distinct_audit_events).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let start = at_start.expect("the run reached its steady part");
    let end = at_end.unwrap_or_else(|| snap_all(&metrics));
    let (n, mean, p50, p99) = summary_between(&start.0, &end.0);
    eprintln!(
        "published {sent} messages in {took:.1} s ({:.0}/s overall, {:.0}/s in the measured \
         {seconds} s); alert rows {n}; event → paged mean {mean:.2} s, p50 <= {p50} s, \
         p99 <= {p99} s (interpolated p99 ≈ {:.2} s)",
        sent as f64 / took,
        steady_sent as f64 / seconds as f64,
        interpolated(&start.0, &end.0, 0.99),
    );
    for (rule, (before, after)) in tokentrail::alert::rule_id::RuleId::ALL
        .iter()
        .zip(start.1.iter().zip(&end.1))
    {
        let (k, mean, p50, p99) = summary_between(before, after);
        if k > 0 {
            eprintln!(
                "  {:<22} {k:>6} rows; event → raised mean {mean:.2} s, p50 <= {p50} s, \
                 p99 <= {p99} s",
                rule.as_str(),
            );
        }
    }
    assert!(n > 0, "the run raised alerts");
}
