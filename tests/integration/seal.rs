//! Ingest's sealing timer (`ingest::seal_timer` → `store::seal`) against ClickHouse 18.16:
//! it seals ended days, reseals a day that changed, and rides out a server that is down.

use std::time::Duration;

use tokentrail::ingest::seal_timer;
use tokentrail::simulate::{self, SimConfig};
use tokentrail::store::tables::{self, Table};
use tokentrail::store::{migrate, seal};
use tokentrail::telemetry::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::common::*;

async fn insert_token_use(client: &clickhouse::Client, db: &str, rows: Vec<u8>) {
    let mut insert = client.insert_formatted_with(Table::TokenUse.insert_sql(db));
    insert.send(rows.into()).await.unwrap();
    insert.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_seals_ended_days_and_reseals_a_day_that_changed() {
    let svc = services();
    let db = unique("it_seal");
    let client = clickhouse(&svc.clickhouse_url, &db);
    migrate::migrate(&client, &db, 0, None).await.unwrap();
    let (_, truth) = simulate::generate(&SimConfig::default());
    let uses = &truth.token_uses;
    let (mut first, mut late) = (Vec::new(), Vec::new());
    for (i, u) in uses.iter().enumerate() {
        let rows = if i % 10 == 3 { &mut late } else { &mut first };
        tables::token_use::encode(u, &format!("seal-{i:06}"), 1, rows);
    }
    insert_token_use(&client, &db, first).await;
    let days = count(
        &client,
        "SELECT uniqExact(day_ms) FROM token_use_day_inserts",
    )
    .await;
    assert!(days > 0);

    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let timer = seal_timer::spawn(
        client.clone(),
        None,
        Duration::from_millis(200),
        metrics.clone(),
        cancel.clone(),
    )
    .expect("a non-zero interval starts the timer");
    let sealed = "SELECT count() FROM token_use_sealed_days";
    eventually(Duration::from_secs(30), "every day sealed", || async {
        (count(&client, sealed).await == days).then_some(())
    })
    .await;
    let uses_sealed = "SELECT toUInt64(sum(uses)) FROM token_use_pairs_sealed \
         WHERE (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)";
    let distinct = "SELECT uniqExact(record_key) FROM token_use";
    assert_eq!(
        count(&client, uses_sealed).await,
        count(&client, distinct).await
    );

    // Late records: their days drop out of the sealed days (read from token_use) until the
    // timer reseals them with the late records counted.
    insert_token_use(&client, &db, late).await;
    let all = count(&client, distinct).await;
    eventually(Duration::from_secs(30), "changed days resealed", || async {
        (count(&client, sealed).await == days && count(&client, uses_sealed).await == all)
            .then_some(())
    })
    .await;
    assert!(
        metrics.sealed_days.get() > days,
        "first sealings and reseals counted"
    );
    assert!(metrics.seal_passes.with_label_values(&["ok"]).get() > 0);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), timer)
        .await
        .expect("the timer stops when cancelled")
        .unwrap();
}

/// A server that is down fails each pass; the timer counts it and keeps ticking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_fails_passes_without_stopping_the_timer() {
    let (port, listener) = closed_port();
    drop(listener);
    let client = clickhouse(&format!("http://127.0.0.1:{port}"), "nowhere");
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let timer = seal_timer::spawn(
        client,
        None,
        Duration::from_millis(100),
        metrics.clone(),
        cancel.clone(),
    )
    .unwrap();
    eventually(Duration::from_secs(30), "three failed passes", || async {
        (metrics.seal_passes.with_label_values(&["error"]).get() >= 3).then_some(())
    })
    .await;
    assert!(!timer.is_finished());
    assert_eq!(metrics.sealed_days.get(), 0);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), timer)
        .await
        .expect("the timer stops when cancelled")
        .unwrap();
}

#[test]
fn a_zero_interval_starts_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let client = clickhouse("http://127.0.0.1:1", "nowhere");
    assert!(
        seal_timer::spawn(
            client,
            None,
            Duration::ZERO,
            Metrics::new(),
            CancellationToken::new()
        )
        .is_none()
    );
}

/// A loopback port nobody listens on once the listener is dropped.
fn closed_port() -> (u16, std::net::TcpListener) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (l.local_addr().unwrap().port(), l)
}

/// A sender with a wrong clock: records dated after 2106 (beyond 18.16's DateTime) and
/// before 1970 are never sealed, and every sealed day's summaries count exactly the day's
/// distinct records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_outside_datetime_are_never_sealed() {
    let svc = services();
    let db = unique("it_seal_clock");
    let client = clickhouse(&svc.clickhouse_url, &db);
    migrate::migrate(&client, &db, 0, None).await.unwrap();
    let (_, truth) = simulate::generate(&SimConfig::default());
    let mut rows = Vec::new();
    for (i, u) in truth.token_uses.iter().take(300).enumerate() {
        let mut u = u.clone();
        match i % 3 {
            0 => u.event_time_ms = 7_258_118_400_000 + i as i64, // 2200-01-01
            1 => u.event_time_ms = -86_400_000 * 3 + i as i64,   // 1969-12-29
            _ => {}
        }
        tables::token_use::encode(&u, &format!("clock-{i:04}"), 1, &mut rows);
    }
    insert_token_use(&client, &db, rows).await;
    let far_future = 9_000_000_000_000;
    seal::seal(&client, far_future, None).await.unwrap();

    let sealed: Vec<i64> = client
        .query("SELECT day_ms FROM token_use_sealed_days ORDER BY day_ms")
        .fetch_all()
        .await
        .unwrap();
    assert!(!sealed.is_empty(), "the ordinary days are sealed");
    assert!(
        sealed
            .iter()
            .all(|d| *d > 0 && *d <= seal::LAST_SEALABLE_DAY_MS),
        "{sealed:?}"
    );
    for day in sealed {
        let summarized = count(
            &client,
            &format!(
                "SELECT toUInt64(sum(uses)) FROM token_use_pairs_sealed WHERE day_ms = {day} \
                 AND (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)"
            ),
        )
        .await;
        let stored = count(
            &client,
            &format!(
                "SELECT uniqExact(record_key) FROM token_use \
                 WHERE event_time_ms >= {day} AND event_time_ms < {day} + 86400000"
            ),
        )
        .await;
        assert_eq!(summarized, stored, "day {day}");
    }
}
