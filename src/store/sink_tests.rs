//! The sink's failure paths against the clickhouse crate's mock server: every INSERT takes
//! the next queued answer, and the mock panics on drop if an answer was not asked for, so
//! each test also pins down how many INSERTs the path makes.

use std::sync::Arc;

use clickhouse::Client;
use clickhouse::test::{Mock, handlers};
use tokio_util::sync::CancellationToken;

use super::block::{Block, RowMark};
use super::schema::Dialect;
use super::sink::{ClickHouseSink, SinkError, WriteError};
use super::tables::Table;
use crate::retry::RetrySettings;
use crate::telemetry::metrics::Metrics;

/// ClickHouse's code for a value it cannot parse (the data is at fault).
const CANNOT_PARSE: u8 = 27;
/// A socket timeout: the same INSERT can succeed later.
const SOCKET_TIMEOUT: u8 = 209;
/// The user is read-only: no retry can grant the privilege.
const READONLY: u8 = 164;

fn sink(mock: &Mock, metrics: &Metrics) -> ClickHouseSink {
    ClickHouseSink::new(
        Client::default().with_mock(mock),
        "tokentrail".into(),
        Dialect::Portable,
        RetrySettings {
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        },
        metrics.clone(),
    )
}

/// One block of `rows` one-byte rows at offsets 100, 101, ...
fn block(rows: usize) -> Block {
    block_of(Table::AuditEvents, b'0', rows)
}

/// `rows` rows of `table`, each the byte `fill`.
fn block_of(table: Table, fill: u8, rows: usize) -> Block {
    Block {
        table,
        tp: (Arc::from("audit"), 0),
        bytes: vec![fill; rows].into(),
        rows: (0..rows)
            .map(|i| RowMark {
                end: i + 1,
                offset: 100 + i as i64,
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_transient_error_is_retried_and_then_written() {
    let mock = Mock::new();
    let metrics = Metrics::new();
    mock.add(handlers::exception(SOCKET_TIMEOUT));
    mock.add(handlers::record_ddl());
    let written = sink(&mock, &metrics)
        .write(&[block(2)], &CancellationToken::new())
        .await
        .unwrap();
    assert!(written.rejected.is_empty());
    assert_eq!(metrics.insert_retries.get(), 1);
}

#[tokio::test]
async fn a_rejected_insert_is_bisected_down_to_the_bad_row() {
    let mock = Mock::new();
    let metrics = Metrics::new();
    // Rows 0..4 refused; 0..2 fine; 2..4 refused; 2..3 fine; 3..4 refused: row 3 is bad.
    for answer in [true, false, true, false, true] {
        if answer {
            mock.add(handlers::exception(CANNOT_PARSE));
        } else {
            mock.add(handlers::record_ddl());
        }
    }
    let written = sink(&mock, &metrics)
        .write(&[block(4)], &CancellationToken::new())
        .await
        .unwrap();
    let offsets: Vec<i64> = written.rejected.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![103]);
    assert_eq!(written.rejected[0].code, u32::from(CANNOT_PARSE));
    assert_eq!(
        metrics.insert_retries.get(),
        0,
        "a rejection is not retried"
    );
}

#[tokio::test]
async fn a_permission_error_is_fatal_at_once() {
    let mock = Mock::new();
    let metrics = Metrics::new();
    mock.add(handlers::exception(READONLY));
    let result = sink(&mock, &metrics)
        .write(&[block(3)], &CancellationToken::new())
        .await;
    match result {
        Err(SinkError::Fatal(WriteError::Fatal { code, message })) => {
            assert_eq!(code, Some(u32::from(READONLY)));
            assert!(message.contains("read-only"), "{message}");
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
    assert_eq!(metrics.insert_retries.get(), 0);
}

#[tokio::test]
async fn alerts_are_stored_before_the_tables_that_imply_them() {
    let mock = Mock::new();
    let metrics = Metrics::new();
    // The alerts INSERT needs a retry; token_use must not be sent meanwhile.
    mock.add(handlers::exception(SOCKET_TIMEOUT));
    let alerts = mock.add(handlers::record_ddl());
    let token_use = mock.add(handlers::record_ddl());
    let blocks = [
        block_of(Table::Alerts, b'A', 1),
        block_of(Table::TokenUse, b'T', 1),
    ];
    sink(&mock, &metrics)
        .write(&blocks, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(alerts.query().await, "A");
    assert_eq!(token_use.query().await, "T");
}
