//! `tokentrail gitlab sync`: every project in scope → its allowlist from GitLab's API →
//! snapshot rows (src/gitlab/snapshot.rs) into the audit topic, where ingest stores them in
//! `allowlist_changes` and the correlator applies them in order.

use std::collections::HashMap;

use super::api::{self, Scope};
use super::client::{Client, GitlabError};
use super::history;
use super::produce::AuditProducer;
use super::progress::Progress;
use super::settings::GitlabSettings;
use super::snapshot::{self, Known, Message};
use crate::store::settings::ClickHouseSettings;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub scope: Scope,
    /// Print the rows (NDJSON on stdout) instead of producing them.
    pub dry_run: bool,
    /// Write every project's snapshot, also those that equal the history.
    pub full: bool,
}

/// What a sync did, for the summary line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub projects: usize,
    pub entries: usize,
    pub rows: usize,
    pub drift: usize,
    pub unchanged: usize,
    /// Projects whose allowlist could not be read, with the reason (403, 404, …).
    pub failed: Vec<(String, String)>,
}

/// Reads and writes; `history` is the stored state (`history::load`), passed in so tests
/// and `--dry-run` without ClickHouse can give their own.
pub async fn sync(
    client: &Client,
    settings: &GitlabSettings,
    opts: &SyncOptions,
    known: &HashMap<i64, Known>,
    producer: Option<&AuditProducer>,
    metrics: &Metrics,
    now_ms: impl Fn() -> i64,
) -> Result<(SyncReport, Vec<Message>), SyncError> {
    let listing = Progress::spinner("projects listed");
    let projects =
        api::projects(client, &opts.scope, |page| listing.inc(page.len() as u64)).await?;
    listing.finish();
    let progress = Progress::bar(projects.len() as u64, "allowlists read");
    let mut report = SyncReport {
        projects: projects.len(),
        ..SyncReport::default()
    };
    let mut all = Vec::new();
    let empty = Known::default();
    for p in &projects {
        progress.inc(1);
        let a = match api::allowlist(client, p, settings.graphql_policies).await {
            Ok(a) => a,
            // One project the token may not read (or one deleted meanwhile) must not hide
            // every other: listed in the summary, and the command fails at the end.
            Err(e @ (GitlabError::Forbidden { .. } | GitlabError::NotFound { .. })) => {
                report.failed.push((p.path.clone(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        report.entries += a.entries.len();
        let msgs = snapshot::messages(&a, known.get(&p.id).unwrap_or(&empty), now_ms(), opts.full);
        if msgs.is_empty() {
            report.unchanged += 1;
            continue;
        }
        report.rows += msgs.len();
        report.drift += msgs.iter().filter(|m| m.drift.is_some()).count();
        if let Some(producer) = producer.filter(|_| !opts.dry_run) {
            let payloads: Vec<(String, Vec<u8>)> = msgs
                .iter()
                .map(|m| (m.key.clone(), m.event.to_string().into_bytes()))
                .collect();
            producer.send_all(&payloads).await?;
            for m in &msgs {
                let kind = if m.drift.is_some() {
                    "drift"
                } else {
                    "snapshot"
                };
                metrics.gitlab_produced.with_label_values(&[kind]).inc();
            }
        }
        all.extend(msgs);
    }
    progress.finish();
    Ok((report, all))
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Produce(#[from] super::produce::ProduceError),
    #[error("reading the allowlist history from ClickHouse: {0}")]
    History(#[from] crate::store::read::ReadError),
}

/// `history::load` over the configured ClickHouse.
pub async fn load_history(
    clickhouse: &ClickHouseSettings,
) -> Result<HashMap<i64, Known>, SyncError> {
    let ch = crate::store::client::client(clickhouse);
    Ok(history::load(&ch, &clickhouse.database).await?)
}
