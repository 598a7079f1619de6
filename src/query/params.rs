//! Query parameters: parsing the CLI's time window, and binding `{name:Type}` placeholders.
//!
//! The `.sql` files in `schemas/queries/` use ClickHouse's server-side placeholder syntax
//! `{name:Type}`, which clickhouse-client, chdb and BI tools understand. Servers older than
//! 19.x (the 18.16 test server answers `Unknown setting param_x`) have no server-side
//! parameters, so for them [`to_client_side`] rewrites each placeholder to the clickhouse
//! crate's `?` and the value is bound client-side (escaped by the crate). Either way, values
//! never become part of the SQL text we write.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// A parameter value, typed as the placeholder declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Str(String),
    I64(i64),
    U64(u64),
}

impl ParamValue {
    /// The text form server-side parameters and `chdb-run --param` expect.
    pub fn to_text(&self) -> String {
        match self {
            ParamValue::Str(s) => s.clone(),
            ParamValue::I64(v) => v.to_string(),
            ParamValue::U64(v) => v.to_string(),
        }
    }
}

/// The end of the default window: far enough to include everything (2100-01-01).
pub const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

/// Every parameter the named queries use; each query reads the subset it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams {
    /// Project path or numeric id; empty = all projects.
    pub project: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: u64,
    /// 0 = any job.
    pub job_id: i64,
    /// 0 = any pipeline.
    pub pipeline_id: i64,
    pub bucket_ms: i64,
    pub now_ms: i64,
    pub unused_days: i64,
}

impl QueryParams {
    /// All-time window, 100 rows, daily buckets, 90 unused days, "now" as given.
    pub fn new(now_ms: i64) -> Self {
        QueryParams {
            project: String::new(),
            from_ms: 0,
            to_ms: FAR_FUTURE_MS,
            limit: 100,
            job_id: 0,
            pipeline_id: 0,
            bucket_ms: 86_400_000,
            now_ms,
            unused_days: 90,
        }
    }

    pub fn values(&self) -> BTreeMap<&'static str, ParamValue> {
        BTreeMap::from([
            ("project", ParamValue::Str(self.project.clone())),
            ("from_ms", ParamValue::I64(self.from_ms)),
            ("to_ms", ParamValue::I64(self.to_ms)),
            ("limit", ParamValue::U64(self.limit)),
            ("job_id", ParamValue::I64(self.job_id)),
            ("pipeline_id", ParamValue::I64(self.pipeline_id)),
            ("bucket_ms", ParamValue::I64(self.bucket_ms)),
            ("now_ms", ParamValue::I64(self.now_ms)),
            ("unused_days", ParamValue::I64(self.unused_days)),
        ])
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("bad duration {0:?}: expected a number and a unit, e.g. 90s, 15m, 12h, 7d, 2w")]
    Duration(String),
    #[error("bad duration {0:?}: must be longer than zero (and fit in 64-bit milliseconds)")]
    DurationOutOfRange(String),
    #[error(
        "bad timestamp {0:?}: expected RFC 3339 (2025-06-03T10:00:00Z), a date (2025-06-03), \
         `2025-06-03 10:00:00` (UTC) or Unix milliseconds"
    )]
    Timestamp(String),
    #[error("--since cannot be combined with --from/--to")]
    SinceWithRange,
    #[error("the window is empty: --from must be before --to")]
    EmptyWindow,
    #[error(
        "token-used-where needs --job, --pipeline or --project (for every source and target, \
         use latest-use or actions-over-time)"
    )]
    NoSubject,
    #[error("placeholder {0:?} has no value")]
    Unbound(String),
    #[error("the SQL contains a literal `?`, which client-side binding would misread")]
    QuestionMark,
}

/// `90s`, `15m`, `12h`, `7d`, `2w` → milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, ParamError> {
    let err = || ParamError::Duration(text.to_string());
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = t.split_at(split);
    let n: i64 = number.parse().map_err(|_| err())?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(err()),
    };
    n.checked_mul(unit_ms)
        .filter(|&ms| ms > 0)
        .ok_or_else(|| ParamError::DurationOutOfRange(text.to_string()))
}

/// RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix milliseconds → milliseconds.
pub fn parse_timestamp(text: &str) -> Result<i64, ParamError> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    Err(ParamError::Timestamp(text.to_string()))
}

/// The `[from, to)` window from `--since` or `--from/--to` (either bound may be left open).
pub fn window(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
) -> Result<(i64, i64), ParamError> {
    if since.is_some() && (from.is_some() || to.is_some()) {
        return Err(ParamError::SinceWithRange);
    }
    if let Some(since) = since {
        // `now + 1` keeps a use stamped exactly "now" inside the half-open window.
        return Ok((now_ms - parse_duration(since)?, now_ms + 1));
    }
    let from_ms = from.map(parse_timestamp).transpose()?.unwrap_or(0);
    let to_ms = to
        .map(parse_timestamp)
        .transpose()?
        .unwrap_or(FAR_FUTURE_MS);
    if from_ms >= to_ms {
        return Err(ParamError::EmptyWindow);
    }
    Ok((from_ms, to_ms))
}

/// A `{name:Type}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub name: String,
    pub ty: String,
}

/// Drops `--` comment lines (the documentation header), which may mention placeholders.
pub fn strip_comments(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .to_string()
}

/// Splits SQL around `{name:Type}` placeholders: (text pieces, placeholders in order).
/// `pieces.len() == placeholders.len() + 1`.
fn split_placeholders(sql: &str) -> (Vec<&str>, Vec<Placeholder>) {
    let mut pieces = Vec::new();
    let mut found = Vec::new();
    let mut rest = sql;
    let mut start_of_piece = 0usize;
    let mut offset = 0usize;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let parsed = after.find('}').and_then(|close| {
            let inner = &after[..close];
            let (name, ty) = inner.split_once(':')?;
            let is_ident =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            (is_ident && !ty.trim().is_empty()).then(|| (name, ty.trim(), close))
        });
        match parsed {
            Some((name, ty, close)) => {
                let abs_open = offset + open;
                pieces.push(&sql[start_of_piece..abs_open]);
                found.push(Placeholder {
                    name: name.to_string(),
                    ty: ty.to_string(),
                });
                let consumed = open + 1 + close + 1;
                offset += consumed;
                start_of_piece = offset;
                rest = &rest[consumed..];
            }
            None => {
                offset += open + 1;
                rest = &rest[open + 1..];
            }
        }
    }
    pieces.push(&sql[start_of_piece..]);
    (pieces, found)
}

/// The placeholders of a query (comments excluded), in order of appearance.
pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    split_placeholders(&strip_comments(sql)).1
}

/// The distinct placeholder names, sorted.
pub fn placeholder_names(sql: &str) -> Vec<String> {
    let mut names: Vec<String> = placeholders(sql).into_iter().map(|p| p.name).collect();
    names.sort();
    names.dedup();
    names
}

/// Rewrites `{name:Type}` to `?` for client-side binding; returns the SQL and the values in
/// `?` order. Fails when a placeholder has no value or the SQL has a literal `?`.
pub fn to_client_side(
    sql: &str,
    values: &BTreeMap<&'static str, ParamValue>,
) -> Result<(String, Vec<ParamValue>), ParamError> {
    let body = strip_comments(sql);
    if body.contains('?') {
        return Err(ParamError::QuestionMark);
    }
    let (pieces, found) = split_placeholders(&body);
    let mut out = String::with_capacity(body.len());
    let mut bound = Vec::with_capacity(found.len());
    for (piece, ph) in pieces.iter().zip(&found) {
        out.push_str(piece);
        out.push('?');
        let value = values
            .get(ph.name.as_str())
            .ok_or_else(|| ParamError::Unbound(ph.name.clone()))?;
        bound.push(value.clone());
    }
    out.push_str(pieces.last().expect("one more piece than placeholders"));
    Ok((out, bound))
}

