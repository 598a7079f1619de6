//! Settings: one TOML file plus `TOKENTRAIL__SECTION__KEY` environment variables, read once
//! with the `config` crate into structs that reject unknown keys, then validated.
//!
//! Every validation error names the key it is about. Secrets are wrapped in [`Secret`], which
//! never prints its value (Debug, Display and Serialize all redact it). Both live in
//! [`crate::config_core`], below every section, so a component's own section (`siem::config`,
//! `alert::settings`, `report::settings`, `gitlab::settings`, `kafka::settings`,
//! `store::settings`, `retry::RetrySettings`) never imports this assembly of all sections.
//! Code that needs the whole [`Settings`] is above the components (`crate::cli`, `ingest`,
//! `collect`).

use std::path::Path;

use serde::{Deserialize, Serialize};

pub(crate) use crate::config_core::invalid;
pub use crate::config_core::{ConfigError, Secret, looks_secret, url_without_userinfo};
use crate::correlate::{CorrelatorConfig, DEFAULT_LATENESS_MS};

mod secret_files;
mod tls;

pub use crate::kafka::settings::{
    KafkaSaslSettings, KafkaSettings, KafkaTlsSettings, LibrdkafkaOptions,
};
pub use crate::retry::RetrySettings;
pub use crate::store::settings::{ClickHouseSettings, ClickHouseTlsSettings};
pub use tls::SASL_MECHANISMS;

/// The environment prefix; `TOKENTRAIL__KAFKA__BROKERS` sets `kafka.brokers`.
pub const ENV_PREFIX: &str = "TOKENTRAIL";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub clickhouse: ClickHouseSettings,
    pub batch: BatchSettings,
    pub retry: RetrySettings,
    pub dead_letter: DeadLetterSettings,
    pub normalize: NormalizeSettings,
    pub correlate: CorrelateSettings,
    pub telemetry: TelemetrySettings,
    pub shutdown: ShutdownSettings,
    /// `tokentrail export`: the SIEM feed (see `siem::config`).
    pub siem: crate::siem::config::SiemSettings,
    /// `tokentrail collect`: the HTTP collector (see `collect`).
    pub collect: CollectSettings,
    /// `[alerting]`: rules, exceptions, suppression and outputs (see `crate::alert::settings`).
    pub alerting: crate::alert::AlertingSettings,
    /// `tokentrail report`: the GitLab instance to link to (see `crate::report::settings`).
    pub report: crate::report::settings::ReportSettings,
    /// `tokentrail gitlab`: the GitLab API to sync allowlists from (see `crate::gitlab`).
    pub gitlab: crate::gitlab::settings::GitlabSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Flush when this many rows are buffered (all tables together).
    pub max_rows: usize,
    /// Flush when the encoded rows reach this many bytes.
    pub max_bytes: usize,
    /// Flush at least this often (milliseconds) when rows are buffered.
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterSettings {
    /// Stop the consumer when more than this share of messages in the window is dead-lettered.
    pub max_ratio: f64,
    /// Size of the sliding window (messages) the ratio is computed over; the guard only fires
    /// once the window is full, so a handful of bad messages at start-up cannot trip it.
    pub window_messages: usize,
    /// Dead-letter copies keep at most this many payload bytes; a longer payload is cut, and
    /// its original length and SHA-256 travel in headers. Keeps every copy below the
    /// dead-letter topic's `max.message.bytes` (Kafka's default is 1 MiB), so a poison message
    /// as large as `normalize.max_message_bytes` is dead-lettered, not lost.
    pub max_payload_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeSettings {
    /// Larger messages are dead-lettered as `oversize`. GitLab caps bodies at 25 MB.
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateSettings {
    /// Maximum time between a job-token authentication and its resource event.
    pub window_ms: i64,
    /// Bound on held authentications and resource events (evictions are counted).
    pub max_pending: usize,
    /// Held events above which the audit partitions ahead of the slowest, or of the
    /// webhooks, are paused until half as many are held (watermark alignment,
    /// `ingest::correlation`); at most half of `max_pending` is used.
    pub align_pending: usize,
    /// Bound on the job-id → job webhook cache used for enrichment.
    pub max_jobs: usize,
    /// How far behind the slowest partition's newest event time the correlation watermark
    /// trails: events arriving later than this are decided without waiting for partners.
    pub lateness_ms: i64,
    /// A busy (author, IP) key is decided after at most this much event time.
    pub max_hold_ms: i64,
    /// With no new events for this long (wall clock), everything held is decided, so a quiet
    /// stream still gets its records and its offsets committed. Also how long a partition
    /// that delivers nothing (an empty webhook topic after a rebalance, say) holds the
    /// watermark back (`ingest::clocks`).
    pub idle_flush_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Address of the `/metrics`, `/healthz`, `/readyz` server; empty disables it.
    pub listen: String,
    /// `text` or `json`.
    pub log_format: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// On SIGINT/SIGTERM, flush and commit within this many seconds, then exit.
    pub deadline_secs: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        // ClickHouse's work is mostly per INSERT and part: its merges cost less with fewer,
        // larger parts (benches/README.md, "Fifteenth session"). Up to two batches are in
        // memory (one with the writer, one open): 48 MiB keeps peak RSS under 300 MB.
        BatchSettings {
            max_rows: 80_000,
            max_bytes: 48 * 1024 * 1024,
            max_wait_ms: 1_000,
        }
    }
}

impl Default for DeadLetterSettings {
    fn default() -> Self {
        DeadLetterSettings {
            max_ratio: 0.5,
            window_messages: 10_000,
            max_payload_bytes: 512 * 1024,
        }
    }
}

impl Default for NormalizeSettings {
    fn default() -> Self {
        NormalizeSettings {
            max_message_bytes: 25 * 1024 * 1024,
        }
    }
}

impl Default for CorrelateSettings {
    fn default() -> Self {
        // The correlator declares its own defaults; production drives the watermark itself
        // (`ingest::correlation`), so only the lateness is taken, not the auto mode.
        let core = CorrelatorConfig::default();
        CorrelateSettings {
            window_ms: core.window_ms,
            max_pending: core.max_pending,
            // What a backlog's partitions read unevenly may pile up in the correlator. The
            // join's cost per event grows with what it holds, so this is kept well under
            // `max_pending` (benches/README.md, "Sixteenth session").
            align_pending: 10_000,
            max_jobs: core.max_jobs,
            lateness_ms: DEFAULT_LATENESS_MS,
            max_hold_ms: core.max_hold_ms,
            idle_flush_ms: 10_000,
        }
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            listen: "127.0.0.1:9464".into(),
            log_format: "text".into(),
        }
    }
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings { deadline_secs: 30 }
    }
}

