use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use serde_json::Value;
use tokentrail::model::{Correlation, SourceKind, TokenUse};
use tokentrail::simulate::ndjson::{from_ndjson_line, to_ndjson_line};
use tokentrail::simulate::{
    GroundTruth, SimConfig, SimMessage, Simulator, generate, truth_from_json, truth_to_json,
};

fn header<'a>(m: &'a SimMessage, name: &str) -> Option<&'a str> {
    m.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn time_ms(v: &Value) -> Option<i64> {
    let s = v.get("created_at")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Good audit events in stream order, with their message index (poison excluded).
fn audit_events(msgs: &[SimMessage], truth: &GroundTruth) -> Vec<(usize, Value)> {
    let bad_msg: HashSet<u64> = truth
        .bad_messages
        .iter()
        .filter(|b| b.element.is_none())
        .map(|b| b.index)
        .collect();
    let bad_el: HashSet<(u64, usize)> = truth
        .bad_messages
        .iter()
        .filter_map(|b| b.element.map(|e| (b.index, e)))
        .collect();
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        if m.source != SourceKind::AuditStream || bad_msg.contains(&(i as u64)) {
            continue;
        }
        match serde_json::from_slice::<Value>(&m.payload).expect("good audit payload is JSON") {
            Value::Array(items) => {
                for (e, item) in items.into_iter().enumerate() {
                    if !bad_el.contains(&(i as u64, e)) {
                        out.push((i, item));
                    }
                }
            }
            v => out.push((i, v)),
        }
    }
    out
}

fn is_stream_only(v: &Value) -> bool {
    v["id"].is_string()
}

/// Content key of an event without its per-dispatch `id`.
fn content(v: &Value) -> String {
    let mut c = v.clone();
    c.as_object_mut().unwrap().remove("id");
    c.to_string()
}

fn webhooks(msgs: &[SimMessage]) -> Vec<(&SimMessage, Value)> {
    msgs.iter()
        .filter(|m| m.source == SourceKind::Webhook)
        .filter_map(|m| {
            serde_json::from_slice::<Value>(&m.payload)
                .ok()
                .map(|v| (m, v))
        })
        .collect()
}

type Key = (i64, i64, Option<i64>, String, i64);
/// (time, job id, source project id, matched)
type Auth = (i64, i64, i64, bool);

fn key(u: &TokenUse) -> Key {
    (
        u.job_id.unwrap(),
        u.source_project_id.unwrap(),
        u.target_project_id,
        u.action.to_string(),
        u.event_time_ms,
    )
}

/// A naive reference correlator: dedup, then match each resource event to the nearest
/// preceding job-token auth of the same (author, IP) within 2 s; unmatched auths are `auth`.
fn correlate(msgs: &[SimMessage], truth: &GroundTruth) -> BTreeSet<Key> {
    let mut seen = HashSet::new();
    let mut auths: HashMap<(i64, String), Vec<Auth>> = HashMap::new();
    let mut resources = Vec::new();
    for (_, v) in audit_events(msgs, truth) {
        let dedup = if is_stream_only(&v) {
            content(&v)
        } else {
            v["id"].to_string()
        };
        if !seen.insert(dedup) {
            continue;
        }
        let t = time_ms(&v).unwrap();
        let author = v["author_id"].as_i64().unwrap();
        let ip = v["ip_address"].as_str().unwrap().to_string();
        let entity = v["entity_id"].as_i64().unwrap();
        let action = match v["event_type"].as_str().unwrap() {
            "user_authenticated_using_job_token" => {
                auths.entry((author, ip)).or_default().push((
                    t,
                    v["target_id"].as_i64().unwrap(),
                    entity,
                    false,
                ));
                continue;
            }
            "repository_git_operation" if v["details"]["custom_message"]["verb"] == "push" => {
                "repository.write"
            }
            "repository_git_operation" => "repository.read",
            "job_artifact_downloaded" => "artifact.read",
            "multi_project_downstream_pipeline_created" => "pipeline.trigger",
            "secrets_manager_read_project_secret" => "secret.read",
            _ => continue,
        };
        resources.push((t, author, ip, entity, action));
    }
    for list in auths.values_mut() {
        list.sort();
    }
    let mut out = BTreeSet::new();
    for (t, author, ip, target, action) in resources {
        let Some(list) = auths.get_mut(&(author, ip)) else {
            continue;
        };
        let i = list.partition_point(|a| a.0 <= t);
        if i == 0 || t - list[i - 1].0 > 2_000 {
            continue;
        }
        let a = &mut list[i - 1];
        a.3 = true;
        out.insert((a.1, a.2, Some(target), action.to_string(), t));
    }
    for a in auths.values().flatten().filter(|a| !a.3) {
        out.insert((a.1, a.2, None, "auth".to_string(), a.0));
    }
    out
}

