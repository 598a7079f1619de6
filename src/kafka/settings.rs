//! `[kafka]`: the brokers, topics, TLS and SASL every Kafka client of tokentrail uses. Declared
//! here, below the stages, so the clients (`kafka::client`) read their section without
//! importing the assembly of all sections (`crate::config`), which checks it on load
//! (`config::tls`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::config_core::{Secret, looks_secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    pub group_id: String,
    /// Topics carrying GitLab audit-event streaming bodies.
    pub audit_topics: Vec<String>,
    /// Topics carrying GitLab webhook bodies.
    pub webhook_topics: Vec<String>,
    /// Where unusable messages go, with the reason in headers.
    pub dead_letter_topic: String,
    /// librdkafka prefetch cap per partition (`queued.max.messages.kbytes`): bounds memory.
    pub max_prefetch_kbytes: u32,
    /// Static group membership (`group.instance.id`): a process restarted with the same id
    /// (after a crash or `kill -9`) gets its partitions back at once instead of after the
    /// session timeout. Must be unique per running process (e.g. the pod or host name);
    /// empty (the default) means dynamic membership.
    pub group_instance_id: String,
    /// TLS to the brokers: CA, client certificate (checked in `config::tls`).
    pub tls: KafkaTlsSettings,
    /// SASL PLAIN, SCRAM or OAUTHBEARER (checked in `config::tls`).
    pub sasl: KafkaSaslSettings,
    /// Passed through to librdkafka verbatim (e.g. `client.rack`, `ssl.endpoint.identification.algorithm`).
    /// Values of keys that look secret are redacted when printed.
    pub options: LibrdkafkaOptions,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:19092".into(),
            group_id: "tokentrail-ingest".into(),
            audit_topics: vec!["gitlab.audit_events".into()],
            webhook_topics: vec!["gitlab.webhooks".into()],
            dead_letter_topic: "tokentrail.dlq".into(),
            // With `fetch.queue.backoff.ms` at 10 ms (`kafka::consumer`) a full queue refills at
            // once, so 4 MiB per partition keeps the loop fed; the memory goes to batches.
            max_prefetch_kbytes: 4 * 1024,
            group_instance_id: String::new(),
            tls: KafkaTlsSettings::default(),
            sasl: KafkaSaslSettings::default(),
            options: LibrdkafkaOptions::default(),
        }
    }
}

/// librdkafka options passed through verbatim. Debug and Serialize redact secret-looking keys.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct LibrdkafkaOptions(pub BTreeMap<String, String>);

impl LibrdkafkaOptions {
    fn redacted(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if looks_secret(k) { "***" } else { v.as_str() };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.redacted().fmt(f)
    }
}

impl Serialize for LibrdkafkaOptions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

/// TLS to the Kafka brokers (`security.protocol` SSL, or SASL_SSL with `[kafka.sasl]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaTlsSettings {
    /// TLS with the system's CA certificates; setting any file below implies it.
    pub enabled: bool,
    /// PEM CA certificate(s) that signed the brokers' certificates (`ssl.ca.location`).
    pub ca_file: String,
    /// PEM client certificate for mutual TLS (`ssl.certificate.location`), with `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file` (`ssl.key.location`).
    pub key_file: String,
    /// Passphrase of an encrypted `key_file` (`ssl.key.password`); or `key_password_file`.
    pub key_password: Secret,
}

impl KafkaTlsSettings {
    pub fn is_on(&self) -> bool {
        self.enabled || !self.ca_file.is_empty() || !self.cert_file.is_empty()
    }
}

/// SASL authentication to the Kafka brokers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSaslSettings {
    /// Empty (no SASL), `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (OIDC).
    pub mechanism: String,
    /// PLAIN and SCRAM user name.
    pub username: String,
    /// PLAIN and SCRAM password; or `password_file`.
    pub password: Secret,
    /// OAUTHBEARER: the OIDC token endpoint (client-credentials grant).
    pub oauthbearer_token_endpoint_url: String,
    pub oauthbearer_client_id: String,
    /// OAUTHBEARER client secret; or `oauthbearer_client_secret_file`.
    pub oauthbearer_client_secret: Secret,
    /// OAUTHBEARER scope (optional).
    pub oauthbearer_scope: String,
}

impl KafkaSaslSettings {
    pub fn is_on(&self) -> bool {
        !self.mechanism.is_empty()
    }
}
