//! Plain assertion tests for the normalizer's fixed rules: dedup keys, actor
//! classification and every rejection kind with its message.

mod common;

use common::{audit, fixture, headers, run, run_with, webhook};
use serde_json::{Value, json};
use tokentrail::model::{
    ActorKind, AuditEvent, Event, Normalized, RejectKind, SourceKind, WebhookEvent,
};
use tokentrail::normalize::{Limits, classify_actor};

fn only_audit(out: &Normalized) -> &AuditEvent {
    assert!(
        out.rejected.is_empty(),
        "unexpected rejections: {:?}",
        out.rejected
    );
    match out.events.as_slice() {
        [Event::Audit(a)] => a,
        other => panic!("expected one audit event, got {other:?}"),
    }
}

fn only_webhook(out: &Normalized) -> &WebhookEvent {
    assert!(
        out.rejected.is_empty(),
        "unexpected rejections: {:?}",
        out.rejected
    );
    match out.events.as_slice() {
        [Event::Webhook(w)] => w,
        other => panic!("expected one webhook event, got {other:?}"),
    }
}

fn sample(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

// ---------------------------------------------------------------- dedup keys

#[test]
fn stream_only_event_with_two_random_ids_has_one_key() {
    let mut a = sample("audit-stream/user_authenticated_using_job_token.json");
    let mut b = a.clone();
    a["id"] = json!("11111111-2222-4333-8444-555555555555");
    b["id"] = json!("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    let (ea, eb) = (audit(&bytes(&a)), audit(&bytes(&b)));
    let (ea, eb) = (only_audit(&ea), only_audit(&eb));
    assert!(ea.stream_only && eb.stream_only);
    assert_eq!(ea.dedup_key, eb.dedup_key);
    assert!(ea.dedup_key.starts_with("content:"));
    assert_eq!(ea.dedup_key.len(), "content:".len() + 64);
    // A missing id is also stream-only and hashes the same content.
    a.as_object_mut().unwrap().remove("id");
    assert_eq!(only_audit(&audit(&bytes(&a))).dedup_key, ea.dedup_key);
}

#[test]
fn content_key_ignores_key_order_and_whitespace_but_not_content() {
    let pretty = fixture("audit-stream/repository_git_operation.json");
    let v: Value = serde_json::from_slice(&pretty).unwrap();
    // Reverse the key order by hand.
    let obj = v.as_object().unwrap();
    let reversed: String = format!(
        "{{{}}}",
        obj.iter()
            .rev()
            .map(|(k, v)| format!("{}:{}", json!(k), v))
            .collect::<Vec<_>>()
            .join(",")
    );
    let k1 = only_audit(&audit(&pretty)).dedup_key.clone();
    let k2 = only_audit(&audit(reversed.as_bytes())).dedup_key.clone();
    assert_eq!(k1, k2);
    let mut changed = v.clone();
    changed["created_at"] = json!("2025-06-03T10:15:44.901Z");
    assert_ne!(only_audit(&audit(&bytes(&changed))).dedup_key, k1);
}

#[test]
fn saved_ids_key_on_the_id_in_either_spelling() {
    let mut v = sample("audit-stream/secure_ci_job_token_project_added.json");
    let ev = audit(&bytes(&v));
    let ev = only_audit(&ev);
    assert_eq!(ev.dedup_key, "saved:552211");
    assert_eq!(ev.id, "552211");
    assert!(!ev.stream_only);
    v["id"] = json!("552211");
    assert_eq!(only_audit(&audit(&bytes(&v))).dedup_key, "saved:552211");
}

#[test]
fn webhook_retry_keys_on_idempotency_key_not_webhook_uuid() {
    let body = fixture("webhooks/job_hook.json");
    let first = headers(&[
        ("X-Gitlab-Event", "Job Hook"),
        (
            "X-Gitlab-Webhook-UUID",
            "3f1c2b7e-8d44-4c1e-a0b9-7e2d5f6a9c01",
        ),
        ("Idempotency-Key", "6c5b4a39-2817-4f06-9e5d-4c3b2a190817"),
    ]);
    let retry = headers(&[
        ("X-Gitlab-Event", "Job Hook"),
        (
            "X-Gitlab-Webhook-UUID",
            "99999999-8d44-4c1e-a0b9-7e2d5f6a9c02",
        ),
        ("idempotency-key", "6c5b4a39-2817-4f06-9e5d-4c3b2a190817"),
    ]);
    let a = webhook(&body, &first);
    let b = webhook(&body, &retry);
    assert_eq!(
        only_webhook(&a).dedup_key,
        "idem:6c5b4a39-2817-4f06-9e5d-4c3b2a190817"
    );
    assert_eq!(only_webhook(&a).dedup_key, only_webhook(&b).dedup_key);
}

#[test]
fn webhook_without_idempotency_key_hashes_the_body() {
    let body = fixture("webhooks/job_hook.json");
    let a = webhook(&body, &headers(&[("X-Gitlab-Webhook-UUID", "1")]));
    let b = webhook(
        &body,
        &headers(&[("X-Gitlab-Webhook-UUID", "2"), ("Idempotency-Key", "  ")]),
    );
    let (a, b) = (only_webhook(&a), only_webhook(&b));
    assert!(a.dedup_key.starts_with("content:"));
    assert_eq!(a.dedup_key, b.dedup_key);
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["build_status"] = json!("success");
    let c = webhook(&bytes(&other), &[]);
    assert_ne!(only_webhook(&c).dedup_key, a.dedup_key);
}

// ---------------------------------------------------------------- actors

#[test]
fn actor_classification_table() {
    use ActorKind::*;
    // (author_id, name, username, author_class, expected)
    type Case<'a> = (i64, &'a str, Option<&'a str>, Option<&'a str>, ActorKind);
    let cases: &[Case] = &[
        (4821, "Dana Builder", None, Some("User"), Human),
        (4821, "Dana Builder", Some("dbuilder"), None, Human),
        (0, "Someone", None, None, Unknown),
        (-7, "Odd", None, None, Unknown),
        (-1, "An unauthenticated user", None, None, Unauthenticated),
        (
            -1,
            "x",
            None,
            Some("Gitlab::Audit::UnauthenticatedAuthor"),
            Unauthenticated,
        ),
        (-2, "ledger-deploy", None, None, DeployToken),
        (-3, "ci-mirror-key", None, None, DeployKey),
        // author_class wins over the id.
        (55, "ledger-deploy", None, Some("DeployToken"), DeployToken),
        (55, "mirror", None, Some("DeployKey"), DeployKey),
        (-1, "x", None, Some("DeployToken"), DeployToken),
        (
            55,
            "x",
            None,
            Some("Gitlab::Audit::DeployTokenAuthor"),
            DeployToken,
        ),
        // Bot naming on username, then on the display name.
        (
            9123,
            "ledger-release-bot",
            Some("project_2001_bot_3f9a1c2e7d"),
            None,
            ProjectBot,
        ),
        (9123, "project_2001_bot", None, None, ProjectBot),
        (9123, "x", Some("project_2001_bot1"), None, ProjectBot),
        (
            9124,
            "platform-bot",
            Some("group_88_bot_0a1b2c"),
            None,
            GroupBot,
        ),
        (
            9125,
            "svc",
            Some("service_account_group_88_4f2e"),
            None,
            ServiceAccount,
        ),
        (9126, "svc", None, Some("ServiceAccount"), ServiceAccount),
        (
            9300,
            "Duo Workflow on behalf of @dbuilder",
            None,
            Some("User"),
            ServiceAccount,
        ),
        // Near misses stay human.
        (10, "project_bot", Some("project_x_bot"), None, Human),
        (11, "x", Some("project_12_botanist"), None, Human),
        (12, "x", Some("group__bot"), None, Human),
    ];
    for (id, name, username, class, want) in cases {
        assert_eq!(
            classify_actor(*id, name, *username, *class),
            *want,
            "id={id} name={name:?} username={username:?} class={class:?}"
        );
    }
}

// ---------------------------------------------------------------- rejections

fn single_rejection(out: &Normalized) -> (Option<usize>, RejectKind, &str) {
    assert!(out.events.is_empty(), "unexpected events: {:?}", out.events);
    match out.rejected.as_slice() {
        [r] => (r.index, r.kind, r.message.as_str()),
        other => panic!("expected one rejection, got {other:?}"),
    }
}

fn audit_with(field: &str, value: Value) -> Normalized {
    let mut v = sample("audit-stream/user_authenticated_using_job_token.json");
    v[field] = value;
    audit(&bytes(&v))
}

#[test]
fn empty_payload() {
    for payload in [None, Some(&b""[..]), Some(&b" \n\t"[..])] {
        let out = run(SourceKind::AuditStream, payload, &[]);
        assert_eq!(
            single_rejection(&out),
            (None, RejectKind::EmptyPayload, "payload is empty")
        );
    }
    let out = run(SourceKind::Webhook, None, &[]);
    assert_eq!(single_rejection(&out).1, RejectKind::EmptyPayload);
    let out = audit(b"[]");
    assert_eq!(
        single_rejection(&out),
        (
            None,
            RejectKind::EmptyPayload,
            "batched array has no elements"
        )
    );
}

#[test]
fn oversize() {
    let body = fixture("audit-stream/repository_git_operation.json");
    let limits = Limits {
        max_message_bytes: 100,
    };
    let out = run_with(SourceKind::AuditStream, Some(&body), &[], &limits);
    let msg = format!("payload is {} bytes, the limit is 100", body.len());
    assert_eq!(
        single_rejection(&out),
        (None, RejectKind::Oversize, msg.as_str())
    );
    assert_eq!(Limits::default().max_message_bytes, 25 * 1024 * 1024);
}

#[test]
fn invalid_json() {
    let out = audit(b"{\"id\": 1,");
    let (index, kind, msg) = single_rejection(&out);
    assert_eq!((index, kind), (None, RejectKind::InvalidJson));
    assert!(msg.starts_with("invalid JSON: EOF while parsing"), "{msg}");
    let out = webhook(b"\xff\xfe{}", &[]);
    assert_eq!(single_rejection(&out).1, RejectKind::InvalidJson);
}

#[test]
fn not_an_object() {
    let out = audit(b"\"just a string\"");
    assert_eq!(
        single_rejection(&out),
        (
            None,
            RejectKind::NotAnObject,
            "expected a JSON object or an array of objects, got a string"
        )
    );
    let out = webhook(b"[{}]", &[]);
    assert_eq!(
        single_rejection(&out),
        (
            None,
            RejectKind::NotAnObject,
            "expected a JSON object, got an array"
        )
    );
    // Inside a batch: indexed, and the good elements survive.
    let good = String::from_utf8(fixture("audit-stream/repository_git_operation.json")).unwrap();
    let out = audit(format!("[{good}, 7, null]").as_bytes());
    assert_eq!(out.events.len(), 1);
    let got: Vec<_> = out
        .rejected
        .iter()
        .map(|r| (r.index, r.kind, r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Some(1),
                RejectKind::NotAnObject,
                "array element: expected a JSON object, got a number"
            ),
            (
                Some(2),
                RejectKind::NotAnObject,
                "array element: expected a JSON object, got null"
            ),
        ]
    );
}

