//! The SIEM feed against real receivers: Debian's rsyslog over TCP, an HEC-speaking HTTP
//! server, and backfill / follow from the real ClickHouse.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use tokentrail::config::{Secret, Settings};
use tokentrail::siem::config::SinkKind;
use tokentrail::siem::delivery::SinkError;
use tokentrail::siem::encode::{Format, encode};
use tokentrail::siem::export::Exporter;
use tokentrail::siem::sink::Sink;
use tokentrail::siem::syslog::{SyslogHeader, format_message};
use tokentrail::store::migrate;
use tokentrail::store::tables::{self, Table};
use tokentrail::telemetry::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::common::*;
use crate::siem_fixtures;

// ---------------------------------------------------------------------------------------
// rsyslog

/// A foreground rsyslogd on a loopback port, writing each received message (`%rawmsg%`)
/// as one line to `output`. Killed on drop.
struct Rsyslog {
    child: std::process::Child,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslogd() -> PathBuf {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("rsyslogd not found: install Debian's rsyslog (deploy/local/prerequisites does)");
}

fn start_rsyslog(port: u16) -> Rsyslog {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let output = dir.path().join("received.log");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="siem") {{
  action(type="omfile" file="{out}" template="raw" flushOnTXEnd="on" asyncWriting="off")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="siem")
"#,
            work = work.display(),
            out = output.display(),
        ),
    )
    .unwrap();
    let child = std::process::Command::new(rsyslogd())
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("starting rsyslogd");
    Rsyslog {
        child,
        output,
        _dir: dir,
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_framed_rfc5424_messages_over_tcp() {
    let port = free_port();
    let mut settings = Settings::default();
    settings.siem.syslog.address = format!("127.0.0.1:{port}");
    settings.siem.syslog.hostname = "siem-it".into();
    settings.siem.retry.initial_backoff_ms = 100;
    settings.siem.retry.max_backoff_ms = 500;
    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let mut sink = Sink::new(
        &settings.kafka,
        &settings.siem,
        SinkKind::Syslog,
        Format::Cef,
        metrics.clone(),
        cancel,
    )
    .unwrap();

    // CEF and OCSF payloads for every record kind: escaped text, JSON, non-ASCII.
    let mut batch = Vec::new();
    for (_, record) in siem_fixtures::all() {
        batch.push(encode(Format::Cef, &record));
        batch.push(encode(Format::Ocsf, &record));
    }

    // The receiver starts after the first attempt: delivery must retry until it is up.
    let delivery = tokio::spawn({
        let batch = batch.clone();
        async move {
            sink.deliver(&batch).await.unwrap();
            sink
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rsyslog = start_rsyslog(port);
    let mut sink = tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .expect("delivered once rsyslog listens")
        .unwrap();
    assert!(metrics.siem_failures.with_label_values(&["syslog"]).get() >= 1);

    // A second batch on the same connection.
    let second = vec![encode(Format::Ecs, &siem_fixtures::alert())];
    sink.deliver(&second).await.unwrap();
    batch.extend(second);

    let header = SyslogHeader {
        facility: 10,
        hostname: "siem-it".into(),
        app_name: "tokentrail".into(),
        proc_id: std::process::id().to_string(),
    };
    let expected: Vec<String> = batch.iter().map(|m| format_message(&header, m)).collect();
    let want = expected.len();
    let received = eventually(Duration::from_secs(60), "rsyslog output", || {
        let lines = read_lines(&rsyslog.output);
        async move { (lines.len() >= want).then_some(lines) }
    })
    .await;
    assert_eq!(received, expected);
    assert!(received[0].starts_with("<86>1 2025-01-02T03:04:05.123Z siem-it tokentrail "));
    assert_eq!(
        metrics.siem_delivered.with_label_values(&["syslog"]).get(),
        batch.len() as u64
    );
}

// ---------------------------------------------------------------------------------------
// Splunk HEC

const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";

/// A minimal HEC endpoint: token check, batch bodies recorded, `{"text":"Success","code":0}`;
/// the first `busy` requests get 503 with `Retry-After: 1`.
#[derive(Clone, Default)]
struct HecServer {
    bodies: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
}

async fn hec_handler(
    State(s): State<HecServer>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Splunk {HEC_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"text":"Invalid token","code":4}"#,
        )
            .into_response();
    }
    if s.busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            r#"{"text":"Server is busy","code":9}"#,
        )
            .into_response();
    }
    s.bodies.lock().unwrap().push(body);
    (StatusCode::OK, r#"{"text":"Success","code":0}"#).into_response()
}

impl HecServer {
    async fn start(busy: usize) -> (HecServer, SocketAddr) {
        let server = HecServer::default();
        server.busy.store(busy, Ordering::SeqCst);
        let app = axum::Router::new()
            .route(
                "/services/collector/event",
                axum::routing::post(hec_handler),
            )
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, addr)
    }

    /// Every event received, in order (bodies are concatenated JSON envelopes).
    fn events(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                serde_json::Deserializer::from_str(b)
                    .into_iter::<Value>()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn batches(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

fn hec_settings(mut settings: Settings, addr: SocketAddr, token: &str) -> Settings {
    settings.siem.hec.url = format!("http://{addr}/services/collector/event");
    settings.siem.hec.token = Secret::new(token);
    settings.siem.hec.index = "gitlab".into();
    settings.siem.retry.initial_backoff_ms = 50;
    settings.siem.retry.max_backoff_ms = 2_000;
    settings.siem.validate_sink(SinkKind::Hec).unwrap();
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_receives_batches_and_retries_after_503() {
    let (server, addr) = HecServer::start(1).await;
    let settings = hec_settings(Settings::default(), addr, HEC_TOKEN);
    let metrics = Metrics::new();
    let mut sink = Sink::new(
        &settings.kafka,
        &settings.siem,
        SinkKind::Hec,
        Format::Ocsf,
        metrics.clone(),
        CancellationToken::new(),
    )
    .unwrap();
    let batch: Vec<_> = siem_fixtures::all()
        .iter()
        .map(|(_, r)| encode(Format::Ocsf, r))
        .collect();
    let started = std::time::Instant::now();
    sink.deliver(&batch).await.unwrap();
    // The 503 carried Retry-After: 1, which is honored.
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        2,
        "one 503, one success"
    );
    assert_eq!(server.batches(), 1, "all events in one POST body");
    let events = server.events();
    assert_eq!(events.len(), batch.len());
    for (ev, sent) in events.iter().zip(&batch) {
        assert_eq!(ev["sourcetype"], "tokentrail:ocsf");
        assert_eq!(ev["index"], "gitlab");
        assert_eq!(ev["source"], "tokentrail");
        assert_eq!(ev["time"].as_f64().unwrap(), sent.time_ms as f64 / 1000.0);
        assert_eq!(
            ev["event"],
            serde_json::from_str::<Value>(&sent.payload).unwrap()
        );
    }
    assert_eq!(
        metrics.siem_delivered.with_label_values(&["hec"]).get(),
        batch.len() as u64
    );
    assert_eq!(metrics.siem_failures.with_label_values(&["hec"]).get(), 1);

    // CEF lines travel as JSON strings.
    let cef = vec![encode(Format::Cef, &siem_fixtures::lifecycle())];
    let mut sink = Sink::new(
        &settings.kafka,
        &settings.siem,
        SinkKind::Hec,
        Format::Cef,
        metrics.clone(),
        CancellationToken::new(),
    )
    .unwrap();
    sink.deliver(&cef).await.unwrap();
    let last = server.events().pop().unwrap();
    assert_eq!(last["event"], Value::String(cef[0].payload.clone()));
    assert_eq!(last["sourcetype"], "tokentrail:cef");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_with_a_wrong_token_stops_instead_of_dropping() {
    let (server, addr) = HecServer::start(0).await;
    let settings = hec_settings(Settings::default(), addr, "wrong");
    let mut sink = Sink::new(
        &settings.kafka,
        &settings.siem,
        SinkKind::Hec,
        Format::Ecs,
        Metrics::new(),
        CancellationToken::new(),
    )
    .unwrap();
    let err = sink
        .deliver(&[encode(Format::Ecs, &siem_fixtures::alert())])
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Fatal { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(server.batches(), 0);
}

// ---------------------------------------------------------------------------------------
// ClickHouse → SIEM

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

async fn insert_token_use(
    client: &clickhouse::Client,
    db: &str,
    key: &str,
    event_time_ms: i64,
    ingested_at_ms: i64,
) {
    let tokentrail::siem::record::SiemRecord::TokenUse(mut rec) =
        siem_fixtures::token_use_matched()
    else {
        unreachable!()
    };
    rec.token_use.event_time_ms = event_time_ms;
    let mut row = Vec::new();
    tables::token_use::encode(&rec.token_use, key, ingested_at_ms, &mut row);
    let mut insert = client.insert_formatted_with(Table::TokenUse.insert_sql(db));
    insert.send(row.into()).await.unwrap();
    insert.end().await.unwrap();
}

/// One alert in the `alerts` table that `tokentrail migrate` created.
async fn insert_alert(client: &clickhouse::Client, db: &str) {
    client
        .query(&format!(
            "INSERT INTO {db}.alerts (alert_id, rule, severity, summary, first_seen_ms, \
             last_seen_ms, count, source_project_path, target_project_path, actor_id, \
             actor_kind, action, job_id, event_time_ms, details, status, acked_by, \
             updated_at_ms) VALUES ('al-1', 'cross_project_not_allowlisted', 'high', \
             'a|b=c', ?, ?, 2, 'g/src', 'g/dst', 4021, 'human', 'secret.read', NULL, ?, \
             '{{\"k\":1}}', 'open', '', ?)"
        ))
        .bind(ms("2025-01-02T03:00:00Z"))
        .bind(ms("2025-01-02T03:05:00Z"))
        .bind(ms("2025-01-02T03:05:00Z"))
        .bind(ms("2025-01-02T03:06:00Z"))
        .execute()
        .await
        .unwrap();
}

async fn migrated(name: &str) -> (Settings, clickhouse::Client) {
    let svc = services();
    let settings = settings(&svc, name);
    let root = clickhouse(&svc.clickhouse_url, "default");
    migrate::migrate(&root, name, 0, None).await.unwrap();
    (settings, clickhouse(&svc.clickhouse_url, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_exports_a_time_range_from_clickhouse_to_hec() {
    let db = unique("siem_backfill");
    let (settings, client) = migrated(&db).await;
    let t = |s| ms(s);
    insert_token_use(&client, &db, "k1", t("2025-01-02T03:00:00Z"), 1).await;
    insert_token_use(&client, &db, "k2", t("2025-01-02T04:00:00Z"), 2).await;
    // A replay of k2 (same record key, later insert): FINAL keeps one.
    insert_token_use(&client, &db, "k2", t("2025-01-02T04:00:00Z"), 3).await;
    // Outside the range.
    insert_token_use(&client, &db, "k3", t("2025-01-03T00:00:00Z"), 4).await;
    insert_alert(&client, &db).await;

    let (server, addr) = HecServer::start(0).await;
    let settings = hec_settings(settings, addr, HEC_TOKEN);
    let mut exporter = Exporter::new(
        &settings.clickhouse,
        &settings.kafka,
        &settings.siem,
        Format::Ecs,
        SinkKind::Hec,
        Metrics::new(),
        CancellationToken::new(),
    )
    .unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let n = exporter
        .backfill(t("2025-01-02T00:00:00Z"), t("2025-01-03T00:00:00Z"), &bar)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(bar.length(), Some(3));
    assert_eq!(bar.position(), 3);
    let events = server.events();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["event"]["id"].as_str().unwrap())
        .collect();
    let alert_id = format!("al-1@{}", t("2025-01-02T03:06:00Z"));
    assert_eq!(ids, ["k1", "k2", alert_id.as_str()]);
    let tu = &events[0]["event"];
    assert_eq!(tu["@timestamp"], "2025-01-02T03:00:00.000Z");
    assert_eq!(tu["event"]["action"], "repository.read");
    assert_eq!(tu["user"]["name"], "zoe.oneil");
    assert_eq!(tu["source"]["ip"], "10.20.30.40");
    assert_eq!(
        tu["gitlab"]["target_project"]["path"],
        "platform/shared-libs"
    );
    let alert = &events[2]["event"];
    assert_eq!(alert["event"]["kind"], "alert");
    assert_eq!(alert["message"], "a|b=c");
    assert_eq!(alert["gitlab"]["alert"]["details"]["k"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_exports_new_rows_and_resumes_after_a_restart() {
    let db = unique("siem_follow");
    let (mut settings, client) = migrated(&db).await;
    let state_dir = tempfile::tempdir().unwrap();
    settings.siem.state_file = state_dir.path().join("state.json").display().to_string();
    settings.siem.poll_interval_ms = 100;
    let (server, addr) = HecServer::start(0).await;
    let settings = hec_settings(settings, addr, HEC_TOKEN);
    let now = chrono::Utc::now().timestamp_millis();
    insert_token_use(&client, &db, "f1", now, now - 2).await;
    insert_token_use(&client, &db, "f2", now, now - 1).await;

    let run = |settings: Settings| {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                let mut exporter = Exporter::new(
                    &settings.clickhouse,
                    &settings.kafka,
                    &settings.siem,
                    Format::Ocsf,
                    SinkKind::Hec,
                    Metrics::new(),
                    cancel.clone(),
                )
                .unwrap();
                let state = settings.siem.state_file.clone().into();
                exporter
                    .follow(&settings.siem, state, cancel)
                    .await
                    .unwrap();
            }
        });
        (cancel, handle)
    };
    let uids = |server: &HecServer| -> Vec<String> {
        server
            .events()
            .iter()
            .map(|e| e["event"]["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    };

    let (cancel, handle) = run(settings.clone());
    eventually(Duration::from_secs(60), "f1, f2 exported", || {
        let n = server.events().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    // A row that becomes visible late (older insert time, inside the look-back) still goes.
    insert_token_use(&client, &db, "f0-late", now, now - 1_000).await;
    eventually(Duration::from_secs(60), "late row exported", || {
        let n = server.events().len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    cancel.cancel();
    handle.await.unwrap();

    // Restart: what was sent is not sent again; new rows are.
    insert_token_use(
        &client,
        &db,
        "f3",
        now,
        chrono::Utc::now().timestamp_millis(),
    )
    .await;
    let (cancel, handle) = run(settings.clone());
    eventually(Duration::from_secs(60), "f3 exported after restart", || {
        let n = server.events().len();
        async move { (n >= 4).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    handle.await.unwrap();
    assert_eq!(uids(&server), ["f1", "f2", "f0-late", "f3"]);
}
