//! Capped exponential backoff: the one retry policy for waiting out an outage.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[retry]`: the backoff of the ClickHouse writer (`store::sink`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

/// Delays that double from `initial` up to `max`, then stay at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// For Kafka outages: librdkafka reconnects on its own, so a short cap keeps the
    /// recovery quick once the brokers are back.
    pub fn kafka() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// The cap: no delay is longer.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// After a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    #[test]
    fn max_is_the_cap_and_never_below_initial() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(b.max(), Duration::from_millis(350));
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(50));
        assert_eq!(b.max(), Duration::from_millis(100));
    }
}
