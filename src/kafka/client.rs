//! Kafka client construction shared by every command (ingest, collect, the alert output,
//! export, simulate), and the one rule for which Kafka errors are worth retrying.

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

use crate::config::KafkaSettings;

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
    cfg
}

/// An idempotent producer (`acks=all`), used for the dead-letter topic.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    client_config(
        settings,
        &[("linger.ms", "5")],
        &[
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
        ],
    )
    .create()
}

/// Whether a Kafka error means retrying cannot help: credentials, permissions, or a message
/// the broker will never take. Everything else (brokers down, a name that does not resolve
/// yet, timeouts, leader elections, a topic still being created) is an outage that the
/// consumer and producers ride out: librdkafka reconnects on its own, and the loop backs off.
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
