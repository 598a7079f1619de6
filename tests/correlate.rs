#[path = "correlate_common/mod.rs"]
mod common;

use common::*;
use tokentrail::correlate::{Correlator, CorrelatorConfig};
use tokentrail::model::{ActorKind, AllowlistChangeKind, AuditEvent, Correlation, TokenUse};

fn feed(c: &mut Correlator, events: &[AuditEvent]) -> Vec<TokenUse> {
    events.iter().flat_map(|e| c.on_audit(e)).collect()
}

fn run(events: &[AuditEvent]) -> (Vec<TokenUse>, Correlator) {
    let mut c = manual();
    let mut out = feed(&mut c, events);
    out.extend(c.flush_all());
    (out, c)
}

/// The sample story, as the record should read without enrichment.
fn sample_record() -> TokenUse {
    TokenUse {
        event_time_ms: ms("2025-06-03T10:15:44.900Z"),
        actor_id: 4821,
        actor_name: "Dana Builder".to_string(),
        actor_username: None,
        actor_kind: ActorKind::Human,
        source_project_id: Some(1337),
        source_project_path: "platform/app-backend".to_string(),
        target_project_id: Some(2001),
        target_project_path: "payments/ledger-service".to_string(),
        action: "repository.read".into(),
        job_id: Some(987_654),
        pipeline_id: None,
        git_ref: None,
        runner_id: None,
        token_type: "ci_job_token".to_string(),
        ip_address: "10.20.30.40".to_string(),
        same_project: false,
        allowlisted: Some(true),
        correlation: Correlation::Matched,
        gap_ms: 2777,
    }
}

#[test]
fn sample_story_joins_auth_and_clone() {
    let (out, c) = run(&sample_events());
    assert_eq!(out, vec![sample_record()]);
    let s = c.stats();
    assert_eq!((s.emitted, s.matched, s.auth_only), (1, 1, 0));
    assert_eq!(
        (s.pending_auths, s.pending_resources, s.pending_keys),
        (0, 0, 0)
    );
    assert_eq!(s.allowlist_changes, 1);
}

#[test]
fn sample_story_enriched_when_job_hook_first() {
    let mut c = manual();
    c.on_job(&sample_job());
    let mut out = feed(&mut c, &sample_events());
    out.extend(c.flush_all());
    let expected = TokenUse {
        pipeline_id: Some(445_566),
        git_ref: Some("main".to_string()),
        runner_id: Some(812),
        actor_username: Some("dbuilder".to_string()),
        ..sample_record()
    };
    assert_eq!(out, vec![expected]);
}

#[test]
fn job_hook_after_emission_does_not_change_record() {
    let mut c = manual();
    let mut out = feed(&mut c, &sample_events());
    out.extend(c.flush_all());
    c.on_job(&sample_job());
    assert_eq!(out, vec![sample_record()]);
}

#[test]
fn job_hook_while_held_enriches() {
    let [allow, a, r] = sample_events();
    let mut c = manual();
    let mut out = feed(&mut c, &[allow, a, r]);
    c.on_job(&sample_job());
    out.extend(c.flush_all());
    assert_eq!(out[0].pipeline_id, Some(445_566));
}

#[test]
fn username_not_taken_from_another_users_job() {
    let mut job = sample_job();
    job.user_id = Some(1);
    let mut c = manual();
    c.on_job(&job);
    feed(&mut c, &sample_events());
    let out = c.flush_all();
    assert_eq!(out[0].actor_username, None);
    assert_eq!(out[0].pipeline_id, Some(445_566));
}

#[test]
fn a_bot_username_in_the_job_hook_makes_the_record_a_bots() {
    let mut job = sample_job();
    job.username = Some("project_1337_bot_5e1f0a".to_string());
    let mut c = manual();
    c.on_job(&job);
    feed(&mut c, &sample_events());
    let out = c.flush_all();
    assert_eq!(out[0].actor_kind, ActorKind::ProjectBot);
    assert_eq!(
        out[0].actor_username.as_deref(),
        Some("project_1337_bot_5e1f0a")
    );
}

#[test]
fn reverse_arrival_gives_same_record() {
    let [allow, a, r] = sample_events();
    let (out, _) = run(&[allow, r, a]);
    assert_eq!(out, vec![sample_record()]);
}

