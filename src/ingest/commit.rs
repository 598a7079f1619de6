//! The commit step, last in the flow: per partition, the contiguous prefix of durable batches
//! (`kafka::offsets::OffsetTracker`), capped by the offsets the correlation stage still pins,
//! committed synchronously so a failure is seen.

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
    /// pins). The caps are kept for the revoke callback, which commits too.
    pub fn commit(&self, cap: impl Fn(&TopicPartition) -> Option<i64>) {
        let commits = {
            let mut shared = self.shared.lock().expect("rebalance state");
            let RebalanceShared { tracker, caps, .. } = &mut *shared;
            caps.clear();
            for tp in tracker.partitions() {
                caps.insert(tp.clone(), cap(tp));
            }
            tracker.take_commits(|tp| caps.get(tp).copied().flatten())
        };
        if commits.is_empty() {
            return;
        }
        let list = consumer::commit_list(&commits);
        let consumer = self.consumer.clone();
        // A synchronous commit reports failure, unlike an async one; run it off the async
        // worker so it does not stall other tasks.
        let result = tokio::task::block_in_place(move || consumer.commit(&list, CommitMode::Sync));
        if let Err(e) = result {
            self.metrics.commit_failures.inc();
            tracing::warn!("offset commit failed, will retry with the next batch: {e}");
            self.shared
                .lock()
                .expect("rebalance state")
                .tracker
                .restore_commits(&commits);
        }
    }
}
