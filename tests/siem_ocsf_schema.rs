//! Validates the OCSF events of every record kind against the OCSF requirements encoded in
//! schemas/ocsf/classes.json (each entry cites the ocsf-schema file it comes from): the
//! base-event and class required attributes, `type_uid = class_uid * 100 + activity_id`,
//! the category of the class, enum ranges, and the required / at-least-one constraints of
//! every object the class contains, recursively.

mod siem_fixtures;

use serde_json::Value;
use tokentrail::siem::encode::{Format, encode};

fn requirements() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/ocsf/classes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn present(obj: &Value, attr: &str) -> bool {
    !matches!(obj.get(attr), None | Some(Value::Null))
}

fn in_enum(errors: &mut Vec<String>, at: &str, value: &Value, allowed: &Value) {
    let allowed: Vec<i64> = allowed["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    match value.as_i64() {
        Some(v) if allowed.contains(&v) => {}
        _ => errors.push(format!("{at} = {value} is not one of {allowed:?}")),
    }
}

/// Checks an object (and the objects inside it) against `objects.<name>`.
fn check_object(errors: &mut Vec<String>, req: &Value, name: &str, at: &str, obj: &Value) {
    let spec = &req["objects"][name];
    assert!(spec.is_object(), "classes.json has no object {name}");
    if !obj.is_object() {
        errors.push(format!("{at} must be an object, got {obj}"));
        return;
    }
    for attr in spec["required"].as_array().into_iter().flatten() {
        let attr = attr.as_str().unwrap();
        if !present(obj, attr) {
            errors.push(format!("{at}.{attr} is required"));
        }
    }
    if let Some(any) = spec["at_least_one"].as_array()
        && !any.iter().any(|a| present(obj, a.as_str().unwrap()))
    {
        errors.push(format!("{at} needs at least one of {any:?}"));
    }
    for (attr, allowed) in spec["enums"].as_object().into_iter().flatten() {
        if let Some(v) = obj.get(attr) {
            in_enum(errors, &format!("{at}.{attr}"), v, allowed);
        }
    }
    for (attr, inner) in spec["objects"].as_object().into_iter().flatten() {
        if let Some(v) = obj.get(attr) {
            check_object(
                errors,
                req,
                inner.as_str().unwrap(),
                &format!("{at}.{attr}"),
                v,
            );
        }
    }
}

/// All violations of one event; empty when valid.
fn validate(req: &Value, event: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for attr in req["base_event"]["required"].as_array().unwrap() {
        let attr = attr.as_str().unwrap();
        if !present(event, attr) {
            errors.push(format!("{attr} is required by the base event"));
        }
    }
    let class_uid = event["class_uid"].as_u64().unwrap_or(0);
    let class = &req["classes"][class_uid.to_string()];
    if !class.is_object() {
        errors.push(format!(
            "class_uid {class_uid} is not one the feed may emit"
        ));
        return errors;
    }
    if event["category_uid"] != class["category_uid"] {
        errors.push(format!(
            "category_uid {} does not match class {class_uid}",
            event["category_uid"]
        ));
    }
    let activity = event["activity_id"].as_u64().unwrap_or(u64::MAX);
    in_enum(
        &mut errors,
        "activity_id",
        &event["activity_id"],
        &serde_json::json!({ "values": class["activity_id"] }),
    );
    if event["type_uid"].as_u64() != Some(class_uid * 100 + activity) {
        errors.push(format!(
            "type_uid {} != class_uid * 100 + activity_id",
            event["type_uid"]
        ));
    }
    for attr in class["required"].as_array().unwrap() {
        let attr = attr.as_str().unwrap();
        if !present(event, attr) {
            errors.push(format!("{attr} is required by class {class_uid}"));
        }
    }
    let enums = &req["base_event"]["enums"];
    in_enum(
        &mut errors,
        "severity_id",
        &event["severity_id"],
        &enums["severity_id"],
    );
    if let Some(status) = event.get("status_id") {
        let allowed = class["enums"]
            .get("status_id")
            .unwrap_or(&enums["status_id"]);
        in_enum(&mut errors, "status_id", status, allowed);
    }
    for (attr, object) in class["objects"].as_object().unwrap() {
        if let Some(v) = event.get(attr) {
            check_object(&mut errors, req, object.as_str().unwrap(), attr, v);
        }
    }
    if event["metadata"]["version"] != req["ocsf_version"] {
        errors.push("metadata.version is not the encoded OCSF version".into());
    }
    if event["metadata"]["product"]["name"] != "tokentrail" {
        errors.push("metadata.product.name must be tokentrail".into());
    }
    errors
}

#[test]
fn every_record_kind_is_a_valid_ocsf_event() {
    let req = requirements();
    let expected_class = [
        ("token_use_matched", 6003),
        ("token_use_auth_only", 6003),
        ("lifecycle", 3004),
        ("alert", 2004),
    ];
    for ((stem, record), (expected_stem, class)) in
        siem_fixtures::all().into_iter().zip(expected_class)
    {
        assert_eq!(stem, expected_stem);
        let event: Value = serde_json::from_str(&encode(Format::Ocsf, &record).payload).unwrap();
        assert_eq!(event["class_uid"], class, "{stem}");
        let errors = validate(&req, &event);
        assert!(errors.is_empty(), "{stem}: {errors:#?}");
    }
}

#[test]
fn the_validator_catches_violations() {
    let req = requirements();
    let mut event: Value =
        serde_json::from_str(&encode(Format::Ocsf, &siem_fixtures::token_use_matched()).payload)
            .unwrap();
    event.as_object_mut().unwrap().remove("api");
    event["type_uid"] = 600399.into();
    event["severity_id"] = 7.into();
    event["src_endpoint"] = serde_json::json!({ "port": 443 });
    event["actor"]["user"] = serde_json::json!({ "type_id": 1 });
    let errors = validate(&req, &event).join("\n");
    for expected in [
        "api is required by class 6003",
        "type_uid 600399",
        "severity_id = 7",
        "src_endpoint needs at least one",
        "actor.user needs at least one",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in\n{errors}"
        );
    }
}