#[test]
fn missing_fields() {
    let out = audit_with("created_at", Value::Null);
    assert_eq!(
        single_rejection(&out),
        (
            None,
            RejectKind::MissingField,
            "created_at: required field is missing or null"
        )
    );
    let mut v = sample("audit-stream/user_authenticated_using_job_token.json");
    v.as_object_mut().unwrap().remove("event_type");
    v["details"].as_object_mut().unwrap().remove("event_name");
    let out = audit(&bytes(&v));
    assert_eq!(
        single_rejection(&out),
        (
            None,
            RejectKind::MissingField,
            "event_type: not in the body, the X-Gitlab-Audit-Event-Type header or details.event_name"
        )
    );
    // The header rescues a single object…
    let hdr = headers(&[(
        "X-Gitlab-Audit-Event-Type",
        "user_authenticated_using_job_token",
    )]);
    let out = run(SourceKind::AuditStream, Some(&bytes(&v)), &hdr);
    assert_eq!(
        only_audit(&out).event_type,
        "user_authenticated_using_job_token"
    );
    // …but is never applied to batched elements (GitLab omits it in batched mode).
    let batch = bytes(&json!([v]));
    let out = run(SourceKind::AuditStream, Some(&batch), &hdr);
    assert_eq!(single_rejection(&out).0, Some(0));
}

