//! Every named query on simulated data: loaded into ClickHouse 18.16 (portable DDL,
//! client-side binding) and into chdb 26.x (modern DDL, the `.sql` files run verbatim with
//! `--param`), asserting (a) both engines give identical rows and (b) the rows match what is
//! computed independently here from the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokentrail::model::{AuditMeaning, Event, SourceKind, TokenUse};
use tokentrail::query::params::{FAR_FUTURE_MS, QueryParams};
use tokentrail::query::recommend::{self, RecommendOptions};
use tokentrail::query::render::ResultSet;
use tokentrail::query::{self, Binding, QUERIES, RECOMMENDED_ALLOWLIST};
use tokentrail::simulate::{self, GroundTruth, SimConfig};
use tokentrail::store::schema::{Dialect, RenderOptions};
use tokentrail::store::tables::{self, Table};
use tokentrail::store::{migrate, seal};

use crate::common::*;

/// The simulated data set, encoded once per test binary.
struct Dataset {
    truth: GroundTruth,
    /// Encoded RowBinary per table.
    rows: Vec<(Table, Vec<u8>)>,
    /// Every allowlist change (deduplicated): (time, protected, member_type, member_path, change).
    allowlist: Vec<(i64, String, String, String, String)>,
    /// Project paths seen in job webhooks.
    job_projects: BTreeSet<String>,
}

fn record_key(i: usize) -> String {
    format!("tu-{i:08}")
}

fn dataset() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let (messages, truth) = simulate::generate(&SimConfig::small());
        let mut token_use = Vec::new();
        for (i, u) in truth.token_uses.iter().enumerate() {
            tables::token_use::encode(u, &record_key(i), 1, &mut token_use);
            // A replayed copy of every 7th record: the FINAL views must hide it.
            if i % 7 == 0 {
                tables::token_use::encode(u, &record_key(i), 2, &mut token_use);
            }
        }
        let (mut allowlist_rows, mut lifecycle_rows, mut job_rows) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut allowlist = Vec::new();
        // A member's full path by (protected project, type, id), for the changes that carry
        // none (policies updates): allowlist_state groups by id (migration 0009).
        let mut member_paths: HashMap<(String, String, Option<i64>), String> = HashMap::new();
        let mut job_projects = BTreeSet::new();
        let mut seen = HashSet::new();
        for m in &messages {
            for event in m.normalize("t").events {
                match event {
                    Event::Audit(ev) if m.source == SourceKind::AuditStream => {
                        if !seen.insert(ev.dedup_key.clone()) {
                            continue;
                        }
                        match &ev.meaning {
                            AuditMeaning::Allowlist(c) => {
                                tables::encode_allowlist_change(&ev, c, &mut allowlist_rows);
                                let change = serde_json::to_value(c.change).unwrap();
                                let member = (
                                    c.protected_project_path.clone(),
                                    c.member_type.clone().unwrap_or_default(),
                                    c.member_id,
                                );
                                let path = match &c.member_path {
                                    Some(p) => {
                                        member_paths.insert(member, p.clone());
                                        p.clone()
                                    }
                                    None => member_paths.get(&member).cloned().unwrap_or_default(),
                                };
                                allowlist.push((
                                    ev.created_at_ms,
                                    c.protected_project_path.clone(),
                                    c.member_type.clone().unwrap_or_default(),
                                    path,
                                    change.as_str().unwrap().to_string(),
                                ));
                            }
                            AuditMeaning::TokenLifecycle(tl) => {
                                tables::encode_token_lifecycle(&ev, tl, &mut lifecycle_rows)
                            }
                            _ => {}
                        }
                    }
                    Event::Webhook(wh) => {
                        for job in &wh.jobs {
                            job_projects.insert(job.project_path.clone());
                            tables::encode_job(job, wh.event_time_ms, &mut job_rows);
                        }
                    }
                    _ => {}
                }
            }
        }
        assert!(!allowlist.is_empty() && !lifecycle_rows.is_empty());
        Dataset {
            truth,
            rows: vec![
                (Table::TokenUse, token_use),
                (Table::AllowlistChanges, allowlist_rows),
                (Table::TokenLifecycle, lifecycle_rows),
                (Table::Jobs, job_rows),
            ],
            allowlist,
            job_projects,
        }
    })
}

/// Parameters for the data set: "now" one day after the middle of the simulated span, so
/// `unused-allowlist-entries --days 1` splits the entries.
fn params(data: &Dataset) -> QueryParams {
    let times: Vec<i64> = data
        .truth
        .token_uses
        .iter()
        .map(|u| u.event_time_ms)
        .collect();
    let (first, last) = (times[0], *times.last().unwrap());
    let mut p = QueryParams::new((first + last) / 2 + 86_400_000);
    p.limit = 100_000;
    p.unused_days = 1;
    p.bucket_ms = 600_000;
    p
}

