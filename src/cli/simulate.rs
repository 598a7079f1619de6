//! `tokentrail simulate`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;

use crate::config::Settings;
use crate::simulate::{SimConfig, Simulator, ndjson};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// RNG seed: the same seed always produces the same traffic.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of CI jobs to simulate (each makes several audit events and webhooks).
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Share of token uses that are anomalous (alerting demos), 0..1.
    #[arg(long, default_value_t = 0.01)]
    pub anomaly_share: f64,
    /// Share of poison messages (dead-letter demos), 0..1.
    #[arg(long, default_value_t = 0.002)]
    pub bad_share: f64,
    /// Where to write: `kafka` (the configured audit and webhook topics) or `ndjson` (stdout).
    #[arg(long, value_enum, default_value_t = SimOutput::Kafka)]
    pub to: SimOutput,
    /// Messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Write the ground truth (expected token-use records and counts) to this JSON file.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Share of protected-project candidates that had an allowlist before the simulation
    /// starts, never streamed (`tokentrail gitlab sync` reads them from the API double).
    #[arg(long, default_value_t = 0.0)]
    pub preexisting_allowlists: f64,
    /// Write those allowlists as a GitLab API double's files into this directory (served by
    /// `deploy/local/gitlab-api-double`).
    #[arg(long)]
    pub gitlab_api_dir: Option<PathBuf>,
    /// A streaming outage: audit-stream messages delivered in `[FROM, TO)` (Unix ms) are
    /// not published (GitLab dropped them); the ground truth and GitLab's authentication
    /// log (in --gitlab-api-dir) still have them.
    #[arg(long, num_args = 2, value_names = ["FROM_MS", "TO_MS"])]
    pub drop_audit: Option<Vec<i64>>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SimOutput {
    Kafka,
    Ndjson,
}

/// Generates the traffic into Kafka or as NDJSON, and reports (and optionally writes) the
/// ground truth.
pub async fn run(settings: &Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let cfg = SimConfig {
        seed: args.seed,
        jobs: args.jobs,
        anomaly_share: args.anomaly_share,
        bad_share: args.bad_share,
        preexisting_allowlists: args.preexisting_allowlists,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(&cfg);
    if let Some(dir) = &args.gitlab_api_dir {
        let lists = sim.preexisting_allowlists();
        crate::simulate::gitlab_api::write_api_double(dir, &lists).with_context(|| {
            format!("writing the GitLab API double's files to {}", dir.display())
        })?;
        eprintln!(
            "{} allowlists that predate the stream written for the GitLab API double in {}",
            lists.len(),
            dir.display()
        );
    }
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
            let topics = crate::publish::Topics::from_settings(&settings.kafka)
                .context("kafka.audit_topics and kafka.webhook_topics must name a topic each")?;
            let producer = crate::kafka::producer::producer(&settings.kafka)?;
            let bar = indicatif::ProgressBar::new_spinner().with_message("messages sent");
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec})")
                    .expect("progress template"),
            );
            let (from, to) = match args.drop_audit.as_deref() {
                Some([from, to]) => (*from, *to),
                _ => (0, 0),
            };
            let mut dropped = 0u64;
            let kept = sim.by_ref().filter(|m| {
                let drop = m.source == crate::model::SourceKind::AuditStream
                    && (from..to).contains(&m.timestamp_ms);
                dropped += u64::from(drop);
                !drop
            });
            let sent = crate::publish::publish(&producer, &topics, kept, args.rate, |n| {
                bar.set_position(n)
            })
            .await?;
            if dropped > 0 {
                eprintln!("{dropped} audit-stream messages dropped by the simulated outage");
            }
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
    if let Some(dir) = &args.gitlab_api_dir {
        crate::simulate::gitlab_api::write_auth_logs(dir, &truth)
            .with_context(|| format!("writing the authentication logs to {}", dir.display()))?;
    }
    if let Some(path) = args.truth {
        std::fs::write(&path, crate::simulate::truth_to_json(&truth))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
