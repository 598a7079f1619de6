//! The auditor's named queries: `tokentrail query <name>`.
//!
//! Every query is a documented file in `schemas/queries/` (the one source of truth, also
//! runnable in clickhouse-client, chdb or a BI tool) compiled in with `include_str!`.
//! [`execute_sql`] binds its `{name:Type}` placeholders server-side where the server supports
//! query parameters and client-side (escaped by the clickhouse crate) on older servers; see
//! [`params`]. `recommended-allowlist` runs two such files and finishes in Rust
//! ([`recommend`]).

pub mod params;
pub mod recommend;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Client;
use serde_json::{Value, json};

use crate::store::schema::ServerVersion;
use params::{ParamError, ParamValue, QueryParams};
use recommend::RecommendOptions;
use render::ResultSet;

/// One named query: its question, and its SQL files (name, text).
#[derive(Debug)]
pub struct NamedQuery {
    pub name: &'static str,
    pub question: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! sql_file {
    ($name:literal) => {
        (
            concat!("schemas/queries/", $name, ".sql"),
            include_str!(concat!("../../schemas/queries/", $name, ".sql")),
        )
    };
}

pub const RECOMMENDED_ALLOWLIST: &str = "recommended-allowlist";
pub const TOKEN_USED_WHERE: &str = "token-used-where";

pub const QUERIES: &[NamedQuery] = &[
    NamedQuery {
        name: "latest-use",
        question: "The most recent job-token use per (source -> target), with the action",
        files: &[sql_file!("latest-use")],
    },
    NamedQuery {
        name: TOKEN_USED_WHERE,
        question: "Where a given job's, pipeline's or project's token was used (--job, --pipeline, --project)",
        files: &[sql_file!("token-used-where")],
    },
    NamedQuery {
        name: "actors",
        question: "Who triggered the jobs whose tokens were used, person or bot",
        files: &[sql_file!("actors")],
    },
    NamedQuery {
        name: "actor-kinds",
        question: "Token uses and distinct actors per actor kind (human, project_bot, ...)",
        files: &[sql_file!("actor-kinds")],
    },
    NamedQuery {
        name: "actions-over-time",
        question: "Which actions a source performed in a target, over time (--bucket)",
        files: &[sql_file!("actions-over-time")],
    },
    NamedQuery {
        name: "changes",
        question: "Who created, revoked or changed a token or an allowlist, and when",
        files: &[sql_file!("changes")],
    },
    NamedQuery {
        name: "allowlist-vs-use",
        question: "Every project's allowlist (inbound enabled or disabled) against its actual consumers",
        files: &[sql_file!("allowlist-vs-use")],
    },
    NamedQuery {
        name: "outside-allowlist",
        question: "Access from sources that were not on the target's allowlist",
        files: &[sql_file!("outside-allowlist")],
    },
    NamedQuery {
        name: "unused-allowlist-entries",
        question: "Allowlist entries neither used nor changed for N days (--days)",
        files: &[sql_file!("unused-allowlist-entries")],
    },
    NamedQuery {
        name: "coverage-gaps",
        question: "Uses GitLab's authentication log saw that tokentrail has no record of (after tokentrail gitlab coverage)",
        files: &[sql_file!("coverage-gaps")],
    },
    NamedQuery {
        name: RECOMMENDED_ALLOWLIST,
        question: "A recommended minimal allowlist per protected project, from observed use",
        files: &[
            sql_file!("recommended-allowlist-consumers"),
            sql_file!("known-projects"),
        ],
    },
];

pub fn find(name: &str) -> Option<&'static NamedQuery> {
    QUERIES.iter().find(|q| q.name == name)
}

/// How placeholders reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// `{name:Type}` sent as-is with `param_name=value` (the server checks the types).
    ServerSide,
    /// `{name:Type}` rewritten to `?` and bound by the clickhouse crate as escaped literals.
    ClientSide,
}

