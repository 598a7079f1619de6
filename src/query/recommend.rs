//! The recommended minimal inbound allowlist per protected project, from observed use.
//!
//! Input: the observed (protected project, consumer project, uses) pairs
//! (`schemas/queries/recommended-allowlist-consumers.sql`) and every project path tokentrail
//! knows (`schemas/queries/known-projects.sql`).
//!
//! Algorithm, per protected project P with observed consumers C (P itself excluded):
//! 1. Start with one project entry per consumer: the least-privilege allowlist.
//! 2. While there are more than `max_entries` entries (GitLab's limit is 200), replace the
//!    entries under one ancestor group G of a consumer by a single group entry for G.
//!    G is eligible when it saves at least one entry and the known projects under G that
//!    were not observed as consumers (P excluded) are at most `max_unobserved_share` of the
//!    known projects under G. Among eligible groups pick the one admitting the fewest
//!    unobserved projects, then the one saving the most entries, then the deepest path, then
//!    the lexicographically smallest path (deterministic).
//! 3. If no group is eligible while still over the limit, stop and flag the project as
//!    over the limit: the auditor must decide which exposure to accept.
//!
//! "Known projects" are the projects tokentrail has seen; GitLab may hold more projects under
//! a group, so the unobserved count is a lower bound of what a group entry admits.

use std::collections::{BTreeMap, BTreeSet};

/// GitLab's limit on inbound allowlist entries (projects and groups together).
pub const GITLAB_ALLOWLIST_LIMIT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecommendOptions {
    pub max_entries: usize,
    /// Largest share (0..=1) of a group's known projects that may be unobserved consumers.
    pub max_unobserved_share: f64,
}

impl Default for RecommendOptions {
    fn default() -> Self {
        RecommendOptions {
            max_entries: GITLAB_ALLOWLIST_LIMIT,
            max_unobserved_share: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Project,
    Group,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Project => "Project",
            EntryKind::Group => "Group",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub path: String,
    /// Observed consumers this entry admits.
    pub consumers: usize,
    /// Known but unobserved projects this entry admits (0 for project entries).
    pub unobserved: usize,
    pub uses: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    pub project: String,
    /// Sorted by (kind, path).
    pub entries: Vec<Entry>,
    /// Still more than `max_entries` entries: no eligible consolidation was left.
    pub over_limit: bool,
}

/// `a/b/c` is under `a` and `a/b`, not under `a/bc` or itself.
pub fn is_under(path: &str, group: &str) -> bool {
    path.len() > group.len() && path.starts_with(group) && path.as_bytes()[group.len()] == b'/'
}

/// Every proper ancestor group of a project path: `a/b/c` → `a`, `a/b`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Recommendations for every protected project in `observed` (project → consumer → uses).
pub fn recommend_all(
    observed: &BTreeMap<String, BTreeMap<String, u64>>,
    known: &BTreeSet<String>,
    opts: RecommendOptions,
) -> Vec<Recommendation> {
    observed
        .iter()
        .map(|(project, consumers)| recommend(project, consumers, known, opts))
        .collect()
}

pub fn recommend(
    project: &str,
    consumers: &BTreeMap<String, u64>,
    known: &BTreeSet<String>,
    opts: RecommendOptions,
) -> Recommendation {
    let consumers: BTreeMap<&str, u64> = consumers
        .iter()
        .filter(|(c, _)| c.as_str() != project)
        .map(|(c, &u)| (c.as_str(), u))
        .collect();
    let mut entries: Vec<Entry> = consumers
        .iter()
        .map(|(&c, &uses)| Entry {
            kind: EntryKind::Project,
            path: c.to_string(),
            consumers: 1,
            unobserved: 0,
            uses,
        })
        .collect();
    let candidates: BTreeSet<&str> = consumers.keys().flat_map(|c| ancestors(c)).collect();
    while entries.len() > opts.max_entries {
        let best = candidates
            .iter()
            .filter_map(|&g| {
                let covered = entries
                    .iter()
                    .filter(|e| is_under(&e.path, g) || (e.kind == EntryKind::Group && e.path == g))
                    .count();
                let saves = covered.checked_sub(1).filter(|&s| s > 0)?;
                let known_under = known
                    .iter()
                    .filter(|p| is_under(p, g) && p.as_str() != project)
                    .count();
                let observed_under = consumers.keys().filter(|c| is_under(c, g)).count();
                let unobserved = known_under.saturating_sub(observed_under);
                let share = unobserved as f64 / known_under.max(1) as f64;
                (share <= opts.max_unobserved_share).then_some((g, saves, unobserved))
            })
            .min_by(|a, b| {
                (
                    a.2,
                    std::cmp::Reverse(a.1),
                    std::cmp::Reverse(a.0.len()),
                    a.0,
                )
                    .cmp(&(
                        b.2,
                        std::cmp::Reverse(b.1),
                        std::cmp::Reverse(b.0.len()),
                        b.0,
                    ))
            });
        let Some((group, _, unobserved)) = best else {
            break;
        };
        let (absorbed, kept): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| {
            is_under(&e.path, group) || (e.kind == EntryKind::Group && e.path == group)
        });
        entries = kept;
        entries.push(Entry {
            kind: EntryKind::Group,
            path: group.to_string(),
            consumers: absorbed.iter().map(|e| e.consumers).sum(),
            unobserved,
            uses: absorbed.iter().map(|e| e.uses).sum(),
        });
    }
    entries.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    Recommendation {
        project: project.to_string(),
        over_limit: entries.len() > opts.max_entries,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumers(paths: &[String]) -> BTreeMap<String, u64> {
        paths.iter().map(|p| (p.clone(), 1)).collect()
    }

    fn opts(max_entries: usize, share: f64) -> RecommendOptions {
        RecommendOptions {
            max_entries,
            max_unobserved_share: share,
        }
    }

    #[test]
    fn ancestry() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(is_under("a/b/c", "a/b"));
        assert!(!is_under("a/bc", "a/b"));
        assert!(!is_under("a/b", "a/b"));
    }

    #[test]
    fn under_the_limit_every_consumer_is_a_project_entry_and_self_is_dropped() {
        let c = consumers(&["x/p1".into(), "y/p2".into(), "t/target".into()]);
        let known: BTreeSet<String> = ["x/p1", "x/other", "y/p2", "t/target"]
            .map(String::from)
            .into();
        let r = recommend("t/target", &c, &known, RecommendOptions::default());
        assert!(!r.over_limit);
        let paths: Vec<&str> = r.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["x/p1", "y/p2"]);
        assert!(r.entries.iter().all(|e| e.kind == EntryKind::Project));
    }

