//! Batches of encoded rows, held as bytes, grouped into one block per (table, topic,
//! partition). The writer sends a table's blocks as one INSERT (deduplication token: the
//! blocks' offset ranges) and falls back to single blocks to bisect a rejected INSERT, so a
//! bad row is traced to its partition and offset.

use std::collections::BTreeMap;

use std::time::Instant;

use crate::kafka::offsets::{OffsetTracker, PendingOffsets};
pub use crate::store::block::{Block, RowMark, TopicPartition};
use crate::store::chunks::ChunkWriter;
use crate::store::tables::Table;

/// A block still being filled.
#[derive(Debug, Default)]
struct OpenBlock {
    bytes: ChunkWriter,
    rows: Vec<RowMark>,
}

impl Block {
    pub fn first_offset(&self) -> i64 {
        self.rows.first().map_or(-1, |r| r.offset)
    }
    pub fn last_offset(&self) -> i64 {
        self.rows.last().map_or(-1, |r| r.offset)
    }
    /// `topic:partition:first-last`, identical when the same block is retried.
    pub fn dedup_token(&self) -> String {
        format!(
            "{}:{}:{}:{}-{}",
            self.table.name(),
            self.tp.0,
            self.tp.1,
            self.first_offset(),
            self.last_offset()
        )
    }
}

/// A batch being filled by the consumer loop.
#[derive(Debug)]
pub struct Batch {
    /// By table, then partition: a row finds its block by reference, without copying the
    /// partition's key (an `Arc` count per row was 1.3 % of the in-process path's samples).
    blocks: BTreeMap<Table, BTreeMap<TopicPartition, OpenBlock>>,
    pub pending: PendingOffsets,
    rows: usize,
    bytes: usize,
    messages: usize,
    opened_at: Instant,
    /// Oldest Kafka timestamp in the batch, for the end-to-end lag metric.
    pub oldest_kafka_ts_ms: Option<i64>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            blocks: BTreeMap::new(),
            pending: PendingOffsets::default(),
            rows: 0,
            bytes: 0,
            messages: 0,
            opened_at: Instant::now(),
            oldest_kafka_ts_ms: None,
        }
    }
}

impl Batch {
    /// Counts a consumed message (whatever it produced) towards the batch's offsets.
    pub fn consumed(
        &mut self,
        tracker: &mut OffsetTracker,
        tp: &TopicPartition,
        offset: i64,
        kafka_ts_ms: Option<i64>,
    ) {
        if self.messages == 0 {
            self.opened_at = Instant::now();
        }
        self.messages += 1;
        tracker.record(&mut self.pending, tp, offset);
        if let Some(ts) = kafka_ts_ms {
            self.oldest_kafka_ts_ms = Some(self.oldest_kafka_ts_ms.map_or(ts, |o| o.min(ts)));
        }
    }

    /// Appends one row, encoded by `encode` straight into the block's buffer.
    pub fn push_row(
        &mut self,
        table: Table,
        tp: &TopicPartition,
        offset: i64,
        encode: impl FnOnce(&mut Vec<u8>),
    ) {
        let partitions = self.blocks.entry(table).or_default();
        if !partitions.contains_key(tp) {
            partitions.insert(tp.clone(), OpenBlock::default());
        }
        let block = partitions.get_mut(tp).expect("inserted above");
        let before = block.bytes.len();
        let end = block.bytes.row(encode);
        block.rows.push(RowMark { end, offset });
        self.rows += 1;
        self.bytes += block.bytes.len() - before;
    }

    /// Removes a revoked partition: its rows are not written and its offsets never committed.
    pub fn drop_partition(&mut self, tp: &TopicPartition) {
        self.pending.drop_partition(tp);
        for partitions in self.blocks.values_mut() {
            if let Some(block) = partitions.remove(tp) {
                self.rows -= block.rows.len();
                self.bytes -= block.bytes.len();
            }
        }
        self.blocks.retain(|_, partitions| !partitions.is_empty());
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn messages(&self) -> usize {
        self.messages
    }
    /// Nothing to write: no consumed message and no row (rows can arrive without a message,
    /// e.g. token-use records the correlator releases on an idle or shutdown flush).
    pub fn is_empty(&self) -> bool {
        self.messages == 0 && self.rows == 0
    }
    pub fn age(&self) -> std::time::Duration {
        self.opened_at.elapsed()
    }

    pub fn into_parts(self) -> (Vec<Block>, PendingOffsets, Option<i64>) {
        (
            self.blocks
                .into_iter()
                .flat_map(|(table, partitions)| {
                    partitions.into_iter().map(move |(tp, open)| Block {
                        table,
                        tp,
                        bytes: open.bytes.finish(),
                        rows: open.rows,
                    })
                })
                .collect(),
            self.pending,
            self.oldest_kafka_ts_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn blocks_split_by_table_and_partition_and_track_bytes() {
        let mut tracker = OffsetTracker::new();
        let mut batch = Batch::default();
        let p0: TopicPartition = (Arc::from("a"), 0);
        let p1: TopicPartition = (Arc::from("a"), 1);
        for (tp, off) in [(&p0, 5), (&p0, 6), (&p1, 9)] {
            batch.consumed(&mut tracker, tp, off, Some(100 + off));
            batch.push_row(Table::AuditEvents, tp, off, |b| b.extend_from_slice(b"xy"));
        }
        assert_eq!((batch.rows(), batch.bytes(), batch.messages()), (3, 6, 3));
        assert_eq!(batch.oldest_kafka_ts_ms, Some(105));
        batch.drop_partition(&p1);
        assert_eq!((batch.rows(), batch.bytes()), (2, 4));
        let (blocks, _, _) = batch.into_parts();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].dedup_token(), "audit_events:a:0:5-6");
        assert_eq!(blocks[0].row_bytes_vec(1..2), b"xy");
        assert_eq!(blocks[0].row_bytes_vec(0..2).len(), 4);
    }

    #[test]
    fn rows_without_new_messages_are_not_empty() {
        let mut batch = Batch::default();
        let p0: TopicPartition = (Arc::from("a"), 0);
        assert!(batch.is_empty());
        batch.push_row(Table::TokenUse, &p0, 3, |b| b.push(1));
        assert!(!batch.is_empty(), "an idle flush's records must be written");
    }
}
