//! Why ingest stopped.

use std::sync::Arc;

use crate::alert::output::OutputError;
use crate::kafka::dead_letter::{DeadLetterError, GuardTripped};
use crate::store::read::ReadError;
use crate::store::sink::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error(transparent)]
    Guard(#[from] GuardTripped),
    #[error("ClickHouse: {0}")]
    Store(WriteError),
    /// Reading the histories at start-up (or the server version) failed.
    #[error("{0}")]
    Read(ReadError),
    #[error(transparent)]
    AlertOutput(Arc<OutputError>),
    #[error("message from unconfigured topic {0:?}")]
    UnknownTopic(String),
}

impl From<OutputError> for IngestError {
    fn from(e: OutputError) -> Self {
        IngestError::AlertOutput(Arc::new(e))
    }
}
