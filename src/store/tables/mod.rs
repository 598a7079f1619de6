//! The stored tables, their inserted columns, and the RowBinary encoders that fill them.
//!
//! The column lists here are the contract with `schemas/clickhouse/*.sql`: an insert names its
//! columns explicitly, so MATERIALIZED/ALIAS columns added by newer migrations never change
//! the encoding. The `schema_matches_encoders` integration test checks both agree.
//!
//! A table that is read back has its own module (`alerts`, `token_use`): columns, encoder,
//! select list and read row together. A read row is the model type plus the stored-only
//! columns, read column by column in the encoder's order ([`read_row::ReadRow`]), so the
//! fields are declared once, in `crate::model`.

pub mod alerts;
pub mod read_row;
mod sort_key;
pub mod token_use;

pub use sort_key::{SortKey, TimePrecision};

use super::rowbinary::RowWriter;
use crate::model::{AllowlistChange, AuditEvent, JobInfo, TokenLifecycle, WebhookEvent};

/// Where a row came from in Kafka; stored so every row can be traced to its message.
#[derive(Debug, Clone, Copy)]
pub struct KafkaOrigin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The stored tables. Within a batch the writer stores [`Table::is_written_first`] tables
/// before the rest, which it writes concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Alerts,
    AuditEvents,
    WebhookEvents,
    Jobs,
    TokenUse,
    AllowlistChanges,
    TokenLifecycle,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Alerts,
        Table::AuditEvents,
        Table::WebhookEvents,
        Table::Jobs,
        Table::TokenUse,
        Table::AllowlistChanges,
        Table::TokenLifecycle,
    ];

    /// Alerts are stored before any other table of a batch, so a stored token-use record
    /// implies its alert row is stored: the new-edge rule hydrates its memory from `token_use`
    /// at start-up and would not raise the alert again after a crash between the two.
    pub fn is_written_first(self) -> bool {
        matches!(self, Table::Alerts)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Table::AuditEvents => "audit_events",
            Table::WebhookEvents => "webhook_events",
            Table::Jobs => "jobs",
            Table::TokenUse => "token_use",
            Table::AllowlistChanges => "allowlist_changes",
            Table::TokenLifecycle => "token_lifecycle",
            Table::Alerts => "alerts",
        }
    }

    /// The inserted (stored, portable) columns, in RowBinary order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::AuditEvents => &[
                "dedup_key",
                "id",
                "stream_only",
                "event_type",
                "author_id",
                "author_name",
                "author_class",
                "actor_kind",
                "entity_id",
                "entity_type",
                "entity_path",
                "target_id",
                "target_type",
                "target_details",
                "ip_address",
                "created_at_ms",
                "details",
                "kafka_topic",
                "kafka_partition",
                "kafka_offset",
                "ingested_at_ms",
            ],
            Table::WebhookEvents => &[
                "dedup_key",
                "event_header",
                "object_kind",
                "project_id",
                "project_path",
                "event_time_ms",
                "payload",
                "kafka_topic",
                "kafka_partition",
                "kafka_offset",
                "ingested_at_ms",
            ],
            Table::Jobs => &[
                "job_id",
                "job_name",
                "project_id",
                "project_path",
                "pipeline_id",
                "user_id",
                "username",
                "git_ref",
                "sha",
                "runner_id",
                "runner_description",
                "status",
                "started_at_ms",
                "finished_at_ms",
                "source_pipeline_id",
                "source_project_id",
                "source_project_path",
                "updated_at_ms",
            ],
            Table::TokenUse => token_use::COLUMNS,
            Table::AllowlistChanges => &[
                "dedup_key",
                "event_time_ms",
                "change",
                "protected_project_id",
                "protected_project_path",
                "member_type",
                "member_id",
                "member_path",
                "default_permissions",
                "policies",
                "author_id",
                "author_name",
                "actor_kind",
            ],
            Table::TokenLifecycle => &[
                "dedup_key",
                "event_time_ms",
                "event_type",
                "token_kind",
                "operation",
                "token_id",
                "scope_type",
                "scope_id",
                "scope_path",
                "author_id",
                "author_name",
                "actor_kind",
                "target_details",
            ],
            Table::Alerts => alerts::COLUMNS,
        }
    }

    /// `INSERT INTO db.table (cols) FORMAT RowBinary`
    pub fn insert_sql(self, database: &str) -> String {
        format!(
            "INSERT INTO {}.{} ({}) FORMAT RowBinary",
            quote_ident(database),
            self.name(),
            self.columns().join(", ")
        )
    }
}