/// `tokentrail collect`: the HTTP → Kafka bridge GitLab streams audit events and sends
/// webhooks to. Destinations are lists of tables, so they are set in the TOML file (the
/// `config` crate cannot express arrays of tables in environment variables).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectSettings {
    /// Address the collector listens on (`host:port`).
    pub listen: String,
    /// PEM certificate chain; with `tls_key_path`, the collector speaks HTTPS. Empty: HTTP.
    pub tls_cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert_path`.
    pub tls_key_path: String,
    /// Larger bodies get 413. GitLab caps streaming bodies at 25 MB.
    pub max_body_bytes: usize,
    /// Whole-request budget (reading the body and waiting for Kafka); past it, 503.
    pub request_timeout_secs: u64,
    /// librdkafka `message.timeout.ms`: how long a write may wait for Kafka before the
    /// request is answered 503. Kept below GitLab's 8 s streaming timeout by default.
    pub delivery_timeout_secs: u64,
    /// Requests handled at once; more are shed with 503 instead of queueing in memory.
    pub max_concurrent_requests: usize,
    /// Producer buffer (librdkafka `queue.buffering.max.kbytes`); when full, 503.
    pub max_buffered_kbytes: u32,
    /// The `Retry-After` value (seconds) sent with every 503.
    pub retry_after_secs: u64,
    /// Accepted clock skew (seconds) for the `webhook-timestamp` of signed webhooks.
    pub signature_tolerance_secs: u64,
    /// A connection must send a request's complete headers within this many seconds of
    /// opening, or of its previous answer (the keep-alive idle limit); else it is closed.
    pub header_read_timeout_secs: u64,
    /// Open connections at most; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Per-connection read buffer (hyper `max_buf_size`): request line plus headers beyond
    /// it get 431. At least 8192.
    pub max_header_bytes: usize,
    /// Audit-event streaming destinations (`[[collect.audit_streams]]`).
    pub audit_streams: Vec<AuditStreamDestination>,
    /// Webhook endpoints (`[[collect.webhooks]]`).
    pub webhooks: Vec<WebhookDestination>,
}

/// One GitLab audit-event streaming destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditStreamDestination {
    /// URL path GitLab posts to, e.g. `/gitlab/audit-events`.
    pub path: String,
    /// The destination's verification token (`X-Gitlab-Event-Streaming-Token`).
    pub token: Secret,
    /// Kafka topic the events are produced to.
    pub topic: String,
}

/// One GitLab webhook endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDestination {
    /// URL path GitLab posts to, e.g. `/gitlab/webhooks`.
    pub path: String,
    /// The webhook's secret token (`X-Gitlab-Token`); empty only with `signing_secret`.
    #[serde(default)]
    pub token: Secret,
    /// Standard-Webhooks signing token; when set, `webhook-signature` must verify.
    /// Base64, optionally prefixed `whsec_`, decoded as the spec's libraries do.
    #[serde(default)]
    pub signing_secret: Secret,
    /// Kafka topic the webhooks are produced to.
    pub topic: String,
}

impl Default for CollectSettings {
    fn default() -> Self {
        CollectSettings {
            listen: "127.0.0.1:8080".into(),
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
            max_body_bytes: 25 * 1024 * 1024,
            request_timeout_secs: 7,
            delivery_timeout_secs: 5,
            max_concurrent_requests: 256,
            max_buffered_kbytes: 256 * 1024,
            retry_after_secs: 10,
            signature_tolerance_secs: 300,
            header_read_timeout_secs: 10,
            max_connections: 4096,
            max_header_bytes: 16 * 1024,
            audit_streams: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

impl CollectSettings {
    /// Checks what serde cannot. Destinations may be absent here (the other subcommands load
    /// the same file); [`CollectSettings::require_destinations`] is checked by `collect`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "collect.listen",
                format!("must be host:port, got {:?}", self.listen),
            ));
        }
        if self.tls_cert_path.is_empty() != self.tls_key_path.is_empty() {
            return Err(invalid(
                "collect.tls_key_path",
                "set both collect.tls_cert_path and collect.tls_key_path, or neither",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("collect.max_body_bytes", "must be > 0"));
        }
        if self.delivery_timeout_secs == 0 {
            return Err(invalid("collect.delivery_timeout_secs", "must be > 0"));
        }
        if self.request_timeout_secs <= self.delivery_timeout_secs {
            return Err(invalid(
                "collect.request_timeout_secs",
                "must be greater than collect.delivery_timeout_secs, so a Kafka outage is \
                 answered with 503 before the request times out",
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err(invalid("collect.max_concurrent_requests", "must be > 0"));
        }
        if self.max_buffered_kbytes == 0 {
            return Err(invalid("collect.max_buffered_kbytes", "must be > 0"));
        }
        if self.retry_after_secs == 0 {
            return Err(invalid("collect.retry_after_secs", "must be > 0"));
        }
        if self.header_read_timeout_secs == 0 {
            return Err(invalid("collect.header_read_timeout_secs", "must be > 0"));
        }
        if self.max_connections == 0 {
            return Err(invalid("collect.max_connections", "must be > 0"));
        }
        if self.max_header_bytes < 8192 {
            return Err(invalid("collect.max_header_bytes", "must be at least 8192"));
        }
        let mut paths = std::collections::HashSet::new();
        for d in &self.audit_streams {
            check_destination("collect.audit_streams", &d.path, &d.topic, &mut paths)?;
            if d.token.is_empty() {
                return Err(invalid(
                    "collect.audit_streams.token",
                    format!("destination {:?} needs its verification token", d.path),
                ));
            }
            check_token("collect.audit_streams.token", &d.path, &d.token)?;
        }
        for d in &self.webhooks {
            check_destination("collect.webhooks", &d.path, &d.topic, &mut paths)?;
            if d.token.is_empty() && d.signing_secret.is_empty() {
                return Err(invalid(
                    "collect.webhooks.token",
                    format!(
                        "webhook {:?} needs a token, a signing_secret, or both",
                        d.path
                    ),
                ));
            }
            if !d.token.is_empty() {
                check_token("collect.webhooks.token", &d.path, &d.token)?;
            }
            let signing = d.signing_secret.expose();
            let b64 = signing.strip_prefix("whsec_").unwrap_or(signing);
            let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64);
            if !signing.is_empty() && !matches!(decoded, Ok(k) if !k.is_empty()) {
                return Err(invalid(
                    "collect.webhooks.signing_secret",
                    format!(
                        "webhook {:?}: must be base64, optionally after whsec_",
                        d.path
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn require_destinations(&self) -> Result<(), ConfigError> {
        if self.audit_streams.is_empty() && self.webhooks.is_empty() {
            return Err(invalid(
                "collect.audit_streams",
                "nothing to collect: add a [[collect.audit_streams]] or [[collect.webhooks]] \
                 table to the configuration file",
            ));
        }
        Ok(())
    }
}

/// Shared tokens are guessable below 16 characters (GitLab's verification tokens have 16–24).
fn check_token(key: &'static str, path: &str, token: &Secret) -> Result<(), ConfigError> {
    if token.expose().chars().count() < 16 {
        return Err(invalid(
            key,
            format!("the token of {path:?} must have at least 16 characters"),
        ));
    }
    Ok(())
}

fn check_destination(
    key: &'static str,
    path: &str,
    topic: &str,
    seen: &mut std::collections::HashSet<String>,
) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#', '{', '}', '*']) {
        return Err(invalid(
            key,
            format!("path must start with / and be a plain path, got {path:?}"),
        ));
    }
    // /healthz and /readyz are served on the collector's port too.
    if !seen.insert(path.to_string()) || path == "/healthz" || path == "/readyz" {
        return Err(invalid(
            key,
            format!("path {path:?} is used twice or reserved"),
        ));
    }
    if topic.trim().is_empty() {
        return Err(invalid(key, format!("destination {path:?} needs a topic")));
    }
    Ok(())
}

impl Settings {
    /// Loads defaults, then the optional TOML file, then `TOKENTRAIL__…` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`], with an explicit environment map (tests use this instead of
    /// mutating the process environment).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            // Always TOML, whatever the file is named.
            let file = config::File::new(&path.to_string_lossy(), config::FileFormat::Toml);
            builder = builder.add_source(file.required(true));
        }
        let env_source = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("kafka.audit_topics")
            .with_list_parse_key("kafka.webhook_topics")
            .try_parsing(true)
            .source(env);
        let mut tree: config::Value = builder.add_source(env_source).build()?.try_deserialize()?;
        secret_files::resolve(&mut tree)?;
        let settings: Settings = tree.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values that serde cannot; each error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must not be empty"));
        }
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if k.audit_topics.is_empty() && k.webhook_topics.is_empty() {
            return Err(invalid(
                "kafka.audit_topics",
                "no topics to consume: set kafka.audit_topics or kafka.webhook_topics",
            ));
        }
        if let Some(t) = k.audit_topics.iter().find(|t| k.webhook_topics.contains(t)) {
            return Err(invalid(
                "kafka.webhook_topics",
                format!(
                    "topic {t:?} is also listed in kafka.audit_topics; a topic carries one kind"
                ),
            ));
        }
        if k.dead_letter_topic.trim().is_empty() {
            return Err(invalid("kafka.dead_letter_topic", "must not be empty"));
        }
        if k.max_prefetch_kbytes == 0 {
            return Err(invalid("kafka.max_prefetch_kbytes", "must be > 0"));
        }
        for reserved in [
            "group.id",
            "group.instance.id",
            "bootstrap.servers",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "queued.max.messages.kbytes",
            "enable.idempotence",
            "acks",
        ] {
            if k.options.0.contains_key(reserved) {
                return Err(invalid(
                    "kafka.options",
                    format!("{reserved:?} is managed by tokentrail; use the dedicated setting"),
                ));
            }
        }
        tls::validate_kafka(&k.tls, &k.sasl, &k.options)?;
        let c = &self.clickhouse;
        if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(invalid(
                "clickhouse.url",
                format!(
                    "must start with http:// or https://, got {:?}",
                    url_without_userinfo(&c.url)
                ),
            ));
        }
        tls::validate_clickhouse(&c.url, &c.tls)?;
        if c.database.trim().is_empty() {
            return Err(invalid("clickhouse.database", "must not be empty"));
        }
        // TTL arithmetic is on DateTime, which ends in 2106: a longer retention would wrap
        // into the past and expire every row at once.
        if c.retention_days > 10_000 {
            return Err(invalid(
                "clickhouse.retention_days",
                format!(
                    "must be at most 10000 (0 keeps rows forever), got {}",
                    c.retention_days
                ),
            ));
        }
        if !c
            .cluster
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(invalid(
                "clickhouse.cluster",
                format!(
                    "must be a cluster name of remote_servers (letters, digits, '_', '-'), got {:?}",
                    c.cluster
                ),
            ));
        }
        if c.insert_timeout_secs == 0 {
            return Err(invalid("clickhouse.insert_timeout_secs", "must be > 0"));
        }
        if self.batch.max_rows == 0 {
            return Err(invalid("batch.max_rows", "must be > 0"));
        }
        if self.batch.max_bytes < 1024 {
            return Err(invalid("batch.max_bytes", "must be at least 1024"));
        }
        if self.batch.max_wait_ms == 0 {
            return Err(invalid("batch.max_wait_ms", "must be > 0"));
        }
        if self.retry.initial_backoff_ms == 0 {
            return Err(invalid("retry.initial_backoff_ms", "must be > 0"));
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return Err(invalid(
                "retry.max_backoff_ms",
                "must be >= retry.initial_backoff_ms",
            ));
        }
        let d = &self.dead_letter;
        if !(d.max_ratio > 0.0 && d.max_ratio <= 1.0) {
            return Err(invalid(
                "dead_letter.max_ratio",
                format!("must be in (0, 1], got {}", d.max_ratio),
            ));
        }
        if d.window_messages == 0 {
            return Err(invalid("dead_letter.window_messages", "must be > 0"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&d.max_payload_bytes) {
            return Err(invalid(
                "dead_letter.max_payload_bytes",
                format!(
                    "must be between 1024 and 67108864, got {}",
                    d.max_payload_bytes
                ),
            ));
        }
        if self.normalize.max_message_bytes == 0 {
            return Err(invalid("normalize.max_message_bytes", "must be > 0"));
        }
        if self.correlate.window_ms <= 0 {
            return Err(invalid("correlate.window_ms", "must be > 0"));
        }
        if self.correlate.max_pending == 0 {
            return Err(invalid("correlate.max_pending", "must be > 0"));
        }
        if self.correlate.align_pending == 0 {
            return Err(invalid("correlate.align_pending", "must be > 0"));
        }
        if self.correlate.max_jobs == 0 {
            return Err(invalid("correlate.max_jobs", "must be > 0"));
        }
        if self.correlate.lateness_ms < 0 {
            return Err(invalid("correlate.lateness_ms", "must be >= 0"));
        }
        if self.correlate.max_hold_ms < 2 * self.correlate.window_ms {
            return Err(invalid(
                "correlate.max_hold_ms",
                "must be at least twice correlate.window_ms",
            ));
        }
        if self.correlate.idle_flush_ms == 0 {
            return Err(invalid("correlate.idle_flush_ms", "must be > 0"));
        }
        let t = &self.telemetry;
        if !t.listen.is_empty() && t.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "telemetry.listen",
                format!("must be host:port or empty, got {:?}", t.listen),
            ));
        }
        if t.log_format != "text" && t.log_format != "json" {
            return Err(invalid(
                "telemetry.log_format",
                format!("must be \"text\" or \"json\", got {:?}", t.log_format),
            ));
        }
        if self.shutdown.deadline_secs == 0 {
            return Err(invalid("shutdown.deadline_secs", "must be > 0"));
        }
        self.siem.validate()?;
        self.collect.validate()?;
        self.alerting.validate()?;
        self.report.validate()?;
        self.gitlab.validate()
    }

    /// The effective settings as TOML, secrets redacted (`tokentrail ingest --print-config`).
    pub fn to_redacted_toml(&self) -> String {
        let value = serde_json::to_value(self).expect("settings serialize");
        json_to_toml(&value, "")
    }
}

