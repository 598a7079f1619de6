//! Migrations on the real 18.16 server (portable form) and on the modern engine (chdb,
//! modern form), and the contract that one RowBinary encoding loads into both.

use serde::Deserialize;
use tokentrail::model::{ActorKind, AuditEvent, AuditMeaning};
use tokentrail::store::migrate;
use tokentrail::store::schema::{Dialect, RenderOptions};
use tokentrail::store::tables::{self, KafkaOrigin, Table};

use crate::common::*;

#[derive(clickhouse::Row, Deserialize)]
struct ColumnRow {
    name: String,
}

fn sample_event() -> AuditEvent {
    AuditEvent {
        id: "5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2".into(),
        dedup_key: "content:abc".into(),
        stream_only: true,
        event_type: "user_authenticated_using_job_token".into(),
        author_id: 4821,
        author_name: "Dana Builder".into(),
        author_class: Some("User".into()),
        actor_kind: ActorKind::Human,
        entity_id: Some(1337),
        entity_type: "Project".into(),
        entity_path: "platform/app-backend".into(),
        target_id: Some(987654),
        target_type: "Ci::Build".into(),
        target_details: "987654".into(),
        ip_address: "10.20.30.40".into(),
        created_at_ms: 1_748_945_742_123,
        details_json: r#"{"custom_message":"x"}"#.into(),
        meaning: AuditMeaning::JobTokenAuth {
            job_id: Some(987654),
        },
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_columns_match_encoders_on_18_16() {
    let svc = services();
    let db = unique("it_migrate");
    let client = clickhouse(&svc.clickhouse_url, &db);
    let first = migrate::migrate(&client, &db, 30, None).await.unwrap();
    assert_eq!(first.dialect, Dialect::Portable, "the test server is 18.16");
    let all: Vec<u32> = tokentrail::store::schema::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(first.applied, all);
    let second = migrate::migrate(&client, &db, 30, None).await.unwrap();
    assert!(second.applied.is_empty(), "re-run applies nothing");
    assert_eq!(second.already_applied, all);

    for table in Table::ALL {
        let stored: Vec<String> = client
            .query(
                "SELECT name FROM system.columns WHERE database = ? AND table = ? \
                 AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
            )
            .bind(&db)
            .bind(table.name())
            .fetch_all::<ColumnRow>()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(stored, table.columns(), "{}", table.name());
    }

    // One encoded row goes in, the materialized DateTime comes out right.
    let mut row = Vec::new();
    let origin = KafkaOrigin {
        topic: "t",
        partition: 0,
        offset: 1,
    };
    tables::encode_audit_event(&sample_event(), origin, 1, &mut row);
    let mut insert = client.insert_formatted_with(Table::AuditEvents.insert_sql(&db));
    insert.send(row.into()).await.unwrap();
    insert.end().await.unwrap();
    let created: String = client
        .query("SELECT toString(created_at) FROM audit_events_dedup")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(created, "2025-06-03 10:15:42");
}

fn modern_ddl(db: &str) -> String {
    let opts = RenderOptions {
        database: db.into(),
        dialect: Dialect::Modern,
        // Ten years keeps the 2025 sample row alive (expired rows vanish at the next merge,
        // or at once under FINAL) without overflowing DateTime, which ends in 2106.
        retention_days: 3650,
        cluster: None,
    };
    let mut sql = format!("CREATE DATABASE {db};\n");
    for (_, _, statements) in migrate::plan(&opts).unwrap() {
        for s in statements {
            sql.push_str(&s);
            sql.push_str(";\n");
        }
    }
    sql
}

#[test]
fn modern_ddl_applies_on_chdb_and_loads_the_same_rowbinary() {
    let svc = services();
    let db = "tt";
    let ddl = modern_ddl(db);
    // Stored columns and their types, as the modern engine sees them.
    let columns = chdb(
        &svc,
        &[
            "-q",
            &ddl,
            "-q",
            "SELECT name, type FROM system.columns WHERE database = 'tt' \
             AND table = 'audit_events' AND default_kind = '' ORDER BY position",
        ],
    );
    let pairs: Vec<(String, String)> = columns
        .lines()
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap();
            (n.to_string(), t.to_string())
        })
        .collect();
    let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, Table::AuditEvents.columns());
    assert!(
        pairs.iter().any(|(_, t)| t == "LowCardinality(String)"),
        "modern form uses LowCardinality: {pairs:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.bin");
    let mut row = Vec::new();
    let origin = KafkaOrigin {
        topic: "t",
        partition: 0,
        offset: 1,
    };
    tables::encode_audit_event(&sample_event(), origin, 1, &mut row);
    std::fs::write(&path, &row).unwrap();
    let structure: Vec<String> = pairs.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let out = chdb(
        &svc,
        &[
            "-q",
            &ddl,
            "-q",
            &format!(
                "INSERT INTO tt.audit_events ({}) SELECT * FROM file('{}', 'RowBinary', '{}')",
                Table::AuditEvents.columns().join(", "),
                path.display(),
                structure.join(", ")
            ),
            "-q",
            "SELECT toTypeName(created_at), toString(created_at), author_name, entity_id \
             FROM tt.audit_events_dedup",
        ],
    );
    assert_eq!(
        out.trim(),
        "DateTime64(3, 'UTC')\t2025-06-03 10:15:42.123\tDana Builder\t1337"
    );
}

/// The modern cluster form cannot be created on chdb (no ZooKeeper or Keeper in process), so
/// the modern engine parses every statement of it instead (`formatQuery`): the cluster
/// clauses and replicated engines in the places the modern grammar wants them. The portable
/// cluster form is created for real on two 18.16 replicas (tests/integration/cluster.rs).
#[test]
fn modern_cluster_ddl_parses_on_chdb() {
    let svc = services();
    let opts = RenderOptions {
        database: "tt".into(),
        dialect: Dialect::Modern,
        retention_days: 90,
        cluster: Some("prod".into()),
    };
    let mut statements = tokentrail::store::schema::bookkeeping_ddl(&opts).unwrap();
    for (_, _, s) in migrate::plan(&opts).unwrap() {
        statements.extend(s);
    }
    let sql: Vec<String> = statements
        .iter()
        .map(|s| {
            format!(
                "SELECT formatQuery('{}')",
                s.replace('\\', "\\\\").replace('\'', "\\'")
            )
        })
        .collect();
    let formatted = chdb(&svc, &["-q", &sql.join(";\n")]);
    let created = formatted.matches("ON CLUSTER prod").count();
    let expected = statements
        .iter()
        .filter(|s| !s.starts_with("INSERT"))
        .count();
    assert_eq!(created, expected, "{formatted}");
    assert_eq!(
        formatted.matches("ENGINE = Replicated").count(),
        statements
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count(),
        "{formatted}"
    );
}
