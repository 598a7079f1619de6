//! The types that flow between pipeline stages.
//!
//! `InputMessage` is what the Kafka source hands to the pure core; `Event` is what the
//! normalizer returns; `TokenUse` is what the correlator emits. None of these types knows
//! about rdkafka or ClickHouse, so the pure stages can be tested and benchmarked alone.

use serde::{Deserialize, Serialize};

/// Headers that carry a shared secret (lowercase): GitLab's streaming verification token
/// (`X-Gitlab-Event-Streaming-Token`), a webhook's secret token (`X-Gitlab-Token`), and
/// `Authorization`, should a proxy add one. The collector never forwards them to Kafka, and
/// ingest never copies them to the dead-letter topic (another producer may have put them on
/// the input topic).
pub const SECRET_HEADERS: &[&str] = &[
    "x-gitlab-event-streaming-token",
    "x-gitlab-token",
    "authorization",
];

/// Whether a header name (any case) is one of [`SECRET_HEADERS`].
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Which kind of GitLab delivery a Kafka topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Audit-event streaming bodies: one JSON object, or a JSON array in batched mode.
    AuditStream,
    /// Webhook bodies (`Job Hook`, `Pipeline Hook`, ...).
    Webhook,
}

/// One Kafka record, detached from the client library.
#[derive(Debug, Clone, Copy)]
pub struct InputMessage<'a> {
    pub source: SourceKind,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Kafka record timestamp (create or log-append time), if the broker gave one.
    pub timestamp_ms: Option<i64>,
    /// Kafka headers as sent by the collector: the GitLab HTTP headers, verbatim names.
    pub headers: &'a dyn HeaderSource,
    pub payload: Option<&'a [u8]>,
}

/// A Kafka header, borrowed from the record: name and value.
pub type Header<'a> = (&'a str, &'a [u8]);

/// A record's headers, looked up by name when a reader asks. Why not a list made up front:
/// librdkafka parses a record's headers on first access, and most audit events never need
/// theirs (the body names the event type), so they are left unparsed (that parse was 4 % of
/// ingest's CPU, benches/README.md "Ninth session").
pub trait HeaderSource: std::fmt::Debug {
    /// Into `found[i]`, the value of the first header named `names[i]`, in any case (HTTP
    /// header names are case-insensitive), in one pass over the headers: a webhook needs two,
    /// and each pass re-reads every header name from librdkafka.
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]);
    /// Every header in order, for the dead-letter copy.
    fn all(&self) -> Vec<Header<'_>>;

    /// The value of the first header named `name`, in any case.
    fn find(&self, name: &str) -> Option<&[u8]> {
        let mut found = [None];
        self.find_each(&[name], &mut found);
        found[0]
    }
}

/// The one lookup rule of every [`HeaderSource`]: `found[i]` is the value of the first of
/// `headers` named `names[i]`, in any case. The pass stops once every name is found.
pub fn find_headers<'h>(
    headers: impl IntoIterator<Item = Header<'h>>,
    names: &[&str],
    found: &mut [Option<&'h [u8]>],
) {
    let mut missing = names.len().min(found.len());
    for (key, value) in headers {
        if missing == 0 {
            return;
        }
        for (name, slot) in names.iter().zip(found.iter_mut()) {
            if slot.is_none() && key.eq_ignore_ascii_case(name) {
                *slot = Some(value);
                missing -= 1;
            }
        }
    }
}

impl HeaderSource for [Header<'_>] {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        find_headers(self.iter().copied(), names, found);
    }

    fn all(&self) -> Vec<Header<'_>> {
        self.to_vec()
    }
}

impl HeaderSource for Vec<Header<'_>> {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        self.as_slice().find_each(names, found);
    }

    fn all(&self) -> Vec<Header<'_>> {
        self.as_slice().all()
    }
}

/// Owned headers, as the simulator and the tests hold them.
impl HeaderSource for Vec<(String, Vec<u8>)> {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        let headers = self.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        find_headers(headers, names, found);
    }

    fn all(&self) -> Vec<Header<'_>> {
        header_views(self)
    }
}