/// The sample story fed to a manual-watermark correlator, which holds it; with the time of
/// its resource event.
fn sample_held() -> (Correlator, i64) {
    let [allow, a, r] = sample_events();
    let t_res = r.created_at_ms;
    let mut c = manual();
    assert!(feed(&mut c, &[allow, a, r]).is_empty());
    (c, t_res)
}

#[test]
fn adjacent_pair_is_emitted_once_the_watermark_passes_its_resource() {
    let (mut c, t_res) = sample_held();
    assert!(
        c.advance(t_res).is_empty(),
        "an event at the watermark may still arrive"
    );
    assert_eq!(c.advance(t_res + 1), vec![sample_record()]);
    assert!(c.advance(t_res + 10 * WINDOW).is_empty());
}

/// The ingest loop collects one message's records in one list: `advance_into` appends the
/// records it decides, sorted among themselves, and leaves what the list held before as it was.
#[test]
fn advance_into_appends_after_the_records_already_in_the_list() {
    let (mut c, t_res) = sample_held();
    let earlier = TokenUse {
        event_time_ms: t_res + 10 * WINDOW,
        ..sample_record()
    };
    let mut records = vec![earlier.clone()];
    c.advance_into(t_res + 1, &mut records);
    assert_eq!(records, vec![earlier, sample_record()]);
}

/// Several adjacent pairs of one key leave together, with an ambiguous run between them and
/// an event ahead of the watermark after them: each pair keeps its own sides, and what stays
/// is decided later as it would have been.
#[test]
fn adjacent_pairs_of_one_key_leave_together_and_keep_their_sides() {
    let t = 1_000_000;
    let step = 10 * WINDOW;
    let mut events = Vec::new();
    for k in 0..4 {
        let at = t + k * step;
        events.push(auth(1, IP, at, SOURCE, 100 + k));
        events.push(resource(1, IP, at + 100, TARGET, "repository.read"));
        if k == 1 {
            // Two auths in one millisecond: not alone, so no adjacent pair.
            events.push(auth(1, IP, at + 3 * WINDOW, SOURCE, 200));
            events.push(auth(1, IP, at + 3 * WINDOW, SOURCE, 201));
        }
    }
    let ahead = t + 40 * step;
    events.push(auth(1, IP, ahead, SOURCE, 300));
    let mut c = manual();
    assert!(feed(&mut c, &events).is_empty());
    let watermark = t + 3 * step + 101;
    let out = c.advance(watermark);
    let mut pairs: Vec<(Option<i64>, i64, Correlation)> = out
        .iter()
        .map(|r| (r.job_id, r.event_time_ms, r.correlation))
        .collect();
    pairs.sort_unstable_by_key(|p| p.1);
    let expected: Vec<(Option<i64>, i64, Correlation)> = (0..4)
        .map(|k| (Some(100 + k), t + k * step + 100, Correlation::Matched))
        .collect();
    let got_matched: Vec<_> = pairs
        .iter()
        .copied()
        .filter(|p| p.2 == Correlation::Matched)
        .collect();
    assert_eq!(got_matched, expected);
    // The two auths of one millisecond end as auth_only once their window closes, and the
    // auth ahead of the watermark stays held.
    let rest = c.advance(ahead);
    let mut jobs: Vec<Option<i64>> = out
        .iter()
        .chain(&rest)
        .filter(|r| r.correlation != Correlation::Matched)
        .map(|r| r.job_id)
        .collect();
    jobs.sort_unstable();
    assert_eq!(jobs, [Some(200), Some(201)]);
    assert_eq!(
        c.flush_all().iter().map(|r| r.job_id).collect::<Vec<_>>(),
        [Some(300)]
    );
}

#[test]
fn ambiguous_pair_waits_until_window_closes() {
    // Two auths of the key in the same millisecond: neither is alone next to the resource,
    // so the segment is assigned only once it is complete.
    let t = 1_000_000;
    let mut c = manual();
    let events = [
        auth(1, IP, t, SOURCE, 1),
        auth(1, IP, t, SOURCE, 2),
        resource(1, IP, t + 300, TARGET, "repository.read"),
    ];
    assert!(feed(&mut c, &events).is_empty());
    assert!(c.advance(t + 300 + WINDOW).is_empty(), "window still open");
    let out = c.advance(t + 300 + WINDOW + 1);
    assert_eq!(out.len(), 2, "one matched record and one auth_only");
    assert_eq!(
        out.iter()
            .filter(|r| r.correlation == Correlation::Matched)
            .count(),
        1
    );
}

