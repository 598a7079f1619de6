//! The `[siem]` settings section (`TOKENTRAIL__SIEM__…` in the environment).

use serde::{Deserialize, Serialize};

use super::encode::Format;
use crate::config_core::{ConfigError, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Kafka,
    Syslog,
    Hec,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Kafka => "kafka",
            SinkKind::Syslog => "syslog",
            SinkKind::Hec => "hec",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiemSettings {
    /// `ocsf`, `ecs` or `cef` (`--format` overrides).
    pub format: Format,
    /// `kafka`, `syslog` or `hec` (`--sink` overrides).
    pub sink: SinkKind,
    /// Where `tokentrail export` keeps its per-table watermarks, so a restart resumes.
    pub state_file: String,
    /// How often to look for new rows when the last poll found none.
    pub poll_interval_ms: u64,
    /// Rows read and delivered per batch.
    pub batch_rows: usize,
    /// Each poll re-reads this far behind the watermark (and skips rows already sent), so
    /// rows that become visible late (slow or retried inserts, parallel ingest instances)
    /// are still exported. `token_use` and `alerts` are followed by their insert time.
    pub lookback_ms: i64,
    /// `token_lifecycle` has no insert time and is followed by GitLab's event time, so late
    /// ingestion needs a longer look-back.
    pub lifecycle_lookback_ms: i64,
    pub retry: RetryPolicy,
    pub kafka: SiemKafkaSettings,
    pub syslog: SyslogSettings,
    pub hec: HecSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Attempts per batch before giving up; 0 retries forever (the default: at-least-once).
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiemKafkaSettings {
    /// Brokers and librdkafka options come from `[kafka]`.
    pub topic: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSettings {
    /// `host:port` of the receiver (TCP).
    pub address: String,
    pub tls: bool,
    /// PEM CA bundle to verify the receiver; empty uses the Mozilla roots (webpki-roots).
    pub ca_file: String,
    /// PEM client certificate chain and key, for receivers that require mutual TLS.
    pub client_cert_file: String,
    pub client_key_file: String,
    /// Name to verify the receiver's certificate against; empty uses the host of `address`.
    pub server_name: String,
    /// RFC 5424 facility, 0..=23 (10 = authpriv, 13 = log audit).
    pub facility: u8,
    /// HOSTNAME field; empty uses the machine's host name.
    pub hostname: String,
    pub app_name: String,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecSettings {
    /// The event endpoint, e.g. `https://splunk:8088/services/collector/event`.
    pub url: String,
    pub token: Secret,
    /// Splunk index; empty uses the token's default index.
    pub index: String,
    pub source: String,
    /// Empty picks one per format: `ocsf`, `ecs`, `cef`.
    pub sourcetype: String,
    /// A batch is split into POSTs of at most this many bytes.
    pub max_body_bytes: usize,
    pub timeout_ms: u64,
}

impl Default for SiemSettings {
    fn default() -> Self {
        SiemSettings {
            format: Format::Ocsf,
            sink: SinkKind::Kafka,
            state_file: "tokentrail-export.state.json".into(),
            poll_interval_ms: 1_000,
            batch_rows: 500,
            lookback_ms: 30_000,
            lifecycle_lookback_ms: 15 * 60_000,
            retry: RetryPolicy::default(),
            kafka: SiemKafkaSettings::default(),
            syslog: SyslogSettings::default(),
            hec: HecSettings::default(),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            max_attempts: 0,
        }
    }
}

impl Default for SiemKafkaSettings {
    fn default() -> Self {
        SiemKafkaSettings {
            topic: "tokentrail.siem".into(),
        }
    }
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            address: "127.0.0.1:6514".into(),
            tls: false,
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            server_name: String::new(),
            facility: 10,
            hostname: String::new(),
            app_name: "tokentrail".into(),
            connect_timeout_ms: 5_000,
        }
    }
}

impl Default for HecSettings {
    fn default() -> Self {
        HecSettings {
            url: "https://127.0.0.1:8088/services/collector/event".into(),
            token: Secret::default(),
            index: String::new(),
            source: "tokentrail".into(),
            sourcetype: String::new(),
            max_body_bytes: 1024 * 1024,
            timeout_ms: 10_000,
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl SiemSettings {
    /// Checks the section; only the selected sink's settings must be complete.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval_ms == 0 {
            return Err(invalid("siem.poll_interval_ms", "must be > 0"));
        }
        if self.batch_rows == 0 {
            return Err(invalid("siem.batch_rows", "must be > 0"));
        }
        if self.lookback_ms < 0 {
            return Err(invalid("siem.lookback_ms", "must be >= 0"));
        }
        if self.lifecycle_lookback_ms < 0 {
            return Err(invalid("siem.lifecycle_lookback_ms", "must be >= 0"));
        }
        if self.state_file.trim().is_empty() {
            return Err(invalid("siem.state_file", "must not be empty"));
        }
        let r = &self.retry;
        if r.initial_backoff_ms == 0 {
            return Err(invalid("siem.retry.initial_backoff_ms", "must be > 0"));
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            return Err(invalid(
                "siem.retry.max_backoff_ms",
                "must be >= siem.retry.initial_backoff_ms",
            ));
        }
        self.validate_sink(self.sink)
    }

    /// Checks the settings of one sink (the CLI may pick another than `siem.sink`).
    pub fn validate_sink(&self, sink: SinkKind) -> Result<(), ConfigError> {
        match sink {
            SinkKind::Kafka => {
                if self.kafka.topic.trim().is_empty() {
                    return Err(invalid("siem.kafka.topic", "must not be empty"));
                }
            }
            SinkKind::Syslog => {
                let s = &self.syslog;
                if s.address.rsplit_once(':').is_none() {
                    return Err(invalid(
                        "siem.syslog.address",
                        format!("must be host:port, got {:?}", s.address),
                    ));
                }
                if s.facility > 23 {
                    return Err(invalid("siem.syslog.facility", "must be 0..=23"));
                }
                if s.client_cert_file.is_empty() != s.client_key_file.is_empty() {
                    return Err(invalid(
                        "siem.syslog.client_key_file",
                        "set both client_cert_file and client_key_file, or neither",
                    ));
                }
                if s.connect_timeout_ms == 0 {
                    return Err(invalid("siem.syslog.connect_timeout_ms", "must be > 0"));
                }
            }
            SinkKind::Hec => {
                let h = &self.hec;
                if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                    return Err(invalid(
                        "siem.hec.url",
                        format!("must start with http:// or https://, got {:?}", h.url),
                    ));
                }
                if h.token.is_empty() {
                    return Err(invalid("siem.hec.token", "must be set for the hec sink"));
                }
                if h.max_body_bytes < 1024 {
                    return Err(invalid("siem.hec.max_body_bytes", "must be at least 1024"));
                }
                if h.timeout_ms == 0 {
                    return Err(invalid("siem.hec.timeout_ms", "must be > 0"));
                }
            }
        }
        Ok(())
    }
}
