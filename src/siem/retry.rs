//! Capped exponential backoff shared by the sinks.

use std::time::Duration;

use super::config::RetryPolicy;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    attempts: u32,
    max_attempts: u32,
}

impl Backoff {
    pub fn new(policy: &RetryPolicy) -> Self {
        Backoff {
            next: Duration::from_millis(policy.initial_backoff_ms),
            max: Duration::from_millis(policy.max_backoff_ms),
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
        let delay = hint.map_or(self.next, |h| h.min(self.max));
        self.next = (self.next * 2).min(self.max);
        Some(delay)
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
