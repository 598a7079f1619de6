//! `tokentrail ingest` end to end on the real Kafka and ClickHouse: dedup of re-dispatches
//! and webhook retries, batched bodies, the dead-letter topic, commit-after-write, restart.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use serde_json::{Value, json};
use tokentrail::config::Settings;
use tokentrail::ingest::app;
use tokentrail::telemetry::{metrics::Metrics, server::Health};
use tokio_util::sync::CancellationToken;

use crate::common::*;

fn audit(body: &Value) -> Outgoing {
    let key = body["author_id"].to_string();
    let mut m = Outgoing::new(serde_json::to_vec(body).unwrap())
        .key(&key)
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(t) = body["event_type"].as_str() {
        m = m.header("X-Gitlab-Audit-Event-Type", t);
    }
    m
}

fn webhook(body: &Value, event: &str, idempotency_key: Option<&str>, uuid: &str) -> Outgoing {
    let mut m = Outgoing::new(serde_json::to_vec(body).unwrap())
        .header("X-Gitlab-Event", event)
        .header("X-Gitlab-Webhook-UUID", uuid);
    if let Some(k) = idempotency_key {
        m = m.header("Idempotency-Key", k);
    }
    m
}

/// The traffic of this test and what must come out of it.
struct Traffic {
    audit: Vec<Outgoing>,
    webhooks: Vec<Outgoing>,
    distinct_audit: u64,
    distinct_webhooks: u64,
    dead_letters: usize,
}

