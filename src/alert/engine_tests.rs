//! Per rule: fires, does not fire, exception honoured, expired exception ignored; plus
//! suppression counts and replay behaviour.

use super::*;
use crate::alert::settings::{ActorScope, Expiry};
use crate::model::{
    ActorKind, AllowlistChange, AllowlistChangeKind, AuditEvent, AuditMeaning, Correlation,
    TokenLifecycle, TokenUse,
};

const T0: i64 = 1_748_944_800_000;
const HOUR: i64 = 3_600_000;

fn use_(source: &str, target: &str, action: &str, t: i64) -> TokenUse {
    let id = |p: &str| Some(p.bytes().map(i64::from).sum::<i64>());
    TokenUse {
        event_time_ms: t,
        actor_id: 7,
        actor_name: "Ada".into(),
        actor_username: Some("ada".into()),
        actor_kind: ActorKind::Human,
        source_project_id: id(source),
        source_project_path: source.into(),
        target_project_id: id(target),
        target_project_path: target.into(),
        action: action.into(),
        job_id: Some(t),
        pipeline_id: Some(1),
        git_ref: Some("main".into()),
        runner_id: Some(1),
        token_type: "ci_job_token".into(),
        ip_address: "10.0.0.1".into(),
        same_project: source == target,
        allowlisted: Some(true),
        correlation: Correlation::Matched,
        gap_ms: 5,
    }
}

fn audit(meaning: AuditMeaning, kind: ActorKind, t: i64) -> Event {
    Event::Audit(AuditEvent {
        id: t.to_string(),
        dedup_key: format!("saved:{t}"),
        stream_only: false,
        event_type: "x".into(),
        author_id: 99,
        author_name: "actor".into(),
        author_class: None,
        actor_kind: kind,
        entity_id: Some(1),
        entity_type: "Project".into(),
        entity_path: "g/prot".into(),
        target_id: None,
        target_type: String::new(),
        target_details: String::new(),
        ip_address: "10.0.0.2".into(),
        created_at_ms: t,
        details_json: "{}".into(),
        meaning,
    })
}

fn allowlist(change: AllowlistChangeKind, member: Option<&str>, t: i64) -> Event {
    audit(
        AuditMeaning::Allowlist(AllowlistChange {
            change,
            protected_project_id: Some(1),
            protected_project_path: "g/prot".into(),
            member_type: member.map(|_| "Group".into()),
            member_id: member.map(|_| 50),
            member_path: member.map(str::to_string),
            default_permissions: None,
            policies: vec![],
        }),
        ActorKind::Human,
        t,
    )
}

fn lifecycle(kind: ActorKind, operation: &str, t: i64) -> Event {
    audit(
        AuditMeaning::TokenLifecycle(TokenLifecycle {
            token_kind: "project_access_token".into(),
            operation: operation.into(),
            token_id: Some(3),
            scope_type: "Project".into(),
            scope_id: Some(1),
            scope_path: "g/prot".into(),
        }),
        kind,
        t,
    )
}

/// Only `rule` enabled, so each test sees one rule's behaviour.
fn only(rule: RuleId) -> AlertingSettings {
    let mut s = AlertingSettings::default();
    let r = &mut s.rules;
    r.not_allowlisted.enabled = rule == RuleId::NotAllowlisted;
    r.allowlist_weakened.enabled = rule == RuleId::AllowlistWeakened;
    r.new_edge.enabled = rule == RuleId::NewEdge;
    r.push.enabled = rule == RuleId::Push;
    r.crown_jewel.enabled = rule == RuleId::CrownJewel;
    r.crown_jewel.patterns = vec!["*secrets*".into()];
    r.unexpected_actor.enabled = rule == RuleId::UnexpectedActor;
    r.unexpected_actor.scopes = vec![ActorScope {
        group: Some("payments".into()),
        expected: vec![ActorKind::Human],
        ..ActorScope::default()
    }];
    r.token_lifecycle.enabled = rule == RuleId::TokenLifecycle;
    r.allowlist_drift.enabled = rule == RuleId::AllowlistDrift;
    r.coverage_gap.enabled = rule == RuleId::CoverageGap;
    s
}

fn exception(project: &str, expires_ms: i64) -> Exception {
    Exception {
        project: Some(project.into()),
        reason: "migration in progress".into(),
        expires: Expiry::Millis(expires_ms),
        ..Exception::default()
    }
}

fn not_allowlisted_use(t: i64) -> TokenUse {
    let mut r = use_("g/a", "g/b", "artifact.read", t);
    r.allowlisted = Some(false);
    r
}

