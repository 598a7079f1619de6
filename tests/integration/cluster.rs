//! tokentrail on clusters, with real servers on loopback: a three-broker KRaft Kafka (topics
//! with replication factor 3, `min.insync.replicas=2`) and two ClickHouse 18.16 replicas of
//! one shard on ZooKeeper, migrated with `clickhouse.cluster`. Two `tokentrail ingest`
//! processes in one consumer group, each writing to its own replica, take simulated traffic
//! while a broker and then a replica are killed and restarted: nothing is lost, nothing is
//! duplicated, the surviving replica answers the named queries meanwhile, and afterwards
//! both replicas hold the same rows and give the same answers.
//!
//! Size: `TOKENTRAIL_CLUSTER_MESSAGES` (default 100 000 messages of simulated traffic).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokentrail::config::Settings;

use crate::clickhouse_cluster::{CLUSTER, ClickHouseCluster};
use crate::common::*;
use crate::kafka_cluster::ScratchKafkaCluster;
use crate::resilience::{
    alive, assert_stored_exactly, publish_in_background, stop_gracefully, traffic_config, truth_of,
    wait_stored,
};

/// The named queries whose answers are compared between the replicas (the ones that need no
/// argument beyond the window).
const QUERIES: &[&str] = &[
    "latest-use",
    "actors",
    "actor-kinds",
    "actions-over-time",
    "changes",
    "allowlist-vs-use",
    "outside-allowlist",
    "recommended-allowlist",
];

fn messages_wanted() -> usize {
    std::env::var("TOKENTRAIL_CLUSTER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The real binary, configured by `config` alone (inherited TOKENTRAIL__* would override it).
fn tokentrail(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrail"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAIL__")) {
        cmd.env_remove(key);
    }
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    cmd
}

fn config_file(settings: &Settings) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), settings.to_redacted_toml()).unwrap();
    file
}

/// A named query's JSON answer over all of history, from the replica `config` points at.
fn named_query(config: &std::path::Path, name: &str) -> String {
    run_ok(
        tokentrail(config)
            .args(["query", name, "--from", "2000-01-01", "--to", "2100-01-01"])
            .args(["--format", "json", "--limit", "100000"]),
    )
}

async fn stored(client: &clickhouse::Client) -> u64 {
    client
        .query("SELECT count() FROM audit_events_dedup")
        .fetch_one::<u64>()
        .await
        .unwrap_or(0)
}

