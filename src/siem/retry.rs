//! The sinks' retry policy: [`crate::retry::Backoff`]'s delays, plus an attempt limit and a
//! server's Retry-After hint.

use std::time::Duration;

use super::config::RetryPolicy;

#[derive(Debug, Clone)]
pub struct Backoff {
    delays: crate::retry::Backoff,
    attempts: u32,
    max_attempts: u32,
}

impl Backoff {
    /// `SiemSettings::validate` requires `max_backoff_ms >= initial_backoff_ms`, the bound
    /// `crate::retry::Backoff::new` assumes.
    pub fn new(policy: &RetryPolicy) -> Self {
        Backoff {
            delays: crate::retry::Backoff::new(
                Duration::from_millis(policy.initial_backoff_ms),
                Duration::from_millis(policy.max_backoff_ms),
            ),
            attempts: 0,
            max_attempts: policy.max_attempts,
        }
    }

    /// The delay before the next attempt, or `None` when the attempts are used up
    /// (`max_attempts = 0` retries forever). `hint` is a server's Retry-After, honored but
    /// capped at the maximum backoff so a misbehaving server cannot stall the feed for hours.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        self.attempts += 1;
        if self.max_attempts != 0 && self.attempts >= self.max_attempts {
            return None;
        }
        let delay = self.delays.next_delay();
        Some(hint.map_or(delay, |h| h.min(self.delays.max())))
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_honors_hints() {
        let mut b = Backoff::new(&RetryPolicy {
            initial_backoff_ms: 100,
            max_backoff_ms: 300,
            max_attempts: 0,
        });
        let ms = |d: Option<Duration>| d.unwrap().as_millis();
        assert_eq!(ms(b.next_delay(None)), 100);
        assert_eq!(ms(b.next_delay(None)), 200);
        assert_eq!(ms(b.next_delay(None)), 300);
        assert_eq!(ms(b.next_delay(Some(Duration::from_secs(60)))), 300);
        assert_eq!(ms(b.next_delay(Some(Duration::from_millis(5)))), 5);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut b = Backoff::new(&RetryPolicy {
            initial_backoff_ms: 1,
            max_backoff_ms: 1,
            max_attempts: 2,
        });
        assert!(b.next_delay(None).is_some());
        assert!(b.next_delay(None).is_none());
    }
}
