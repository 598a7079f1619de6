//! Delivery under stress, against the real Kafka and ClickHouse, with the real `tokentrail`
//! binary as a child process: volume with duplicates and poison, SIGKILL restarts, a
//! ClickHouse outage, and consumer-group rebalances 2 → 3 → 1.
//!
//! Sizes come from the environment so CI runs them small and `tests/e2e/run.sh N` runs them
//! at full size: `TOKENTRAIL_E2E_MESSAGES` (default 12 000), `TOKENTRAIL_E2E_KILLS` (3),
//! `TOKENTRAIL_E2E_OUTAGE_SECS` (30). Figures are printed, never asserted as timings.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokentrail::config::Settings;
use tokentrail::publish::{self, Topics};
use tokentrail::simulate::{GroundTruth, SimConfig, Simulator};

use crate::common::*;
use crate::private_clickhouse::PrivateClickHouse;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn messages_wanted() -> usize {
    env_usize("TOKENTRAIL_E2E_MESSAGES", 12_000)
}

/// Simulated traffic of about `messages` Kafka messages (≈ 7 per job), all faults on.
pub fn traffic_config(messages: usize, seed: u64) -> SimConfig {
    SimConfig {
        seed,
        jobs: (messages / 7).max(50),
        duplicate_share: 0.05,
        batch_share: 0.05,
        webhook_retry_share: 0.05,
        bad_share: 0.01,
        ..SimConfig::default()
    }
}

struct Run {
    svc: Services,
    settings: Settings,
    client: clickhouse::Client,
    config_file: tempfile::NamedTempFile,
}

async fn prepare(prefix: &str, audit_partitions: i32, clickhouse_url: Option<String>) -> Run {
    let svc = services();
    let name = unique(prefix);
    let mut s = settings(&svc, &name);
    if let Some(url) = clickhouse_url {
        s.clickhouse.url = url;
    }
    s.batch.max_wait_ms = 500;
    s.shutdown.deadline_secs = 20;
    s.retry.max_backoff_ms = 2_000;
    create_topic(&svc.brokers, &s.kafka.audit_topics[0], audit_partitions).await;
    create_topic(&svc.brokers, &s.kafka.webhook_topics[0], 2).await;
    create_topic(&svc.brokers, &s.kafka.dead_letter_topic, 1).await;
    let client = clickhouse(&s.clickhouse.url, &name);
    tokentrail::store::migrate::migrate(&client, &name, 0, None)
        .await
        .unwrap();
    let config_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config_file.path(), s.to_redacted_toml()).unwrap();
    Run {
        svc,
        settings: s,
        client,
        config_file,
    }
}

impl Run {
    async fn publish(&self, cfg: &SimConfig) -> (u64, GroundTruth) {
        let mut sim = Simulator::new(cfg);
        let topics = Topics::from_settings(&self.settings.kafka).unwrap();
        let producer = tokentrail::kafka::producer::producer(&self.settings.kafka).unwrap();
        let sent = publish::publish(&producer, &topics, sim.by_ref(), 0, |_| {})
            .await
            .unwrap();
        (sent, sim.into_truth())
    }

    /// The real binary as a child process, killed if the test panics before stopping it.
    fn spawn(&self) -> KillOnDrop {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrail"));
        // The config file says everything; inherited TOKENTRAIL__* variables would override it.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAIL__")) {
            cmd.env_remove(key);
        }
        cmd.args(["ingest", "--config"])
            .arg(self.config_file.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(KillOnDrop::new)
            .expect("spawn tokentrail ingest")
    }

    async fn count(&self, sql: &str) -> u64 {
        count(&self.client, sql).await
    }

    async fn audit_rows(&self) -> u64 {
        self.count("SELECT count() FROM audit_events_dedup").await
    }

    /// Waits until everything expected is stored; fails early if `consumer` died.
    async fn wait_complete(&self, truth: &GroundTruth, consumer: &KillOnDrop, timeout: Duration) {
        wait_stored(&self.client, truth, &[consumer], timeout).await;
    }

    /// Exactly the expected distinct events, and no dedup key visible twice.
    async fn assert_exact(&self, truth: &GroundTruth) {
        assert_stored_exactly(&self.client, truth).await;
    }

    /// Dead-lettered items by reason kind, each original item (topic, partition, offset,
    /// element) counted once: after a crash the same poison may be dead-lettered again.
    async fn dead_letters(&self) -> BTreeMap<String, usize> {
        let copies =
            read_dead_letters(&self.svc.brokers, &self.settings.kafka.dead_letter_topic).await;
        let items: std::collections::BTreeSet<_> = copies
            .iter()
            .map(|c| {
                (
                    c.header("tokentrail-original-topic"),
                    c.header("tokentrail-original-partition"),
                    c.header("tokentrail-original-offset"),
                    c.header("tokentrail-element-index"),
                    c.header("tokentrail-error-kind"),
                )
            })
            .collect();
        let mut kinds = BTreeMap::new();
        for item in items {
            *kinds.entry(item.4.to_string()).or_insert(0) += 1;
        }
        kinds
    }
}

