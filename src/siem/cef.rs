//! ArcSight CEF lines: `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//!
//! Escaping follows the ArcSight "Implementing ArcSight Common Event Format (CEF)" standard:
//! * header fields: `\` → `\\` and `|` → `\|`. The standard allows newlines only in
//!   extension values, so a CR or LF in a header field (e.g. a rule name) becomes a space
//!   rather than breaking the line.
//! * extension values: `\` → `\\`, `=` → `\=`, LF → `\n`, CR → `\r` (two characters each);
//!   `|` is *not* escaped there.
//!
//! Extension keys are fixed ASCII names from the CEF dictionary (`rt`, `suser`, `src`, ...)
//! plus the custom `csN`/`cnN` pairs with their `…Label` keys; the key order is fixed so that
//! the same record always renders to the same bytes.

use super::record::{LifecycleRecord, Severity, SiemRecord, StoredAlert, StoredTokenUse};
use super::{PRODUCT, PRODUCT_VERSION, VENDOR};

/// Escapes a header field (vendor, product, version, signature id, name).
pub fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an extension value.
pub fn escape_extension(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// CEF severity 0..=10 (0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
pub fn severity(s: Severity) -> u8 {
    match s {
        Severity::Unknown => 0,
        Severity::Informational => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// Extension key/value pairs in output order; `None` values are left out.
struct Extension(Vec<(&'static str, String)>);

impl Extension {
    fn new() -> Self {
        Extension(Vec::new())
    }
    fn put(&mut self, key: &'static str, value: impl ToString) -> &mut Self {
        self.0.push((key, value.to_string()));
        self
    }
    /// A custom field and its label (`cs1Label=... cs1=...`), only when there is a
    /// non-empty value (an empty custom field says nothing and confuses parsers).
    fn custom<T: ToString>(
        &mut self,
        key: &'static str,
        label_key: &'static str,
        label: &str,
        value: Option<T>,
    ) -> &mut Self {
        if let Some(v) = value.map(|v| v.to_string()).filter(|v| !v.is_empty()) {
            self.put(label_key, label);
            self.put(key, v);
        }
        self
    }
    fn render(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={}", escape_extension(v)))
            .collect();
        parts.join(" ")
    }
}

/// Renders one record as a CEF line (without a trailing newline).
pub fn to_cef(record: &SiemRecord) -> String {
    let (signature, name, ext) = match record {
        SiemRecord::TokenUse(r) => token_use(r),
        SiemRecord::Lifecycle(r) => lifecycle(r),
        SiemRecord::Alert(r) => alert(r),
    };
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        escape_header(VENDOR),
        escape_header(PRODUCT),
        escape_header(PRODUCT_VERSION),
        escape_header(&signature),
        escape_header(&name),
        severity(record.severity()),
        ext.render()
    )
}

fn token_use(r: &StoredTokenUse) -> (String, String, Extension) {
    let t = &r.token_use;
    let mut e = Extension::new();
    e.put("rt", t.event_time_ms)
        .put("externalId", &r.record_key)
        .put("cat", "token_use")
        .put("act", &t.action)
        .put("outcome", "success")
        .put("suid", t.actor_id)
        .put(
            "suser",
            t.actor_username.as_deref().unwrap_or(&t.actor_name),
        );
    if t.ip_address.parse::<std::net::IpAddr>().is_ok() {
        e.put("src", &t.ip_address);
    }
    e.custom(
        "cs1",
        "cs1Label",
        "sourceProject",
        Some(&t.source_project_path),
    )
    .custom(
        "cs2",
        "cs2Label",
        "targetProject",
        Some(&t.target_project_path),
    )
    .custom("cs3", "cs3Label", "gitRef", t.git_ref.as_ref())
    .custom("cs4", "cs4Label", "correlation", Some(&t.correlation))
    .custom(
        "cs5",
        "cs5Label",
        "allowlisted",
        t.allowlisted.map(|a| if a { "true" } else { "false" }),
    )
    .custom("cs6", "cs6Label", "actorKind", Some(t.actor_kind.as_str()))
    .custom("cn1", "cn1Label", "jobId", t.job_id)
    .custom("cn2", "cn2Label", "pipelineId", t.pipeline_id)
    .custom("cn3", "cn3Label", "runnerId", t.runner_id)
    // The display name (free text): CEF has no full-name key, and all csN are taken.
    .custom(
        "flexString1",
        "flexString1Label",
        "actorName",
        Some(&t.actor_name),
    )
    .put("requestClientApplication", &t.token_type)
    .put("msg", r.message());
    (
        format!("token_use:{}", t.action),
        "CI job token use".into(),
        e,
    )
}

fn lifecycle(r: &LifecycleRecord) -> (String, String, Extension) {
    let mut e = Extension::new();
    e.put("rt", r.event_time_ms)
        .put("externalId", &r.dedup_key)
        .put("cat", "token_lifecycle")
        .put("act", &r.operation)
        .put(
            "outcome",
            if super::record::lifecycle_failed(&r.operation) {
                "failure"
            } else {
                "success"
            },
        )
        .put("suid", r.author_id)
        .put("suser", &r.author_name)
        .custom("cs1", "cs1Label", "tokenKind", Some(&r.token_kind))
        .custom("cs2", "cs2Label", "scopePath", Some(&r.scope_path))
        .custom("cs3", "cs3Label", "scopeType", Some(&r.scope_type))
        .custom("cs4", "cs4Label", "tokenDetails", Some(&r.target_details))
        .custom("cs6", "cs6Label", "actorKind", Some(r.actor_kind.as_str()))
        .custom("cn1", "cn1Label", "tokenId", r.token_id)
        .custom("cn2", "cn2Label", "scopeId", r.scope_id)
        .put(
            "msg",
            format!(
                "{} {} in {} {}",
                r.token_kind, r.operation, r.scope_type, r.scope_path
            ),
        );
    (
        format!("token_lifecycle:{}", r.event_type),
        format!("{} {}", r.token_kind, r.operation),
        e,
    )
}

fn alert(r: &StoredAlert) -> (String, String, Extension) {
    let a = &r.alert;
    let mut e = Extension::new();
    e.put("rt", r.updated_at_ms)
        .put("start", a.first_seen_ms)
        .put("end", a.last_seen_ms)
        .put("cnt", a.count)
        .put("externalId", &a.alert_id)
        .put("cat", "alert")
        .put("act", &a.action)
        .put("suid", a.actor_id)
        .custom(
            "cs1",
            "cs1Label",
            "sourceProject",
            Some(&a.source_project_path),
        )
        .custom(
            "cs2",
            "cs2Label",
            "targetProject",
            Some(&a.target_project_path),
        )
        .custom("cs3", "cs3Label", "alertStatus", Some(a.status.as_str()))
        .custom("cs4", "cs4Label", "details", Some(a.details.to_string()))
        .custom("cs5", "cs5Label", "ackedBy", Some(&a.acked_by))
        .custom("cs6", "cs6Label", "actorKind", Some(&a.actor_kind))
        .custom("cn1", "cn1Label", "jobId", a.job_id)
        .put("msg", &a.summary);
    (format!("alert:{}", a.rule), a.summary.clone(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_escapes_backslash_and_pipe_only() {
        assert_eq!(escape_header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(escape_header("two\nlines\r"), "two lines ");
    }

    #[test]
    fn extension_escapes_backslash_equals_and_newlines_not_pipe() {
        assert_eq!(escape_extension(r"a|b\c=d"), r"a|b\\c\=d");
        assert_eq!(escape_extension("l1\r\nl2"), r"l1\r\nl2");
        assert_eq!(escape_extension("ünï 🔑"), "ünï 🔑");
    }
}
