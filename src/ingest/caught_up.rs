//! The one "caught up" signal: every assigned partition is committed to its high watermark,
//! so everything it held is processed, stored and committed. `ingest --exit-when-caught-up`
//! stops on it, the `ingest_caught_up` gauge shows it, and the tests' `committed_to_the_end`
//! checks the same condition from outside the process.

use std::time::{Duration, Instant};

/// How often the loop asks the brokers for high watermarks while it looks idle.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One partition's state: the broker's low and high watermarks, and the offset this group
/// last committed (the next one to read), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionEnds {
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
}

impl PartitionEnds {
    /// Nothing left to process: committed to the end, or nothing there (empty, or removed by
    /// retention) and nothing committed.
    pub fn is_caught_up(&self) -> bool {
        match self.committed {
            Some(next) => next >= self.high,
            None => self.low >= self.high,
        }
    }
}

/// Caught up: something is assigned and every assigned partition is.
pub fn all_caught_up(partitions: &[PartitionEnds]) -> bool {
    !partitions.is_empty() && partitions.iter().all(PartitionEnds::is_caught_up)
}

/// Rate limit for the broker round trips: at most one check per [`CHECK_INTERVAL`].
#[derive(Debug, Default)]
pub struct CheckClock {
    last: Option<Instant>,
}

impl CheckClock {
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < CHECK_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(low: i64, high: i64, committed: Option<i64>) -> PartitionEnds {
        PartitionEnds {
            low,
            high,
            committed,
        }
    }

    #[test]
    fn caught_up_means_committed_to_the_high_watermark_on_every_assigned_partition() {
        assert!(all_caught_up(&[ends(0, 10, Some(10)), ends(0, 0, None)]));
        assert!(!all_caught_up(&[
            ends(0, 10, Some(10)),
            ends(0, 3, Some(2))
        ]));
        assert!(
            !all_caught_up(&[ends(0, 10, None)]),
            "nothing committed yet"
        );
        assert!(all_caught_up(&[ends(7, 7, None)]), "retention removed all");
        assert!(!all_caught_up(&[]), "nothing assigned yet");
    }

    #[test]
    fn checks_are_rate_limited() {
        let mut clock = CheckClock::default();
        let t0 = Instant::now();
        assert!(clock.due(t0));
        assert!(!clock.due(t0 + Duration::from_millis(500)));
        assert!(clock.due(t0 + CHECK_INTERVAL));
    }
}
