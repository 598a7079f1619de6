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

use std::collections::VecDeque;

use crate::hashing::{HashMap, HashSet};
use std::sync::Arc;

use crate::model::JobInfo;

/// What a record takes from a job: only these fields are kept. A webhook's other fields
/// (name, sha, runner description, timestamps) are stored in the `jobs` table; keeping them
/// here too cost about half of the cache's memory, which reaches 200k jobs on a backlog.
/// The texts repeat across jobs (a project's path, a user's name, `main`), so each distinct
/// text is held once ([`Texts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedJob {
    pub project_id: Option<i64>,
    pub project_path: Option<Arc<str>>,
    pub pipeline_id: Option<i64>,
    pub user_id: Option<i64>,
    pub username: Option<Arc<str>>,
    pub git_ref: Option<Arc<str>>,
    pub runner_id: Option<i64>,
}

/// One shared copy of each text the cached jobs hold.
#[derive(Debug, Clone, Default)]
struct Texts {
    set: HashSet<Arc<str>>,
    /// Size after the last sweep: a sweep runs when the set has doubled since, so its cost is
    /// spread over the insertions and texts of evicted jobs do not pile up.
    swept_at: usize,
}

impl Texts {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.set.get(text) {
            return shared.clone();
        }
        if self.set.len() >= 2 * self.swept_at.max(1024) {
            // Held only here: no cached job uses it any more.
            self.set.retain(|t| Arc::strong_count(t) > 1);
            self.swept_at = self.set.len();
        }
        let shared: Arc<str> = Arc::from(text);
        self.set.insert(shared.clone());
        shared
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

#[derive(Debug, Clone)]
pub struct JobCache {
    cap: usize,
    map: HashMap<i64, CachedJob>,
    order: VecDeque<i64>,
    evicted: u64,
    texts: Texts,
}

impl JobCache {
    /// `cap == 0` disables the cache.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            map: HashMap::default(),
            order: VecDeque::new(),
            evicted: 0,
            texts: Texts::default(),
        }
    }

    /// Inserts or merges a job. Later webhooks for the same job win field by field, but a
    /// missing value never erases a known one (a `pending` hook has no runner yet, for example).
    pub fn upsert(&mut self, job: &JobInfo) {
        if self.cap == 0 {
            return;
        }
        if let Some(old) = self.map.get_mut(&job.job_id) {
            merge(old, job, &mut self.texts);
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
        merge(&mut cached, job, &mut self.texts);
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

fn merge(old: &mut CachedJob, new: &JobInfo, texts: &mut Texts) {
    let mut text = |old: &mut Option<Arc<str>>, new: Option<&str>| {
        if let Some(new) = new
            && old.as_deref() != Some(new)
        {
            *old = Some(texts.get(new));
        }
    };
    text(
        &mut old.project_path,
        Some(new.project_path.as_str()).filter(|p| !p.is_empty()),
    );
    text(&mut old.username, new.username.as_deref());
    text(&mut old.git_ref, new.git_ref.as_deref());
    fn opt<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            old.clone_from(new);
        }
    }
    opt(&mut old.project_id, &new.project_id);
    opt(&mut old.pipeline_id, &new.pipeline_id);
    opt(&mut old.user_id, &new.user_id);
    opt(&mut old.runner_id, &new.runner_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, path: &str, user: &str, git_ref: Option<&str>) -> JobInfo {
        JobInfo {
            job_id: id,
            project_path: path.to_owned(),
            username: Some(user.to_owned()),
            git_ref: git_ref.map(str::to_owned),
            user_id: Some(7),
            ..JobInfo::default()
        }
    }

    #[test]
    fn texts_are_shared_across_jobs_and_merged_field_by_field() {
        let mut cache = JobCache::new(10);
        cache.upsert(&job(1, "g/p", "alice", Some("main")));
        cache.upsert(&job(2, "g/p", "alice", None));
        cache.upsert(&job(2, "", "bob", Some("dev")));
        let (a, b) = (cache.get(1).unwrap(), cache.get(2).unwrap());
        assert!(Arc::ptr_eq(
            a.project_path.as_ref().unwrap(),
            b.project_path.as_ref().unwrap()
        ));
        // An empty path or a missing ref never erases a known one.
        assert_eq!(b.project_path.as_deref(), Some("g/p"));
        assert_eq!(
            (b.username.as_deref(), b.git_ref.as_deref()),
            (Some("bob"), Some("dev"))
        );
        assert_eq!(cache.texts.len(), 5);
    }

    #[test]
    fn texts_of_evicted_jobs_are_swept() {
        let mut cache = JobCache::new(100);
        for id in 0..20_000 {
            cache.upsert(&job(id, &format!("g/p{id}"), &format!("u{id}"), None));
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.evicted(), 19_900);
        // 200 texts in use; the rest are swept once the set doubles.
        assert!(cache.texts.len() <= 2 * 1024 + 200, "{}", cache.texts.len());
        let last = cache.get(19_999).unwrap();
        assert_eq!(last.project_path.as_deref(), Some("g/p19999"));
    }
}