/// Publishes `cfg`'s traffic spread over about `seconds`, returning its ground truth.
pub fn publish_in_background(
    settings: &Settings,
    cfg: &SimConfig,
    seconds: u64,
) -> tokio::task::JoinHandle<GroundTruth> {
    let (settings, cfg) = (settings.clone(), cfg.clone());
    tokio::spawn(async move {
        let mut sim = Simulator::new(&cfg);
        let topics = Topics::from_settings(&settings.kafka).unwrap();
        let producer = tokentrail::kafka::producer::producer(&settings.kafka).unwrap();
        let rate = (cfg.jobs as u64 * 7 / seconds).max(100);
        publish::publish(&producer, &topics, sim.by_ref(), rate, |_| {})
            .await
            .unwrap();
        sim.into_truth()
    })
}

pub fn expected_dead_letters(truth: &GroundTruth) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for bad in &truth.bad_messages {
        *kinds.entry(bad.reason.clone()).or_insert(0) += 1;
    }
    kinds
}

/// SIGTERM, then wait for a clean exit within the shutdown deadline.
pub fn stop_gracefully(mut child: KillOnDrop) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.child().wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

fn sigkill(child: KillOnDrop) {
    let mut child = child.into_inner();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Peak resident set size of a running process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The names of a running process's threads (`/proc/<pid>/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process runs")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    names
}

/// Each librdkafka client brings its own threads and broker connections, and each of
/// rdkafka's producers a polling thread that spins for part of every 100 ms wait, busy or
/// idle (benches/README.md, "Fifteenth session"). `ingest` sends alerts and dead letters
/// through one producer: one consumer and one producer, two `rdk:main` threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_runs_one_kafka_producer_for_alerts_and_dead_letters() {
    let mut run = prepare("oneproducer", 1, None).await;
    let alerts_topic = format!("{}.alerts", run.settings.kafka.dead_letter_topic);
    create_topic(&run.svc.brokers, &alerts_topic, 1).await;
    run.settings.alerting.outputs.kafka_topic = alerts_topic;
    std::fs::write(run.config_file.path(), run.settings.to_redacted_toml()).unwrap();
    let (_, truth) = run.publish(&traffic_config(350, 11)).await;
    let consumer = run.spawn();
    run.wait_complete(&truth, &consumer, Duration::from_secs(120))
        .await;
    let names = thread_names(consumer.id());
    let count = |name: &str| names.iter().filter(|n| n.starts_with(name)).count();
    assert_eq!(
        (count("producer poll"), count("rdk:main")),
        (1, 2),
        "one producer and one consumer; the threads: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_with_duplicates_and_poison_stores_exactly_the_distinct_events() {
    let run = prepare("it_volume", 3, None).await;
    let (sent, truth) = run.publish(&traffic_config(messages_wanted(), 11)).await;
    let started = Instant::now();
    let child = run.spawn();
    run.wait_complete(&truth, &child, Duration::from_secs(600))
        .await;
    let elapsed = started.elapsed();
    let peak = peak_rss_kb(child.id());
    stop_gracefully(child);
    eprintln!(
        "volume: {sent} messages in {:.1} s ({:.0} msg/s), peak RSS {:?} kB",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        peak
    );
    run.assert_exact(&truth).await;
    assert_eq!(run.dead_letters().await, expected_dead_letters(&truth));
}

