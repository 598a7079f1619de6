//! `tokentrail gitlab` against a GitLab API double (tests/gitlab_double): pagination, rate
//! limits, retries, permission errors, and answers that lie (wrong types, endless pages, huge
//! pages, another host). No services needed; the Kafka/ClickHouse path is in
//! tests/integration/gitlab_sync.rs.

#[path = "gitlab_double/mod.rs"]
mod gitlab_double;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gitlab_double::{Double, Reply, fixture};
use serde_json::json;
use tokentrail::config::{Secret, Settings};
use tokentrail::gitlab::api::{self, ProjectRef, Scope};
use tokentrail::gitlab::client::{Client, GitlabError};
use tokentrail::gitlab::sync::{SyncOptions, sync};
use tokentrail::telemetry::metrics::Metrics;

const TOKEN: &str = "glpat-Secret-4711";

fn settings(base: &str) -> Settings {
    let mut s = Settings::default();
    s.gitlab.url = base.to_string();
    s.gitlab.token = Secret::new(TOKEN);
    s.gitlab.timeout_secs = 1;
    s.gitlab.max_attempts = 3;
    s.gitlab.initial_backoff_ms = 10;
    s.gitlab.max_backoff_ms = 50;
    s.gitlab.max_pages = 20;
    s.gitlab.max_page_bytes = 64 * 1024;
    s.validate().unwrap();
    s
}

fn client(s: &Settings, m: &Metrics) -> Client {
    Client::new(&s.gitlab, Some(m.clone())).unwrap()
}

/// payments (3001 ledger, 3002 billing on a second page): ledger's allowlist has a project
/// and a group, billing's is empty and disabled.
fn world(g: &Double) {
    let projects = fixture("group_projects");
    let (p1, p2) = (json!([projects[0]]), json!([projects[1]]));
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&p1).header(
            "link",
            "<{base}/api/v4/groups/payments/projects?include_subgroups=true&order_by=id&sort=asc&per_page=100&page=2>; rel=\"next\"",
        )],
    );
    g.route(
        "/api/v4/groups/payments/projects?include_subgroups=true&order_by=id&sort=asc&per_page=100&page=2",
        vec![Reply::json(&p2)],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope",
        vec![Reply::json(&fixture("job_token_scope"))],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope/allowlist",
        vec![Reply::json(&fixture("allowlist"))],
    );
    g.route(
        "/api/v4/projects/3001/job_token_scope/groups_allowlist",
        vec![Reply::json(&fixture("groups_allowlist"))],
    );
    g.route(
        "/api/v4/projects/3002/job_token_scope",
        vec![Reply::json(
            &json!({"inbound_enabled": false, "outbound_enabled": false}),
        )],
    );
    g.route(
        "/api/v4/projects/3002/job_token_scope/allowlist",
        vec![Reply::json(&json!([]))],
    );
    g.route(
        "/api/v4/projects/3002/job_token_scope/groups_allowlist",
        vec![Reply::json(&json!([]))],
    );
    g.route(
        "/api/graphql",
        vec![Reply::json(&fixture("graphql_allowlist"))],
    );
}

fn opts() -> SyncOptions {
    SyncOptions {
        scope: Scope::Group("payments".into()),
        dry_run: true,
        full: false,
    }
}

