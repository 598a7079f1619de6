//! Alerting: in-stream rules over token-use records and allowlist / token-lifecycle audit
//! events, with suppression and at-least-once outputs.
//!
//! - [`settings`]: the `[alerting]` configuration.
//! - [`rules`]: pure, stateless checks (one function per built-in rule) → [`rules::Finding`].
//! - [`edges`]: the memory of source → target edges behind the new-edge rule.
//! - [`engine`]: pure: findings → exceptions → suppression → [`Alert`] rows. No I/O, no clock.
//! - [`id`]: the stable alert id.
//! - [`output`]: Kafka topic and signed HTTP webhook, acknowledged before offsets commit.
//! - [`hydrate`]: start-up state from ClickHouse (known edges, open alerts).
//! - [`query`]: `tokentrail alerts list|show|ack`.

pub mod cli;
pub mod edges;
pub mod engine;
pub mod hydrate;
pub mod id;
pub mod output;
pub mod query;
pub mod rules;
pub mod settings;

use serde::{Deserialize, Serialize};

pub use engine::AlertEngine;
pub use settings::{AlertingSettings, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acked,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acked => "acked",
        }
    }
}

/// One alert as stored (a row of `alerts`) and as sent (Kafka value, webhook body).
/// `event_time_ms` and the actor/job fields describe the latest triggering event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub rule: String,
    pub severity: Severity,
    pub summary: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub source_project_path: String,
    pub target_project_path: String,
    pub actor_id: i64,
    pub actor_kind: String,
    pub action: String,
    pub job_id: Option<i64>,
    pub event_time_ms: i64,
    /// Rule-specific context (ids, record key, reason) as a JSON object.
    pub details: serde_json::Value,
    pub status: AlertStatus,
    pub acked_by: String,
}

/// An alert row produced by the engine. `new` is true for the first row of an alert id in
/// this process's history: only those page (webhook); updates only refresh the count.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub alert: Alert,
    pub new: bool,
}

/// Hands out `updated_at_ms` versions for alert rows: wall-clock milliseconds, but strictly
/// increasing within the process, so two updates of one alert in the same millisecond still
/// order correctly in the ReplacingMergeTree.
#[derive(Debug, Default)]
pub struct RowVersions {
    last: i64,
}

impl RowVersions {
    pub fn next(&mut self, now_ms: i64) -> i64 {
        self.last = now_ms.max(self.last + 1);
        self.last
    }
}
