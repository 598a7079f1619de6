//! A start-up check of the consumer's connection: a TLS or SASL misconfiguration (unknown CA,
//! expired or refused certificate, wrong password, plaintext to a TLS listener) stops ingest
//! at once with librdkafka's reason, which names the broker, instead of being ridden out like
//! an outage. librdkafka reports these only to the client context (its error and log
//! callbacks, served when the client is polled); the consumer's own errors say no more than
//! "all brokers down". So a throwaway client checks the connection before the real ones are
//! built (`consumer::consumer`, `producer::producer`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode as C;

use super::client::{client_config, redact_error};
use super::settings::KafkaSettings;

fn plaintext_to_tls(f: &Faults) -> String {
    format!(
        "{}; the broker closes the connection at its first request: a TLS listener reached \
         without [kafka.tls]?",
        f.closed_line
    )
}

/// How long start-up waits for a first metadata answer before leaving an unreachable Kafka to
/// the pipeline's outage handling.
pub const PREFLIGHT: Duration = Duration::from_secs(8);

/// Closed connections during the first request before it counts as plaintext to TLS.
const PLAINTEXT_TO_TLS_AFTER: u32 = 3;

/// Connection faults seen by a client's context.
#[derive(Default)]
pub struct ConnectFaults {
    inner: Mutex<Faults>,
}

#[derive(Default)]
struct Faults {
    fatal: Option<String>,
    closed_on_first_request: u32,
    /// The last such line (librdkafka suppresses repeats of a line, so few are counted).
    closed_line: String,
}

impl ConnectFaults {
    /// From `ClientContext::error`.
    pub fn observe_error(&self, err: &KafkaError, reason: &str) {
        let code = err.rdkafka_error_code();
        let fatal = matches!(code, Some(C::SSL | C::Authentication))
            || (code == Some(C::BrokerTransportFailure) && reason.contains("SSL"));
        if fatal {
            let mut f = self.inner.lock().expect("connect faults");
            f.fatal.get_or_insert_with(|| reason.to_string());
        }
    }

    /// From `ClientContext::log`: a broker that closes the connection during the first
    /// request (ApiVersion) is, most of the time, a TLS listener reached in plaintext.
    pub fn observe_log(&self, fac: &str, message: &str) {
        // "… (after 1ms in state APIVERSION_QUERY)", or "Disconnected while requesting
        // ApiVersion: might be caused by incorrect security.protocol configuration …".
        let lower = message.to_ascii_lowercase();
        if fac == "FAIL" && lower.contains("disconnected") && lower.contains("apiversion") {
            let mut f = self.inner.lock().expect("connect faults");
            f.closed_on_first_request += 1;
            f.closed_line = message.to_string();
        }
    }

    pub fn fatal(&self) -> Option<String> {
        let f = self.inner.lock().expect("connect faults");
        if f.fatal.is_some() {
            return f.fatal.clone();
        }
        (f.closed_on_first_request >= PLAINTEXT_TO_TLS_AFTER).then(|| plaintext_to_tls(&f))
    }

    /// When no broker could be reached at all: a connection closed at the first request,
    /// even once, says plaintext to TLS rather than an outage.
    pub fn fatal_when_unreachable(&self) -> Option<String> {
        let f = self.inner.lock().expect("connect faults");
        f.fatal
            .clone()
            .or_else(|| (f.closed_on_first_request > 0).then(|| plaintext_to_tls(&f)))
    }
}

/// Connects a throwaway client with `settings` and waits for metadata, for at most
/// [`PREFLIGHT`]: `Ok` once the brokers answer, or once they simply cannot be reached for
/// [`OUTAGE_AFTER`] (an outage, which the callers ride out), an error naming the broker when
/// librdkafka reported a fault that retrying cannot fix.
pub fn check(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let mut config = client_config(settings, &[], &[]);
    // rdkafka passes on the `log` crate's level; the FAIL lines observed here are at info,
    // whatever RUST_LOG says (this client's lines are only forwarded at debug).
    config.set_log_level(RDKafkaLogLevel::Info);
    let client: BaseProducer<CheckContext> = config
        .create_with_context(CheckContext::default())
        .map_err(redact_error)?;
    let start = Instant::now();
    loop {
        if client
            .client()
            .fetch_metadata(None, Duration::from_millis(300))
            .is_ok()
        {
            return Ok(());
        }
        // Serves the error and log events the context observes.
        client.poll(Duration::from_millis(100));
        let context = client.context();
        if let Some(reason) = context.faults.fatal() {
            return Err(KafkaError::ClientCreation(format!(
                "cannot connect to Kafka {}: {reason}",
                settings.brokers
            )));
        }
        let waited = start.elapsed();
        if waited >= PREFLIGHT || (waited >= OUTAGE_AFTER && context.down.load(Ordering::Relaxed)) {
            return match context.faults.fatal_when_unreachable() {
                Some(reason) => Err(KafkaError::ClientCreation(format!(
                    "cannot connect to Kafka {}: {reason}",
                    settings.brokers
                ))),
                None => Ok(()),
            };
        }
    }
}

/// All brokers down this long with no TLS or SASL fault: an outage, not a misconfiguration.
const OUTAGE_AFTER: Duration = Duration::from_secs(2);

#[derive(Default)]
struct CheckContext {
    faults: ConnectFaults,
    down: AtomicBool,
}

impl ClientContext for CheckContext {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.faults.observe_log(fac, message);
        // The real clients log the same lines.
        tracing::debug!(target: "librdkafka", "librdkafka (connection check): {fac} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(C::AllBrokersDown) {
            self.down.store(true, Ordering::Relaxed);
        }
        self.faults.observe_error(&error, reason);
    }
}

impl ProducerContext for CheckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_auth_faults_are_fatal_outages_are_not() {
        let f = ConnectFaults::default();
        f.observe_error(
            &KafkaError::Global(C::AllBrokersDown),
            "1/1 brokers are down",
        );
        f.observe_error(
            &KafkaError::Global(C::BrokerTransportFailure),
            "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
        );
        assert_eq!(f.fatal(), None);
        f.observe_error(
            &KafkaError::Global(C::BrokerTransportFailure),
            "ssl://h:9093/bootstrap: SSL alert number 42",
        );
        assert!(f.fatal().unwrap().contains("ssl://h:9093"));
    }

    #[test]
    fn repeated_first_request_disconnects_mean_plaintext_to_tls() {
        let f = ConnectFaults::default();
        let line = "h:9093/bootstrap: Disconnected: connection closed by peer (after 1ms in state APIVERSION_QUERY)";
        for _ in 0..PLAINTEXT_TO_TLS_AFTER - 1 {
            f.observe_log("FAIL", line);
        }
        assert_eq!(f.fatal(), None);
        assert!(f.fatal_when_unreachable().unwrap().contains("[kafka.tls]"));
        f.observe_log("FAIL", line);
        assert!(f.fatal().unwrap().contains("[kafka.tls]"));
    }
}
