//! `tokentrail report`: arguments, a progress indicator on stderr while it queries, and the
//! output file. Kept out of `main.rs`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::config::Settings;
use crate::query::{Binding, params};
use crate::report::data::{self, Request};
use crate::report::model::Scope;
use crate::report::{Format, graph, view};
use crate::store::sink;

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Window ending now, e.g. 30d, 12h, 2w.
    #[arg(long, conflicts_with_all = ["from", "to"], default_value = "30d")]
    pub since: String,
    /// Window start instead of --since: RFC 3339, YYYY-MM-DD, "YYYY-MM-DD HH:MM:SS" (UTC) or
    /// Unix ms.
    #[arg(long)]
    pub from: Option<String>,
    /// Window end (exclusive), same forms as --from; default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Only projects under this group (full path), e.g. payments or payments/ops.
    #[arg(long, default_value = "")]
    pub group: String,
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Allowlist entries neither used nor changed for this many days are "unused".
    #[arg(long, default_value_t = 90)]
    pub unused_days: i64,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

impl ReportArgs {
    pub fn scope(&self, now_ms: i64) -> Result<Scope, params::ParamError> {
        let (from_ms, to_ms) = if self.from.is_none() && self.to.is_none() {
            params::window(Some(&self.since), None, None, now_ms)?
        } else {
            let (from_ms, to_ms) =
                params::window(None, self.from.as_deref(), self.to.as_deref(), now_ms)?;
            // Without --to the window ends now, not in the far future the queries default to.
            (from_ms, if self.to.is_none() { now_ms + 1 } else { to_ms })
        };
        Ok(Scope {
            from_ms,
            to_ms,
            generated_at_ms: now_ms,
            group: self.group.trim_matches('/').to_string(),
            unused_days: self.unused_days,
        })
    }
}

pub async fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let scope = args.scope(now_ms)?;
    let client = sink::client(&settings.clickhouse);
    let version = crate::store::read::server_version(&client)
        .await
        .context("reading the ClickHouse server version")?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(data::STEPS),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{pos}/{len}] querying {msg} ({elapsed})",
        )
        .expect("progress template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let request = Request {
        client: &client,
        database: &settings.clickhouse.database,
        binding: Binding::for_version(version),
        scope,
        now_ms,
    };
    // A bar on a terminal; one line per query otherwise (logs, CI), so progress is never silent.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let data = data::fetch(&request, &|step| {
        bar.inc(1);
        bar.set_message(step.to_string());
        if !terminal {
            eprintln!(
                "[{}/{}] querying {step} ({:.1} s)",
                bar.position(),
                data::STEPS,
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await;
    bar.finish_and_clear();
    let data = data?;
    let queried = started.elapsed();
    let base = settings.report.gitlab_base().unwrap_or("");
    let report = view::build(&data, base, graph::AGGREGATE_ABOVE);
    let text = crate::report::render(&report, args.format);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "report written to {} ({} bytes): {} token uses, {} cross-project edges, {} protected \
         projects; queried in {:.2} s, total {:.2} s",
        args.out.display(),
        text.len(),
        report.headline.token_uses,
        report.headline.cross_project_edges,
        report.projects.len(),
        queried.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReportArgs,
    }

    const NOW: i64 = 1_751_328_000_000; // 2025-07-01

    fn scope(argv: &[&str]) -> Result<Scope, String> {
        let cli = Cli::try_parse_from(["report", "--out", "r.html"].iter().chain(argv))
            .map_err(|e| e.to_string())?;
        cli.args.scope(NOW).map_err(|e| e.to_string())
    }

    #[test]
    fn window_defaults_to_the_last_30_days() {
        let s = scope(&[]).unwrap();
        assert_eq!((s.from_ms, s.to_ms), (NOW - 30 * 86_400_000, NOW + 1));
        assert_eq!(s.group, "");
    }

    #[test]
    fn explicit_window_and_group() {
        let s = scope(&[
            "--from",
            "2025-06-01",
            "--to",
            "2025-06-02",
            "--group",
            "pay/",
        ])
        .unwrap();
        assert_eq!((s.from_ms, s.to_ms), (1_748_736_000_000, 1_748_822_400_000));
        assert_eq!(s.group, "pay");
        let open_end = scope(&["--from", "2025-06-01"]).unwrap();
        assert_eq!(open_end.to_ms, NOW + 1);
        assert!(scope(&["--since", "7d", "--from", "2025-06-01"]).is_err());
    }
}
