//! The cluster form of the migrations (`clickhouse.cluster`): every statement of a rendered
//! migration rewritten so that it runs on every server of the named cluster (`ON CLUSTER`)
//! and every table is a replicated one, with its ZooKeeper path under
//! `/clickhouse/tables/{shard}/<database>/<table>` and its replica name from the server's
//! `{replica}` macro.
//!
//! Only one shard is supported (ARCHITECTURE.md, "Clusters"): each replica holds every row,
//! so each server answers every named query from its own tables. Inserts and the backfills
//! of a migration run on the server `migrate` talks to and replicate from there; the
//! materialized views run on the server that takes an insert, and replicas fetch the parts
//! they wrote, so a view never counts a row twice.

/// A statement kind the cluster form does not know; a new migration that uses one fails
/// `every_migration_has_a_cluster_form` until it is handled here.
#[derive(Debug, thiserror::Error)]
#[error("no cluster form for the statement: {0}")]
pub struct UnknownStatement(pub String);

/// The engines that have a replicated twin (`Replicated` + name).
const ENGINES: &[&str] = &[
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "MergeTree",
];

/// The statement heads whose object name is followed by `ON CLUSTER`.
const HEADS: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS ",
    "CREATE TABLE IF NOT EXISTS ",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS ",
    "CREATE VIEW IF NOT EXISTS ",
    "DROP TABLE IF EXISTS ",
];

/// The cluster form of one statement. `database` is the unquoted name; the statement names
/// it quoted (`super::tables::quote_ident`).
pub fn cluster_form(
    statement: &str,
    database: &str,
    cluster: &str,
) -> Result<String, UnknownStatement> {
    if statement.starts_with("INSERT INTO ") {
        return Ok(statement.to_string());
    }
    let head = HEADS
        .iter()
        .find(|h| statement.starts_with(**h))
        .ok_or_else(|| UnknownStatement(first_line(statement)))?;
    let rest = &statement[head.len()..];
    let name_len = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(name_len);
    let on_cluster = format!(
        "{head}{name} ON CLUSTER {}{tail}",
        super::tables::quote_ident(cluster)
    );
    if !head.starts_with("CREATE TABLE") {
        return Ok(on_cluster);
    }
    let table = name.rsplit('.').next().unwrap_or(name).trim_matches('`');
    replicated_engine(&on_cluster, database, table)
        .ok_or_else(|| UnknownStatement(first_line(statement)))
}

/// `ENGINE = XMergeTree(args)` → `ENGINE = ReplicatedXMergeTree('<path>', '{replica}', args)`.
fn replicated_engine(statement: &str, database: &str, table: &str) -> Option<String> {
    const KEY: &str = "ENGINE = ";
    let at = statement.find(KEY)? + KEY.len();
    let engine = ENGINES.iter().find(|e| statement[at..].starts_with(**e))?;
    let open = at + engine.len();
    if !statement[open..].starts_with('(') {
        return None;
    }
    let close = open + statement[open..].find(')')?;
    let args = statement[open + 1..close].trim();
    let path = format!("/clickhouse/tables/{{shard}}/{database}/{table}");
    let replicated_args = if args.is_empty() {
        format!("'{}', '{{replica}}'", escape(&path))
    } else {
        format!("'{}', '{{replica}}', {args}", escape(&path))
    };
    Some(format!(
        "{}Replicated{engine}({replicated_args}){}",
        &statement[..at],
        &statement[close + 1..]
    ))
}

fn escape(literal: &str) -> String {
    literal.replace('\\', "\\\\").replace('\'', "\\'")
}

fn first_line(statement: &str) -> String {
    statement.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{Dialect, MIGRATIONS, RenderOptions, render};

    #[test]
    fn a_table_becomes_replicated_on_the_cluster() {
        let sql = "CREATE TABLE IF NOT EXISTS `tt`.token_use\n(\n    a Int64\n)\n\
                   ENGINE = ReplacingMergeTree(ingested_at_ms)\nORDER BY a";
        let out = cluster_form(sql, "tt", "prod").unwrap();
        assert_eq!(
            out,
            "CREATE TABLE IF NOT EXISTS `tt`.token_use ON CLUSTER `prod`\n(\n    a Int64\n)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tt/token_use', \
             '{replica}', ingested_at_ms)\nORDER BY a"
        );
        let plain =
            "CREATE TABLE IF NOT EXISTS `tt`.seals (a Int64) ENGINE = MergeTree() ORDER BY a";
        assert!(
            cluster_form(plain, "tt", "prod")
                .unwrap()
                .contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tt/seals', '{replica}') ORDER BY a")
        );
    }

    #[test]
    fn views_databases_and_drops_run_on_the_cluster_and_inserts_do_not() {
        for (sql, want) in [
            (
                "CREATE DATABASE IF NOT EXISTS `tt`",
                "CREATE DATABASE IF NOT EXISTS `tt` ON CLUSTER `c`",
            ),
            (
                "CREATE VIEW IF NOT EXISTS `tt`.v AS SELECT 1",
                "CREATE VIEW IF NOT EXISTS `tt`.v ON CLUSTER `c` AS SELECT 1",
            ),
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS `tt`.mv\nTO `tt`.t\nAS SELECT 1",
                "CREATE MATERIALIZED VIEW IF NOT EXISTS `tt`.mv ON CLUSTER `c`\nTO `tt`.t\nAS SELECT 1",
            ),
            (
                "DROP TABLE IF EXISTS `tt`.old",
                "DROP TABLE IF EXISTS `tt`.old ON CLUSTER `c`",
            ),
            ("INSERT INTO `tt`.t SELECT 1", "INSERT INTO `tt`.t SELECT 1"),
        ] {
            assert_eq!(cluster_form(sql, "tt", "c").unwrap(), want);
        }
    }

    #[test]
    fn an_unknown_statement_or_engine_is_an_error_not_a_single_server_table() {
        assert!(cluster_form("ALTER TABLE `tt`.t ADD COLUMN x Int8", "tt", "c").is_err());
        assert!(
            cluster_form(
                "CREATE TABLE IF NOT EXISTS `tt`.t (a Int8) ENGINE = Log",
                "tt",
                "c"
            )
            .is_err()
        );
    }

    #[test]
    fn every_migration_has_a_cluster_form() {
        for dialect in [Dialect::Portable, Dialect::Modern] {
            let opts = RenderOptions {
                database: "tt".into(),
                dialect,
                retention_days: 30,
                cluster: Some("c".into()),
            };
            for (version, name, template) in MIGRATIONS {
                let statements = render(template, &opts)
                    .unwrap_or_else(|e| panic!("{version} {name} {dialect:?}: {e}"));
                for s in statements {
                    if s.starts_with("INSERT INTO ") {
                        continue;
                    }
                    assert!(s.contains(" ON CLUSTER `c`"), "{name}: {s}");
                    if s.starts_with("CREATE TABLE") {
                        assert!(s.contains("ENGINE = Replicated"), "{name}: {s}");
                    }
                }
            }
        }
    }
}
