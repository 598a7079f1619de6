//! `tokentrail collect` against the real Kafka: what GitLab's requests become in Kafka, what
//! is refused, and what happens while the broker is down (on a scratch broker of the test's
//! own, see `kafka_cluster.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message};
use tokentrail::collect::Collector;
use tokentrail::collect::auth::{SigningKey, sign};
use tokentrail::config::{AuditStreamDestination, Secret, Settings, WebhookDestination};
use tokentrail::kafka::dead_letter::headers as dlq;
use tokentrail::telemetry::metrics::Metrics;
use tokentrail::telemetry::server::Health;
use tokio_util::sync::CancellationToken;

use crate::common::*;
use crate::kafka_cluster::ScratchKafkaCluster;

const AUDIT_TOKEN: &str = "stream-token-Zq8";
const HOOK_TOKEN: &str = "hook-token-Pw3xY7kL";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const AUDIT_PATH: &str = "/gitlab/audit-events";
const HOOK_PATH: &str = "/gitlab/webhooks";

fn fixture(path: &str) -> Vec<u8> {
    let full = format!(
        "{}/tests/fixtures/gitlab/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

struct Topics {
    audit: String,
    hooks: String,
    dlq: String,
}

async fn topics(brokers: &str, partitions: i32) -> Topics {
    let name = unique("it_collect");
    let t = Topics {
        audit: format!("{name}_audit"),
        hooks: format!("{name}_hooks"),
        dlq: format!("{name}_dlq"),
    };
    for topic in [&t.audit, &t.hooks, &t.dlq] {
        create_topic(brokers, topic, partitions).await;
    }
    t
}

fn collect_settings(brokers: &str, t: &Topics) -> Settings {
    let mut s = Settings::default();
    s.kafka.brokers = brokers.to_string();
    s.kafka.dead_letter_topic = t.dlq.clone();
    s.telemetry.listen = String::new();
    s.collect.listen = "127.0.0.1:0".into();
    s.collect.audit_streams = vec![AuditStreamDestination {
        path: AUDIT_PATH.into(),
        token: Secret::new(AUDIT_TOKEN),
        topic: t.audit.clone(),
    }];
    s.collect.webhooks = vec![WebhookDestination {
        path: HOOK_PATH.into(),
        token: Secret::new(HOOK_TOKEN),
        signing_secret: Secret::new(SIGNING_SECRET),
        topic: t.hooks.clone(),
    }];
    s.validate().expect("test settings are valid");
    s
}

struct Running {
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

async fn start(settings: &Settings) -> Running {
    let metrics = Metrics::new();
    let health = Health::default();
    let collector = Collector::bind(settings, metrics.clone(), health.clone())
        .await
        .expect("collector binds");
    let addr = collector.local_addr();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let task = tokio::spawn(async move { collector.run(c).await.expect("collector runs") });
    Running {
        addr,
        metrics,
        health,
        cancel,
        task,
    }
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    request_over(stream, method, path, headers, body).await
}

/// One HTTP/1.1 request over an established connection (plain TCP or TLS).
async fn request_over<IO>(
    io: IO,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "collector.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    request(addr, "POST", path, headers, body).await
}

/// Reads `count` messages from `topic` (all partitions, from the start).
async fn read(brokers: &str, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("it_collect_reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while out.len() < count {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} messages in {topic}", out.len()))
            .expect("consume");
        out.push(msg.detach());
    }
    out
}

/// Messages in `topic`: the sum of high watermarks (no transactions, so no control records).
fn stored(brokers: &str, topic: &str) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

fn header<'a>(msg: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

fn header_names(msg: &OwnedMessage) -> Vec<String> {
    msg.headers()
        .map(|h| h.iter().map(|h| h.key.to_string()).collect())
        .unwrap_or_default()
}

fn metric_line(metrics: &Metrics, prefix: &str) -> Option<String> {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_event_with_the_right_token_is_in_kafka_with_its_headers() {
    let svc = services();
    let t = topics(&svc.brokers, 3).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let body = fixture("audit-stream/user_authenticated_using_job_token.json");
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[
            ("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN),
            (
                "X-Gitlab-Audit-Event-Type",
                "user_authenticated_using_job_token",
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("User-Agent", "GitLab/18.5.1"),
            ("X-Gitlab-Instance", "https://gitlab.example.com"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, r#"{"accepted":1}"#);

    let msgs = read(&svc.brokers, &t.audit, 1).await;
    let msg = &msgs[0];
    assert_eq!(
        msg.payload(),
        Some(body.trim_ascii()),
        "body forwarded byte for byte"
    );
    assert_eq!(msg.key(), Some(&b"4821"[..]), "keyed by author_id");
    assert_eq!(
        header(msg, "X-Gitlab-Audit-Event-Type"),
        Some("user_authenticated_using_job_token")
    );
    assert_eq!(
        header(msg, "Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(msg, "User-Agent"), Some("GitLab/18.5.1"));
    assert_eq!(
        header(msg, "X-Gitlab-Instance"),
        Some("https://gitlab.example.com")
    );
    let received_at = header(msg, "tokentrail-received-at").expect("received-at header");
    let parsed = chrono::DateTime::parse_from_rfc3339(received_at).expect("RFC 3339");
    assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 60);
    assert!(
        received_at.ends_with('Z') && received_at.len() == 24,
        "ms precision: {received_at}"
    );
    let names = header_names(msg);
    assert!(
        !names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("X-Gitlab-Event-Streaming-Token")),
        "the secret must not reach Kafka: {names:?}"
    );
    assert!(!format!("{msg:?}").contains(AUDIT_TOKEN));
    assert_eq!(stored(&svc.brokers, &t.audit), 1);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_token_is_401_and_nothing_reaches_kafka() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let body = fixture("audit-stream/user_authenticated_using_job_token.json");
    let wrong = [
        vec![("X-Gitlab-Event-Streaming-Token", "stream-token-Zq9")],
        vec![("X-Gitlab-Event-Streaming-Token", "")],
        vec![],
        // The webhook's token is not the stream's token.
        vec![("X-Gitlab-Token", AUDIT_TOKEN)],
    ];
    for headers in &wrong {
        let reply = post(collector.addr, AUDIT_PATH, headers, body.clone()).await;
        assert_eq!(reply.status, 401, "{headers:?}: {}", reply.body);
        assert!(
            !reply.body.contains("Zq"),
            "no hint about the token: {}",
            reply.body
        );
    }
    // Webhook route: the stream's token does not open it either.
    let reply = post(
        collector.addr,
        HOOK_PATH,
        &[("X-Gitlab-Token", AUDIT_TOKEN)],
        fixture("webhooks/job_hook.json"),
    )
    .await;
    assert_eq!(reply.status, 401);
    // A good request afterwards: if any refused one had been produced, it would be here too.
    let ok = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        body,
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        stored(&svc.brokers, &t.audit),
        1,
        "only the authenticated request"
    );
    assert_eq!(stored(&svc.brokers, &t.hooks), 0);
    assert_eq!(stored(&svc.brokers, &t.dlq), 0);
    let line = metric_line(
        &collector.metrics,
        &format!("tokentrail_collect_unauthorized_total{{route=\"{AUDIT_PATH}\"}}"),
    );
    assert_eq!(
        line.as_deref().and_then(|l| l.rsplit(' ').next()),
        Some("4")
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_array_becomes_one_message_per_element_keyed_by_author() {
    let svc = services();
    let t = topics(&svc.brokers, 4).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    // 12 events by 3 authors, no event-type header (batched mode omits it).
    let elements: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "author_id": 100 + i % 3,
                "event_type": "repository_git_operation",
                "created_at": "2025-06-03T10:15:42.123Z"
            })
        })
        .collect();
    let body = serde_json::to_vec(&elements).unwrap();
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, r#"{"accepted":12}"#);
    let msgs = read(&svc.brokers, &t.audit, 12).await;
    let mut partition_of_author = std::collections::HashMap::new();
    let mut ids = Vec::new();
    for msg in &msgs {
        let value: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
        let author = value["author_id"].to_string();
        assert_eq!(
            msg.key(),
            Some(author.as_bytes()),
            "each element keyed by its author"
        );
        let p = *partition_of_author
            .entry(author.clone())
            .or_insert(msg.partition());
        assert_eq!(p, msg.partition(), "author {author} spread over partitions");
        assert!(
            header(msg, "tokentrail-batch-element")
                .unwrap()
                .ends_with("/12")
        );
        ids.push(value["id"].as_i64().unwrap());
    }
    ids.sort();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
    assert_eq!(stored(&svc.brokers, &t.audit), 12);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_is_400_with_a_reason_and_a_dead_letter_copy() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let body = b"{\"author_id\": 4821, \"event_type\": ".to_vec();
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[
            ("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN),
            ("X-Gitlab-Audit-Event-Type", "repository_git_operation"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 400);
    let answer: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["error"], "invalid_json");
    assert!(
        answer["reason"].as_str().unwrap().contains("EOF"),
        "{answer}"
    );

    let dead = read(&svc.brokers, &t.dlq, 1).await;
    let msg = &dead[0];
    assert_eq!(msg.payload(), Some(&body[..]));
    assert_eq!(header(msg, dlq::ERROR_KIND), Some("invalid_json"));
    assert_eq!(header(msg, dlq::ORIGINAL_TOPIC), Some(t.audit.as_str()));
    assert_eq!(header(msg, dlq::ORIGINAL_OFFSET), Some("-1"));
    assert!(
        header(msg, dlq::ERROR_MESSAGE)
            .unwrap()
            .contains("invalid JSON")
    );
    assert!(header(msg, dlq::FIRST_SEEN).is_some());
    assert_eq!(
        header(msg, "X-Gitlab-Audit-Event-Type"),
        Some("repository_git_operation")
    );
    assert!(
        !format!("{msg:?}").contains(AUDIT_TOKEN),
        "no secret in the dead letter"
    );
    assert_eq!(stored(&svc.brokers, &t.audit), 0);
    collector.stop().await;
}

/// A poison body larger than Kafka takes (1 MiB default `max.message.bytes`) but within
/// `max_body_bytes`: its dead-letter copy is cut to `dead_letter.max_payload_bytes`, so the
/// answer is 400, not a 503 that would make GitLab resend it forever.
#[tokio::test(flavor = "multi_thread")]
async fn poison_body_too_large_for_its_dead_letter_copy_is_400_not_503() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let settings = collect_settings(&svc.brokers, &t);
    let collector = start(&settings).await;
    let mut body = format!("{{\"author_id\": 4821, \"pad\": \"{}", "x".repeat(2 << 20));
    body.push_str("\", oops}");
    let body = body.into_bytes();
    assert!(body.len() < settings.collect.max_body_bytes);
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.headers.get("retry-after").is_none());

    let dead = read(&svc.brokers, &t.dlq, 1).await;
    let msg = &dead[0];
    let max = settings.dead_letter.max_payload_bytes;
    assert_eq!(msg.payload(), Some(&body[..max]));
    assert_eq!(header(msg, dlq::TRUNCATED), Some("true"));
    assert_eq!(header(msg, dlq::ERROR_KIND), Some("invalid_json"));
    let length = body.len().to_string();
    assert_eq!(header(msg, dlq::ORIGINAL_LENGTH), Some(length.as_str()));
    assert_eq!(stored(&svc.brokers, &t.audit), 0);
    collector.stop().await;
}

/// One duplicate-key rule: an object body with a repeated key is refused with the
/// normalizer's reason and dead-lettered, never forwarded for last-value-wins.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_is_400_with_the_normalizers_reason_and_a_dead_letter_copy() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let body =
        br#"{"author_id": 4821, "details": {"entity_path": "a/b", "entity_path": "=HYPERLINK(\"x\")"}}"#
            .to_vec();
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let answer: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["error"], "duplicate_key");
    assert_eq!(answer["reason"], "duplicate key \"entity_path\" in details");
    let dead = read(&svc.brokers, &t.dlq, 1).await;
    assert_eq!(dead[0].payload(), Some(&body[..]));
    assert_eq!(header(&dead[0], dlq::ERROR_KIND), Some("duplicate_key"));
    assert_eq!(stored(&svc.brokers, &t.audit), 0);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_need_the_token_and_a_valid_recent_signature() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let body = fixture("webhooks/job_hook.json");
    let key = SigningKey::from_secret(&Secret::new(SIGNING_SECRET));
    let now = chrono::Utc::now().timestamp();
    let good = sign(&key, "idem-42", now, &body);
    let ts = now.to_string();
    let send = |sig: String, ts: String, token: &'static str, body: Vec<u8>| {
        let addr = collector.addr;
        async move {
            post(
                addr,
                HOOK_PATH,
                &[
                    ("X-Gitlab-Token", token),
                    ("X-Gitlab-Event", "Job Hook"),
                    ("Idempotency-Key", "idem-42"),
                    ("webhook-id", "idem-42"),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &sig),
                    ("Content-Type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    // Tampered body, wrong key, stale timestamp, right signature but wrong token: all 401.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let wrong_key = sign(
        &SigningKey::from_secret(&Secret::new("other")),
        "idem-42",
        now,
        &body,
    );
    let stale_ts = (now - 3600).to_string();
    let stale = sign(&key, "idem-42", now - 3600, &body);
    for (sig, ts, token, body) in [
        (good.clone(), ts.clone(), HOOK_TOKEN, tampered),
        (wrong_key, ts.clone(), HOOK_TOKEN, body.clone()),
        (stale, stale_ts, HOOK_TOKEN, body.clone()),
        (good.clone(), ts.clone(), "nope", body.clone()),
    ] {
        assert_eq!(send(sig, ts, token, body).await.status, 401);
    }
    let reply = send(good, ts, HOOK_TOKEN, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let msgs = read(&svc.brokers, &t.hooks, 1).await;
    let msg = &msgs[0];
    assert_eq!(msg.payload(), Some(body.trim_ascii()));
    assert_eq!(
        msg.key(),
        Some(&b"4821"[..]),
        "keyed by the webhook's user id"
    );
    assert_eq!(header(msg, "X-Gitlab-Event"), Some("Job Hook"));
    assert_eq!(header(msg, "Idempotency-Key"), Some("idem-42"));
    assert_eq!(header(msg, "webhook-id"), Some("idem-42"));
    assert!(header(msg, "webhook-signature").is_some());
    assert!(
        header(msg, "X-Gitlab-Token").is_none(),
        "{:?}",
        header_names(msg)
    );
    assert_eq!(
        stored(&svc.brokers, &t.hooks),
        1,
        "the refused ones were not produced"
    );
    let line = metric_line(
        &collector.metrics,
        &format!("tokentrail_collect_unauthorized_total{{route=\"{HOOK_PATH}\"}}"),
    );
    assert_eq!(
        line.as_deref().and_then(|l| l.rsplit(' ').next()),
        Some("4")
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_is_413_and_not_produced() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.max_body_bytes = 2048;
    let collector = start(&settings).await;
    let big = format!("{{\"author_id\":1,\"pad\":\"{}\"}}", "x".repeat(4096)).into_bytes();
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        big,
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.body.contains("max_body_bytes"), "{}", reply.body);
    // Just under the limit is fine.
    let fits = format!("{{\"author_id\":1,\"pad\":\"{}\"}}", "x".repeat(1900)).into_bytes();
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        fits,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(stored(&svc.brokers, &t.audit), 1);
    assert_eq!(stored(&svc.brokers, &t.dlq), 0);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_endpoints_and_readiness_follow_kafka() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let collector = start(&collect_settings(&svc.brokers, &t)).await;
    let healthz = request(collector.addr, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(healthz.status, 200);
    eventually(Duration::from_secs(60), "readyz 200", || async {
        let r = request(collector.addr, "GET", "/readyz", &[], Vec::new()).await;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(collector.health.is_ready());
    // Unknown paths are 404 and do not count as collector requests.
    let r = post(collector.addr, "/nope", &[], b"{}".to_vec()).await;
    assert_eq!(r.status, 404);
    assert!(!collector.metrics.render().contains("route=\"/nope\""));
    collector.stop().await;

    // A destination whose topic does not exist: never ready.
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.audit_streams[0].topic = unique("it_collect_missing");
    let missing = start(&settings).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = request(missing.addr, "GET", "/readyz", &[], Vec::new()).await;
    assert_eq!(r.status, 503);
    missing.stop().await;
}

/// Kafka goes away: 503 + Retry-After within the delivery timeout, readiness drops, and every
/// request answered 2xx is in Kafka afterwards. Kafka comes back: 2xx again, same collector.
#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_is_503_then_recovers_without_restart_and_loses_nothing_acknowledged() {
    let mut broker = ScratchKafkaCluster::start_nodes(1).await;
    let brokers = broker.brokers();
    let t = topics(&brokers, 2).await;
    let mut settings = collect_settings(&brokers, &t);
    settings.collect.delivery_timeout_secs = 3;
    settings.collect.request_timeout_secs = 6;
    settings.collect.retry_after_secs = 2;
    let collector = start(&settings).await;
    let token = [("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)];
    let event = |n: usize| {
        serde_json::to_vec(&serde_json::json!({"id": n, "author_id": n % 5, "event_type": "t"}))
            .unwrap()
    };
    eventually(Duration::from_secs(30), "ready", || async {
        collector.health.is_ready().then_some(())
    })
    .await;
    // Warm-up: the first produce to a broker that just started waits for a producer id and
    // the new topics' leaders, which may outlast the 3 s delivery timeout on a busy machine.
    // GitLab retries a 503, and so does this; the outage below is what is under test.
    let mut acknowledged = vec![
        eventually(Duration::from_secs(60), "a first 200 (warm-up)", || async {
            let reply = post(collector.addr, AUDIT_PATH, &token, event(0)).await;
            (reply.status == 200).then_some(0)
        })
        .await,
    ];
    for n in 1..20 {
        let reply = post(collector.addr, AUDIT_PATH, &token, event(n)).await;
        assert_eq!(reply.status, 200, "before the outage: {}", reply.body);
        acknowledged.push(n);
    }

    broker.kill(1);
    let started = std::time::Instant::now();
    let reply = post(collector.addr, AUDIT_PATH, &token, event(1000)).await;
    assert_eq!(
        reply.status,
        503,
        "after {:?}: {}",
        started.elapsed(),
        reply.body
    );
    assert_eq!(reply.headers["retry-after"], "2");
    assert!(reply.body.contains("kafka_unavailable"), "{}", reply.body);
    // The detail (topic, librdkafka error) is logged, never answered.
    for detail in [
        t.audit.as_str(),
        "MessageTimedOut",
        "Kafka did not acknowledge",
    ] {
        assert!(!reply.body.contains(detail), "{}", reply.body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "503 within the delivery timeout"
    );
    eventually(Duration::from_secs(30), "not ready", || async {
        (!collector.health.is_ready()).then_some(())
    })
    .await;

    broker.restart(1).await;
    // GitLab retries after Retry-After; so does this loop, against the same collector.
    let mut n = 20;
    let recovered = eventually(
        Duration::from_secs(90),
        "2xx after the broker is back",
        || {
            n += 1;
            let body = event(n);
            let addr = collector.addr;
            async move {
                let reply = post(addr, AUDIT_PATH, &token, body).await;
                (reply.status == 200).then_some(n)
            }
        },
    )
    .await;
    acknowledged.push(recovered);
    for n in 2000..2010 {
        let reply = post(collector.addr, AUDIT_PATH, &token, event(n)).await;
        assert_eq!(reply.status, 200, "after recovery: {}", reply.body);
        acknowledged.push(n);
    }

    // Everything answered 200 is in Kafka (the refused ones may or may not be: at-least-once).
    let total = stored(&brokers, &t.audit) as usize;
    let msgs = read(&brokers, &t.audit, total).await;
    let ids: std::collections::HashSet<u64> = msgs
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            v["id"].as_u64().unwrap()
        })
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|n| !ids.contains(&(**n as u64)))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
    let rejected = metric_line(
        &collector.metrics,
        "tokentrail_collect_rejected_total{reason=\"kafka_unavailable\"}",
    );
    assert!(rejected.is_some(), "503s are counted");
    collector.stop().await;
}

/// HTTPS with a certificate from files: a TLS client that trusts it gets 200, and the event is
/// in Kafka; a plain-HTTP client on the TLS port gets no answer.
#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_https() {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;

    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let openssl = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .output()
        .expect("openssl (needed to make a test certificate)");
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.tls_cert_path = cert.display().to_string();
    settings.collect.tls_key_path = key.display().to_string();
    let collector = start(&settings).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(collector.addr)
        .await
        .unwrap();
    let server_name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let body = fixture("audit-stream/user_authenticated_using_job_token.json");
    let reply = request_over(
        tls,
        "POST",
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let msgs = read(&svc.brokers, &t.audit, 1).await;
    assert_eq!(msgs[0].payload(), Some(body.trim_ascii()));

    // Plain HTTP on the TLS port: the handshake fails, no HTTP answer comes back.
    let mut plain = tokio::net::TcpStream::connect(collector.addr)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"POST /gitlab/audit-events HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 2"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(stored(&svc.brokers, &t.audit), 1);
    collector.stop().await;
}

/// Reads until the collector closes the connection; `None` if it is still open after `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(answer),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_header_connections_are_closed_and_big_heads_get_431() {
    use tokio::io::AsyncWriteExt;
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.header_read_timeout_secs = 1;
    settings.collect.max_header_bytes = 8192;
    let collector = start(&settings).await;
    let connect = || tokio::net::TcpStream::connect(collector.addr);

    // Sends nothing at all.
    let mut idle = connect().await.unwrap();
    // Trickles a header, one byte every 200 ms (slowloris).
    let mut slow = connect().await.unwrap();
    slow.write_all(b"POST /gitlab/audit-events HTTP/1.1\r\nx-pad: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            if slow.write_all(b"a").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    assert!(
        closed_within(&mut idle, Duration::from_secs(4))
            .await
            .is_some(),
        "an idle connection is closed after header_read_timeout_secs"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), trickle)
            .await
            .expect("the trickling connection is closed")
            .unwrap(),
    );

    // Keep-alive idle after an answer: closed by the same timer.
    let mut reused = connect().await.unwrap();
    reused
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut reused, Duration::from_secs(4))
        .await
        .expect("closed after its keep-alive idle time");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // A request head larger than max_header_bytes: 431, not buffered.
    let mut big = connect().await.unwrap();
    let head = format!(
        "POST /gitlab/audit-events HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let answer = closed_within(&mut big, Duration::from_secs(4))
        .await
        .unwrap_or_default();
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Legitimate requests are still answered.
    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN)],
        fixture("audit-stream/user_authenticated_using_job_token.json"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_max_connections_wait_until_one_closes() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.max_connections = 2;
    settings.collect.header_read_timeout_secs = 30;
    let collector = start(&settings).await;
    let first = tokio::net::TcpStream::connect(collector.addr)
        .await
        .unwrap();
    let _second = tokio::net::TcpStream::connect(collector.addr)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = tokio::spawn(request(collector.addr, "GET", "/healthz", &[], Vec::new()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!third.is_finished(), "a third connection is not served");
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(reply.status, 200);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_by_the_deadline_with_slow_connections_open() {
    use tokio::io::AsyncWriteExt;
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.shutdown.deadline_secs = 2;
    settings.collect.header_read_timeout_secs = 60;
    let collector = start(&settings).await;
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(collector.addr)
            .await
            .unwrap();
        s.write_all(b"POST /gitlab/audit-events HTTP/1.1\r\nx-pad: aaaa")
            .await
            .unwrap();
        open.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), collector.stop())
        .await
        .expect("the collector stops despite open connections");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for mut s in open {
        assert!(
            closed_within(&mut s, Duration::from_secs(1))
                .await
                .is_some()
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bodies_are_decoded_under_the_size_limit_and_other_encodings_get_415() {
    let svc = services();
    let t = topics(&svc.brokers, 1).await;
    let mut settings = collect_settings(&svc.brokers, &t);
    settings.collect.max_body_bytes = 64 * 1024;
    let collector = start(&settings).await;
    let token = ("X-Gitlab-Event-Streaming-Token", AUDIT_TOKEN);
    let gz = ("Content-Encoding", "gzip");
    let event = fixture("audit-stream/user_authenticated_using_job_token.json");
    let reply = post(collector.addr, AUDIT_PATH, &[token, gz], gzip(&event)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let msgs = read(&svc.brokers, &t.audit, 1).await;
    assert_eq!(msgs[0].payload(), Some(event.trim_ascii()));
    assert_eq!(header(&msgs[0], "Content-Encoding"), None);

    // A zip bomb: 50 MB of zeros in ~50 KB, decoded only up to max_body_bytes.
    let bomb = gzip(&vec![b' '; 50 << 20]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let reply = post(collector.addr, AUDIT_PATH, &[token, gz], bomb).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.body.contains("max_body_bytes"), "{}", reply.body);

    let reply = post(
        collector.addr,
        AUDIT_PATH,
        &[token, ("Content-Encoding", "br")],
        event.clone(),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    let truncated = gzip(&event);
    let truncated = truncated[..truncated.len() / 2].to_vec();
    let reply = post(collector.addr, AUDIT_PATH, &[token, gz], truncated).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("undecodable_body"), "{}", reply.body);

    // Decoded but not JSON: 400, and the dead-letter copy is the body as received, with its
    // Content-Encoding, so it decodes back.
    let bad = gzip(b"{\"author_id\": 4821,");
    let reply = post(collector.addr, AUDIT_PATH, &[token, gz], bad.clone()).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("invalid_json"), "{}", reply.body);
    let dead = read(&svc.brokers, &t.dlq, 1).await;
    assert_eq!(dead[0].payload(), Some(&bad[..]));
    assert_eq!(header(&dead[0], "Content-Encoding"), Some("gzip"));
    assert!(!format!("{:?}", dead[0]).contains(AUDIT_TOKEN));
    assert_eq!(stored(&svc.brokers, &t.audit), 1);
    collector.stop().await;
}
