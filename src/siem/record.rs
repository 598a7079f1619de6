//! The records the SIEM feed exports, as read back from ClickHouse: the tables' own read rows
//! (`StoredTokenUse`, `StoredAlert`) and the lifecycle row. They are plain data; the format
//! mappers are pure functions of them, so the same record always renders to the same bytes.

use serde::{Deserialize, Serialize};

use crate::model::ActorKind;
pub use crate::store::tables::alerts::StoredAlert;
pub use crate::store::tables::token_use::StoredTokenUse;

/// A row of `token_lifecycle`: an access token, deploy token or deploy key changing state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRecord {
    pub dedup_key: String,
    pub event_time_ms: i64,
    /// The GitLab audit event type, e.g. `project_access_token_created`.
    pub event_type: String,
    pub token_kind: String,
    /// `created`, `revoked`, `deleted`, `creation_failed`, ...
    pub operation: String,
    pub token_id: Option<i64>,
    pub scope_type: String,
    pub scope_id: Option<i64>,
    pub scope_path: String,
    pub author_id: i64,
    pub author_name: String,
    pub actor_kind: ActorKind,
    pub target_details: String,
}

/// One exportable record of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum SiemRecord {
    TokenUse(StoredTokenUse),
    Lifecycle(LifecycleRecord),
    Alert(StoredAlert),
}

/// The kind of a record: also the syslog MSGID and the ClickHouse table it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    TokenUse,
    TokenLifecycle,
    Alert,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [
        RecordKind::TokenUse,
        RecordKind::TokenLifecycle,
        RecordKind::Alert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::TokenUse => "token_use",
            RecordKind::TokenLifecycle => "token_lifecycle",
            RecordKind::Alert => "alert",
        }
    }
}

/// A format-neutral severity, mapped to each format's own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Severity {
        match text.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" => Severity::Informational,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => Severity::Unknown,
        }
    }

    pub fn caption(self) -> &'static str {
        match self {
            Severity::Unknown => "Unknown",
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// The generic verb of a token-use action (`<resource>.<verb>` in the correlator's
/// vocabulary, e.g. `repository.read`, `package.write`, `pipeline.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionVerb {
    Read,
    Write,
    Trigger,
    /// `auth`: a job-token authentication with no resource event found (`auth_only`).
    AuthOnly,
    Unknown,
}

pub fn action_verb(action: &str) -> ActionVerb {
    if action == "auth" {
        return ActionVerb::AuthOnly;
    }
    match action.rsplit_once('.').map(|(_, verb)| verb) {
        Some("read" | "api_read") => ActionVerb::Read,
        Some("write") => ActionVerb::Write,
        Some("trigger") => ActionVerb::Trigger,
        _ => ActionVerb::Unknown,
    }
}

/// How a lifecycle operation changes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleChange {
    Created,
    /// Revoked, deleted or removed: the credential can no longer be used.
    Removed,
    /// Reset, rotated, updated: the token still exists in another state.
    Changed,
    Other,
}

pub fn lifecycle_change(operation: &str) -> LifecycleChange {
    match operation {
        "created" | "added" | "creation_failed" => LifecycleChange::Created,
        "revoked" | "deleted" | "removed" | "destroyed" => LifecycleChange::Removed,
        "reset" | "rotated" | "updated" | "regenerated" => LifecycleChange::Changed,
        _ => LifecycleChange::Other,
    }
}

/// GitLab records failed attempts with a `_failed` suffix (e.g. `creation_failed`).
pub fn lifecycle_failed(operation: &str) -> bool {
    operation.ends_with("_failed")
}

/// How the feed describes a token-use row (the row itself is the table's, declared in
/// src/store/tables/token_use.rs).
impl StoredTokenUse {
    /// The one-line description CEF and OCSF carry.
    pub fn message(&self) -> String {
        let t = &self.token_use;
        if t.action == "auth" {
            format!(
                "CI job token of {} authenticated (no resource event correlated)",
                t.source_project_path
            )
        } else {
            format!(
                "CI job token of {} used for {} on {}",
                t.source_project_path, t.action, t.target_project_path
            )
        }
    }

    /// A cross-project use that was not on the target's allowlist is worth a look: GitLab
    /// allowed it (allowlist enforcement off), but the inbound allowlist would not have.
    pub fn severity(&self) -> Severity {
        let t = &self.token_use;
        if !t.same_project && t.allowlisted == Some(false) {
            Severity::Low
        } else {
            Severity::Informational
        }
    }
}

impl LifecycleRecord {
    pub fn severity(&self) -> Severity {
        if lifecycle_failed(&self.operation) {
            Severity::Low
        } else {
            Severity::Informational
        }
    }
}

/// An alert state as the feed exports it (the row is the table's, declared in
/// src/store/tables/alerts.rs).
impl StoredAlert {
    pub fn severity(&self) -> Severity {
        Severity::parse(self.alert.severity.as_str())
    }
}

impl SiemRecord {
    pub fn kind(&self) -> RecordKind {
        match self {
            SiemRecord::TokenUse(_) => RecordKind::TokenUse,
            SiemRecord::Lifecycle(_) => RecordKind::TokenLifecycle,
            SiemRecord::Alert(_) => RecordKind::Alert,
        }
    }

    /// A stable identifier: the same record (or the same alert state) always has the same id,
    /// so a SIEM can drop the duplicates that at-least-once delivery may produce.
    pub fn id(&self) -> String {
        match self {
            SiemRecord::TokenUse(r) => r.record_key.clone(),
            SiemRecord::Lifecycle(r) => r.dedup_key.clone(),
            SiemRecord::Alert(r) => format!("{}@{}", r.alert.alert_id, r.updated_at_ms),
        }
    }

    /// When the thing happened (alerts: when the alert state was last updated).
    pub fn time_ms(&self) -> i64 {
        match self {
            SiemRecord::TokenUse(r) => r.token_use.event_time_ms,
            SiemRecord::Lifecycle(r) => r.event_time_ms,
            SiemRecord::Alert(r) => r.updated_at_ms,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            SiemRecord::TokenUse(r) => r.severity(),
            SiemRecord::Lifecycle(r) => r.severity(),
            SiemRecord::Alert(r) => r.severity(),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds: `2025-01-02T03:04:05.678Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_the_action_vocabulary() {
        assert_eq!(action_verb("repository.read"), ActionVerb::Read);
        assert_eq!(action_verb("repository.api_read"), ActionVerb::Read);
        assert_eq!(action_verb("package.write"), ActionVerb::Write);
        assert_eq!(action_verb("pipeline.trigger"), ActionVerb::Trigger);
        assert_eq!(action_verb("auth"), ActionVerb::AuthOnly);
        assert_eq!(action_verb("repository.unknown"), ActionVerb::Unknown);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
