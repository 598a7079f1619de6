//! `tokentrail gitlab sync|backfill|coverage`.

use anyhow::Context;

use super::api::Scope;
use super::client::Client;
use super::produce::AuditProducer;
use super::sync::{self, SyncOptions};
use crate::config::Settings;
use crate::telemetry::metrics::Metrics;

#[derive(clap::Subcommand)]
pub enum GitlabCommand {
    /// Read every allowlist in scope from GitLab's API and store it as snapshot rows (via
    /// the audit topic), so allowlist status is known without having seen the events.
    Sync(SyncArgs),
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
            let known = sync::load_history(settings).await.context(
                "the drift check needs the stored allowlist history (tokentrail migrate first)",
            )?;
            let producer = if opts.dry_run {
                None
            } else {
                Some(AuditProducer::new(settings, "gitlab-sync")?)
            };
            let (report, msgs) = sync::sync(
                &client,
                settings,
                &opts,
                &known,
                producer.as_ref(),
                &metrics,
                || chrono::Utc::now().timestamp_millis(),
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
            if !report.failed.is_empty() {
                for (p, e) in &report.failed {
                    eprintln!("not read: {p}: {e}");
                }
                anyhow::bail!(
                    "{} of {} allowlists could not be read (listed above); the others were synced",
                    report.failed.len(),
                    report.projects
                );
            }
            Ok(())
        }
    }
}
