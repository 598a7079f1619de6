//! `tokentrail gitlab sync|backfill|coverage`.

use anyhow::Context;

use crate::config::Settings;
use crate::gitlab::api::Scope;
use crate::gitlab::client::Client;
use crate::gitlab::produce::AuditProducer;
use crate::gitlab::progress::Progress;
use crate::gitlab::snapshot::rfc3339_ms;
use crate::gitlab::sync::{self, SyncOptions};
use crate::telemetry::metrics::Metrics;

#[derive(clap::Subcommand)]
pub enum GitlabCommand {
    /// Read every allowlist in scope from GitLab's API and store it as snapshot rows (via
    /// the audit topic), so allowlist status is known without having seen the events.
    Sync(SyncArgs),
    /// Read GitLab's job-token authentication log of every project in scope, compare it with
    /// token_use, and store the observations (gaps raise `coverage_gap`; `tokentrail query
    /// coverage-gaps` lists them).
    Coverage(CoverageArgs),
    /// Re-read GitLab's saved audit events of a time range into the audit topic (what
    /// streaming lost; stream-only events cannot be re-read).
    Backfill(BackfillArgs),
}

#[derive(clap::Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// A use counts as recorded if token_use has the edge this long before GitLab's last
    /// authorization or later (e.g. `5m`).
    #[arg(long, default_value = "5m")]
    pub tolerance: String,
    /// Print the observations as NDJSON on stdout instead of producing them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// Whose saved events: `--instance` (administrator), `--group PATH` or `--project PATH`.
    #[arg(long, conflicts_with_all = ["group", "project"])]
    pub instance: bool,
    #[arg(long, conflicts_with = "project")]
    pub group: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    /// The last span, e.g. `3h`, `2d` (or --from/--to).
    #[arg(long)]
    pub since: Option<String>,
    /// Range start, RFC 3339 or Unix milliseconds (inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// Range end (exclusive; default now).
    #[arg(long)]
    pub to: Option<String>,
    /// Print the events as NDJSON on stdout instead of producing them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args)]
#[group(id = "scope", required = true, multiple = false)]
pub struct ScopeArgs {
    /// A group's projects, subgroups included (full path, e.g. `payments`).
    #[arg(long, group = "scope")]
    pub group: Option<String>,
    /// Every project the token can see (an administrator's token: all).
    #[arg(long, group = "scope")]
    pub instance: bool,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        match &self.group {
            Some(g) => Scope::Group(g.clone()),
            None => Scope::Instance,
        }
    }
}

#[derive(clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Print the rows as NDJSON on stdout instead of producing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Write every project's snapshot, also those equal to the history (default:
    /// incremental, only projects that are new or differ).
    #[arg(long)]
    pub full: bool,
    /// Stamp the snapshot with this time (RFC 3339 or Unix ms) instead of now: only for a
    /// GitLab double that stands for another time (the demo's simulated instance) or a
    /// replay. A real GitLab answers as of now.
    #[arg(long)]
    pub as_of: Option<String>,
}

pub async fn run(settings: &Settings, cmd: GitlabCommand) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let client = Client::new(&settings.gitlab, Some(metrics.clone()))?;
    match cmd {
        GitlabCommand::Sync(args) => {
            let opts = SyncOptions {
                scope: args.scope.scope(),
                dry_run: args.dry_run,
                full: args.full,
            };
            let as_of = args
                .as_of
                .as_deref()
                .map(crate::query::params::parse_timestamp)
                .transpose()
                .context("--as-of")?;
            let known = sync::load_history(&settings.clickhouse).await.context(
                "the drift check needs the stored allowlist history (tokentrail migrate first)",
            )?;
            let producer = if opts.dry_run {
                None
            } else {
                Some(AuditProducer::new(&settings.kafka, "gitlab-sync")?)
            };
            let (report, msgs) = sync::sync(
                &client,
                &settings.gitlab,
                &opts,
                &known,
                producer.as_ref(),
                &metrics,
                || as_of.unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            )
            .await?;
            if opts.dry_run {
                for m in &msgs {
                    println!("{}", m.event);
                }
            }
            eprintln!(
                "{} projects, {} allowlist entries: {} rows {} ({} drift), {} unchanged",
                report.projects,
                report.entries,
                report.rows,
                if opts.dry_run { "printed" } else { "produced" },
                report.drift,
                report.unchanged
            );
            report_failed(&report.failed, report.projects)
        }
        GitlabCommand::Coverage(args) => coverage(settings, &client, &metrics, args).await,
        GitlabCommand::Backfill(args) => backfill(settings, &client, &metrics, args).await,
    }
}

