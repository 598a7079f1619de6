//! `tokentrail alerts …`: the subcommand definitions and their output, kept out of main.rs.

use clap::Subcommand;

use super::query::{self, AlertRow};
use crate::config::Settings;
use crate::store::sink;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Latest alerts, newest first.
    List {
        /// Only `open` or `acked` alerts.
        #[arg(long)]
        status: Option<String>,
        /// Only this rule (e.g. `not_allowlisted`).
        #[arg(long)]
        rule: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One alert with all its fields, as JSON.
    Show { id: String },
    /// Acknowledge an alert (recorded as a new row; the history stays).
    Ack {
        id: String,
        /// Who acknowledges; defaults to $USER.
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(settings: &Settings, cmd: AlertsCommand) -> anyhow::Result<()> {
    let client = sink::client(&settings.clickhouse);
    let db = &settings.clickhouse.database;
    match cmd {
        AlertsCommand::List {
            status,
            rule,
            limit,
            json,
        } => {
            let rows = query::list(&client, db, status.as_deref(), rule.as_deref(), limit).await?;
            if !json {
                println!(
                    "{:<32}  {:<18}  {:<8}  {:<6}  {:>6}  {:<24}  SUMMARY",
                    "ALERT_ID", "RULE", "SEVERITY", "STATUS", "COUNT", "LAST_SEEN"
                );
            }
            for row in rows {
                print_row(row, json);
            }
        }
        AlertsCommand::Show { id } => {
            let alert = query::show(&client, db, &id).await?.into_alert();
            println!("{}", serde_json::to_string_pretty(&alert)?);
        }
        AlertsCommand::Ack { id, by } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let now_ms = chrono::Utc::now().timestamp_millis();
            let alert = query::ack(&client, db, &id, &by, now_ms).await?;
            println!("acknowledged {} ({}) as {by}", alert.alert_id, alert.rule);
        }
    }
    Ok(())
}

fn print_row(row: AlertRow, json: bool) {
    if json {
        let alert = row.into_alert();
        println!(
            "{}",
            serde_json::to_string(&alert).expect("alert serializes")
        );
        return;
    }
    let last_seen = chrono::DateTime::from_timestamp_millis(row.last_seen_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    println!(
        "{:<32}  {:<18}  {:<8}  {:<6}  {:>6}  {:<24}  {}",
        row.alert_id, row.rule, row.severity, row.status, row.count, last_seen, row.summary
    );
}
