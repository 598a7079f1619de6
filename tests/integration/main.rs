//! Integration tests against the real services started by `deploy/local/services start`
//! (Kafka 4.x in KRaft mode, ClickHouse 18.16, and chdb for the modern engine).
//! Every test uses its own topics, consumer group and database, so they run in parallel.

mod common;

mod alerts;
mod chdb;
mod clickhouse_roundtrip;
mod ingest;
mod kafka_roundtrip;
mod migrations;
mod token_use;
