//! The building blocks every settings section is made of: the error that names its key, the
//! [`Secret`] wrapper that never prints its value, and URL credential redaction.
//!
//! A leaf module: the sections that live with their components (`siem::config`,
//! `alert::settings`, `report::settings`, `gitlab::settings`, `kafka::settings`,
//! `store::settings`) and the assembly of all of them (`crate::config`) both use it, so no
//! section has to import the assembly that includes it.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// Like `Invalid`, for keys only known at load time (`collect.webhooks[1].token_file`).
    #[error("invalid configuration: {key}: {reason}")]
    InvalidAt { key: String, reason: String },
}

pub(crate) fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A secret string (password, token). Its value is only reachable through [`Secret::expose`].
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // Every SASL option (usernames and OAUTHBEARER configs carry credentials too), every
    // option naming a key, password, secret, token or credential (`ssl.key.password`,
    // `ssl.keystore.password`, `sasl.oauthbearer.client.secret`, …).
    k.starts_with("sasl.")
        || [
            "password",
            "secret",
            "token",
            "key",
            "oauthbearer",
            "credential",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// `http://user:pass@host/` → `http://***@host/`: URL user-info is a credential.
pub fn url_without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***{}", &rest[at..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}
