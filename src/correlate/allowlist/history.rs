//! One member's history on one protected project's allowlist: every change still inside the
//! correlation horizon, and the newest older one folded into a single settled version.
//!
//! A token-use record takes its status from the version in force at its own event time, so
//! the order in which changes and uses are read or released does not matter, as long as the
//! use is released after the change was read (see the parent module for the bound).

/// The member as one change left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub at_ms: i64,
    /// On the allowlist after this change (added, or its policies updated) or not (removed).
    pub present: bool,
    /// Full path, only from changes that carry one (never a display name).
    pub path: Option<String>,
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberHistory {
    /// The newest version older than the horizon, with the newest path known by then.
    settled: Option<Version>,
    /// Versions inside the horizon, by time; changes of one millisecond in arrival order.
    recent: Vec<Version>,
}

impl MemberHistory {
    /// Adds a change. One older than `settled_before` (read after the horizon passed its time)
    /// can only update the settled version, and only if it is newer than it.
    pub fn record(&mut self, v: Version, settled_before: i64) {
        if v.at_ms < settled_before {
            match &mut self.settled {
                Some(s) if s.at_ms > v.at_ms => {
                    if s.path.is_none() {
                        s.path = v.path;
                    }
                }
                settled => *settled = Some(carry_path(settled.take(), v)),
            }
            return;
        }
        if self.recent.contains(&v) {
            return; // the same change again: replayed after a restart, or restored and re-read
        }
        let pos = self.recent.partition_point(|r| r.at_ms <= v.at_ms);
        self.recent.insert(pos, v);
    }

    /// Folds the versions older than `before` into the settled one.
    pub fn settle(&mut self, before: i64) {
        let n = self.recent.partition_point(|r| r.at_ms < before);
        for v in self.recent.drain(..n) {
            self.settled = Some(carry_path(self.settled.take(), v));
        }
    }

    /// Time of the oldest version still inside the horizon.
    pub fn oldest_recent_ms(&self) -> Option<i64> {
        self.recent.first().map(|v| v.at_ms)
    }

    /// The version in force at `t`: the newest at or before it. A `t` older than the horizon
    /// gets the settled version (the oldest state kept).
    pub fn at(&self, t: i64) -> Option<&Version> {
        let n = self.recent.partition_point(|r| r.at_ms <= t);
        self.recent[..n].last().or(self.settled.as_ref())
    }

    /// The member's path at `t`: from the newest change at or before `t` that carried one,
    /// else from the first later one (a path learned afterwards is better than none).
    pub fn path_at(&self, t: i64) -> Option<&str> {
        let n = self.recent.partition_point(|r| r.at_ms <= t);
        let before = self.recent[..n]
            .iter()
            .rev()
            .find_map(|v| v.path.as_deref());
        before
            .or_else(|| self.settled.as_ref().and_then(|s| s.path.as_deref()))
            .or_else(|| self.recent[n..].iter().find_map(|v| v.path.as_deref()))
    }

    /// The newest version.
    pub fn current(&self) -> Option<&Version> {
        self.recent.last().or(self.settled.as_ref())
    }

    /// Number of versions held.
    pub fn versions(&self) -> usize {
        self.recent.len() + usize::from(self.settled.is_some())
    }
}

/// `next` replaces `prev`, keeping `prev`'s path when `next` carries none.
fn carry_path(prev: Option<Version>, mut next: Version) -> Version {
    if next.path.is_none() {
        next.path = prev.and_then(|p| p.path);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(at_ms: i64, present: bool, path: Option<&str>) -> Version {
        Version {
            at_ms,
            present,
            path: path.map(str::to_string),
            default_permissions: None,
            policies: Vec::new(),
        }
    }

    #[test]
    fn status_is_the_version_in_force_whatever_the_arrival_order() {
        let mut h = MemberHistory::default();
        h.record(v(20, false, None), i64::MIN);
        h.record(v(10, true, Some("platform")), i64::MIN);
        assert_eq!(h.at(5), None);
        assert!(h.at(10).is_some_and(|x| x.present));
        assert!(h.at(19).is_some_and(|x| x.present));
        assert!(h.at(20).is_some_and(|x| !x.present));
        assert_eq!(h.path_at(25), Some("platform"));
    }

    #[test]
    fn settling_keeps_the_newest_version_and_its_path() {
        let mut h = MemberHistory::default();
        h.record(v(10, true, Some("platform")), i64::MIN);
        h.record(v(20, true, None), i64::MIN);
        h.record(v(30, false, None), i64::MIN);
        h.settle(25);
        assert_eq!(h.versions(), 2);
        assert_eq!(h.oldest_recent_ms(), Some(30));
        assert!(h.at(22).is_some_and(|x| x.present && x.at_ms == 20));
        assert_eq!(h.path_at(22), Some("platform"));
        // A change read after the horizon passed it cannot overrule a newer settled one.
        h.record(v(15, false, None), 25);
        assert!(h.at(22).is_some_and(|x| x.present));
    }

    #[test]
    fn the_same_change_twice_is_kept_once() {
        let mut h = MemberHistory::default();
        h.record(v(10, true, None), i64::MIN);
        h.record(v(10, true, None), i64::MIN);
        assert_eq!(h.versions(), 1);
    }
}
