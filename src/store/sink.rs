//! Writes batches of encoded rows to ClickHouse and hands out the [`WriteReceipt`] that makes
//! their offsets committable.
//!
//! Two error paths: transient faults (network, timeouts, too many parts, ...) are retried with
//! capped exponential backoff for as long as it takes, while the consumer stays paused; a
//! block the server rejects as bad data is bisected until the offending rows are isolated,
//! the good rows are written, and the bad ones are returned for the dead-letter topic.

use std::time::{Duration, Instant};

use clickhouse::Client;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::block::{Block, TopicPartition, WriteReceipt};
use super::schema::Dialect;
use super::tables::Table;
use super::{chunks, key_order};
use crate::retry::Backoff;
use crate::retry::RetrySettings;
use crate::telemetry::metrics::Metrics;

/// How a failed insert should be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Retry the same block later: the server or the network is struggling.
    #[error("retryable ClickHouse error{}: {message}", code_suffix(*.code))]
    Retryable { code: Option<u32>, message: String },
    /// The server refused the data itself: bisect and dead-letter the bad rows.
    #[error("ClickHouse rejected the data (code {code}): {message}")]
    Rejected { code: u32, message: String },
    /// Retrying cannot help and the rows are not at fault (unknown table, auth, ...):
    /// stop without committing, so the messages are replayed once it is fixed.
    #[error("ClickHouse error{}: {message}", code_suffix(*.code))]
    Fatal { code: Option<u32>, message: String },
}

pub(super) fn code_suffix(code: Option<u32>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

/// Codes after which the same insert can succeed later.
const RETRYABLE_CODES: &[u32] = &[
    3, 159, 202, 203, 209, 210, 241, 242, 252, 285, 319, 425, 999,
];
/// Codes that say the user may not do this: fatal, since waiting cannot grant a privilege.
/// 164 READONLY, 192 UNKNOWN_USER, 193 WRONG_PASSWORD, 195 IP_ADDRESS_NOT_ALLOWED,
/// 291 DATABASE_ACCESS_DENIED, 497 ACCESS_DENIED, 516 AUTHENTICATION_FAILED.
const PERMISSION_CODES: &[u32] = &[164, 192, 193, 195, 291, 497, 516];

/// What to tell the operator for a permission error.
fn permission_hint(code: u32) -> &'static str {
    match code {
        164 => {
            "the ClickHouse user is read-only (readonly=1 in its profile): ingest needs \
             INSERT and SELECT on the tokentrail database"
        }
        192 | 193 | 516 => {
            "ClickHouse did not accept the user or password: check clickhouse.user and \
             clickhouse.password"
        }
        195 => "ClickHouse does not accept this user from this address (its <networks>)",
        _ => {
            "the ClickHouse user lacks a privilege: ingest needs INSERT and SELECT on the \
             tokentrail database's tables"
        }
    }
}
/// Codes that blame the inserted data.
const REJECTED_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 53, 69, 70, 72, 117, 131, 321];

/// Extracts `Code: N` from a ClickHouse error text.
pub fn error_code(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub fn classify(err: &clickhouse::error::Error) -> WriteError {
    use clickhouse::error::Error as E;
    let message = super::client::chain(err);
    match err {
        E::Network(_) if super::client::is_tls_failure(err) => WriteError::Fatal {
            code: None,
            message,
        },
        E::Network(_) | E::TimedOut => WriteError::Retryable {
            code: None,
            message,
        },
        E::BadResponse(text) => classify_code(error_code(text), message),
        _ => classify_code(error_code(&message), message),
    }
}

fn classify_code(code: Option<u32>, message: String) -> WriteError {
    match code {
        Some(c) if REJECTED_CODES.contains(&c) => WriteError::Rejected { code: c, message },
        Some(c) if PERMISSION_CODES.contains(&c) => WriteError::Fatal {
            code,
            message: format!("{}: {message}", permission_hint(c)),
        },
        Some(c) if RETRYABLE_CODES.contains(&c) => WriteError::Retryable {
            code: Some(c),
            message,
        },
        // A 5xx without a code is most likely a proxy or an overloaded server.
        None => WriteError::Retryable {
            code: None,
            message,
        },
        Some(_) => WriteError::Fatal { code, message },
    }
}

/// Tables of one batch written at the same time. A batch has at most one INSERT per table
/// (seven tables), and a small server gains little beyond a few concurrent INSERTs.
pub const CONCURRENT_INSERTS: usize = 4;

/// A row ClickHouse refused, to be dead-lettered.
#[derive(Debug, Clone)]
pub struct RejectedRow {
    pub table: Table,
    pub tp: TopicPartition,
    pub offset: i64,
    pub code: u32,
    pub message: String,
    pub row: Vec<u8>,
}

/// The result of writing a batch: the receipt, plus the rows that were refused.
#[derive(Debug)]
pub struct Written {
    pub receipt: WriteReceipt,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("shutdown requested while ClickHouse was unavailable; the batch will be replayed")]
    Interrupted,
    #[error(transparent)]
    Fatal(WriteError),
}

