//! `tokentrail export`.

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::siem::export::Exporter;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::Health;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output format (default: siem.format).
    #[arg(long, value_enum)]
    pub format: Option<crate::siem::encode::Format>,
    /// Where to deliver (default: siem.sink).
    #[arg(long, value_enum)]
    pub sink: Option<crate::siem::config::SinkKind>,
    /// Backfill from this time (RFC 3339, inclusive) instead of following; needs --to.
    #[arg(long, requires = "to", value_parser = parse_rfc3339_ms)]
    pub from: Option<i64>,
    /// Backfill up to this time (RFC 3339, exclusive).
    #[arg(long, requires = "from", value_parser = parse_rfc3339_ms)]
    pub to: Option<i64>,
}

fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2025-01-31T00:00:00Z"))
}

/// Follows the stored records into the SIEM, or backfills `--from`..`--to`.
pub async fn run(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(settings.siem.format);
    let sink = args.sink.unwrap_or(settings.siem.sink);
    settings.siem.validate_sink(sink)?;
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    tokio::spawn(crate::signals::cancel_on_signal(cancel.clone()));
    let mut exporter = Exporter::new(
        &settings.clickhouse,
        &settings.kafka,
        &settings.siem,
        format,
        sink,
        metrics.clone(),
        cancel.clone(),
    )?;
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
    crate::telemetry::server::serve_configured(
        &settings.telemetry.listen,
        metrics,
        Health::default(),
    )
    .await?;
    exporter
        .follow(
            &settings.siem,
            settings.siem.state_file.clone().into(),
            cancel,
        )
        .await?;
    Ok(())
}
