//! Versioned migrations from `schemas/clickhouse/*.sql`, rendered for the server they run on.
//!
//! The SQL files are templates. Placeholders pick modern column types and storage features
//! only on servers that have them (ClickHouse ≥ 23.8, the production target) and a portable
//! form elsewhere (the 18.16 server the network tests use). Inserted columns never change
//! between the two forms: version-dependent types are MATERIALIZED from, or wrap, the stored
//! portable columns, so one RowBinary encoding loads into both.

use std::fmt;

use super::tables::TimePrecision;

/// Lists migration files of `schemas/clickhouse/` (`NNNN_name`, without `.sql`): version and
/// name come from the file name, so nothing is numbered twice.
macro_rules! migrations {
    ($($file:literal),* $(,)?) => {
        &[$((
            version_of($file),
            name_of($file),
            include_str!(concat!("../../schemas/clickhouse/", $file, ".sql")),
        )),*]
    };
}

/// `NNNN` of `NNNN_name`.
const fn version_of(file: &str) -> u32 {
    let b = file.as_bytes();
    let mut version = 0;
    let mut i = 0;
    while i < 4 {
        assert!(b[i].is_ascii_digit(), "migration files are named NNNN_name");
        version = version * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    assert!(b[4] == b'_', "migration files are named NNNN_name");
    version
}

/// `name` of `NNNN_name`.
const fn name_of(file: &str) -> &str {
    file.split_at(5).1
}

/// (version, name, template) in apply order; `migrations_are_numbered_in_order_and_all_listed`
/// checks the files against the list.
pub const MIGRATIONS: &[(u32, &str, &str)] = migrations![
    "0001_audit_events",
    "0002_webhook_events",
    "0003_jobs",
    "0004_token_use",
    "0005_allowlist_and_lifecycle",
    "0006_allowlist_state",
    "0007_alerts",
    "0008_token_use_rollup",
    "0009_allowlist_state_by_member_id",
    "0010_allowlist_snapshots",
    "0011_token_use_sealed_days",
];

/// The migrations bookkeeping table.
pub const MIGRATIONS_TABLE: &str = "tokentrail_migrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// Parses `SELECT version()` output such as `18.16.1` or `26.9.1.1`.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion { major, minor })
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which form of the DDL to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// No DateTime64, CODEC or TTL; LowCardinality left out (experimental on 18.x).
    Portable,
    /// ClickHouse ≥ 23.8: DateTime64(3, 'UTC'), LowCardinality, codecs, TTL and
    /// `non_replicated_deduplication_window` (which makes `insert_deduplication_token` work).
    Modern,
}

impl Dialect {
    pub const MODERN_SINCE: ServerVersion = ServerVersion {
        major: 23,
        minor: 8,
    };

    pub fn for_version(v: ServerVersion) -> Dialect {
        if v >= Self::MODERN_SINCE {
            Dialect::Modern
        } else {
            Dialect::Portable
        }
    }

    /// How finely `ts_type` columns hold time: what the writer's sort keys compare
    /// (`tables::sort_key`).
    pub fn timestamp_precision(self) -> TimePrecision {
        match self {
            Dialect::Portable => TimePrecision::Seconds,
            Dialect::Modern => TimePrecision::Millis,
        }
    }

    /// Whether inserts may carry `insert_deduplication_token` (tables are created with a
    /// deduplication window only in the modern form).
    pub fn supports_insert_dedup_token(self) -> bool {
        self == Dialect::Modern
    }
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub database: String,
    pub dialect: Dialect,
    /// 0 keeps rows forever; otherwise a TTL on modern servers.
    pub retention_days: u32,
    /// `clickhouse.cluster`: replicated tables created `ON CLUSTER` (`super::cluster`).
    pub cluster: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("migration template: unknown placeholder {{{{{0}}}}}")]
    Placeholder(String),
    #[error(transparent)]
    Cluster(#[from] super::cluster::UnknownStatement),
}

/// Renders one template into executable statements.
pub fn render(template: &str, opts: &RenderOptions) -> Result<Vec<String>, TemplateError> {
    let modern = opts.dialect == Dialect::Modern;
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| TemplateError::Placeholder("unterminated".into()))?
            + start;
        let token = &rest[start + 2..end];
        let (name, arg) = token.split_once(':').unwrap_or((token, ""));
        let replacement = match (name, modern) {
            ("db", _) => super::tables::quote_ident(&opts.database),
            ("lc_string", true) => "LowCardinality(String)".into(),
            ("lc_string", false) => "String".into(),
            ("codec_zstd", true) => " CODEC(ZSTD(3))".into(),
            ("codec_delta", true) => " CODEC(Delta, ZSTD(3))".into(),
            ("codec_zstd" | "codec_delta", false) => String::new(),
            ("ts_type", true) => "DateTime64(3, 'UTC')".into(),
            ("ts_type", false) => "DateTime".into(),
            ("ts_from_ms", true) => format!("fromUnixTimestamp64Milli({arg}, 'UTC')"),
            ("ts_from_ms", false) => format!("toDateTime(intDiv({arg}, 1000))"),
            ("ttl", true) if opts.retention_days > 0 => {
                format!(
                    "TTL toDateTime({arg}) + INTERVAL {} DAY",
                    opts.retention_days
                )
            }
            ("ttl", _) => String::new(),
            ("settings", true) => {
                "SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000"
                    .into()
            }
            ("settings", false) => "SETTINGS index_granularity = 8192".into(),
            _ => return Err(TemplateError::Placeholder(token.to_string())),
        };
        out.push_str(&replacement);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    placed(split_statements(&out), opts)
}

