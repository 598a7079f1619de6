//! The real ClickHouse server: our RowBinary encoder, written through the `clickhouse` crate,
//! read back through the crate's own RowBinary decoder.

use serde::Deserialize;
use tokentrail::store::rowbinary::RowWriter;

use crate::common::*;

#[derive(Debug, clickhouse::Row, Deserialize, PartialEq)]
struct Probe {
    name: String,
    n: i64,
    maybe: Option<i64>,
    flag: u8,
    tags: Vec<String>,
}

#[tokio::test]
async fn rowbinary_rows_round_trip_through_the_server() {
    let svc = services();
    let db = unique("it_ch");
    let client = clickhouse(&svc.clickhouse_url, &db);
    clickhouse(&svc.clickhouse_url, "system")
        .query_raw(&format!("CREATE DATABASE {db}"))
        .execute()
        .await
        .unwrap();
    client
        .query_raw(&format!(
            "CREATE TABLE {db}.probe (name String, n Int64, maybe Nullable(Int64), flag UInt8, \
             tags Array(String)) ENGINE = MergeTree ORDER BY n"
        ))
        .execute()
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let unicode = "ünïcødé \u{1F512} with\nnewline and 'quote'";
    RowWriter::new(&mut bytes)
        .string(unicode)
        .i64(-7)
        .opt_i64(None)
        .bool(true)
        .strings(&["a".into(), "b".into()]);
    RowWriter::new(&mut bytes)
        .string(&"x".repeat(1000))
        .i64(i64::MAX)
        .opt_i64(Some(42))
        .bool(false)
        .strings(&[]);
    let mut insert = client.insert_formatted_with(format!(
        "INSERT INTO {db}.probe (name, n, maybe, flag, tags) FORMAT RowBinary"
    ));
    insert.send(bytes.into()).await.unwrap();
    insert.end().await.unwrap();

    let rows: Vec<Probe> = client
        .query(&format!("SELECT name, n, maybe, flag, tags FROM {db}.probe ORDER BY n"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            Probe {
                name: unicode.into(),
                n: -7,
                maybe: None,
                flag: 1,
                tags: vec!["a".into(), "b".into()]
            },
            Probe {
                name: "x".repeat(1000),
                n: i64::MAX,
                maybe: Some(42),
                flag: 0,
                tags: vec![]
            },
        ]
    );
    let version: String = client.query("SELECT version()").fetch_one().await.unwrap();
    eprintln!("ClickHouse server version {version}");
    assert!(version.starts_with("18.") || version.split('.').next().unwrap().parse::<u32>().unwrap() >= 23);
}
