//! `[gitlab]`: the GitLab API that `tokentrail gitlab sync|coverage|backfill` read, validated
//! once with the rest of the configuration (`Settings::validate`). The token is a [`Secret`]:
//! `gitlab.token_file` works like every other `<key>_file` (src/config/secret_files.rs).

use serde::{Deserialize, Serialize};

use crate::config_core::{ConfigError, Secret, invalid};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabSettings {
    /// The instance, e.g. `https://gitlab.example.com` (empty: the `gitlab` commands refuse to
    /// run). API paths are appended (`/api/v4/…`, `/api/graphql`).
    pub url: String,
    /// A personal, group or project access token with `read_api`; see docs/gitlab-sync.md for
    /// the role each call needs (Maintainer on every project whose allowlist is read).
    pub token: Secret,
    /// Per request: connect, send and read the whole answer.
    pub timeout_secs: u64,
    /// Items per page (GitLab's maximum is 100).
    pub per_page: u32,
    /// A listing longer than this many pages is refused (a server that paginates forever).
    pub max_pages: u32,
    /// A page larger than this is refused, not read into memory.
    pub max_page_bytes: usize,
    /// Attempts per request for 429, 5xx, timeouts and connection errors before giving up.
    pub max_attempts: u32,
    /// Backoff between attempts (src/retry.rs) when GitLab names no time itself.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Read fine-grained job-token policies of allowlist entries over GraphQL (GitLab ≥ 17.6;
    /// REST has none). Off, or unavailable: entries are stored without policies.
    pub graphql_policies: bool,
}

impl Default for GitlabSettings {
    fn default() -> Self {
        GitlabSettings {
            url: String::new(),
            token: Secret::default(),
            timeout_secs: 30,
            per_page: 100,
            max_pages: 10_000,
            max_page_bytes: 16 * 1024 * 1024,
            max_attempts: 8,
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            graphql_policies: true,
        }
    }
}

impl GitlabSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.url.is_empty() {
            let rest = self
                .url
                .strip_prefix("https://")
                .or_else(|| self.url.strip_prefix("http://"))
                .ok_or_else(|| invalid("gitlab.url", "must start with http:// or https://"))?;
            let host = rest.split('/').next().unwrap_or("");
            if host.is_empty() || host.contains('@') {
                return Err(invalid(
                    "gitlab.url",
                    "must name a host, without user info (the token goes in gitlab.token)",
                ));
            }
            if self.url.contains(['?', '#']) || self.url.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "gitlab.url",
                    "must not contain a query, a fragment or whitespace",
                ));
            }
            if self.token.is_empty() {
                return Err(invalid(
                    "gitlab.token",
                    "must be set (or gitlab.token_file) when gitlab.url is",
                ));
            }
        }
        if self.timeout_secs == 0 {
            return Err(invalid("gitlab.timeout_secs", "must be > 0"));
        }
        if !(1..=100).contains(&self.per_page) {
            return Err(invalid("gitlab.per_page", "must be between 1 and 100"));
        }
        if self.max_pages == 0 {
            return Err(invalid("gitlab.max_pages", "must be > 0"));
        }
        if self.max_page_bytes < 1024 {
            return Err(invalid("gitlab.max_page_bytes", "must be at least 1024"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("gitlab.max_attempts", "must be > 0"));
        }
        if self.initial_backoff_ms == 0 {
            return Err(invalid("gitlab.initial_backoff_ms", "must be > 0"));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(invalid(
                "gitlab.max_backoff_ms",
                "must be >= gitlab.initial_backoff_ms",
            ));
        }
        Ok(())
    }

    /// The instance URL without a trailing `/`, or the error naming the key.
    pub fn base(&self) -> Result<&str, ConfigError> {
        let url = self.url.trim_end_matches('/');
        if url.is_empty() {
            return Err(invalid(
                "gitlab.url",
                "must be set for the tokentrail gitlab commands",
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: &str, token: &str) -> GitlabSettings {
        GitlabSettings {
            url: url.into(),
            token: Secret::new(token),
            ..GitlabSettings::default()
        }
    }

    #[test]
    fn errors_name_their_key() {
        let key = |s: GitlabSettings| match s.validate().unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            e => panic!("{e}"),
        };
        assert_eq!(key(with("gitlab.example.com", "t")), "gitlab.url");
        assert_eq!(
            key(with("https://u:p@gitlab.example.com", "t")),
            "gitlab.url"
        );
        assert_eq!(key(with("https://gitlab.example.com", "")), "gitlab.token");
        let mut s = with("https://gitlab.example.com", "t");
        s.per_page = 101;
        assert_eq!(key(s), "gitlab.per_page");
        assert!(with("https://gitlab.example.com/", "t").validate().is_ok());
        assert!(GitlabSettings::default().validate().is_ok());
        assert!(GitlabSettings::default().base().is_err());
    }

    #[test]
    fn the_token_never_prints() {
        let s = with("https://gitlab.example.com", "glpat-Secret-4711");
        assert!(!format!("{s:?}").contains("Secret-4711"));
        assert!(!serde_json::to_string(&s).unwrap().contains("Secret-4711"));
    }
}
