//! One record of every kind the SIEM feed exports, with values that need escaping in every
//! format (`=`, `\`, `|`, CR/LF, non-ASCII), shared by the golden and OCSF schema tests.

#![allow(dead_code)]

use tokentrail::model::{ActorKind, Alert, AlertStatus, Correlation, Severity, TokenUse};
use tokentrail::siem::record::{LifecycleRecord, SiemRecord, StoredAlert, StoredTokenUse};

pub fn token_use_matched() -> SiemRecord {
    SiemRecord::TokenUse(StoredTokenUse {
        record_key: "tu:4f1c9a".into(),
        ingested_at_ms: 1_735_787_045_900,
        token_use: TokenUse {
            event_time_ms: 1_735_787_045_123,
            actor_id: 4021,
            // Display names are free text in GitLab.
            actor_name: "Zoë O'Neil | ops=lead \\ admin\r\nsecond line ✓".into(),
            actor_username: Some("zoe.oneil".into()),
            actor_kind: ActorKind::Human,
            source_project_id: Some(101),
            source_project_path: "platform/deployer".into(),
            target_project_id: Some(202),
            target_project_path: "platform/shared-libs".into(),
            action: "repository.read".into(),
            job_id: Some(777_001),
            pipeline_id: Some(55_001),
            git_ref: Some("feature/a=b|c".into()),
            runner_id: Some(12),
            token_type: "ci_job_token".into(),
            ip_address: "10.20.30.40".into(),
            same_project: false,
            allowlisted: Some(true),
            correlation: Correlation::Matched,
            gap_ms: 37,
        },
    })
}

pub fn token_use_auth_only() -> SiemRecord {
    SiemRecord::TokenUse(StoredTokenUse {
        record_key: "tu:auth-only-9".into(),
        ingested_at_ms: 1_735_787_100_000,
        token_use: TokenUse {
            event_time_ms: 1_735_787_099_500,
            actor_id: 9001,
            actor_name: "project_101_bot".into(),
            actor_username: None,
            actor_kind: ActorKind::ProjectBot,
            source_project_id: Some(101),
            source_project_path: "platform/deployer".into(),
            target_project_id: None,
            target_project_path: String::new(),
            action: "auth".into(),
            job_id: Some(777_002),
            pipeline_id: None,
            git_ref: None,
            runner_id: None,
            token_type: "ci_job_token".into(),
            // Not an IP address: left out of every IP field.
            ip_address: "unknown".into(),
            same_project: false,
            allowlisted: None,
            correlation: Correlation::AuthOnly,
            gap_ms: 0,
        },
    })
}

pub fn lifecycle() -> SiemRecord {
    SiemRecord::Lifecycle(LifecycleRecord {
        dedup_key: "saved:88123".into(),
        event_time_ms: 1_735_790_000_000,
        event_type: "project_access_token_created".into(),
        token_kind: "project_access_token".into(),
        operation: "created".into(),
        token_id: Some(31337),
        scope_type: "Project".into(),
        scope_id: Some(202),
        scope_path: "platform/shared-libs".into(),
        author_id: 4021,
        author_name: "Zoë O'Neil".into(),
        actor_kind: ActorKind::Human,
        target_details: "release-bot=ci|token\\v2".into(),
    })
}

pub fn alert() -> SiemRecord {
    SiemRecord::Alert(StoredAlert {
        alert: Alert {
            alert_id: "al-7e2d".into(),
            rule: "cross_project_not_allowlisted".into(),
            severity: Severity::High,
            summary: "platform/deployer reached platform/secrets | not allowlisted\nsee details"
                .into(),
            first_seen_ms: 1_735_787_045_123,
            last_seen_ms: 1_735_787_345_123,
            count: 3,
            source_project_path: "platform/deployer".into(),
            target_project_path: "platform/secrets".into(),
            actor_id: 4021,
            actor_kind: "human".into(),
            action: "secret.read".into(),
            job_id: Some(777_001),
            event_time_ms: 1_735_787_345_123,
            details: serde_json::from_str(r#"{"jobs":[777001,777003],"note":"a=b \\ c ✓"}"#)
                .unwrap(),
            status: AlertStatus::Acked,
            acked_by: "sec-oncall".into(),
        },
        updated_at_ms: 1_735_787_400_000,
    })
}

/// `(golden file stem, record)` for every record kind.
pub fn all() -> Vec<(&'static str, SiemRecord)> {
    vec![
        ("token_use_matched", token_use_matched()),
        ("token_use_auth_only", token_use_auth_only()),
        ("lifecycle", lifecycle()),
        ("alert", alert()),
    ]
}
