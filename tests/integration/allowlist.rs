//! `allowlisted` as of each use's event time, end to end on the real services (issue 22):
//! GitLab-shaped audit events through Kafka → tokentrail → ClickHouse `token_use` and
//! `alerts`. Every event is on one partition in time order unless a case says otherwise, so
//! each use is still held when the change after it is read.
//!
//! Cases, one protected project each:
//! (a) a removal one second after a use;
//! (b) an addition read before a use it follows;
//! (c) a policies update on a top-level group entry (GitLab names the group by its display
//!     name), then a use from a project in a subgroup;
//! (d) a project transferred to another group after its group was allowlisted; the
//!     maintainer then admits the new group and removes the old one.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::*;

/// 2025-06-03T10:00:00Z
const T: i64 = 1_748_944_800_000;
const IP: &str = "10.20.30.40";
const MAINTAINER: i64 = 77;

pub(crate) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An audit body shaped like the shared samples.
#[allow(clippy::too_many_arguments)]
pub(crate) fn body(
    id: Value,
    event_type: &str,
    author: i64,
    at: i64,
    entity: (i64, &str),
    target: (i64, &str, &str),
    message: &str,
) -> Value {
    let (target_id, target_type, target_details) = target;
    json!({
        "id": id, "author_id": author, "author_name": format!("user {author}"),
        "entity_id": entity.0, "entity_type": "Project", "entity_path": entity.1,
        "target_id": target_id, "target_type": target_type, "target_details": target_details,
        "ip_address": IP, "created_at": iso(at), "event_type": event_type,
        "details": {
            "event_name": event_type, "author_name": format!("user {author}"),
            "author_class": "User", "target_id": target_id, "target_type": target_type,
            "target_details": target_details, "custom_message": message, "ip_address": IP,
            "entity_path": entity.1
        }
    })
}

/// A job-token use of `target` by job `job` of `source`: auth, then a clone 100 ms later.
pub(crate) fn use_of(
    author: i64,
    at: i64,
    source: (i64, &str),
    target: (i64, &str),
    job: i64,
) -> [Value; 2] {
    let job_text = job.to_string();
    let auth = body(
        json!(format!("auth-{job}")),
        "user_authenticated_using_job_token",
        author,
        at - 100,
        source,
        (job, "Ci::Build", &job_text),
        &format!("user {author} authenticated using job token of job id: {job}"),
    );
    let mut clone = body(
        json!(format!("clone-{job}")),
        "repository_git_operation",
        author,
        at,
        target,
        (target.0, "Project", target.1),
        "",
    );
    clone["details"]["custom_message"] =
        json!({ "protocol": "http", "action": "git-upload-pack", "verb": "clone" });
    [auth, clone]
}

