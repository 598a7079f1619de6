//! What the writer takes and what it gives back: sealed blocks of encoded rows, and the
//! receipt that proves ClickHouse acknowledged them. Declared here, below the ingest stages
//! that fill blocks and spend receipts, so the store never imports from a higher layer.

use std::sync::Arc;

use bytes::Bytes;

use super::chunks::Chunks;
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
    pub bytes: Chunks,
    pub rows: Vec<RowMark>,
}

impl Block {
    /// Where rows `range` start and end in the block's bytes.
    fn byte_range(&self, range: std::ops::Range<usize>) -> (usize, usize) {
        let end_of = |row: usize| if row == 0 { 0 } else { self.rows[row - 1].end };
        (end_of(range.start), end_of(range.end))
    }

    /// The bytes of rows `range`, as the chunks' slices (no copy).
    pub fn row_bytes(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Bytes> + '_ {
        let (start, end) = self.byte_range(range);
        self.bytes.slices(start, end)
    }

    /// The bytes of row `row`, when they lie in one chunk (as rows written by
    /// `ChunkWriter` always do).
    pub fn row(&self, row: usize) -> Option<&[u8]> {
        let (start, end) = self.byte_range(row..row + 1);
        self.bytes.contiguous(start, end)
    }

    /// The bytes of rows `range`, copied.
    pub fn row_bytes_vec(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let (start, end) = self.byte_range(range);
        self.bytes.to_vec(start, end)
    }
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