/// The statements as they run: unchanged on one server, in their cluster form on a cluster.
fn placed(statements: Vec<String>, opts: &RenderOptions) -> Result<Vec<String>, TemplateError> {
    match &opts.cluster {
        None => Ok(statements),
        Some(cluster) => statements
            .iter()
            .map(|s| Ok(super::cluster::cluster_form(s, &opts.database, cluster)?))
            .collect(),
    }
}

/// Splits on `;` at the end of a line, dropping comment-only and blank statements.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim().is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            push_statement(&mut statements, &current);
            current.clear();
        }
    }
    push_statement(&mut statements, &current);
    statements
}

fn push_statement(statements: &mut Vec<String>, text: &str) {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = body.trim().trim_end_matches(';').trim();
    if !body.is_empty() {
        statements.push(body.to_string());
    }
}

/// The DDL of the database and the bookkeeping table itself (portable on every version),
/// in the cluster form when `opts.cluster` is set.
pub fn bookkeeping_ddl(opts: &RenderOptions) -> Result<Vec<String>, TemplateError> {
    let db = super::tables::quote_ident(&opts.database);
    let statements = vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (version UInt32, name String, \
             dialect String, applied_at_ms Int64) ENGINE = MergeTree() ORDER BY version"
        ),
    ];
    placed(statements, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_all_listed() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as u32).collect::<Vec<_>>());
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/clickhouse");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, name, _)| format!("{v:04}_{name}.sql"))
            .collect();
        assert_eq!(
            files, listed,
            "every schemas/clickhouse/*.sql is a listed migration"
        );
    }

    fn opts(dialect: Dialect, retention_days: u32) -> RenderOptions {
        RenderOptions {
            database: "tt".into(),
            dialect,
            retention_days,
            cluster: None,
        }
    }

    #[test]
    fn parses_server_versions() {
        assert_eq!(
            ServerVersion::parse("18.16.1\n"),
            Some(ServerVersion {
                major: 18,
                minor: 16
            })
        );
        assert_eq!(
            Dialect::for_version(ServerVersion::parse("26.9.1.1").unwrap()),
            Dialect::Modern
        );
        assert_eq!(
            Dialect::for_version(ServerVersion::parse("23.3.1").unwrap()),
            Dialect::Portable
        );
        assert_eq!(ServerVersion::parse("garbage"), None);
    }

    #[test]
    fn every_migration_renders_in_both_dialects() {
        for (version, name, template) in MIGRATIONS {
            for dialect in [Dialect::Portable, Dialect::Modern] {
                let stmts = render(template, &opts(dialect, 90))
                    .unwrap_or_else(|e| panic!("{version} {name}: {e}"));
                assert!(!stmts.is_empty(), "{name}");
                for s in &stmts {
                    assert!(!s.contains("{{"), "{name}: {s}");
                    let modern_only = ["LowCardinality", "CODEC", "DateTime64", "TTL"];
                    if dialect == Dialect::Portable {
                        for word in modern_only {
                            assert!(!s.contains(word), "{name} portable has {word}: {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn modern_dialect_uses_modern_features_and_retention() {
        let stmts = render(MIGRATIONS[0].2, &opts(Dialect::Modern, 30)).unwrap();
        let create = &stmts[0];
        assert!(create.contains("DateTime64(3, 'UTC')"));
        assert!(create.contains("LowCardinality(String)"));
        assert!(create.contains("INTERVAL 30 DAY"));
        assert!(create.contains("non_replicated_deduplication_window"));
        let forever = render(MIGRATIONS[0].2, &opts(Dialect::Modern, 0)).unwrap();
        assert!(!forever[0].contains("TTL"));
    }

    #[test]
    fn the_timestamp_precision_is_the_rendered_time_types() {
        for (dialect, precision) in [
            (Dialect::Portable, TimePrecision::Seconds),
            (Dialect::Modern, TimePrecision::Millis),
        ] {
            let rendered = render("SELECT {{ts_type}}", &opts(dialect, 0)).unwrap();
            assert_eq!(dialect.timestamp_precision(), precision);
            assert_eq!(
                rendered[0].contains("DateTime64(3"),
                precision == TimePrecision::Millis,
                "{rendered:?}"
            );
        }
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        assert!(render("SELECT {{nope}}", &opts(Dialect::Modern, 0)).is_err());
    }
}
