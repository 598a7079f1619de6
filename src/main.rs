//! The `tokentrail` command line. Glue only: each subcommand loads settings and calls the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use tokentrail::config::Settings;
use tokentrail::store::schema::{Dialect, RenderOptions};
use tokentrail::store::{migrate, sink};
use tokentrail::telemetry::{self, metrics::Metrics, server::Health};

#[derive(Parser)]
#[command(
    name = "tokentrail",
    version,
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
    Collect,
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
    /// Generate realistic GitLab traffic (with its ground truth) into Kafka or as NDJSON.
    Simulate(SimulateArgs),
    /// Feed a SIEM: follow new token-use, lifecycle and alert rows in ClickHouse, or
    /// backfill a time range with --from/--to.
    Export(ExportArgs),
    /// Run a named auditor query (`tokentrail query list` shows them).
    Query(Box<tokentrail::query::cli::QueryArgs>),
    /// List, show and acknowledge alerts (ClickHouse `alerts_latest`).
    #[command(subcommand)]
    Alerts(tokentrail::alert::cli::AlertsCommand),
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Output format (default: siem.format).
    #[arg(long, value_enum)]
    format: Option<tokentrail::siem::encode::Format>,
    /// Where to deliver (default: siem.sink).
    #[arg(long, value_enum)]
    sink: Option<tokentrail::siem::config::SinkKind>,
    /// Backfill from this time (RFC 3339, inclusive) instead of following; needs --to.
    #[arg(long, requires = "to", value_parser = parse_rfc3339_ms)]
    from: Option<i64>,
    /// Backfill up to this time (RFC 3339, exclusive).
    #[arg(long, requires = "from", value_parser = parse_rfc3339_ms)]
    to: Option<i64>,
}

fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2025-01-31T00:00:00Z"))
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// RNG seed: the same seed always produces the same traffic.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of CI jobs to simulate (each makes several audit events and webhooks).
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Share of token uses that are anomalous (alerting demos), 0..1.
    #[arg(long, default_value_t = 0.01)]
    anomaly_share: f64,
    /// Share of poison messages (dead-letter demos), 0..1.
    #[arg(long, default_value_t = 0.002)]
    bad_share: f64,
    /// Where to write: `kafka` (the configured audit and webhook topics) or `ndjson` (stdout).
    #[arg(long, value_enum, default_value_t = SimOutput::Kafka)]
    to: SimOutput,
    /// Messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Write the ground truth (expected token-use records and counts) to this JSON file.
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SimOutput {
    Kafka,
    Ndjson,
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
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
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
        Command::Collect => collect(&settings).await,
        Command::Migrate { dry_run, dialect } => {
            migrate_cmd(&settings, dry_run, dialect.map(Into::into)).await
        }
        Command::Simulate(args) => simulate_cmd(&settings, args).await,
        Command::Export(args) => export_cmd(&settings, args).await,
        Command::Query(args) => {
            print!("{}", tokentrail::query::cli::run(&settings, &args).await?);
            Ok(())
        }
        Command::Alerts(cmd) => tokentrail::alert::cli::run(&settings, cmd).await,
    }
}

async fn ingest(settings: &Settings, exit_when_caught_up: bool) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let health = Health::default();
    if !settings.telemetry.listen.is_empty() {
        telemetry::server::serve(&settings.telemetry.listen, metrics.clone(), health.clone())
            .await
            .with_context(|| format!("telemetry.listen {}", settings.telemetry.listen))?;
    }
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    tokentrail::ingest::app::IngestApp::build(settings, metrics, health, &cancel)
        .await?
        .exit_when_caught_up(exit_when_caught_up)
        .run_until_stopped(cancel)
        .await?;
    Ok(())
}

async fn collect(settings: &Settings) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let health = Health::default();
    if !settings.telemetry.listen.is_empty() {
        telemetry::server::serve(&settings.telemetry.listen, metrics.clone(), health.clone())
            .await
            .with_context(|| format!("telemetry.listen {}", settings.telemetry.listen))?;
    }
    let collector = tokentrail::collect::Collector::bind(settings, metrics, health).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    collector.run(cancel).await?;
    Ok(())
}