/// The server-side parameters a query needs: (name, text value) per distinct placeholder.
pub fn server_side(
    sql: &str,
    values: &BTreeMap<&'static str, ParamValue>,
) -> Result<(String, Vec<(String, ParamValue)>), ParamError> {
    let body = strip_comments(sql);
    let params = placeholder_names(&body)
        .into_iter()
        .map(|name| {
            let v = values
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| ParamError::Unbound(name.clone()))?;
            Ok((name, v))
        })
        .collect::<Result<Vec<_>, ParamError>>()?;
    Ok((body, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("12h"), Ok(43_200_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert_eq!(
            parse_duration("0s"),
            Err(ParamError::DurationOutOfRange("0s".into())),
            "a zero duration says so, not that the unit is missing"
        );
        for bad in ["", "7", "d", "7y", "-7d", "0d", "7 d", "99999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        let at = 1_748_944_800_000; // 2025-06-03T10:00:00Z
        assert_eq!(parse_timestamp("2025-06-03T10:00:00Z"), Ok(at));
        assert_eq!(parse_timestamp("2025-06-03T12:00:00+02:00"), Ok(at));
        assert_eq!(parse_timestamp("2025-06-03 10:00:00"), Ok(at));
        assert_eq!(parse_timestamp("2025-06-03"), Ok(at - 10 * 3_600_000));
        assert_eq!(parse_timestamp("1748944800000"), Ok(at));
        assert!(parse_timestamp("June 3rd").is_err());
    }

    #[test]
    fn since_is_relative_to_now() {
        assert_eq!(
            window(Some("7d"), None, None, NOW),
            Ok((NOW - 7 * 86_400_000, NOW + 1))
        );
    }

    #[test]
    fn from_to_and_open_bounds() {
        let (f, t) = window(None, Some("2025-06-01"), Some("2025-06-02"), NOW).unwrap();
        assert_eq!(t - f, 86_400_000);
        assert_eq!(
            window(None, Some("2025-06-01"), None, NOW).unwrap().1,
            FAR_FUTURE_MS
        );
        assert_eq!(window(None, None, None, NOW), Ok((0, FAR_FUTURE_MS)));
        assert_eq!(
            window(None, Some("2025-06-02"), Some("2025-06-01"), NOW),
            Err(ParamError::EmptyWindow)
        );
        assert_eq!(
            window(Some("1d"), Some("2025-06-01"), None, NOW),
            Err(ParamError::SinceWithRange)
        );
    }

    #[test]
    fn placeholders_skip_comments_and_non_placeholders() {
        let sql = "-- {ignored:String}\nSELECT {a:Int64}, map('k', 1), '{x}' \
                   FROM t WHERE b = {b:String} AND a2 = {a:Int64}";
        let names: Vec<String> = placeholders(sql).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert_eq!(placeholder_names(sql), ["a", "b"]);
    }

    #[test]
    fn client_side_rewrite_keeps_order_and_text() {
        let values = QueryParams::new(NOW).values();
        let (sql, bound) = to_client_side(
            "-- header\nSELECT 1 WHERE p = {project:String} AND t < {to_ms:Int64} LIMIT {limit:UInt64};",
            &values,
        )
        .unwrap();
        assert_eq!(sql, "SELECT 1 WHERE p = ? AND t < ? LIMIT ?");
        assert_eq!(
            bound,
            [
                ParamValue::Str(String::new()),
                ParamValue::I64(FAR_FUTURE_MS),
                ParamValue::U64(100)
            ]
        );
        assert_eq!(
            to_client_side("SELECT {nope:Int64}", &values),
            Err(ParamError::Unbound("nope".into()))
        );
        assert_eq!(
            to_client_side("SELECT '?'", &values),
            Err(ParamError::QuestionMark)
        );
    }

    #[test]
    fn every_shipped_query_binds_all_its_placeholders() {
        let values = QueryParams::new(NOW).values();
        for q in super::super::QUERIES {
            for (file, sql) in q.files {
                to_client_side(sql, &values).unwrap_or_else(|e| panic!("{file}: {e}"));
                server_side(sql, &values).unwrap_or_else(|e| panic!("{file}: {e}"));
            }
        }
    }
}
