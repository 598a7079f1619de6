//! `allowlisted` is the allowlist at the use's event time, whatever order changes and uses are
//! read and released in (issue 22). Every event arrives in time order on one partition unless
//! a test says otherwise; the correlator's own watermark (30 s lateness) holds the uses.

#[path = "correlate_common/mod.rs"]
mod common;

use common::*;
use tokentrail::correlate::{Correlator, CorrelatorConfig};
use tokentrail::model::{AllowlistChangeKind as K, AuditEvent, TokenUse};

const T: i64 = 1_750_000_000_000;
const PLATFORM: (&str, i64, &str) = ("Group", 88, "platform-eng");
const OTHER: (&str, i64, &str) = ("Group", 99, "other");

fn run(events: &[AuditEvent]) -> Vec<TokenUse> {
    let mut c = Correlator::new(CorrelatorConfig::default());
    let mut out: Vec<TokenUse> = events.iter().flat_map(|e| c.on_audit(e)).collect();
    out.extend(c.flush_all());
    out.sort_by_key(|r| r.event_time_ms);
    out
}

/// One job-token use of `TARGET` by `source` at `t` (auth 100 ms earlier).
fn use_at(t: i64, source: (i64, &str), job: i64) -> [AuditEvent; 2] {
    [
        auth(4821, IP, t - 100, source, job),
        resource(4821, IP, t, TARGET, "artifact.read"),
    ]
}

fn at(t: i64, kind: K, member: Option<(&str, i64, &str)>) -> AuditEvent {
    allowlist_event(t, change(kind, TARGET, member))
}

fn statuses(out: &[TokenUse]) -> Vec<Option<bool>> {
    out.iter().map(|r| r.allowlisted).collect()
}

#[test]
fn removal_read_after_an_earlier_held_use_does_not_revoke_it() {
    let src = Some(("Project", SOURCE.0, SOURCE.1));
    let mut events = vec![at(T - 3_600_000, K::ProjectAdded, src)];
    events.extend(use_at(T, SOURCE, 1));
    events.push(at(T + 1_000, K::ProjectRemoved, src));
    events.extend(use_at(T + 2_000, SOURCE, 2));
    let out = run(&events);
    assert_eq!(statuses(&out), [Some(true), Some(false)]);
}

#[test]
fn addition_read_before_an_earlier_use_does_not_admit_it() {
    let src = Some(("Project", SOURCE.0, SOURCE.1));
    let mut events = vec![
        at(T - 3_600_000, K::InboundEnabled, None),
        // Read first, made a second after the use below (another partition ran ahead).
        at(T + 1_000, K::ProjectAdded, src),
    ];
    events.extend(use_at(T, SOURCE, 1));
    events.extend(use_at(T + 2_000, SOURCE, 2));
    let out = run(&events);
    assert_eq!(statuses(&out), [Some(false), Some(true)]);
}

#[test]
fn policies_update_on_a_top_level_group_keeps_admitting_its_subgroups() {
    // GitLab's event names the group by its display name; the normalizer leaves member_path
    // empty, and stored rows of earlier versions hold the display name: both must keep the path.
    let named = ("Group", PLATFORM.1, "Platform Engineering");
    let mut unnamed = change(K::PoliciesUpdated, TARGET, Some(PLATFORM));
    unnamed.member_path = None;
    let mut events = vec![
        at(T - 3_600_000, K::GroupAdded, Some(PLATFORM)),
        at(T - 60_000, K::PoliciesUpdated, Some(named)),
        allowlist_event(T - 30_000, unnamed),
    ];
    events.extend(use_at(T, (1400, "platform-eng/tools/cli"), 1));
    let out = run(&events);
    assert_eq!(statuses(&out), [Some(true)]);
}

#[test]
fn project_transferred_after_its_group_was_allowlisted_is_judged_by_its_path_at_each_use() {
    // Group platform-eng is admitted; project 1337 moves to group `other` (GitLab sends no
    // allowlist event for that); the maintainer then admits `other` and drops platform-eng.
    let before = (SOURCE.0, "platform-eng/app-backend");
    let after = (SOURCE.0, "other/app-backend");
    let mut events = vec![at(T - 3_600_000, K::GroupAdded, Some(PLATFORM))];
    events.extend(use_at(T, before, 1));
    events.extend(use_at(T + 10_000, after, 2));
    events.push(at(T + 11_000, K::GroupAdded, Some(OTHER)));
    events.push(at(T + 12_000, K::GroupRemoved, Some(PLATFORM)));
    events.extend(use_at(T + 13_000, after, 3));
    let out = run(&events);
    assert_eq!(statuses(&out), [Some(true), Some(false), Some(true)]);
}

#[test]
fn replay_after_a_restart_judges_uses_by_the_restored_history() {
    // Start-up restores every stored change first (ingest::allowlist_history), including the
    // removal that followed the uses about to be replayed from the uncommitted tail.
    let src = Some(("Project", SOURCE.0, SOURCE.1));
    let mut c = Correlator::new(CorrelatorConfig::default());
    for (t, kind) in [
        (T - 3_600_000, K::ProjectAdded),
        (T + 1_000, K::ProjectRemoved),
    ] {
        assert!(c.allowlist_mut().apply(&change(kind, TARGET, src), t));
    }
    let mut out: Vec<TokenUse> = [use_at(T, SOURCE, 1), use_at(T + 2_000, SOURCE, 2)]
        .iter()
        .flatten()
        .flat_map(|e| c.on_audit(e))
        .collect();
    out.extend(c.flush_all());
    out.sort_by_key(|r| r.event_time_ms);
    assert_eq!(statuses(&out), [Some(true), Some(false)]);
}

#[test]
fn history_is_folded_behind_the_horizon() {
    let src = Some(("Project", SOURCE.0, SOURCE.1));
    let mut c = Correlator::new(CorrelatorConfig::default());
    for i in 0..100 {
        let kind = if i % 2 == 0 {
            K::ProjectAdded
        } else {
            K::ProjectRemoved
        };
        c.on_audit(&at(T + i * 60_000, kind, src));
    }
    // Changes older than the horizon behind the watermark leave one settled version.
    let s = c.stats();
    let config = CorrelatorConfig::default();
    let lateness = config
        .auto_lateness_ms
        .expect("the default advances on its own");
    let kept = 1 + (lateness + config.horizon_ms()) / 60_000 + 1;
    assert!(s.allowlist_versions as i64 <= kept, "{s:?}");
}
