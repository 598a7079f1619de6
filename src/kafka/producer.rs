//! The one producer shape every writer of Kafka uses: idempotent with `acks=all`.

use rdkafka::producer::FutureProducer;

use super::client::{client_config, redact_error};
use super::connect_check;
use super::settings::KafkaSettings;

/// An idempotent producer (`acks=all`), used for the dead-letter topic, the alert output,
/// the SIEM Kafka sink and `simulate`; after a connection check (`connect_check`).
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    connect_check::check(settings)?;
    client_config(
        settings,
        &[("linger.ms", "5")],
        &[
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
        ],
    )
    .create()
    .map_err(redact_error)
}