#[test]
fn auto_watermark_closes_and_keeps_late_arrivals_inside_lateness() {
    let mut c = Correlator::new(CorrelatorConfig {
        auto_lateness_ms: Some(10_000),
        ..CorrelatorConfig::default()
    });
    let t = 1_000_000;
    assert!(c.on_audit(&auth(1, "a", t, SOURCE, 10)).is_empty());
    // Another user's traffic moves max event time to t+8s (watermark t-2s).
    assert!(c.on_audit(&auth(2, "b", t + 8_000, SOURCE, 20)).is_empty());
    // The resource arrives late but within lateness: it still matches.
    assert!(
        c.on_audit(&resource(1, "a", t + 2_000, TARGET, "artifact.read"))
            .is_empty()
    );
    let out = c.on_audit(&auth(3, "c", t + 20_000, SOURCE, 30));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].job_id, out[0].gap_ms), (Some(10), 2_000));
    assert_eq!(out[0].correlation, Correlation::Matched);
    assert_eq!(c.stats().late_events, 0);
    assert_eq!(c.stats().watermark_ms, Some(t + 10_000));
}

#[test]
fn too_late_resource_is_counted_late_and_unmatched() {
    let mut c = Correlator::new(CorrelatorConfig {
        auto_lateness_ms: Some(10_000),
        ..CorrelatorConfig::default()
    });
    let t = 1_000_000;
    c.on_audit(&auth(1, "a", t, SOURCE, 10));
    let out = c.on_audit(&auth(2, "b", t + 20_000, SOURCE, 20));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation, Correlation::AuthOnly);
    let out = c.on_audit(&resource(1, "a", t + 2_000, TARGET, "artifact.read"));
    assert!(out.is_empty());
    let out = c.advance(t + 10_001 + WINDOW);
    assert!(out.is_empty());
    let s = c.stats();
    assert_eq!((s.late_events, s.unmatched_resources), (1, 1));
}

#[test]
fn concurrent_jobs_get_nearest_auth_not_first_come() {
    // Arrival order would tempt a greedy matcher into r1 -> job 1 (gap 900), leaving r2 with
    // job 2. Nearest-first gives r1 -> job 2 (gap 100) and r2 -> job 1 (gap 1500).
    let (u, ip, t) = (4821, IP, 1_000_000);
    let (p1, p2) = ((11, "g/one"), (12, "g/two"));
    let events = [
        auth(u, ip, t, p1, 1),
        resource(u, ip, t + 900, (21, "t/first"), "repository.read"),
        auth(u, ip, t + 800, p2, 2),
        resource(u, ip, t + 1_500, (22, "t/second"), "artifact.read"),
    ];
    let (out, c) = run(&events);
    let got: Vec<_> = out
        .iter()
        .map(|r| (r.job_id, r.target_project_id, r.gap_ms))
        .collect();
    assert_eq!(
        got,
        vec![(Some(2), Some(21), 100), (Some(1), Some(22), 1_500)]
    );
    assert_eq!(c.stats().matched, 2);
}

#[test]
fn one_resource_never_joins_two_auths() {
    let (u, t) = (5, 1_000_000);
    let events = [
        auth(u, IP, t, (1, "a/x"), 1),
        auth(u, IP, t + 10, (2, "a/y"), 2),
        resource(u, IP, t + 20, TARGET, "repository.read"),
    ];
    let (out, c) = run(&events);
    let matched: Vec<_> = out
        .iter()
        .filter(|r| r.correlation == Correlation::Matched)
        .collect();
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].job_id, Some(2));
    assert_eq!(c.stats().auth_only, 1);
}

#[test]
fn equal_gaps_prefer_auth_before_resource() {
    let (u, t) = (5, 1_000_000);
    let events = [
        auth(u, IP, t + 200, (2, "a/after"), 2),
        resource(u, IP, t + 100, TARGET, "repository.read"),
        auth(u, IP, t, (1, "a/before"), 1),
    ];
    let (out, _) = run(&events);
    let m = out
        .iter()
        .find(|r| r.correlation == Correlation::Matched)
        .unwrap();
    assert_eq!((m.job_id, m.gap_ms), (Some(1), 100));
}

