//! Integration tests against the real services started by `deploy/local/services start`
//! (Kafka 4.x in KRaft mode, ClickHouse 18.16, and chdb for the modern engine).
//! Every test uses its own topics, consumer group and database, so they run in parallel.

mod common;

mod alerts;
mod allowlist;
mod chdb;
mod clickhouse_cluster;
mod clickhouse_roundtrip;
mod cluster;
mod collect;
mod delivery;
mod gitlab_coverage;
#[path = "../gitlab_double/mod.rs"]
mod gitlab_double;
mod gitlab_sync;
mod ingest;
mod kafka_cluster;
mod kafka_roundtrip;
mod local_services;
mod migrations;
mod private_clickhouse;
mod privileges;
mod queries;
mod report;
mod resilience;
mod seal;
mod siem;
#[path = "../siem_fixtures/mod.rs"]
mod siem_fixtures;
mod sink;
mod tls;
mod token_use;
