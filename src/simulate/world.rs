//! The simulated GitLab instance: groups, projects, people, runners, addresses, the normal
//! dependency graph between projects, and every inbound-allowlist change over time.
//!
//! Allowlist history is fixed up front (not as jobs run) so that the ground-truth
//! `allowlisted` flag of a use can be computed from the complete timeline at its time. The
//! one exception, a project removed seconds after one of its uses ([`World::insert_change`]),
//! is added only where no use already generated could be affected.

use std::collections::HashSet;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::SimConfig;

mod changes;

pub use changes::Transfer;

pub struct Group {
    pub id: i64,
    pub path: String,
    /// Display name ("Platform Team"): what GitLab's policies-update event names a group by.
    pub name: String,
    pub parent: Option<usize>,
}

pub struct Project {
    pub id: i64,
    pub name: String,
    /// Current path: changes when the project is transferred ([`World::transfers`]).
    pub path: String,
    pub group: usize,
    /// Path contains `secrets` or `prod`: any job-token use against it is an anomaly.
    pub crown: bool,
    /// Index into `World::bots` of the project's access-token bot, if it has one.
    pub bot: Option<usize>,
    /// Normal job-token targets of this project's jobs (never crown jewels, never itself).
    pub deps: Vec<usize>,
    /// Human who administers the project (author of its settings and allowlist events).
    pub maintainer: usize,
    /// Shared projects are depended on more often (libraries, templates).
    pub weight: u32,
}

pub struct User {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub nat_ip: usize,
    /// Heavy CI users trigger more pipelines, which makes same-user concurrency realistic.
    pub weight: u32,
}

pub struct Bot {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub project: usize,
}