/// Small TOML writer for the settings tree (tables of scalars, string arrays and string maps).
fn json_to_toml(value: &serde_json::Value, prefix: &str) -> String {
    use serde_json::Value;
    let mut out = String::new();
    let Value::Object(map) = value else {
        return out;
    };
    let mut tables = Vec::new();
    let mut array_tables = Vec::new();
    for (k, v) in map {
        match v {
            Value::Object(_) => tables.push((k, v)),
            // Arrays of tables (`[[collect.webhooks]]`); an empty array stays `k = []`.
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                array_tables.push((k, items))
            }
            other => out.push_str(&format!("{} = {}\n", toml_key(k), other)),
        }
    }
    let qualified = |k: &String| {
        if prefix.is_empty() {
            toml_key(k)
        } else {
            format!("{prefix}.{}", toml_key(k))
        }
    };
    for (k, items) in array_tables {
        let name = qualified(k);
        for item in items {
            out.push_str(&format!("\n[[{name}]]\n"));
            out.push_str(&json_to_toml(item, &name));
        }
    }
    for (k, v) in tables {
        let name = qualified(k);
        out.push_str(&format!("\n[{name}]\n"));
        out.push_str(&json_to_toml(v, &name));
    }
    out
}

fn toml_key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// An environment for `Settings::load_with_env` in tests, from `(name, value)` pairs.
#[cfg(test)]
pub(crate) fn test_env(
    pairs: &[(&str, &str)],
) -> Option<std::collections::HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::test_env as env;
    use super::*;

    // The `[siem]` section (`siem::config`), loaded and printed with the rest.
    #[test]
    fn the_selected_sink_must_be_complete_and_errors_name_the_key() {
        let err =
            Settings::load_with_env(None, env(&[("TOKENTRAIL__SIEM__SINK", "hec")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: siem.hec.token: must be set for the hec sink"
        );
        let s = Settings::load_with_env(
            None,
            env(&[
                ("TOKENTRAIL__SIEM__SINK", "syslog"),
                ("TOKENTRAIL__SIEM__FORMAT", "cef"),
                ("TOKENTRAIL__SIEM__SYSLOG__ADDRESS", "siem.example:6514"),
                ("TOKENTRAIL__SIEM__SYSLOG__TLS", "true"),
            ]),
        )
        .unwrap();
        assert!(s.siem.syslog.tls);
        assert_eq!(s.siem.format, crate::siem::encode::Format::Cef);
    }

    #[test]
    fn the_hec_token_is_never_printed() {
        let mut s = Settings::default();
        s.siem.hec.token = Secret::new("hec-secret-123");
        assert!(!s.to_redacted_toml().contains("hec-secret-123"));
        assert!(!format!("{s:?}").contains("hec-secret-123"));
    }

    #[test]
    fn printed_settings_carry_no_credential() {
        let mut s = Settings::default();
        s.clickhouse.url = "https://admin:Passw0rd@ch.example:8443/".into();
        s.clickhouse.password = Secret::new("Passw0rd");
        for (k, v) in [
            ("sasl.oauthbearer.config", "clientSecret=Passw0rd"),
            ("sasl.username", "Passw0rd-user"),
            ("sasl.password", "Passw0rd"),
            ("ssl.key.password", "Passw0rd"),
            ("ssl.keystore.password", "Passw0rd"),
        ] {
            s.kafka.options.0.insert(k.into(), v.into());
        }
        let printed = format!("{}\n{s:?}", s.to_redacted_toml());
        assert!(!printed.contains("Passw0rd"), "{printed}");
        assert!(
            printed.contains("https://***@ch.example:8443/"),
            "{printed}"
        );
        let plain = Settings::default().to_redacted_toml();
        assert!(
            plain.contains("url = \"http://127.0.0.1:18123\""),
            "{plain}"
        );
    }

    #[test]
    fn env_overrides_defaults_and_parses_lists() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("TOKENTRAIL__KAFKA__BROKERS", "k1:9092,k2:9092"),
                ("TOKENTRAIL__KAFKA__AUDIT_TOPICS", "a,b"),
                ("TOKENTRAIL__BATCH__MAX_ROWS", "500"),
            ]),
        )
        .unwrap();
        assert_eq!(s.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(s.kafka.audit_topics, vec!["a", "b"]);
        assert_eq!(s.batch.max_rows, 500);
    }

    #[test]
    fn unknown_key_in_file_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[batch]\nmax_rowz = 3\n").unwrap();
        let err = Settings::load_with_env(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("max_rowz"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let err = Settings::load_with_env(None, env(&[("TOKENTRAIL__BATCH__MAX_ROWS", "0")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: batch.max_rows: must be > 0"
        );
        let err = Settings::load_with_env(
            None,
            env(&[("TOKENTRAIL__CLICKHOUSE__URL", "tcp://x:9000")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("clickhouse.url"), "{err}");
        let err =
            Settings::load_with_env(None, env(&[("TOKENTRAIL__CORRELATE__ALIGN_PENDING", "0")]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: correlate.align_pending: must be > 0"
        );
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let mut s = Settings::default();
        s.clickhouse.password = Secret::new("hunter2");
        let opts = &mut s.kafka.options.0;
        opts.insert("sasl.password".into(), "hunter3".into());
        opts.insert("security.protocol".into(), "SASL_SSL".into());
        let toml = s.to_redacted_toml();
        let debug = format!("{s:?}");
        for text in [&toml, &debug] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("hunter3"), "{text}");
        }
        assert!(toml.contains("SASL_SSL"));
        assert!(toml.contains("[kafka.options]"), "{toml}");
    }

    const COLLECT_TOML: &str = r#"
[collect]
listen = "127.0.0.1:0"
[[collect.audit_streams]]
path = "/gitlab/audit-events"
token = "stream-secret-1-Zq8e"
topic = "gitlab.audit_events"
[[collect.audit_streams]]
path = "/gitlab/audit-events/other"
token = "stream-secret-2-Zq8e"
topic = "other.audit_events"
[[collect.webhooks]]
path = "/gitlab/webhooks"
token = "hook-secret-Pw3xY7kL"
signing_secret = "whsec_c2lnbmluZw=="
topic = "gitlab.webhooks"
"#;

    fn load_toml(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load_with_env(Some(&path), env(&[]))
    }

    #[test]
    fn collect_destinations_load_from_toml_and_never_print_secrets() {
        let s = load_toml(COLLECT_TOML).unwrap();
        assert_eq!(s.collect.audit_streams.len(), 2);
        assert_eq!(s.collect.audit_streams[1].topic, "other.audit_events");
        assert_eq!(
            s.collect.webhooks[0].signing_secret.expose(),
            "whsec_c2lnbmluZw=="
        );
        assert_eq!(s.collect.max_body_bytes, 25 * 1024 * 1024);
        s.collect.require_destinations().unwrap();
        let toml = s.to_redacted_toml();
        let debug = format!("{s:?}");
        for text in [&toml, &debug] {
            for secret in ["stream-secret", "hook-secret", "c2lnbmluZw"] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
        }
        assert!(toml.contains("[[collect.webhooks]]"), "{toml}");
        // The redacted form parses, but its `***` placeholders are refused as tokens.
        let err = load_toml(&toml).unwrap_err().to_string();
        assert!(err.contains("collect.audit_streams.token"), "{err}");
    }

    #[test]
    fn collect_validation_names_the_key() {
        let dup = COLLECT_TOML.replace("/gitlab/audit-events/other", "/gitlab/webhooks");
        let err = load_toml(&dup).unwrap_err().to_string();
        assert!(
            err.contains("collect.webhooks") && err.contains("twice"),
            "{err}"
        );
        let no_token = COLLECT_TOML.replace("token = \"stream-secret-1-Zq8e\"", "token = \"\"");
        let err = load_toml(&no_token).unwrap_err().to_string();
        assert!(err.contains("collect.audit_streams.token"), "{err}");
        let err = load_toml("[collect]\nrequest_timeout_secs = 5\n").unwrap_err();
        assert!(
            err.to_string().contains("collect.request_timeout_secs"),
            "{err}"
        );
        let short = COLLECT_TOML.replace("hook-secret-Pw3xY7kL", "x");
        let err = load_toml(&short).unwrap_err().to_string();
        assert!(
            err.contains("collect.webhooks.token") && err.contains("16"),
            "{err}"
        );
        for bad in ["not base64!", "whsec_%%%", "whsec_"] {
            let text = COLLECT_TOML.replace("whsec_c2lnbmluZw==", bad);
            let err = load_toml(&text).unwrap_err().to_string();
            assert!(err.contains("collect.webhooks.signing_secret"), "{err}");
        }
        let bare = COLLECT_TOML.replace("whsec_c2lnbmluZw==", "c2lnbmluZw==");
        load_toml(&bare).unwrap();
        for bad in ["max_header_bytes = 100", "max_connections = 0"] {
            let err = load_toml(&format!("[collect]\n{bad}\n")).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.to_string().contains(&format!("collect.{key}")), "{err}");
        }
        let err = load_toml("[collect]\ntls_cert_path = \"/c.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("collect.tls_key_path"), "{err}");
        let err = Settings::default()
            .collect
            .require_destinations()
            .unwrap_err();
        assert!(err.to_string().contains("collect.audit_streams"), "{err}");
        let typo = COLLECT_TOML.replace("signing_secret", "signing_secrett");
        assert!(
            load_toml(&typo)
                .unwrap_err()
                .to_string()
                .contains("signing_secrett")
        );
    }

    #[test]
    fn secrets_come_from_files_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().to_string()
        };
        let ch = file("ch", "ch-Secret-4711\n");
        let sasl = file("sasl", "sasl-Secret-4711");
        let hook = file("hook", "hook-Secret-4711\r\n");
        let hec = file("hec", "hec-Secret-4711\n");
        let toml = format!(
            "[clickhouse]\npassword_file = {ch:?}\n\
             [kafka.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\npassword_file = {sasl:?}\n\
             [siem.hec]\ntoken_file = {hec:?}\n\
             [[collect.webhooks]]\npath = \"/h\"\ntoken_file = {hook:?}\ntopic = \"t\"\n"
        );
        let s = load_toml(&toml).unwrap();
        assert_eq!(s.clickhouse.password.expose(), "ch-Secret-4711");
        assert_eq!(s.kafka.sasl.password.expose(), "sasl-Secret-4711");
        assert_eq!(s.collect.webhooks[0].token.expose(), "hook-Secret-4711");
        assert_eq!(s.siem.hec.token.expose(), "hec-Secret-4711");
        let printed = format!("{}\n{s:?}", s.to_redacted_toml());
        assert!(!printed.contains("Secret-4711"), "{printed}");
        // Environment variables take the `_file` form too.
        let s = Settings::load_with_env(
            None,
            env(&[("TOKENTRAIL__CLICKHOUSE__PASSWORD_FILE", ch.as_str())]),
        )
        .unwrap();
        assert_eq!(s.clickhouse.password.expose(), "ch-Secret-4711");
    }

    #[test]
    fn secret_file_errors_name_the_key_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "pw-Secret-4711").unwrap();
        let both = format!("[clickhouse]\npassword = \"x\"\npassword_file = {p:?}\n");
        let e = load_toml(&both).unwrap_err().to_string();
        assert!(e.contains("clickhouse.password_file"), "{e}");
        let missing =
            "[[collect.webhooks]]\npath = \"/h\"\ntoken_file = \"/nonexistent/t\"\ntopic = \"t\"\n";
        let e = load_toml(missing).unwrap_err().to_string();
        assert!(e.contains("collect.webhooks[0].token_file"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = load_toml(&format!("[clickhouse]\npassword_file = {empty:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
        // A URL with user-info in an error is printed without it.
        let e = Settings::load_with_env(
            None,
            env(&[(
                "TOKENTRAIL__CLICKHOUSE__URL",
                "tcp://u:pw-Secret-4711@h:9000",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("pw-Secret-4711"), "{e}");
    }

    #[test]
    fn example_config_shows_every_default() {
        // The reference file users copy: regenerate with
        // `tokentrail ingest --print-config > deploy/config/tokentrail.example.toml`
        // (with no TOKENTRAIL__* variables set).
        let example = include_str!("../deploy/config/tokentrail.example.toml");
        assert_eq!(example, Settings::default().to_redacted_toml());
    }

    #[test]
    fn redacted_toml_parses_back() {
        let s = Settings::default();
        let text = s.to_redacted_toml();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, &text).unwrap();
        let back = Settings::load_with_env(Some(&path), env(&[])).unwrap();
        assert_eq!(back.batch.max_rows, s.batch.max_rows);
        assert_eq!(back.kafka.audit_topics, s.kafka.audit_topics);
    }
}