async fn load_18_16(svc: &Services, data: &Dataset) -> clickhouse::Client {
    load_18_16_batches(svc, &data.rows).await
}

/// A fresh database with the portable DDL, each batch loaded by its own INSERT.
async fn load_18_16_batches(svc: &Services, batches: &[(Table, Vec<u8>)]) -> clickhouse::Client {
    let db = unique("it_queries");
    let client = clickhouse(&svc.clickhouse_url, &db);
    migrate::migrate(&client, &db, 0, None).await.unwrap();
    for (table, bytes) in batches {
        let mut insert = client.insert_formatted_with(table.insert_sql(&db));
        insert.send(bytes.clone().into()).await.unwrap();
        insert.end().await.unwrap();
    }
    client
}

/// The client's database.
async fn db_name(client: &clickhouse::Client) -> String {
    client
        .query("SELECT currentDatabase()")
        .fetch_one::<String>()
        .await
        .unwrap()
}

/// A chdb data directory with the modern DDL and the same RowBinary loaded.
/// The dataset's rows with its `token_use` rows replaced by `token_use` (one INSERT each).
fn with_token_use(data: &Dataset, token_use: Vec<Vec<u8>>) -> Vec<(Table, Vec<u8>)> {
    data.rows
        .iter()
        .filter(|(t, _)| *t != Table::TokenUse)
        .cloned()
        .chain(token_use.into_iter().map(|rows| (Table::TokenUse, rows)))
        .collect()
}

fn load_chdb(svc: &Services, data: &Dataset, dir: &Path) -> PathBuf {
    load_chdb_batches(svc, &data.rows, dir)
}

