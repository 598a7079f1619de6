//! Allowlist changes that make a use's status depend on *when* it is judged: group entries
//! consolidated and their policies updated (GitLab then names the group by its display name),
//! projects transferred to another group, and project entries removed seconds after a use.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::{AclChange, AclOp, Member, POLICY_SETS, SimConfig, World};

/// A project moved into another group at `at` (GitLab keeps its id, its path changes).
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub at: i64,
    pub project: usize,
    pub to_group: usize,
}

impl World {
    /// After a whole group was admitted to `target` at `at`: the now redundant project entries
    /// of its projects are removed (GitLab's allowlist compaction does the same), and later
    /// the group entry's policies are updated.
    pub(super) fn consolidate(
        &self,
        changes: &mut Vec<AclChange>,
        target: usize,
        group: usize,
        at: i64,
        rng: &mut ChaCha8Rng,
    ) {
        let inside: Vec<usize> = changes
            .iter()
            .filter_map(|c| match c.op {
                AclOp::Added(Member::Project(s)) if c.target == target && c.anomaly.is_none() => {
                    Some(s)
                }
                _ => None,
            })
            .filter(|&s| self.in_group(s, group))
            .collect();
        for (k, s) in inside.into_iter().enumerate() {
            changes.push(AclChange {
                at: at + 60_000 + 50 * k as i64,
                target,
                op: AclOp::Removed(Member::Project(s)),
                policies: POLICY_SETS[0],
                anomaly: None,
            });
        }
        changes.push(AclChange {
            at: at + rng.random_range(120_000..1_800_000),
            target,
            op: AclOp::PoliciesUpdated(Member::Group(group)),
            policies: POLICY_SETS.choose(rng).expect("non-empty"),
            anomaly: None,
        });
    }

    /// Moves a few projects admitted through a subgroup entry to another subgroup: the target's
    /// maintainer admits the new subgroup shortly before, and removes the old one seconds
    /// after. Uses before the move are admitted by the old group, uses after it by the new.
    pub(super) fn plan_transfers(
        &mut self,
        cfg: &SimConfig,
        changes: &mut Vec<AclChange>,
        later: &impl Fn(&mut ChaCha8Rng) -> i64,
        rng: &mut ChaCha8Rng,
    ) {
        let subgroups: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].parent.is_some())
            .collect();
        let entries: Vec<(usize, usize)> = changes
            .iter()
            .filter_map(|c| match c.op {
                AclOp::Added(Member::Group(g)) if c.anomaly.is_none() => Some((c.target, g)),
                _ => None,
            })
            .collect();
        let wanted = (cfg.jobs / 5_000).clamp(1, 20);
        let mut moved: Vec<usize> = Vec::new();
        for _ in 0..4 * wanted {
            if moved.len() == wanted {
                break;
            }
            let Some(&(target, from)) = entries.choose(rng) else {
                return;
            };
            let inside: Vec<usize> = (0..self.projects.len())
                .filter(|&s| self.projects[s].deps.contains(&target) && self.in_group(s, from))
                .collect();
            let [source] = inside[..] else { continue };
            let Some(&to) = subgroups.choose(rng) else {
                return;
            };
            let new_path = format!("{}/{}", self.groups[to].path, self.projects[source].name);
            if moved.contains(&source)
                || self.groups[to].path.starts_with(&self.groups[from].path)
                || self.groups[from].path.starts_with(&self.groups[to].path)
                || self.projects.iter().any(|p| p.path == new_path)
            {
                continue;
            }
            let at = later(rng);
            let policies = POLICY_SETS[0];
            let mut push = |at, op| {
                changes.push(AclChange {
                    at,
                    target,
                    op,
                    policies,
                    anomaly: None,
                })
            };
            push(
                at - rng.random_range(10_000..60_000),
                AclOp::Added(Member::Group(to)),
            );
            push(
                at + rng.random_range(1_000..5_000),
                AclOp::Removed(Member::Group(from)),
            );
            self.transfers.push(Transfer {
                at,
                project: source,
                to_group: to,
            });
            moved.push(source);
        }
        self.transfers.sort_by_key(|t| t.at);
    }

    /// Applies the transfers due at or before `until` (the start of the next pipeline), once.
    pub fn apply_transfers(&mut self, until: i64) {
        let due = self.transfers.partition_point(|t| t.at <= until);
        for t in self.transfers.drain(..due) {
            let p = &mut self.projects[t.project];
            p.group = t.to_group;
            p.path = format!("{}/{}", self.groups[t.to_group].path, p.name);
        }
    }

    /// Adds a change while jobs run; returns its index in `acl`.
    pub fn insert_change(&mut self, c: AclChange) -> usize {
        let (target, at) = (c.target, c.at);
        self.acl.push(c);
        let i = self.acl.len() - 1;
        let acl = &self.acl;
        let list = &mut self.acl_by_target[target];
        let pos = list.partition_point(|&j| acl[j].at <= at);
        list.insert(pos, i);
        i
    }

    /// Whether a policies update of `member` on `target` is planned within `[from, to]`.
    pub fn policies_update_between(
        &self,
        target: usize,
        member: Member,
        from: i64,
        to: i64,
    ) -> bool {
        self.acl_by_target[target].iter().any(|&i| {
            let c = &self.acl[i];
            c.op == AclOp::PoliciesUpdated(member) && (from..=to).contains(&c.at)
        })
    }

    /// Whether `source` is an explicit project entry of `target` at `at`.
    pub fn project_entry_at(&self, source: usize, target: usize, at: i64) -> bool {
        let mut present = false;
        for &i in &self.acl_by_target[target] {
            let c = &self.acl[i];
            if c.at > at {
                break;
            }
            match c.op {
                AclOp::Added(Member::Project(p)) if p == source => present = true,
                AclOp::Removed(Member::Project(p)) if p == source => present = false,
                _ => {}
            }
        }
        present
    }

    /// The project's current path lies in the group or one of its subgroups.
    pub fn in_group(&self, project: usize, group: usize) -> bool {
        let (path, group_path) = (&self.projects[project].path, &self.groups[group].path);
        path.len() > group_path.len()
            && path.starts_with(group_path.as_str())
            && path.as_bytes()[group_path.len()] == b'/'
    }
}
