//! Shared helpers: where the services are, unique names, topic creation, producing, and a
//! consumer group's progress.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokentrail::config::Settings;

/// Connection settings, from the variables `deploy/local/services env` prints.
pub struct Services {
    pub brokers: String,
    pub clickhouse_url: String,
    pub chdb_run: PathBuf,
}

/// Whether a missing service is an error rather than a reason to skip: on CI, and under
/// `deploy/local/test`, which starts the services itself.
fn services_required() -> bool {
    ["CI", "TOKENTRAIL_REQUIRE_SERVICES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"))
}

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) => v,
        Err(_) if services_required() => panic!(
            "{name} is not set. Integration tests need the real services: run \
             `deploy/local/services start` and `eval \"$(deploy/local/services env)\"`, \
             or use `deploy/local/test`"
        ),
        Err(_) => skip_all(name),
    }
}

/// Ends this test binary successfully, saying why: every test in it needs the services. A
/// plain `cargo test` on a machine without them then runs the unit and property tests and
/// says what it skipped; CI (`CI` set) and `deploy/local/test` fail instead. Written to the
/// process's stderr directly: libtest's capture of `eprintln!` would swallow it.
fn skip_all(missing: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: the integration tests need Kafka, ClickHouse and chdb ({missing} is not \
         set). Start them with `deploy/local/services start` and \
         `eval \"$(deploy/local/services env)\"`, or run `deploy/local/test`. With CI or \
         TOKENTRAIL_REQUIRE_SERVICES set, this is an error.\n"
    );
    std::process::exit(0)
}

pub fn services() -> Services {
    Services {
        brokers: required("TOKENTRAIL__KAFKA__BROKERS"),
        clickhouse_url: required("TOKENTRAIL__CLICKHOUSE__URL"),
        chdb_run: PathBuf::from(required("TOKENTRAIL_CHDB_RUN")),
    }
}

/// A loopback port nothing listens on right now (a server started on it may still lose a race
/// with another test: callers retry their start on new ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test (or earlier run) uses: `prefix_<pid>_<millis>_<n>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}_{}_{millis}_{n}", std::process::id())
}

pub async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    create_topic_with(brokers, name, partitions, &[]).await;
}

/// Creates a topic with topic-level settings (e.g. `max.message.bytes`).
pub async fn create_topic_with(
    brokers: &str,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) {
    create_replicated_topic(brokers, name, partitions, 1, config).await;
}

/// Creates a topic with `replicas` copies of each partition and topic-level settings.
pub async fn create_replicated_topic(
    brokers: &str,
    name: &str,
    partitions: i32,
    replicas: i32,
    config: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    for (k, v) in config {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Committed offset per partition of `topic` for `group`, as a fresh client sees it.
pub fn committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Offset> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

/// The end of each partition of `topic`, in the form `committed` reports it (an empty
/// partition has nothing to commit).
pub fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Offset> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (
                p,
                if high == 0 {
                    Offset::Invalid
                } else {
                    Offset::Offset(high)
                },
            )
        })
        .collect()
}

/// Whether the pipeline's group has committed every message of `topics` ((name, partitions)):
/// with commit-after-write, everything in them is processed and stored.
pub async fn committed_to_the_end(s: &Settings, topics: &[(String, i32)]) -> bool {
    let (brokers, group, topics) = (
        s.kafka.brokers.clone(),
        s.kafka.group_id.clone(),
        topics.to_vec(),
    );
    // librdkafka's calls block; keep them off the runtime the pipeline runs on.
    tokio::task::spawn_blocking(move || {
        topics.iter().all(|(topic, parts)| {
            committed(&brokers, &group, topic, *parts) == high_watermarks(&brokers, topic, *parts)
        })
    })
    .await
    .unwrap()
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// One message to produce: key, headers, payload.
pub struct Outgoing {
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    pub partition: Option<i32>,
}

impl Outgoing {
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Outgoing {
            key: None,
            headers: Vec::new(),
            payload: payload.into(),
            partition: None,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn key(mut self, k: &str) -> Self {
        self.key = Some(k.into());
        self
    }
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }
}

/// Produces all messages and waits for every acknowledgement.
pub async fn produce_all(producer: &FutureProducer, topic: &str, messages: &[Outgoing]) {
    let futures: Vec<_> = messages
        .iter()
        .map(|m| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &m.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = FutureRecord::<str, [u8]>::to(topic)
                .payload(&m.payload)
                .headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k);
            }
            if let Some(p) = m.partition {
                record = record.partition(p);
            }
            producer.send(record, Duration::from_secs(30))
        })
        .collect();
    for f in futures {
        f.await.unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
}

pub fn clickhouse(url: &str, database: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url)
        .with_database(database)
        .with_validation(false)
        .with_compression(clickhouse::Compression::None)
}