impl<const N: usize> HeaderSource for [Header<'_>; N] {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        self.as_slice().find_each(names, found);
    }

    fn all(&self) -> Vec<Header<'_>> {
        self.as_slice().all()
    }
}

/// Borrowed views of owned headers.
pub fn header_views(owned: &[(String, Vec<u8>)]) -> Vec<Header<'_>> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect()
}

impl InputMessage<'_> {
    /// Case-insensitive header lookup (HTTP header names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let [value] = self.headers_named([name]);
        value
    }

    /// [`Self::header`] for several names, in one pass over the headers.
    pub fn headers_named<const N: usize>(&self, names: [&str; N]) -> [Option<&str>; N] {
        let mut found = [None; N];
        self.headers.find_each(&names, &mut found);
        found.map(|value| value.and_then(|v| std::str::from_utf8(v).ok()))
    }
}

/// Who performed an action, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Human,
    ProjectBot,
    GroupBot,
    ServiceAccount,
    DeployToken,
    DeployKey,
    Unauthenticated,
    Unknown,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::ProjectBot => "project_bot",
            ActorKind::GroupBot => "group_bot",
            ActorKind::ServiceAccount => "service_account",
            ActorKind::DeployToken => "deploy_token",
            ActorKind::DeployKey => "deploy_key",
            ActorKind::Unauthenticated => "unauthenticated",
            ActorKind::Unknown => "unknown",
        }
    }

    /// Stored text back to the kind; text no release writes reads as `Unknown`, so a stored
    /// row is never dropped over it.
    pub fn parse(text: &str) -> ActorKind {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .unwrap_or(ActorKind::Unknown)
    }
}

/// Why a message (or one element of a batched array) could not be used.
/// Each rejection is dead-lettered with `kind` and `message` as headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position inside a batched JSON array; `None` when the whole message is unusable.
    pub index: Option<usize>,
    pub kind: RejectKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    EmptyPayload,
    Oversize,
    InvalidJson,
    NotAnObject,
    MissingField,
    WrongType,
    /// An event time outside `normalize::time::STORABLE_FROM_MS..STORABLE_UNTIL_MS`, which
    /// ClickHouse 18.16's `DateTime` (UInt32 seconds) would store wrapped.
    TimestampOutOfRange,
    /// A key repeated in one JSON object: which value GitLab meant is unknowable.
    DuplicateKey,
    /// Rejected by ClickHouse when the batch it was in was bisected.
    RejectedByStore,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::EmptyPayload => "empty_payload",
            RejectKind::Oversize => "oversize",
            RejectKind::InvalidJson => "invalid_json",
            RejectKind::NotAnObject => "not_an_object",
            RejectKind::MissingField => "missing_field",
            RejectKind::WrongType => "wrong_type",
            RejectKind::TimestampOutOfRange => "timestamp_out_of_range",
            RejectKind::DuplicateKey => "duplicate_key",
            RejectKind::RejectedByStore => "rejected_by_store",
        }
    }
}

/// The normalizer's answer for one Kafka message: the usable events and, for batched bodies,
/// the elements that were not usable. A message with rejections is dead-lettered once per
/// rejection; its usable events are still stored.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejection>,
}

/// A normalized GitLab event.
// Not boxed: events are short-lived and moved rarely; an allocation per event costs more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Event {
    Audit(AuditEvent),
    Webhook(WebhookEvent),
}

