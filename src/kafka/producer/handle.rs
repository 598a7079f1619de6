//! [`Producer`]: rdkafka's `FutureProducer` API (a future per message) over a `BaseProducer`
//! served by [`super::poller`] instead of rdkafka's spinning polling thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::channel::oneshot;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, FromClientConfig};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{OwnedMessage, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer as _, ProducerContext,
};
use rdkafka::util::Timeout;
use rdkafka::{Message, Timestamp};

use super::poller::{FALLBACK, Poller};

/// How long `send` waits before offering a message again to a full local queue (the value
/// `FutureProducer::send` uses).
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(100);

/// Completes each message's future from its delivery report.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }),
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The message's future was dropped: nobody waits for this report.
        let _ = tx.send(owned);
    }
}

/// A message's delivery report: `Err(Canceled)` if the producer dropped it unreported.
pub struct DeliveryFuture(oneshot::Receiver<OwnedDeliveryResult>);

impl Future for DeliveryFuture {
    type Output = Result<OwnedDeliveryResult, oneshot::Canceled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_unpin(cx)
    }
}

/// The producer every Kafka writer of tokentrail uses; cheap to clone (one client, one
/// polling thread).
#[derive(Clone)]
pub struct Producer(Arc<Shared>);

struct Shared {
    poller: Poller,
    producer: Arc<BaseProducer<Deliveries>>,
}

impl Drop for Shared {
    /// The thread stops first, so the producer's last `Arc` drops here, and its drop
    /// purges and flushes what is left.
    fn drop(&mut self) {
        self.poller.stop();
    }
}

impl FromClientConfig for Producer {
    fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        Producer::with_fallback(config, FALLBACK)
    }
}

impl Producer {
    /// A producer whose polling thread parks for at most `fallback` when not woken.
    fn with_fallback(config: &ClientConfig, fallback: Duration) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<Deliveries>> =
            Arc::new(config.create_with_context(Deliveries)?);
        let poller = Poller::spawn(producer.clone(), fallback)
            .map_err(|e| KafkaError::ClientCreation(format!("producer polling thread: {e}")))?;
        Ok(Producer(Arc::new(Shared { poller, producer })))
    }

    /// Hands `record` to librdkafka now, or gives it back (`QueueFull` when the local queue
    /// is full: the caller decides whether to wait). The record comes back whole, as from
    /// rdkafka's own `send_result`, so that it can be offered again.
    #[allow(clippy::result_large_err)]
    pub fn send_result<'a, K, P>(
        &self,
        record: FutureRecord<'a, K, P>,
    ) -> Result<DeliveryFuture, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        match self.0.producer.send(base_record(record, Box::new(tx))) {
            Ok(()) => Ok(DeliveryFuture(rx)),
            Err((e, record)) => Err((e, future_record(record))),
        }
    }

    /// Sends `record`, retrying a full local queue for up to `queue_timeout`, and waits for
    /// its delivery report.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: impl Into<Timeout>,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let start = Instant::now();
        let queue_timeout = queue_timeout.into();
        let topic = record.topic;
        let (tx, rx) = oneshot::channel();
        let mut record = base_record(record, Box::new(tx));
        loop {
            match self.0.producer.send(record) {
                Ok(()) => {
                    // Dropped unreported only by the producer's own drop, which `&self` holds
                    // off; reported as `FutureProducer` reports a cancelled delivery.
                    let Ok(report) = rx.await else {
                        let message = OwnedMessage::new(
                            None,
                            None,
                            topic.to_owned(),
                            Timestamp::NotAvailable,
                            -1,
                            0,
                            None,
                        );
                        return Err((KafkaError::Canceled, message));
                    };
                    return report;
                }
                Err((e, back))
                    if e == KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                        && may_wait(queue_timeout, start) =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((e, back)) => return Err((e, unsent(&back))),
            }
        }
    }

    /// Waits up to `timeout` for every queued message's delivery report.
    pub fn flush(&self, timeout: impl Into<Timeout>) -> KafkaResult<()> {
        self.0.producer.flush(timeout)
    }

    /// The client, for metadata requests.
    pub fn client(&self) -> &Client<Deliveries> {
        self.0.producer.client()
    }
}

