#[path = "correlate_common/mod.rs"]
mod common;

use common::{SOURCE, TARGET, change};
use tokentrail::correlate::allowlist::AllowlistState;
use tokentrail::model::AllowlistChangeKind as K;

const SRC: Option<(&str, i64, &str)> = Some(("Project", SOURCE.0, SOURCE.1));
/// After every change of these tests.
const NOW: i64 = 1_000;

fn check(s: &AllowlistState, source: (i64, &str)) -> Option<bool> {
    s.is_allowlisted(Some(source.0), source.1, Some(TARGET.0), TARGET.1, NOW)
}

#[test]
fn unknown_target_is_none() {
    let s = AllowlistState::new();
    assert_eq!(check(&s, SOURCE), None);
}

#[test]
fn same_project_is_always_allowlisted() {
    let s = AllowlistState::new();
    assert_eq!(check(&s, TARGET), Some(true));
    assert_eq!(s.is_allowlisted(None, "A/B", None, "a/b", NOW), Some(true));
}

#[test]
fn added_then_removed() {
    let mut s = AllowlistState::new();
    assert!(s.apply(&change(K::ProjectAdded, TARGET, SRC), 1));
    assert_eq!(check(&s, SOURCE), Some(true));
    assert_eq!(check(&s, (9, "other/project")), Some(false));
    assert!(s.apply(&change(K::ProjectRemoved, TARGET, SRC), 2));
    assert_eq!(check(&s, SOURCE), Some(false));
}

#[test]
fn entries_match_by_path_when_ids_are_missing() {
    let mut s = AllowlistState::new();
    let mut c = change(K::ProjectAdded, TARGET, SRC);
    c.member_id = None;
    c.protected_project_id = None;
    s.apply(&c, 1);
    assert_eq!(
        s.is_allowlisted(None, "Platform/App-Backend", None, TARGET.1, NOW),
        Some(true)
    );
    // The id-only lookup of the target still finds nothing: it was only ever named by path.
    assert_eq!(
        s.is_allowlisted(Some(SOURCE.0), SOURCE.1, Some(TARGET.0), "", NOW),
        None
    );
}

#[test]
fn group_entry_admits_subgroups_but_not_prefix_lookalikes() {
    let mut s = AllowlistState::new();
    s.apply(
        &change(K::GroupAdded, TARGET, Some(("Group", 50, "platform"))),
        1,
    );
    assert_eq!(check(&s, (1, "platform/app")), Some(true));
    assert_eq!(check(&s, (2, "platform/sub/deep/app")), Some(true));
    assert_eq!(check(&s, (3, "platform-tools/app")), Some(false));
    assert_eq!(check(&s, (4, "platform")), Some(false));
    s.apply(
        &change(K::GroupRemoved, TARGET, Some(("Group", 50, "platform"))),
        2,
    );
    assert_eq!(check(&s, (1, "platform/app")), Some(false));
}

#[test]
fn inbound_disabled_is_known_but_not_allowlisted() {
    let mut s = AllowlistState::new();
    assert!(s.apply(&change(K::InboundDisabled, TARGET, None), 5));
    assert_eq!(check(&s, SOURCE), Some(false));
    let snap = s.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].inbound_enabled, Some(false));
    s.apply(&change(K::InboundEnabled, TARGET, None), 6);
    assert_eq!(s.snapshot()[0].inbound_enabled, Some(true));
}

#[test]
fn policies_update_upserts_and_shows_in_snapshot() {
    let mut s = AllowlistState::new();
    s.apply(&change(K::ProjectAdded, TARGET, SRC), 1);
    let mut c = change(K::PoliciesUpdated, TARGET, SRC);
    c.policies = vec!["read_packages".to_string(), "read_releases".to_string()];
    c.default_permissions = Some(false);
    s.apply(&c, 2);
    // A policies update for an entry we never saw added also creates it; its member_path is a
    // name, never taken as the group's path.
    let mut g = change(
        K::PoliciesUpdated,
        TARGET,
        Some(("Group", 60, "Shared Things")),
    );
    g.policies = vec!["read_jobs".to_string()];
    s.apply(&g, 3);
    let snap = s.snapshot();
    let p = &snap[0];
    assert_eq!(
        (p.project_id, p.project_path.as_str()),
        (Some(2001), TARGET.1)
    );
    assert_eq!(p.projects.len(), 1);
    assert_eq!(
        p.projects[0].policies,
        vec!["read_packages", "read_releases"]
    );
    assert_eq!(p.projects[0].updated_at_ms, 2);
    assert_eq!(p.groups[0].path, None);
    assert_eq!(p.updated_at_ms, 3);
    // Once any change names group 60 with its path, the entry admits the group's projects.
    s.apply(
        &change(
            K::GroupAdded,
            (9, "other/project"),
            Some(("Group", 60, "shared")),
        ),
        4,
    );
    assert_eq!(check(&s, (8, "shared/x")), Some(true));
}

