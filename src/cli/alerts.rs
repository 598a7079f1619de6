//! `tokentrail alerts …`: the subcommand definitions and their output, kept out of main.rs.

use clap::Subcommand;

use crate::alert::query;
use crate::config::Settings;
use crate::model::Alert;
use crate::output_escape::escape_controls;
use crate::store::sink;
use crate::store::tables::alerts::StoredAlert;

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
            let alert = query::show(&client, db, &id).await?.alert;
            println!("{}", serde_json::to_string_pretty(&alert)?);
        }
        AlertsCommand::Ack { id, by } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let now_ms = chrono::Utc::now().timestamp_millis();
            let alert = query::ack(&client, db, &id, &by, now_ms).await?;
            println!(
                "acknowledged {} ({}) as {}",
                escape_controls(&alert.alert_id),
                escape_controls(&alert.rule),
                escape_controls(&by)
            );
        }
    }
    Ok(())
}

fn print_row(row: StoredAlert, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(&row.alert).expect("alert serializes")
        );
        return;
    }
    println!("{}", list_line(&row.alert));
}

/// One `alerts list` table line. Every text column is escaped: summaries quote project paths
/// and names from GitLab payloads, and a raw `\r\n` there would forge a line.
fn list_line(row: &Alert) -> String {
    let last_seen = chrono::DateTime::from_timestamp_millis(row.last_seen_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    format!(
        "{:<32}  {:<18}  {:<8}  {:<6}  {:>6}  {:<24}  {}",
        escape_controls(&row.alert_id),
        escape_controls(&row.rule),
        escape_controls(row.severity.as_str()),
        escape_controls(row.status.as_str()),
        row.count,
        last_seen,
        escape_controls(&row.summary)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertStatus, Severity};

    fn row(summary: &str) -> Alert {
        Alert {
            alert_id: "a1".into(),
            rule: "not_allowlisted".into(),
            severity: Severity::High,
            summary: summary.into(),
            first_seen_ms: 0,
            last_seen_ms: 1_748_945_742_123,
            count: 1,
            source_project_path: String::new(),
            target_project_path: String::new(),
            actor_id: 0,
            actor_kind: String::new(),
            action: String::new(),
            job_id: None,
            event_time_ms: 0,
            details: serde_json::Value::Null,
            status: AlertStatus::Open,
            acked_by: String::new(),
        }
    }

    #[test]
    fn list_line_cannot_be_forged_or_recolour_the_terminal() {
        let forged = "g/a used g/b\r\nfake-id  not_allowlisted  high  open  1  \u{1b}[8m";
        let line = list_line(&row(forged));
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(!line.contains(['\r', '\u{1b}']), "{line:?}");
        assert!(
            line.ends_with("g/a used g/b\\r\\nfake-id  not_allowlisted  high  open  1  \\x1b[8m"),
            "{line}"
        );
    }
}
