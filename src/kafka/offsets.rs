//! The commit barrier.
//!
//! A batch carries [`PendingOffsets`]: what it consumed, per partition. They become
//! [`DurableOffsets`] only in exchange for a [`WriteReceipt`], which only the ClickHouse sink
//! can create, after the server acknowledged every row of the batch. The [`OffsetTracker`]
//! turns durable batches into commits: per partition, only the contiguous prefix of completed
//! batches, so a batch finishing early never lets the committed offset skip an unwritten one.
//!
//! Partitions are tracked with an epoch that changes on every assignment, so a batch that was
//! in flight when its partition was revoked can never commit for the new owner.

use std::collections::BTreeMap;

use crate::hashing::HashMap;

use crate::store::block::{TopicPartition, WriteReceipt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    epoch: u64,
    seq: u64,
    first: i64,
    last: i64,
}

/// Offsets consumed into one batch and not yet durable.
#[derive(Debug, Default)]
pub struct PendingOffsets {
    spans: HashMap<TopicPartition, Span>,
}

impl PendingOffsets {
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.spans.keys()
    }

    /// Forget a partition (it was revoked): its rows may still be written, but never committed.
    pub fn drop_partition(&mut self, tp: &TopicPartition) {
        self.spans.remove(tp);
    }

    pub fn into_durable(self, _receipt: WriteReceipt) -> DurableOffsets {
        DurableOffsets { spans: self.spans }
    }
}

/// Offsets whose rows ClickHouse acknowledged.
#[derive(Debug)]
pub struct DurableOffsets {
    spans: HashMap<TopicPartition, Span>,
}

#[derive(Debug, Default)]
struct PartitionState {
    epoch: u64,
    /// Sequence number handed to the next batch that touches this partition.
    next_seq: u64,
    /// Sequence number whose completion advances the committed offset next.
    commit_seq: u64,
    /// Completed batches waiting for an earlier one: seq → last offset.
    done: BTreeMap<u64, i64>,
    /// Last durable offset + 1 of the contiguous prefix.
    durable_next: Option<i64>,
    /// What was last sent to Kafka.
    committed: Option<i64>,
}

