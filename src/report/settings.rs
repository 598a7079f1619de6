//! `[report]`: settings of `tokentrail report`, validated once with the rest of the
//! configuration (`Settings::validate`), like the `[siem]` and `[alerting]` sections.

use serde::{Deserialize, Serialize};

use crate::config_core::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// The GitLab instance the events come from, e.g. `https://gitlab.example.com`: the
    /// report links projects and jobs there. Empty: no links.
    pub gitlab_url: String,
}

impl ReportSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_gitlab_url(&self.gitlab_url).map_err(|reason| ConfigError::Invalid {
            key: "report.gitlab_url",
            reason,
        })
    }

    /// The instance URL without a trailing `/`, or `None` when unset.
    pub fn gitlab_base(&self) -> Option<&str> {
        let url = self.gitlab_url.trim_end_matches('/');
        (!url.is_empty()).then_some(url)
    }
}

/// Empty, or `http(s)://host[:port][/path]` with nothing a link could be abused with
/// (no whitespace, quotes, brackets, query or fragment).
fn validate_gitlab_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("must start with http:// or https://, got {url:?}"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!("must name a host (without user info), got {url:?}"));
    }
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'<>`\\?#()".contains(*c))
    {
        return Err(format!("must not contain {c:?}, got {url:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<(), ConfigError> {
        ReportSettings {
            gitlab_url: url.into(),
        }
        .validate()
    }

    #[test]
    fn gitlab_url_is_empty_or_a_plain_http_url() {
        for ok in [
            "",
            "https://gitlab.com",
            "http://gitlab.local:8080/",
            "https://h/gitlab",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "gitlab.com",
            "ftp://gitlab.com",
            "https://",
            "https://u:p@gitlab.com",
            "https://gitlab.com/\"onmouseover=x",
            "https://gitlab.com/?a=1",
            "https://git lab.com",
        ] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.contains("report.gitlab_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn base_drops_the_trailing_slash() {
        let s = ReportSettings {
            gitlab_url: "https://gitlab.com/".into(),
        };
        assert_eq!(s.gitlab_base(), Some("https://gitlab.com"));
        assert_eq!(ReportSettings::default().gitlab_base(), None);
    }
}
