//! Job-webhook enrichment: a bounded `job_id -> CachedJob` cache.
//!
//! Job and pipeline webhooks are the only source of pipeline id, ref, runner and username for
//! a job (docs/gitlab-events.md §4). Records are enriched when they are emitted, i.e. after the
//! join has held the authentication for `window + lateness`; the pipeline's watermark waits
//! for the webhook partitions as well (`ingest::correlation`), so the webhooks received up to
//! then have been read. A webhook that arrives later than that does not update records already
//! emitted. That is deliberate: the `jobs` table in the store has the same data and can be
//! joined on `job_id` in SQL, so holding records longer would only add memory and latency.
//!
//! Eviction is FIFO by first insertion (an update keeps the job's place). A job is usually
//! announced several times (created, running, finished); evicting the oldest-announced job
//! first drops the jobs least likely to authenticate again.

use std::collections::{HashMap, VecDeque};

use crate::model::JobInfo;

/// What a record takes from a job: only these fields are kept. A webhook's other fields
/// (name, sha, runner description, timestamps) are stored in the `jobs` table; keeping them
/// here too cost about half of the cache's memory, which reaches 200k jobs on a backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedJob {
    pub project_id: Option<i64>,
    pub project_path: String,
    pub pipeline_id: Option<i64>,
    pub user_id: Option<i64>,
    pub username: Option<Box<str>>,
    pub git_ref: Option<Box<str>>,
    pub runner_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct JobCache {
    cap: usize,
    map: HashMap<i64, CachedJob>,
    order: VecDeque<i64>,
    evicted: u64,
}

impl JobCache {
    /// `cap == 0` disables the cache.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Inserts or merges a job. Later webhooks for the same job win field by field, but a
    /// missing value never erases a known one (a `pending` hook has no runner yet, for example).
    pub fn upsert(&mut self, job: &JobInfo) {
        if self.cap == 0 {
            return;
        }
        if let Some(old) = self.map.get_mut(&job.job_id) {
            merge(old, job);
            return;
        }
        while self.map.len() >= self.cap {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.map.remove(&oldest).is_some() {
                self.evicted += 1;
            }
        }
        let mut cached = CachedJob::default();
        merge(&mut cached, job);
        self.map.insert(job.job_id, cached);
        self.order.push_back(job.job_id);
    }

    pub fn get(&self, job_id: i64) -> Option<&CachedJob> {
        self.map.get(&job_id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The next new job evicts one.
    pub fn is_full(&self) -> bool {
        self.cap > 0 && self.map.len() >= self.cap
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Jobs dropped because the cache was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn merge(old: &mut CachedJob, new: &JobInfo) {
    fn text(old: &mut Option<Box<str>>, new: &Option<String>) {
        if let Some(new) = new {
            *old = Some(new.as_str().into());
        }
    }
    fn opt<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    if !new.project_path.is_empty() {
        new.project_path.clone_into(&mut old.project_path);
    }
    opt(&mut old.project_id, &new.project_id);
    opt(&mut old.pipeline_id, &new.pipeline_id);
    opt(&mut old.user_id, &new.user_id);
    text(&mut old.username, &new.username);
    text(&mut old.git_ref, &new.git_ref);
    opt(&mut old.runner_id, &new.runner_id);
}
