//! The batching step: the open batch and the one policy that decides when it is sealed.
//!
//! Rows are appended as they are routed; the loop asks [`Batcher::is_due`] between messages
//! and on its tick, and hands what [`Batcher::seal`] returns to the writer. A full batch that
//! the busy writer cannot take yet pauses fetching ([`Batcher::is_full`]).

use std::time::Duration;

use super::batch::Batch;
use crate::config::BatchSettings;
use crate::kafka::offsets::PendingOffsets;
use crate::store::block::{Block, TopicPartition};

/// When the open batch is sealed: `batch.max_rows` rows or `batch.max_bytes` encoded bytes
/// (all tables together), or `batch.max_wait_ms` after its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

impl FlushPolicy {
    pub fn from_settings(settings: &BatchSettings) -> Self {
        FlushPolicy {
            max_rows: settings.max_rows,
            max_bytes: settings.max_bytes,
            max_wait: Duration::from_millis(settings.max_wait_ms),
        }
    }

    pub fn is_full(&self, batch: &Batch) -> bool {
        batch.rows() >= self.max_rows || batch.bytes() >= self.max_bytes
    }

    pub fn is_due(&self, batch: &Batch) -> bool {
        !batch.is_empty() && (self.is_full(batch) || batch.age() >= self.max_wait)
    }

    /// How often the loop looks at the open batch's age while no message arrives: a quarter
    /// of `max_wait`, so a quiet batch is sealed at most a quarter late.
    pub fn tick(&self) -> Duration {
        (self.max_wait / 4).max(Duration::from_millis(10))
    }
}

/// A sealed batch: its encoded blocks and the offsets they consumed.
#[derive(Debug)]
pub struct SealedBatch {
    pub blocks: Vec<Block>,
    pub pending: PendingOffsets,
    /// Oldest Kafka timestamp in the batch, for the end-to-end lag metric.
    pub oldest_kafka_ts_ms: Option<i64>,
    pub rows: usize,
    pub bytes: usize,
}

/// The open batch under its flush policy.
#[derive(Debug)]
pub struct Batcher {
    open: Batch,
    policy: FlushPolicy,
}

impl Batcher {
    pub fn new(policy: FlushPolicy) -> Self {
        Batcher {
            open: Batch::default(),
            policy,
        }
    }

    /// The batch rows are routed into.
    pub fn open(&mut self) -> &mut Batch {
        &mut self.open
    }

    pub fn policy(&self) -> FlushPolicy {
        self.policy
    }

    pub fn is_full(&self) -> bool {
        self.policy.is_full(&self.open)
    }

    pub fn is_due(&self) -> bool {
        self.policy.is_due(&self.open)
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Rows of a revoked partition are dropped with their offsets: the new owner re-reads
    /// them from the last commit, so nothing is lost.
    pub fn drop_partition(&mut self, tp: &TopicPartition) {
        self.open.drop_partition(tp);
    }

    /// Closes the open batch and starts a new one.
    pub fn seal(&mut self) -> SealedBatch {
        let batch = std::mem::take(&mut self.open);
        let (rows, bytes) = (batch.rows(), batch.bytes());
        let (blocks, pending, oldest_kafka_ts_ms) = batch.into_parts();
        SealedBatch {
            blocks,
            pending,
            oldest_kafka_ts_ms,
            rows,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kafka::offsets::OffsetTracker;
    use crate::store::tables::Table;

    fn policy(max_rows: usize, max_bytes: usize, max_wait_ms: u64) -> FlushPolicy {
        FlushPolicy::from_settings(&BatchSettings {
            max_rows,
            max_bytes,
            max_wait_ms,
        })
    }

    #[test]
    fn a_batch_is_due_when_full_by_rows_or_bytes_or_old_enough_and_never_when_empty() {
        let tp: TopicPartition = (Arc::from("t"), 0);
        let mut tracker = OffsetTracker::new();
        let mut by_rows = Batcher::new(policy(2, 1 << 20, 60_000));
        assert!(!by_rows.is_due(), "empty");
        for offset in 0..2 {
            by_rows.open().consumed(&mut tracker, &tp, offset, None);
            by_rows
                .open()
                .push_row(Table::AuditEvents, &tp, offset, |b| b.push(0));
        }
        assert!(by_rows.is_full() && by_rows.is_due());

        let mut by_bytes = Batcher::new(policy(1_000, 4, 60_000));
        by_bytes
            .open()
            .push_row(Table::AuditEvents, &tp, 0, |b| b.extend_from_slice(b"four"));
        assert!(by_bytes.is_due());

        let mut by_age = Batcher::new(policy(1_000, 1 << 20, 1));
        by_age.open().consumed(&mut tracker, &tp, 0, None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!by_age.is_full() && by_age.is_due());

        let sealed = by_rows.seal();
        assert_eq!((sealed.rows, sealed.blocks.len()), (2, 1));
        assert!(by_rows.is_empty(), "sealing starts a new batch");
    }

    #[test]
    fn the_tick_is_a_quarter_of_the_wait_and_at_least_ten_milliseconds() {
        assert_eq!(policy(1, 1024, 400).tick(), Duration::from_millis(100));
        assert_eq!(policy(1, 1024, 1).tick(), Duration::from_millis(10));
    }
}