#[test]
fn two_users_behind_one_nat_ip_never_cross() {
    let t = 1_000_000;
    let events = [
        auth(1, IP, t, (1, "u1/src"), 100),
        auth(2, IP, t + 2_000, (2, "u2/src"), 200),
        // Nearer in time to user 2's auth, but it is user 1's request.
        resource(1, IP, t + 1_900, (10, "t/one"), "repository.read"),
        resource(2, IP, t + 2_100, (20, "t/two"), "artifact.read"),
    ];
    let (out, _) = run(&events);
    let mut got: Vec<_> = out
        .iter()
        .map(|r| (r.actor_id, r.job_id, r.target_project_id, r.gap_ms))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, Some(100), Some(10), 1_900),
            (2, Some(200), Some(20), 100)
        ]
    );
}

#[test]
fn a_resource_never_joins_a_later_authentication() {
    // GitLab writes the auth event before the endpoint's resource event, on one clock.
    let t = 1_000_000;
    let events = [
        resource(1, IP, t, (10, "t/one"), "repository.read"),
        auth(1, IP, t + 50, (1, "u1/src"), 100),
    ];
    let (out, stats) = run(&events);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation, Correlation::AuthOnly);
    assert_eq!(stats.stats().unmatched_resources, 1);
}

#[test]
fn resource_outside_window_leaves_auth_only_and_counts_unmatched() {
    let t = 1_000_000;
    let events = [
        auth(1, IP, t, SOURCE, 7),
        resource(1, IP, t + WINDOW + 1, TARGET, "repository.read"),
    ];
    let (out, c) = run(&events);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(
        (r.action.as_str(), r.correlation.as_str()),
        ("auth", "auth_only")
    );
    assert_eq!((r.event_time_ms, r.gap_ms, r.job_id), (t, 0, Some(7)));
    assert_eq!(
        (r.target_project_id, r.target_project_path.as_str()),
        (None, "")
    );
    assert_eq!((r.allowlisted, r.same_project), (None, false));
    let s = c.stats();
    assert_eq!((s.auth_only, s.unmatched_resources, s.emitted), (1, 1, 1));
}

#[test]
fn window_edge_is_inclusive() {
    let t = 1_000_000;
    let events = [
        auth(1, IP, t, SOURCE, 7),
        resource(1, IP, t + WINDOW, TARGET, "x"),
    ];
    let (out, _) = run(&events);
    assert_eq!(out[0].gap_ms, WINDOW);
}

#[test]
fn eviction_emits_oldest_auths_and_counts_them() {
    let mut c = Correlator::new(CorrelatorConfig {
        max_pending: 3,
        auto_lateness_ms: None,
        ..CorrelatorConfig::default()
    });
    let t = 1_000_000;
    let mut out = Vec::new();
    for i in 0..5 {
        out.extend(c.on_audit(&auth(i, IP, t + i * 10, SOURCE, 100 + i)));
    }
    let jobs: Vec<_> = out.iter().map(|r| r.job_id).collect();
    assert_eq!(jobs, vec![Some(100), Some(101)]);
    assert!(out.iter().all(|r| r.correlation == Correlation::AuthOnly));
    let s = c.stats();
    assert_eq!((s.evicted.pending_auths, s.pending_auths), (2, 3));
    assert_eq!(c.flush_all().len(), 3);
}

#[test]
fn eviction_still_matches_what_is_there() {
    let mut c = Correlator::new(CorrelatorConfig {
        max_pending: 2,
        auto_lateness_ms: None,
        ..CorrelatorConfig::default()
    });
    let t = 1_000_000;
    assert!(c.on_audit(&auth(1, IP, t, SOURCE, 1)).is_empty());
    assert!(c.on_audit(&resource(1, IP, t + 5, TARGET, "x")).is_empty());
    let out = c.on_audit(&auth(2, IP, t + 10, SOURCE, 2));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].job_id, out[0].correlation.as_str()),
        (Some(1), "auth+resource")
    );
    let s = c.stats();
    assert_eq!(
        (s.evicted.pending_auths, s.evicted.pending_resources),
        (1, 1)
    );
}

