//! Property tests: `normalize` never panics, and every non-empty message is accounted for
//! (each element becomes exactly one event or one rejection).

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tokentrail::model::{Event, Normalized, SourceKind};

use common::{headers, run};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys the normalizer reads, so random objects reach the deep paths, plus random keys.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "author_id", "author_name", "entity_id", "entity_type", "entity_path",
            "target_id", "target_type", "target_details", "ip_address", "created_at",
            "event_type", "details", "custom_message", "event_name", "author_class",
            "author_username", "project_id", "group_id", "user_id", "object_kind", "build_id",
            "builds", "object_attributes", "project", "path_with_namespace", "source_pipeline",
            "runner", "user", "finished_at", "started_at", "build_started_at", "pipeline_id",
            "upstream_root_pipeline_id", "verb", "action",
        ]).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

fn interesting_string() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "2025-06-03T10:15:42.123Z", "2025-06-03 10:14:57 UTC", "yesterday", "42", "-2", "",
        "5b0c9a7e-2f41-4c8e-9b2d-61f0a3e4d7c2", "Ci::Build", "Ci::Pipeline", "Project", "Group",
        "user_authenticated_using_job_token", "repository_git_operation",
        "job_artifact_downloaded", "multi_project_downstream_pipeline_created",
        "secure_ci_job_token_project_added", "secure_ci_job_token_policies_updated",
        "deploy_token_revoked", "personal_access_token_created", "build", "pipeline",
        "Project a/b was added to inbound list of allowed projects for c/d, with default permissions: true, job token policies: x, y",
        "CI job token policies updated to: ", "job id: 99999999999999999999999",
        "{\"verb\":\"push\"}", "project_1_bot_x", "A on behalf of @b", "é\u{0}\u{10FFFF}",
    ])
    .prop_map(str::to_owned)
}

/// Every element is accounted for exactly once, and rejections carry a message.
fn check_accounting(source: SourceKind, v: &Value, payload: &[u8], out: &Normalized) {
    for r in &out.rejected {
        assert!(!r.message.is_empty());
    }
    match (source, v) {
        (SourceKind::AuditStream, Value::Array(items)) if !items.is_empty() => {
            assert_eq!(out.events.len() + out.rejected.len(), items.len());
            assert!(
                out.rejected
                    .iter()
                    .all(|r| r.index.is_some_and(|i| i < items.len()))
            );
        }
        (SourceKind::Webhook, Value::Object(_)) => {
            assert_eq!(out.events.len(), 1);
            assert!(out.rejected.is_empty());
        }
        _ => {
            assert_eq!(out.events.len() + out.rejected.len(), 1);
            assert!(out.rejected.iter().all(|r| r.index.is_none()));
        }
    }
    for e in &out.events {
        match (source, e) {
            (SourceKind::AuditStream, Event::Audit(a)) => {
                assert!(a.dedup_key.starts_with("saved:") || a.dedup_key.starts_with("content:"));
                assert_eq!(a.stream_only, a.dedup_key.starts_with("content:"));
                assert!(
                    serde_json::from_str::<Value>(&a.details_json).is_ok_and(|d| d.is_object())
                );
            }
            (SourceKind::Webhook, Event::Webhook(w)) => {
                // The body is kept verbatim.
                assert_eq!(w.payload_json.as_bytes(), payload);
            }
            _ => panic!("event from the wrong source: {e:?}"),
        }
    }
}

fn source() -> impl Strategy<Value = SourceKind> {
    prop_oneof![Just(SourceKind::AuditStream), Just(SourceKind::Webhook)]
}

proptest! {
    // Default case count (256); set PROPTEST_CASES for a longer run.
    #[test]
    fn arbitrary_bytes_never_panic(src in source(), payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let out = run(src, Some(&payload), &[]);
        prop_assert!(!(out.events.is_empty() && out.rejected.is_empty()));
    }

    #[test]
    fn arbitrary_json_is_fully_accounted_for(src in source(), v in arb_json(), with_header in any::<bool>()) {
        let hdrs = if with_header {
            headers(&[("X-Gitlab-Audit-Event-Type", "user_authenticated_using_job_token"), ("Idempotency-Key", "k")])
        } else {
            Vec::new()
        };
        let payload = serde_json::to_vec(&v).unwrap();
        let out = run(src, Some(&payload), &hdrs);
        check_accounting(src, &v, &payload, &out);
    }

    /// Objects that look like audit events (a valid created_at and event_type plus random
    /// fields) exercise the meaning extractors with hostile values.
    #[test]
    fn audit_like_objects_never_panic(
        extra in prop::collection::btree_map(field_name(), arb_json(), 0..12),
        details in prop::collection::btree_map(field_name(), arb_json(), 0..12),
        event_type in interesting_string(),
        batched in any::<bool>(),
    ) {
        let mut obj: Map<String, Value> = extra.into_iter().collect();
        obj.insert("created_at".into(), json!("2025-06-03T10:15:42.123Z"));
        obj.insert("event_type".into(), json!(event_type));
        obj.insert("details".into(), Value::Object(details.into_iter().collect()));
        let v = if batched { json!([obj]) } else { Value::Object(obj) };
        let payload = serde_json::to_vec(&v).unwrap();
        let out = run(SourceKind::AuditStream, Some(&payload), &[]);
        check_accounting(SourceKind::AuditStream, &v, &payload, &out);
    }

    /// A stream-only event's key does not depend on its per-dispatch random id.
    #[test]
    fn stream_only_key_ignores_the_id(a in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                                      b in "[0-9a-f]{32}") {
        let base: Value = serde_json::from_slice(&common::fixture("audit-stream/repository_git_operation.json")).unwrap();
        let key = |id: &str| {
            let mut v = base.clone();
            v["id"] = json!(id);
            match run(SourceKind::AuditStream, Some(&serde_json::to_vec(&v).unwrap()), &[]).events.pop() {
                Some(Event::Audit(ev)) => ev.dedup_key,
                other => panic!("{other:?}"),
            }
        };
        prop_assert_eq!(key(&a), key(&b));
    }

    /// Saved ids key on the id, whatever the spelling.
    #[test]
    fn saved_key_is_the_id(id in 1i64..i64::MAX, as_string in any::<bool>()) {
        let mut v: Value = serde_json::from_slice(&common::fixture("audit-stream/secure_ci_job_token_project_added.json")).unwrap();
        v["id"] = if as_string { json!(id.to_string()) } else { json!(id) };
        match run(SourceKind::AuditStream, Some(&serde_json::to_vec(&v).unwrap()), &[]).events.pop() {
            Some(Event::Audit(ev)) => prop_assert_eq!(ev.dedup_key, format!("saved:{id}")),
            other => panic!("{other:?}"),
        }
    }
}