fn traffic() -> Traffic {
    let auth = gitlab_fixture("audit-stream/user_authenticated_using_job_token.json");
    let git = gitlab_fixture("audit-stream/repository_git_operation.json");
    let allow = gitlab_fixture("audit-stream/secure_ci_job_token_project_added.json");
    let job = gitlab_fixture("webhooks/job_hook.json");
    let pipeline = gitlab_fixture("webhooks/pipeline_hook.json");

    // GitLab re-dispatches a stream-only event with a fresh random id.
    let mut auth_redispatch = auth.clone();
    auth_redispatch["id"] = json!("11111111-2222-4333-8444-555555555555");
    // A second job's events, sent in GitLab's batched mode (an array, no type header).
    let mut auth2 = auth.clone();
    auth2["id"] = json!("aaaaaaaa-2222-4333-8444-555555555555");
    auth2["created_at"] = json!("2025-06-03T10:20:00.000Z");
    auth2["target_id"] = json!(987655);
    let mut git2 = git.clone();
    git2["created_at"] = json!("2025-06-03T10:20:01.000Z");
    let batched = Outgoing::new(serde_json::to_vec(&json!([auth2, git2])).unwrap()).key("4821");
    // A batched array with one unusable element: the good one is stored, the bad one
    // dead-lettered with its index.
    let mut git3 = git.clone();
    git3["created_at"] = json!("2025-06-03T10:30:00.000Z");
    let half_bad =
        Outgoing::new(serde_json::to_vec(&json!([git3, {"event_type": "x"}])).unwrap()).key("4821");
    // An event whose type only the header names: read from the Kafka record's headers.
    let mut git4 = git.clone();
    git4["created_at"] = json!("2025-06-03T10:40:00.000Z");
    git4.as_object_mut().unwrap().remove("event_type");
    git4["details"]
        .as_object_mut()
        .unwrap()
        .remove("event_name");
    let typed_by_header = Outgoing::new(serde_json::to_vec(&git4).unwrap())
        .key("4821")
        .header("X-Gitlab-Audit-Event-Type", "repository_git_operation");

    let audit = vec![
        audit(&auth),
        audit(&git),
        audit(&auth_redispatch),
        audit(&allow),
        audit(&allow), // saved event delivered twice: same database id
        batched,
        half_bad,
        typed_by_header,
        Outgoing::new("this is not json").key("1"),
        Outgoing::new("42").key("1"),
        Outgoing::new(r#"{"event_type":"user_authenticated_using_job_token","author_id":1}"#)
            .key("1"),
    ];
    let mut pipeline_retry = pipeline.clone();
    pipeline_retry["object_attributes"]["status"] = json!("running");
    let webhooks = vec![
        webhook(&job, "Job Hook", Some("idem-1"), "uuid-a"),
        webhook(&job, "Job Hook", Some("idem-1"), "uuid-b"), // retry: same Idempotency-Key
        webhook(&pipeline, "Pipeline Hook", None, "uuid-c"),
        webhook(&pipeline_retry, "Pipeline Hook", None, "uuid-d"), // identical body: content key
        Outgoing::new("{broken").header("X-Gitlab-Event", "Job Hook"),
    ];
    Traffic {
        audit,
        webhooks,
        // auth, git, allow, auth2, git2, git3, git4
        distinct_audit: 7,
        distinct_webhooks: 2,
        // half_bad's element, not json, 42, missing created_at, broken webhook
        dead_letters: 5,
    }
}

async fn setup(name: &str) -> (Services, Settings, clickhouse::Client) {
    let svc = services();
    let s = settings(&svc, name);
    create_topic(&svc.brokers, &s.kafka.audit_topics[0], 3).await;
    create_topic(&svc.brokers, &s.kafka.webhook_topics[0], 2).await;
    create_topic(&svc.brokers, &s.kafka.dead_letter_topic, 1).await;
    let client = clickhouse(&svc.clickhouse_url, name);
    tokentrail::store::migrate::migrate(&client, name, 0, None)
        .await
        .unwrap();
    (svc, s, client)
}

fn start(s: &Settings) -> (CancellationToken, tokio::task::JoinHandle<app::RunSummary>) {
    let cancel = CancellationToken::new();
    let settings = s.clone();
    let c = cancel.clone();
    let handle = tokio::spawn(async move {
        app::run(&settings, Metrics::new(), Health::default(), c)
            .await
            .expect("ingest run")
    });
    (cancel, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_dedups_dead_letters_and_commits_after_write() {
    let name = unique("it_ingest");
    let (svc, s, client) = setup(&name).await;
    let t = traffic();
    let p = producer(&svc.brokers);
    produce_all(&p, &s.kafka.audit_topics[0], &t.audit).await;
    produce_all(&p, &s.kafka.webhook_topics[0], &t.webhooks).await;

    let (cancel, handle) = start(&s);
    let audit_sql = "SELECT count() FROM audit_events_dedup";
    eventually(
        Duration::from_secs(60),
        "all audit events stored",
        || async { (count(&client, audit_sql).await >= t.distinct_audit).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(60), "webhooks stored", || async {
        (count(&client, "SELECT count() FROM webhook_events_dedup").await >= t.distinct_webhooks)
            .then_some(())
    })
    .await;
    // Let the consumer reach the end, then stop it gracefully.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    let summary = handle.await.unwrap();
    assert_eq!(summary.messages as usize, t.audit.len() + t.webhooks.len());

    assert_eq!(count(&client, audit_sql).await, t.distinct_audit);
    // The headers were read from the records: git4's type, the job hook's key and event.
    assert_eq!(
        count(
            &client,
            "SELECT count() FROM audit_events_dedup WHERE event_type = 'repository_git_operation' \
             AND created_at_ms = 1748947200000"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &client,
            "SELECT count() FROM webhook_events_dedup WHERE dedup_key = 'idem:idem-1' \
             AND event_header = 'Job Hook'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&client, "SELECT count() FROM webhook_events_dedup").await,
        t.distinct_webhooks
    );
    assert_eq!(
        count(&client, "SELECT count() FROM allowlist_changes FINAL").await,
        1
    );
    assert_eq!(
        count(
            &client,
            "SELECT count() FROM jobs_latest WHERE job_id = 987654"
        )
        .await,
        1
    );

    // Every poison message is in the dead-letter topic, with its origin and reason.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka.brokers)
        .set("group.id", unique("it_dlq_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&s.kafka.dead_letter_topic]).unwrap();
    let mut kinds = Vec::new();
    for _ in 0..t.dead_letters {
        let m = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
            .await
            .expect("dead letter within 60 s")
            .unwrap();
        let headers = m.headers().expect("dead letters carry headers");
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .unwrap_or_else(|| panic!("header {name} missing"))
        };
        assert!(get("tokentrail-original-topic").starts_with(&name));
        get("tokentrail-original-offset").parse::<i64>().unwrap();
        assert!(!get("tokentrail-error-message").is_empty());
        get("tokentrail-first-seen");
        kinds.push(get("tokentrail-error-kind"));
    }
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "invalid_json",
            "invalid_json",
            "missing_field",
            "missing_field",
            "not_an_object"
        ]
    );

    // Offsets were committed up to the end of each partition.
    for (topic, parts) in [
        (&s.kafka.audit_topics[0], 3),
        (&s.kafka.webhook_topics[0], 2),
    ] {
        assert_eq!(
            committed(&s.kafka.brokers, &s.kafka.group_id, topic, parts),
            high_watermarks(&s.kafka.brokers, topic, parts),
            "{topic}"
        );
    }

    // A restart in the same group re-reads nothing and changes nothing.
    let (cancel, handle) = start(&s);
    tokio::time::sleep(Duration::from_secs(8)).await;
    cancel.cancel();
    let again = handle.await.unwrap();
    assert_eq!(
        again.messages, 0,
        "committed messages are not consumed again"
    );
    assert_eq!(count(&client, audit_sql).await, t.distinct_audit);
}

/// Runs ingest with `--exit-when-caught-up` and no signal: it must stop by itself.
async fn run_until_caught_up(s: &Settings) -> app::RunSummary {
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let run = async {
        app::IngestApp::build(s, metrics.clone(), Health::default(), &cancel)
            .await
            .expect("build")
            .exit_when_caught_up(true)
            .run_until_stopped(cancel.clone())
            .await
            .expect("ingest run")
    };
    let summary = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("ingest --exit-when-caught-up stops by itself");
    assert_eq!(metrics.caught_up.get(), 1, "the gauge shows it");
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_when_caught_up_stops_once_everything_is_stored_and_committed() {
    let name = unique("it_caught_up");
    let (svc, s, client) = setup(&name).await;
    let t = traffic();
    let p = producer(&svc.brokers);
    produce_all(&p, &s.kafka.audit_topics[0], &t.audit).await;
    produce_all(&p, &s.kafka.webhook_topics[0], &t.webhooks).await;

    let summary = run_until_caught_up(&s).await;

    assert_eq!(summary.messages as usize, t.audit.len() + t.webhooks.len());
    assert_eq!(
        count(&client, "SELECT count() FROM audit_events_dedup").await,
        t.distinct_audit
    );
    assert_eq!(
        count(&client, "SELECT count() FROM webhook_events_dedup").await,
        t.distinct_webhooks
    );
    let topics = [
        (s.kafka.audit_topics[0].clone(), 3),
        (s.kafka.webhook_topics[0].clone(), 2),
    ];
    assert!(committed_to_the_end(&s, &topics).await);

    // Nothing new: a second run is caught up at once and reads nothing.
    assert_eq!(run_until_caught_up(&s).await.messages, 0);
}
