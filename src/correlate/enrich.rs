//! Job-webhook enrichment: a bounded `job_id -> JobInfo` cache.
//!
//! Job and pipeline webhooks are the only source of pipeline id, ref, runner and username for
//! a job (reference §4). Records are enriched when they are emitted, i.e. after the join has
//! held the authentication for `window + lateness`; a webhook that arrives later than that does
//! not update records already emitted. That is deliberate: the `jobs` table in the store has
//! the same data and can be joined on `job_id` in SQL, so holding records longer would only add
//! memory and latency.
//!
//! Eviction is FIFO by first insertion (an update keeps the job's place). A job is usually
//! announced several times (created, running, finished); evicting the oldest-announced job
//! first drops the jobs least likely to authenticate again.

use std::collections::{HashMap, VecDeque};

use crate::model::JobInfo;

#[derive(Debug, Clone)]
pub struct JobCache {
    cap: usize,
    map: HashMap<i64, JobInfo>,
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
        self.map.insert(job.job_id, job.clone());
        self.order.push_back(job.job_id);
    }

    pub fn get(&self, job_id: i64) -> Option<&JobInfo> {
        self.map.get(&job_id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Jobs dropped because the cache was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn merge(old: &mut JobInfo, new: &JobInfo) {
    fn text(old: &mut String, new: &str) {
        if !new.is_empty() {
            new.clone_into(old);
        }
    }
    fn opt<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    text(&mut old.job_name, &new.job_name);
    text(&mut old.project_path, &new.project_path);
    text(&mut old.status, &new.status);
    opt(&mut old.project_id, &new.project_id);
    opt(&mut old.pipeline_id, &new.pipeline_id);
    opt(&mut old.user_id, &new.user_id);
    opt(&mut old.username, &new.username);
    opt(&mut old.git_ref, &new.git_ref);
    opt(&mut old.sha, &new.sha);
    opt(&mut old.runner_id, &new.runner_id);
    opt(&mut old.runner_description, &new.runner_description);
    opt(&mut old.started_at_ms, &new.started_at_ms);
    opt(&mut old.finished_at_ms, &new.finished_at_ms);
    opt(&mut old.source_pipeline_id, &new.source_pipeline_id);
    opt(&mut old.source_project_id, &new.source_project_id);
    opt(&mut old.source_project_path, &new.source_project_path);
}
