//! One HTTP client for GitLab's REST and GraphQL APIs.
//!
//! - Pages: [`Client::get_all`] follows `Link`/`X-Next-Page` under a [`PageGuard`].
//! - Rate limits (https://docs.gitlab.com/security/rate_limits/): a 429 waits `Retry-After`
//!   seconds, else until `RateLimit-Reset`, else the backoff; a success with
//!   `RateLimit-Remaining: 0` waits until `RateLimit-Reset` before the next request.
//! - 5xx, timeouts and connection errors are retried with `retry::Backoff` (the project's one
//!   backoff) up to `gitlab.max_attempts`; 401/403/404 and other 4xx are final and name the
//!   path (and, for 403, the role the call needs).
//! - The token travels in a header marked sensitive, redirects are not followed (they would
//!   carry it elsewhere), and no error or log line contains it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::pagination::{PageGuard, next_url};
use super::settings::GitlabSettings;
use crate::retry::Backoff;
use crate::telemetry::metrics::Metrics;

/// Longest `Retry-After`/`RateLimit-Reset` honoured; a longer demand is an error.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    #[error("invalid configuration: {key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("GitLab refused the token (401) for {path}: check gitlab.token")]
    Unauthorized { path: String },
    #[error("GitLab answered 403 Forbidden for {path}: the token's user needs {needs}")]
    Forbidden { path: String, needs: &'static str },
    #[error("GitLab answered 404 Not Found for {path} (missing, or not visible to the token)")]
    NotFound { path: String },
    #[error("GitLab answered {status} for {path}: {message}")]
    Http {
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitLab's answer for {path} is not what its API documents: {reason}")]
    Malformed { path: String, reason: String },
    #[error("GitLab's pages for {path}: {reason}")]
    Pagination { path: String, reason: String },
    #[error("GitLab's answer for {path} is larger than gitlab.max_page_bytes = {limit}")]
    TooLarge { path: String, limit: usize },
    #[error("GitLab unavailable for {path} after {attempts} attempts: {last}")]
    Unavailable {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("GitLab GraphQL error for {operation}: {message}")]
    GraphQl { operation: String, message: String },
}

/// One page: its items and the URL of the next.
pub struct Page {
    pub body: Value,
    pub next: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    api: String,
    graphql: String,
    settings: GitlabSettings,
    metrics: Option<Metrics>,
    /// Set when GitLab said the quota is used up: no request before this instant.
    paused_until: Mutex<Option<Instant>>,
}

impl Client {
    pub fn new(settings: &GitlabSettings, metrics: Option<Metrics>) -> Result<Client, GitlabError> {
        let base = settings.base().map_err(|e| match e {
            crate::config_core::ConfigError::Invalid { key, reason } => {
                GitlabError::Config { key, reason }
            }
            other => GitlabError::Config {
                key: "gitlab.url",
                reason: other.to_string(),
            },
        })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.token.expose()))
            .map_err(|_| GitlabError::Config {
                key: "gitlab.token",
                reason: "contains characters a header cannot carry".into(),
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokentrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitlabError::Config {
                key: "gitlab.url",
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Client {
            http,
            api: format!("{base}/api/v4"),
            graphql: format!("{base}/api/graphql"),
            settings: settings.clone(),
            metrics,
            paused_until: Mutex::new(None),
        })
    }

    /// `…/api/v4` + `path` with `query` (values are URL-encoded here).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{path}", self.api);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        url
    }

    /// GET one REST resource (not a listing).
    pub async fn get(&self, path: &str) -> Result<Value, GitlabError> {
        let url = self.url(path, &[]);
        Ok(self.send(path, || self.http.get(&url), &url).await?.body)
    }

    /// Every item of a REST listing, page after page; each page must be a JSON array.
    /// `on_page` sees each page's items as they arrive (progress, early processing).
    pub async fn get_all(
        &self,
        path: &str,
        query: &[(&str, String)],
        mut on_page: impl FnMut(&[Value]),
    ) -> Result<Vec<Value>, GitlabError> {
        let mut query = query.to_vec();
        query.push(("per_page", self.settings.per_page.to_string()));
        let mut url = self.url(path, &query);
        let mut guard = PageGuard::new(&url, self.settings.max_pages);
        let mut items = Vec::new();
        loop {
            let page = self.send(path, || self.http.get(&url), &url).await?;
            let Value::Array(list) = page.body else {
                return Err(GitlabError::Malformed {
                    path: path.into(),
                    reason: format!("expected a JSON array, got {}", kind(&page.body)),
                });
            };
            on_page(&list);
            items.extend(list);
            let Some(next) = page.next else {
                return Ok(items);
            };
            guard
                .admit(&next)
                .map_err(|reason| GitlabError::Pagination {
                    path: path.into(),
                    reason,
                })?;
            url = next;
        }
    }

    /// One GraphQL request; `data` of the answer, or its `errors` as an error.
    pub async fn graphql(
        &self,
        operation: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, GitlabError> {
        let body = serde_json::json!({ "query": query, "variables": variables });
        let url = self.graphql.clone();
        let page = self
            .send("/api/graphql", || self.http.post(&url).json(&body), &url)
            .await?;
        if let Some(errors) = page.body.get("errors").filter(|e| !e.is_null()) {
            let message = errors
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map_or_else(|| errors.to_string(), str::to_owned);
            return Err(GitlabError::GraphQl {
                operation: operation.into(),
                message: truncate(&message, 300),
            });
        }
        match page.body.get("data") {
            Some(d @ Value::Object(_)) => Ok(d.clone()),
            _ => Err(GitlabError::Malformed {
                path: "/api/graphql".into(),
                reason: format!("{operation}: no `data` object in the answer"),
            }),
        }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.gitlab_requests.with_label_values(&[outcome]).inc();
        }
    }

    /// Sends with retries; `path` names the call in errors (never the token).
    async fn send(
        &self,
        path: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Page, GitlabError> {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.settings.initial_backoff_ms),
            Duration::from_millis(self.settings.max_backoff_ms),
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for_quota().await;
            let failure = match request().send().await {
                Err(e) => {
                    self.count("transport_error");
                    // reqwest's message names the URL, which carries no secret.
                    truncate(&e.to_string(), 300)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    self.note_quota(&headers).await;
                    match status {
                        200..=299 => {
                            let body = self.read_body(path, resp).await?;
                            self.count("ok");
                            let next = next_url(
                                url,
                                header(&headers, "link"),
                                header(&headers, "x-next-page"),
                            )
                            .map_err(|reason| {
                                GitlabError::Pagination {
                                    path: path.into(),
                                    reason,
                                }
                            })?;
                            return Ok(Page { body, next });
                        }
                        429 => {
                            self.count("rate_limited");
                            let wait =
                                rate_limit_wait(&headers).unwrap_or_else(|| backoff.next_delay());
                            if wait > MAX_RATE_LIMIT_WAIT {
                                return Err(GitlabError::Http {
                                    path: path.into(),
                                    status,
                                    message: format!(
                                        "rate limited for {} s, longer than tokentrail waits",
                                        wait.as_secs()
                                    ),
                                });
                            }
                            if attempt >= self.settings.max_attempts {
                                return Err(GitlabError::Unavailable {
                                    path: path.into(),
                                    attempts: attempt,
                                    last: "429 Too Many Requests".into(),
                                });
                            }
                            tracing::warn!(
                                path,
                                wait_ms = wait.as_millis() as u64,
                                "GitLab rate limit: waiting"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        500..=599 => {
                            self.count("server_error");
                            format!("{status} {}", self.error_message(resp).await)
                        }
                        _ => {
                            self.count("refused");
                            return Err(self.refusal(path, status, resp).await);
                        }
                    }
                }
            };
            if attempt >= self.settings.max_attempts {
                return Err(GitlabError::Unavailable {
                    path: path.into(),
                    attempts: attempt,
                    last: failure,
                });
            }
            let delay = backoff.next_delay();
            tracing::warn!(path, attempt, delay_ms = delay.as_millis() as u64, error = %failure, "GitLab request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn refusal(&self, path: &str, status: u16, resp: reqwest::Response) -> GitlabError {
        match status {
            401 => GitlabError::Unauthorized { path: path.into() },
            403 => GitlabError::Forbidden {
                path: path.into(),
                needs: needed_role(path),
            },
            404 => GitlabError::NotFound { path: path.into() },
            _ => GitlabError::Http {
                path: path.into(),
                status,
                message: self.error_message(resp).await,
            },
        }
    }

    /// GitLab's `{"message": …}` or `{"error": …}`, shortened; never more than 300 chars.
    async fn error_message(&self, resp: reqwest::Response) -> String {
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").or_else(|| v.get("error")).cloned())
            .map_or(text, |m| match m {
                Value::String(s) => s,
                other => other.to_string(),
            });
        truncate(&msg, 300)
    }

    async fn read_body(
        &self,
        path: &str,
        mut resp: reqwest::Response,
    ) -> Result<Value, GitlabError> {
        let limit = self.settings.max_page_bytes;
        let too_large = || GitlabError::TooLarge {
            path: path.into(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(GitlabError::Unavailable {
                        path: path.into(),
                        attempts: 1,
                        last: format!("reading the answer: {}", truncate(&e.to_string(), 300)),
                    });
                }
            }
        }
        serde_json::from_slice(&buf).map_err(|e| GitlabError::Malformed {
            path: path.into(),
            reason: format!("not JSON: {e}"),
        })
    }

    async fn wait_for_quota(&self) {
        let until = *self.paused_until.lock().await;
        if let Some(t) = until
            && t > Instant::now()
        {
            tracing::info!("GitLab quota used up: waiting for RateLimit-Reset");
            tokio::time::sleep_until(t).await;
        }
    }

    async fn note_quota(&self, headers: &HeaderMap) {
        let remaining =
            header(headers, "ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0)
            && let Some(wait) = reset_wait(headers).filter(|w| *w <= MAX_RATE_LIMIT_WAIT)
        {
            *self.paused_until.lock().await = Some(Instant::now() + wait);
        }
    }
}

/// The role GitLab documents for a path (shown with a 403).
fn needed_role(path: &str) -> &'static str {
    if path.contains("/job_token_scope") {
        "the Maintainer role on the project (https://docs.gitlab.com/api/project_job_token_scopes/)"
    } else if path.ends_with("audit_events")
        && !path.starts_with("/groups")
        && !path.starts_with("/projects")
    {
        "to be an administrator (instance audit events, https://docs.gitlab.com/api/audit_events/)"
    } else if path.ends_with("audit_events") {
        "the Owner role on the group or project (Premium+, https://docs.gitlab.com/api/audit_events/)"
    } else if path == "/api/graphql" {
        "the Maintainer role on the project (authentication log and policies)"
    } else {
        "read access (read_api scope) to it"
    }
}

/// 429: `Retry-After` seconds, else until `RateLimit-Reset`.
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    header(headers, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| reset_wait(headers))
}

/// Time until `RateLimit-Reset` (Unix seconds).
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset = header(headers, "ratelimit-reset")?
        .trim()
        .parse::<u64>()
        .ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Percent-encodes a query value (unreserved characters stay).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project or group path as one URL path segment (`a/b` → `a%2Fb`).
pub fn path_segment(v: &str) -> String {
    encode(v)
}

pub(super) fn value_kind(v: &Value) -> &'static str {
    kind(v)
}