#[test]
fn wrong_types() {
    let cases: &[(&str, Value, &str)] = &[
        (
            "created_at",
            json!("yesterday"),
            "created_at: expected an RFC 3339 timestamp, got \"yesterday\"",
        ),
        (
            "created_at",
            json!(1748945742),
            "created_at: expected an RFC 3339 timestamp, got 1748945742",
        ),
        (
            "author_id",
            json!({"id": 1}),
            "author_id: expected an integer or a string of digits, got {\"id\":1}",
        ),
        (
            "author_id",
            json!([4821]),
            "author_id: expected an integer or a string of digits, got [4821]",
        ),
        (
            "entity_id",
            json!("abc"),
            "entity_id: expected an integer or a string of digits, got \"abc\"",
        ),
        (
            "target_id",
            json!(true),
            "target_id: expected an integer or a string of digits, got true",
        ),
        (
            "details",
            json!("{}"),
            "details: expected an object or null, got \"{}\"",
        ),
        (
            "details",
            json!([]),
            "details: expected an object or null, got []",
        ),
        (
            "author_name",
            json!(["Dana"]),
            "author_name: expected a string, got [\"Dana\"]",
        ),
        (
            "entity_path",
            json!({}),
            "entity_path: expected a string, got {}",
        ),
        (
            "event_type",
            json!(false),
            "event_type: expected a string, got false",
        ),
        (
            "id",
            json!(1.5),
            "id: expected an integer or a string, got 1.5",
        ),
        (
            "id",
            json!({"uuid": "x"}),
            "id: expected an integer or a string, got {\"uuid\":\"x\"}",
        ),
    ];
    for (field, value, want) in cases {
        let out = audit_with(field, value.clone());
        assert_eq!(
            single_rejection(&out),
            (None, RejectKind::WrongType, *want),
            "{field}={value}"
        );
    }
    // Values are previewed, not copied whole, into the message.
    let out = audit_with("author_id", json!({"x": "y".repeat(500)}));
    assert!(single_rejection(&out).2.len() < 200);
}

