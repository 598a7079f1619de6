//! The commit step, last in the flow: per partition, the contiguous prefix of durable batches
//! (`kafka::offsets::OffsetTracker`), capped by the offsets the correlation stage still pins.
//!
//! While running, commits are asynchronous: a synchronous commit blocks the loop for as long
//! as the group coordinator is away (a broker restart, a coordinator move), which stalls
//! recovery and, on shutdown, the process. Failures still come back, through the consumer's
//! `commit_callback` (`RebalanceShared::failed_commits`), and those offsets are committed
//! again. The last commit, on shutdown, is synchronous, so an exit leaves nothing unsent.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{CommitMode, Consumer};

use crate::kafka::consumer::{self, IngestConsumer, RebalanceShared};
use crate::kafka::offsets::DurableOffsets;
use crate::store::block::TopicPartition;
use crate::telemetry::metrics::Metrics;

pub struct Committer {
    consumer: Arc<IngestConsumer>,
    shared: Arc<Mutex<RebalanceShared>>,
    metrics: Metrics,
}

impl Committer {
    pub fn new(
        consumer: Arc<IngestConsumer>,
        shared: Arc<Mutex<RebalanceShared>>,
        metrics: Metrics,
    ) -> Self {
        Committer {
            consumer,
            shared,
            metrics,
        }
    }

    /// A batch is durable: its offsets join the tracker's prefix computation.
    pub fn complete(&self, durable: DurableOffsets) {
        self.shared
            .lock()
            .expect("rebalance state")
            .tracker
            .complete(durable);
    }

    /// Commits the durable prefix of every partition, capped by `cap` (the correlation
    /// pins), without waiting for the coordinator. The caps are kept for the revoke callback,
    /// which commits too.
    pub fn commit(&self, cap: impl Fn(&TopicPartition) -> Option<i64>) {
        let Some(list) = self.take(cap) else {
            return;
        };
        if let Err(e) = self.consumer.commit(&list.1, CommitMode::Async) {
            self.failed(&list.0, &e);
        }
    }

    /// The shutdown commit: synchronous, so it is sent (or known to have failed) before exit.
    pub fn commit_final(&self, cap: impl Fn(&TopicPartition) -> Option<i64>) {
        let Some((commits, list)) = self.take(cap) else {
            return;
        };
        let consumer = self.consumer.clone();
        // Off the async worker, like every blocking librdkafka call.
        let result = tokio::task::block_in_place(move || consumer.commit(&list, CommitMode::Sync));
        if let Err(e) = result {
            self.failed(&commits, &e);
        }
    }

    /// What to commit now, after handing failed commits back to the tracker.
    fn take(
        &self,
        cap: impl Fn(&TopicPartition) -> Option<i64>,
    ) -> Option<(Vec<(TopicPartition, i64)>, rdkafka::TopicPartitionList)> {
        let commits = {
            let mut shared = self.shared.lock().expect("rebalance state");
            let RebalanceShared {
                tracker,
                caps,
                failed_commits,
                ..
            } = &mut *shared;
            tracker.restore_commits(failed_commits.iter());
            failed_commits.clear();
            caps.clear();
            for tp in tracker.partitions() {
                caps.insert(tp.clone(), cap(tp));
            }
            tracker.take_commits(|tp| caps.get(tp).copied().flatten())
        };
        if commits.is_empty() {
            return None;
        }
        let list = consumer::commit_list(&commits);
        Some((commits, list))
    }

    fn failed(&self, commits: &[(TopicPartition, i64)], e: &rdkafka::error::KafkaError) {
        self.metrics.commit_failures.inc();
        tracing::warn!("offset commit failed, will retry with the next commit: {e}");
        self.shared
            .lock()
            .expect("rebalance state")
            .tracker
            .restore_commits(commits.iter().map(|(tp, _)| tp));
    }
}