struct Allowlist {
    protected: (i64, &'static str),
    next_id: i64,
}

impl Allowlist {
    /// `secure_ci_job_token_<kind>` on the protected project; `member` = (id, type, path).
    fn change(&mut self, kind: &str, at: i64, member: Option<(i64, &str, &str)>) -> Value {
        self.next_id += 1;
        let p = self.protected.1;
        let (target, message) = match (kind, member) {
            ("inbound_enabled", _) | (_, None) => (
                (
                    self.protected.0 + 500_000,
                    "ProjectCiCdSetting",
                    "unknown".to_string(),
                ),
                "Secure ci_job_token was enabled for inbound".to_string(),
            ),
            ("policies_updated", Some((id, ty, name))) => (
                (id, ty, name.to_string()),
                "CI job token updated to default permissions: false, policies: read_jobs".into(),
            ),
            (kind, Some((id, ty, path))) => {
                let (verb, list) = match (kind.ends_with("added"), ty) {
                    (true, "Project") => ("added to", "inbound list of allowed projects"),
                    (false, "Project") => ("removed from", "inbound list of allowed projects"),
                    (true, _) => ("added to", "list of allowed groups"),
                    (false, _) => ("removed from", "list of allowed groups"),
                };
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                (
                    (id, ty, name),
                    format!("{ty} {path} was {verb} {list} for {p}"),
                )
            }
        };
        body(
            json!(self.next_id),
            &format!("secure_ci_job_token_{kind}"),
            MAINTAINER,
            at,
            self.protected,
            (target.0, target.1, &target.2),
            &message,
        )
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct StoredUse {
    job_id: Option<i64>,
    allowlisted: Option<u8>,
}

#[derive(clickhouse::Row, Deserialize)]
struct StoredMember {
    member_id: Option<i64>,
    member_path: String,
}

pub(crate) async fn produce(producer: &FutureProducer, topic: &str, bodies: &[Value]) {
    let messages: Vec<Outgoing> = bodies
        .iter()
        .map(|b| Outgoing::new(serde_json::to_vec(b).unwrap()).partition(0))
        .collect();
    produce_all(producer, topic, &messages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_is_decided_at_each_uses_event_time() {
    let svc = services();
    let name = unique("it_allowlist");
    let mut s = settings(&svc, &name);
    s.alerting.enabled = true;
    let client = prepare_ingest(&svc, &s).await;

    let app = |path| (1337, path);
    let hour = 3_600_000;
    let platform = (88, "Group", "platform-eng");
    let other = (99, "Group", "other");
    let mut events = Vec::new();
    // (a) removal one second after an earlier use.
    let mut a = Allowlist {
        protected: (3001, "payments/ledger-a"),
        next_id: 553_000,
    };
    let member = (1337, "Project", "platform-eng/app-backend");
    events.push(a.change("project_added", T - hour, Some(member)));
    events.extend(use_of(
        5001,
        T,
        app("platform-eng/app-backend"),
        a.protected,
        9001,
    ));
    events.push(a.change("project_removed", T + 1_000, Some(member)));
    events.extend(use_of(
        5001,
        T + 2_000,
        app("platform-eng/app-backend"),
        a.protected,
        9002,
    ));
    // (b) addition read before a use it follows.
    let mut b = Allowlist {
        protected: (3002, "payments/ledger-b"),
        next_id: 553_100,
    };
    events.push(b.change("inbound_enabled", T - hour, None));
    events.push(b.change("project_added", T + 1_000, Some(member)));
    events.extend(use_of(
        5002,
        T,
        app("platform-eng/app-backend"),
        b.protected,
        9011,
    ));
    events.extend(use_of(
        5002,
        T + 2_000,
        app("platform-eng/app-backend"),
        b.protected,
        9012,
    ));
    // (c) policies update on a top-level group entry, then a use from a subgroup's project.
    let mut c = Allowlist {
        protected: (3003, "payments/ledger-c"),
        next_id: 553_200,
    };
    events.push(c.change("group_added", T - hour, Some(platform)));
    let display_name = (88, "Group", "Platform Engineering");
    events.push(c.change("policies_updated", T - 60_000, Some(display_name)));
    events.extend(use_of(
        5003,
        T,
        (1400, "platform-eng/tools/cli"),
        c.protected,
        9021,
    ));
    // (d) project transferred from platform-eng to other after platform-eng was allowlisted.
    let mut d = Allowlist {
        protected: (3004, "payments/ledger-d"),
        next_id: 553_300,
    };
    events.push(d.change("group_added", T - hour, Some(platform)));
    events.extend(use_of(
        5004,
        T,
        app("platform-eng/app-backend"),
        d.protected,
        9031,
    ));
    events.extend(use_of(
        5004,
        T + 10_000,
        app("other/app-backend"),
        d.protected,
        9032,
    ));
    events.push(d.change("group_added", T + 11_000, Some(other)));
    events.push(d.change("group_removed", T + 12_000, Some(platform)));
    events.extend(use_of(
        5004,
        T + 13_000,
        app("other/app-backend"),
        d.protected,
        9033,
    ));

    let producer = producer(&svc.brokers);
    produce(&producer, &s.kafka.audit_topics[0], &events).await;
    let run = RunningIngest::start(&s);
    let expected_events = events.len() as u64;
    eventually(Duration::from_secs(60), "audit events stored", || async {
        let n: u64 = client
            .query("SELECT count() FROM audit_events_dedup")
            .fetch_one()
            .await
            .unwrap();
        (n >= expected_events).then_some(())
    })
    .await;
    // Graceful shutdown decides whatever the correlator still holds and writes it.
    run.stop().await;

    let uses: Vec<StoredUse> = client
        .query("SELECT job_id, allowlisted FROM token_use_dedup ORDER BY job_id")
        .fetch_all()
        .await
        .unwrap();
    let got: BTreeMap<i64, Option<u8>> = uses
        .into_iter()
        .filter_map(|u| Some((u.job_id?, u.allowlisted)))
        .collect();
    let want: BTreeMap<i64, Option<u8>> = [
        (9001, Some(1)),
        (9002, Some(0)),
        (9011, Some(0)),
        (9012, Some(1)),
        (9021, Some(1)),
        (9031, Some(1)),
        (9032, Some(0)),
        (9033, Some(1)),
    ]
    .into();
    assert_eq!(
        got, want,
        "allowlisted per job (1 = on the allowlist at the use)"
    );

    let alerted: Vec<Option<i64>> = client
        .query("SELECT job_id FROM alerts_latest WHERE rule = 'not_allowlisted' ORDER BY job_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        alerted,
        [Some(9002), Some(9011), Some(9032)],
        "not_allowlisted alerts only for uses the allowlist did not admit at their time"
    );

    // The policies update stored no display name, and the group is one member of ledger-c.
    let members: Vec<StoredMember> = client
        .query(
            "SELECT member_id, member_path FROM allowlist_state \
             WHERE protected_project_path = 'payments/ledger-c'",
        )
        .fetch_all()
        .await
        .unwrap();
    let members: Vec<(Option<i64>, String)> = members
        .into_iter()
        .map(|m| (m.member_id, m.member_path))
        .collect();
    assert_eq!(members, [(Some(88), "platform-eng".to_string())]);
    let stored_name: u64 = client
        .query("SELECT count() FROM allowlist_changes WHERE member_path = 'Platform Engineering'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        stored_name, 0,
        "a display name is never stored as a member path"
    );
}
