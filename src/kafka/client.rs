//! Kafka client configuration shared by every command (ingest, collect, the alert output,
//! export, simulate), and the one rule for which Kafka errors are worth retrying. The clients
//! themselves are built in `producer` and `consumer`, after `connect_check`.
//!
//! `[kafka.tls]` and `[kafka.sasl]` become librdkafka's `security.protocol`, `ssl.*` and
//! `sasl.*` options here. librdkafka is built with OpenSSL (TLS, SCRAM) and libcurl
//! (OAUTHBEARER's OIDC token requests); PLAIN and OAUTHBEARER are its own code.

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;

use super::settings::KafkaSettings;
use crate::config_core::looks_secret;

/// `defaults` may be overridden by `kafka.options`; `forced` may not (validation rejects
/// options that try).
pub fn client_config(
    settings: &KafkaSettings,
    defaults: &[(&str, &str)],
    forced: &[(&str, String)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.brokers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in &settings.options.0 {
        cfg.set(k, v);
    }
    for (k, v) in forced {
        cfg.set(*k, v);
    }
    for (k, v) in security_options(settings) {
        cfg.set(k, v);
    }
    cfg
}

/// The librdkafka options `[kafka.tls]` and `[kafka.sasl]` stand for. Validation rejects
/// `kafka.options` that set any of them as well.
pub fn security_options(settings: &KafkaSettings) -> Vec<(&'static str, String)> {
    let (tls, sasl) = (&settings.tls, &settings.sasl);
    let mut out = Vec::new();
    let protocol = match (tls.is_on(), sasl.is_on()) {
        (false, false) => return out,
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    };
    out.push(("security.protocol", protocol.to_string()));
    for (key, value) in [
        ("ssl.ca.location", &tls.ca_file),
        ("ssl.certificate.location", &tls.cert_file),
        ("ssl.key.location", &tls.key_file),
    ] {
        if !value.is_empty() {
            out.push((key, value.clone()));
        }
    }
    if !tls.key_password.is_empty() {
        out.push(("ssl.key.password", tls.key_password.expose().to_string()));
    }
    if !sasl.is_on() {
        return out;
    }
    out.push(("sasl.mechanism", sasl.mechanism.clone()));
    if sasl.mechanism == "OAUTHBEARER" {
        out.push(("sasl.oauthbearer.method", "oidc".into()));
        out.push((
            "sasl.oauthbearer.token.endpoint.url",
            sasl.oauthbearer_token_endpoint_url.clone(),
        ));
        out.push((
            "sasl.oauthbearer.client.id",
            sasl.oauthbearer_client_id.clone(),
        ));
        out.push((
            "sasl.oauthbearer.client.secret",
            sasl.oauthbearer_client_secret.expose().to_string(),
        ));
        if !sasl.oauthbearer_scope.is_empty() {
            out.push(("sasl.oauthbearer.scope", sasl.oauthbearer_scope.clone()));
        }
    } else {
        out.push(("sasl.username", sasl.username.clone()));
        out.push(("sasl.password", sasl.password.expose().to_string()));
    }
    out
}

/// A client-creation error without the value of a secret option: rdkafka's
/// `ClientConfig(code, description, key, value)` prints the value, and librdkafka's
/// description quotes it too. Every `create()` of a Kafka client passes its error through.
pub fn redact_error(err: KafkaError) -> KafkaError {
    match err {
        KafkaError::ClientConfig(code, description, key, value) if looks_secret(&key) => {
            let description = if value.is_empty() {
                description
            } else {
                description.replace(&value, "***")
            };
            KafkaError::ClientConfig(code, description, key, "***".into())
        }
        other => other,
    }
}

/// Whether a Kafka error means retrying cannot help: credentials, permissions, or a message
/// the broker will never take. Everything else (brokers down, a name that does not resolve
/// yet, timeouts, leader elections, a topic still being created) is an outage that the
/// consumer and producers ride out: librdkafka reconnects on its own (with its own backoff).
pub fn is_fatal(err: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError as K;
    use rdkafka::types::RDKafkaErrorCode as C;
    if matches!(
        err,
        K::ClientCreation(_)
            | K::ClientConfig(..)
            | K::Subscription(_)
            | K::MessageConsumptionFatal(_)
    ) {
        return true;
    }
    matches!(
        err.rdkafka_error_code(),
        Some(
            C::Fatal
                | C::Authentication
                | C::SaslAuthenticationFailed
                | C::UnsupportedSASLMechanism
                | C::IllegalSASLState
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::InvalidTopic
                | C::InvalidGroupId
                | C::InvalidSessionTimeout
                | C::FencedInstanceId
                | C::InvalidArgument
        )
    )
}

/// A short, stable label for a Kafka error code, for the `kafka_errors_total` metric.
pub fn error_kind(err: &rdkafka::error::KafkaError) -> String {
    match err.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "other".into(),
    }
}

