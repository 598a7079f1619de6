//! Rule 3's memory: when each source → target edge was last used (event time).
//!
//! Hydrated from `token_use` over the lookback at start-up, so a restart does not see every
//! edge as new. Bounded by the number of distinct edges; `prune` forgets edges unused for
//! longer than the lookback (they would be new again anyway).

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct EdgeMemory {
    last_used: HashMap<(String, String), i64>,
}

impl EdgeMemory {
    /// Records a use; true when the edge was unknown or unused for more than `lookback_ms`.
    pub fn observe(&mut self, source: &str, target: &str, at_ms: i64, lookback_ms: i64) -> bool {
        match self
            .last_used
            .get_mut(&(source.to_string(), target.to_string()))
        {
            Some(last) => {
                let new = at_ms - *last > lookback_ms;
                *last = (*last).max(at_ms);
                new
            }
            None => {
                self.last_used
                    .insert((source.to_string(), target.to_string()), at_ms);
                true
            }
        }
    }

    /// Adds a known edge without judging it (start-up hydration).
    pub fn remember(&mut self, source: String, target: String, at_ms: i64) {
        let last = self.last_used.entry((source, target)).or_insert(at_ms);
        *last = (*last).max(at_ms);
    }

    pub fn prune(&mut self, older_than_ms: i64) {
        self.last_used.retain(|_, last| *last >= older_than_ms);
    }

    pub fn len(&self) -> usize {
        self.last_used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_once_then_again_after_the_lookback() {
        let mut m = EdgeMemory::default();
        assert!(m.observe("a", "b", 1_000, 100));
        assert!(!m.observe("a", "b", 1_050, 100));
        assert!(!m.observe("a", "b", 900, 100), "late use of a known edge");
        assert!(
            m.observe("a", "b", 1_200, 100),
            "unused for longer than the lookback"
        );
        m.remember("c".into(), "d".into(), 5_000);
        assert!(!m.observe("c", "d", 5_010, 100), "hydrated edges are known");
        m.prune(2_000);
        assert_eq!(m.len(), 1);
    }
}
