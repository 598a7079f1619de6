//! The delivery contract under faults, against the real Kafka and ClickHouse: every input
//! offset is stored or dead-lettered before it is committed, a failed dead-letter write or a
//! tripped ratio guard commits nothing past it, and a Kafka outage is waited out.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::Offset;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokentrail::config::Settings;
use tokentrail::ingest::app::{self, RunSummary};
use tokentrail::ingest::error::IngestError;
use tokentrail::telemetry::{metrics::Metrics, server::Health};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::*;
use crate::kafka_cluster::ScratchKafkaCluster;

/// Room for a 25 MiB message (`normalize.max_message_bytes`) plus record overhead.
const LARGE_TOPIC_BYTES: &str = "27262976";

/// An in-process `tokentrail ingest` with its health, stopped by `cancel`.
struct Running {
    cancel: CancellationToken,
    health: Health,
    handle: JoinHandle<Result<RunSummary, IngestError>>,
}

fn start(s: &Settings) -> Running {
    let (cancel, health) = (CancellationToken::new(), Health::default());
    let (settings, c, h) = (s.clone(), cancel.clone(), health.clone());
    let handle = tokio::spawn(async move { app::run(&settings, Metrics::new(), h, c).await });
    Running {
        cancel,
        health,
        handle,
    }
}

impl Running {
    /// Waits for the run to end by itself (a fatal error is expected).
    async fn ended(self) -> (Result<RunSummary, IngestError>, Health) {
        let result = tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("ingest stops by itself")
            .expect("ingest task");
        (result, self.health)
    }

    async fn stop(self) -> RunSummary {
        self.cancel.cancel();
        self.handle
            .await
            .expect("ingest task")
            .expect("a graceful stop")
    }
}

fn auth_event(i: usize) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{i:012}"),
        "author_id": 4821,
        "author_name": "Ada",
        "entity_id": 1234,
        "entity_type": "Project",
        "entity_path": "platform/api",
        "target_id": 900_000 + i,
        "target_type": "Ci::Build",
        "target_details": "build",
        "event_type": "user_authenticated_using_job_token",
        "created_at": format!("2025-06-03T10:{:02}:{:02}.000Z", i / 60 % 60, i % 60),
        "details": {"ip_address": "10.0.0.7", "author_class": "User"}
    })
}

fn good(i: usize) -> Outgoing {
    Outgoing::new(serde_json::to_vec(&auth_event(i)).unwrap())
        .header(
            "X-Gitlab-Audit-Event-Type",
            "user_authenticated_using_job_token",
        )
        .partition(0)
}

fn invalid_json(len: usize) -> Vec<u8> {
    let mut body = b"{\"event_type\": ".to_vec();
    body.resize(len, b'x');
    body
}

fn large_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "30000000")
        .create()
        .unwrap()
}

async fn setup(prefix: &str, dlq_config: &[(&str, &str)]) -> (Settings, clickhouse::Client) {
    let svc = services();
    let name = unique(prefix);
    let s = settings(&svc, &name);
    create_topic_with(
        &svc.brokers,
        &s.kafka.audit_topics[0],
        1,
        &[("max.message.bytes", LARGE_TOPIC_BYTES)],
    )
    .await;
    create_topic(&svc.brokers, &s.kafka.webhook_topics[0], 1).await;
    create_topic_with(&svc.brokers, &s.kafka.dead_letter_topic, 1, dlq_config).await;
    let client = clickhouse(&svc.clickhouse_url, &name);
    tokentrail::store::migrate::migrate(&client, &name, 0, None)
        .await
        .unwrap();
    (s, client)
}

async fn committed_offset(s: &Settings) -> Option<i64> {
    let (brokers, group, topic) = (
        s.kafka.brokers.clone(),
        s.kafka.group_id.clone(),
        s.kafka.audit_topics[0].clone(),
    );
    let map = tokio::task::spawn_blocking(move || committed(&brokers, &group, &topic, 1))
        .await
        .unwrap();
    match map.get(&0) {
        Some(Offset::Offset(n)) => Some(*n),
        _ => None,
    }
}

