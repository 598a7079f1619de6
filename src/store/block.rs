//! What the writer takes and what it gives back: sealed blocks of encoded rows, and the
//! receipt that proves ClickHouse acknowledged them. Declared here, below the ingest stages
//! that fill blocks and spend receipts, so the store never imports from a higher layer.

use std::sync::Arc;

use bytes::Bytes;

use super::tables::Table;

/// A Kafka topic and partition.
pub type TopicPartition = (Arc<str>, i32);

/// Row boundary and source offset of one encoded row, for bisecting a rejected block.
#[derive(Debug, Clone, Copy)]
pub struct RowMark {
    pub end: usize,
    pub offset: i64,
}

/// Encoded rows bound for one table from one partition, sealed: the bytes are shared, so
/// the writer sends them (or a bisected part) without copying.
#[derive(Debug)]
pub struct Block {
    pub table: Table,
    pub tp: TopicPartition,
    pub bytes: Bytes,
    pub rows: Vec<RowMark>,
}

/// Proof that ClickHouse acknowledged a batch. Constructed only by `store::sink`; the commit
/// barrier (`kafka::offsets`) turns pending offsets durable only in exchange for one.
#[derive(Debug)]
pub struct WriteReceipt {
    _private: (),
}

impl WriteReceipt {
    /// Only the sink calls this, after a successful insert of every block of a batch.
    pub(crate) fn acknowledged() -> Self {
        WriteReceipt { _private: () }
    }
}
