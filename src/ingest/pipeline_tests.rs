//! The pipeline test tier: the ingest stages wired as `app.rs` wires them, with an in-memory
//! source (simulated GitLab traffic) and a recording writer instead of Kafka and ClickHouse.
//! What reaches the store and what may be committed is checked against the simulator's
//! ground truth; the store's own retry, bisect and fatal paths are tested against the
//! clickhouse crate's mock server in `store::sink_tests`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::ClientConfig;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::correlation::CorrelationStage;
use super::error::IngestError;
use super::process::Processor;
use super::writer::{BatchWriter, Done, Sealed, Writer};
use crate::alert::AlertEngine;
use crate::alert::output::OutputError;
use crate::config::Settings;
use crate::correlate::actors::KnownBots;
use crate::kafka::dead_letter::{DeadLetterError, DeadLetterProducer, DeadLetterTicket};
use crate::kafka::offsets::OffsetTracker;
use crate::model::{InputMessage, SourceKind};
use crate::simulate::{SimConfig, generate};
use crate::store::block::{Block, TopicPartition, WriteReceipt};
use crate::store::sink::{SinkError, WriteError, Written};
use crate::telemetry::metrics::Metrics;

/// Records what it was asked to store (rows per table), or fails every write.
#[derive(Clone, Default)]
struct RecordingWriter {
    rows: Arc<Mutex<HashMap<&'static str, usize>>>,
    writes: Arc<Mutex<usize>>,
    fail: Option<WriteError>,
}

impl BatchWriter for RecordingWriter {
    async fn write(
        &self,
        blocks: &[Block],
        _cancel: &CancellationToken,
    ) -> Result<Written, SinkError> {
        *self.writes.lock().unwrap() += 1;
        if let Some(e) = &self.fail {
            return Err(SinkError::Fatal(e.clone()));
        }
        let mut rows = self.rows.lock().unwrap();
        for b in blocks {
            *rows.entry(b.table.name()).or_default() += b.rows.len();
        }
        Ok(Written {
            receipt: WriteReceipt::acknowledged(),
            rejected: Vec::new(),
        })
    }
}

/// A dead-letter producer that is never asked to send (no rows are rejected here); creating
/// it opens no connection.
fn idle_dead_letters() -> DeadLetterProducer {
    let producer = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9")
        .create()
        .expect("producer config");
    DeadLetterProducer::new(producer, "dlq".into(), 1 << 20, Metrics::new())
}

fn spawn_writer(
    store: RecordingWriter,
) -> (
    mpsc::Sender<Sealed>,
    mpsc::Receiver<Result<Done, IngestError>>,
) {
    let (sealed_tx, sealed_rx) = mpsc::channel(1);
    let (done_tx, done_rx) = mpsc::channel(64);
    let writer = Writer {
        store,
        dlq: idle_dead_letters(),
        pages: false,
        metrics: Metrics::new(),
    };
    tokio::spawn(writer.run(sealed_rx, done_tx, CancellationToken::new()));
    (sealed_tx, done_rx)
}

fn processor(settings: &Settings) -> Processor {
    Processor::new(
        settings,
        CorrelationStage::new(&settings.correlate),
        AlertEngine::new(&settings.alerting),
        KnownBots::default(),
        Metrics::new(),
    )
}