/// The input offsets whose audit events are stored (one event per message in these tests).
async fn stored_offsets(client: &clickhouse::Client) -> Vec<i64> {
    client
        .query("SELECT kafka_offset FROM audit_events_dedup ORDER BY kafka_offset")
        .fetch_all()
        .await
        .unwrap()
}

/// Item 1 of the delivery holes: a poison message larger than the dead-letter topic takes
/// (Kafka's 1 MiB default) used to stop ingest with its offset committed, so it was in
/// neither ClickHouse nor the dead-letter topic. Its copy is now cut to
/// `dead_letter.max_payload_bytes`, with the original length and SHA-256 in headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_larger_than_the_dead_letter_topic_is_dead_lettered_not_lost() {
    let (s, client) = setup("it_dlq_large", &[]).await;
    let poison = invalid_json(25 * 1024 * 1024 - 1);
    let messages = vec![
        good(0),
        Outgoing::new(poison.clone()).partition(0),
        good(2),
        good(3),
        good(4),
    ];
    produce_all(
        &large_producer(&s.kafka.brokers),
        &s.kafka.audit_topics[0],
        &messages,
    )
    .await;

    let run = start(&s);
    let topics = [
        (s.kafka.audit_topics[0].clone(), 1),
        (s.kafka.webhook_topics[0].clone(), 1),
    ];
    eventually(
        Duration::from_secs(60),
        "every offset committed",
        || async { (committed_to_the_end(&s, &topics).await).then_some(()) },
    )
    .await;
    run.stop().await;

    assert_eq!(stored_offsets(&client).await, vec![0, 2, 3, 4]);
    let letters = read_dead_letters(&s.kafka.brokers, &s.kafka.dead_letter_topic).await;
    assert_eq!(letters.len(), 1, "one copy of offset 1");
    let copy = &letters[0];
    assert_eq!(copy.header("tokentrail-original-offset"), "1");
    assert_eq!(copy.header("tokentrail-truncated"), "true");
    assert_eq!(
        copy.header("tokentrail-original-length"),
        poison.len().to_string()
    );
    assert_eq!(
        copy.header("tokentrail-original-sha256"),
        hex::encode(Sha256::digest(&poison))
    );
    assert_eq!(copy.payload_len, s.dead_letter.max_payload_bytes);
}

/// When Kafka refuses the dead-letter copy for good, ingest stops, and the message's offset
/// is never committed: neither by the loop nor on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_write_commits_nothing_past_the_message() {
    // A dead-letter topic that takes nothing larger than 4 KiB, and copies kept whole.
    let (mut s, client) = setup("it_dlq_refused", &[("max.message.bytes", "4096")]).await;
    s.dead_letter.max_payload_bytes = 1024 * 1024;
    let messages = vec![
        good(0),
        Outgoing::new(invalid_json(64 * 1024)).partition(0),
        good(2),
        good(3),
    ];
    produce_all(
        &producer(&s.kafka.brokers),
        &s.kafka.audit_topics[0],
        &messages,
    )
    .await;

    let (result, health) = start(&s).ended().await;
    let error = result.expect_err("a refused dead-letter write is fatal");
    let committed = committed_offset(&s).await;
    assert!(
        committed.is_none_or(|next| next <= 1),
        "offset 1 is neither stored nor dead-lettered, yet the commit is at {committed:?}"
    );
    assert!(
        stored_offsets(&client).await.iter().all(|o| *o < 1),
        "nothing after the failed message"
    );
    assert!(
        read_dead_letters(&s.kafka.brokers, &s.kafka.dead_letter_topic)
            .await
            .is_empty()
    );
    assert!(error.to_string().contains("dead-letter"), "{error}");
    assert!(!health.is_ready());
    assert!(
        health.reason().contains("dead-letter"),
        "{}",
        health.reason()
    );
}