#[test]
fn loose_details_never_reject() {
    // details are free-form (docs/gitlab-events.md §1.2): odd values there only lose that meaning.
    let mut v = sample("audit-stream/repository_git_operation.json");
    v["details"]["custom_message"] = json!([1, 2]);
    v["details"]["author_class"] = json!({"weird": true});
    let out = audit(&bytes(&v));
    let ev = only_audit(&out);
    assert_eq!(ev.author_class, None);
    assert!(
        matches!(&ev.meaning, tokentrail::model::AuditMeaning::ResourceAccess { action, .. } if action == "repository.unknown")
    );
}

#[test]
fn utf8_bom_is_tolerated() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(fixture("audit-stream/repository_git_operation.json"));
    assert_eq!(audit(&body).events.len(), 1);
}

/// The body is checked as UTF-8 once, before parsing; a body that is not UTF-8 is still
/// refused with the byte parser's own error, which says where.
#[test]
fn invalid_utf8_is_refused_with_the_parsers_position() {
    let good = fixture("audit-stream/repository_git_operation.json");
    let at = good.windows(6).position(|w| w == b"author").unwrap();
    let mut bad = good.clone();
    bad[at + 1] = 0xff; // inside a key
    let mut bad_value = bytes(&json!({"object_kind": "build", "build_name": "x"}));
    let v = bad_value.iter().rposition(|&b| b == b'x').unwrap();
    bad_value[v] = 0xc3; // a lone lead byte inside a string value
    for (out, body) in [(audit(&bad), &bad), (webhook(&bad_value, &[]), &bad_value)] {
        assert!(out.events.is_empty());
        let [r] = out.rejected.as_slice() else {
            panic!("{:?}", out.rejected)
        };
        let expected = serde_json::from_slice::<Value>(body).unwrap_err();
        assert_eq!(r.kind, RejectKind::InvalidJson);
        assert_eq!(r.message, format!("invalid JSON: {expected}"));
        assert!(r.message.contains("column"), "{}", r.message);
    }
}

