//! One audit-stream element (docs/gitlab-events.md §1.2) → `AuditEvent`.
//!
//! Generic top-level fields are type-checked: a wrong JSON type there means the body is not
//! what we think it is, so the element is rejected with the field named. Values read from
//! `details` (fallbacks and semantics) are free-form per GitLab ("no defined schema") and
//! are read loosely instead.

use super::json::{Map, Value};

use super::actor::classify_actor;
use super::dedup::{self, AuditId};
use super::fields::{FieldError, get, loose_id, loose_str, loose_text, strict_id, strict_text};
use super::{meaning::meaning, time};
use crate::model::{AuditEvent, AuditMeaning};

/// Normalizes one element. `header_event_type` is `X-Gitlab-Audit-Event-Type`, passed only
/// for single-object bodies (docs/gitlab-events.md §1.1: the header is omitted in batched mode, and
/// one header cannot describe several elements).
/// It is asked for only when the body has no event type (reading it may parse the record's
/// headers).
pub fn audit_event<'h>(
    obj: &Map<'_>,
    header_event_type: impl FnOnce() -> Option<&'h str>,
) -> Result<AuditEvent, FieldError> {
    let created_at_ms = created_at(obj)?;
    let details = match obj.get("details") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => Some(*d),
        Some(other) => {
            return Err(FieldError::wrong_type(
                "details",
                "an object or null",
                other,
            ));
        }
    };
    let from_details = |key: &str| details.and_then(|d| get(d, key));
    // Top-level value when present (strictly typed), else the `details` copy GitLab's
    // framework also writes (docs/gitlab-events.md §1.2), read loosely.
    let text = |key: &str| -> Result<String, FieldError> {
        Ok(match strict_text(key, get(obj, key))? {
            Some(s) => s,
            None => loose_text(from_details(key)).unwrap_or_default(),
        })
    };

    let event_type = event_type(obj, header_event_type, details)?;
    let (id, audit_id) = audit_id(obj)?;
    let author_id = strict_id("author_id", get(obj, "author_id"))?.unwrap_or(0);
    let author_name = text("author_name")?;
    let (entity_id, entity_type) = entity(obj)?;
    let entity_path = text("entity_path")?;
    let target_id = match strict_id("target_id", get(obj, "target_id"))? {
        Some(id) => Some(id),
        None => loose_id(from_details("target_id")),
    };
    let target_type = text("target_type")?;
    let target_details = text("target_details")?;
    let ip_address = text("ip_address")?;

    let author_class = loose_text(from_details("author_class"))
        .or_else(|| loose_text(get(obj, "author_class")))
        .filter(|c| !c.is_empty());
    let username = loose_str(from_details("author_username"))
        .or_else(|| loose_str(get(obj, "author_username")));
    let actor_kind = classify_actor(author_id, &author_name, username, author_class.as_deref());

    // `details` is null, absent or an object here (anything else was rejected above).
    let (dedup_key, details_json) = dedup::audit_key_and_details(obj, &audit_id);
    let mut ev = AuditEvent {
        id,
        dedup_key,
        stream_only: audit_id == AuditId::StreamOnly,
        event_type,
        author_id,
        author_name,
        author_class,
        actor_kind,
        entity_id,
        entity_type,
        entity_path,
        target_id,
        target_type,
        target_details,
        ip_address,
        created_at_ms,
        details_json,
        meaning: AuditMeaning::Other,
    };
    ev.meaning = meaning(&ev, from_details("custom_message"), details);
    Ok(ev)
}

fn created_at(obj: &Map<'_>) -> Result<i64, FieldError> {
    const EXPECTED: &str = "an RFC 3339 timestamp";
    match get(obj, "created_at") {
        None => Err(FieldError::missing(
            "created_at",
            "required field is missing or null",
        )),
        Some(v @ Value::String(s)) => match time::parse_ms(s) {
            Some(ms) if time::is_storable(ms) => Ok(ms),
            Some(_) => Err(FieldError::out_of_range("created_at", s)),
            None => Err(FieldError::wrong_type("created_at", EXPECTED, v)),
        },
        Some(other) => Err(FieldError::wrong_type("created_at", EXPECTED, other)),
    }
}

