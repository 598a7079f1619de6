//! `[alerting]` settings: which rules run, how loud they are, their parameters, exceptions,
//! the suppression window and the outputs. Loaded with the rest of [`crate::config::Settings`];
//! [`AlertingSettings::validate`] names the key of every error.

use serde::{Deserialize, Serialize};

use super::rule_id::RuleId;
use crate::config_core::{ConfigError, Secret};
use crate::model::ActorKind;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSettings {
    /// Master switch: when false no rule runs and no alert is written.
    pub enabled: bool,
    /// Findings of the same rule for the same (source, target) inside one window of event
    /// time (fixed buckets, so replays land in the same one) update one alert's count.
    pub suppression_window_ms: i64,
    pub rules: RuleSettings,
    pub outputs: OutputSettings,
}

pub use crate::model::Severity;

/// Silences a rule for matching alerts until `expires`. Every filter given must match; at
/// least one is required. `project`/`group` match the alert's target (the accessed project,
/// the protected project, the token's scope); `source_*` match the token-use source.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Exception {
    pub project: Option<String>,
    pub group: Option<String>,
    pub source_project: Option<String>,
    pub source_group: Option<String>,
    /// Why the exception exists (required: exceptions are reviewed).
    pub reason: String,
    /// RFC 3339 time or Unix milliseconds; compared with the event time.
    pub expires: Expiry,
}

/// An expiry as written in the file: `"2025-12-31T00:00:00Z"` or `1767139200000`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Expiry {
    #[default]
    Missing,
    Millis(i64),
    Text(String),
}

