//! The JSON Schemas in `schemas/json/` against real-shaped samples: the GitLab fixtures, the
//! simulator's messages, serialized `TokenUse` records and an `Alert`.

use std::path::Path;

use serde_json::{Value, json};
use tokentrail::alert::{Alert, AlertStatus, Severity};
use tokentrail::model::{InputMessage, SourceKind};
use tokentrail::normalize::{self, Limits};
use tokentrail::simulate::{self, SimConfig};

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas/json")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitlab")
        .join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Whether the normalizer accepts every element of a message.
fn accepted(source: SourceKind, headers: &[(String, Vec<u8>)], payload: &[u8]) -> bool {
    let headers = tokentrail::model::header_views(headers);
    let msg = InputMessage {
        source,
        topic: "t",
        partition: 0,
        offset: 0,
        timestamp_ms: Some(0),
        headers: &headers,
        payload: Some(payload),
    };
    normalize::normalize(&msg, &Limits::default())
        .rejected
        .is_empty()
}

/// The schema accepts exactly the audit fixtures the normalizer accepts (the header is given
/// so `event_type_from_header.json` counts as complete).
#[test]
fn audit_stream_fixtures_validate_iff_the_normalizer_accepts_them() {
    let v = validator("audit-event-stream.schema.json");
    let headers = vec![(
        "X-Gitlab-Audit-Event-Type".to_string(),
        b"user_authenticated_using_job_token".to_vec(),
    )];
    let mut rejected = 0;
    for (name, bytes) in fixtures("audit-stream") {
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let ok = accepted(SourceKind::AuditStream, &headers, &bytes);
        assert_eq!(
            v.is_valid(&body),
            ok,
            "{name}: schema errors {:?}",
            errors(&v, &body)
        );
        rejected += usize::from(!ok);
    }
    assert!(rejected > 0, "some fixture must exercise a rejection");
}

#[test]
fn webhook_fixtures_validate_against_their_hook_schema() {
    let job = validator("job-hook.schema.json");
    let pipeline = validator("pipeline-hook.schema.json");
    let mut checked = 0;
    for (name, bytes) in fixtures("webhooks") {
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let v = match body["object_kind"].as_str() {
            Some("build") => &job,
            Some("pipeline") => &pipeline,
            _ => continue,
        };
        assert!(v.is_valid(&body), "{name}: {:?}", errors(v, &body));
        checked += 1;
    }
    assert!(checked >= 4);
    assert!(
        !job.is_valid(&json!({"object_kind": "build"})),
        "build_id is required"
    );
}

#[test]
fn simulator_messages_and_truth_validate() {
    let audit = validator("audit-event-stream.schema.json");
    let job = validator("job-hook.schema.json");
    let pipeline = validator("pipeline-hook.schema.json");
    let token_use = validator("token-use.schema.json");
    let (messages, truth) = simulate::generate(&SimConfig::small());
    let mut counts = [0usize; 3];
    for m in &messages {
        let headers: Vec<(String, Vec<u8>)> = m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        // Poison messages are the normalizer's business; everything it accepts must validate.
        if !accepted(m.source, &headers, &m.payload) {
            continue;
        }
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        let (v, i) = match (m.source, body["object_kind"].as_str()) {
            (SourceKind::AuditStream, _) => (&audit, 0),
            (SourceKind::Webhook, Some("build")) => (&job, 1),
            (SourceKind::Webhook, Some("pipeline")) => (&pipeline, 2),
            _ => continue,
        };
        assert!(v.is_valid(&body), "{:?}: {:?}", m.source, errors(v, &body));
        counts[i] += 1;
    }
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    for u in &truth.token_uses {
        let record = serde_json::to_value(u).unwrap();
        assert!(
            token_use.is_valid(&record),
            "{:?}",
            errors(&token_use, &record)
        );
    }
    let mut broken = serde_json::to_value(&truth.token_uses[0]).unwrap();
    broken.as_object_mut().unwrap().remove("action");
    assert!(
        !token_use.is_valid(&broken),
        "a record without action is invalid"
    );
}

#[test]
fn alert_record_validates() {
    let v = validator("alert.schema.json");
    let alert = Alert {
        alert_id: "not_allowlisted:platform/app-backend->payments/ledger".into(),
        rule: "not_allowlisted".into(),
        severity: Severity::High,
        summary: "platform/app-backend used its job token on payments/ledger outside the allowlist"
            .into(),
        first_seen_ms: 1_748_944_800_000,
        last_seen_ms: 1_748_944_900_000,
        count: 3,
        source_project_path: "platform/app-backend".into(),
        target_project_path: "payments/ledger".into(),
        actor_id: 4821,
        actor_kind: "human".into(),
        action: "repository.read".into(),
        job_id: Some(987_654),
        event_time_ms: 1_748_944_900_000,
        details: json!({"jobs": [987654]}),
        status: AlertStatus::Open,
        acked_by: String::new(),
    };
    let record = serde_json::to_value(&alert).unwrap();
    assert!(v.is_valid(&record), "{:?}", errors(&v, &record));
    let mut bad = record.clone();
    bad["status"] = json!("closed");
    assert!(!v.is_valid(&bad));
}