#[test]
fn busy_key_is_committed_after_max_hold_without_loss() {
    let mut c = Correlator::new(CorrelatorConfig {
        max_hold_ms: 30_000,
        auto_lateness_ms: Some(1_000),
        ..CorrelatorConfig::default()
    });
    let t = 1_000_000;
    let mut out = Vec::new();
    // One auth per second for two minutes, each followed by two resource events in the same
    // millisecond (so no pair is adjacent): a single segment that never closes on its own.
    for i in 0..120 {
        let ts = t + i * 1_000;
        out.extend(c.on_audit(&auth(1, IP, ts, SOURCE, i)));
        out.extend(c.on_audit(&resource(1, IP, ts + 300, TARGET, "x")));
        out.extend(c.on_audit(&resource(1, IP, ts + 300, (2002, "payments/other"), "y")));
    }
    let before_flush = out.len();
    assert!(
        before_flush > 50,
        "held records must flow before the chain ends"
    );
    assert!(c.stats().evicted.held_too_long_auths > 0);
    out.extend(c.flush_all());
    assert_eq!(out.len(), 120);
    assert!(
        out.iter()
            .all(|r| r.gap_ms == 300 && r.correlation == Correlation::Matched)
    );
    let mut jobs: Vec<_> = out.iter().map(|r| r.job_id.unwrap()).collect();
    jobs.sort_unstable();
    assert_eq!(jobs, (0..120).collect::<Vec<_>>());
}

#[test]
fn duplicate_deliveries_are_held_once() {
    let [_, a, r] = sample_events();
    let (out, c) = run(&[a.clone(), r.clone(), a, r]);
    assert_eq!(out.len(), 1);
    assert_eq!(c.stats().duplicates, 2);
}

#[test]
fn downstream_pipeline_without_auth_is_lineage() {
    let t = 1_000_000;
    let ev = downstream(4821, IP, t, TARGET, "platform/app-backend", 445_100);
    let (out, c) = run(&[ev]);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.correlation, Correlation::Lineage);
    assert_eq!(r.action, "pipeline.trigger");
    assert_eq!(
        (r.source_project_id, r.source_project_path.as_str()),
        (None, "platform/app-backend")
    );
    assert_eq!(r.target_project_id, Some(2001));
    assert_eq!(
        (r.pipeline_id, r.job_id, r.event_time_ms),
        (Some(445_100), None, t)
    );
    assert_eq!(c.stats().lineage, 1);
}

#[test]
fn downstream_pipeline_with_auth_is_a_normal_join() {
    let t = 1_000_000;
    let events = [
        auth(4821, IP, t, SOURCE, 987_654),
        downstream(4821, IP, t + 40, TARGET, "platform/app-backend", 445_100),
    ];
    let (out, c) = run(&events);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation, Correlation::Matched);
    assert_eq!(
        (out[0].action.as_str(), out[0].job_id),
        ("pipeline.trigger", Some(987_654))
    );
    assert_eq!(c.stats().lineage, 0);
}

#[test]
fn deploy_token_access_is_not_held() {
    let mut c = manual();
    let out = c.on_audit(&resource(-2, IP, 1_000, TARGET, "repository.read"));
    assert!(out.is_empty());
    let s = c.stats();
    assert_eq!((s.pending_resources, s.unmatched_resources), (0, 1));
}

#[test]
fn same_project_use_is_flagged_and_allowlisted() {
    let t = 1_000_000;
    let events = [
        auth(1, IP, t, SOURCE, 1),
        resource(1, IP, t + 1, SOURCE, "repository.write"),
    ];
    let (out, _) = run(&events);
    assert_eq!(
        (out[0].same_project, out[0].allowlisted),
        (true, Some(true))
    );
}

