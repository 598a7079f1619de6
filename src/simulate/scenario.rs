//! Job timelines: pipelines arrive over time, their jobs authenticate with the job token and
//! touch resources, and unrelated activity happens around them. Every token use produces
//! its audit events and its ground-truth `TokenUse` at the same place, so they cannot drift.
//!
//! Correlation assumption (documented for the pipeline): a resource event belongs to the
//! nearest *preceding* `user_authenticated_using_job_token` with the same author and IP.
//! The generator guarantees this is always right: the `[auth, resource]` intervals of one
//! (author, IP) never overlap and are at least `GUARD_MS` apart, even when one user has two
//! jobs running at once on runners sharing an egress IP (it shifts the later use instead).

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::faults::Outbox;
use super::world::World;
use super::{AnomalyTruth, GroundTruth, SimConfig, SimMessage};
use crate::model::{ActorKind, TokenUse};

mod events;
mod jobs;

/// Minimum spacing between two token uses of the same (author, IP).
const GUARD_MS: i64 = 250;
/// Mean job run time and jobs per pipeline, used to turn `concurrency` into an arrival rate.
const MEAN_JOB_MS: i64 = 100_000;
const MEAN_JOBS_PER_PIPELINE: f64 = 2.5;

/// Who a pipeline runs as: a human or a project access-token bot.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub kind: ActorKind,
}

/// A multi-project pipeline requested by a job-token `pipeline.trigger` use.
struct Downstream {
    start: i64,
    pipeline_id: i64,
    project: usize,
    person: Person,
    source_project: usize,
    source_pipeline: i64,
    source_job: i64,
    root: (String, i64),
}

enum Timed {
    Acl(usize),
    BotToken(usize),
}

pub struct Scenario {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    world: World,
    out: Outbox,
    jobs_left: usize,
    next_regular_at: i64,
    interarrival_mean: i64,
    downstream: BinaryHeap<Reverse<(i64, u64)>>,
    downstream_by_seq: HashMap<u64, Downstream>,
    timed: VecDeque<(i64, Timed)>,
    busy: HashMap<(i64, usize), Vec<(i64, i64)>>,
    content_keys: HashSet<u64>,
    anomalous_pairs: HashSet<(usize, usize)>,
    /// Event time of the latest use generated so far, per (source, target).
    last_use: HashMap<(usize, usize), i64>,
    /// Bots that have run a pipeline so far, most recent last.
    bots_seen: Vec<usize>,
    ids: Ids,
    finished: bool,
}

/// Monotonic id allocators (GitLab ids grow with creation time, with gaps).
struct Ids {
    saved: i64,
    pipeline: i64,
    pipeline_iid: i64,
    job: i64,
    artifact: i64,
    token: i64,
    seq: u64,
}