#[tokio::test]
async fn simulated_traffic_is_stored_as_the_ground_truth_says_and_every_offset_commits() {
    let (messages, truth) = generate(&SimConfig::small());
    let mut settings = Settings::default();
    settings.batch.max_rows = 200;
    let mut work = processor(&settings);
    let mut tracker = OffsetTracker::new();
    let store = RecordingWriter::default();
    let (sealed_tx, mut done_rx) = spawn_writer(store.clone());
    let mut next_offset: HashMap<&str, i64> = HashMap::new();
    let mut in_flight = 0;
    let apply = |done: Done, work: &mut Processor, tracker: &mut OffsetTracker| {
        work.written(&done.released);
        tracker.complete(done.durable);
    };

    for m in &messages {
        let topic = match m.source {
            SourceKind::AuditStream => "audit",
            SourceKind::Webhook => "webhooks",
        };
        let offset = next_offset.entry(topic).or_default();
        let headers: Vec<crate::model::Header<'_>> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let input = InputMessage {
            source: m.source,
            topic,
            partition: 0,
            offset: *offset,
            timestamp_ms: Some(m.timestamp_ms),
            headers: &headers,
            payload: Some(&m.payload),
        };
        *offset += 1;
        // The loop dead-letters `rejected` here; this tier takes every copy as acknowledged.
        let normalized = work.normalize(&input);
        work.on_message(&input, normalized.events, &mut tracker, m.timestamp_ms);
        if work.batch_full() {
            let work_sealed = work.seal();
            sealed_tx
                .send(Sealed {
                    work: work_sealed,
                    tickets: Vec::new(),
                    dead_letters: Vec::new(),
                })
                .await
                .unwrap();
            in_flight += 1;
        }
        while let Ok(done) = done_rx.try_recv() {
            apply(done.unwrap(), &mut work, &mut tracker);
            in_flight -= 1;
        }
    }
    work.flush_all(i64::MAX / 2);
    sealed_tx
        .send(Sealed {
            work: work.seal(),
            tickets: Vec::new(),
            dead_letters: Vec::new(),
        })
        .await
        .unwrap();
    in_flight += 1;
    while in_flight > 0 {
        apply(
            done_rx.recv().await.unwrap().unwrap(),
            &mut work,
            &mut tracker,
        );
        in_flight -= 1;
    }

    let stored = store.rows.lock().unwrap().clone();
    assert_eq!(
        stored.get("token_use").copied().unwrap_or(0),
        truth.token_uses.len(),
        "token-use rows against the simulator's ground truth ({stored:?})"
    );
    let commits: HashMap<TopicPartition, i64> = tracker
        .take_commits(|tp| work.commit_cap(tp))
        .into_iter()
        .collect();
    for (topic, messages) in [
        ("audit", truth.audit_messages),
        ("webhooks", truth.webhook_messages),
    ] {
        assert_eq!(
            commits.get(&(Arc::from(topic), 0)).copied(),
            Some(messages as i64),
            "{topic}: every message is committed once everything is stored"
        );
    }
}

#[tokio::test]
async fn a_fatal_store_error_is_reported_and_nothing_after_it_is_written() {
    let store = RecordingWriter {
        fail: Some(WriteError::Fatal {
            code: Some(60),
            message: "unknown table".into(),
        }),
        ..RecordingWriter::default()
    };
    let (sealed_tx, mut done_rx) = spawn_writer(store.clone());
    let settings = Settings::default();
    let mut work = processor(&settings);
    for _ in 0..2 {
        let _ = sealed_tx
            .send(Sealed {
                work: work.seal(),
                tickets: Vec::new(),
                dead_letters: Vec::new(),
            })
            .await;
    }
    assert!(matches!(
        done_rx.recv().await,
        Some(Err(IngestError::Store(WriteError::Fatal { .. })))
    ));
    assert!(done_rx.recv().await.is_none(), "the writer stopped");
    assert_eq!(*store.writes.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_batch_whose_alerts_were_not_delivered_is_never_written() {
    let store = RecordingWriter::default();
    let (sealed_tx, mut done_rx) = spawn_writer(store.clone());
    let settings = Settings::default();
    let mut work = processor(&settings);
    let (ticket_tx, ticket) = oneshot::channel();
    ticket_tx
        .send(Err(Arc::new(OutputError::WebhookExhausted {
            attempts: 3,
            last: "503".into(),
        })))
        .unwrap();
    sealed_tx
        .send(Sealed {
            work: work.seal(),
            tickets: vec![ticket],
            dead_letters: Vec::new(),
        })
        .await
        .unwrap();
    assert!(matches!(
        done_rx.recv().await,
        Some(Err(IngestError::AlertOutput(_)))
    ));
    assert_eq!(*store.writes.lock().unwrap(), 0, "outputs come first");
}

#[tokio::test]
async fn a_batch_whose_dead_letter_copy_was_refused_is_never_written() {
    let store = RecordingWriter::default();
    let (sealed_tx, mut done_rx) = spawn_writer(store.clone());
    let settings = Settings::default();
    let mut work = processor(&settings);
    let refused = DeadLetterTicket::settled(Err(DeadLetterError::Refused {
        topic: "dlq".into(),
        source: rdkafka::error::KafkaError::MessageProduction(
            rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed,
        ),
    }));
    sealed_tx
        .send(Sealed {
            work: work.seal(),
            tickets: Vec::new(),
            dead_letters: vec![refused],
        })
        .await
        .unwrap();
    assert!(matches!(
        done_rx.recv().await,
        Some(Err(IngestError::DeadLetter(
            DeadLetterError::Refused { .. }
        )))
    ));
    assert_eq!(
        *store.writes.lock().unwrap(),
        0,
        "the offsets of a message whose copy is not acknowledged are never made durable"
    );
}
