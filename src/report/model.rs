//! What `data.rs` reads from ClickHouse, as plain values: one field per named query the
//! report runs. Everything else in the report is computed from this by pure functions.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::model::Alert;
use crate::query::recommend::Recommendation;

/// The report's window and scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub from_ms: i64,
    pub to_ms: i64,
    pub generated_at_ms: i64,
    /// Only projects under this group path (or the group itself); empty = every project.
    pub group: String,
    /// An allowlist entry is "unused" after this many days without a use or change.
    pub unused_days: i64,
}

/// One (source → target) pair from `latest-use`: every use, same-project and
/// authentication-only ones (empty target) included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairUse {
    pub source: String,
    pub target: String,
    pub uses: u64,
    pub last_used: String,
    pub last_actor: String,
    pub last_job_id: Option<i64>,
}

/// Uses of a pair whose source was not on the target's allowlist (`outside-allowlist`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsidePair {
    pub target: String,
    pub source: String,
    pub uses: u64,
    pub actions: String,
    pub first_used: String,
    pub last_used: String,
}

/// One use outside the allowlist, with who and which job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsideUse {
    pub at: String,
    pub source: String,
    pub target: String,
    pub action: String,
    pub actor_name: String,
    pub actor_username: String,
    pub actor_kind: String,
    pub job_id: Option<i64>,
}

/// One row of `allowlist-vs-use`: a current entry or a consumer of a protected project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowlistRow {
    pub project: String,
    /// `enabled`, `disabled` or `not configured`.
    pub inbound: String,
    pub member_type: String,
    pub member_path: String,
    /// The query's status column (see schemas/queries/allowlist-vs-use.sql).
    pub status: String,
    pub uses: u64,
    pub last_used: String,
}

/// A current entry idle for `unused_days` (`unused-allowlist-entries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusedEntry {
    pub project: String,
    pub member_type: String,
    pub member_path: String,
    pub last_used: String,
}

/// Uses of one action from a source in a target (`actions-over-time`, summed over buckets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairAction {
    pub source: String,
    pub target: String,
    pub action: String,
    pub uses: u64,
}

/// A token-lifecycle or allowlist change (`changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub at: String,
    /// `token` or `allowlist`.
    pub kind: String,
    pub what: String,
    pub subject: String,
    /// The token's scope (project, group or user path) or the protected project.
    pub scope: String,
    pub author_name: String,
    pub author_kind: String,
}

/// The report's alerts (from `alerts_latest`) as its JSON lists them: the last-seen time as
/// UTC text and the source and target as `source`/`target`, the names the report has used
/// since it first listed alerts, so the JSON a reader scripts against stays the same.
pub fn serialize_alerts<S: Serializer>(alerts: &[Alert], s: S) -> Result<S::Ok, S::Error> {
    struct Listed<'a>(&'a Alert);
    impl Serialize for Listed<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let a = self.0;
            let mut item = s.serialize_struct("AlertItem", 11)?;
            item.serialize_field("last_seen", &utc(a.last_seen_ms))?;
            item.serialize_field("rule", &a.rule)?;
            item.serialize_field("severity", a.severity.as_str())?;
            item.serialize_field("status", a.status.as_str())?;
            item.serialize_field("summary", &a.summary)?;
            item.serialize_field("source", &a.source_project_path)?;
            item.serialize_field("target", &a.target_project_path)?;
            item.serialize_field("actor_kind", &a.actor_kind)?;
            item.serialize_field("actor_id", &a.actor_id)?;
            item.serialize_field("job_id", &a.job_id)?;
            item.serialize_field("count", &a.count)?;
            item.end()
        }
    }
    s.collect_seq(alerts.iter().map(Listed))
}

/// Everything the report is built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportData {
    pub scope: Scope,
    pub pairs: Vec<PairUse>,
    pub outside: Vec<OutsidePair>,
    pub outside_uses: Vec<OutsideUse>,
    pub allowlist: Vec<AllowlistRow>,
    pub unused_entries: Vec<UnusedEntry>,
    pub actions: Vec<PairAction>,
    #[serde(skip)]
    pub recommendations: Vec<Recommendation>,
    pub changes: Vec<Change>,
    /// Open alerts seen in the window (up to `data::LISTED_ROWS`).
    #[serde(serialize_with = "serialize_alerts")]
    pub alerts: Vec<Alert>,
    /// Open alerts in `alerts_latest` (all of them, not only those listed).
    pub open_alerts: u64,
}

/// `a/b/c` is in group `a` and `a/b`, and in scope `a/b/c` itself; every path is in "".
pub fn in_group(path: &str, group: &str) -> bool {
    group.is_empty() || path == group || crate::query::recommend::is_under(path, group)
}

/// The top-level group of a path: `a` for `a/b/c`, the path itself when it has no `/`.
pub fn top_level_group(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the form the named queries print times in.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