#[test]
fn webhook_event_time_falls_back_to_kafka_then_zero() {
    let body = bytes(&json!({"object_kind": "note", "project": {"id": 5}}));
    let out = webhook(&body, &[]);
    let w = only_webhook(&out);
    assert_eq!((w.event_time_ms, w.project_id), (common::KAFKA_TS, Some(5)));
    assert_eq!(w.event_header, "note");
    let msg = tokentrail::model::InputMessage {
        source: SourceKind::Webhook,
        topic: "t",
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        headers: &[],
        payload: Some(&body),
    };
    let out = tokentrail::normalize::normalize(&msg, &Limits::default());
    assert_eq!(only_webhook(&out).event_time_ms, 0);
}

#[test]
fn created_at_outside_the_storable_range_is_rejected_not_wrapped() {
    for text in [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2106-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        let out = audit_with("created_at", json!(text));
        let want = format!(
            "created_at: \"{text}\" is outside the accepted range \
             1970-01-01T00:00:00Z ≤ t < 2106-01-01T00:00:00Z"
        );
        assert_eq!(
            single_rejection(&out),
            (None, RejectKind::TimestampOutOfRange, want.as_str())
        );
    }
    assert_eq!(
        RejectKind::TimestampOutOfRange.as_str(),
        "timestamp_out_of_range"
    );
    // The edges of the range are stored as given.
    let first = audit_with("created_at", json!("1970-01-01T00:00:00Z"));
    assert_eq!(only_audit(&first).created_at_ms, 0);
    let last = audit_with("created_at", json!("2105-12-31T23:59:59.999Z"));
    assert_eq!(only_audit(&last).created_at_ms, 4_291_747_199_999);
    // In a batch only the bad element is rejected, with its index.
    let ok = sample("audit-stream/user_authenticated_using_job_token.json");
    let mut bad = ok.clone();
    bad["created_at"] = json!("0001-01-01T00:00:00Z");
    let out = audit(&bytes(&json!([ok, bad])));
    assert_eq!(out.events.len(), 1);
    assert_eq!(
        (out.rejected[0].index, out.rejected[0].kind),
        (Some(1), RejectKind::TimestampOutOfRange)
    );
}

#[test]
fn webhook_times_outside_the_storable_range_read_as_absent() {
    let mut hook = sample("webhooks/job_hook.json");
    hook["build_created_at"] = json!("0001-01-01T00:00:00Z");
    hook["build_started_at"] = json!("1969-12-31 23:59:59 UTC");
    hook["build_finished_at"] = json!("9999-12-31T23:59:59Z");
    for key in [
        "build_created_at_iso",
        "build_started_at_iso",
        "build_finished_at_iso",
    ] {
        hook[key] = Value::Null;
    }
    let out = webhook(&bytes(&hook), &[]);
    let w = only_webhook(&out);
    assert_eq!(
        (w.jobs[0].started_at_ms, w.jobs[0].finished_at_ms),
        (None, None)
    );
    assert_eq!(w.event_time_ms, common::KAFKA_TS);
    // A Kafka timestamp outside the range is not used either.
    let body = bytes(&json!({"object_kind": "note"}));
    let msg = tokentrail::model::InputMessage {
        source: SourceKind::Webhook,
        topic: "t",
        partition: 0,
        offset: 0,
        timestamp_ms: Some(-1),
        headers: &[],
        payload: Some(&body),
    };
    let out = tokentrail::normalize::normalize(&msg, &Limits::default());
    assert_eq!(only_webhook(&out).event_time_ms, 0);
}

