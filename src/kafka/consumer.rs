//! The ingest consumer: its construction, and the consumer context that keeps the offset
//! tracker in step with rebalances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::client::client_config;
use super::offsets::OffsetTracker;
use super::settings::KafkaSettings;
use crate::model::{Header, HeaderSource, find_headers};
use crate::store::block::TopicPartition;
use crate::telemetry::metrics::Metrics;

pub type IngestConsumer = StreamConsumer<IngestContext>;

/// Shared between the consumer loop and the rebalance callbacks, which librdkafka runs on the
/// thread polling the consumer (inside `recv()`), never concurrently with the loop body.
#[derive(Default)]
pub struct RebalanceShared {
    pub tracker: OffsetTracker,
    /// Partitions revoked since the loop last looked; it drops them from the open batch.
    pub revoked: Vec<TopicPartition>,
    /// Partitions assigned since the loop last looked.
    pub assigned: Vec<TopicPartition>,
    /// Commit caps from the correlation stage as of the last commit, so a commit made inside
    /// the revoke callback respects them too.
    pub caps: HashMap<TopicPartition, Option<i64>>,
    /// When librdkafka's statistics last showed a broker connection up.
    pub brokers_up_at: Option<Instant>,
    /// Partitions whose asynchronous commit failed (reported by `commit_callback`): their
    /// durable offsets are committed again with the next commit.
    pub failed_commits: Vec<TopicPartition>,
}

/// How often librdkafka reports statistics (`statistics.interval.ms`).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

pub struct IngestContext {
    pub shared: Arc<Mutex<RebalanceShared>>,
    metrics: Metrics,
}

impl ClientContext for IngestContext {
    fn stats(&self, stats: Statistics) {
        if stats.brokers.values().any(|b| b.state == "UP") {
            self.shared.lock().expect("rebalance state").brokers_up_at = Some(Instant::now());
        }
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    /// The result of every commit. A failed one is counted and its partitions are handed back
    /// to the tracker (`failed_commits`), so the next commit sends their offsets again.
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        let Err(e) = result else {
            return;
        };
        self.metrics.commit_failures.inc();
        tracing::warn!("offset commit failed, will retry with the next commit: {e}");
        let mut shared = self.shared.lock().expect("rebalance state");
        for el in offsets.elements() {
            shared
                .failed_commits
                .push((Arc::from(el.topic()), el.partition()));
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        self.metrics.rebalances.with_label_values(&["revoke"]).inc();
        let mut shared = self.shared.lock().expect("rebalance state");
        // Commit what is already durable before the partitions move, to limit replays.
        let RebalanceShared { tracker, caps, .. } = &mut *shared;
        let commits = tracker.take_commits(|tp| caps.get(tp).copied().flatten());
        if !commits.is_empty()
            && let Err(e) = consumer.commit(&commit_list(&commits), CommitMode::Sync)
        {
            self.metrics.commit_failures.inc();
            tracing::warn!("commit before revoke failed (rows will be replayed): {e}");
        }
        for el in tpl.elements() {
            let tp: TopicPartition = (Arc::from(el.topic()), el.partition());
            shared.tracker.revoke(&tp);
            shared.revoked.push(tp);
        }
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                let mut shared = self.shared.lock().expect("rebalance state");
                for el in tpl.elements() {
                    let tp: TopicPartition = (Arc::from(el.topic()), el.partition());
                    shared.tracker.assign(tp.clone());
                    shared.assigned.push(tp);
                }
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Error(e) => {
                self.metrics.rebalances.with_label_values(&["error"]).inc();
                tracing::warn!("rebalance error: {e}");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Builds the commit list: `next` is the offset of the next message to read.
pub fn commit_list(commits: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in commits {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .expect("valid offset");
    }
    tpl
}

/// A consumer that never commits on its own: offsets are committed only after ClickHouse
/// acknowledged the rows, by the pipeline.
pub fn consumer(
    settings: &KafkaSettings,
    metrics: Metrics,
) -> Result<(IngestConsumer, Arc<Mutex<RebalanceShared>>), rdkafka::error::KafkaError> {
    super::connect_check::check(settings)?;
    let shared = Arc::new(Mutex::new(RebalanceShared::default()));
    let context = IngestContext {
        shared: shared.clone(),
        metrics,
    };
    let cfg = client_config(
        settings,
        &[
            ("auto.offset.reset", "earliest"),
            ("statistics.interval.ms", "5000"), // STATS_INTERVAL
            // A crashed member holds its partitions until the session times out; librdkafka's
            // 45 s default makes a `kill -9` restart wait that long. 10 s is well above the
            // 3 s heartbeat and the broker's 6 s minimum.
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "3000"),
            ("fetch.max.bytes", "8388608"),
            // Once a partition's prefetch queue reaches `queued.max.messages.kbytes`,
            // librdkafka postpones its next fetch by this long (1000 ms by default, librdkafka's
            // CONFIGURATION.md). A consumer slower than the broker hits the cap all the time,
            // and each hit stalled a backlog drain for about a second: 13.8k messages/s against
            // 64k with 10 ms (benches/README.md, "Where the loop waited").
            ("fetch.queue.backoff.ms", "10"),
        ],
        &[
            ("group.id", settings.group_id.clone()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            // Bound prefetch memory: per partition, librdkafka queues at most this much.
            (
                "queued.max.messages.kbytes",
                settings.max_prefetch_kbytes.to_string(),
            ),
        ],
    );
    let mut cfg = cfg;
    if !settings.group_instance_id.is_empty() {
        cfg.set("group.instance.id", &settings.group_instance_id);
    }
    let consumer: IngestConsumer = cfg
        .create_with_context(context)
        .map_err(super::client::redact_error)?;
    let topics: Vec<&str> = settings
        .audit_topics
        .iter()
        .chain(&settings.webhook_topics)
        .map(String::as_str)
        .collect();
    consumer.subscribe(&topics)?;
    Ok((consumer, shared))
}

/// A consumed record's headers, parsed by librdkafka only if a reader asks for one
/// (`model::HeaderSource`).
pub struct RecordHeaders<'m>(pub &'m BorrowedMessage<'m>);

impl std::fmt::Debug for RecordHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordHeaders")
    }
}

impl HeaderSource for RecordHeaders<'_> {
    fn find_each<'s>(&'s self, names: &[&str], found: &mut [Option<&'s [u8]>]) {
        if let Some(headers) = rdkafka::Message::headers(self.0) {
            let headers = headers.iter().map(|h| (h.key, h.value.unwrap_or_default()));
            find_headers(headers, names, found);
        }
    }

    fn all(&self) -> Vec<Header<'_>> {
        rdkafka::Message::headers(self.0)
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