/// Item 2: the ratio guard used to commit the window it judged, so every restart advanced
/// one window past messages it had refused to accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripped_ratio_guard_commits_nothing_and_a_restart_does_not_advance() {
    let (mut s, _client) = setup("it_guard", &[]).await;
    s.dead_letter.window_messages = 10;
    s.dead_letter.max_ratio = 0.5;
    // No batch is sealed by time while the window fills.
    s.batch.max_wait_ms = 60_000;
    let mut messages: Vec<Outgoing> = (0..5).map(good).collect();
    messages.extend((0..20).map(|_| Outgoing::new("not json").partition(0)));
    produce_all(
        &producer(&s.kafka.brokers),
        &s.kafka.audit_topics[0],
        &messages,
    )
    .await;

    let mut commits = Vec::new();
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let (result, health) = start(&s).ended().await;
        let error = result.expect_err("the guard stops ingest");
        assert!(error.to_string().contains("ratio guard"), "{error}");
        commits.push(committed_offset(&s).await);
        reasons.push(health.reason());
    }
    assert_eq!(
        commits,
        vec![None, None],
        "nothing committed past the judged window, on the first run or after a restart"
    );
    for reason in reasons {
        assert!(reason.contains("ratio guard"), "/readyz says why: {reason}");
    }
}

/// Item 3: a broker that goes away mid-run is waited out (not-ready meanwhile, with the
/// reason), and what arrives after it is back is stored without restarting ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_is_waited_out_without_a_restart() {
    let mut broker = ScratchKafkaCluster::start_nodes(1).await;
    let svc = services();
    let name = unique("it_kafka_outage");
    let mut s = settings(&svc, &name);
    s.kafka.brokers = broker.brokers();
    for (topic, n) in [
        (&s.kafka.audit_topics[0], 1),
        (&s.kafka.webhook_topics[0], 1),
        (&s.kafka.dead_letter_topic, 1),
    ] {
        create_topic(&s.kafka.brokers, topic, n).await;
    }
    let client = clickhouse(&svc.clickhouse_url, &name);
    tokentrail::store::migrate::migrate(&client, &name, 0, None)
        .await
        .unwrap();
    let first: Vec<Outgoing> = (0..10).map(good).collect();
    produce_all(
        &producer(&s.kafka.brokers),
        &s.kafka.audit_topics[0],
        &first,
    )
    .await;

    let run = start(&s);
    eventually(Duration::from_secs(60), "first rows stored", || async {
        (stored_offsets(&client).await.len() == 10).then_some(())
    })
    .await;
    broker.kill(1);
    eventually(
        Duration::from_secs(60),
        "not ready while Kafka is down",
        || async { (!run.health.is_ready()).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!run.handle.is_finished(), "ingest rides out the outage");
    assert!(
        run.health.reason().contains("Kafka unreachable"),
        "{}",
        run.health.reason()
    );

    broker.restart(1).await;
    let second: Vec<Outgoing> = (10..20).map(good).collect();
    produce_all(
        &producer(&s.kafka.brokers),
        &s.kafka.audit_topics[0],
        &second,
    )
    .await;
    eventually(
        Duration::from_secs(120),
        "rows after the outage",
        || async { (stored_offsets(&client).await.len() == 20).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(60), "ready again", || async {
        run.health.is_ready().then_some(())
    })
    .await;
    let summary = run.stop().await;
    // A commit in flight when the broker died is made again after a re-read (at least once);
    // the stored rows are exactly the input's.
    assert!(summary.messages >= 20);
    assert_eq!(stored_offsets(&client).await, (0..20).collect::<Vec<i64>>());
}

/// Item 3, at start-up: a broker address nobody answers on is an outage too, not an exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_address_keeps_ingest_up_and_not_ready() {
    let svc = services();
    let name = unique("it_kafka_absent");
    let mut s = settings(&svc, &name);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    s.kafka.brokers = closed.local_addr().unwrap().to_string();
    drop(closed);
    let client = clickhouse(&svc.clickhouse_url, &name);
    tokentrail::store::migrate::migrate(&client, &name, 0, None)
        .await
        .unwrap();
    let run = start(&s);
    eventually(
        Duration::from_secs(60),
        "the Kafka fault reported",
        || async {
            run.health
                .reason()
                .contains("Kafka unreachable")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!run.handle.is_finished(), "ingest keeps trying");
    assert!(!run.health.is_ready());
    run.stop().await;
}