#[test]
fn duplicate_keys_are_rejected_not_last_value_wins() {
    let body = br#"{"id": 1, "author_id": 4821, "created_at": "2025-06-03T10:15:42Z",
        "event_type": "user_authenticated_using_job_token", "author_id": 666}"#;
    assert_eq!(
        single_rejection(&audit(body)),
        (
            None,
            RejectKind::DuplicateKey,
            "duplicate key \"author_id\""
        )
    );
    // At any depth, with the path in the reason.
    let mut text = String::from_utf8(fixture(
        "audit-stream/user_authenticated_using_job_token.json",
    ))
    .unwrap();
    text = text.replacen(
        "\"details\": {",
        "\"details\": {\"entity_path\": \"forged\",",
        1,
    );
    assert_eq!(
        single_rejection(&audit(text.as_bytes())),
        (
            None,
            RejectKind::DuplicateKey,
            "duplicate key \"entity_path\" in details"
        )
    );
    // In a batch only that element is rejected, with its index.
    let ok = String::from_utf8(fixture(
        "audit-stream/user_authenticated_using_job_token.json",
    ))
    .unwrap();
    let batch = format!("[{ok}, {text}]");
    let out = audit(batch.as_bytes());
    assert_eq!(out.events.len(), 1);
    assert_eq!(
        (out.rejected[0].index, out.rejected[0].kind),
        (Some(1), RejectKind::DuplicateKey)
    );
    // Webhooks too.
    let out = webhook(
        br#"{"object_kind": "build", "build_id": 1, "build_id": 2}"#,
        &[],
    );
    assert_eq!(
        single_rejection(&out),
        (None, RejectKind::DuplicateKey, "duplicate key \"build_id\"")
    );
    assert_eq!(RejectKind::DuplicateKey.as_str(), "duplicate_key");
}

/// Headers that count how often they are looked up, as librdkafka parses a record's headers
/// only when first asked.
#[derive(Debug, Default)]
struct CountedHeaders {
    lookups: std::cell::Cell<usize>,
}

impl tokentrail::model::HeaderSource for CountedHeaders {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        self.lookups.set(self.lookups.get() + 1);
        let headers: [tokentrail::model::Header<'static>; 3] = [
            (
                "X-Gitlab-Audit-Event-Type",
                b"user_authenticated_using_job_token",
            ),
            ("X-Gitlab-Event", b"Job Hook"),
            ("Idempotency-Key", b"counted-key"),
        ];
        tokentrail::model::find_headers(headers, names, found);
    }

    fn all(&self) -> Vec<tokentrail::model::Header<'_>> {
        Vec::new()
    }
}

fn normalize_with(headers: &CountedHeaders, source: SourceKind, body: &[u8]) -> Normalized {
    let msg = tokentrail::model::InputMessage {
        source,
        topic: "t",
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        headers,
        payload: Some(body),
    };
    tokentrail::normalize::normalize(&msg, &Limits::default())
}

/// An audit event that names its type leaves the record's headers alone; one that does not
/// asks for the type header once.
#[test]
fn audit_headers_are_read_only_when_the_body_lacks_the_event_type() {
    let mut v = sample("audit-stream/user_authenticated_using_job_token.json");
    let counted = CountedHeaders::default();
    only_audit(&normalize_with(
        &counted,
        SourceKind::AuditStream,
        &bytes(&v),
    ));
    assert_eq!(counted.lookups.get(), 0);

    v.as_object_mut().unwrap().remove("event_type");
    v["details"].as_object_mut().unwrap().remove("event_name");
    let out = normalize_with(&counted, SourceKind::AuditStream, &bytes(&v));
    assert_eq!(
        only_audit(&out).event_type,
        "user_authenticated_using_job_token"
    );
    assert_eq!(counted.lookups.get(), 1);
}

/// A webhook's two headers (`X-Gitlab-Event`, `Idempotency-Key`) come from one pass over the
/// record's headers, each pass being a walk over what librdkafka parsed.
#[test]
fn a_webhook_reads_its_headers_in_one_pass() {
    let v = sample("webhooks/job_hook.json");
    let counted = CountedHeaders::default();
    let out = normalize_with(&counted, SourceKind::Webhook, &bytes(&v));
    let hook = only_webhook(&out);
    assert_eq!(hook.event_header, "Job Hook");
    assert_eq!(hook.dedup_key, "idem:counted-key");
    assert_eq!(counted.lookups.get(), 1);
}
