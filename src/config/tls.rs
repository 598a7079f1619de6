//! Secure connections: `[kafka.tls]`, `[kafka.sasl]` and `[clickhouse.tls]`, and their
//! checks. `kafka::client` maps the Kafka ones onto librdkafka options, `store::client` the
//! ClickHouse one onto its rustls configuration.

use std::path::Path;

use super::{ClickHouseTlsSettings, ConfigError, KafkaSaslSettings, KafkaTlsSettings, invalid};

/// SASL mechanisms librdkafka implements itself in this build (GSSAPI would need cyrus-sasl).
pub const SASL_MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// librdkafka options the `[kafka.tls]` and `[kafka.sasl]` keys set; `kafka.options` may not
/// set them as well once those keys are used.
pub const KAFKA_SECURITY_OPTIONS: [&str; 12] = [
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
];

pub fn validate_kafka(
    tls: &KafkaTlsSettings,
    sasl: &KafkaSaslSettings,
    options: &super::LibrdkafkaOptions,
) -> Result<(), ConfigError> {
    pem_file("kafka.tls.ca_file", &tls.ca_file)?;
    pem_file("kafka.tls.cert_file", &tls.cert_file)?;
    pem_file("kafka.tls.key_file", &tls.key_file)?;
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        return Err(invalid(
            "kafka.tls.key_file",
            "set both kafka.tls.cert_file and kafka.tls.key_file, or neither",
        ));
    }
    if !tls.key_password.is_empty() && tls.key_file.is_empty() {
        return Err(invalid(
            "kafka.tls.key_password",
            "is set but kafka.tls.key_file is not",
        ));
    }
    let m = sasl.mechanism.as_str();
    if !m.is_empty() && !SASL_MECHANISMS.contains(&m) {
        let hint = if m.eq_ignore_ascii_case("GSSAPI") {
            " (GSSAPI/Kerberos is not built in: it needs cyrus-sasl)"
        } else {
            ""
        };
        return Err(invalid(
            "kafka.sasl.mechanism",
            format!("must be one of {SASL_MECHANISMS:?} or empty, got {m:?}{hint}"),
        ));
    }
    let user_pass = !sasl.username.is_empty() || !sasl.password.is_empty();
    let oidc = !sasl.oauthbearer_token_endpoint_url.is_empty()
        || !sasl.oauthbearer_client_id.is_empty()
        || !sasl.oauthbearer_client_secret.is_empty();
    match m {
        "" if user_pass || oidc => {
            return Err(invalid(
                "kafka.sasl.mechanism",
                "credentials are set in [kafka.sasl] but no mechanism is",
            ));
        }
        "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
            if sasl.username.is_empty() {
                return Err(invalid("kafka.sasl.username", format!("{m} needs a user")));
            }
            if sasl.password.is_empty() {
                return Err(invalid(
                    "kafka.sasl.password",
                    format!("{m} needs a password (or kafka.sasl.password_file)"),
                ));
            }
        }
        "OAUTHBEARER" => {
            for (key, empty) in [
                (
                    "kafka.sasl.oauthbearer_token_endpoint_url",
                    sasl.oauthbearer_token_endpoint_url.is_empty(),
                ),
                (
                    "kafka.sasl.oauthbearer_client_id",
                    sasl.oauthbearer_client_id.is_empty(),
                ),
                (
                    "kafka.sasl.oauthbearer_client_secret",
                    sasl.oauthbearer_client_secret.is_empty(),
                ),
            ] {
                if empty {
                    return Err(invalid(key, "OAUTHBEARER (OIDC) needs it"));
                }
            }
        }
        _ => {}
    }
    if (tls.is_on() || sasl.is_on())
        && let Some(k) = KAFKA_SECURITY_OPTIONS
            .iter()
            .find(|k| options.0.contains_key(**k))
    {
        return Err(invalid(
            "kafka.options",
            format!("{k:?} is set by [kafka.tls]/[kafka.sasl]; set it in one place"),
        ));
    }
    Ok(())
}

