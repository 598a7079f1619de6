//! Deterministic GitLab traffic simulator: audit-stream and webhook messages plus the
//! token-use records a correct pipeline must derive from them (the ground truth).
//!
//! Pure: no I/O, no clock, one seeded ChaCha RNG. The same `SimConfig` always yields the
//! same bytes. `Simulator` is an iterator that keeps only the jobs currently "in flight"
//! in memory (plus the ground truth), so large runs can be streamed to Kafka or NDJSON.

mod faults;
mod gitlab;
pub mod gitlab_api;
pub mod ndjson;
mod scenario;
mod world;

use serde::{Deserialize, Serialize};

use crate::model::{SourceKind, TokenUse};

/// What to generate. All shares are probabilities in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub seed: u64,
    /// Unix milliseconds of the first event; the simulator never reads the clock.
    pub start_ms: i64,
    /// Exact number of CI jobs (each gets a `running` and a `success` job hook).
    pub jobs: usize,
    pub groups: usize,
    pub projects: usize,
    pub users: usize,
    /// Office/VPN NAT addresses shared by the human users (interactive traffic).
    pub nat_ips: usize,
    /// Jobs running at once on average; drives the arrival rate.
    pub concurrency: usize,
    /// Re-dispatch of an audit event (stream-only: new random `id`; saved: same `id`).
    pub duplicate_share: f64,
    /// Share of audit Kafka messages that are JSON arrays of 2-20 events.
    pub batch_share: f64,
    /// Webhook re-deliveries: same `Idempotency-Key`, new `X-Gitlab-Webhook-UUID`.
    pub webhook_retry_share: f64,
    /// Poison messages (and poison elements inside batches), per logical message.
    pub bad_share: f64,
    /// Share of job-token uses that are anomalous; also scales world-level anomalies.
    pub anomaly_share: f64,
    /// Expected unrelated audit events per job.
    pub noise_per_job: f64,
    /// Share of the protected-project candidates *without* streamed allowlist events that
    /// had an allowlist before the simulation starts (made an hour before `start_ms`, never
    /// streamed: `tokentrail gitlab sync` reads them from the API double, see
    /// `gitlab_api::write_api_double`). 0 (the default) changes nothing.
    #[serde(default)]
    pub preexisting_allowlists: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            // 2025-06-03T10:00:00Z
            start_ms: 1_748_944_800_000,
            jobs: 10_000,
            groups: 12,
            projects: 200,
            users: 150,
            nat_ips: 6,
            concurrency: 40,
            duplicate_share: 0.02,
            batch_share: 0.05,
            webhook_retry_share: 0.02,
            bad_share: 0.002,
            anomaly_share: 0.01,
            noise_per_job: 1.0,
            preexisting_allowlists: 0.0,
        }
    }
}

impl SimConfig {
    /// A few hundred jobs with every fault and anomaly kind turned up, for unit tests.
    pub fn small() -> Self {
        SimConfig {
            jobs: 300,
            groups: 5,
            projects: 30,
            users: 12,
            nat_ips: 3,
            concurrency: 8,
            duplicate_share: 0.05,
            batch_share: 0.1,
            webhook_retry_share: 0.05,
            bad_share: 0.02,
            anomaly_share: 0.05,
            noise_per_job: 1.0,
            ..SimConfig::default()
        }
    }
}

/// One Kafka record to produce. Header values are text (GitLab sends ASCII headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    pub source: SourceKind,
    /// Author/user id as text, so one actor's events share a partition; `None` for batches.
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// Delivery time (Kafka record timestamp); non-decreasing in stream order.
    pub timestamp_ms: i64,
}

impl SimMessage {
    /// What the normalizer makes of this message, as if consumed at offset 0 of `topic`
    /// (tests, examples and benchmarks that skip Kafka use this).
    pub fn normalize(&self, topic: &str) -> crate::model::Normalized {
        let headers: Vec<crate::model::Header<'_>> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let input = crate::model::InputMessage {
            source: self.source,
            topic,
            partition: 0,
            offset: 0,
            timestamp_ms: Some(self.timestamp_ms),
            headers: &headers,
            payload: Some(&self.payload),
        };
        crate::normalize::normalize(&input, &crate::normalize::Limits::default())
    }
}

/// A poison message (or a poison element of a batched array) the pipeline must reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadMessageTruth {
    /// Position of the message in the generated stream (0-based).
    pub index: u64,
    /// Position inside a batched JSON array; `None` when the whole message is bad.
    pub element: Option<usize>,
    pub source: SourceKind,
    /// `invalid_json`, `not_an_object`, `missing_field` or `wrong_type` (`RejectKind::as_str`).
    pub reason: String,
}

/// Something a detector should flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyTruth {
    /// `not_allowlisted`, `push`, `new_edge`, `crown_jewel`, `allowlist_disabled`,
    /// `group_admitted`, `bot_lifecycle`.
    pub kind: String,
    pub time_ms: i64,
    pub actor_id: Option<i64>,
    pub job_id: Option<i64>,
    pub source_project_id: Option<i64>,
    pub target_project_id: Option<i64>,
    pub detail: String,
}

/// What must come out of the pipeline for the generated stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Sorted by (event_time_ms, job_id, action).
    pub token_uses: Vec<TokenUse>,
    /// Logical audit events, each once (no re-dispatches, no poison).
    pub distinct_audit_events: u64,
    /// Logical webhook deliveries, each once (no retries, no poison).
    pub distinct_webhooks: u64,
    pub bad_messages: Vec<BadMessageTruth>,
    pub anomalies: Vec<AnomalyTruth>,
    /// Kafka records on the audit topic (a batch counts once; includes poison and duplicates).
    pub audit_messages: u64,
    /// Kafka records on the webhook topic (includes retries and poison).
    pub webhook_messages: u64,
}

/// Streaming generator: iterate for messages, then call `into_truth`.
pub struct Simulator {
    scenario: scenario::Scenario,
}

impl Simulator {
    pub fn new(cfg: &SimConfig) -> Self {
        Simulator {
            scenario: scenario::Scenario::new(cfg),
        }
    }

    /// The ground truth; complete only once the iterator returned `None`.
    /// The allowlists that existed before `start_ms` (never streamed), as GitLab's API would
    /// list them then.
    pub fn preexisting_allowlists(&self) -> Vec<gitlab_api::Preexisting> {
        self.scenario.preexisting_allowlists()
    }

    pub fn into_truth(self) -> GroundTruth {
        self.scenario.into_truth()
    }
}

impl Iterator for Simulator {
    type Item = SimMessage;

    fn next(&mut self) -> Option<SimMessage> {
        self.scenario.next_message()
    }
}

/// Generate the whole stream in memory.
pub fn generate(cfg: &SimConfig) -> (Vec<SimMessage>, GroundTruth) {
    let mut sim = Simulator::new(cfg);
    let messages: Vec<SimMessage> = sim.by_ref().collect();
    (messages, sim.into_truth())
}

/// Ground truth as pretty JSON (for the CLI's `--truth` file).
pub fn truth_to_json(truth: &GroundTruth) -> String {
    serde_json::to_string_pretty(truth).expect("ground truth serializes")
}

/// Inverse of `truth_to_json`.
pub fn truth_from_json(text: &str) -> serde_json::Result<GroundTruth> {
    serde_json::from_str(text)
}