#[test]
fn deterministic_for_a_seed_and_different_across_seeds() {
    let cfg = SimConfig::small();
    let (a, ta) = generate(&cfg);
    let (b, tb) = generate(&cfg);
    assert_eq!(a, b);
    assert_eq!(truth_to_json(&ta), truth_to_json(&tb));
    let (c, _) = generate(&SimConfig { seed: 7, ..cfg });
    assert_ne!(a, c);
}

#[test]
fn streaming_iterator_matches_generate() {
    let cfg = SimConfig::small();
    let (all, truth) = generate(&cfg);
    let mut sim = Simulator::new(&cfg);
    let streamed: Vec<SimMessage> = sim.by_ref().collect();
    assert_eq!(all, streamed);
    assert_eq!(truth, sim.into_truth());
}

#[test]
fn counts_follow_the_config() {
    let cfg = SimConfig::small();
    let (msgs, truth) = generate(&cfg);
    assert_eq!(
        truth.audit_messages + truth.webhook_messages,
        msgs.len() as u64
    );
    let hooks = webhooks(&msgs);
    let job_ids: HashSet<i64> = hooks
        .iter()
        .filter(|(_, v)| v["object_kind"] == "build")
        .map(|(_, v)| v["build_id"].as_i64().unwrap())
        .collect();
    assert_eq!(job_ids.len(), cfg.jobs);
    let idem: HashSet<&str> = hooks
        .iter()
        .map(|(m, _)| header(m, "Idempotency-Key").unwrap())
        .collect();
    assert_eq!(idem.len() as u64, truth.distinct_webhooks);
    let uses = truth.token_uses.len() as f64 / cfg.jobs as f64;
    assert!((1.5..=3.5).contains(&uses), "uses per job {uses}");
    let bad = truth.bad_messages.len() as f64 / msgs.len() as f64;
    assert!(
        bad > cfg.bad_share * 0.3 && bad < cfg.bad_share * 3.0,
        "bad share {bad}"
    );
    let batches = msgs
        .iter()
        .filter(|m| m.source == SourceKind::AuditStream && m.payload.first() == Some(&b'['))
        .count() as f64;
    let share = batches / truth.audit_messages as f64;
    assert!(
        share > cfg.batch_share * 0.4 && share < cfg.batch_share * 2.0,
        "batch share {share}"
    );
    for w in msgs.windows(2) {
        assert!(w[0].timestamp_ms <= w[1].timestamp_ms, "delivery order");
    }
    let distinct: HashSet<String> = audit_events(&msgs, &truth)
        .iter()
        .map(|(_, v)| {
            if is_stream_only(v) {
                content(v)
            } else {
                v["id"].to_string()
            }
        })
        .collect();
    assert_eq!(distinct.len() as u64, truth.distinct_audit_events);
}

#[test]
fn payloads_are_well_formed_except_planned_poison() {
    let cfg = SimConfig::small();
    let (msgs, truth) = generate(&cfg);
    let bad: HashMap<(u64, Option<usize>), &str> = truth
        .bad_messages
        .iter()
        .map(|b| ((b.index, b.element), b.reason.as_str()))
        .collect();
    let kinds: HashSet<&str> = bad.values().copied().collect();
    for k in [
        "invalid_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
    ] {
        assert!(kinds.contains(k), "no poison of kind {k}");
    }
    let valid =
        |v: &Value| time_ms(v).is_some() && v["author_id"].is_i64() && v["details"].is_object();
    for (i, m) in msgs.iter().enumerate() {
        let parsed = serde_json::from_slice::<Value>(&m.payload);
        if let Some(reason) = bad.get(&(i as u64, None)) {
            match *reason {
                "invalid_json" => assert!(parsed.is_err()),
                "not_an_object" => assert!(!parsed.unwrap().is_object()),
                _ => assert!(!valid(&parsed.unwrap())),
            }
            continue;
        }
        let v = parsed.unwrap_or_else(|e| panic!("message {i} is not JSON: {e}"));
        match (m.source, v) {
            (SourceKind::Webhook, v) => assert!(v["object_kind"].is_string()),
            (SourceKind::AuditStream, Value::Array(items)) => {
                assert!((1..=20).contains(&items.len()), "batch of {}", items.len());
                assert!(header(m, "X-Gitlab-Audit-Event-Type").is_none());
                for (e, item) in items.iter().enumerate() {
                    assert_eq!(
                        valid(item),
                        !bad.contains_key(&(i as u64, Some(e))),
                        "message {i} element {e}"
                    );
                }
            }
            (SourceKind::AuditStream, v) => {
                assert!(valid(&v), "message {i}");
                assert_eq!(
                    header(m, "X-Gitlab-Audit-Event-Type"),
                    v["event_type"].as_str()
                );
                assert_eq!(m.key.as_deref(), Some(v["author_id"].to_string().as_str()));
            }
        }
    }
}

