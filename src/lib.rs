//! tokentrail: traceability for GitLab CI job tokens.
//!
//! GitLab audit-event streams and webhooks arrive in Kafka; tokentrail normalizes them
//! ([`normalize`]), correlates job-token authentications with the resource events they led to
//! ([`correlate`]), and batch-writes everything to ClickHouse ([`store`]) through the
//! at-least-once, replay-safe pipeline in [`ingest`]. See ARCHITECTURE.md.

pub mod alert;
pub mod allocator;
pub mod cli;
pub mod collect;
pub mod config;
pub mod config_core;
pub mod correlate;
pub mod diagnose;
pub mod gitlab;
pub mod hashing;
pub mod ingest;
pub mod kafka;
pub mod model;
pub mod normalize;
pub mod output_escape;
pub mod publish;
pub mod query;
pub mod report;
pub mod retry;
pub mod siem;
pub mod signals;
pub mod simulate;
pub mod store;
pub mod telemetry;