pub fn validate_clickhouse(url: &str, tls: &ClickHouseTlsSettings) -> Result<(), ConfigError> {
    pem_file("clickhouse.tls.ca_file", &tls.ca_file)?;
    pem_file("clickhouse.tls.cert_file", &tls.cert_file)?;
    pem_file("clickhouse.tls.key_file", &tls.key_file)?;
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        return Err(invalid(
            "clickhouse.tls.key_file",
            "set both clickhouse.tls.cert_file and clickhouse.tls.key_file, or neither",
        ));
    }
    if tls.is_set() && !url.starts_with("https://") {
        return Err(invalid(
            "clickhouse.tls.ca_file",
            "[clickhouse.tls] is set but clickhouse.url is not https://",
        ));
    }
    if url.starts_with("https://") {
        crate::store::client::tls_config(tls).map_err(|e| invalid(e.key, e.reason))?;
    }
    Ok(())
}

/// An empty path is "not set"; a set one must be a readable file.
fn pem_file(key: &'static str, path: &str) -> Result<(), ConfigError> {
    if path.is_empty() {
        return Ok(());
    }
    match std::fs::File::open(Path::new(path)).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(invalid(key, format!("{path:?} is not a file"))),
        Err(e) => Err(invalid(key, format!("cannot read {path:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Secret, Settings};

    fn err(s: &Settings) -> String {
        s.validate().unwrap_err().to_string()
    }

    #[test]
    fn sasl_checks_name_their_key() {
        let mut s = Settings::default();
        s.kafka.sasl.mechanism = "GSSAPI".into();
        let e = err(&s);
        assert!(
            e.contains("kafka.sasl.mechanism") && e.contains("cyrus-sasl"),
            "{e}"
        );
        s.kafka.sasl.mechanism = "SCRAM-SHA-512".into();
        assert!(err(&s).contains("kafka.sasl.username"));
        s.kafka.sasl.username = "u".into();
        assert!(err(&s).contains("kafka.sasl.password"));
        s.kafka.sasl.password = Secret::new("p");
        s.validate().unwrap();
        s.kafka
            .options
            .0
            .insert("security.protocol".into(), "SSL".into());
        assert!(err(&s).contains("kafka.options"));
        let mut s = Settings::default();
        s.kafka.sasl.username = "u".into();
        assert!(err(&s).contains("kafka.sasl.mechanism"));
        let mut s = Settings::default();
        s.kafka.sasl.mechanism = "OAUTHBEARER".into();
        assert!(err(&s).contains("kafka.sasl.oauthbearer_token_endpoint_url"));
    }

    #[test]
    fn tls_files_must_exist_and_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("c.pem");
        std::fs::write(&pem, "x").unwrap();
        let pem = pem.to_string_lossy().to_string();
        let mut s = Settings::default();
        s.kafka.tls.ca_file = "/nonexistent/ca.pem".into();
        let e = err(&s);
        assert!(
            e.contains("kafka.tls.ca_file") && e.contains("/nonexistent"),
            "{e}"
        );
        s.kafka.tls.ca_file = pem.clone();
        s.validate().unwrap();
        s.kafka.tls.cert_file = pem.clone();
        assert!(err(&s).contains("kafka.tls.key_file"));
        let mut s = Settings::default();
        s.clickhouse.tls.ca_file = pem.clone();
        let e = err(&s);
        assert!(
            e.contains("clickhouse.tls.ca_file") && e.contains("https"),
            "{e}"
        );
        // An https URL parses the CA: "x" is no certificate.
        s.clickhouse.url = "https://ch.example:8443".into();
        let e = err(&s);
        assert!(e.contains("clickhouse.tls.ca_file"), "{e}");
        s.clickhouse.tls.ca_file = String::new();
        s.validate().unwrap();
    }
}