impl Expiry {
    /// Unix milliseconds, or why the value is not a time.
    pub fn to_ms(&self) -> Result<i64, String> {
        match self {
            Expiry::Missing => Err("is required (RFC 3339 or Unix milliseconds)".into()),
            Expiry::Millis(ms) => Ok(*ms),
            Expiry::Text(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                t.parse().map_err(|e| format!("{t:?}: {e}"))
            }
            Expiry::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| format!("{t:?} is not RFC 3339 or Unix milliseconds: {e}")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    pub not_allowlisted: BasicRule,
    pub allowlist_weakened: BasicRule,
    pub new_edge: NewEdgeRule,
    pub push: BasicRule,
    pub crown_jewel: CrownJewelRule,
    pub unexpected_actor: UnexpectedActorRule,
    pub token_lifecycle: TokenLifecycleRule,
    /// `tokentrail gitlab sync` found GitLab's allowlist different from the history.
    pub allowlist_drift: BasicRule,
    /// `tokentrail gitlab coverage` found a use GitLab logged and tokentrail never saw.
    pub coverage_gap: BasicRule,
}

/// What every rule's settings have.
#[derive(Debug, Clone, Copy)]
pub struct CommonRule<'a> {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: &'a [Exception],
}

impl RuleSettings {
    /// A rule's `enabled`, `severity` and `exceptions`: the one place a rule id meets its
    /// `[alerting.rules.<rule>]` table, read by the engine and by validation, so a new rule
    /// cannot compile without its exceptions being honoured.
    pub fn common(&self, rule: RuleId) -> CommonRule<'_> {
        fn of<'a>(
            enabled: bool,
            severity: Severity,
            exceptions: &'a [Exception],
        ) -> CommonRule<'a> {
            CommonRule {
                enabled,
                severity,
                exceptions,
            }
        }
        match rule {
            RuleId::NotAllowlisted => {
                let r = &self.not_allowlisted;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::AllowlistWeakened => {
                let r = &self.allowlist_weakened;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::NewEdge => {
                let r = &self.new_edge;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::Push => {
                let r = &self.push;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::CrownJewel => {
                let r = &self.crown_jewel;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::UnexpectedActor => {
                let r = &self.unexpected_actor;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::TokenLifecycle => {
                let r = &self.token_lifecycle;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::AllowlistDrift => {
                let r = &self.allowlist_drift;
                of(r.enabled, r.severity, &r.exceptions)
            }
            RuleId::CoverageGap => {
                let r = &self.coverage_gap;
                of(r.enabled, r.severity, &r.exceptions)
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicRule {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: Vec<Exception>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewEdgeRule {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: Vec<Exception>,
    /// An edge not used for this long (event time) is new again. The memory is hydrated
    /// from `token_use` over this span at start-up.
    pub lookback_ms: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrownJewelRule {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: Vec<Exception>,
    /// Case-insensitive globs (`*` = any run of characters, `/` included) on the target path.
    pub patterns: Vec<String>,
    /// Actions starting with one of these are admin-style, whatever the target.
    pub admin_action_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnexpectedActorRule {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: Vec<Exception>,
    /// Where pipelines run (the token-use source) and who may run them there.
    pub scopes: Vec<ActorScope>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorScope {
    /// A project path, or a group path (its projects and subgroups); one of the two.
    pub project: Option<String>,
    pub group: Option<String>,
    pub expected: Vec<ActorKind>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenLifecycleRule {
    pub enabled: bool,
    pub severity: Severity,
    pub exceptions: Vec<Exception>,
    /// Lifecycle operations watched (`created`, `revoked`, ...); empty = all.
    pub operations: Vec<String>,
    /// Token kinds watched (`project_access_token`, ...); empty = all.
    pub token_kinds: Vec<String>,
    /// Actor kinds that should never manage tokens.
    pub unexpected_actor_kinds: Vec<ActorKind>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSettings {
    /// Kafka topic for alerts (JSON, key = alert_id); empty disables the Kafka output.
    pub kafka_topic: String,
    pub webhook: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// `http(s)://…`; empty disables the webhook.
    pub url: String,
    /// HMAC-SHA256 key for `X-Tokentrail-Signature: sha256=<hex>`; required with a url.
    pub secret: Secret,
    pub timeout_ms: u64,
    /// Attempts per batch before the batch is failed (and replayed); 0 = retry forever.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            enabled: true,
            suppression_window_ms: 3_600_000,
            rules: RuleSettings::default(),
            outputs: OutputSettings::default(),
        }
    }
}

fn basic(severity: Severity) -> BasicRule {
    BasicRule {
        enabled: true,
        severity,
        exceptions: Vec::new(),
    }
}

impl Default for BasicRule {
    fn default() -> Self {
        basic(Severity::High)
    }
}

impl Default for NewEdgeRule {
    fn default() -> Self {
        NewEdgeRule {
            enabled: true,
            severity: Severity::Medium,
            exceptions: Vec::new(),
            lookback_ms: 30 * 24 * 3_600_000,
        }
    }
}

impl Default for CrownJewelRule {
    fn default() -> Self {
        CrownJewelRule {
            enabled: true,
            severity: Severity::Critical,
            exceptions: Vec::new(),
            patterns: Vec::new(),
            admin_action_prefixes: vec!["admin_".into(), "admin.".into()],
        }
    }
}

impl Default for UnexpectedActorRule {
    fn default() -> Self {
        UnexpectedActorRule {
            enabled: true,
            severity: Severity::Medium,
            exceptions: Vec::new(),
            scopes: Vec::new(),
        }
    }
}

impl Default for TokenLifecycleRule {
    fn default() -> Self {
        TokenLifecycleRule {
            enabled: true,
            severity: Severity::High,
            exceptions: Vec::new(),
            operations: vec!["created".into()],
            token_kinds: Vec::new(),
            unexpected_actor_kinds: vec![ActorKind::ProjectBot, ActorKind::GroupBot],
        }
    }
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            kafka_topic: "tokentrail.alerts".into(),
            webhook: WebhookSettings::default(),
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: String::new(),
            secret: Secret::default(),
            timeout_ms: 5_000,
            max_attempts: 0,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl AlertingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.suppression_window_ms <= 0 {
            return Err(invalid("alerting.suppression_window_ms", "must be > 0"));
        }
        let lists =
            RuleId::ALL.map(|rule| (rule.exceptions_key(), self.rules.common(rule).exceptions));
        let r = &self.rules;
        for (key, exceptions) in lists {
            for (i, e) in exceptions.iter().enumerate() {
                let filters = [&e.project, &e.group, &e.source_project, &e.source_group];
                if filters
                    .iter()
                    .all(|f| f.as_deref().is_none_or(str::is_empty))
                {
                    return Err(invalid(
                        key,
                        format!("[{i}]: set project, group, source_project or source_group"),
                    ));
                }
                if e.reason.trim().is_empty() {
                    return Err(invalid(key, format!("[{i}].reason must not be empty")));
                }
                e.expires
                    .to_ms()
                    .map_err(|m| invalid(key, format!("[{i}].expires {m}")))?;
            }
        }
        if r.new_edge.lookback_ms <= 0 {
            return Err(invalid(
                "alerting.rules.new_edge.lookback_ms",
                "must be > 0",
            ));
        }
        if r.crown_jewel.patterns.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "alerting.rules.crown_jewel.patterns",
                "patterns must not be empty",
            ));
        }
        for (i, s) in r.unexpected_actor.scopes.iter().enumerate() {
            if s.project.is_some() == s.group.is_some() {
                return Err(invalid(
                    "alerting.rules.unexpected_actor.scopes",
                    format!("[{i}]: set exactly one of project or group"),
                ));
            }
            if s.expected.is_empty() {
                return Err(invalid(
                    "alerting.rules.unexpected_actor.scopes",
                    format!("[{i}].expected must list at least one actor kind"),
                ));
            }
        }
        let w = &self.outputs.webhook;
        if !w.url.is_empty() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(invalid(
                    "alerting.outputs.webhook.url",
                    format!("must start with http:// or https://, got {:?}", w.url),
                ));
            }
            if w.secret.is_empty() {
                return Err(invalid(
                    "alerting.outputs.webhook.secret",
                    "required when alerting.outputs.webhook.url is set",
                ));
            }
            if w.timeout_ms == 0 || w.initial_backoff_ms == 0 {
                return Err(invalid(
                    "alerting.outputs.webhook.timeout_ms",
                    "timeout_ms and initial_backoff_ms must be > 0",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_accepts_rfc3339_and_millis() {
        assert_eq!(
            Expiry::Text("2025-06-03T10:00:00Z".into()).to_ms(),
            Ok(1_748_944_800_000)
        );
        assert_eq!(Expiry::Millis(5).to_ms(), Ok(5));
        assert_eq!(
            Expiry::Text("1748944800000".into()).to_ms(),
            Ok(1_748_944_800_000)
        );
        assert!(Expiry::Text("tomorrow".into()).to_ms().is_err());
        assert!(Expiry::Missing.to_ms().is_err());
    }

    #[test]
    fn exception_without_filter_or_expiry_is_rejected_by_key() {
        let mut s = AlertingSettings::default();
        s.rules.push.exceptions.push(Exception {
            reason: "release bot".into(),
            expires: Expiry::Millis(1),
            ..Exception::default()
        });
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("alerting.rules.push.exceptions"), "{err}");
        s.rules.push.exceptions[0].project = Some("g/p".into());
        s.validate().unwrap();
        s.rules.push.exceptions[0].expires = Expiry::Missing;
        assert!(s.validate().is_err());
    }
}