/// One GitLab audit event with its generic fields and what it means for job tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// GitLab's `id` as text: a database id for saved events, a random UUID for stream-only ones.
    pub id: String,
    /// `saved:<id>` for saved events, `content:<sha256>` for stream-only ones (see `dedup`).
    pub dedup_key: String,
    /// True when `id` is a random per-dispatch UUID, i.e. the event was never saved.
    pub stream_only: bool,
    pub event_type: String,
    pub author_id: i64,
    pub author_name: String,
    pub author_class: Option<String>,
    pub actor_kind: ActorKind,
    pub entity_id: Option<i64>,
    pub entity_type: String,
    pub entity_path: String,
    pub target_id: Option<i64>,
    pub target_type: String,
    pub target_details: String,
    pub ip_address: String,
    /// `created_at` in Unix milliseconds, UTC.
    pub created_at_ms: i64,
    /// `details` re-serialized as compact JSON text.
    pub details_json: String,
    /// What the event means for job-token traceability.
    pub meaning: AuditMeaning,
}

/// The job-token semantics of an audit event. Filled by the normalizer; the correlator, the
/// allowlist tracker and the token-lifecycle writer read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditMeaning {
    /// `user_authenticated_using_job_token`: the job's project is the token source.
    JobTokenAuth { job_id: Option<i64> },
    /// A resource event that names the accessed project (the target) and the action.
    ResourceAccess {
        action: Action,
        pipeline_id: Option<i64>,
        upstream_project_path: Option<String>,
        upstream_pipeline_id: Option<i64>,
    },
    /// `secure_ci_job_token_*`: entity = protected project, target = admitted source.
    Allowlist(AllowlistChange),
    /// Access tokens, deploy tokens and deploy keys being created, revoked or removed.
    TokenLifecycle(TokenLifecycle),
    /// Any other event type: stored with its generic fields only.
    Other,
}

