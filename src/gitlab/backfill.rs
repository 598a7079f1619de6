//! `tokentrail gitlab backfill`: GitLab's *saved* audit events of a time range, re-read from
//! the audit events API and produced into the audit topic, for what streaming lost.
//!
//! `GET /audit_events` (instance, administrator), `/groups/:id/audit_events`,
//! `/projects/:id/audit_events` (Owner; Premium+) with `created_after`/`created_before`,
//! each query at most 30 days (https://docs.gitlab.com/api/audit_events/): longer ranges are
//! read in 30-day slices. Saved events carry their database `id`, the same id their streamed
//! copy carried, so both get the dedup key `saved:<id>` (src/normalize/dedup.rs) and
//! `ReplacingMergeTree` keeps one. An element without an integer id cannot be matched to its
//! streamed copy and is refused (the command fails naming it), never produced.
//!
//! Stream-only events (`user_authenticated_using_job_token`, `repository_git_operation`,
//! `job_artifact_downloaded`, …) are never saved, so no API returns them: a streaming outage
//! loses the token *uses* for good. `tokentrail gitlab coverage` shows which edges.

use serde_json::Value;

use super::api::field_i64;
use super::client::{Client, GitlabError};
use super::snapshot::rfc3339_ms;

/// Whose saved events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Instance,
    Group(String),
    Project(String),
}

impl Source {
    fn path(&self) -> String {
        use super::client::path_segment;
        match self {
            Source::Instance => "/audit_events".into(),
            Source::Group(g) => format!("/groups/{}/audit_events", path_segment(g)),
            Source::Project(p) => format!("/projects/{}/audit_events", path_segment(p)),
        }
    }
}

/// GitLab's limit per query.
pub const MAX_SLICE_MS: i64 = 30 * 24 * 3_600_000;

/// `[from, to)` in slices of at most 30 days.
pub fn slices(from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from_ms;
    while at < to_ms {
        let end = (at + MAX_SLICE_MS).min(to_ms);
        out.push((at, end));
        at = end;
    }
    out
}

/// Every saved event in `[from_ms, to_ms)`, checked: each an object with a positive integer
/// `id` and a `created_at`. Returns `(kafka key, event)`: keyed by `author_id` like the
/// collector, so a backfilled event lands where its streamed copy did.
pub async fn read(
    client: &Client,
    source: &Source,
    from_ms: i64,
    to_ms: i64,
    mut on_page: impl FnMut(&[Value]),
) -> Result<Vec<(String, Value)>, GitlabError> {
    let path = source.path();
    let mut out = Vec::new();
    for (from, to) in slices(from_ms, to_ms) {
        let query = [
            ("created_after", rfc3339_ms(from)),
            // created_before is inclusive; the slices are half-open.
            ("created_before", rfc3339_ms(to - 1)),
            ("pagination", "keyset".to_string()),
            ("order_by", "id".to_string()),
            ("sort", "asc".to_string()),
        ];
        for v in client.get_all(&path, &query, &mut on_page).await? {
            let obj = v.as_object().ok_or_else(|| GitlabError::Malformed {
                path: path.clone(),
                reason: "an element is not an object".into(),
            })?;
            let id = field_i64(&path, obj, "id")?;
            if !obj.get("created_at").is_some_and(Value::is_string) {
                return Err(GitlabError::Malformed {
                    path: path.clone(),
                    reason: format!("event {id}: `created_at` is not a string"),
                });
            }
            // The API names the type `event_name` (EE::API::Entities::AuditEvent), the stream
            // `event_type`: copy it across so the normalizer finds it (the dedup key of a
            // saved event is its id, so this changes no key). An event with neither is
            // dead-lettered by ingest with the reason, like any untyped stream element.
            let mut v = v;
            if v.get("event_type").is_none()
                && let Some(name) = v.get("event_name").filter(|n| n.is_string()).cloned()
            {
                v["event_type"] = name;
            }
            let key = match v.get("author_id") {
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            out.push((key, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_in_thirty_day_slices() {
        let day = 24 * 3_600_000;
        assert_eq!(slices(0, 10 * day), vec![(0, 10 * day)]);
        assert_eq!(
            slices(0, 61 * day),
            vec![(0, 30 * day), (30 * day, 60 * day), (60 * day, 61 * day)]
        );
        assert!(slices(5, 5).is_empty());
    }
}