/// (rule, a triggering input, a harmless input, the alert's target path)
enum Input {
    Record(TokenUse),
    Event(Event),
}

fn cases() -> Vec<(RuleId, Input, Input, &'static str)> {
    let mut bot = use_("payments/api", "g/lib", "artifact.read", T0);
    bot.actor_kind = ActorKind::ProjectBot;
    vec![
        (
            RuleId::NotAllowlisted,
            Input::Record(not_allowlisted_use(T0)),
            Input::Record(use_("g/a", "g/b", "artifact.read", T0)),
            "g/b",
        ),
        (
            RuleId::AllowlistWeakened,
            Input::Event(allowlist(AllowlistChangeKind::InboundDisabled, None, T0)),
            Input::Event(allowlist(
                AllowlistChangeKind::GroupAdded,
                Some("top/sub"),
                T0,
            )),
            "g/prot",
        ),
        (
            RuleId::Push,
            Input::Record(use_("g/a", "g/a", "repository.write", T0)),
            Input::Record(use_("g/a", "g/a", "repository.read", T0)),
            "g/a",
        ),
        (
            RuleId::CrownJewel,
            Input::Record(use_("g/a", "infra/secrets-vault", "secret.read", T0)),
            Input::Record(use_("g/a", "infra/tools", "secret.read", T0)),
            "infra/secrets-vault",
        ),
        (
            RuleId::UnexpectedActor,
            Input::Record(bot),
            Input::Record(use_("payments/api", "g/lib", "artifact.read", T0)),
            "g/lib",
        ),
        (
            RuleId::TokenLifecycle,
            Input::Event(lifecycle(ActorKind::ProjectBot, "created", T0)),
            Input::Event(lifecycle(ActorKind::Human, "created", T0)),
            "g/prot",
        ),
        (
            RuleId::AllowlistDrift,
            Input::Event(snapshot(Some("missing_from_history"))),
            Input::Event(snapshot(None)),
            "g/prot",
        ),
        (
            RuleId::CoverageGap,
            Input::Event(auth_log(true)),
            Input::Event(auth_log(false)),
            "g/prot",
        ),
    ]
}

/// A `tokentrail gitlab coverage` observation (src/gitlab/coverage.rs).
fn auth_log(gap: bool) -> Event {
    let mut ev = audit(AuditMeaning::Other, ActorKind::Human, T0);
    if let Event::Audit(a) = &mut ev {
        a.event_type = crate::model::AUTH_LOG_EVENT_TYPE.into();
        a.target_id = Some(7);
        a.target_details = "g/origin".into();
        a.details_json = format!("{{\"coverage_gap\":{gap}}}");
    }
    ev
}

/// A `tokentrail gitlab sync` row, with the drift the sync found (src/gitlab/snapshot.rs).
fn snapshot(drift: Option<&str>) -> Event {
    let mut ev = allowlist(AllowlistChangeKind::SnapshotGroup, Some("top/sub"), T0);
    if let (Event::Audit(a), Some(d)) = (&mut ev, drift) {
        a.details_json = format!("{{\"drift\":\"{d}\"}}");
    }
    ev
}

fn feed(engine: &mut AlertEngine, input: &Input) -> Vec<Emitted> {
    match input {
        Input::Record(r) => engine.on_records(std::slice::from_ref(r)),
        Input::Event(e) => engine.on_events(std::slice::from_ref(e)),
    }
}

#[test]
fn each_rule_fires_and_stays_quiet() {
    for (rule, bad, good, _) in cases() {
        let mut engine = AlertEngine::new(&only(rule));
        let out = feed(&mut engine, &bad);
        assert_eq!(out.len(), 1, "{rule:?} fires");
        assert_eq!(out[0].alert.rule, rule.as_str());
        assert!(out[0].new);
        let mut engine = AlertEngine::new(&only(rule));
        assert!(feed(&mut engine, &good).is_empty(), "{rule:?} quiet");
    }
}

fn with_exception(rule: RuleId, e: Exception) -> AlertingSettings {
    let mut s = only(rule);
    let r = &mut s.rules;
    let list = match rule {
        RuleId::NotAllowlisted => &mut r.not_allowlisted.exceptions,
        RuleId::AllowlistWeakened => &mut r.allowlist_weakened.exceptions,
        RuleId::NewEdge => &mut r.new_edge.exceptions,
        RuleId::Push => &mut r.push.exceptions,
        RuleId::CrownJewel => &mut r.crown_jewel.exceptions,
        RuleId::UnexpectedActor => &mut r.unexpected_actor.exceptions,
        RuleId::TokenLifecycle => &mut r.token_lifecycle.exceptions,
        RuleId::AllowlistDrift => &mut r.allowlist_drift.exceptions,
        RuleId::CoverageGap => &mut r.coverage_gap.exceptions,
    };
    list.push(e);
    s.validate().unwrap();
    s
}

