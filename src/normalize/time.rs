//! Timestamps as GitLab writes them.
//!
//! Audit events carry ISO-8601/RFC 3339 (`2025-06-03T10:15:42.123Z`, reference §1.2);
//! webhooks use Ruby's `Time#to_s` style (`2025-06-03 10:14:57 UTC`, reference §4.3) or
//! RFC 3339 (`build_started_at`, §4.2). A value without any zone is refused rather than
//! guessed: a silently shifted time would break the correlator's time windows.

use chrono::{DateTime, NaiveDateTime};

/// Parses a GitLab timestamp to Unix milliseconds (UTC).
pub fn parse_ms(text: &str) -> Option<i64> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    // `2025-06-03 10:14:57 UTC` (optionally with fractional seconds).
    if let Some(naive) = s.strip_suffix(" UTC").or_else(|| s.strip_suffix(" utc")) {
        return NaiveDateTime::parse_from_str(naive.trim_end(), "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis());
    }
    // `2025-06-03 12:14:40 +0200` (Ruby `Time#to_s` for a non-UTC zone).
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z")
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    const T: i64 = 1_748_945_742_123; // 2025-06-03T10:15:42.123Z

    #[test]
    fn accepts_gitlab_formats() {
        assert_eq!(parse_ms("2025-06-03T10:15:42.123Z"), Some(T));
        assert_eq!(parse_ms("2025-06-03T12:15:42.123+02:00"), Some(T));
        assert_eq!(parse_ms("2025-06-03T10:15:42Z"), Some(T - 123));
        assert_eq!(parse_ms("2025-06-03T10:15:42.123456Z"), Some(T));
        assert_eq!(parse_ms("2025-06-03 10:15:42 UTC"), Some(T - 123));
        assert_eq!(parse_ms("2025-06-03 10:15:42.123 UTC"), Some(T));
        assert_eq!(parse_ms("2025-06-03 12:15:42 +0200"), Some(T - 123));
    }

    #[test]
    fn refuses_garbage_and_zoneless_times() {
        for bad in [
            "",
            "yesterday",
            "2025-06-03",
            "2025-06-03T10:15:42",
            "2025-13-03T10:15:42Z",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
