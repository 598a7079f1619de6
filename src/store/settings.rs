//! `[clickhouse]`: the server, credentials and TLS every ClickHouse client of tokentrail uses
//! (`store::client`). Declared here, below the stages, so the store does not import the
//! assembly of all sections (`crate::config`), which checks it on load (`config::tls`).

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::config_core::{Secret, url_without_userinfo};

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseSettings {
    /// Printed with any user-info redacted.
    #[serde(serialize_with = "redact_url_userinfo")]
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Seconds before an insert is abandoned and retried.
    pub insert_timeout_secs: u64,
    /// Table retention for servers that support TTL (`tokentrail migrate`); 0 keeps forever.
    pub retention_days: u32,
    /// How often `tokentrail ingest` seals ended days of token_use for the named queries
    /// (`store::seal`); 0 leaves sealing to `tokentrail seal`.
    pub seal_every_secs: u64,
    /// The cluster (`remote_servers` name) `tokentrail migrate` creates replicated tables
    /// on; empty for one server. One shard, any number of replicas (`store::cluster`).
    pub cluster: String,
    /// CA and client certificate for an `https://` URL.
    pub tls: ClickHouseTlsSettings,
}

impl fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("url", &url_without_userinfo(&self.url))
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("insert_timeout_secs", &self.insert_timeout_secs)
            .field("retention_days", &self.retention_days)
            .field("seal_every_secs", &self.seal_every_secs)
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: "http://127.0.0.1:18123".into(),
            database: "default".into(),
            user: "default".into(),
            password: Secret::default(),
            insert_timeout_secs: 30,
            retention_days: 0,
            seal_every_secs: 300,
            cluster: String::new(),
            tls: ClickHouseTlsSettings::default(),
        }
    }
}

impl ClickHouseSettings {
    /// `cluster`, if one is set.
    pub fn cluster(&self) -> Option<String> {
        Some(self.cluster.clone()).filter(|c| !c.is_empty())
    }
}

fn redact_url_userinfo<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url_without_userinfo(url))
}

/// HTTPS to ClickHouse: used when `clickhouse.url` is `https://`; system roots by default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseTlsSettings {
    /// PEM CA certificate(s) to trust instead of the system's.
    pub ca_file: String,
    /// PEM client certificate for mutual TLS, with `key_file`.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: String,
}

impl ClickHouseTlsSettings {
    pub fn is_set(&self) -> bool {
        !(self.ca_file.is_empty() && self.cert_file.is_empty() && self.key_file.is_empty())
    }
}