/// An observation of GitLab's job-token authentication log, produced by `tokentrail gitlab
/// coverage` (entity = target project, target = origin project, `created_at` = last
/// authorized at, `details.coverage_gap`); stored as an audit event of this type.
pub const AUTH_LOG_EVENT_TYPE: &str = "tokentrail_job_token_auth_log";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowlistChange {
    pub change: AllowlistChangeKind,
    /// The project that owns the inbound allowlist (the event's entity).
    pub protected_project_id: Option<i64>,
    pub protected_project_path: String,
    /// `Project` or `Group` for entries; `None` for inbound enable/disable.
    pub member_type: Option<String>,
    pub member_id: Option<i64>,
    pub member_path: Option<String>,
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowlistChangeKind {
    ProjectAdded,
    ProjectRemoved,
    GroupAdded,
    GroupRemoved,
    InboundEnabled,
    InboundDisabled,
    PoliciesUpdated,
    /// `tokentrail gitlab sync` read the entry from GitLab's API at the event time
    /// (`src/gitlab/snapshot.rs`): a full state, not a change GitLab announced.
    SnapshotProject,
    SnapshotGroup,
    /// The history said present; GitLab's API no longer lists the entry.
    SnapshotProjectAbsent,
    SnapshotGroupAbsent,
    SnapshotInboundEnabled,
    SnapshotInboundDisabled,
}

impl AllowlistChangeKind {
    /// Inbound enforcement switched or read (no member).
    pub fn is_inbound(self) -> bool {
        use AllowlistChangeKind::*;
        matches!(
            self,
            InboundEnabled | InboundDisabled | SnapshotInboundEnabled | SnapshotInboundDisabled
        )
    }

    /// For inbound kinds: whether enforcement is on afterwards.
    pub fn enables_inbound(self) -> bool {
        matches!(
            self,
            AllowlistChangeKind::InboundEnabled | AllowlistChangeKind::SnapshotInboundEnabled
        )
    }

    /// The member is off the allowlist afterwards.
    pub fn removes(self) -> bool {
        use AllowlistChangeKind::*;
        matches!(
            self,
            ProjectRemoved | GroupRemoved | SnapshotProjectAbsent | SnapshotGroupAbsent
        )
    }

    /// Read from GitLab's API by `tokentrail gitlab sync`, not announced by an audit event.
    pub fn is_snapshot(self) -> bool {
        use AllowlistChangeKind::*;
        matches!(
            self,
            SnapshotProject
                | SnapshotGroup
                | SnapshotProjectAbsent
                | SnapshotGroupAbsent
                | SnapshotInboundEnabled
                | SnapshotInboundDisabled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLifecycle {
    /// e.g. `personal_access_token`, `project_access_token`, `deploy_token`, `deploy_key`.
    pub token_kind: String,
    /// e.g. `created`, `revoked`, `deleted`, `creation_failed`.
    pub operation: String,
    pub token_id: Option<i64>,
    pub scope_type: String,
    pub scope_id: Option<i64>,
    pub scope_path: String,
}

/// One GitLab webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// `idem:<Idempotency-Key>`, or `content:<sha256>` of the body when the header is missing.
    pub dedup_key: String,
    /// `X-Gitlab-Event`, e.g. `Job Hook`.
    pub event_header: String,
    pub object_kind: String,
    pub project_id: Option<i64>,
    pub project_path: String,
    /// The time the hook describes (job/pipeline created or finished), else the Kafka time.
    pub event_time_ms: i64,
    pub payload_json: String,
    /// Filled for job hooks and for each build of a pipeline hook.
    pub jobs: Vec<JobInfo>,
}

/// What a job webhook says about one job: the enrichment for token-use records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job_id: i64,
    pub job_name: String,
    pub project_id: Option<i64>,
    pub project_path: String,
    pub pipeline_id: Option<i64>,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    pub runner_id: Option<i64>,
    pub runner_description: Option<String>,
    pub status: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub source_pipeline_id: Option<i64>,
    pub source_project_id: Option<i64>,
    pub source_project_path: Option<String>,
}

/// What a token use did to its target: tokentrail's action vocabulary (docs/gitlab-events.md
/// §5.3), `<resource>.<verb>` such as `repository.read`, or [`Action::AUTH`].
///
/// Open-ended text rather than an enum: the normalizer names actions from a fixed table
/// (src/normalize/resource.rs), but rows read back from `token_use` carry whatever a release
/// stored, and the text is stored, exported and hashed into `record_key`
/// (src/ingest/correlation.rs) exactly as [`Action::as_str`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Action(std::borrow::Cow<'static, str>);

impl Action {
    /// A job-token authentication with no resource event found for it.
    pub const AUTH: Action = Action::known("auth");
    /// A downstream pipeline created in another project (`multi_project_downstream_pipeline_created`).
    pub const PIPELINE_TRIGGER: Action = Action::known("pipeline.trigger");

    /// An action of the vocabulary, without allocating.
    pub const fn known(name: &'static str) -> Action {
        Action(std::borrow::Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Action {
    fn from(text: String) -> Action {
        Action(std::borrow::Cow::Owned(text))
    }
}

impl From<&str> for Action {
    fn from(text: &str) -> Action {
        Action(std::borrow::Cow::Owned(text.to_owned()))
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Action {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Action {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How a token-use record was put together (src/correlate/mod.rs describes each). Stored,
/// exported and hashed into `record_key` as [`Correlation::as_str`], so those strings never
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Correlation {
    /// An authentication joined with the resource event of the same request.
    #[serde(rename = "auth+resource")]
    Matched,
    /// An authentication with no resource event (action [`Action::AUTH`]).
    #[serde(rename = "auth_only")]
    AuthOnly,
    /// A downstream-pipeline event that matched no authentication.
    #[serde(rename = "resource_lineage")]
    Lineage,
}

impl Correlation {
    pub const ALL: [Correlation; 3] = [
        Correlation::Matched,
        Correlation::AuthOnly,
        Correlation::Lineage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Correlation::Matched => "auth+resource",
            Correlation::AuthOnly => "auth_only",
            Correlation::Lineage => "resource_lineage",
        }
    }

    /// The stored text back to the kind; `None` for text no release writes.
    pub fn parse(text: &str) -> Option<Correlation> {
        Correlation::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Read from its text in every format: JSON, and the `token_use.correlation` column read as
/// RowBinary, where a derived enum would expect a variant index instead.
impl<'de> Deserialize<'de> for Correlation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Correlation, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Correlation::parse(&text).ok_or_else(|| {
            serde::de::Error::unknown_variant(
                &text,
                &["auth+resource", "auth_only", "resource_lineage"],
            )
        })
    }
}

impl std::fmt::Display for Correlation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A correlated job-token use: who, from which project, reached which project, doing what.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenUse {
    pub event_time_ms: i64,
    pub actor_id: i64,
    pub actor_name: String,
    pub actor_username: Option<String>,
    pub actor_kind: ActorKind,
    pub source_project_id: Option<i64>,
    pub source_project_path: String,
    pub target_project_id: Option<i64>,
    pub target_project_path: String,
    /// Vocabulary from docs/gitlab-events.md §5.3, e.g. `repository.read`; `auth` when no resource
    /// event was found for the authentication.
    pub action: Action,
    pub job_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub git_ref: Option<String>,
    pub runner_id: Option<i64>,
    pub token_type: String,
    pub ip_address: String,
    pub same_project: bool,
    /// Whether the source was on the target's inbound allowlist at the time; `None` if unknown.
    pub allowlisted: Option<bool>,
    pub correlation: Correlation,
    /// Milliseconds between the authentication and the resource event.
    pub gap_ms: i64,
}

/// How serious an alert is (the `[alerting.rules.*] severity` setting, and each alert row's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acked,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acked => "acked",
        }
    }
}

/// One alert as stored (a row of `alerts`), as sent (Kafka value, webhook body) and as read
/// back (`store::tables::alerts::StoredAlert`, which adds the row's version) by the
/// `alerts` CLI, start-up hydration, the report and the SIEM feed: the one alert type.
/// `event_time_ms` and the actor/job fields describe the latest triggering event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub rule: String,
    pub severity: Severity,
    pub summary: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub source_project_path: String,
    pub target_project_path: String,
    pub actor_id: i64,
    pub actor_kind: String,
    pub action: String,
    pub job_id: Option<i64>,
    pub event_time_ms: i64,
    /// Rule-specific context (ids, record key, reason) as a JSON object.
    pub details: serde_json::Value,
    pub status: AlertStatus,
    pub acked_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_named_finds_each_first_match_in_any_case_in_one_pass() {
        let headers: [Header<'_>; 4] = [
            ("x-gitlab-event", b"Job Hook"),
            ("Idempotency-Key", b"first"),
            ("IDEMPOTENCY-KEY", b"second"),
            ("X-Bad-Utf8", b"\xff"),
        ];
        let msg = InputMessage {
            source: SourceKind::Webhook,
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            headers: &headers,
            payload: None,
        };
        assert_eq!(
            msg.headers_named(["X-Gitlab-Event", "Idempotency-Key", "Absent", "x-bad-utf8"]),
            [Some("Job Hook"), Some("first"), None, None]
        );
        assert_eq!(msg.header("idempotency-key"), Some("first"));
        assert_eq!(headers.find("X-BAD-UTF8"), Some(&b"\xff"[..]));
    }

    #[test]
    fn correlation_text_is_the_same_everywhere() {
        for c in Correlation::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, c.as_str());
            assert_eq!(serde_json::from_value::<Correlation>(json).unwrap(), c);
            assert_eq!(Correlation::parse(c.as_str()), Some(c));
        }
        assert_eq!(
            Correlation::ALL.map(Correlation::as_str),
            ["auth+resource", "auth_only", "resource_lineage"]
        );
        assert!(serde_json::from_str::<Correlation>("\"matched\"").is_err());
    }

    #[test]
    fn an_action_is_its_text() {
        let read = Action::known("repository.read");
        assert_eq!(serde_json::to_string(&read).unwrap(), "\"repository.read\"");
        assert_eq!(
            serde_json::from_str::<Action>("\"repository.read\"").unwrap(),
            read
        );
        assert_eq!(Action::from("repository.read".to_string()), read);
        assert_eq!(Action::AUTH.as_str(), "auth");
        assert_eq!(Action::PIPELINE_TRIGGER.to_string(), "pipeline.trigger");
    }
}