#[test]
fn exceptions_apply_until_they_expire() {
    for (rule, bad, _, target) in cases() {
        let mut live = AlertEngine::new(&with_exception(rule, exception(target, T0 + 1)));
        assert!(
            feed(&mut live, &bad).is_empty(),
            "{rule:?}: exception honoured"
        );
        let mut expired = AlertEngine::new(&with_exception(rule, exception(target, T0)));
        assert_eq!(
            feed(&mut expired, &bad).len(),
            1,
            "{rule:?}: expired exception"
        );
        let mut other = AlertEngine::new(&with_exception(rule, exception("else/where", T0 + 1)));
        assert_eq!(feed(&mut other, &bad).len(), 1, "{rule:?}: other project");
    }
}

#[test]
fn group_exception_covers_subgroups() {
    let mut e = exception("x", T0 + 1);
    e.project = None;
    e.group = Some("INFRA".into());
    let mut engine = AlertEngine::new(&with_exception(RuleId::CrownJewel, e));
    let r = use_("g/a", "infra/sub/secrets", "secret.read", T0);
    assert!(engine.on_records(&[r]).is_empty());
}

#[test]
fn top_level_group_admission_fires_but_subgroup_does_not() {
    let mut engine = AlertEngine::new(&only(RuleId::AllowlistWeakened));
    let out = engine.on_events(&[allowlist(AllowlistChangeKind::GroupAdded, Some("top"), T0)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert.action, "allowlist.top_level_group_added");
    assert_eq!(out[0].alert.source_project_path, "top");
}

#[test]
fn a_redispatched_allowlist_event_is_counted_once() {
    let mut engine = AlertEngine::new(&only(RuleId::AllowlistWeakened));
    let added = allowlist(AllowlistChangeKind::GroupAdded, Some("top"), T0);
    assert_eq!(engine.on_events(std::slice::from_ref(&added)).len(), 1);
    assert!(
        engine.on_events(&[added]).is_empty(),
        "same saved id: same change"
    );
    let other = allowlist(AllowlistChangeKind::GroupAdded, Some("top"), T0 + 1);
    assert_eq!(engine.on_events(&[other])[0].alert.count, 2);
}

#[test]
fn admin_actions_are_crown_jewel_findings_even_on_ordinary_targets() {
    let mut engine = AlertEngine::new(&only(RuleId::CrownJewel));
    let out = engine.on_records(&[use_("g/a", "g/a", "admin_settings.write", T0)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert.details["reason"], "admin_action");
}

#[test]
fn new_edge_fires_once_per_lookback_and_respects_hydration() {
    let mut s = only(RuleId::NewEdge);
    s.rules.new_edge.lookback_ms = 24 * HOUR;
    let mut engine = AlertEngine::new(&s);
    let first = engine.on_records(&[use_("g/a", "g/b", "artifact.read", T0)]);
    assert_eq!(first.len(), 1);
    let again = engine.on_records(&[use_("g/a", "g/b", "artifact.read", T0 + HOUR)]);
    assert!(again.is_empty(), "known edge");
    let same = engine.on_records(&[use_("g/a", "g/a", "artifact.read", T0)]);
    assert!(same.is_empty(), "same-project use is not an edge");
    let later = engine.on_records(&[use_("g/a", "g/b", "artifact.read", T0 + 26 * HOUR)]);
    assert_eq!(later.len(), 1, "unused for longer than the lookback");

    let mut restarted = AlertEngine::new(&s);
    let r = use_("g/a", "g/b", "artifact.read", T0);
    restarted.remember_edge(
        project_key(r.source_project_id, &r.source_project_path),
        project_key(r.target_project_id, &r.target_project_path),
        T0,
    );
    assert!(restarted.on_records(&[r]).is_empty(), "hydrated edge");
}

#[test]
fn suppression_counts_within_a_bucket_and_opens_a_new_alert_after() {
    let mut engine = AlertEngine::new(&only(RuleId::NotAllowlisted));
    let bucket = bucket_start(T0, HOUR);
    let times = [bucket + 10, bucket + 20, bucket + 30];
    let mut out = Vec::new();
    for t in times {
        out.extend(engine.on_records(&[not_allowlisted_use(t)]));
    }
    assert_eq!(out.len(), 3, "one row per update");
    assert!(out[0].new && !out[1].new && !out[2].new, "pages once");
    let last = &out[2].alert;
    assert_eq!(last.alert_id, out[0].alert.alert_id);
    assert_eq!(
        (last.count, last.first_seen_ms, last.last_seen_ms),
        (3, bucket + 10, bucket + 30)
    );
    let next = engine.on_records(&[not_allowlisted_use(bucket + HOUR)]);
    assert!(next[0].new);
    assert_ne!(next[0].alert.alert_id, last.alert_id);
    assert_eq!(next[0].alert.count, 1);
}

#[test]
fn replay_after_resume_is_not_counted_twice() {
    let bucket = bucket_start(T0, HOUR);
    let records: Vec<TokenUse> = (1..=5).map(|i| not_allowlisted_use(bucket + i)).collect();
    let mut straight = AlertEngine::new(&only(RuleId::NotAllowlisted));
    let all = straight.on_records(&records);
    let final_row = all.last().unwrap().alert.clone();

    // Crash after the row with count 3 was stored; replay starts at record 2.
    let stored = all[2].alert.clone();
    let mut resumed = AlertEngine::new(&only(RuleId::NotAllowlisted));
    resumed.resume_alert(stored);
    let replayed = resumed.on_records(&records[1..]);
    assert_eq!(replayed.len(), 2, "records 4 and 5 only");
    assert!(!replayed[0].new, "no second page");
    assert_eq!(replayed.last().unwrap().alert, final_row);
}

#[test]
fn alert_ids_do_not_depend_on_processing_history() {
    // Same findings, different order and different preceding traffic: same ids.
    let bucket = bucket_start(T0, HOUR);
    let a = not_allowlisted_use(bucket + 5);
    let mut b = not_allowlisted_use(bucket + 50);
    b.source_project_path = "g/c".into();
    b.source_project_id = Some(4242);
    let ids = |records: &[TokenUse]| {
        let mut e = AlertEngine::new(&only(RuleId::NotAllowlisted));
        let mut ids: Vec<String> = e
            .on_records(records)
            .into_iter()
            .map(|x| x.alert.alert_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let noise = not_allowlisted_use(bucket - HOUR);
    assert_eq!(ids(&[a.clone(), b.clone()]), ids(&[b.clone(), a.clone()]));
    let with_noise = ids(&[noise, b, a]);
    assert_eq!(with_noise.len(), 3);
}

#[test]
fn disabled_master_switch_emits_nothing() {
    let mut s = only(RuleId::Push);
    s.enabled = false;
    let mut engine = AlertEngine::new(&s);
    assert!(
        engine
            .on_records(&[use_("g/a", "g/a", "repository.write", T0)])
            .is_empty()
    );
}

#[test]
fn open_buckets_follow_the_clock_not_the_newest_finding() {
    // During a backlog, audit events of a partition far ahead raise findings hours before
    // the records of an older bucket are released (records wait for the slowest partition).
    let mut s = only(RuleId::NotAllowlisted);
    s.rules.token_lifecycle.enabled = true;
    let mut engine = AlertEngine::new(&s);
    let bucket = bucket_start(T0, s.suppression_window_ms);
    let window = s.suppression_window_ms;
    engine.advance_clock(bucket);
    let first = engine.on_records(&[not_allowlisted_use(bucket + 10)]);
    let ahead = |engine: &mut AlertEngine, from: i64| {
        for i in 0..i64::from(PRUNE_EVERY) {
            let t = from + i;
            engine.on_events(&[lifecycle(ActorKind::ProjectBot, "created", t)]);
        }
    };
    ahead(&mut engine, bucket + 50 * window); // enough findings for a sweep
    let later = engine.on_records(&[not_allowlisted_use(bucket + 20)]);
    assert!(!later[0].new, "the open alert survived the sweep");
    assert_eq!(later[0].alert.alert_id, first[0].alert.alert_id);
    assert_eq!(later[0].alert.count, 2);

    // Once the clock passes the bucket by a window, the sweep forgets it (memory stays
    // bounded): a finding as late as that opens a fresh row.
    engine.advance_clock(bucket + 3 * window);
    ahead(&mut engine, bucket + 60 * window);
    let late = engine.on_records(&[not_allowlisted_use(bucket + 30)]);
    assert!(late[0].new);
    assert_eq!(late[0].alert.count, 1);
}