/// Body `event_type`, else the header, else `details.event_name` (docs/gitlab-events.md §1.2).
fn event_type<'h>(
    obj: &Map<'_>,
    header: impl FnOnce() -> Option<&'h str>,
    details: Option<&Map<'_>>,
) -> Result<String, FieldError> {
    let body = strict_text("event_type", get(obj, "event_type"))?;
    // The first non-blank one, trimmed; the others are read only when it is missing, and a
    // body value without surrounding blanks is kept as it is (no second copy per event).
    if let Some(body) = body {
        let trimmed = body.trim();
        if trimmed.len() == body.len() && !body.is_empty() {
            return Ok(body);
        }
        if !trimmed.is_empty() {
            return Ok(trimmed.to_owned());
        }
    }
    let from_details = || details.and_then(|d| loose_text(get(d, "event_name")));
    header()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            from_details()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            FieldError::missing(
                "event_type",
                "not in the body, the X-Gitlab-Audit-Event-Type header or details.event_name",
            )
        })
}

/// `id` as text plus how it identifies the event (docs/gitlab-events.md §1.1 "`id` caveat").
fn audit_id(obj: &Map<'_>) -> Result<(String, AuditId), FieldError> {
    let v = get(obj, "id");
    let text = match v {
        None => String::new(),
        Some(Value::String(s)) => s.as_ref().to_owned(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(FieldError::wrong_type(
                "id",
                "an integer or a string",
                other,
            ));
        }
    };
    Ok((text, dedup::classify_audit_id(v)))
}

/// `entity_id`/`entity_type`, or the per-scope columns `project_id`/`group_id`/`user_id`
/// of the new audit tables (docs/gitlab-events.md §1.2, "Shape variation to tolerate").
fn entity(obj: &Map<'_>) -> Result<(Option<i64>, String), FieldError> {
    let mut id = strict_id("entity_id", get(obj, "entity_id"))?;
    let mut ty = strict_text("entity_type", get(obj, "entity_type"))?.unwrap_or_default();
    for (key, scope) in [
        ("project_id", "Project"),
        ("group_id", "Group"),
        ("user_id", "User"),
    ] {
        let scoped = strict_id(key, get(obj, key))?;
        if id.is_none()
            && let Some(scoped) = scoped
        {
            id = Some(scoped);
            if ty.is_empty() {
                ty = scope.to_owned();
            }
        }
    }
    Ok((id, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::json::json;

    fn obj(v: Value<'static>) -> Map<'static> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn entity_from_per_scope_columns() {
        let o = obj(json!({"group_id": "12"}));
        assert_eq!(entity(&o).unwrap(), (Some(12), "Group".to_owned()));
        let o = obj(json!({"entity_id": 5, "entity_type": "Project", "user_id": 9}));
        assert_eq!(entity(&o).unwrap(), (Some(5), "Project".to_owned()));
        let o = obj(json!({"project_id": {"id": 1}}));
        assert_eq!(entity(&o).unwrap_err().field, "project_id");
    }

    #[test]
    fn event_type_precedence() {
        let d = obj(json!({"event_name": "from_details"}));
        let o = obj(json!({"event_type": "from_body"}));
        assert_eq!(
            event_type(&o, || Some("from_header"), Some(&d)).unwrap(),
            "from_body"
        );
        let o = obj(json!({"event_type": ""}));
        assert_eq!(
            event_type(&o, || Some("from_header"), Some(&d)).unwrap(),
            "from_header"
        );
        assert_eq!(event_type(&o, || None, Some(&d)).unwrap(), "from_details");
        let o = obj(json!({"event_type": " padded\t"}));
        assert_eq!(
            event_type(&o, || Some("from_header"), None).unwrap(),
            "padded"
        );
        let o = obj(json!({"event_type": "  "}));
        assert_eq!(
            event_type(&o, || Some(" from_header "), None).unwrap(),
            "from_header"
        );
        let d = obj(json!({"event_name": " from_details "}));
        assert_eq!(
            event_type(&o, || Some(" "), Some(&d)).unwrap(),
            "from_details"
        );
        assert_eq!(
            event_type(&o, || None, None).unwrap_err().field,
            "event_type"
        );
    }
}
