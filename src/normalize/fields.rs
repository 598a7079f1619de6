//! Tolerant readers for GitLab JSON fields.
//!
//! GitLab renders ids as integers in older payloads and as strings in newer ones
//! (docs/gitlab-events.md §1.2, "store `id` as string"), and any optional field may be `null`
//! or absent. The strict readers accept all of those and fail only when the JSON type cannot
//! mean the field at all (an object where an id belongs); the loose readers never fail and are
//! used for free-form `details` keys, where rejecting a whole event over one odd value would
//! lose data.

use super::json::{Map, Value};

use crate::model::RejectKind;

/// Why one field made an element unusable; becomes a `Rejection`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FieldError {
    pub kind: RejectKind,
    pub field: String,
    pub why: String,
}

impl FieldError {
    pub fn missing(field: &str, why: &str) -> Self {
        FieldError {
            kind: RejectKind::MissingField,
            field: field.to_owned(),
            why: why.to_owned(),
        }
    }

    /// A time that parsed but lies outside the storable range (`time::is_storable`).
    pub fn out_of_range(field: &str, got: &str) -> Self {
        FieldError {
            kind: RejectKind::TimestampOutOfRange,
            field: field.to_owned(),
            why: format!(
                "{got:?} is outside the accepted range 1970-01-01T00:00:00Z ≤ t < \
                 2106-01-01T00:00:00Z"
            ),
        }
    }

    pub fn wrong_type(field: &str, expected: &str, got: &Value<'_>) -> Self {
        FieldError {
            kind: RejectKind::WrongType,
            field: field.to_owned(),
            why: format!("expected {expected}, got {}", preview(got)),
        }
    }
}

/// A short rendering of an offending value for rejection messages (which travel as Kafka
/// headers, so they must stay small).
pub fn preview(v: &Value<'_>) -> String {
    const MAX: usize = 80;
    let text = v.to_string();
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The JSON type name of a value, for messages.
pub fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const ID_EXPECTED: &str = "an integer or a string of digits";

/// An id that may be an integer, an integral float, a numeric string, `""` or `null`.
pub fn strict_id(field: &str, v: Option<&Value<'_>>) -> Result<Option<i64>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(other) => loose_id(Some(other))
            .map(Some)
            .ok_or_else(|| FieldError::wrong_type(field, ID_EXPECTED, other)),
    }
}

/// Like [`strict_id`] but any unusable value reads as `None`.
pub fn loose_id(v: Option<&Value<'_>>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            // 42.0 is still 42; anything fractional or out of range is not an id.
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A text field: strings as-is, numbers as their decimal text (`target_details` is often a
/// number rendered as text), `null`/absent as `None`; booleans, arrays and objects fail.
pub fn strict_text(field: &str, v: Option<&Value<'_>>) -> Result<Option<String>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(other) => text(other)
            .map(Some)
            .ok_or_else(|| FieldError::wrong_type(field, "a string", other)),
    }
}

/// Like [`strict_text`] but any unusable value reads as `None` (without writing the error
/// message no one reads).
pub fn loose_text(v: Option<&Value<'_>>) -> Option<String> {
    text(v?)
}

/// A string's or a number's text.
fn text(v: &Value<'_>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.as_ref().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A borrowed string, only when the value is a JSON string.
pub fn loose_str<'v>(v: Option<&'v Value<'_>>) -> Option<&'v str> {
    v.and_then(Value::as_str)
}

/// `obj[key]` with `null` read as absent.
pub fn get<'v, 'a>(obj: &'v Map<'a>, key: &str) -> Option<&'v Value<'a>> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `obj[key]` when it is an object.
pub fn get_obj<'v, 'a>(obj: &'v Map<'a>, key: &str) -> Option<&'v Map<'a>> {
    obj.get(key).and_then(Value::as_object)
}

/// Follows a path of object keys, e.g. `["project", "path_with_namespace"]`.
pub fn get_path<'v, 'a>(obj: &'v Map<'a>, path: &[&str]) -> Option<&'v Value<'a>> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for key in parents {
        cur = get_obj(cur, key)?;
    }
    get(cur, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::json::json;

    #[test]
    fn ids_accept_integers_strings_and_integral_floats() {
        assert_eq!(strict_id("x", Some(&json!(42))), Ok(Some(42)));
        assert_eq!(strict_id("x", Some(&json!("42"))), Ok(Some(42)));
        assert_eq!(strict_id("x", Some(&json!(" 42 "))), Ok(Some(42)));
        assert_eq!(strict_id("x", Some(&json!(42.0))), Ok(Some(42)));
        assert_eq!(strict_id("x", Some(&json!(-2))), Ok(Some(-2)));
        assert_eq!(strict_id("x", Some(&json!(""))), Ok(None));
        assert_eq!(strict_id("x", Some(&Value::Null)), Ok(None));
        assert_eq!(strict_id("x", None), Ok(None));
    }

    #[test]
    fn ids_reject_other_shapes() {
        for bad in [json!({}), json!([1]), json!(true), json!("abc"), json!(4.5)] {
            let err = strict_id("author_id", Some(&bad)).unwrap_err();
            assert_eq!(err.kind, RejectKind::WrongType, "{bad}");
            assert!(
                err.to_string()
                    .starts_with("author_id: expected an integer")
            );
        }
        // u64 beyond i64 is not a usable id.
        assert!(strict_id("x", Some(&json!(u64::MAX))).is_err());
    }

    #[test]
    fn text_accepts_strings_and_numbers_only() {
        assert_eq!(strict_text("t", Some(&json!("a"))), Ok(Some("a".into())));
        assert_eq!(strict_text("t", Some(&json!(7))), Ok(Some("7".into())));
        assert!(strict_text("t", Some(&json!(false))).is_err());
        assert!(strict_text("t", Some(&json!({"a": 1}))).is_err());
    }

    #[test]
    fn loose_text_reads_what_strict_text_accepts_and_nothing_else() {
        for v in [
            json!("a"),
            json!(7),
            json!(1.5),
            json!(null),
            json!(false),
            json!([1]),
        ] {
            assert_eq!(
                loose_text(Some(&v)),
                strict_text("t", Some(&v)).ok().flatten(),
                "{v}"
            );
        }
        assert_eq!(loose_text(Some(&json!({"a": 1}))), None);
        assert_eq!(loose_text(None), None);
    }

    #[test]
    fn preview_truncates_on_a_char_boundary() {
        let long = json!("é".repeat(100));
        let p = preview(&long);
        assert!(p.ends_with('…'));
        assert!(p.len() <= 80 + '…'.len_utf8());
    }
}