/// A chdb data directory with the modern DDL, each batch loaded by its own INSERT (so a
/// later batch lands in its own, unmerged part).
fn load_chdb_batches(svc: &Services, batches: &[(Table, Vec<u8>)], dir: &Path) -> PathBuf {
    let db_path = dir.join("chdb");
    let opts = RenderOptions {
        database: "tt".into(),
        dialect: Dialect::Modern,
        retention_days: 0,
        cluster: None,
    };
    let mut args: Vec<String> = vec!["--path".into(), db_path.display().to_string()];
    let mut sql = String::from("CREATE DATABASE tt;\n");
    for (_, _, statements) in migrate::plan(&opts).unwrap() {
        for s in statements {
            sql.push_str(&s);
            sql.push_str(";\n");
        }
    }
    args.extend(["-q".into(), sql]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    chdb(svc, &refs);
    chdb_insert(svc, &db_path, batches, dir);
    db_path
}

/// Inserts each batch into the chdb data directory by its own INSERT.
fn chdb_insert(svc: &Services, db_path: &Path, batches: &[(Table, Vec<u8>)], dir: &Path) {
    let mut args: Vec<String> = vec!["--path".into(), db_path.display().to_string()];
    for (table, bytes) in batches.iter() {
        let i = NEXT_FILE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!("{}-{i}.bin", table.name()));
        std::fs::write(&file, bytes).unwrap();
        let structure = chdb(
            svc,
            &[
                "-q",
                &format!("CREATE DATABASE tt; {}", modern_table_ddl(*table)),
                "-q",
                &format!(
                    "SELECT name, type FROM system.columns WHERE database = 'tt' AND table = '{}' \
                     AND default_kind = '' ORDER BY position",
                    table.name()
                ),
            ],
        )
        .lines()
        .map(|l| l.replacen('\t', " ", 1))
        .collect::<Vec<_>>()
        .join(", ");
        args.extend([
            "-q".into(),
            format!(
                "INSERT INTO tt.{} ({}) SELECT * FROM file('{}', 'RowBinary', '{}')",
                table.name(),
                table.columns().join(", "),
                file.display(),
                structure
            ),
        ]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    chdb(svc, &refs);
}

static NEXT_FILE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One sealing pass (`store::seal`) on the chdb data directory, with the same statements.
fn chdb_seal(svc: &Services, db_path: &Path, now_ms: i64) {
    let path = db_path.display().to_string();
    let days: Vec<seal::DayCount> = chdb(
        svc,
        &[
            "--path",
            &path,
            "-q",
            "USE tt",
            "-q",
            &seal::days_to_seal_sql(now_ms),
        ],
    )
    .lines()
    .map(|l| {
        let (day, n) = l.split_once('\t').unwrap();
        seal::DayCount {
            day_ms: day.parse().unwrap(),
            inserted: n.parse().unwrap(),
        }
    })
    .collect();
    if days.is_empty() {
        return;
    }
    let latest: i64 = chdb(
        svc,
        &["--path", &path, "-q", "USE tt", "-q", seal::sealed_at_sql()],
    )
    .trim()
    .parse()
    .unwrap();
    let mut args: Vec<String> = vec!["--path".into(), path.clone(), "-q".into(), "USE tt".into()];
    for sql in seal::pass_sql(&days, now_ms, latest) {
        args.extend(["-q".into(), sql]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    chdb(svc, &refs);
}

/// The modern CREATE TABLE of one table (to read its stored column types).
fn modern_table_ddl(table: Table) -> String {
    let opts = RenderOptions {
        database: "tt".into(),
        dialect: Dialect::Modern,
        retention_days: 0,
        cluster: None,
    };
    migrate::plan(&opts)
        .unwrap()
        .into_iter()
        .flat_map(|(_, _, s)| s)
        .find(|s| {
            s.starts_with(&format!(
                "CREATE TABLE IF NOT EXISTS `tt`.{}\n",
                table.name()
            ))
        })
        .unwrap_or_else(|| panic!("DDL for {}", table.name()))
}

/// Runs one `.sql` file verbatim on chdb with `--param` values.
fn chdb_sql(svc: &Services, db_path: &Path, file: &str, p: &QueryParams) -> ResultSet {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sql = std::fs::read_to_string(repo.join(file)).unwrap();
    let values = p.values();
    let mut args: Vec<String> = vec![
        "--path".into(),
        db_path.display().to_string(),
        "--format".into(),
        "JSONCompact".into(),
    ];
    for name in query::params::placeholder_names(&sql) {
        args.push("--param".into());
        args.push(format!("{name}={}", values[name.as_str()].to_text()));
    }
    args.extend([
        "-q".into(),
        "USE tt".into(),
        "-f".into(),
        repo.join(file).display().to_string(),
    ]);
    let out = std::process::Command::new(&svc.chdb_run)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chdb {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ResultSet::from_json_compact(&out.stdout).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn chdb_query(
    svc: &Services,
    db_path: &Path,
    name: &str,
    p: &QueryParams,
    opts: RecommendOptions,
) -> ResultSet {
    let q = query::find(name).unwrap();
    let results: Vec<ResultSet> = q
        .files
        .iter()
        .map(|(file, _)| chdb_sql(svc, db_path, file, p))
        .collect();
    if name == RECOMMENDED_ALLOWLIST {
        query::recommended_allowlist(&results[0], &results[1], opts, p.limit).unwrap()
    } else {
        results.into_iter().next().unwrap()
    }
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

fn in_window(u: &TokenUse, p: &QueryParams) -> bool {
    u.event_time_ms >= p.from_ms && u.event_time_ms < p.to_ms
}

fn expected_latest_use(truth: &GroundTruth, p: &QueryParams) -> Vec<Vec<String>> {
    let mut pairs: BTreeMap<(&str, &str), Vec<(usize, &TokenUse)>> = BTreeMap::new();
    for (i, u) in truth
        .token_uses
        .iter()
        .enumerate()
        .filter(|(_, u)| in_window(u, p))
    {
        pairs
            .entry((&u.source_project_path, &u.target_project_path))
            .or_default()
            .push((i, u));
    }
    let mut rows: Vec<(i64, Vec<String>)> = pairs
        .into_iter()
        .map(|((src, tgt), uses)| {
            let (i, last) = uses
                .iter()
                .max_by_key(|(i, u)| (u.event_time_ms, u.action.clone(), record_key(*i)))
                .unwrap();
            let _ = i;
            let job = last.job_id.map(s).unwrap_or_default();
            (
                last.event_time_ms,
                vec![
                    s(src),
                    s(tgt),
                    ts(last.event_time_ms),
                    last.action.to_string(),
                    last.actor_name.clone(),
                    s(last.actor_kind.as_str()),
                    job,
                    s(uses.len()),
                ],
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1[..2].cmp(&b.1[..2])));
    rows.into_iter().map(|r| r.1).collect()
}

fn expected_actor_kinds(truth: &GroundTruth, p: &QueryParams) -> Vec<Vec<String>> {
    let mut kinds: BTreeMap<&str, (BTreeSet<i64>, usize)> = BTreeMap::new();
    for u in truth.token_uses.iter().filter(|u| in_window(u, p)) {
        let k = kinds.entry(u.actor_kind.as_str()).or_default();
        k.0.insert(u.actor_id);
        k.1 += 1;
    }
    kinds
        .into_iter()
        .map(|(k, (actors, uses))| vec![s(k), s(actors.len()), s(uses)])
        .collect()
}

fn expected_actors(truth: &GroundTruth, p: &QueryParams) -> Vec<Vec<String>> {
    type Acc<'a> = (
        usize,
        BTreeSet<&'a str>,
        BTreeSet<&'a str>,
        i64,
        &'a TokenUse,
    );
    let mut actors: BTreeMap<(&str, i64), Acc> = BTreeMap::new();
    for u in truth.token_uses.iter().filter(|u| in_window(u, p)) {
        let a = actors
            .entry((u.actor_kind.as_str(), u.actor_id))
            .or_insert_with(|| (0, BTreeSet::new(), BTreeSet::new(), i64::MIN, u));
        a.0 += 1;
        a.1.insert(&u.source_project_path);
        a.2.insert(&u.target_project_path);
        a.3 = a.3.max(u.event_time_ms);
    }
    let mut rows: Vec<(usize, i64, Vec<String>)> = actors
        .into_iter()
        .map(|((kind, id), (uses, src, tgt, last, u))| {
            (
                uses,
                id,
                vec![
                    s(kind),
                    s(id),
                    u.actor_name.clone(),
                    u.actor_username.clone().unwrap_or_default(),
                    s(uses),
                    s(src.len()),
                    s(tgt.len()),
                    ts(last),
                ],
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|r| r.2).collect()
}

fn expected_outside_allowlist(truth: &GroundTruth, p: &QueryParams) -> Vec<Vec<String>> {
    let mut pairs: BTreeMap<(&str, &str), Vec<&TokenUse>> = BTreeMap::new();
    for u in truth
        .token_uses
        .iter()
        .filter(|u| in_window(u, p) && u.allowlisted == Some(false) && !u.same_project)
    {
        pairs
            .entry((&u.target_project_path, &u.source_project_path))
            .or_default()
            .push(u);
    }
    let mut rows: Vec<(usize, Vec<String>)> = pairs
        .into_iter()
        .map(|((tgt, src), uses)| {
            let jobs: BTreeSet<i64> = uses.iter().filter_map(|u| u.job_id).collect();
            let actions: BTreeSet<&str> = uses.iter().map(|u| u.action.as_str()).collect();
            let actors: BTreeSet<i64> = uses.iter().map(|u| u.actor_id).collect();
            let first = uses.iter().map(|u| u.event_time_ms).min().unwrap();
            let last = uses.iter().map(|u| u.event_time_ms).max().unwrap();
            (
                uses.len(),
                vec![
                    s(tgt),
                    s(src),
                    s(uses.len()),
                    s(jobs.len()),
                    actions.into_iter().collect::<Vec<_>>().join(","),
                    s(actors.len()),
                    ts(first),
                    ts(last),
                ],
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1[..2].cmp(&b.1[..2])));
    rows.into_iter().map(|r| r.1).collect()
}

fn expected_token_used_where(truth: &GroundTruth, p: &QueryParams) -> Vec<Vec<String>> {
    expected_token_used_where_by(truth, p, |u| u.job_id == Some(p.job_id))
}

fn expected_token_used_where_by(
    truth: &GroundTruth,
    p: &QueryParams,
    used_by: impl Fn(&TokenUse) -> bool,
) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&TokenUse>> = BTreeMap::new();
    for u in truth
        .token_uses
        .iter()
        .filter(|u| in_window(u, p) && used_by(u))
    {
        groups
            .entry((
                &u.source_project_path,
                &u.target_project_path,
                u.action.as_str(),
            ))
            .or_default()
            .push(u);
    }
    groups
        .into_iter()
        .map(|((src, tgt, action), uses)| {
            let jobs: BTreeSet<i64> = uses.iter().filter_map(|u| u.job_id).collect();
            vec![
                s(src),
                s(tgt),
                s(action),
                s(uses.len()),
                s(jobs.len()),
                ts(uses.iter().map(|u| u.event_time_ms).min().unwrap()),
                ts(uses.iter().map(|u| u.event_time_ms).max().unwrap()),
            ]
        })
        .collect()
}

fn expected_recommendation(
    data: &Dataset,
    p: &QueryParams,
    opts: RecommendOptions,
) -> Vec<Vec<String>> {
    let mut observed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut known: BTreeSet<String> = data.job_projects.clone();
    for u in &data.truth.token_uses {
        known.insert(u.source_project_path.clone());
        known.insert(u.target_project_path.clone());
        if in_window(u, p) && !u.same_project {
            *observed
                .entry(u.target_project_path.clone())
                .or_default()
                .entry(u.source_project_path.clone())
                .or_default() += 1;
        }
    }
    let recs = recommend::recommend_all(&observed, &known, opts);
    query::recommendation_rows(&recs, p.limit).text_rows()
}

/// Latest allowlist state per entry from the normalized changes, then the last use per entry.
fn expected_unused_entries(data: &Dataset, p: &QueryParams) -> Vec<(String, String, String)> {
    let mut latest: BTreeMap<(&str, &str, &str), (i64, &str)> = BTreeMap::new();
    for (at, protected, mtype, mpath, change) in &data.allowlist {
        if change.starts_with("inbound") {
            continue;
        }
        let e = latest
            .entry((protected, mtype, mpath))
            .or_insert((*at, change));
        if *at >= e.0 {
            *e = (*at, change);
        }
    }
    let mut out = Vec::new();
    for ((protected, mtype, mpath), (changed_at, change)) in latest {
        if !matches!(change, "project_added" | "group_added" | "policies_updated") {
            continue;
        }
        let last_use = data
            .truth
            .token_uses
            .iter()
            .filter(|u| u.target_project_path == protected && u.event_time_ms < p.now_ms)
            .filter(|u| match mtype {
                "Project" => u.source_project_path == mpath,
                _ => recommend::is_under(&u.source_project_path, mpath),
            })
            .map(|u| u.event_time_ms)
            .max()
            .unwrap_or(0);
        if last_use.max(changed_at) < p.now_ms - p.unused_days * 86_400_000 {
            out.push((s(protected), s(mtype), s(mpath)));
        }
    }
    out
}

fn first_columns(rs: &ResultSet, n: usize) -> Vec<(String, String, String)> {
    assert!(n == 3);
    rs.text_rows()
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
}

#[tokio::test]
async fn every_named_query_agrees_on_both_engines_and_with_the_ground_truth() {
    let svc = services();
    let data = dataset();
    let client = load_18_16(&svc, data).await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = load_chdb(&svc, data, dir.path());
    let mut p = params(data);
    p.job_id = data
        .truth
        .token_uses
        .iter()
        .find(|u| !u.same_project)
        .and_then(|u| u.job_id)
        .unwrap();
    let opts = RecommendOptions::default();

    let mut answers = BTreeMap::new();
    for q in QUERIES {
        let legacy = query::run(&client, Binding::ClientSide, q.name, &p, opts)
            .await
            .unwrap_or_else(|e| panic!("{} on 18.16: {e}", q.name));
        let modern = chdb_query(&svc, &db_path, q.name, &p, opts);
        assert_eq!(legacy.columns, modern.columns, "{}: columns", q.name);
        assert_eq!(
            legacy.text_rows(),
            modern.text_rows(),
            "{}: 18.16 vs chdb",
            q.name
        );
        // coverage-gaps reads `tokentrail gitlab coverage` observations, which simulated
        // traffic has none of (tests/integration/gitlab_coverage.rs covers it).
        assert!(
            !legacy.rows.is_empty() || q.name == "coverage-gaps",
            "{} returned no rows",
            q.name
        );
        answers.insert(q.name, legacy.text_rows());
    }

    let truth = &data.truth;
    assert_eq!(answers["latest-use"], expected_latest_use(truth, &p));
    assert_eq!(answers["actor-kinds"], expected_actor_kinds(truth, &p));
    assert_eq!(answers["actors"], expected_actors(truth, &p));
    assert_eq!(
        answers["outside-allowlist"],
        expected_outside_allowlist(truth, &p)
    );
    assert_eq!(
        answers["token-used-where"],
        expected_token_used_where(truth, &p)
    );
    assert_eq!(
        answers["recommended-allowlist"],
        expected_recommendation(data, &p, opts)
    );
    let unused = query::run(
        &client,
        Binding::ClientSide,
        "unused-allowlist-entries",
        &p,
        opts,
    )
    .await
    .unwrap();
    let expected_unused = expected_unused_entries(data, &p);
    assert_eq!(first_columns(&unused, 3), expected_unused);
    let all_entries = data
        .allowlist
        .iter()
        .filter(|c| !c.4.starts_with("inbound"))
        .count();
    assert!(
        expected_unused.len() < all_entries,
        "the split must keep some entries"
    );
    // Both human and bot actors are in the data, so the per-kind answer is meaningful.
    assert!(
        answers["actor-kinds"].len() >= 2,
        "{:?}",
        answers["actor-kinds"]
    );
}

/// Filters, limits and a forced consolidation, on both engines.
#[tokio::test]
async fn filters_limits_and_consolidation_agree_with_the_ground_truth() {
    let svc = services();
    let data = dataset();
    let client = load_18_16(&svc, data).await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = load_chdb(&svc, data, dir.path());
    let truth = &data.truth;

    // A project filter by path and the same filter by numeric id give the same rows.
    let busiest = truth
        .token_uses
        .iter()
        .find(|u| !u.same_project && u.target_project_id.is_some())
        .unwrap();
    let mut by_path = params(data);
    by_path.project = busiest.target_project_path.clone();
    let mut by_id = by_path.clone();
    by_id.project = busiest.target_project_id.unwrap().to_string();
    let opts = RecommendOptions::default();
    for name in [
        "latest-use",
        "actors",
        "allowlist-vs-use",
        RECOMMENDED_ALLOWLIST,
    ] {
        let a = query::run(&client, Binding::ClientSide, name, &by_path, opts)
            .await
            .unwrap();
        let b = query::run(&client, Binding::ClientSide, name, &by_id, opts)
            .await
            .unwrap();
        assert!(!a.rows.is_empty(), "{name}");
        assert_eq!(a.text_rows(), b.text_rows(), "{name}: path vs id");
        assert_eq!(
            a.text_rows(),
            chdb_query(&svc, &db_path, name, &by_id, opts).text_rows(),
            "{name}: 18.16 vs chdb"
        );
    }
    let filtered: Vec<TokenUse> = truth
        .token_uses
        .iter()
        .filter(|u| {
            u.source_project_path == by_path.project || u.target_project_path == by_path.project
        })
        .cloned()
        .collect();
    let sub = GroundTruth {
        token_uses: filtered,
        ..GroundTruth::default()
    };
    let got = query::run(&client, Binding::ClientSide, "latest-use", &by_path, opts)
        .await
        .unwrap();
    assert_eq!(got.text_rows(), expected_latest_use(&sub, &by_path));

    // A time window and a limit.
    let mut windowed = params(data);
    let mid = truth.token_uses[truth.token_uses.len() / 2].event_time_ms;
    windowed.from_ms = mid;
    windowed.limit = 5;
    let got = query::run(&client, Binding::ClientSide, "latest-use", &windowed, opts)
        .await
        .unwrap();
    let mut expected = expected_latest_use(truth, &windowed);
    expected.truncate(5);
    assert_eq!(got.text_rows(), expected);

    // Forcing GitLab's limit down to 3 entries makes the recommendation consolidate.
    let tight = RecommendOptions {
        max_entries: 3,
        max_unobserved_share: 0.5,
    };
    let p = params(data);
    let got = query::run(
        &client,
        Binding::ClientSide,
        RECOMMENDED_ALLOWLIST,
        &p,
        tight,
    )
    .await
    .unwrap();
    assert_eq!(got.text_rows(), expected_recommendation(data, &p, tight));
    assert_eq!(
        got.text_rows(),
        chdb_query(&svc, &db_path, RECOMMENDED_ALLOWLIST, &p, tight).text_rows()
    );
    assert!(
        got.rows.iter().any(|r| r[1] == "Group"),
        "a group entry was recommended"
    );
}

/// A record written before its job's webhook arrived has no pipeline id in token_use;
/// `token-used-where --pipeline` still finds it through the jobs table, on both engines.
#[tokio::test]
async fn token_used_where_finds_a_pipelines_records_that_lack_its_id_through_jobs() {
    let svc = services();
    let data = dataset();
    let truth = &data.truth;
    let pipeline = truth
        .token_uses
        .iter()
        .filter(|u| !u.same_project)
        .find_map(|u| u.pipeline_id)
        .unwrap();
    // Every other use of the pipeline loses its pipeline id, as if enriched too late.
    let mut token_use = Vec::new();
    let mut stripped = 0;
    for (i, u) in truth.token_uses.iter().enumerate() {
        let mut u = u.clone();
        if u.pipeline_id == Some(pipeline) && i % 2 == 0 {
            u.pipeline_id = None;
            stripped += 1;
        }
        tables::token_use::encode(&u, &record_key(i), 1, &mut token_use);
    }
    assert!(stripped > 0);
    let batches = with_token_use(data, vec![token_use]);
    let client = load_18_16_batches(&svc, &batches).await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = load_chdb_batches(&svc, &batches, dir.path());

    let mut p = params(data);
    p.pipeline_id = pipeline;
    let expected = expected_token_used_where_by(truth, &p, |u| u.pipeline_id == Some(pipeline));
    assert!(!expected.is_empty());
    let opts = RecommendOptions::default();
    let got = query::run(&client, Binding::ClientSide, "token-used-where", &p, opts)
        .await
        .unwrap();
    assert_eq!(got.text_rows(), expected, "18.16");
    assert_eq!(
        chdb_query(&svc, &db_path, "token-used-where", &p, opts).text_rows(),
        expected,
        "chdb"
    );
    // token_use alone no longer names the pipeline for the stripped uses.
    let direct: u64 = client
        .query(&format!(
            "SELECT count() FROM token_use WHERE pipeline_id = {pipeline}"
        ))
        .fetch_one()
        .await
        .unwrap();
    let all = truth
        .token_uses
        .iter()
        .filter(|u| u.pipeline_id == Some(pipeline))
        .count() as u64;
    assert_eq!(direct, all - stripped);
}

/// The SQL files rewritten for speed (daily rollups of 0008, PREWHERE, key-prefix sets),
/// each with its former text in `tests/integration/raw_queries/` as the oracle.
const REWRITTEN_SQL: [&str; 10] = [
    "latest-use",
    "actors",
    "actor-kinds",
    "actions-over-time",
    "allowlist-vs-use",
    "recommended-allowlist-consumers",
    "known-projects",
    "unused-allowlist-entries",
    "token-used-where",
    "outside-allowlist",
];

/// The shipped text of `schemas/queries/{name}.sql`.
fn shipped_sql(name: &str) -> (&'static str, &'static str) {
    let file = format!("schemas/queries/{name}.sql");
    QUERIES
        .iter()
        .flat_map(|q| q.files.iter())
        .find(|(f, _)| *f == file)
        .copied()
        .unwrap_or_else(|| panic!("{file} is not a named query's file"))
}

/// The query as it was before it was rewritten (FINAL or plain WHERE scans of token_use).
fn raw_file(name: &str) -> String {
    format!("tests/integration/raw_queries/{name}.sql")
}

fn raw_sql(name: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(repo.join(raw_file(name))).unwrap()
}

const DAY_MS: i64 = 86_400_000;

/// Every rewritten query gives the rows its former text gives, on 18.16 and on chdb, for
/// windows that start and end inside a day (whole days from the rollup, the edges from
/// token_use), with replayed copies of records both in the same insert and in later inserts
/// (separate unmerged parts, in token_use and in the rollups), and for project, job,
/// pipeline and "now" filters.
#[tokio::test]
async fn rollup_and_raw_paths_agree_on_partial_day_windows_with_replayed_duplicates() {
    let svc = services();
    let data = dataset();
    // The small simulation spans hours; four copies 30 h apart span five UTC days.
    let template = &data.truth.token_uses;
    let mut uses: Vec<(TokenUse, String)> = Vec::new();
    for round in 0..4i64 {
        for (i, u) in template.iter().enumerate() {
            let mut u = u.clone();
            u.event_time_ms += round * 30 * 3_600_000;
            u.job_id = u.job_id.map(|j| j + round * 1_000_000);
            u.pipeline_id = u.pipeline_id.map(|p| p + round * 1_000_000);
            uses.push((u, format!("tu-{round}-{i:06}")));
        }
    }
    let (mut first, mut replay_1, mut replay_2) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (u, key)) in uses.iter().enumerate() {
        // Late records of the rounds 1 and 3: they arrive with the last replay, after their
        // days were sealed, so a stale seal would miss them.
        let late_round = key.starts_with("tu-1-") || key.starts_with("tu-3-");
        if late_round && i % 11 == 5 {
            tables::token_use::encode(u, key, 4, &mut replay_2);
            continue;
        }
        tables::token_use::encode(u, key, 1, &mut first);
        if i % 7 == 0 {
            tables::token_use::encode(u, key, 2, &mut first);
        }
        if i % 5 == 0 {
            tables::token_use::encode(u, key, 3, &mut replay_1);
        }
        // The last replay touches the rounds 1 and 3 only: their days stay unsealed.
        if i % 3 == 0 && late_round {
            tables::token_use::encode(u, key, 4, &mut replay_2);
        }
    }
    // Sealed, replayed and sealed again (two versions of each day's summaries, in separate
    // parts), then replayed once more without sealing: some days sealed, some not.
    let now = FAR_FUTURE_MS;
    let batches = with_token_use(data, vec![first]);
    let client = load_18_16_batches(&svc, &batches).await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = load_chdb_batches(&svc, &batches, dir.path());
    seal::seal(&client, now, None).await.unwrap();
    chdb_seal(&svc, &db_path, now);
    for (replay, then_seal) in [(replay_1, true), (replay_2, false)] {
        let mut insert =
            client.insert_formatted_with(Table::TokenUse.insert_sql(&db_name(&client).await));
        insert.send(replay.clone().into()).await.unwrap();
        insert.end().await.unwrap();
        chdb_insert(&svc, &db_path, &[(Table::TokenUse, replay)], dir.path());
        if then_seal {
            seal::seal(&client, now, None).await.unwrap();
            chdb_seal(&svc, &db_path, now);
        }
    }

    let count = |sql: String| {
        let client = client.clone();
        async move { client.query(&sql).fetch_one::<u64>().await.unwrap() }
    };
    assert!(
        count("SELECT toUInt64(count() - uniqExact(record_key)) FROM token_use".into()).await > 0,
        "duplicates in token_use"
    );
    let days = count("SELECT uniqExact(day_ms) FROM token_use_day_inserts".into()).await;
    let sealed = count("SELECT count() FROM token_use_sealed_days".into()).await;
    assert!(
        sealed > 0 && sealed < days,
        "{sealed} of {days} days sealed"
    );
    assert!(
        count("SELECT uniqExact(day_ms, sealed_at_ms) - uniqExact(day_ms) FROM token_use_pairs_sealed".into()).await > 0,
        "superseded summaries are still stored"
    );

    let times: Vec<i64> = uses.iter().map(|(u, _)| u.event_time_ms).collect();
    let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let day0 = lo.div_euclid(DAY_MS) * DAY_MS;
    let windows = [
        // Partial first and last day, whole days between.
        (lo + 1, hi),
        // One whole day between two partial ones.
        (
            day0 + DAY_MS + 5 * 3_600_000,
            day0 + 3 * DAY_MS + 2 * 3_600_000 + 7,
        ),
        // Whole days only, and everything.
        (day0 + DAY_MS, day0 + 3 * DAY_MS),
        (0, FAR_FUTURE_MS),
    ];
    for &(from, to) in &windows[..2] {
        let whole = count(format!(
            "SELECT count() FROM token_use_pairs_sealed WHERE day_ms >= {from} AND day_ms + {DAY_MS} <= {to} \
             AND (day_ms, sealed_at_ms) IN (SELECT day_ms, sealed_at_ms FROM token_use_sealed_days)"
        ))
        .await;
        let edge = count(format!(
            "SELECT count() FROM token_use WHERE event_time_ms >= {from} AND event_time_ms < {to} \
             AND NOT (intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} >= {from} \
                      AND intDiv(event_time_ms, {DAY_MS}) * {DAY_MS} + {DAY_MS} <= {to})"
        ))
        .await;
        assert!(
            whole > 0 && edge > 0,
            "window {from}..{to}: {whole} rollup rows, {edge} edge rows"
        );
    }

    let busy = &uses
        .iter()
        .find(|(u, _)| {
            !u.same_project && u.target_project_id.is_some() && u.source_project_id.is_some()
        })
        .unwrap()
        .0;
    let projects = [
        String::new(),
        busy.target_project_path.clone(),
        busy.target_project_id.unwrap().to_string(),
        busy.source_project_path.clone(),
        busy.source_project_id.unwrap().to_string(),
    ];
    let mut compared = 0;
    for name in REWRITTEN_SQL {
        let (file, shipped) = shipped_sql(name);
        let mut variants: Vec<QueryParams> = Vec::new();
        for &(from, to) in &windows {
            for project in &projects {
                let mut p = QueryParams::new(hi);
                p.project = project.clone();
                p.from_ms = from;
                p.to_ms = to;
                p.limit = 1_000_000;
                match name {
                    "actions-over-time" => {
                        for bucket in [DAY_MS, 3_600_000, 2 * DAY_MS] {
                            variants.push(QueryParams {
                                bucket_ms: bucket,
                                ..p.clone()
                            });
                        }
                    }
                    // "now" inside a day, so both the rollup days and today are read.
                    "unused-allowlist-entries" => {
                        for days in [0, 1, 90] {
                            let now = if to == FAR_FUTURE_MS { hi + 1 } else { to };
                            variants.push(QueryParams {
                                now_ms: now,
                                unused_days: days,
                                ..p.clone()
                            });
                        }
                    }
                    "token-used-where" if project.is_empty() => {
                        variants.push(QueryParams {
                            job_id: busy.job_id.unwrap(),
                            ..p.clone()
                        });
                        variants.push(QueryParams {
                            pipeline_id: busy.pipeline_id.unwrap(),
                            ..p.clone()
                        });
                        variants.push(p);
                    }
                    "known-projects" => {
                        if variants.is_empty() {
                            variants.push(p);
                        }
                    }
                    _ => variants.push(p),
                }
            }
        }
        let mut rows_seen = 0;
        for (i, p) in variants.iter().enumerate() {
            let what = format!(
                "{name} {}..{} project={:?} bucket={} now={} days={} job={} pipeline={}",
                p.from_ms,
                p.to_ms,
                p.project,
                p.bucket_ms,
                p.now_ms,
                p.unused_days,
                p.job_id,
                p.pipeline_id
            );
            let values = p.values();
            let rewritten = query::execute_sql(&client, Binding::ClientSide, shipped, &values)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let raw = query::execute_sql(&client, Binding::ClientSide, &raw_sql(name), &values)
                .await
                .unwrap_or_else(|e| panic!("{what} (raw): {e}"));
            assert_eq!(rewritten.columns, raw.columns, "{what}");
            assert_eq!(
                rewritten.text_rows(),
                raw.text_rows(),
                "{what}: rewritten vs raw on 18.16"
            );
            rows_seen += rewritten.rows.len();
            // chdb runs a process per query: the partial-day window (it reads every part
            // of the rewritten queries), unfiltered and with some of the filters.
            if p.from_ms == windows[0].0 && i % 3 == 0 {
                let modern = chdb_sql(&svc, &db_path, file, p);
                let modern_raw = chdb_sql(&svc, &db_path, &raw_file(name), p);
                assert_eq!(
                    modern.text_rows(),
                    modern_raw.text_rows(),
                    "{what}: rewritten vs raw on chdb"
                );
                assert_eq!(
                    rewritten.text_rows(),
                    modern.text_rows(),
                    "{what}: 18.16 vs chdb"
                );
            }
            compared += 1;
        }
        assert!(rows_seen > 0, "{name}: no rows in any variant");
    }
    assert!(compared >= 150, "{compared}");
}
