//! The batch writer against the real server: one INSERT per table for a batch's partitions,
//! and, when the server rejects that INSERT, per-block bisection down to the bad row.

use std::sync::Arc;

use tokentrail::config::RetrySettings;
use tokentrail::ingest::batch::{Batch, Block};
use tokentrail::kafka::offsets::OffsetTracker;
use tokentrail::model::{ActorKind, AuditEvent, AuditMeaning, JobInfo};
use tokentrail::store::block::TopicPartition;
use tokentrail::store::sink::{self, ClickHouseSink};
use tokentrail::store::tables::{KafkaOrigin, Table, encode_audit_event, encode_job};
use tokentrail::telemetry::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::common::*;

fn job(id: i64) -> JobInfo {
    JobInfo {
        job_id: id,
        job_name: format!("job-{id}"),
        project_id: Some(7),
        project_path: "group/app".into(),
        pipeline_id: Some(70),
        user_id: None,
        username: None,
        git_ref: None,
        sha: None,
        runner_id: None,
        runner_description: None,
        status: "success".into(),
        started_at_ms: None,
        finished_at_ms: None,
        source_pipeline_id: None,
        source_project_id: None,
        source_project_path: None,
    }
}

/// Job rows at offsets 0..3 of partitions 0 and 1; `bad` names a (partition, offset) whose
/// row is cut short so the server cannot parse it.
fn blocks(bad: Option<(i32, i64)>) -> Vec<Block> {
    let mut tracker = OffsetTracker::new();
    let mut batch = Batch::default();
    for partition in [0, 1] {
        let tp: TopicPartition = (Arc::from("hooks"), partition);
        for offset in 0..3 {
            batch.consumed(&mut tracker, &tp, offset, None);
            let id = i64::from(partition) * 100 + offset;
            batch.push_row(Table::Jobs, &tp, offset, |buf| {
                if bad == Some((partition, offset)) {
                    // A String whose length prefix promises more bytes than follow.
                    buf.extend_from_slice(&id.to_le_bytes());
                    buf.extend_from_slice(&[0xff, 0x7f, b'x']);
                } else {
                    encode_job(&job(id), 1, buf);
                }
            });
        }
    }
    batch.into_parts().0
}

async fn store(name: &str) -> (ClickHouseSink, clickhouse::Client, Metrics) {
    let svc = services();
    let client = clickhouse(&svc.clickhouse_url, name);
    tokentrail::store::migrate::migrate(&client, name, 0, None)
        .await
        .unwrap();
    let version = tokentrail::store::read::server_version(&client)
        .await
        .unwrap();
    let metrics = Metrics::new();
    let store = ClickHouseSink::new(
        client.clone(),
        name.to_string(),
        tokentrail::store::schema::Dialect::for_version(version),
        RetrySettings {
            initial_backoff_ms: 10,
            max_backoff_ms: 100,
        },
        metrics.clone(),
    );
    (store, client, metrics)
}

fn inserts(metrics: &Metrics) -> u64 {
    metrics
        .insert_latency
        .with_label_values(&["jobs"])
        .get_sample_count()
}