    /// 300 consumers in six subgroups of 50: three subgroup entries (−49 entries each) bring
    /// it to 153 ≤ 200, and only fully observed subgroups are chosen.
    #[test]
    fn consolidates_to_fully_observed_groups_to_fit_200() {
        let mut all = Vec::new();
        for g in 0..6 {
            for p in 0..50 {
                all.push(format!("org/sub{g}/p{p:02}"));
            }
        }
        let mut known: BTreeSet<String> = all.iter().cloned().collect();
        // sub0 holds one unobserved project: with a zero threshold it must not be chosen.
        known.insert("org/sub0/secret".into());
        let r = recommend("svc/target", &consumers(&all), &known, opts(200, 0.0));
        assert!(!r.over_limit);
        assert!(r.entries.len() <= 200, "{}", r.entries.len());
        let groups: Vec<&str> = r
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Group)
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(groups, ["org/sub1", "org/sub2", "org/sub3"]);
        assert!(r.entries.iter().all(|e| e.unobserved == 0));
        let admitted: usize = r.entries.iter().map(|e| e.consumers).sum();
        assert_eq!(admitted, 300, "every consumer stays admitted");
    }

    #[test]
    fn threshold_bounds_unobserved_exposure_and_flags_over_limit() {
        // 3 consumers under `g`, which also holds 1 unobserved project (share 0.25).
        let c = consumers(&["g/a".into(), "g/b".into(), "g/c".into()]);
        let known: BTreeSet<String> = ["g/a", "g/b", "g/c", "g/unseen"].map(String::from).into();
        let strict = recommend("t/p", &c, &known, opts(2, 0.2));
        assert!(strict.over_limit);
        assert_eq!(strict.entries.len(), 3);
        let lenient = recommend("t/p", &c, &known, opts(2, 0.25));
        assert!(!lenient.over_limit);
        assert_eq!(
            lenient.entries,
            [Entry {
                kind: EntryKind::Group,
                path: "g".into(),
                consumers: 3,
                unobserved: 1,
                uses: 3,
            }]
        );
    }

    #[test]
    fn consolidates_to_the_common_ancestor() {
        // Limit 1: only the common ancestor `a` admits all three.
        let c = consumers(&["a/x/1".into(), "a/x/2".into(), "a/y/1".into()]);
        let known: BTreeSet<String> = c.keys().cloned().collect();
        let r = recommend("t/p", &c, &known, opts(1, 0.0));
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].path, "a");
        assert_eq!(r.entries[0].consumers, 3);
    }
}