#[tokio::test]
async fn sync_reads_every_page_and_every_allowlist_with_policies() {
    let g = Double::start().await;
    world(&g);
    let s = settings(&g.base);
    let m = Metrics::new();
    let (report, msgs) = sync(
        &client(&s, &m),
        &s.gitlab,
        &opts(),
        &HashMap::new(),
        None,
        &m,
        || 1_000,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.projects, report.entries, report.rows, report.drift),
        (2, 2, 4, 0)
    );
    let rows: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m.event["event_type"].as_str().unwrap().into(),
                m.event["details"]["custom_message"]
                    .as_str()
                    .unwrap()
                    .into(),
            )
        })
        .collect();
    assert_eq!(rows[0].0, "tokentrail_allowlist_snapshot_inbound_enabled");
    assert_eq!(
        rows[1],
        (
            "tokentrail_allowlist_snapshot_project".into(),
            "Project platform-eng/app-backend was on the inbound list of allowed projects for payments/ledger (read from GitLab's API), with default permissions: false, job token policies: read_jobs, read_packages".into()
        )
    );
    assert_eq!(rows[2].0, "tokentrail_allowlist_snapshot_group");
    assert!(
        rows[2]
            .1
            .starts_with("Group diaspora/diaspora-group was on"),
        "{}",
        rows[2].1
    );
    assert_eq!(rows[3].0, "tokentrail_allowlist_snapshot_inbound_disabled");
    // The token travels as a header on every request, and only there.
    for (path, headers) in g.requests() {
        assert_eq!(
            headers.get("authorization").map(String::as_str),
            Some(&*format!("Bearer {TOKEN}")),
            "{path}"
        );
        assert!(!path.contains(TOKEN));
    }
    assert_eq!(
        g.hits("/api/v4/groups/payments/projects"),
        2,
        "both pages read"
    );
    assert_eq!(
        m.gitlab_requests.with_label_values(&["ok"]).get(),
        g.requests().len() as u64
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_gitlab_says() {
    let g = Double::start().await;
    g.route(
        "/api/v4/projects/1/job_token_scope",
        vec![
            Reply::status(429, r#"{"message":"Retry later"}"#).header("retry-after", "1"),
            Reply::json(&fixture("job_token_scope")),
        ],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let started = Instant::now();
    let v = client(&s, &m)
        .get("/projects/1/job_token_scope")
        .await
        .unwrap();
    assert_eq!(v["inbound_enabled"], true);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 honoured, not the 10 ms backoff"
    );
    assert_eq!(
        m.gitlab_requests.with_label_values(&["rate_limited"]).get(),
        1
    );
}

#[tokio::test]
async fn an_exhausted_quota_pauses_the_next_request_until_the_reset() {
    let g = Double::start().await;
    let reset = (chrono::Utc::now().timestamp() + 2).to_string();
    g.route(
        "/api/v4/projects/1/job_token_scope",
        vec![
            Reply::json(&fixture("job_token_scope"))
                .header("ratelimit-remaining", "0")
                .header("ratelimit-reset", &reset),
        ],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let c = client(&s, &m);
    c.get("/projects/1/job_token_scope").await.unwrap();
    let started = Instant::now();
    c.get("/projects/1/job_token_scope").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for RateLimit-Reset: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let g = Double::start().await;
    g.route(
        "/api/v4/projects/1/job_token_scope",
        vec![
            Reply::status(502, "bad gateway"),
            Reply::status(503, "{}"),
            Reply::json(&fixture("job_token_scope")),
        ],
    );
    g.route(
        "/api/v4/projects/2/job_token_scope",
        vec![Reply::status(
            500,
            r#"{"message":"500 Internal Server Error"}"#,
        )],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let c = client(&s, &m);
    assert!(
        c.get("/projects/1/job_token_scope").await.is_ok(),
        "third attempt answers"
    );
    let e = c.get("/projects/2/job_token_scope").await.unwrap_err();
    assert!(
        matches!(e, GitlabError::Unavailable { attempts: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("500 Internal Server Error"), "{e}");
    assert_eq!(
        m.gitlab_requests.with_label_values(&["server_error"]).get(),
        5
    );
}

#[tokio::test]
async fn a_slow_or_absent_gitlab_is_an_error_not_a_hang() {
    let g = Double::start().await;
    g.route(
        "/api/v4/projects/1/job_token_scope",
        vec![Reply::json(&fixture("job_token_scope")).delay(Duration::from_secs(3))],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let started = Instant::now();
    let e = client(&s, &m)
        .get("/projects/1/job_token_scope")
        .await
        .unwrap_err();
    assert!(
        matches!(e, GitlabError::Unavailable { attempts: 3, .. }),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "3 attempts of 1 s timeout"
    );
    // Nothing listening.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = settings(&down);
    let e = client(&s, &m)
        .get("/projects/1/job_token_scope")
        .await
        .unwrap_err();
    assert!(matches!(e, GitlabError::Unavailable { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("Secret-4711"));
}

#[tokio::test]
async fn a_forbidden_allowlist_is_listed_and_the_others_are_synced() {
    let g = Double::start().await;
    world(&g);
    g.route(
        "/api/v4/projects/3002/job_token_scope",
        vec![Reply::status(403, r#"{"message":"403 Forbidden"}"#)],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let (report, msgs) = sync(
        &client(&s, &m),
        &s.gitlab,
        &opts(),
        &HashMap::new(),
        None,
        &m,
        || 1_000,
    )
    .await
    .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "payments/core/billing");
    assert!(
        report.failed[0].1.contains("Maintainer"),
        "{}",
        report.failed[0].1
    );
    assert_eq!(msgs.len(), 3, "ledger's rows still written");
}

#[tokio::test]
async fn a_refused_token_names_the_key() {
    let g = Double::start().await;
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::status(401, r#"{"message":"401 Unauthorized"}"#)],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let e = api::projects(&client(&s, &m), &Scope::Group("payments".into()), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("gitlab.token"), "{e}");
    assert!(!e.to_string().contains("Secret-4711"));
}

// Hostile answers.

#[tokio::test]
async fn wrong_types_are_errors_naming_the_field() {
    let g = Double::start().await;
    g.route(
        "/api/v4/projects/1/job_token_scope",
        vec![Reply::json(&json!({"inbound_enabled": "yes"}))],
    );
    g.route(
        "/api/v4/projects/2/job_token_scope",
        vec![Reply::json(&fixture("job_token_scope"))],
    );
    g.route(
        "/api/v4/projects/2/job_token_scope/allowlist",
        vec![Reply::json(
            &json!([{"id": "1337", "path_with_namespace": "a/b"}]),
        )],
    );
    g.route(
        "/api/v4/projects/3/job_token_scope",
        vec![Reply::json(&fixture("job_token_scope"))],
    );
    g.route(
        "/api/v4/projects/3/job_token_scope/allowlist",
        vec![Reply::json(&json!({"not": "a list"}))],
    );
    g.route(
        "/api/v4/projects/4/job_token_scope",
        vec![Reply::status(200, "<html>login</html>")],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let c = client(&s, &m);
    let read = |id: i64| {
        let c = &c;
        async move {
            api::allowlist(
                c,
                &ProjectRef {
                    id,
                    path: format!("p/{id}"),
                },
                false,
            )
            .await
            .unwrap_err()
            .to_string()
        }
    };
    assert!(
        read(1)
            .await
            .contains("`inbound_enabled` must be a boolean, got a string")
    );
    assert!(
        read(2)
            .await
            .contains("`id` must be a positive integer, got a string")
    );
    assert!(
        read(3)
            .await
            .contains("expected a JSON array, got an object")
    );
    assert!(read(4).await.contains("not JSON"));
}

#[tokio::test]
async fn an_endless_pagination_loop_is_refused() {
    let g = Double::start().await;
    // Every page says the next one is page 2, itself included.
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&fixture("group_projects")).header("x-next-page", "2")],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let e = api::projects(&client(&s, &m), &Scope::Group("payments".into()), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pagination loop"), "{e}");
    assert!(g.hits("/api/v4/groups/payments/projects") <= 3);
    // A server that always names a new page: stopped at gitlab.max_pages.
    let g = Double::start().await;
    g.route(
        "/api/v4/projects",
        vec![Reply::json(&json!([])).header("link", "<{base}/api/v4/projects?n=0>; rel=\"next\"")],
    );
    for n in 0..30 {
        g.route(
            &format!("/api/v4/projects?n={n}"),
            vec![Reply::json(&json!([])).header(
                "link",
                &format!("<{{base}}/api/v4/projects?n={}>; rel=\"next\"", n + 1),
            )],
        );
    }
    let s = settings(&g.base);
    let e = api::projects(&client(&s, &m), &Scope::Instance, |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("gitlab.max_pages = 20"), "{e}");
}

#[tokio::test]
async fn a_huge_page_is_refused_unread() {
    let g = Double::start().await;
    let many: Vec<_> = (1..5000)
        .map(|i| json!({"id": i, "path_with_namespace": format!("g/p{i}")}))
        .collect();
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&json!(many))],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let e = api::projects(&client(&s, &m), &Scope::Group("payments".into()), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, GitlabError::TooLarge { limit: 65536, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_next_page_on_another_host_is_not_followed_with_the_token() {
    let g = Double::start().await;
    let evil = Double::start().await;
    g.route(
        "/api/v4/groups/payments/projects",
        vec![Reply::json(&fixture("group_projects")).header(
            "link",
            &format!("<{}/api/v4/steal>; rel=\"next\"", evil.base),
        )],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let e = api::projects(&client(&s, &m), &Scope::Group("payments".into()), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("another host"), "{e}");
    assert!(
        evil.requests().is_empty(),
        "the token never reached the other host"
    );
}

#[tokio::test]
async fn graphql_errors_leave_the_entries_without_policies() {
    let g = Double::start().await;
    world(&g);
    g.route("/api/graphql", vec![Reply::json(&json!({"errors": [{"message": "Field 'ciJobTokenScopeAllowlist' doesn't exist on type 'Project'"}]}))]);
    let s = settings(&g.base);
    let m = Metrics::new();
    let a = api::allowlist(
        &client(&s, &m),
        &ProjectRef {
            id: 3001,
            path: "payments/ledger".into(),
        },
        true,
    )
    .await
    .unwrap();
    assert!(!a.policies_read);
    assert_eq!(a.entries.len(), 2);
    assert!(a.entries.iter().all(|e| e.default_permissions.is_none()));
    // A lying GraphQL answer (policies not a list) is an error, not an empty policy list.
    g.route("/api/graphql", vec![Reply::json(&json!({"data": {"project": {"ciJobTokenScopeAllowlist": {"projectsAllowlist": {"nodes": [{"target": {"id": "gid://gitlab/Project/1337"}, "jobTokenPolicies": "READ_JOBS"}]}, "groupsAllowlist": {"nodes": []}}}}}))]);
    let e = api::allowlist(
        &client(&s, &m),
        &ProjectRef {
            id: 3001,
            path: "payments/ledger".into(),
        },
        true,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("jobTokenPolicies is a string"),
        "{e}"
    );
}

// Backfill and coverage.

fn normalized(event: &serde_json::Value) -> tokentrail::model::AuditEvent {
    let body = serde_json::to_vec(event).unwrap();
    let msg = tokentrail::model::InputMessage {
        source: tokentrail::model::SourceKind::AuditStream,
        topic: "t",
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        headers: &[],
        payload: Some(&body),
    };
    let out = tokentrail::normalize::normalize(&msg, &tokentrail::normalize::Limits::default());
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    match out.events.into_iter().next() {
        Some(tokentrail::model::Event::Audit(a)) => a,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn backfilled_saved_events_dedupe_against_their_streamed_copies() {
    use tokentrail::gitlab::backfill::{Source, read};
    let g = Double::start().await;
    g.route(
        "/api/v4/groups/payments/audit_events",
        vec![Reply::json(&fixture("audit_events"))],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let day = 24 * 3_600_000;
    let from = 1_566_000_000_000; // 2019-08-17
    let events = read(
        &client(&s, &m),
        &Source::Group("payments".into()),
        from,
        from + 40 * day,
        |_| {},
    )
    .await
    .unwrap();
    // 40 days: two slices of at most 30 (GitLab's limit per query), each answered here.
    let asked: Vec<String> = g.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[0].contains("created_after=2019-08-17")
            && asked[1].contains("created_after=2019-09-16"),
        "{asked:?}"
    );
    assert_eq!(events.len(), 4);
    assert_eq!(events[1].0, "77", "keyed by author_id like the collector");
    // The API's copy and the streamed copy of one saved event get the same dedup key.
    let api = normalized(&events[1].1);
    let mut streamed = events[1].1.clone();
    streamed["id"] = json!("552211");
    streamed["entity_path"] = json!("payments/ledger");
    streamed["event_type"] = json!("secure_ci_job_token_project_added");
    let streamed = normalized(&streamed);
    assert_eq!(api.dedup_key, "saved:552211");
    assert_eq!(api.dedup_key, streamed.dedup_key);
    assert_eq!(
        api.meaning, streamed.meaning,
        "the API's shape means the same change"
    );
}

#[tokio::test]
async fn a_saved_event_without_an_integer_id_is_refused() {
    use tokentrail::gitlab::backfill::{Source, read};
    let g = Double::start().await;
    let mut lying = fixture("audit_events");
    lying[1]["id"] = json!("c0ffee");
    g.route("/api/v4/audit_events", vec![Reply::json(&lying)]);
    let s = settings(&g.base);
    let m = Metrics::new();
    let e = read(&client(&s, &m), &Source::Instance, 0, 1_000, |_| {})
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("`id` must be a positive integer"),
        "{e}"
    );
    g.route(
        "/api/v4/audit_events",
        vec![Reply::status(403, r#"{"message":"403 Forbidden"}"#)],
    );
    let e = read(&client(&s, &m), &Source::Instance, 0, 1_000, |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("administrator"), "{e}");
}

#[tokio::test]
async fn snapshot_rows_normalize_into_allowlist_changes() {
    let g = Double::start().await;
    world(&g);
    let s = settings(&g.base);
    let m = Metrics::new();
    let (_, msgs) = sync(
        &client(&s, &m),
        &s.gitlab,
        &opts(),
        &HashMap::new(),
        None,
        &m,
        || 1_000,
    )
    .await
    .unwrap();
    let ev = normalized(&msgs[1].event);
    let tokentrail::model::AuditMeaning::Allowlist(c) = ev.meaning else {
        panic!("{:?}", ev.meaning)
    };
    assert_eq!(
        c.change,
        tokentrail::model::AllowlistChangeKind::SnapshotProject
    );
    assert_eq!(
        (c.protected_project_id, c.protected_project_path.as_str()),
        (Some(3001), "payments/ledger")
    );
    assert_eq!(
        (c.member_id, c.member_path.as_deref()),
        (Some(1337), Some("platform-eng/app-backend"))
    );
    assert_eq!(
        (c.default_permissions, c.policies),
        (
            Some(false),
            vec!["read_jobs".to_string(), "read_packages".to_string()]
        )
    );
    assert!(
        ev.dedup_key.starts_with("content:"),
        "a replay collapses, the next sync is a new row"
    );
    let inbound = normalized(&msgs[0].event);
    assert!(
        matches!(inbound.meaning, tokentrail::model::AuditMeaning::Allowlist(ref c) if c.change == tokentrail::model::AllowlistChangeKind::SnapshotInboundEnabled && c.member_id.is_none())
    );
}

#[tokio::test]
async fn auth_log_pages_follow_cursors_and_refuse_a_loop() {
    use tokentrail::gitlab::coverage::auth_logs;
    let g = Double::start().await;
    let page = |cursor: Option<&str>, origin: i64| {
        json!({"data": {"project": {"ciJobTokenAuthLogs": {
            "nodes": [{"lastAuthorizedAt": "2026-05-19T16:00:00Z", "originProject": {"id": format!("gid://gitlab/Project/{origin}"), "fullPath": format!("g/p{origin}")}}],
            "pageInfo": {"hasNextPage": cursor.is_some(), "endCursor": cursor}}}}})
    };
    g.route(
        "/api/graphql#payments/ledger",
        vec![Reply::json(&page(Some("c1"), 1))],
    );
    g.route(
        "/api/graphql#payments/ledger#c1",
        vec![Reply::json(&page(None, 2))],
    );
    let s = settings(&g.base);
    let m = Metrics::new();
    let ledger = ProjectRef {
        id: 3001,
        path: "payments/ledger".into(),
    };
    let logs = auth_logs(&client(&s, &m), &ledger, 10).await.unwrap();
    assert_eq!(logs.iter().map(|l| l.origin.id).collect::<Vec<_>>(), [1, 2]);
    // A server that hands the same cursor back forever.
    g.route(
        "/api/graphql#payments/ledger#c1",
        vec![Reply::json(&page(Some("c1"), 2))],
    );
    let e = auth_logs(&client(&s, &m), &ledger, 10).await.unwrap_err();
    assert!(e.to_string().contains("pagination loop"), "{e}");
    // Wrong types.
    g.route("/api/graphql#payments/ledger", vec![Reply::json(&json!({"data": {"project": {"ciJobTokenAuthLogs": {"nodes": [{"lastAuthorizedAt": "yesterday", "originProject": {"id": "gid://gitlab/Project/1", "fullPath": "a/b"}}]}}}}))]);
    let e = auth_logs(&client(&s, &m), &ledger, 10).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("lastAuthorizedAt of a/b is not an ISO 8601 time"),
        "{e}"
    );
}