#[derive(Clone)]
pub struct ClickHouseSink {
    client: Client,
    database: String,
    dialect: Dialect,
    retry: RetrySettings,
    metrics: Metrics,
}

pub use super::client::client;

impl ClickHouseSink {
    pub fn new(
        client: Client,
        database: String,
        dialect: Dialect,
        retry: RetrySettings,
        metrics: Metrics,
    ) -> Self {
        ClickHouseSink {
            client,
            database,
            dialect,
            retry,
            metrics,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes every block; returns only when all rows are stored or dead-letter bound.
    ///
    /// The blocks of one table (one per source partition) go out as a single INSERT: every
    /// INSERT costs the server a new part and, later, a merge, and on a small server that
    /// per-INSERT cost, not the row count, is what limits throughput. Only if the server
    /// rejects the combined data are the table's blocks written one by one and bisected.
    /// A table's rows go in its `ORDER BY` order when it has one (`store::key_order`), so the
    /// server need not sort them.
    /// Up to [`CONCURRENT_INSERTS`] tables are written at once, so a batch takes about as
    /// long as its largest table rather than the sum of all; a table that must be stored
    /// before the others (`Table::is_written_first`) is written alone, first.
    pub async fn write(
        &self,
        blocks: &[Block],
        cancel: &CancellationToken,
    ) -> Result<Written, SinkError> {
        let (first, rest): (Vec<_>, Vec<_>) = by_table(blocks)
            .into_iter()
            .partition(|group| group[0].table.is_written_first());
        let mut rejected = Vec::new();
        for group in first {
            rejected.extend(self.write_table(group, cancel).await?);
        }
        let mut waiting = rest.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < CONCURRENT_INSERTS {
                match waiting.next() {
                    Some(group) => running.push(self.write_table(group, cancel)),
                    None => break,
                }
            }
            match running.next().await {
                Some(result) => rejected.extend(result?),
                None => break,
            }
        }
        Ok(Written {
            receipt: WriteReceipt::acknowledged(),
            rejected,
        })
    }

    /// Writes the blocks of one table; returns the rows the server refused.
    async fn write_table(
        &self,
        group: Vec<&Block>,
        cancel: &CancellationToken,
    ) -> Result<Vec<RejectedRow>, SinkError> {
        let mut rejected = Vec::new();
        if let [block] = group.as_slice() {
            self.write_rows(block, 0..block.rows.len(), cancel, &mut rejected)
                .await?;
            return Ok(rejected);
        }
        match self.insert_with_retry(&group, None, cancel).await? {
            Ok(()) => {}
            Err(WriteError::Rejected { .. }) => {
                for block in group {
                    self.write_rows(block, 0..block.rows.len(), cancel, &mut rejected)
                        .await?;
                }
            }
            Err(other) => return Err(SinkError::Fatal(other)),
        }
        Ok(rejected)
    }

    /// Writes rows `range` of `block`, bisecting on rejection.
    async fn write_rows(
        &self,
        block: &Block,
        range: std::ops::Range<usize>,
        cancel: &CancellationToken,
        rejected: &mut Vec<RejectedRow>,
    ) -> Result<(), SinkError> {
        // Explicit stack instead of recursion: async recursion needs boxing.
        let mut todo = vec![range];
        while let Some(range) = todo.pop() {
            if range.is_empty() {
                continue;
            }
            match self
                .insert_with_retry(&[block], Some(range.clone()), cancel)
                .await?
            {
                Ok(()) => {}
                Err(WriteError::Rejected { code, message }) if range.len() == 1 => {
                    let row = &block.rows[range.start];
                    rejected.push(RejectedRow {
                        table: block.table,
                        tp: block.tp.clone(),
                        offset: row.offset,
                        code,
                        message,
                        row: block.row_bytes_vec(range.clone()),
                    });
                }
                Err(WriteError::Rejected { .. }) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
                Err(other) => return Err(SinkError::Fatal(other)),
            }
        }
        Ok(())
    }

    /// Inserts `blocks` (all of one table) as one INSERT, or only rows `range` of a single
    /// block, retrying transient faults with capped exponential backoff until it succeeds,
    /// is rejected, fails fatally, or shutdown is requested.
    async fn insert_with_retry(
        &self,
        blocks: &[&Block],
        range: Option<std::ops::Range<usize>>,
        cancel: &CancellationToken,
    ) -> Result<Result<(), WriteError>, SinkError> {
        let table = blocks[0].table;
        // `Settings::validate` requires max_backoff_ms >= initial_backoff_ms, the bound
        // `Backoff::new` assumes.
        let mut backoff = Backoff::new(
            Duration::from_millis(self.retry.initial_backoff_ms),
            Duration::from_millis(self.retry.max_backoff_ms),
        );
        loop {
            let started = Instant::now();
            let result = self.insert_once(blocks, range.clone()).await;
            self.metrics
                .insert_latency
                .with_label_values(&[table.name()])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Err(WriteError::Retryable { code, message }) => {
                    self.metrics.insert_retries.inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        table = table.name(),
                        code,
                        backoff_ms = delay.as_millis() as u64,
                        "ClickHouse insert failed, retrying: {message}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return Err(SinkError::Interrupted),
                    }
                }
                other => return Ok(other),
            }
        }
    }

    async fn insert_once(
        &self,
        blocks: &[&Block],
        range: Option<std::ops::Range<usize>>,
    ) -> Result<(), WriteError> {
        let mut insert = self
            .client
            .insert_formatted_with(blocks[0].table.insert_sql(&self.database));
        if self.dialect.supports_insert_dedup_token() {
            // Identical on a retry of the same rows, so a retry after an ambiguous failure
            // (the server stored the block but the answer was lost) is not stored twice.
            insert = insert.with_setting("insert_deduplication_token", dedup_token(blocks, &range));
        }
        // Ordered again on each attempt: cheap next to a retry's backoff, and retries are rare.
        let precision = self.dialect.timestamp_precision();
        if let Some(rows) = key_order::rows_in_key_order(blocks, range.clone(), precision) {
            for piece in chunks::copied_in_chunks(rows.into_iter()) {
                insert.send(piece).await.map_err(|e| classify(&e))?;
            }
            return insert.end().await.map_err(|e| classify(&e));
        }
        for block in blocks {
            let rows = range.clone().unwrap_or(0..block.rows.len());
            // One piece per chunk: see `store::chunks` for why pieces stay small.
            for piece in block.row_bytes(rows) {
                insert.send(piece).await.map_err(|e| classify(&e))?;
            }
        }
        insert.end().await.map_err(|e| classify(&e))
    }
}