async fn coverage(
    settings: &Settings,
    client: &Client,
    metrics: &Metrics,
    args: CoverageArgs,
) -> anyhow::Result<()> {
    let tolerance_ms =
        crate::query::params::parse_duration(&args.tolerance).context("--tolerance")?;
    let listing = Progress::spinner("projects listed");
    let projects =
        crate::gitlab::api::projects(client, &args.scope.scope(), |p| listing.inc(p.len() as u64))
            .await?;
    listing.finish();
    let ch = crate::store::client::client(&settings.clickhouse);
    let producer = (!args.dry_run)
        .then(|| AuditProducer::new(&settings.kafka, "gitlab-coverage"))
        .transpose()?;
    let progress = Progress::bar(projects.len() as u64, "authentication logs read");
    let report = crate::gitlab::coverage::check(
        client,
        &ch,
        &settings.clickhouse.database,
        &projects,
        tolerance_ms,
        settings.gitlab.max_pages,
        || progress.inc(1),
    )
    .await?;
    progress.finish();
    for (log, last) in &report.gaps {
        eprintln!(
            "gap: {} -> {} last authorized {} (tokentrail's last record: {})",
            log.origin.path,
            log.target.path,
            rfc3339_ms(log.last_authorized_ms),
            last.map_or_else(|| "none".to_string(), rfc3339_ms)
        );
    }
    emit(producer.as_ref(), metrics, "auth_log", &report.observations).await?;
    eprintln!(
        "{} projects, {} authentication-log edges, {} gaps",
        projects.len(),
        report.observations.len(),
        report.gaps.len()
    );
    report_failed(&report.failed, projects.len())
}

async fn backfill(
    settings: &Settings,
    client: &Client,
    metrics: &Metrics,
    args: BackfillArgs,
) -> anyhow::Result<()> {
    use crate::gitlab::backfill::{Source, read};
    let source = match (&args.group, &args.project, args.instance) {
        (Some(g), None, false) => Source::Group(g.clone()),
        (None, Some(p), false) => Source::Project(p.clone()),
        (None, None, true) => Source::Instance,
        _ => anyhow::bail!("backfill needs one of --instance, --group PATH, --project PATH"),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let (from, to) = crate::query::params::window(
        args.since.as_deref(),
        args.from.as_deref(),
        args.to.as_deref(),
        now,
    )?;
    if args.since.is_none() && args.from.is_none() {
        anyhow::bail!("backfill needs --since or --from: a range, not all history");
    }
    let to = to.min(now + 1);
    let progress = Progress::spinner("saved audit events read");
    let events = read(client, &source, from, to, |p| progress.inc(p.len() as u64)).await?;
    progress.finish();
    let producer = (!args.dry_run)
        .then(|| AuditProducer::new(&settings.kafka, "gitlab-backfill"))
        .transpose()?;
    emit(producer.as_ref(), metrics, "backfill", &events).await?;
    eprintln!(
        "{} saved audit events {} ({} to {}); stream-only events cannot be backfilled",
        events.len(),
        if args.dry_run { "printed" } else { "produced" },
        rfc3339_ms(from),
        rfc3339_ms(to)
    );
    Ok(())
}

/// Produces `(key, event)` pairs, or prints them (NDJSON) when there is no producer.
async fn emit(
    producer: Option<&AuditProducer>,
    metrics: &Metrics,
    kind: &str,
    events: &[(String, serde_json::Value)],
) -> anyhow::Result<()> {
    match producer {
        None => {
            for (_, e) in events {
                println!("{e}");
            }
        }
        Some(p) => {
            let payloads: Vec<(String, Vec<u8>)> = events
                .iter()
                .map(|(k, e)| (k.clone(), e.to_string().into_bytes()))
                .collect();
            p.send_all(&payloads).await?;
            metrics
                .gitlab_produced
                .with_label_values(&[kind])
                .inc_by(events.len() as u64);
        }
    }
    Ok(())
}

fn report_failed(failed: &[(String, String)], total: usize) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    for (p, e) in failed {
        eprintln!("not read: {p}: {e}");
    }
    anyhow::bail!(
        "{} of {total} projects could not be read (listed above); the others were done",
        failed.len()
    )
}