/// Per-partition bookkeeping of batches between consume and commit.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
    epoch_counter: u64,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A partition was (re)assigned: start a fresh epoch for it.
    pub fn assign(&mut self, tp: TopicPartition) {
        self.epoch_counter += 1;
        self.partitions.insert(
            tp,
            PartitionState {
                epoch: self.epoch_counter,
                ..Default::default()
            },
        );
    }

    /// A partition was revoked: batches in flight for it will not commit.
    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.partitions.keys()
    }

    /// Records that `offset` of `tp` was consumed into the batch owning `pending`.
    pub fn record(&mut self, pending: &mut PendingOffsets, tp: &TopicPartition, offset: i64) {
        let state = match self.partitions.get_mut(tp) {
            Some(s) => s,
            None => {
                // A message can arrive before the assignment callback was drained.
                self.assign(tp.clone());
                self.partitions.get_mut(tp).expect("just assigned")
            }
        };
        let span = pending.spans.entry(tp.clone()).or_insert_with(|| {
            let seq = state.next_seq;
            state.next_seq += 1;
            Span {
                epoch: state.epoch,
                seq,
                first: offset,
                last: offset,
            }
        });
        span.first = span.first.min(offset);
        span.last = span.last.max(offset);
    }

    /// Marks a durable batch done; returns how many partitions' commit points advanced.
    /// A batch that is never completed (abandoned at shutdown) keeps its sequence slot open,
    /// so no later batch of that partition can commit past it.
    pub fn complete(&mut self, durable: DurableOffsets) -> usize {
        let mut advanced = 0;
        for (tp, span) in durable.spans {
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue; // revoked while in flight
            };
            if state.epoch != span.epoch {
                continue; // revoked and reassigned while in flight
            }
            state.done.insert(span.seq, span.last);
            let mut moved = false;
            while let Some(last) = state.done.remove(&state.commit_seq) {
                state.commit_seq += 1;
                state.durable_next = Some(last + 1);
                moved = true;
            }
            if moved {
                advanced += 1;
            }
        }
        advanced
    }

    /// Offsets to commit now (next offset to read, per partition), and marks them sent.
    /// `cap` may hold a partition back further: messages still pinned by a later stage (the
    /// correlator) must be read again after a restart, so their offsets are not committed.
    pub fn take_commits(
        &mut self,
        cap: impl Fn(&TopicPartition) -> Option<i64>,
    ) -> Vec<(TopicPartition, i64)> {
        let mut out = Vec::new();
        for (tp, state) in &mut self.partitions {
            let Some(durable) = state.durable_next else {
                continue;
            };
            let next = cap(tp).map_or(durable, |c| c.min(durable));
            if state.committed.is_none_or(|c| c < next) {
                state.committed = Some(next);
                out.push((tp.clone(), next));
            }
        }
        out.sort();
        out
    }

    /// Forgets the commits of `failed` partitions (Kafka refused them), so the next call
    /// sends their durable offsets again.
    pub fn restore_commits<'a>(&mut self, failed: impl IntoIterator<Item = &'a TopicPartition>) {
        for tp in failed {
            if let Some(state) = self.partitions.get_mut(tp) {
                state.committed = None;
            }
        }
    }

    pub fn committed(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.get(tp).and_then(|s| s.committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tp(p: i32) -> TopicPartition {
        (Arc::from("t"), p)
    }

    fn batch(tracker: &mut OffsetTracker, items: &[(i32, i64)]) -> PendingOffsets {
        let mut pending = PendingOffsets::default();
        for (p, o) in items {
            tracker.record(&mut pending, &tp(*p), *o);
        }
        pending
    }

    fn durable(p: PendingOffsets) -> DurableOffsets {
        p.into_durable(WriteReceipt::acknowledged())
    }

    #[test]
    fn commits_next_offset_after_durable_batch() {
        let mut t = OffsetTracker::new();
        let b = batch(&mut t, &[(0, 10), (0, 11), (1, 5)]);
        assert!(t.take_commits(|_| None).is_empty(), "nothing durable yet");
        assert_eq!(t.complete(durable(b)), 2);
        assert_eq!(t.take_commits(|_| None), vec![(tp(0), 12), (tp(1), 6)]);
        assert!(
            t.take_commits(|_| None).is_empty(),
            "commits are taken once"
        );
    }

    #[test]
    fn later_batch_cannot_commit_past_an_unwritten_earlier_one() {
        let mut t = OffsetTracker::new();
        let first = batch(&mut t, &[(0, 1), (0, 2)]);
        let second = batch(&mut t, &[(0, 3), (0, 4)]);
        t.complete(durable(second));
        assert!(t.take_commits(|_| None).is_empty());
        t.complete(durable(first));
        assert_eq!(t.take_commits(|_| None), vec![(tp(0), 5)]);
    }

    #[test]
    fn offset_gaps_do_not_block_contiguity() {
        // Transaction markers and compaction leave offset gaps; contiguity is by batch order.
        let mut t = OffsetTracker::new();
        let a = batch(&mut t, &[(0, 1)]);
        let b = batch(&mut t, &[(0, 7)]);
        t.complete(durable(a));
        t.complete(durable(b));
        assert_eq!(t.take_commits(|_| None), vec![(tp(0), 8)]);
    }

    #[test]
    fn revoked_partition_in_flight_never_commits() {
        let mut t = OffsetTracker::new();
        let b = batch(&mut t, &[(0, 1), (1, 1)]);
        t.revoke(&tp(0));
        t.assign(tp(0));
        t.complete(durable(b));
        assert_eq!(t.take_commits(|_| None), vec![(tp(1), 2)]);
    }

    #[test]
    fn failed_commit_is_retried() {
        let mut t = OffsetTracker::new();
        let b = batch(&mut t, &[(0, 1)]);
        t.complete(durable(b));
        let c = t.take_commits(|_| None);
        t.restore_commits(c.iter().map(|(tp, _)| tp));
        assert_eq!(t.take_commits(|_| None), c);
    }

    #[test]
    fn cap_holds_a_partition_back_until_released() {
        let mut t = OffsetTracker::new();
        let b = batch(&mut t, &[(0, 1), (0, 2), (0, 3)]);
        t.complete(durable(b));
        assert_eq!(t.take_commits(|_| Some(2)), vec![(tp(0), 2)]);
        assert_eq!(t.take_commits(|_| Some(2)), vec![], "nothing new");
        assert_eq!(t.take_commits(|_| None), vec![(tp(0), 4)], "released");
    }

    #[test]
    fn dropped_partition_is_not_committed_by_its_batch() {
        let mut t = OffsetTracker::new();
        let mut b = batch(&mut t, &[(0, 1), (1, 1)]);
        b.drop_partition(&tp(0));
        t.complete(durable(b));
        assert_eq!(t.take_commits(|_| None), vec![(tp(1), 2)]);
    }
}