/// Backquotes an identifier for ClickHouse SQL.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

pub fn encode_audit_event(
    ev: &AuditEvent,
    origin: KafkaOrigin<'_>,
    ingested_at_ms: i64,
    buf: &mut Vec<u8>,
) {
    RowWriter::new(buf)
        .string(&ev.dedup_key)
        .string(&ev.id)
        .bool(ev.stream_only)
        .string(&ev.event_type)
        .i64(ev.author_id)
        .string(&ev.author_name)
        .string(ev.author_class.as_deref().unwrap_or(""))
        .string(ev.actor_kind.as_str())
        .opt_i64(ev.entity_id)
        .string(&ev.entity_type)
        .string(&ev.entity_path)
        .opt_i64(ev.target_id)
        .string(&ev.target_type)
        .string(&ev.target_details)
        .string(&ev.ip_address)
        .i64(ev.created_at_ms)
        .string(&ev.details_json)
        .string(origin.topic)
        .i32(origin.partition)
        .i64(origin.offset)
        .i64(ingested_at_ms);
}

pub fn encode_webhook_event(
    ev: &WebhookEvent,
    origin: KafkaOrigin<'_>,
    ingested_at_ms: i64,
    buf: &mut Vec<u8>,
) {
    RowWriter::new(buf)
        .string(&ev.dedup_key)
        .string(&ev.event_header)
        .string(&ev.object_kind)
        .opt_i64(ev.project_id)
        .string(&ev.project_path)
        .i64(ev.event_time_ms)
        .string(&ev.payload_json)
        .string(origin.topic)
        .i32(origin.partition)
        .i64(origin.offset)
        .i64(ingested_at_ms);
}

/// `updated_at_ms` is the version column of the ReplacingMergeTree: the latest hook wins.
pub fn encode_job(job: &JobInfo, updated_at_ms: i64, buf: &mut Vec<u8>) {
    RowWriter::new(buf)
        .i64(job.job_id)
        .string(&job.job_name)
        .opt_i64(job.project_id)
        .string(&job.project_path)
        .opt_i64(job.pipeline_id)
        .opt_i64(job.user_id)
        .opt_string(job.username.as_deref())
        .opt_string(job.git_ref.as_deref())
        .opt_string(job.sha.as_deref())
        .opt_i64(job.runner_id)
        .opt_string(job.runner_description.as_deref())
        .string(&job.status)
        .opt_i64(job.started_at_ms)
        .opt_i64(job.finished_at_ms)
        .opt_i64(job.source_pipeline_id)
        .opt_i64(job.source_project_id)
        .opt_string(job.source_project_path.as_deref())
        .i64(updated_at_ms);
}

pub fn encode_allowlist_change(ev: &AuditEvent, change: &AllowlistChange, buf: &mut Vec<u8>) {
    let change_name = serde_json::to_value(change.change)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    RowWriter::new(buf)
        .string(&ev.dedup_key)
        .i64(ev.created_at_ms)
        .string(&change_name)
        .opt_i64(change.protected_project_id)
        .string(&change.protected_project_path)
        .opt_string(change.member_type.as_deref())
        .opt_i64(change.member_id)
        .opt_string(change.member_path.as_deref())
        .opt_bool(change.default_permissions)
        .strings(&change.policies)
        .i64(ev.author_id)
        .string(&ev.author_name)
        .string(ev.actor_kind.as_str());
}

pub fn encode_token_lifecycle(ev: &AuditEvent, tl: &TokenLifecycle, buf: &mut Vec<u8>) {
    RowWriter::new(buf)
        .string(&ev.dedup_key)
        .i64(ev.created_at_ms)
        .string(&ev.event_type)
        .string(&tl.token_kind)
        .string(&tl.operation)
        .opt_i64(tl.token_id)
        .string(&tl.scope_type)
        .opt_i64(tl.scope_id)
        .string(&tl.scope_path)
        .i64(ev.author_id)
        .string(&ev.author_name)
        .string(ev.actor_kind.as_str())
        .string(&ev.target_details);
}