fn may_wait(queue_timeout: Timeout, start: Instant) -> bool {
    match queue_timeout {
        Timeout::Never => true,
        Timeout::After(limit) => start.elapsed() < limit,
    }
}

type Opaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

fn base_record<'a, K, P>(r: FutureRecord<'a, K, P>, opaque: Opaque) -> BaseRecord<'a, K, P, Opaque>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    BaseRecord {
        topic: r.topic,
        partition: r.partition,
        payload: r.payload,
        key: r.key,
        timestamp: r.timestamp,
        headers: r.headers,
        delivery_opaque: opaque,
    }
}

fn future_record<'a, K, P>(r: BaseRecord<'a, K, P, Opaque>) -> FutureRecord<'a, K, P>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    FutureRecord {
        topic: r.topic,
        partition: r.partition,
        payload: r.payload,
        key: r.key,
        timestamp: r.timestamp,
        headers: r.headers,
    }
}

/// The message of a failed send, as `FutureProducer::send` reports it (offset 0, no headers).
fn unsent<K, P>(r: &BaseRecord<'_, K, P, Opaque>) -> OwnedMessage
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    OwnedMessage::new(
        r.payload.map(|p| p.to_bytes().to_vec()),
        r.key.map(|k| k.to_bytes().to_vec()),
        r.topic.to_owned(),
        r.timestamp
            .map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
        r.partition.unwrap_or(-1),
        0,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client for a port nothing listens on: every message fails after `timeout_ms`.
    fn unreachable(timeout_ms: u32) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", timeout_ms.to_string())
            .set("log_level", "0");
        config
    }

    fn record(payload: &[u8]) -> FutureRecord<'_, str, [u8]> {
        FutureRecord::to("tokentrail-test").payload(payload)
    }

    /// With a fallback of an hour, only librdkafka's wake-up can deliver the report in time.
    #[tokio::test]
    async fn a_delivery_report_wakes_the_thread_without_waiting_for_the_fallback() {
        let producer = Producer::with_fallback(&unreachable(300), Duration::from_secs(3600))
            .expect("producer");
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            producer.send(record(b"x"), Duration::ZERO),
        )
        .await
        .expect("the delivery report never came: the polling thread was not woken");
        let (error, message) = report.expect_err("nothing listens on 127.0.0.1:1");
        assert_eq!(
            error,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        );
        assert_eq!(message.topic(), "tokentrail-test");
        assert_eq!(message.payload(), Some(&b"x"[..]));
    }

    /// rdkafka's own polling thread spent the last millisecond of every 100 in a busy loop
    /// (about 10 ms of CPU per second); this one sleeps while there is nothing to report.
    #[test]
    fn an_idle_producer_does_not_spin() {
        let producer = Producer::with_fallback(&unreachable(60_000), FALLBACK).expect("producer");
        std::thread::sleep(Duration::from_millis(200));
        let (cpu, passes) = (producer.0.poller.cpu_ns(), producer.0.poller.passes());
        std::thread::sleep(Duration::from_secs(2));
        let cpu = producer.0.poller.cpu_ns() - cpu;
        let passes = producer.0.poller.passes() - passes;
        // About 20 fallback wake-ups of a few microseconds each; the busy loop took ~20 ms.
        assert!(
            cpu < 5_000_000,
            "{cpu} ns of CPU in 2 s idle ({passes} passes)"
        );
        assert!(passes < 100, "{passes} passes in 2 s idle");
    }

    /// A message still queued when the last handle drops gets its report (an error), so no
    /// sender waits forever and nothing is taken as acknowledged.
    #[tokio::test]
    async fn dropping_the_producer_reports_what_it_still_held() {
        let producer = Producer::with_fallback(&unreachable(60_000), FALLBACK).expect("producer");
        let copy = producer.clone();
        let delivery = producer
            .send_result(record(b"held"))
            .map_err(|(e, _)| e)
            .expect("queued");
        // The message is held until the last clone drops.
        drop(producer);
        drop(copy);
        let report = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("the report of a dropped producer's message never came");
        match report {
            Ok(Err((error, _))) => assert_eq!(
                error,
                KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)
            ),
            Err(oneshot::Canceled) => {}
            Ok(Ok(delivery)) => panic!("acknowledged by nobody: {delivery:?}"),
        }
    }
}