impl Binding {
    /// Query parameters are used from the production baseline (23.8) on; older servers get
    /// client-side binding (18.16 rejects `param_*` settings).
    pub fn for_version(v: ServerVersion) -> Binding {
        if v >= crate::store::schema::Dialect::MODERN_SINCE {
            Binding::ServerSide
        } else {
            Binding::ClientSide
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unknown query {0:?}; `tokentrail query list` shows the names")]
    Unknown(String),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(transparent)]
    Parse(#[from] render::ParseError),
    #[error("unexpected result shape from {0}")]
    Shape(&'static str),
}

/// Runs one SQL file's text with `values` bound, returning its rows.
pub async fn execute_sql(
    client: &Client,
    binding: Binding,
    sql: &str,
    values: &BTreeMap<&'static str, ParamValue>,
) -> Result<ResultSet, QueryError> {
    let query = match binding {
        Binding::ClientSide => {
            let (text, bound) = params::to_client_side(sql, values)?;
            bound.into_iter().fold(client.query(&text), |q, v| match v {
                ParamValue::Str(s) => q.bind(s),
                ParamValue::I64(n) => q.bind(n),
                ParamValue::U64(n) => q.bind(n),
            })
        }
        Binding::ServerSide => {
            let (text, named) = params::server_side(sql, values)?;
            named
                .into_iter()
                .fold(client.query(&text), |q, (name, v)| match v {
                    ParamValue::Str(s) => q.param(&name, s),
                    ParamValue::I64(n) => q.param(&name, n),
                    ParamValue::U64(n) => q.param(&name, n),
                })
        }
    };
    // No settings: a `readonly=1` user may not change any. Quoted 64-bit integers (the
    // server default) are read back as numbers by `ResultSet::from_json_compact`.
    let bytes = query.fetch_bytes("JSONCompact")?.collect().await?;
    Ok(ResultSet::from_json_compact(&bytes)?)
}

/// Runs a named query. `recommend` is used by `recommended-allowlist` only.
pub async fn run(
    client: &Client,
    binding: Binding,
    name: &str,
    params: &QueryParams,
    recommend: RecommendOptions,
) -> Result<ResultSet, QueryError> {
    let q = find(name).ok_or_else(|| QueryError::Unknown(name.to_string()))?;
    let values = params.values();
    let mut results = Vec::with_capacity(q.files.len());
    for (_, sql) in q.files {
        results.push(execute_sql(client, binding, sql, &values).await?);
    }
    if q.name == RECOMMENDED_ALLOWLIST {
        let [consumers, known] = <[ResultSet; 2]>::try_from(results)
            .map_err(|_| QueryError::Shape(RECOMMENDED_ALLOWLIST))?;
        recommended_allowlist(&consumers, &known, recommend, params.limit)
    } else {
        results.pop().ok_or(QueryError::Shape("query"))
    }
}

/// Finishes `recommended-allowlist` from its two SQL results (consumers, known projects).
pub fn recommended_allowlist(
    consumers: &ResultSet,
    known: &ResultSet,
    opts: RecommendOptions,
    limit: u64,
) -> Result<ResultSet, QueryError> {
    Ok(recommendation_rows(
        &recommendations(consumers, known, opts)?,
        limit,
    ))
}

/// The recommendations from `recommended-allowlist`'s two SQL results (consumers, known
/// projects), one per protected project (also used by `tokentrail report`).
pub fn recommendations(
    consumers: &ResultSet,
    known: &ResultSet,
    opts: RecommendOptions,
) -> Result<Vec<recommend::Recommendation>, QueryError> {
    let shape = || QueryError::Shape(RECOMMENDED_ALLOWLIST);
    let mut observed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &consumers.rows {
        let (Some(project), Some(consumer), Some(uses)) =
            (row[0].as_str(), row[1].as_str(), row[2].as_u64())
        else {
            return Err(shape());
        };
        observed
            .entry(project.to_string())
            .or_default()
            .insert(consumer.to_string(), uses);
    }
    let known: BTreeSet<String> = known
        .rows
        .iter()
        .map(|r| r[0].as_str().map(str::to_string).ok_or_else(shape))
        .collect::<Result<_, _>>()?;
    Ok(recommend::recommend_all(&observed, &known, opts))
}

/// The recommendation as result rows (one per entry), at most `limit` rows.
pub fn recommendation_rows(recs: &[recommend::Recommendation], limit: u64) -> ResultSet {
    let columns = [
        "project",
        "entry_type",
        "entry_path",
        "consumers",
        "unobserved_admitted",
        "uses",
        "entries_total",
        "over_limit",
    ];
    let rows = recs
        .iter()
        .flat_map(|r| {
            r.entries.iter().map(move |e| {
                vec![
                    json!(r.project),
                    json!(e.kind.as_str()),
                    json!(e.path),
                    json!(e.consumers),
                    json!(e.unobserved),
                    json!(e.uses),
                    json!(r.entries.len()),
                    Value::from(u8::from(r.over_limit)),
                ]
            })
        })
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    ResultSet {
        columns: columns.map(String::from).to_vec(),
        rows,
    }
}