#[cfg(test)]
mod security_tests {
    use super::*;
    use crate::config_core::Secret;

    /// Only the `[kafka]` section, so `s.kafka.…` reads as the settings file does (the whole
    /// `config::Settings` is above this module).
    #[derive(Default)]
    struct Settings {
        kafka: KafkaSettings,
    }
    use rdkafka::producer::FutureProducer;
    use rdkafka::types::RDKafkaConfRes;

    fn options(s: &Settings) -> std::collections::BTreeMap<&'static str, String> {
        security_options(&s.kafka).into_iter().collect()
    }

    #[test]
    fn tls_and_sasl_keys_become_librdkafka_options() {
        let mut s = Settings::default();
        assert!(options(&s).is_empty());
        s.kafka.tls.enabled = true;
        assert_eq!(options(&s)["security.protocol"], "SSL");
        s.kafka.tls.ca_file = "/ca.pem".into();
        s.kafka.sasl.mechanism = "SCRAM-SHA-512".into();
        s.kafka.sasl.username = "u".into();
        s.kafka.sasl.password = Secret::new("p");
        let o = options(&s);
        assert_eq!(o["security.protocol"], "SASL_SSL");
        assert_eq!(o["ssl.ca.location"], "/ca.pem");
        assert_eq!(o["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(o["sasl.password"], "p");
        let mut s = Settings::default();
        s.kafka.sasl.mechanism = "OAUTHBEARER".into();
        s.kafka.sasl.oauthbearer_client_secret = Secret::new("cs");
        let o = options(&s);
        assert_eq!(o["security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(o["sasl.oauthbearer.method"], "oidc");
        assert_eq!(o["sasl.oauthbearer.client.secret"], "cs");
    }

    #[test]
    fn librdkafka_is_built_with_tls_scram_and_oidc() {
        let mut s = Settings::default();
        s.kafka.brokers = "127.0.0.1:1".into();
        s.kafka.tls.enabled = true;
        s.kafka.sasl.mechanism = "SCRAM-SHA-512".into();
        s.kafka.sasl.username = "u".into();
        s.kafka.sasl.password = Secret::new("p");
        let scram = client_config(&s.kafka, &[], &[]).create::<FutureProducer>();
        assert!(scram.is_ok(), "{:?}", scram.err());
        s.kafka.sasl.mechanism = "OAUTHBEARER".into();
        s.kafka.sasl.oauthbearer_token_endpoint_url = "http://127.0.0.1:1/token".into();
        s.kafka.sasl.oauthbearer_client_id = "c".into();
        s.kafka.sasl.oauthbearer_client_secret = Secret::new("cs");
        let oidc = client_config(&s.kafka, &[], &[]).create::<FutureProducer>();
        assert!(oidc.is_ok(), "{:?}", oidc.err());
    }

    #[test]
    fn configuration_errors_never_carry_a_secret_value() {
        let err = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        let text = redact_error(err).to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sasl.password"), "{text}");
        // A real one: librdkafka rejects the value and quotes it.
        let mut s = Settings::default();
        s.kafka
            .options
            .0
            .insert("sasl.oauthbearer.config".into(), "x".into());
        s.kafka
            .options
            .0
            .insert("ssl.key.password".into(), "hunter3".into());
        s.kafka
            .options
            .0
            .insert("sasl.oauthbearer.method".into(), "hunter4".into());
        let err = match client_config(&s.kafka, &[], &[]).create::<FutureProducer>() {
            Err(e) => redact_error(e).to_string(),
            Ok(_) => panic!("an invalid sasl.oauthbearer.method is refused"),
        };
        assert!(!err.contains("hunter"), "{err}");
    }
}

#[cfg(test)]
mod fault_tests {
    use super::*;
    use rdkafka::error::KafkaError as K;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn outages_are_transient_and_permissions_are_fatal() {
        for transient in [
            C::AllBrokersDown,
            C::BrokerTransportFailure,
            C::Resolve,
            C::MessageTimedOut,
            C::UnknownTopicOrPartition,
            C::NotCoordinator,
        ] {
            assert!(
                !is_fatal(&K::MessageConsumption(transient)),
                "{transient:?}"
            );
        }
        for fatal in [
            C::TopicAuthorizationFailed,
            C::GroupAuthorizationFailed,
            C::SaslAuthenticationFailed,
            C::MessageSizeTooLarge,
        ] {
            assert!(is_fatal(&K::MessageProduction(fatal)), "{fatal:?}");
        }
        assert_eq!(
            error_kind(&K::MessageConsumption(C::AllBrokersDown)),
            "AllBrokersDown"
        );
    }
}
