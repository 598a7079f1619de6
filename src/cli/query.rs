//! `tokentrail query <name>`: argument parsing and output, kept out of `main.rs`.

use anyhow::Context;

use crate::config::Settings;
use crate::query::params::{self, QueryParams};
use crate::query::recommend::RecommendOptions;
use crate::query::render::Format;
use crate::query::{Binding, QUERIES, TOKEN_USED_WHERE};
use crate::store::sink;

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The query to run; `list` prints the named queries and the question each answers.
    pub name: String,
    /// Project path (group/project) or numeric id.
    #[arg(long)]
    pub project: Option<String>,
    /// Window ending now, e.g. 90s, 15m, 12h, 7d, 2w.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Window start: RFC 3339, YYYY-MM-DD, "YYYY-MM-DD HH:MM:SS" (UTC) or Unix ms.
    #[arg(long)]
    pub from: Option<String>,
    /// Window end (exclusive), same forms as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Maximum rows.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    /// token-used-where: the job (CI_JOB_ID) whose token was used.
    #[arg(long)]
    pub job: Option<i64>,
    /// token-used-where: the pipeline whose jobs' tokens were used.
    #[arg(long)]
    pub pipeline: Option<i64>,
    /// actions-over-time: bucket width, e.g. 1h, 1d, 1w.
    #[arg(long, default_value = "1d")]
    pub bucket: String,
    /// unused-allowlist-entries: idle for at least this many days.
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    /// recommended-allowlist: entry limit (GitLab allows 200).
    #[arg(long, default_value_t = crate::query::recommend::GITLAB_ALLOWLIST_LIMIT)]
    pub max_entries: usize,
    /// recommended-allowlist: largest share of a group's known projects that may be
    /// unobserved for the group to replace its observed projects' entries.
    #[arg(long, default_value_t = 0.1)]
    pub max_unobserved_share: f64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Csv,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
        }
    }
}

impl QueryArgs {
    /// The bound parameters, with `now_ms` as "now".
    pub fn to_params(&self, now_ms: i64) -> Result<QueryParams, params::ParamError> {
        // The question is about a given job, pipeline or project; without one the SQL
        // would scan every use, which the whole-history queries answer from the rollups.
        if self.name == TOKEN_USED_WHERE
            && self.job.is_none()
            && self.pipeline.is_none()
            && self.project.is_none()
        {
            return Err(params::ParamError::NoSubject);
        }
        let (from_ms, to_ms) = params::window(
            self.since.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            now_ms,
        )?;
        Ok(QueryParams {
            project: self.project.clone().unwrap_or_default(),
            from_ms,
            to_ms,
            limit: self.limit,
            job_id: self.job.unwrap_or(0),
            pipeline_id: self.pipeline.unwrap_or(0),
            bucket_ms: params::parse_duration(&self.bucket)?,
            now_ms,
            unused_days: self.days,
        })
    }

    pub fn recommend_options(&self) -> RecommendOptions {
        RecommendOptions {
            max_entries: self.max_entries,
            max_unobserved_share: self.max_unobserved_share,
        }
    }
}

/// The `list` output: name and question per query.
pub fn list() -> String {
    let width = QUERIES.iter().map(|q| q.name.len()).max().unwrap_or(0);
    QUERIES
        .iter()
        .map(|q| format!("{:width$}  {}\n", q.name, q.question))
        .collect()
}

/// Runs the command against the configured ClickHouse and returns the rendered output.
pub async fn run(settings: &Settings, args: &QueryArgs) -> anyhow::Result<String> {
    if args.name == "list" {
        return Ok(list());
    }
    let params = args.to_params(chrono::Utc::now().timestamp_millis())?;
    let client = sink::client(&settings.clickhouse);
    let version = crate::store::read::server_version(&client)
        .await
        .context("reading the ClickHouse server version")?;
    let result = crate::query::run(
        &client,
        Binding::for_version(version),
        &args.name,
        &params,
        args.recommend_options(),
    )
    .await?;
    Ok(result.render(args.format.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: QueryArgs,
    }

    fn params(argv: &[&str]) -> Result<QueryParams, params::ParamError> {
        let cli =
            Cli::try_parse_from(std::iter::once("query").chain(argv.iter().copied())).unwrap();
        cli.args.to_params(1_700_000_000_000)
    }

    #[test]
    fn token_used_where_needs_a_job_pipeline_or_project() {
        assert!(matches!(
            params(&["token-used-where"]),
            Err(params::ParamError::NoSubject)
        ));
        assert_eq!(
            params(&["token-used-where", "--job", "7"]).unwrap().job_id,
            7
        );
        assert_eq!(
            params(&["token-used-where", "--pipeline", "8"])
                .unwrap()
                .pipeline_id,
            8
        );
        assert_eq!(
            params(&["token-used-where", "--project", "g/p"])
                .unwrap()
                .project,
            "g/p"
        );
        // The other queries run over everything without filters.
        assert_eq!(params(&["latest-use"]).unwrap().project, "");
    }
}
