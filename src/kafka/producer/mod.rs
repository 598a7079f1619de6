//! The one producer shape every writer of Kafka uses: idempotent with `acks=all`, served by
//! a polling thread that sleeps while librdkafka has nothing to report (`poller`).

mod handle;
mod poller;

pub use handle::{DeliveryFuture, Producer};

use super::client::{client_config, redact_error};
use super::connect_check;
use super::settings::KafkaSettings;

/// The settings every producer of tokentrail forces, with `extra` forced settings after
/// them: idempotent with `acks=all`, so a message acknowledged by a cluster with
/// `min.insync.replicas=2` is on two brokers, and a retry after a lost acknowledgement is
/// not written twice (docs/operations.md).
pub fn durable(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut forced = vec![
        ("enable.idempotence", "true".to_string()),
        ("acks", "all".to_string()),
    ];
    forced.extend_from_slice(extra);
    forced
}

/// An idempotent producer (`acks=all`), used for the dead-letter topic, the alert output,
/// the SIEM Kafka sink and `simulate`; after a connection check (`connect_check`).
pub fn producer(settings: &KafkaSettings) -> Result<Producer, rdkafka::error::KafkaError> {
    connect_check::check(settings)?;
    client_config(settings, &[("linger.ms", "5")], &durable(&[]))
        .create()
        .map_err(redact_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_producer_is_idempotent_with_acks_all_and_keeps_its_own_settings() {
        let forced = durable(&[("message.timeout.ms", "60000".into())]);
        assert_eq!(
            forced,
            vec![
                ("enable.idempotence", "true".to_string()),
                ("acks", "all".to_string()),
                ("message.timeout.ms", "60000".to_string()),
            ]
        );
    }
}
