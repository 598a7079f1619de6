//! Alerting: in-stream rules over token-use records and allowlist / token-lifecycle audit
//! events, with suppression and at-least-once outputs.
//!
//! - [`settings`]: the `[alerting]` configuration.
//! - [`rule_id`]: the rules' names.
//! - [`rules`]: the registry, one module per built-in rule (a pure check) → [`rules::Finding`].
//! - [`edges`]: the memory of source → target edges behind the new-edge rule.
//! - [`engine`]: pure: findings → exceptions → suppression → [`Alert`] rows. No I/O, no clock.
//! - [`id`]: the stable alert id.
//! - [`output`]: Kafka topic and signed HTTP webhook, acknowledged before offsets commit.
//! - [`hydrate`]: start-up state from ClickHouse (known edges, open alerts).
//! - [`query`]: `tokentrail alerts list|show|ack`.

pub mod edges;
pub mod engine;
pub mod hydrate;
pub mod id;
pub mod output;
pub mod query;
pub mod rule_id;
pub mod rules;
pub mod settings;

pub use crate::model::{Alert, AlertStatus};
pub use engine::AlertEngine;
pub use settings::{AlertingSettings, Severity};

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