pub struct Runner {
    pub id: i64,
    pub description: String,
    pub runner_type: &'static str,
    pub tags: Vec<&'static str>,
    /// Egress address index into `World::runner_ips` (shared by several runners).
    pub ip: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Member {
    Project(usize),
    Group(usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AclOp {
    InboundEnabled,
    InboundDisabled,
    Added(Member),
    Removed(Member),
    PoliciesUpdated(Member),
}

/// One `secure_ci_job_token_*` event on a protected (target) project.
#[derive(Clone, Debug)]
pub struct AclChange {
    pub at: i64,
    pub target: usize,
    pub op: AclOp,
    pub policies: &'static [&'static str],
    /// Anomaly kind this change represents, if any.
    pub anomaly: Option<&'static str>,
}

pub struct World {
    pub groups: Vec<Group>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub bots: Vec<Bot>,
    pub runners: Vec<Runner>,
    pub nat_ips: Vec<String>,
    pub runner_ips: Vec<String>,
    /// All allowlist changes, sorted by time; also indexed per target in `acl_by_target`.
    pub acl: Vec<AclChange>,
    pub acl_by_target: Vec<Vec<usize>>,
    /// Projects moved to another group, by time (applied as the simulation clock passes).
    pub transfers: Vec<Transfer>,
    /// Cumulative weights for weighted project and user picks.
    project_cdf: Vec<u64>,
    user_cdf: Vec<u64>,
}

const TOP_GROUPS: &[&str] = &[
    "platform",
    "payments",
    "data",
    "mobile",
    "web",
    "infra",
    "identity",
    "search",
    "billing",
    "growth",
    "ml",
    "observability",
    "messaging",
    "storefront",
    "partners",
    "compliance",
];
const SUB_GROUPS: &[&str] = &["tools", "libs", "services", "shared", "ops", "ci", "apps"];
const PROJECT_NAMES: &[&str] = &[
    "app-backend",
    "ledger-service",
    "api-gateway",
    "frontend",
    "auth-service",
    "ci-templates",
    "shared-lib",
    "helm-charts",
    "release-orchestrator",
    "build-images",
    "docs-site",
    "event-bus",
    "notification-service",
    "search-indexer",
    "feature-flags",
    "billing-worker",
    "mobile-sdk",
    "terraform-modules",
    "schema-registry",
    "test-fixtures",
    "load-tests",
    "metrics-exporter",
    "web-components",
    "cli",
    "data-pipeline",
    "model-serving",
];
const CROWN_NAMES: &[&str] = &[
    "secrets-vault",
    "prod-config",
    "prod-deploy",
    "secrets-rotation",
];
const FIRST: &[&str] = &[
    "Dana", "Maya", "Alex", "Sam", "Priya", "Jonas", "Lea", "Omar", "Chen", "Sofia", "Ivan",
    "Amara", "Lukas", "Noor", "Mateo", "Yuki", "Elif", "Kwame", "Ines", "Tariq",
];
const LAST: &[&str] = &[
    "Builder",
    "Maintainer",
    "Schmidt",
    "Okafor",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Silva",
    "Novak",
    "Rossi",
    "Fischer",
    "Ali",
];
const BOT_NAMES: &[&str] = &[
    "Deploy bot",
    "Release bot",
    "Renovate bot",
    "Docs bot",
    "CI bot",
];
pub const POLICY_SETS: &[&[&str]] = &[
    &["read_packages", "read_releases"],
    &["read_jobs"],
    &["read_repositories", "read_packages"],
    &["read_deployments", "read_environments", "read_jobs"],
];

impl World {
    /// The projects that depend on project `target`.
    fn consumers_of(&self, target: usize) -> Vec<usize> {
        (0..self.projects.len())
            .filter(|&s| self.projects[s].deps.contains(&target))
            .collect()
    }

    pub fn new(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> World {
        let groups = make_groups(cfg.groups.max(1), rng);
        let mut projects = make_projects(cfg.projects.max(2), &groups, rng);
        let users = make_users(cfg.users.max(1), cfg.nat_ips.max(1), rng);
        for p in &mut projects {
            p.maintainer = rng.random_range(0..users.len());
        }
        let bots = make_bots(&mut projects, rng);
        make_deps(&mut projects, rng);
        let (runners, runner_ip_count) = make_runners(cfg.concurrency, rng);
        let nat_ips = (0..cfg.nat_ips.max(1))
            .map(|i| format!("203.0.113.{}", 10 + i % 240))
            .collect();
        let runner_ips = (0..runner_ip_count)
            .map(|i| format!("10.20.30.{}", 40 + i))
            .collect();
        let project_cdf = cdf(projects.iter().map(|p| if p.crown { 0 } else { p.weight }));
        let user_cdf = cdf(users.iter().map(|u| u.weight));
        World {
            groups,
            projects,
            users,
            bots,
            runners,
            nat_ips,
            runner_ips,
            acl: Vec::new(),
            acl_by_target: Vec::new(),
            transfers: Vec::new(),
            project_cdf,
            user_cdf,
        }
    }

    /// Builds the allowlist timeline: setup changes from `setup_at` (50 ms apart), then later
    /// routine changes and allowlist anomalies spread over `span_ms` after the setup.
    /// Returns when the first job may start (after the setup, so jobs see a known state).
    pub fn plan_allowlists(
        &mut self,
        cfg: &SimConfig,
        setup_at: i64,
        span_ms: i64,
        rng: &mut ChaCha8Rng,
    ) -> i64 {
        let mut changes = Vec::new();
        let mut t = setup_at;
        let mut targets: Vec<usize> = Vec::new();
        for (ti, p) in self.projects.iter().enumerate() {
            if p.crown || !rng.random_bool(0.4) {
                continue;
            }
            let sources = self.consumers_of(ti);
            if sources.is_empty() {
                continue;
            }
            targets.push(ti);
            let mut push = |op, rng: &mut ChaCha8Rng| {
                let policies = *POLICY_SETS.choose(rng).expect("non-empty");
                changes.push(AclChange {
                    at: t,
                    target: ti,
                    op,
                    policies,
                    anomaly: None,
                });
                t += 50;
            };
            push(AclOp::InboundEnabled, rng);
            let mut groups_added = HashSet::new();
            for s in sources {
                let g = self.projects[s].group;
                // Normal group admissions are subgroups only; a top-level group is an anomaly.
                if self.groups[g].parent.is_some() && rng.random_bool(0.3) {
                    if groups_added.insert(g) {
                        push(AclOp::Added(Member::Group(g)), rng);
                    }
                } else {
                    push(AclOp::Added(Member::Project(s)), rng);
                }
            }
        }
        self.plan_preexisting(cfg, setup_at, &targets, &mut changes);
        // Stale entries are added during setup too, so reserve their slots before `from`.
        let from = t + 50 * targets.len() as i64 + 5_000;
        let span = span_ms.max(1);
        let later = |rng: &mut ChaCha8Rng| from + rng.random_range(0..span);
        // Routine later changes: stale entries removed, policies of real entries updated.
        for &ti in &targets {
            if rng.random_bool(0.3) {
                let stale = self.random_unrelated_source(ti, rng);
                if let Some(s) = stale {
                    let policies = POLICY_SETS[0];
                    changes.push(AclChange {
                        at: t,
                        target: ti,
                        op: AclOp::Added(Member::Project(s)),
                        policies,
                        anomaly: None,
                    });
                    t += 50;
                    let at = later(rng);
                    changes.push(AclChange {
                        at,
                        target: ti,
                        op: AclOp::Removed(Member::Project(s)),
                        policies,
                        anomaly: None,
                    });
                }
            }
            if rng.random_bool(0.2) {
                let member = changes.iter().find_map(|c| match c.op {
                    AclOp::Added(m) if c.target == ti && c.anomaly.is_none() => Some(m),
                    _ => None,
                });
                if let Some(m) = member {
                    let policies = *POLICY_SETS.choose(rng).expect("non-empty");
                    let at = later(rng);
                    changes.push(AclChange {
                        at,
                        target: ti,
                        op: AclOp::PoliciesUpdated(m),
                        policies,
                        anomaly: None,
                    });
                }
            }
        }
        if cfg.anomaly_share > 0.0 && !targets.is_empty() {
            let n = world_anomaly_count(cfg);
            let tops: Vec<usize> = (0..self.groups.len())
                .filter(|&g| self.groups[g].parent.is_none())
                .collect();
            for _ in 0..n {
                let ti = *targets.choose(rng).expect("non-empty");
                let at = later(rng);
                changes.push(AclChange {
                    at,
                    target: ti,
                    op: AclOp::InboundDisabled,
                    policies: &[],
                    anomaly: Some("allowlist_disabled"),
                });
                let ti = *targets.choose(rng).expect("non-empty");
                let g = *tops.choose(rng).expect("a top-level group exists");
                let at = later(rng);
                let policies = POLICY_SETS[0];
                changes.push(AclChange {
                    at,
                    target: ti,
                    op: AclOp::Added(Member::Group(g)),
                    policies,
                    anomaly: Some("group_admitted"),
                });
                self.consolidate(&mut changes, ti, g, at, rng);
            }
        }
        self.plan_transfers(cfg, &mut changes, &later, rng);
        changes.sort_by_key(|c| c.at);
        // GitLab updates the policies of existing entries only: drop an update planned for a
        // member that a transfer or a consolidation removed first.
        let mut present: HashSet<(usize, Member)> = HashSet::new();
        changes.retain(|c| match c.op {
            AclOp::Added(m) => {
                present.insert((c.target, m));
                true
            }
            AclOp::Removed(m) => {
                present.remove(&(c.target, m));
                true
            }
            AclOp::PoliciesUpdated(m) => present.contains(&(c.target, m)),
            AclOp::InboundEnabled | AclOp::InboundDisabled => true,
        });
        self.acl_by_target = vec![Vec::new(); self.projects.len()];
        for (i, c) in changes.iter().enumerate() {
            self.acl_by_target[c.target].push(i);
        }
        self.acl = changes;
        from
    }

    /// Allowlists made before the simulation starts (an hour before `setup_at`, never
    /// streamed): for a `cfg.preexisting_allowlists` share of the projects that have
    /// dependents but no streamed allowlist. Each dependent is admitted with probability 0.9,
    /// so some uses come from outside. A separate RNG keeps every other draw unchanged.
    fn plan_preexisting(
        &self,
        cfg: &SimConfig,
        setup_at: i64,
        evented: &[usize],
        changes: &mut Vec<AclChange>,
    ) {
        use rand::SeedableRng;
        if cfg.preexisting_allowlists <= 0.0 {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_a110_1157);
        let mut t = setup_at - 3_600_000;
        for (ti, p) in self.projects.iter().enumerate() {
            if p.crown
                || evented.contains(&ti)
                || !rng.random_bool(cfg.preexisting_allowlists.min(1.0))
            {
                continue;
            }
            let sources = self.consumers_of(ti);
            if sources.is_empty() {
                continue;
            }
            let mut push = |op| {
                changes.push(AclChange {
                    at: t,
                    target: ti,
                    op,
                    policies: &[],
                    anomaly: None,
                });
                t += 50;
            };
            push(AclOp::InboundEnabled);
            for s in sources {
                if rng.random_bool(0.9) {
                    push(AclOp::Added(Member::Project(s)));
                }
            }
        }
    }

    /// The allowlists that stand at `before_ms` on projects whose history starts before it.
    pub fn standing_allowlists(&self, before_ms: i64) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for (ti, idx) in self.acl_by_target.iter().enumerate() {
            if idx.first().is_none_or(|&i| self.acl[i].at >= before_ms) {
                continue;
            }
            let mut members = Vec::new();
            for &i in idx.iter().filter(|&&i| self.acl[i].at < before_ms) {
                match self.acl[i].op {
                    AclOp::Added(Member::Project(s)) => members.push(s),
                    AclOp::Removed(Member::Project(s)) => members.retain(|&m| m != s),
                    _ => {}
                }
            }
            out.push((ti, members));
        }
        out
    }

    fn random_unrelated_source(&self, target: usize, rng: &mut ChaCha8Rng) -> Option<usize> {
        (0..10)
            .map(|_| rng.random_range(0..self.projects.len()))
            .find(|&s| {
                s != target && !self.projects[s].deps.contains(&target) && !self.projects[s].crown
            })
    }

    /// Ground-truth `allowlisted`: `None` until the target's first allowlist event, then
    /// whether `source` is an explicit project entry or inside an admitted group. Membership
    /// is kept when inbound is disabled (GitLab keeps the entries; only enforcement stops).
    pub fn allowlisted(&self, source: usize, target: usize, at: i64) -> Option<bool> {
        let mut known = false;
        let mut projects: Vec<usize> = Vec::new();
        let mut groups: Vec<usize> = Vec::new();
        for &i in &self.acl_by_target[target] {
            let c = &self.acl[i];
            if c.at > at {
                break;
            }
            known = true;
            match c.op {
                AclOp::Added(Member::Project(p)) => projects.push(p),
                AclOp::Added(Member::Group(g)) => groups.push(g),
                AclOp::Removed(Member::Project(p)) => projects.retain(|&x| x != p),
                AclOp::Removed(Member::Group(g)) => groups.retain(|&x| x != g),
                _ => {}
            }
        }
        if !known {
            return None;
        }
        // The source's path now: the scenario applies transfers as its clock passes them.
        let in_group = groups.iter().any(|&g| self.in_group(source, g));
        Some(projects.contains(&source) || in_group)
    }

    /// Whether inbound enforcement is on for `target` at `at` (enabled and not disabled since).
    pub fn inbound_enforced(&self, target: usize, at: i64) -> bool {
        let mut on = false;
        for &i in &self.acl_by_target[target] {
            let c = &self.acl[i];
            if c.at > at {
                break;
            }
            match c.op {
                AclOp::InboundEnabled => on = true,
                AclOp::InboundDisabled => on = false,
                _ => {}
            }
        }
        on
    }

    /// A non-crown project, weighted towards shared ones.
    pub fn pick_project(&self, rng: &mut ChaCha8Rng) -> usize {
        pick(&self.project_cdf, rng)
    }

    pub fn pick_user(&self, rng: &mut ChaCha8Rng) -> usize {
        pick(&self.user_cdf, rng)
    }

    pub fn crown_projects(&self) -> Vec<usize> {
        (0..self.projects.len())
            .filter(|&i| self.projects[i].crown)
            .collect()
    }

    /// Top-level group's display namespace, e.g. `Platform`.
    pub fn namespace_name(&self, project: usize) -> String {
        let mut g = self.projects[project].group;
        while let Some(parent) = self.groups[g].parent {
            g = parent;
        }
        title(&self.groups[g].path)
    }

    /// GitLab's `project_name` ("Platform / Tools / cli").
    pub fn full_name(&self, project: usize) -> String {
        let p = &self.projects[project];
        let mut parts: Vec<String> = p.path.split('/').map(title).collect();
        if let Some(last) = parts.last_mut() {
            last.clone_from(&p.name);
        }
        parts.join(" / ")
    }
}

/// World-level anomalies of each kind (disable, top-level group, bot lifecycle): at least one
/// whenever anomalies are on, so small demo runs show every kind.
pub fn world_anomaly_count(cfg: &SimConfig) -> usize {
    ((cfg.anomaly_share * cfg.jobs as f64 / 100.0).round() as usize).clamp(1, 20)
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn cdf(weights: impl Iterator<Item = u32>) -> Vec<u64> {
    let mut acc = 0u64;
    weights
        .map(|w| {
            acc += u64::from(w);
            acc
        })
        .collect()
}

fn pick(cdf: &[u64], rng: &mut ChaCha8Rng) -> usize {
    let total = *cdf.last().expect("non-empty");
    let x = rng.random_range(0..total.max(1));
    cdf.partition_point(|&c| c <= x).min(cdf.len() - 1)
}

fn make_groups(n: usize, rng: &mut ChaCha8Rng) -> Vec<Group> {
    let tops = n.div_ceil(2).max(1);
    let mut groups: Vec<Group> = Vec::with_capacity(n);
    let mut used = HashSet::new();
    for i in 0..n {
        let parent = if i < tops {
            None
        } else {
            Some(rng.random_range(0..tops))
        };
        let base = match parent {
            None => TOP_GROUPS[i % TOP_GROUPS.len()].to_string(),
            Some(p) => format!(
                "{}/{}",
                groups[p].path,
                SUB_GROUPS.choose(rng).expect("non-empty")
            ),
        };
        let mut path = base.clone();
        let mut k = 2;
        while !used.insert(path.clone()) {
            path = format!("{base}{k}");
            k += 1;
        }
        let last = path.rsplit('/').next().unwrap_or(&path);
        groups.push(Group {
            id: 10 + i as i64 * 3,
            name: format!("{} Team", title(last)),
            path,
            parent,
        });
    }
    groups
}

fn make_projects(n: usize, groups: &[Group], rng: &mut ChaCha8Rng) -> Vec<Project> {
    let crown_count = (n / 30).max(1).min(n - 1);
    let mut used = HashSet::new();
    let mut id = 1000i64;
    (0..n)
        .map(|i| {
            let crown = i >= n - crown_count;
            let group = rng.random_range(0..groups.len());
            let names = if crown { CROWN_NAMES } else { PROJECT_NAMES };
            let base = names[i % names.len()];
            let mut name = base.to_string();
            let mut k = 2;
            while !used.insert(format!("{}/{}", groups[group].path, name)) {
                name = format!("{base}-{k}");
                k += 1;
            }
            id += rng.random_range(1..40);
            Project {
                id,
                path: format!("{}/{}", groups[group].path, name),
                name,
                group,
                crown,
                bot: None,
                deps: Vec::new(),
                maintainer: 0,
                weight: if i < n / 5 { 8 } else { 1 },
            }
        })
        .collect()
}

fn make_users(n: usize, nat_ips: usize, rng: &mut ChaCha8Rng) -> Vec<User> {
    let mut used = HashSet::new();
    (0..n)
        .map(|i| {
            let first = FIRST.choose(rng).expect("non-empty");
            let last = LAST.choose(rng).expect("non-empty");
            let base = format!("{}{}", &first[..1], last).to_lowercase();
            let mut username = base.clone();
            let mut k = 2;
            while !used.insert(username.clone()) {
                username = format!("{base}{k}");
                k += 1;
            }
            User {
                id: 4000 + i as i64 * 7,
                name: format!("{first} {last}"),
                username,
                nat_ip: rng.random_range(0..nat_ips),
                weight: if rng.random_bool(0.2) { 10 } else { 1 },
            }
        })
        .collect()
}

fn make_bots(projects: &mut [Project], rng: &mut ChaCha8Rng) -> Vec<Bot> {
    let mut bots = Vec::new();
    for (i, p) in projects.iter_mut().enumerate() {
        if p.crown || !rng.random_bool(0.25) {
            continue;
        }
        let hex: String = (0..16)
            .map(|_| format!("{:02x}", rng.random::<u8>()))
            .collect();
        p.bot = Some(bots.len());
        bots.push(Bot {
            id: 90_000 + bots.len() as i64 * 11,
            name: BOT_NAMES.choose(rng).expect("non-empty").to_string(),
            username: format!("project_{}_bot_{hex}", p.id),
            project: i,
        });
    }
    bots
}

fn make_deps(projects: &mut [Project], rng: &mut ChaCha8Rng) {
    let normal: Vec<usize> = (0..projects.len())
        .filter(|&i| !projects[i].crown)
        .collect();
    let weights = cdf(normal.iter().map(|&i| projects[i].weight));
    for &s in &normal {
        let k = rng.random_range(0..=4);
        let mut deps = Vec::new();
        for _ in 0..k {
            let t = normal[pick(&weights, rng)];
            if t != s && !deps.contains(&t) {
                deps.push(t);
            }
        }
        projects[s].deps = deps;
    }
}

fn make_runners(concurrency: usize, rng: &mut ChaCha8Rng) -> (Vec<Runner>, usize) {
    let n = (concurrency / 2).max(3);
    let ips = (n / 3).max(2);
    const TAGS: &[&[&str]] = &[&["k8s", "linux"], &["docker", "linux"], &["k8s", "arm64"]];
    let runners = (0..n)
        .map(|i| {
            let letter = (b'a' + (i % 26) as u8) as char;
            Runner {
                id: 800 + i as i64 * 3,
                description: format!("k8s-runner-{letter}{}", i / 26),
                runner_type: if i % 3 == 0 {
                    "instance_type"
                } else {
                    "group_type"
                },
                tags: TAGS.choose(rng).expect("non-empty").to_vec(),
                ip: i % ips,
            }
        })
        .collect();
    (runners, ips)
}