/// SIGINT or SIGTERM starts a graceful shutdown: stop fetching, flush, commit, exit.
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    cancel.cancel();
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
                sink::server_version(&client)
                    .await
                    .context("reading the server version (or pass --dialect)")?,
            ),
        };
        let opts = RenderOptions {
            database: ch.database.clone(),
            dialect,
            retention_days: ch.retention_days,
        };
        for (version, name, statements) in migrate::plan(&opts)? {
            println!("-- migration {version}: {name} ({dialect:?})");
            for s in statements {
                println!("{s};\n");
            }
        }
        return Ok(());
    }
    let report = migrate::migrate(&client, &ch.database, ch.retention_days, dialect).await?;
    println!(
        "dialect {:?}: applied {:?}, already applied {:?}",
        report.dialect, report.applied, report.already_applied
    );
    Ok(())
}

async fn export_cmd(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    use tokentrail::siem::export::Exporter;

    let format = args.format.unwrap_or(settings.siem.format);
    let sink = args.sink.unwrap_or(settings.siem.sink);
    settings.siem.validate_sink(sink)?;
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    let mut exporter = Exporter::new(settings, format, sink, metrics.clone(), cancel.clone())?;
    if let (Some(from), Some(to)) = (args.from, args.to) {
        anyhow::ensure!(from < to, "--from must be before --to");
        let bar = indicatif::ProgressBar::new(0).with_message("records exported");
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})",
            )
            .expect("progress template"),
        );
        let n = exporter.backfill(from, to, &bar).await?;
        bar.finish();
        eprintln!(
            "{n} records exported as {} to {}",
            format.as_str(),
            sink.as_str()
        );
        return Ok(());
    }
    if !settings.telemetry.listen.is_empty() {
        telemetry::server::serve(&settings.telemetry.listen, metrics, Health::default())
            .await
            .with_context(|| format!("telemetry.listen {}", settings.telemetry.listen))?;
    }
    exporter
        .follow(settings, settings.siem.state_file.clone().into(), cancel)
        .await?;
    Ok(())
}

async fn simulate_cmd(settings: &Settings, args: SimulateArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use tokentrail::simulate::{self, SimConfig, Simulator, ndjson};

    let cfg = SimConfig {
        seed: args.seed,
        jobs: args.jobs,
        anomaly_share: args.anomaly_share,
        bad_share: args.bad_share,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(&cfg);
    match args.to {
        SimOutput::Ndjson => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for msg in sim.by_ref() {
                writeln!(out, "{}", ndjson::to_ndjson_line(&msg))?;
            }
            out.flush()?;
        }
        SimOutput::Kafka => {
            let topics = tokentrail::publish::Topics::from_settings(&settings.kafka)
                .context("kafka.audit_topics and kafka.webhook_topics must name a topic each")?;
            let producer = tokentrail::kafka::client::producer(&settings.kafka)?;
            let bar = indicatif::ProgressBar::new_spinner().with_message("messages sent");
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec})")
                    .expect("progress template"),
            );
            let sent =
                tokentrail::publish::publish(&producer, &topics, sim.by_ref(), args.rate, |n| {
                    bar.set_position(n)
                })
                .await?;
            bar.finish_with_message(format!(
                "messages sent to {} and {}",
                topics.audit, topics.webhooks
            ));
            eprintln!("{sent} messages published");
        }
    }
    let truth = sim.into_truth();
    eprintln!(
        "ground truth: {} token uses, {} distinct audit events, {} distinct webhooks, {} poison messages, {} anomalies",
        truth.token_uses.len(),
        truth.distinct_audit_events,
        truth.distinct_webhooks,
        truth.bad_messages.len(),
        truth.anomalies.len()
    );
    if let Some(path) = args.truth {
        std::fs::write(&path, simulate::truth_to_json(&truth))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
