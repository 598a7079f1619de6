//! The modern engine (chdb, ClickHouse 26.x in-process) answers from a test.

use crate::common::*;

#[test]
fn chdb_runs_a_statement() {
    let svc = services();
    let out = chdb(&svc, &["-q", "SELECT version(), toTypeName(now64(3, 'UTC'))"]);
    let mut cols = out.trim().split('\t');
    let version = cols.next().unwrap();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 23, "chdb engine version {version}");
    assert_eq!(cols.next(), Some("DateTime64(3, 'UTC')"));
    eprintln!("chdb engine version {version}");
}