/// Settings for a pipeline run with its own topics, group and database.
pub fn settings(svc: &Services, name: &str) -> Settings {
    let mut s = Settings::default();
    s.kafka.brokers = svc.brokers.clone();
    s.kafka.group_id = format!("{name}_group");
    s.kafka.audit_topics = vec![format!("{name}_audit")];
    s.kafka.webhook_topics = vec![format!("{name}_webhooks")];
    s.kafka.dead_letter_topic = format!("{name}_dlq");
    s.kafka
        .options
        .0
        .insert("session.timeout.ms".into(), "6000".into());
    s.clickhouse.url = svc.clickhouse_url.clone();
    s.clickhouse.database = name.to_string();
    s.batch.max_wait_ms = 200;
    s.telemetry.listen = String::new();
    // Alerts block their batch until Kafka acknowledges them; tests that want the alerts
    // topic create it and set it (tests/integration/alerts.rs).
    s.alerting.outputs.kafka_topic = String::new();
    s.validate().expect("test settings are valid");
    s
}

/// Polls `probe` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs queries on the modern engine (chdb) and returns stdout as raw tab-separated text.
pub fn chdb(svc: &Services, args: &[&str]) -> String {
    let out = std::process::Command::new(&svc.chdb_run)
        .args(["--format", "TabSeparatedRaw"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", svc.chdb_run.display()));
    assert!(
        out.status.success(),
        "chdb-run {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a panicking test
/// never leaks it: a leaked child would keep running and hold the test runner's output pipe.
pub struct KillOnDrop(pub Option<std::process::Child>);

impl KillOnDrop {
    pub fn new(child: std::process::Child) -> Self {
        KillOnDrop(Some(child))
    }
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child")
    }
    /// Hands the child over (to wait for its exit), disarming the guard.
    pub fn into_inner(mut self) -> std::process::Child {
        self.0.take().expect("child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message of a dead-letter topic: its headers (names to text) and payload length.
pub struct DeadLetterCopy {
    pub headers: BTreeMap<String, String>,
    pub payload_len: usize,
}

impl DeadLetterCopy {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Every message of a single-partition topic from its start to its end, each mapped by
/// `each`; panics after `timeout` without a message or on a read error.
pub async fn read_to_end<T>(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> T,
) -> Vec<T> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("topic_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(timeout, c.recv()).await {
            Ok(Ok(m)) => out.push(each(&m)),
            Ok(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => panic!("reading {topic} timed out"),
        }
    }
}

/// Every message of a (single-partition) dead-letter topic, read to its end.
pub async fn read_dead_letters(brokers: &str, topic: &str) -> Vec<DeadLetterCopy> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    read_to_end(brokers, topic, Duration::from_secs(20), |m| {
        DeadLetterCopy {
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_string(), v.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            payload_len: m.payload().map_or(0, <[u8]>::len),
        }
    })
    .await
}

/// `tokentrail ingest` (`app::run`) in the background until [`RunningIngest::stop`].
pub struct RunningIngest {
    cancel: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<tokentrail::ingest::app::RunSummary>,
}

impl RunningIngest {
    pub fn start(s: &Settings) -> Self {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (s, c) = (s.clone(), cancel.clone());
        let handle = tokio::spawn(async move {
            tokentrail::ingest::app::run(
                &s,
                tokentrail::telemetry::metrics::Metrics::new(),
                tokentrail::telemetry::server::Health::default(),
                c,
            )
            .await
            .expect("ingest run")
        });
        RunningIngest { cancel, handle }
    }

    /// Cancels the run and waits for it to drain and stop.
    pub async fn stop(self) -> tokentrail::ingest::app::RunSummary {
        self.cancel.cancel();
        self.handle.await.expect("ingest task")
    }
}

/// The topics `s` ingests from and dead-letters to, one partition each, and its migrated
/// database; returns a client of that database.
pub async fn prepare_ingest(svc: &Services, s: &Settings) -> clickhouse::Client {
    for topic in [
        &s.kafka.audit_topics[0],
        &s.kafka.webhook_topics[0],
        &s.kafka.dead_letter_topic,
    ] {
        create_topic(&svc.brokers, topic, 1).await;
    }
    let database = &s.clickhouse.database;
    let client = clickhouse(&svc.clickhouse_url, database);
    tokentrail::store::migrate::migrate(&client, database, 0, None)
        .await
        .unwrap();
    client
}

/// A JSON fixture of tests/fixtures/gitlab/ (GitLab's documented payloads).
pub fn gitlab_fixture(path: &str) -> serde_json::Value {
    let full = format!(
        "{}/tests/fixtures/gitlab/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

/// The one number `sql` answers (a `SELECT count() …`).
pub async fn count(client: &clickhouse::Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.unwrap()
}