impl Scenario {
    pub fn new(cfg: &SimConfig) -> Scenario {
        // `random_bool` panics outside [0, 1]; a CLI typo should not.
        let share = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let cfg = &SimConfig {
            duplicate_share: share(cfg.duplicate_share),
            batch_share: share(cfg.batch_share),
            webhook_retry_share: share(cfg.webhook_retry_share),
            bad_share: share(cfg.bad_share),
            anomaly_share: share(cfg.anomaly_share),
            noise_per_job: if cfg.noise_per_job.is_finite() {
                cfg.noise_per_job.max(0.0)
            } else {
                0.0
            },
            ..cfg.clone()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut world = World::new(cfg, &mut rng);
        let out = Outbox::new(cfg, &mut rng);
        let concurrency = cfg.concurrency.max(1) as f64;
        let interarrival_mean = (MEAN_JOB_MS as f64 * MEAN_JOBS_PER_PIPELINE / concurrency) as i64;
        let est_span = (cfg.jobs as f64 * MEAN_JOB_MS as f64 / concurrency) as i64;
        let first_job_at = world.plan_allowlists(cfg, cfg.start_ms, est_span * 9 / 10, &mut rng);
        // Changes before `start_ms` are pre-existing allowlists: never streamed.
        let mut timed: Vec<(i64, Timed)> = world
            .acl
            .iter()
            .enumerate()
            .filter(|(_, c)| c.at >= cfg.start_ms)
            .map(|(i, c)| (c.at, Timed::Acl(i)))
            .collect();
        if cfg.anomaly_share > 0.0 && !world.bots.is_empty() {
            for _ in 0..super::world::world_anomaly_count(cfg) {
                let bot = rng.random_range(0..world.bots.len());
                timed.push((
                    first_job_at + rng.random_range(0..est_span.max(1)),
                    Timed::BotToken(bot),
                ));
            }
        }
        timed.sort_by_key(|t| t.0);
        Scenario {
            cfg: cfg.clone(),
            rng,
            world,
            out,
            jobs_left: cfg.jobs,
            next_regular_at: first_job_at,
            interarrival_mean: interarrival_mean.max(1),
            downstream: BinaryHeap::new(),
            downstream_by_seq: HashMap::new(),
            timed: timed.into(),
            busy: HashMap::new(),
            content_keys: HashSet::new(),
            anomalous_pairs: HashSet::new(),
            last_use: HashMap::new(),
            bots_seen: Vec::new(),
            ids: Ids {
                saved: 552_000,
                pipeline: 445_000,
                pipeline_iid: 800,
                job: 987_000,
                artifact: 31_000,
                token: 7_000,
                seq: 0,
            },
            finished: false,
        }
    }

    pub fn next_message(&mut self) -> Option<SimMessage> {
        loop {
            if let Some(m) = self.out.pop_ready() {
                return Some(m);
            }
            if self.finished {
                return None;
            }
            if !self.step() {
                self.finished = true;
            }
        }
    }

    pub fn preexisting_allowlists(&self) -> Vec<super::gitlab_api::Preexisting> {
        let w = &self.world;
        w.standing_allowlists(self.cfg.start_ms)
            .into_iter()
            .map(|(ti, members)| super::gitlab_api::Preexisting {
                project: (w.projects[ti].id, w.projects[ti].path.clone()),
                members: members
                    .into_iter()
                    .map(|s| (w.projects[s].id, w.projects[s].path.clone()))
                    .collect(),
            })
            .collect()
    }

    pub fn into_truth(self) -> GroundTruth {
        let mut truth = self.out.truth;
        truth.token_uses.sort_by(|a, b| {
            (a.event_time_ms, a.job_id, &a.action).cmp(&(b.event_time_ms, b.job_id, &b.action))
        });
        truth
            .anomalies
            .sort_by(|a, b| (a.time_ms, &a.kind).cmp(&(b.time_ms, &b.kind)));
        truth
    }

    /// Generates one pipeline, then releases every record that nothing later can precede.
    fn step(&mut self) -> bool {
        if self.jobs_left == 0 {
            self.inject_timed_before(i64::MAX);
            self.out.drain_all(&mut self.rng);
            return false;
        }
        let next_ds = self.downstream.peek().map(|r| r.0);
        match next_ds {
            Some((start, seq)) if start <= self.next_regular_at => {
                self.world.apply_transfers(start);
                self.downstream.pop();
                let ds = self
                    .downstream_by_seq
                    .remove(&seq)
                    .expect("queued downstream");
                self.downstream_pipeline(ds);
            }
            _ => {
                let start = self.next_regular_at;
                self.world.apply_transfers(start);
                self.next_regular_at += self.rng.random_range(0..2 * self.interarrival_mean);
                self.regular_pipeline(start);
            }
        }
        let bound = self
            .downstream
            .peek()
            .map_or(self.next_regular_at, |r| r.0.0.min(self.next_regular_at));
        self.inject_timed_before(bound);
        self.out.drain_before(bound, &mut self.rng);
        true
    }

    /// Queues an allowlist change added while jobs run (`World::insert_change`).
    fn schedule_acl(&mut self, c: super::world::AclChange) {
        let at = c.at;
        let i = self.world.insert_change(c);
        let pos = self.timed.partition_point(|t| t.0 <= at);
        self.timed.insert(pos, (at, Timed::Acl(i)));
    }

    fn inject_timed_before(&mut self, bound: i64) {
        while self.timed.front().is_some_and(|t| t.0 < bound) {
            let (at, t) = self.timed.pop_front().expect("peeked");
            match t {
                Timed::Acl(i) => self.acl_event(i),
                Timed::BotToken(b) => self.bot_token_event(b, at),
            }
        }
    }

    /// Shifts a use so its `[auth, auth + gap]` interval keeps `GUARD_MS` from every other
    /// use of the same (author, IP); returns the auth time (not yet registered).
    fn reserve(&mut self, author: i64, ip: usize, desired: i64, gap: i64) -> i64 {
        let list = self.busy.entry((author, ip)).or_default();
        if list.len() > 32 {
            // Intervals far in the past can no longer collide (uses are at most minutes apart).
            let horizon = desired - 30 * 60_000;
            list.retain(|&(_, e)| e > horizon);
        }
        let mut at = desired;
        while let Some(&(_, e)) = list
            .iter()
            .find(|&&(s, e)| at - GUARD_MS <= e && at + gap + GUARD_MS >= s)
        {
            at = e + GUARD_MS + 1;
        }
        at
    }

    fn occupy(&mut self, author: i64, ip: usize, from: i64, to: i64) {
        self.busy.entry((author, ip)).or_default().push((from, to));
    }

    /// Moves a stream-only event by a millisecond until no other logical event has the same
    /// (type, author, entity, target, time) — the content-dedup key of stream-only events —
    /// so distinct events never look like re-dispatches.
    fn unique_time(
        &mut self,
        event_type: &str,
        author: i64,
        entity: i64,
        target: i64,
        mut at: i64,
    ) -> i64 {
        loop {
            let mut h = DefaultHasher::new();
            (event_type, author, entity, target, at).hash(&mut h);
            if self.content_keys.insert(h.finish()) {
                return at;
            }
            at += 1;
        }
    }

    fn saved_id(&mut self) -> i64 {
        self.ids.saved += self.rng.random_range(1..20);
        self.ids.saved
    }

    fn anomaly(
        &mut self,
        kind: &str,
        time_ms: i64,
        actor_id: Option<i64>,
        job_id: Option<i64>,
        (src, tgt): (Option<usize>, Option<usize>),
        detail: String,
    ) {
        let pid = |p: Option<usize>| p.map(|i| self.world.projects[i].id);
        let a = AnomalyTruth {
            kind: kind.to_string(),
            time_ms,
            actor_id,
            job_id,
            source_project_id: pid(src),
            target_project_id: pid(tgt),
            detail,
        };
        self.out.truth.anomalies.push(a);
    }

    fn push_use(&mut self, u: TokenUse) {
        self.out.truth.token_uses.push(u);
    }

    fn pick_ref(&mut self) -> (String, bool) {
        const BRANCHES: &[&str] = &[
            "fix-login",
            "bump-deps",
            "add-metrics",
            "refactor-cache",
            "ci-speedup",
        ];
        match self.rng.random_range(0..10) {
            0..=5 => ("main".to_string(), false),
            6..=8 => {
                let b = BRANCHES.choose(&mut self.rng).expect("non-empty");
                (
                    format!("feature/{b}-{}", self.rng.random_range(1..900)),
                    false,
                )
            }
            _ => (
                format!(
                    "v1.{}.{}",
                    self.rng.random_range(0..30),
                    self.rng.random_range(0..10)
                ),
                true,
            ),
        }
    }

    fn sha(&mut self) -> String {
        (0..20)
            .map(|_| format!("{:02x}", self.rng.random::<u8>()))
            .collect()
    }

    fn human(&self, u: usize) -> Person {
        let u = &self.world.users[u];
        Person {
            id: u.id,
            name: u.name.clone(),
            username: u.username.clone(),
            kind: ActorKind::Human,
        }
    }

    fn bot(&self, b: usize) -> Person {
        let b = &self.world.bots[b];
        Person {
            id: b.id,
            name: b.name.clone(),
            username: b.username.clone(),
            kind: ActorKind::ProjectBot,
        }
    }
}
