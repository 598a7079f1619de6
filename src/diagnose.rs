//! What the command line tells a user when something fails: the error and its causes once
//! each (a cause whose text the message already contains is not repeated), and a hint for the
//! common mistakes, naming the setting to look at. Also the environment variables that look
//! like settings but are never read.

use crate::config::{Settings, url_without_userinfo};

/// `error: …` text for `err`: its chain, each text once, then hints on their own lines.
pub fn render(err: &anyhow::Error, settings: Option<&Settings>) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    let mut out = format!("error: {text}");
    if let Some(settings) = settings {
        for hint in hints(&text, settings) {
            out.push_str("\nhint: ");
            out.push_str(&hint);
        }
    }
    out
}

/// Hints for an error text, from the mistakes new users make most.
pub fn hints(text: &str, settings: &Settings) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut hints = Vec::new();
    let clickhouse = lower.contains("clickhouse");
    if clickhouse && (lower.contains("network error") || lower.contains("connect")) {
        hints.push(format!(
            "is ClickHouse running and reachable at {} (clickhouse.url, or \
             TOKENTRAIL__CLICKHOUSE__URL)?",
            url_without_userinfo(&settings.clickhouse.url)
        ));
    }
    if clickhouse
        && (lower.contains("code 81") || lower.contains("code: 81"))
        && lower.contains("database")
    {
        hints.push(format!(
            "the database {:?} does not exist: run `tokentrail migrate` first \
             (clickhouse.database)",
            settings.clickhouse.database
        ));
    } else if clickhouse && (lower.contains("code 60") || lower.contains("code: 60")) {
        hints.push(
            "a tokentrail table is missing: run `tokentrail migrate` against this database \
             (clickhouse.database)"
                .into(),
        );
    }
    if lower.contains("kafka")
        && [
            "brokertransportfailure",
            "allbrokersdown",
            "resolve",
            "transport failure",
        ]
        .iter()
        .any(|k| lower.contains(k))
    {
        hints.push(format!(
            "is Kafka reachable at {} (kafka.brokers, or TOKENTRAIL__KAFKA__BROKERS)?",
            settings.kafka.brokers
        ));
    }
    hints
}

/// Variables that look like settings (`…__SECTION__KEY`) but miss the `TOKENTRAIL__` prefix
/// exactly, e.g. `TOKENTRAIL_CLICKHOUSE__URL`: the loader never reads them.
pub fn unread_setting_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unread: Vec<String> = names
        .into_iter()
        .filter(|n| {
            let upper = n.to_ascii_uppercase();
            upper.starts_with("TOKENTRAIL") && n.contains("__") && !n.starts_with("TOKENTRAIL__")
        })
        .collect();
    unread.sort();
    unread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("ClickHouse: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("retryable ClickHouse error: network error: client error (Connect)")]
    struct Inner;

    #[test]
    fn each_cause_is_printed_once_with_a_hint_naming_the_url_without_its_password() {
        let mut settings = Settings::default();
        settings.clickhouse.url = "http://admin:Passw0rd@ch.example:8123".into();
        let err = anyhow::Error::new(Outer(Inner));
        let text = render(&err, Some(&settings));
        assert_eq!(
            text.matches("network error").count(),
            1,
            "printed once: {text}"
        );
        assert!(text.contains("hint: is ClickHouse running"), "{text}");
        assert!(text.contains("ch.example:8123"), "{text}");
        assert!(!text.contains("Passw0rd"), "{text}");
    }

    #[test]
    fn a_missing_database_points_at_migrate() {
        let settings = Settings::default();
        let hints = hints(
            "reading the ClickHouse server version: ClickHouse error (code 81): Database x \
             doesn't exist",
            &settings,
        );
        assert!(
            hints.iter().any(|h| h.contains("tokentrail migrate")),
            "{hints:?}"
        );
    }

    #[test]
    fn variables_with_a_mistyped_prefix_are_reported() {
        let names = [
            "TOKENTRAIL_CLICKHOUSE__URL",
            "TOKENTRAIL__CLICKHOUSE__URL",
            "TOKENTRAIL_CONFIG",
            "TOKENTRAIL_LOCAL_DIR",
            "tokentrail_kafka__brokers",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unread_setting_variables(names),
            vec!["TOKENTRAIL_CLICKHOUSE__URL", "tokentrail_kafka__brokers"]
        );
    }
}