/// The ground truth of `cfg`'s traffic without publishing it (the simulator is
/// deterministic), so a test knows up front when everything is stored.
pub fn truth_of(cfg: &SimConfig) -> GroundTruth {
    let mut sim = Simulator::new(cfg);
    sim.by_ref().for_each(drop);
    sim.into_truth()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_lose_nothing_and_show_no_duplicates() {
    let kills = env_usize("TOKENTRAIL_E2E_KILLS", 3);
    let mut run = prepare("it_sigkill", 3, None).await;
    // Static membership: a restarted process takes its partitions back at once, instead of
    // waiting for the killed one's session to time out (what this test's recovery measures).
    run.settings.kafka.group_instance_id = format!("{}_instance", run.settings.kafka.group_id);
    std::fs::write(run.config_file.path(), run.settings.to_redacted_toml()).unwrap();
    let cfg = traffic_config(messages_wanted(), 12);
    let truth = truth_of(&cfg);
    // Traffic keeps arriving while processes are killed, so each restart has input left.
    let publisher = publish_in_background(&run.settings, &cfg, 15);
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut recoveries = Vec::new();
    for i in 0..kills {
        let before = run.audit_rows().await;
        let spawned = Instant::now();
        let child = run.spawn();
        // Recovery: time until the restarted process stores new rows, measured only while
        // rows remain to be stored (on a fast machine everything may already be in).
        if i > 0 && before < truth.distinct_audit_events {
            let waited = eventually(
                Duration::from_secs(120),
                "progress after restart",
                || async {
                    assert!(alive(&child), "tokentrail ingest exited early");
                    let now = run.audit_rows().await;
                    (now > before || now >= truth.distinct_audit_events)
                        .then_some(spawned.elapsed())
                },
            )
            .await;
            recoveries.push(waited);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
        sigkill(child);
        eprintln!(
            "kill {}: {} of {} audit rows stored so far",
            i + 1,
            run.audit_rows().await,
            truth.distinct_audit_events
        );
    }
    let published = publisher.await.unwrap();
    assert_eq!(published.distinct_audit_events, truth.distinct_audit_events);
    let child = run.spawn();
    run.wait_complete(&truth, &child, Duration::from_secs(600))
        .await;
    stop_gracefully(child);
    eprintln!(
        "sigkill: {} messages, {kills} kills, recovery times {recoveries:?}",
        truth.audit_messages + truth.webhook_messages
    );
    run.assert_exact(&truth).await;
    assert_eq!(run.dead_letters().await, expected_dead_letters(&truth));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_loses_nothing_and_resumes_without_restart() {
    let outage = Duration::from_secs(env_usize("TOKENTRAIL_E2E_OUTAGE_SECS", 30) as u64);
    let mut server = PrivateClickHouse::start().await;
    let run = prepare("it_outage", 3, Some(server.url())).await;
    // Traffic keeps arriving during the outage.
    let publisher =
        publish_in_background(&run.settings, &traffic_config(messages_wanted(), 13), 20);
    let child = run.spawn();
    eventually(Duration::from_secs(60), "first rows stored", || async {
        (run.audit_rows().await > 0).then_some(())
    })
    .await;
    server.kill();
    let down_at = Instant::now();
    tokio::time::sleep(outage).await;
    let rss_during_outage = peak_rss_kb(child.id());
    assert!(alive(&child), "tokentrail must ride out the outage");
    server.resume().await;
    let truth = publisher.await.unwrap();
    run.wait_complete(&truth, &child, Duration::from_secs(600))
        .await;
    let peak = peak_rss_kb(child.id());
    stop_gracefully(child);
    eprintln!(
        "outage: {} messages, ClickHouse down {:.0} s, caught up {:.1} s after it went down; \
         peak RSS {:?} kB at the end of the outage, {:?} kB overall",
        truth.audit_messages + truth.webhook_messages,
        outage.as_secs_f64(),
        down_at.elapsed().as_secs_f64(),
        rss_during_outage,
        peak
    );
    run.assert_exact(&truth).await;
}

/// Waits until `client`'s database holds everything `truth` expects; fails early if one of
/// `consumers` died.
pub async fn wait_stored(
    client: &clickhouse::Client,
    truth: &GroundTruth,
    consumers: &[&KillOnDrop],
    timeout: Duration,
) {
    for (sql, expected) in [
        (
            "SELECT count() FROM audit_events_dedup",
            truth.distinct_audit_events,
        ),
        (
            "SELECT count() FROM webhook_events_dedup",
            truth.distinct_webhooks,
        ),
    ] {
        eventually(timeout, sql, || async {
            assert!(
                consumers.iter().all(|c| alive(c)),
                "tokentrail ingest exited early"
            );
            (count(client, sql).await >= expected).then_some(())
        })
        .await;
    }
}

/// Exactly the expected distinct events in `client`'s database, and no dedup key visible
/// twice.
pub async fn assert_stored_exactly(client: &clickhouse::Client, truth: &GroundTruth) {
    let audit = count(client, "SELECT count() FROM audit_events_dedup").await;
    let audit_keys = count(
        client,
        "SELECT uniqExact(dedup_key) FROM audit_events_dedup",
    )
    .await;
    let webhooks = count(client, "SELECT count() FROM webhook_events_dedup").await;
    let webhook_keys = count(
        client,
        "SELECT uniqExact(dedup_key) FROM webhook_events_dedup",
    )
    .await;
    eprintln!(
        "stored: {audit} audit events (expected {}), {webhooks} webhooks (expected {})",
        truth.distinct_audit_events, truth.distinct_webhooks
    );
    assert_eq!(
        audit, truth.distinct_audit_events,
        "lost or extra audit events"
    );
    assert_eq!(audit, audit_keys, "visible duplicate audit events");
    assert_eq!(webhooks, truth.distinct_webhooks, "lost or extra webhooks");
    assert_eq!(webhooks, webhook_keys, "visible duplicate webhooks");
}

async fn count(client: &clickhouse::Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
}

/// Whether a child process is still running (not exited, not a zombie).
pub fn alive(child: &KillOnDrop) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .ok()
        .and_then(|stat| {
            // The state letter follows the parenthesised command name.
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_two_three_one_consumers_loses_nothing() {
    let run = prepare("it_rebalance", 6, None).await;
    // Publish while the group changes shape: the producer runs alongside.
    let publisher =
        publish_in_background(&run.settings, &traffic_config(messages_wanted(), 14), 20);
    let first = run.spawn();
    let second = run.spawn();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let third = run.spawn();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop_gracefully(first);
    stop_gracefully(second);
    let truth = publisher.await.unwrap();
    run.wait_complete(&truth, &third, Duration::from_secs(600))
        .await;
    stop_gracefully(third);
    run.assert_exact(&truth).await;
}
