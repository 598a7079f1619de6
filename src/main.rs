//! The `tokentrail` command line. Glue only: each subcommand loads settings and calls the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use tokentrail::config::Settings;
use tokentrail::diagnose;
use tokentrail::store::schema::{Dialect, RenderOptions};
use tokentrail::store::{migrate, sink};
use tokentrail::telemetry::{self, metrics::Metrics, server::Health};

#[derive(Parser)]
#[command(
    name = "tokentrail",
    // Commit, target, profile and flags from build.rs.
    version = env!("TOKENTRAIL_SHORT_VERSION"),
    long_version = include_str!(concat!(env!("OUT_DIR"), "/long_version.txt")),
    about = "Traceability for GitLab CI job tokens: GitLab audit events and webhooks from Kafka into ClickHouse"
)]
struct Cli {
    /// TOML configuration file; `TOKENTRAIL__SECTION__KEY` variables override it.
    #[arg(long, short, global = true, env = "TOKENTRAIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume GitLab audit events and webhooks from Kafka and write them to ClickHouse.
    Ingest {
        /// Print the effective configuration (secrets redacted) and exit.
        #[arg(long)]
        print_config: bool,
        /// Stop (draining and committing as on SIGTERM) once every assigned partition is
        /// committed to its high watermark: for backfills, demos and scripted runs.
        #[arg(long)]
        exit_when_caught_up: bool,
    },
    /// Receive GitLab audit-event streaming and webhooks over HTTP and produce them to Kafka.
    Collect {
        /// Print the effective configuration (secrets redacted) and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Create or upgrade the ClickHouse schema.
    Migrate {
        /// Print the DDL instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// Render for this dialect instead of asking the server (needed for --dry-run
        /// without a server).
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
    },
    /// Summarize every ended UTC day of token_use that changed since it was last sealed, for
    /// the named queries (ingest does this every `clickhouse.seal_every_secs`).
    Seal,
    /// Generate realistic GitLab traffic (with its ground truth) into Kafka or as NDJSON.
    Simulate(tokentrail::cli::simulate::SimulateArgs),
    /// Feed a SIEM: follow new token-use, lifecycle and alert rows in ClickHouse, or
    /// backfill a time range with --from/--to.
    Export(tokentrail::cli::export::ExportArgs),
    /// Run a named auditor query (`tokentrail query list` shows them).
    Query(Box<tokentrail::cli::query::QueryArgs>),
    /// Write an audit report (HTML, Markdown or JSON) of job-token use in a window.
    Report(Box<tokentrail::cli::report::ReportArgs>),
    /// List, show and acknowledge alerts (ClickHouse `alerts_latest`).
    #[command(subcommand)]
    Alerts(tokentrail::cli::alerts::AlertsCommand),
    /// Read GitLab's API: allowlist snapshots (sync), the authentication log against
    /// token_use (coverage), saved audit events for a time range (backfill).
    #[command(subcommand)]
    Gitlab(tokentrail::cli::gitlab::GitlabCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// For ClickHouse < 23.8 (e.g. 18.16): no DateTime64, codecs, TTL or LowCardinality.
    Portable,
    /// For ClickHouse ≥ 23.8.
    Modern,
}

impl From<DialectArg> for Dialect {
    fn from(d: DialectArg) -> Self {
        match d {
            DialectArg::Portable => Dialect::Portable,
            DialectArg::Modern => Dialect::Modern,
        }
    }
}

fn main() -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    tokentrail::allocator::tune();
    let cli = Cli::parse();
    for name in diagnose::unread_setting_variables(
        std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()),
    ) {
        eprintln!(
            "warning: {name} is not read: setting variables start with TOKENTRAIL__ \
             (two underscores), e.g. TOKENTRAIL__CLICKHOUSE__URL"
        );
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{}", diagnose::render(&e.into(), None));
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", diagnose::render(&e, Some(&settings)));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, settings: &Settings) -> anyhow::Result<()> {
    let settings = settings.clone();
    telemetry::init_logging(&settings.telemetry.log_format);
    match cli.command {
        Command::Ingest {
            print_config,
            exit_when_caught_up,
        } => {
            if print_config {
                print!("{}", settings.to_redacted_toml());
                return Ok(());
            }
            ingest(&settings, exit_when_caught_up).await
        }
        Command::Collect { print_config } => {
            if print_config {
                print!("{}", settings.to_redacted_toml());
                return Ok(());
            }
            collect(&settings).await
        }
        Command::Migrate { dry_run, dialect } => {
            migrate_cmd(&settings, dry_run, dialect.map(Into::into)).await
        }
        Command::Seal => seal_cmd(&settings).await,
        Command::Simulate(args) => tokentrail::cli::simulate::run(&settings, args).await,
        Command::Export(args) => tokentrail::cli::export::run(&settings, args).await,
        Command::Query(args) => {
            print!("{}", tokentrail::cli::query::run(&settings, &args).await?);
            Ok(())
        }
        Command::Report(args) => tokentrail::cli::report::run(&settings, &args).await,
        Command::Alerts(cmd) => tokentrail::cli::alerts::run(&settings, cmd).await,
        Command::Gitlab(cmd) => tokentrail::cli::gitlab::run(&settings, cmd).await,
    }
}

/// The `/metrics` and health endpoints of a long-running command, served from the start.
async fn serve_telemetry(settings: &Settings) -> anyhow::Result<(Metrics, Health)> {
    let metrics = Metrics::new();
    let health = Health::default();
    telemetry::server::serve_configured(
        &settings.telemetry.listen,
        metrics.clone(),
        health.clone(),
    )
    .await?;
    Ok((metrics, health))
}

async fn ingest(settings: &Settings, exit_when_caught_up: bool) -> anyhow::Result<()> {
    let (metrics, health) = serve_telemetry(settings).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(tokentrail::signals::cancel_on_signal(cancel.clone()));
    tokentrail::ingest::app::IngestApp::build(settings, metrics, health, &cancel)
        .await?
        .exit_when_caught_up(exit_when_caught_up)
        .run_until_stopped(cancel)
        .await?;
    Ok(())
}

async fn collect(settings: &Settings) -> anyhow::Result<()> {
    let (metrics, health) = serve_telemetry(settings).await?;
    let collector = tokentrail::collect::Collector::bind(settings, metrics, health).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(tokentrail::signals::cancel_on_signal(cancel.clone()));
    collector.run(cancel).await?;
    Ok(())
}

async fn seal_cmd(settings: &Settings) -> anyhow::Result<()> {
    let client = sink::client(&settings.clickhouse);
    let started = std::time::Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let cluster = settings.clickhouse.cluster();
    let report = tokentrail::store::seal::seal(&client, now_ms, cluster.as_deref())
        .await
        .context("sealing days of token_use")?;
    println!(
        "sealed {} days of token_use in {:.1} s",
        report.days,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn migrate_cmd(
    settings: &Settings,
    dry_run: bool,
    dialect: Option<Dialect>,
) -> anyhow::Result<()> {
    let ch = &settings.clickhouse;
    let client = sink::client(ch);
    if dry_run {
        let dialect = match dialect {
            Some(d) => d,
            None => Dialect::for_version(
                tokentrail::store::read::server_version(&client)
                    .await
                    .context("reading the server version (or pass --dialect)")?,
            ),
        };
        let opts = RenderOptions {
            database: ch.database.clone(),
            dialect,
            retention_days: ch.retention_days,
            cluster: ch.cluster(),
        };
        print!("{}", migrate::plan_sql(&opts)?);
        return Ok(());
    }
    let cluster = ch.cluster();
    let report = migrate::migrate_on(
        &client,
        &ch.database,
        ch.retention_days,
        dialect,
        cluster.as_deref(),
    )
    .await?;
    println!(
        "dialect {:?}: applied {:?}, already applied {:?}",
        report.dialect, report.applied, report.already_applied
    );
    Ok(())
}