#[test]
fn allowlisted_none_when_target_unknown_and_false_after_removal() {
    let t = ms("2025-06-03T10:15:42.123Z");
    let pair = |dt: i64, job: i64| {
        [
            auth(4821, IP, t + dt, SOURCE, job),
            resource(4821, IP, t + dt + 100, TARGET, "repository.read"),
        ]
    };
    let (out, _) = run(&pair(0, 1));
    assert_eq!(out[0].allowlisted, None);

    let member = Some(("Project", SOURCE.0, SOURCE.1));
    let mut c = manual();
    c.on_audit(&allowlist_event(
        t - 1_000,
        change(AllowlistChangeKind::ProjectAdded, TARGET, member),
    ));
    feed(&mut c, &pair(0, 1));
    let added = c.flush_all();
    c.on_audit(&allowlist_event(
        t + 50_000,
        change(AllowlistChangeKind::ProjectRemoved, TARGET, member),
    ));
    feed(&mut c, &pair(60_000, 2));
    let removed = c.flush_all();
    assert_eq!(
        (added[0].allowlisted, removed[0].allowlisted),
        (Some(true), Some(false))
    );
}

#[test]
fn group_entry_admits_subproject_in_records() {
    let t = 1_000_000;
    let group = change(
        AllowlistChangeKind::GroupAdded,
        TARGET,
        Some(("Group", 50, "platform")),
    );
    let events = [
        allowlist_event(t - 1, group),
        auth(1, IP, t, (77, "platform/tools/deployer"), 1),
        resource(1, IP, t + 5, TARGET, "artifact.read"),
    ];
    let (out, _) = run(&events);
    assert_eq!(out[0].allowlisted, Some(true));
}

#[test]
fn job_cache_is_bounded_and_counts_evictions() {
    let mut c = Correlator::new(CorrelatorConfig {
        max_jobs: 2,
        auto_lateness_ms: None,
        ..CorrelatorConfig::default()
    });
    for id in [987_654, 2, 3] {
        c.on_job(&tokentrail::model::JobInfo {
            job_id: id,
            ..sample_job()
        });
    }
    feed(&mut c, &sample_events());
    let out = c.flush_all();
    assert_eq!(out[0].pipeline_id, None, "job 987654 was evicted first");
    let s = c.stats();
    assert_eq!((s.cached_jobs, s.evicted.jobs), (2, 1));
}

#[test]
fn job_updates_merge_without_erasing() {
    let mut c = manual();
    c.on_job(&sample_job());
    let pending = tokentrail::model::JobInfo {
        runner_id: None,
        git_ref: None,
        status: "success".to_string(),
        ..sample_job()
    };
    c.on_job(&pending);
    feed(&mut c, &sample_events());
    let out = c.flush_all();
    assert_eq!(
        (out[0].runner_id, out[0].git_ref.as_deref()),
        (Some(812), Some("main"))
    );
}

#[test]
fn stats_track_pending_sides() {
    let mut c = manual();
    c.on_audit(&auth(1, IP, 1_000, SOURCE, 1));
    c.on_audit(&resource(2, IP, 1_000, TARGET, "x"));
    c.on_audit(&resource(2, IP, 1_001, TARGET, "x"));
    let s = c.stats();
    assert_eq!(
        (s.pending_auths, s.pending_resources, s.pending_keys),
        (1, 2, 2)
    );
    c.flush_all();
    let s = c.stats();
    assert_eq!(
        (s.pending_auths, s.pending_resources, s.pending_keys),
        (0, 0, 0)
    );
    assert_eq!((s.auth_only, s.unmatched_resources), (1, 2));
}

/// Text with room to spare: a copy of it is sized to the text, the string itself keeps the
/// capacity it was made with.
fn roomy(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 64);
    s.push_str(text);
    s
}

/// `on_audit_into` takes the event: the texts of a held event (author, project) move into
/// the join and from there into the record, instead of being copied on the way in.
#[test]
fn a_held_events_texts_move_into_its_record() {
    let mut ev = auth(1, "10.0.0.1", 1_000, SOURCE, 10);
    ev.author_name = roomy(&ev.author_name);
    ev.entity_path = roomy(&ev.entity_path);
    let capacities = (ev.author_name.capacity(), ev.entity_path.capacity());

    let mut c = manual();
    let mut records = Vec::new();
    c.on_audit_into(ev, &mut records);
    records.extend(c.flush_all());

    let [record] = &records[..] else {
        panic!("one auth_only record, got {records:?}")
    };
    assert_eq!(record.correlation, Correlation::AuthOnly);
    assert_eq!(
        (
            record.actor_name.capacity(),
            record.source_project_path.capacity()
        ),
        capacities,
        "the record's texts are the event's, not copies"
    );
}