#[test]
fn rename_of_protected_project_follows_the_id() {
    let mut s = AllowlistState::new();
    s.apply(&change(K::ProjectAdded, TARGET, SRC), 1);
    s.apply(
        &change(K::InboundEnabled, (TARGET.0, "payments/ledger"), None),
        2,
    );
    assert_eq!(s.len(), 1);
    assert_eq!(
        s.is_allowlisted(None, SOURCE.1, None, "payments/ledger", NOW),
        Some(true)
    );
    assert_eq!(s.is_allowlisted(None, SOURCE.1, None, TARGET.1, NOW), None);
}

#[test]
fn changes_naming_nothing_are_ignored() {
    let mut s = AllowlistState::new();
    let mut c = change(K::ProjectAdded, TARGET, SRC);
    c.member_id = None;
    c.member_path = None;
    assert!(!s.apply(&c, 1));
    let mut c = change(K::InboundEnabled, TARGET, None);
    c.protected_project_id = None;
    c.protected_project_path.clear();
    assert!(!s.apply(&c, 1));
    assert!(s.is_empty());
}

#[test]
fn snapshot_is_sorted_by_path() {
    let mut s = AllowlistState::new();
    s.apply(&change(K::InboundEnabled, (3, "z/last"), None), 1);
    s.apply(&change(K::InboundEnabled, (1, "a/first"), None), 1);
    let paths: Vec<_> = s.snapshot().into_iter().map(|p| p.project_path).collect();
    assert_eq!(paths, vec!["a/first", "z/last"]);
}

#[test]
fn policies_update_naming_a_subgroup_by_short_name_keeps_its_full_path() {
    // GitLab's policies_updated event carries the member's name ("apps"), not its path.
    let mut s = AllowlistState::new();
    let full = Some(("Group", 43, "infra/apps"));
    s.apply(&change(K::GroupAdded, TARGET, full), 1);
    s.apply(
        &change(K::PoliciesUpdated, TARGET, Some(("Group", 43, "apps"))),
        2,
    );
    assert_eq!(check(&s, (9, "infra/apps/docs-site")), Some(true));
}

#[test]
fn status_is_the_allowlist_at_the_time_asked() {
    let mut s = AllowlistState::new();
    s.apply(&change(K::ProjectRemoved, TARGET, SRC), 20);
    s.apply(&change(K::ProjectAdded, TARGET, SRC), 10);
    let at = |t| s.is_allowlisted(Some(SOURCE.0), SOURCE.1, Some(TARGET.0), TARGET.1, t);
    assert_eq!(at(5), None, "before the target's first change");
    assert_eq!(at(10), Some(true));
    assert_eq!(at(19), Some(true));
    assert_eq!(at(20), Some(false));
}

#[test]
fn settled_history_still_answers_for_the_horizon() {
    let mut s = AllowlistState::new();
    s.apply(&change(K::ProjectAdded, TARGET, SRC), 10);
    s.apply(&change(K::ProjectRemoved, TARGET, SRC), 20);
    s.apply(&change(K::ProjectAdded, TARGET, SRC), 30);
    s.settle(25);
    assert_eq!(
        s.versions(),
        2,
        "one settled version and the change after the horizon"
    );
    let at = |t| s.is_allowlisted(Some(SOURCE.0), SOURCE.1, Some(TARGET.0), TARGET.1, t);
    assert_eq!((at(25), at(30)), (Some(false), Some(true)));
}

#[test]
fn policies_update_on_a_top_level_group_keeps_its_path() {
    // GitLab names the group by its display name in this event (no target details).
    let mut s = AllowlistState::new();
    let group = ("Group", 88, "platform-eng");
    s.apply(&change(K::GroupAdded, TARGET, Some(group)), 1);
    s.apply(
        &change(
            K::PoliciesUpdated,
            TARGET,
            Some(("Group", 88, "Platform Engineering")),
        ),
        2,
    );
    assert_eq!(check(&s, (9, "platform-eng/tools/cli")), Some(true));
    let groups = &s.snapshot()[0].groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].path.as_deref(), Some("platform-eng"));
}
