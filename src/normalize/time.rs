//! Timestamps as GitLab writes them.
//!
//! Audit events carry ISO-8601/RFC 3339 (`2025-06-03T10:15:42.123Z`, docs/gitlab-events.md §1.2);
//! webhooks use Ruby's `Time#to_s` style (`2025-06-03 10:14:57 UTC`, §4.3) or
//! RFC 3339 (`build_started_at`, §4.2). A value without any zone is refused rather than
//! guessed: a silently shifted time would break the correlator's time windows.

use chrono::{DateTime, NaiveDateTime};

/// First storable event time: 1970-01-01T00:00:00Z. ClickHouse 18.16 stores `DateTime` as
/// UInt32 seconds since the epoch, so an earlier time (GitLab's `0001-01-01` placeholder,
/// `1969-12-31T23:59:59Z`) would be stored wrapped into the future.
pub const STORABLE_FROM_MS: i64 = 0;
/// First time past the storable range: 2106-01-01T00:00:00Z. UInt32 seconds end at
/// 2106-02-07T06:28:15Z; the bound is the start of that year, so it is easy to state and no
/// time near the wrap point is accepted (`9999-12-31` would be stored as 2106-01-29).
pub const STORABLE_UNTIL_MS: i64 = 4_291_747_200_000;

/// Whether an event time can be stored without wrapping (see [`STORABLE_FROM_MS`]).
pub fn is_storable(ms: i64) -> bool {
    (STORABLE_FROM_MS..STORABLE_UNTIL_MS).contains(&ms)
}

/// Parses a GitLab timestamp to Unix milliseconds (UTC).
pub fn parse_ms(text: &str) -> Option<i64> {
    let s = text.trim();
    if let Some(ms) = parse_common_utc(s) {
        return Some(ms);
    }
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

/// The shapes GitLab writes nearly always, without chrono's general parsers (which were
/// a visible share of normalizing a webhook): `2025-06-03T10:15:42.123Z`,
/// `2025-06-03T10:15:42Z` and `2025-06-03 10:15:42 UTC`. `None` for anything else, including
/// an out-of-range field or a leap second, which then take the general path (so every
/// answer given here is the one chrono gives).
fn parse_common_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let millis = match b.len() {
        20 if b[10] == b'T' && b[19] == b'Z' => 0,
        24 if b[10] == b'T' && b[19] == b'.' && b[23] == b'Z' => digits(&b[20..23])?,
        23 if b[10] == b' ' && &b[19..] == b" UTC" => 0,
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis)
}

/// ASCII digits as a number; `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{parse_common_utc, parse_ms};
    use chrono::{DateTime, NaiveDateTime};

    /// The fast path answers exactly what chrono answers, wherever it answers.
    #[test]
    fn fast_path_agrees_with_chrono() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years 0000-9999, with every field boundary hit often.
            let ms = (x % 253_402_300_800_000) as i64 - 62_167_219_200_000;
            let t = DateTime::from_timestamp_millis(ms).unwrap();
            let texts = [
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ];
            for text in &texts {
                let fast = parse_common_utc(text);
                assert!(
                    fast.is_some() || !text.starts_with(|c: char| c.is_ascii_digit()),
                    "{text}"
                );
                let chrono_ms = DateTime::parse_from_rfc3339(text)
                    .map(|d| d.timestamp_millis())
                    .ok()
                    .or_else(|| {
                        let naive = text.strip_suffix(" UTC")?;
                        NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
                            .ok()
                            .map(|d| d.and_utc().timestamp_millis())
                    });
                assert_eq!(fast, chrono_ms, "{text}");
                checked += 1;
            }
            // Mangled fields: the fast path declines or agrees, never differs.
            let mut bad = texts[0].clone().into_bytes();
            let at = (i as usize) % 23;
            bad[at] = b"0123456789:-T.Z x"[(x >> 20) as usize % 17];
            let bad = String::from_utf8(bad).unwrap();
            if let Some(fast) = parse_common_utc(&bad) {
                assert_eq!(
                    Some(fast),
                    DateTime::parse_from_rfc3339(&bad)
                        .ok()
                        .map(|d| d.timestamp_millis()),
                    "{bad}"
                );
            }
        }
        assert_eq!(checked, 600_000);
        for bad in [
            "2025-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-12-32 00:00:00 UTC",
            "2024-12-31T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2025-06-03T10:15:42.12Z",
        ] {
            assert_eq!(parse_common_utc(bad), None, "{bad}");
        }
        // A leap second still parses, through chrono.
        assert_eq!(
            parse_ms("2016-12-31T23:59:60Z"),
            DateTime::parse_from_rfc3339("2016-12-31T23:59:60Z")
                .ok()
                .map(|d| d.timestamp_millis())
        );
    }

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
    fn storable_range_is_1970_to_2106() {
        use super::is_storable;
        let ok = [
            "1970-01-01T00:00:00Z",
            "2105-12-31T23:59:59.999Z",
            "2025-06-03T10:15:42Z",
        ];
        for text in ok {
            assert!(is_storable(parse_ms(text).unwrap()), "{text}");
        }
        let wrapped = [
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2106-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ];
        for text in wrapped {
            assert!(!is_storable(parse_ms(text).unwrap()), "{text}");
        }
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
