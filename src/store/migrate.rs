//! Applies the versioned migrations to a server, recording each applied version, so a re-run
//! applies only what is new.

use clickhouse::Client;

use super::read::{self, ReadError, classify_read};
use super::schema::{self, Dialect, MIGRATIONS, MIGRATIONS_TABLE, RenderOptions};
use super::tables::quote_ident;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("ClickHouse: {0}")]
    Store(#[from] ReadError),
    #[error(transparent)]
    Template(#[from] schema::TemplateError),
    #[error("migration {version} ({name}) failed: {source}\nstatement:\n{statement}")]
    Statement {
        version: u32,
        name: &'static str,
        statement: String,
        #[source]
        source: clickhouse::error::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub dialect: Dialect,
    pub applied: Vec<u32>,
    pub already_applied: Vec<u32>,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct AppliedRow {
    version: u32,
}

/// One migration rendered: version, name, statements.
pub type PlannedMigration = (u32, &'static str, Vec<String>);

/// The statements a fresh database would run, for `--dry-run`.
pub fn plan(opts: &RenderOptions) -> Result<Vec<PlannedMigration>, MigrateError> {
    MIGRATIONS
        .iter()
        .map(|(v, name, template)| Ok((*v, *name, schema::render(template, opts)?)))
        .collect()
}

/// Every migration's statements as one SQL script, for `migrate --dry-run`.
pub fn plan_sql(opts: &RenderOptions) -> Result<String, MigrateError> {
    let mut sql = String::new();
    for (version, name, statements) in plan(opts)? {
        sql.push_str(&format!(
            "-- migration {version}: {name} ({:?})\n",
            opts.dialect
        ));
        for s in statements {
            sql.push_str(&format!("{s};\n\n"));
        }
    }
    Ok(sql)
}

/// Whether `database` already has the migrations table (and so exists).
async fn bookkeeping_exists(system: &Client, database: &str) -> Result<bool, MigrateError> {
    let n: u64 = system
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
        .bind(database)
        .bind(MIGRATIONS_TABLE)
        .fetch_one()
        .await
        .map_err(|e| classify_read(&e))?;
    Ok(n > 0)
}

/// Applies missing migrations to one server. `dialect` overrides detection (tests render
/// both forms).
pub async fn migrate(
    client: &Client,
    database: &str,
    retention_days: u32,
    dialect: Option<Dialect>,
) -> Result<MigrationReport, MigrateError> {
    migrate_on(client, database, retention_days, dialect, None).await
}

/// Applies missing migrations; with `cluster`, to every server of that cluster at once, as
/// replicated tables (`super::cluster`), from the server `client` talks to.
pub async fn migrate_on(
    client: &Client,
    database: &str,
    retention_days: u32,
    dialect: Option<Dialect>,
    cluster: Option<&str>,
) -> Result<MigrationReport, MigrateError> {
    // The target database may not exist yet; bookkeeping runs in `system`, which always does.
    let system = client.clone().with_database("system");
    let dialect = match dialect {
        Some(d) => d,
        None => Dialect::for_version(read::server_version(&system).await?),
    };
    let opts = RenderOptions {
        database: database.to_string(),
        dialect,
        retention_days,
        cluster: cluster.map(str::to_string),
    };
    let exec = |sql: String| async { system.query_raw(&sql).execute().await.map_err(|e| (sql, e)) };
    // No DDL at all when the bookkeeping table exists: a user without DDL rights can then
    // run `migrate` to check that nothing is pending (docs/privileges.md).
    let bookkeeping = if bookkeeping_exists(&system, database).await? {
        Vec::new()
    } else {
        schema::bookkeeping_ddl(&opts)?
    };
    for sql in bookkeeping {
        exec(sql)
            .await
            .map_err(|(statement, source)| MigrateError::Statement {
                version: 0,
                name: "bookkeeping",
                statement,
                source,
            })?;
    }
    let applied: Vec<u32> = system
        .query_raw(&format!(
            "SELECT version FROM {}.{MIGRATIONS_TABLE} ORDER BY version",
            quote_ident(database)
        ))
        .fetch_all::<AppliedRow>()
        .await
        .map_err(|e| classify_read(&e))?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let mut report = MigrationReport {
        dialect,
        applied: Vec::new(),
        already_applied: Vec::new(),
    };
    for (version, name, statements) in plan(&opts)? {
        if applied.contains(&version) {
            report.already_applied.push(version);
            continue;
        }
        let failed = |(statement, source)| MigrateError::Statement {
            version,
            name,
            statement,
            source,
        };
        for statement in statements {
            exec(statement).await.map_err(failed)?;
        }
        let record = format!(
            "INSERT INTO {}.{MIGRATIONS_TABLE} (version, name, dialect, applied_at_ms) \
             VALUES ({version}, '{name}', '{dialect:?}', {})",
            quote_ident(database),
            chrono::Utc::now().timestamp_millis()
        );
        exec(record).await.map_err(failed)?;
        tracing::info!(version, name, ?dialect, "migration applied");
        report.applied.push(version);
    }
    Ok(report)
}