#[test]
fn every_token_use_belongs_to_a_hooked_job() {
    let (msgs, truth) = generate(&SimConfig::small());
    let jobs: HashMap<i64, (i64, i64)> = webhooks(&msgs)
        .iter()
        .filter(|(_, v)| v["object_kind"] == "build")
        .map(|(_, v)| {
            (
                v["build_id"].as_i64().unwrap(),
                (
                    v["project_id"].as_i64().unwrap(),
                    v["user"]["id"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    for u in &truth.token_uses {
        let (project, user) = jobs[&u.job_id.unwrap()];
        assert_eq!(Some(project), u.source_project_id);
        assert_eq!(user, u.actor_id);
        assert_eq!(u.same_project, u.source_project_id == u.target_project_id);
    }
    assert!(
        truth
            .token_uses
            .iter()
            .any(|u| u.correlation == Correlation::AuthOnly)
    );
    assert!(truth.token_uses.iter().any(|u| u.same_project));
    assert!(truth.token_uses.iter().any(|u| u.allowlisted == Some(true)));
}

#[test]
fn reference_correlator_recovers_the_ground_truth() {
    for seed in [1, 2, 3] {
        // Few users and runners: many same-user concurrent jobs behind one runner IP.
        let cfg = SimConfig {
            seed,
            users: 4,
            concurrency: 12,
            ..SimConfig::small()
        };
        let (msgs, truth) = generate(&cfg);
        let expected: BTreeSet<Key> = truth.token_uses.iter().map(key).collect();
        assert_eq!(expected.len(), truth.token_uses.len(), "keys are unique");
        let got = correlate(&msgs, &truth);
        let missing: Vec<_> = expected.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&expected).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "seed {seed}: missing {missing:?} extra {extra:?}"
        );
    }
}

#[test]
fn duplicates_change_only_the_id() {
    let (msgs, truth) = generate(&SimConfig::small());
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for (_, v) in audit_events(&msgs, &truth)
        .iter()
        .filter(|(_, v)| is_stream_only(v))
    {
        groups
            .entry(content(v))
            .or_default()
            .push(v["id"].as_str().unwrap().to_string());
    }
    let dups: Vec<_> = groups.values().filter(|ids| ids.len() > 1).collect();
    assert!(!dups.is_empty());
    for ids in dups {
        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "re-dispatch reuses an id");
    }
    // Webhook retries: same Idempotency-Key and body, new request UUID.
    let mut by_key: HashMap<&str, Vec<&SimMessage>> = HashMap::new();
    for (m, _) in webhooks(&msgs) {
        by_key
            .entry(header(m, "Idempotency-Key").unwrap())
            .or_default()
            .push(m);
    }
    let retried: Vec<_> = by_key.values().filter(|v| v.len() > 1).collect();
    assert!(!retried.is_empty());
    for r in retried {
        assert_eq!(r[0].payload, r[1].payload);
        assert_ne!(
            header(r[0], "X-Gitlab-Webhook-UUID"),
            header(r[1], "X-Gitlab-Webhook-UUID")
        );
    }
}

#[test]
fn no_anomalies_when_share_is_zero() {
    let cfg = SimConfig {
        anomaly_share: 0.0,
        jobs: 1_000,
        ..SimConfig::small()
    };
    let (msgs, truth) = generate(&cfg);
    assert!(truth.anomalies.is_empty());
    for u in &truth.token_uses {
        assert_ne!(u.action, "repository.write");
        assert_ne!(u.allowlisted, Some(false), "{u:?}");
        assert!(
            !u.target_project_path.contains("secrets") && !u.target_project_path.contains("prod")
        );
    }
    for (_, v) in audit_events(&msgs, &truth) {
        let t = v["event_type"].as_str().unwrap();
        assert_ne!(t, "secure_ci_job_token_inbound_disabled");
        if t == "project_access_token_created" {
            assert!(!v["author_name"].as_str().unwrap().contains("bot"));
        }
    }
}

#[test]
fn every_anomaly_kind_appears_when_enabled() {
    let (_, truth) = generate(&SimConfig::small());
    let kinds: HashSet<&str> = truth.anomalies.iter().map(|a| a.kind.as_str()).collect();
    for k in [
        "not_allowlisted",
        "push",
        "new_edge",
        "crown_jewel",
        "allowlist_disabled",
        "group_admitted",
        "bot_lifecycle",
    ] {
        assert!(kinds.contains(k), "missing anomaly {k}: {kinds:?}");
    }
    for u in truth
        .token_uses
        .iter()
        .filter(|u| u.action == "repository.write")
    {
        assert!(u.same_project);
    }
}

/// The cases whose `allowlisted` depends on when it is judged (issue 22) are in the stream.
#[test]
fn allowlist_changes_close_to_uses_are_generated() {
    let cfg = SimConfig {
        jobs: 6_000,
        ..SimConfig::default()
    };
    let (msgs, truth) = generate(&cfg);
    let events = audit_events(&msgs, &truth);
    let of_type = |t: &'static str| {
        events
            .iter()
            .filter(move |(_, v)| v["event_type"] == t)
            .map(|(_, v)| v)
    };
    // A group entry's policies update names the group by its display name.
    assert!(
        of_type("secure_ci_job_token_policies_updated")
            .any(|v| v["target_type"] == "Group"
                && v["target_details"].as_str().unwrap().contains(' ')),
        "a policies update on a group entry"
    );
    // A project transferred to another group: one id, two paths.
    let mut paths: HashMap<i64, HashSet<&str>> = HashMap::new();
    for u in &truth.token_uses {
        let id = u.source_project_id.unwrap();
        paths.entry(id).or_default().insert(&u.source_project_path);
    }
    assert!(paths.values().any(|p| p.len() > 1), "a transferred project");
    // A project entry removed seconds after a use of the same (source, target).
    let removals: Vec<(i64, i64, i64)> = of_type("secure_ci_job_token_project_removed")
        .map(|v| {
            let (t, s) = (v["entity_id"].as_i64(), v["target_id"].as_i64());
            (t.unwrap(), s.unwrap(), time_ms(v).unwrap())
        })
        .collect();
    let close = truth.token_uses.iter().any(|u| {
        removals.iter().any(|&(t, s, at)| {
            u.target_project_id == Some(t)
                && u.source_project_id == Some(s)
                && (1..5_000).contains(&(at - u.event_time_ms))
                && u.allowlisted == Some(true)
        })
    });
    assert!(close, "a removal seconds after an admitted use");
    // GitLab updates policies of existing entries only.
    let mut changes: Vec<&Value> = events
        .iter()
        .map(|(_, v)| v)
        .filter(|v| {
            v["event_type"]
                .as_str()
                .unwrap()
                .starts_with("secure_ci_job_token_")
        })
        .collect();
    changes.sort_by_key(|v| time_ms(v));
    let mut present: HashSet<(i64, String, i64)> = HashSet::new();
    for v in changes {
        let event_type = v["event_type"].as_str().unwrap();
        let member = (
            v["entity_id"].as_i64().unwrap(),
            v["target_type"].as_str().unwrap().to_string(),
            v["target_id"].as_i64().unwrap(),
        );
        if event_type.ends_with("_added") {
            present.insert(member);
        } else if event_type.ends_with("_removed") {
            present.remove(&member);
        } else if event_type.ends_with("policies_updated") {
            assert!(
                present.contains(&member),
                "policies of an absent entry: {v}"
            );
        }
    }
}

#[test]
fn ndjson_round_trips_byte_exact() {
    let (msgs, truth) = generate(&SimConfig::small());
    let mut forms = HashSet::new();
    for m in &msgs {
        let line = to_ndjson_line(m);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).expect("line is JSON");
        for f in ["payload", "payload_text", "payload_b64"] {
            if v.get(f).is_some() {
                forms.insert(f);
            }
        }
        let back = from_ndjson_line(&(line + "\n")).unwrap();
        assert_eq!(&back, m);
    }
    assert_eq!(forms.len(), 3, "all payload encodings exercised: {forms:?}");
    let json = truth_to_json(&truth);
    assert_eq!(truth_from_json(&json).unwrap(), truth);
}

#[test]
fn generation_speed() {
    // 500k messages in release; a tenth in debug builds to keep `cargo test` quick.
    let target = if cfg!(debug_assertions) {
        50_000
    } else {
        500_000
    };
    let cfg = SimConfig {
        jobs: target / 7,
        ..SimConfig::default()
    };
    let t = Instant::now();
    let mut sim = Simulator::new(&cfg);
    let (mut n, mut bytes) = (0usize, 0usize);
    for m in sim.by_ref() {
        n += 1;
        bytes += m.payload.len();
    }
    let truth = sim.into_truth();
    let took = t.elapsed();
    println!(
        "generated {n} messages ({} MB payload, {} token uses, {} jobs) in {:.2?} ({:.0} msg/s)",
        bytes / 1_000_000,
        truth.token_uses.len(),
        cfg.jobs,
        took,
        n as f64 / took.as_secs_f64()
    );
    assert!(n > target / 2);
}