async fn stored_ids(client: &clickhouse::Client) -> Vec<i64> {
    client
        .query("SELECT job_id FROM jobs ORDER BY job_id")
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batchs_partitions_go_out_as_one_insert_per_table() {
    let name = unique("it_sink_one");
    let (store, client, metrics) = store(&name).await;
    let written = store
        .write(&blocks(None), &CancellationToken::new())
        .await
        .unwrap();
    assert!(written.rejected.is_empty());
    assert_eq!(inserts(&metrics), 1, "two partitions' blocks, one INSERT");
    assert_eq!(stored_ids(&client).await, vec![0, 1, 2, 100, 101, 102]);
}

#[tokio::test]
async fn a_rejected_combined_insert_is_bisected_to_the_bad_row() {
    let name = unique("it_sink_bad");
    let (store, client, metrics) = store(&name).await;
    let written = store
        .write(&blocks(Some((1, 1))), &CancellationToken::new())
        .await
        .unwrap();
    let rejected: Vec<_> = written
        .rejected
        .iter()
        .map(|r| (r.tp.1, r.offset, r.table))
        .collect();
    assert_eq!(rejected, vec![(1, 1, Table::Jobs)]);
    assert!(inserts(&metrics) > 2, "the combined INSERT, then per block");
    assert_eq!(stored_ids(&client).await, vec![0, 1, 2, 100, 102]);
}

/// A read-only ClickHouse user cannot be waited out: the write stops at once, naming the
/// privilege, instead of backing off forever while `/readyz` says ready.
#[tokio::test]
async fn a_read_only_user_is_fatal_and_names_the_privilege() {
    let name = unique("it_sink_ro");
    let (_, client, metrics) = store(&name).await;
    let version = tokentrail::store::read::server_version(&client)
        .await
        .unwrap();
    let read_only = ClickHouseSink::new(
        client.with_setting("readonly", "1"),
        name.clone(),
        tokentrail::store::schema::Dialect::for_version(version),
        RetrySettings {
            initial_backoff_ms: 10,
            max_backoff_ms: 100,
        },
        metrics,
    );
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        read_only.write(&blocks(None), &CancellationToken::new()),
    )
    .await
    .expect("a permission error is not retried");
    match outcome {
        Err(sink::SinkError::Fatal(e)) => {
            assert!(e.to_string().contains("read-only"), "{e}");
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

fn audit_event(event_type: &str, created_at_ms: i64, dedup_key: &str) -> AuditEvent {
    AuditEvent {
        id: dedup_key.into(),
        dedup_key: dedup_key.into(),
        stream_only: false,
        event_type: event_type.into(),
        author_id: 1,
        author_name: "ann".into(),
        author_class: None,
        actor_kind: ActorKind::Human,
        entity_id: Some(7),
        entity_type: "Project".into(),
        entity_path: "group/app".into(),
        target_id: None,
        target_type: String::new(),
        target_details: String::new(),
        ip_address: "10.0.0.1".into(),
        created_at_ms,
        details_json: "{}".into(),
        meaning: AuditMeaning::Other,
    }
}

/// (INSERT blocks, blocks the server found already in key order) of the INSERTs into
/// `database.table`, from `system.query_log`.
async fn insert_blocks(client: &clickhouse::Client, database: &str, table: &str) -> (u64, u64) {
    client.query("SYSTEM FLUSH LOGS").execute().await.unwrap();
    client
        .query(
            "SELECT \
               sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterBlocks')]), \
               sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, \
                   'MergeTreeDataWriterBlocksAlreadySorted')]) \
             FROM system.query_log WHERE type = 2 AND query LIKE ?",
        )
        .bind(format!("INSERT INTO `{database}`.{table} %"))
        .fetch_one()
        .await
        .unwrap()
}

/// A batch's audit rows arrive in Kafka order, spread over partitions; the writer sends them
/// in the table's key order, so the server need not sort the block. Two rows in the same
/// second are in the opposite order by milliseconds and by `dedup_key`: on a server whose
/// `created_at` holds seconds, only the second order is the key's.
#[tokio::test]
async fn a_tables_rows_reach_the_server_in_its_key_order() {
    let name = unique("it_sink_sorted");
    let (store, client, _) = store(&name).await;
    let second = 1_790_000_000_000;
    let partitions = [
        vec![
            audit_event("repository_git_operation", second + 5_000, "saved:1"),
            audit_event("job_artifact_downloaded", second + 900, "saved:2"),
        ],
        vec![
            audit_event("job_artifact_downloaded", second + 100, "saved:3"),
            audit_event("job_artifact_downloaded", second - 86_400_000, "saved:4"),
        ],
    ];
    let mut tracker = OffsetTracker::new();
    let mut batch = Batch::default();
    for (partition, events) in partitions.iter().enumerate() {
        let tp: TopicPartition = (Arc::from("audit"), partition as i32);
        for (offset, ev) in events.iter().enumerate() {
            let origin = KafkaOrigin {
                topic: "audit",
                partition: partition as i32,
                offset: offset as i64,
            };
            batch.consumed(&mut tracker, &tp, offset as i64, None);
            batch.push_row(Table::AuditEvents, &tp, offset as i64, |buf| {
                encode_audit_event(ev, origin, 1, buf)
            });
        }
    }
    let written = store
        .write(&batch.into_parts().0, &CancellationToken::new())
        .await
        .unwrap();
    assert!(written.rejected.is_empty());

    let (blocks, already_sorted) = insert_blocks(&client, &name, "audit_events").await;
    assert!(blocks >= 1, "the INSERT is in the query log");
    assert_eq!(already_sorted, blocks, "every block arrived in key order");
    let stored: Vec<String> = client
        .query("SELECT dedup_key FROM audit_events ORDER BY dedup_key")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(stored, ["saved:1", "saved:2", "saved:3", "saved:4"]);
}