/// The blocks of `blocks` grouped by table, in order of first appearance.
fn by_table(blocks: &[Block]) -> Vec<Vec<&Block>> {
    let mut groups: Vec<Vec<&Block>> = Vec::new();
    for block in blocks {
        match groups.iter_mut().find(|g| g[0].table == block.table) {
            Some(group) => group.push(block),
            None => groups.push(vec![block]),
        }
    }
    groups
}

/// The `insert_deduplication_token` of one INSERT: its blocks' tokens, plus the row range
/// when only part of a block is sent (bisection).
fn dedup_token(blocks: &[&Block], range: &Option<std::ops::Range<usize>>) -> String {
    let mut token = blocks
        .iter()
        .map(|b| b.dedup_token())
        .collect::<Vec<_>>()
        .join(",");
    if let (Some(r), [block]) = (range, blocks)
        && !(r.start == 0 && r.end == block.rows.len())
    {
        token.push_str(&format!("#{}-{}", r.start, r.end));
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_from_server_text() {
        assert_eq!(
            error_code("Code: 53, e.displayText() = DB::Exception: Type mismatch"),
            Some(53)
        );
        assert_eq!(
            error_code("Code: 252. DB::Exception: Too many parts"),
            Some(252)
        );
        assert_eq!(error_code("connection refused"), None);
    }

    #[test]
    fn classifies_by_code() {
        let c = |code| classify_code(Some(code), String::new());
        assert!(matches!(c(53), WriteError::Rejected { .. }));
        assert!(matches!(c(117), WriteError::Rejected { .. }));
        for code in [159, 202, 209, 210, 252, 319] {
            assert!(matches!(c(code), WriteError::Retryable { .. }), "{code}");
        }
        assert!(
            matches!(c(60), WriteError::Fatal { .. }),
            "unknown table is fatal"
        );
        for code in [164, 192, 193, 195, 291, 497, 516] {
            assert!(
                matches!(&c(code), WriteError::Fatal { message, .. } if message.contains("ClickHouse")),
                "permission error {code} is fatal and says what is missing"
            );
        }
        assert!(c(164).to_string().contains("read-only"));
        assert!(matches!(
            classify_code(None, String::new()),
            WriteError::Retryable { .. }
        ));
    }

    fn block(table: Table, partition: i32, offsets: &[i64]) -> Block {
        use crate::store::block::RowMark;
        Block {
            table,
            tp: (std::sync::Arc::from("t"), partition),
            bytes: vec![0; offsets.len()].into(),
            rows: offsets
                .iter()
                .enumerate()
                .map(|(i, &offset)| RowMark { end: i + 1, offset })
                .collect(),
        }
    }

    #[test]
    fn groups_blocks_by_table_and_names_every_block_in_the_token() {
        let blocks = [
            block(Table::AuditEvents, 0, &[1, 2]),
            block(Table::TokenUse, 0, &[2]),
            block(Table::AuditEvents, 1, &[5, 9]),
        ];
        let groups = by_table(&blocks);
        let shape: Vec<Vec<(Table, i32)>> = groups
            .iter()
            .map(|g| g.iter().map(|b| (b.table, b.tp.1)).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![(Table::AuditEvents, 0), (Table::AuditEvents, 1)],
                vec![(Table::TokenUse, 0)]
            ]
        );
        assert_eq!(
            dedup_token(&groups[0], &None),
            "audit_events:t:0:1-2,audit_events:t:1:5-9"
        );
        let one = &groups[0][..1];
        assert_eq!(dedup_token(one, &Some(0..2)), "audit_events:t:0:1-2");
        assert_eq!(dedup_token(one, &Some(1..2)), "audit_events:t:0:1-2#1-2");
    }
}