/// Every replicated table's row count, by name, as `replica` holds it.
async fn table_rows(client: &clickhouse::Client) -> Vec<(String, u64)> {
    client
        .query(
            "SELECT name, total_rows FROM (SELECT name FROM system.tables \
             WHERE database = currentDatabase() AND engine LIKE 'Replicated%') \
             ANY LEFT JOIN (SELECT table AS name, toUInt64(sum(rows)) AS total_rows \
             FROM system.parts WHERE database = currentDatabase() AND active GROUP BY table) \
             USING name ORDER BY name",
        )
        .fetch_all::<(String, u64)>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_and_a_replica_die_during_ingest_and_nothing_is_lost_or_duplicated() {
    let (mut kafka, mut clickhouse) =
        tokio::join!(ScratchKafkaCluster::start(), ClickHouseCluster::start(2));
    let svc = services();
    let name = unique("it_cluster");
    let mut s = settings(&svc, &name);
    s.kafka.brokers = kafka.brokers();
    s.clickhouse.cluster = CLUSTER.to_string();
    s.clickhouse.url = clickhouse.url(0);
    s.clickhouse.seal_every_secs = 5;
    s.batch.max_wait_ms = 500;
    s.shutdown.deadline_secs = 20;
    s.retry.max_backoff_ms = 2_000;
    s.validate().unwrap();
    kafka.create_topic(&s.kafka.audit_topics[0], 4).await;
    kafka.create_topic(&s.kafka.webhook_topics[0], 2).await;
    kafka.create_topic(&s.kafka.dead_letter_topic, 1).await;
    let report = tokentrail::store::migrate::migrate_on(
        &clickhouse.client(0, &name),
        &name,
        0,
        None,
        Some(CLUSTER),
    )
    .await
    .unwrap();
    assert!(!report.applied.is_empty());
    let replica = [clickhouse.client(0, &name), clickhouse.client(1, &name)];
    // The other replica has the tables (and the bookkeeping) without being migrated itself.
    clickhouse.sync(1, &name).await;
    assert_eq!(table_rows(&replica[0]).await, table_rows(&replica[1]).await);

    let mut on_second = s.clone();
    on_second.clickhouse.url = clickhouse.url(1);
    let configs = [config_file(&s), config_file(&on_second)];
    let spawn_ingest = |config: &std::path::Path| {
        tokentrail(config)
            .arg("ingest")
            // librdkafka logs an error for every connection attempt to the killed broker.
            .env("RUST_LOG", "warn,librdkafka=off,rdkafka::client=off")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(KillOnDrop::new)
            .expect("spawn tokentrail ingest")
    };
    let ingest = [
        spawn_ingest(configs[0].path()),
        spawn_ingest(configs[1].path()),
    ];

    let cfg = traffic_config(messages_wanted(), 21);
    let started = Instant::now();
    let publisher = publish_in_background(&s, &cfg, 40);
    let truth = truth_of(&cfg);
    // Both faults fall inside the 40 s of publishing: the broker once ingest is under way,
    // the replica 8 s later, while the broker is still down.
    eventually(Duration::from_secs(300), "ingest under way", || async {
        (stored(&replica[0]).await > 0).then_some(())
    })
    .await;
    kafka.kill(2);
    eprintln!(
        "cluster: broker 2 killed at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    clickhouse.kill(1);
    let down_at = stored(&replica[0]).await;
    eprintln!(
        "cluster: replica 2 killed at {:.1} s with {down_at} of {} audit events stored",
        started.elapsed().as_secs_f64(),
        truth.distinct_audit_events
    );
    // The surviving replica keeps taking its ingest's rows and answers the named queries.
    eventually(
        Duration::from_secs(120),
        "replica 1 still stores",
        || async { (stored(&replica[0]).await > down_at).then_some(()) },
    )
    .await;
    for query in ["latest-use", "actors"] {
        let answer = named_query(configs[0].path(), query);
        assert!(answer.starts_with('['), "{query} on the survivor: {answer}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(ingest.iter().all(alive), "ingest rides out a dead replica");
    clickhouse.restart(1).await;
    kafka.restart(2).await;
    eprintln!(
        "cluster: replica 2 and broker 2 back at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let sent_truth = publisher.await.unwrap();
    assert_eq!(
        sent_truth.distinct_audit_events,
        truth.distinct_audit_events
    );
    let consumers: Vec<&KillOnDrop> = ingest.iter().collect();
    wait_stored(&replica[0], &truth, &consumers, Duration::from_secs(600)).await;
    eprintln!(
        "cluster: everything stored on replica 1 at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let [first, second] = ingest;
    stop_gracefully(first);
    stop_gracefully(second);

    // The restarted replica fetches what it missed; both then hold the same parts.
    let converged = Instant::now();
    let rows = eventually(Duration::from_secs(180), "replicas converge", || async {
        for i in 0..2 {
            clickhouse.sync(i, &name).await;
        }
        let rows = table_rows(&replica[0]).await;
        (rows == table_rows(&replica[1]).await).then_some(rows)
    })
    .await;
    eprintln!(
        "cluster: replicas converged {:.1} s after ingest stopped; rows per table (raw, before \
         merges): {rows:?}",
        converged.elapsed().as_secs_f64()
    );
    for (i, client) in replica.iter().enumerate() {
        eprintln!("cluster: replica {}:", i + 1);
        assert_stored_exactly(client, &truth).await;
    }
    for query in QUERIES {
        assert_eq!(
            named_query(configs[0].path(), query),
            named_query(configs[1].path(), query),
            "{query} answers the same on both replicas"
        );
    }
    let alerts = |config: &std::path::Path| {
        run_ok(tokentrail(config).args(["alerts", "list", "--json", "--limit", "100000"]))
    };
    let listed = alerts(configs[0].path());
    assert!(listed.lines().count() > 0, "the traffic raises alerts");
    assert_eq!(
        listed,
        alerts(configs[1].path()),
        "alerts list is the same on both replicas"
    );

    // The SIEM backfill of all of history from each replica, into a topic of its own.
    let mut exported = Vec::new();
    let state_dir = tempfile::tempdir().unwrap();
    for (i, base) in [&s, &on_second].into_iter().enumerate() {
        let mut e = base.clone();
        e.siem.kafka.topic = format!("{name}_siem_{i}");
        e.siem.state_file = state_dir
            .path()
            .join(format!("export-{i}.state.json"))
            .display()
            .to_string();
        kafka.create_topic(&e.siem.kafka.topic, 1).await;
        let config = config_file(&e);
        run_ok(tokentrail(config.path()).args([
            "export",
            "--sink",
            "kafka",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ]));
        exported.push(record_ids(&kafka.brokers(), &e.siem.kafka.topic).await);
    }
    eprintln!(
        "cluster: SIEM backfill: {} and {} messages, {} and {} distinct record ids",
        exported[0].1,
        exported[1].1,
        exported[0].0.len(),
        exported[1].0.len()
    );
    assert!(!exported[0].0.is_empty(), "records exported");
    // Each alert version is its own SIEM event (`<alert id>@<updated at>`), and a merge keeps
    // only an alert's latest version, so a replica that merged already exports fewer of the
    // versions a replay repeated (one server, too, exports them before a merge and not
    // after). What both must export alike: every token use and lifecycle record, and each
    // alert's latest version.
    assert_eq!(
        latest_versions(&exported[0].0),
        latest_versions(&exported[1].0),
        "the same SIEM records from both replicas"
    );
}

/// Record ids with only the latest `@<updated at>` version of each alert.
fn latest_versions(ids: &std::collections::BTreeSet<String>) -> Vec<String> {
    let mut latest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    let mut plain = Vec::new();
    for id in ids {
        match id.rsplit_once('@').map(|(a, v)| (a, v.parse::<i64>())) {
            Some((alert, Ok(version))) => {
                let v = latest.entry(alert).or_insert(version);
                *v = (*v).max(version);
            }
            _ => plain.push(id.clone()),
        }
    }
    plain.extend(latest.into_iter().map(|(a, v)| format!("{a}@{v}")));
    plain
}

/// The distinct message keys (record ids) of a one-partition topic and its message count.
async fn record_ids(brokers: &str, topic: &str) -> (std::collections::BTreeSet<String>, usize) {
    use rdkafka::Message;
    let keys = read_to_end(brokers, topic, Duration::from_secs(30), |m| {
        String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned()
    })
    .await;
    let messages = keys.len();
    (keys.into_iter().collect(), messages)
}

/// Runs `cmd` to success and returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run tokentrail");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
