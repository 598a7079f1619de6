//! What an audit event means for job-token traceability. Never fails: anything not
//! understood is `Other`, and the event is still stored with its generic fields.

use super::json::{Map, Value};

use super::{allowlist, lifecycle, resource};
use crate::model::{AuditEvent, AuditMeaning};

pub fn meaning(
    ev: &AuditEvent,
    custom_message: Option<&Value<'_>>,
    details: Option<&Map<'_>>,
) -> AuditMeaning {
    // Object-shaped messages (git operations) have no text form worth parsing here.
    let text = custom_message.and_then(Value::as_str).unwrap_or("");
    if ev.event_type == "user_authenticated_using_job_token" {
        // docs/gitlab-events.md §2.1: target is the job (`Ci::Build`); entity is the job's project,
        // i.e. the token source, kept in entity_*.
        let job_id = if ev.target_type == "Ci::Build" {
            ev.target_id
        } else {
            None
        };
        return AuditMeaning::JobTokenAuth {
            job_id: job_id.or_else(|| parse_job_id(text)),
        };
    }
    if let Some(kind) = allowlist::change_kind(&ev.event_type) {
        return AuditMeaning::Allowlist(allowlist::change(kind, ev, text));
    }
    if let Some(lc) = lifecycle::lifecycle(ev, text) {
        return AuditMeaning::TokenLifecycle(lc);
    }
    resource::resource_access(ev, custom_message, details).unwrap_or(AuditMeaning::Other)
}

/// "Dana Builder authenticated using job token of job id: 987654" (docs/gitlab-events.md §2.1).
pub fn parse_job_id(message: &str) -> Option<i64> {
    let at = message.rfind("job id:")?;
    let rest = message[at + "job id:".len()..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_job_id;

    #[test]
    fn job_id_from_message() {
        assert_eq!(
            parse_job_id("Dana Builder authenticated using job token of job id: 987654"),
            Some(987654)
        );
        assert_eq!(parse_job_id("job id: 12."), Some(12));
        assert_eq!(parse_job_id("job id: none"), None);
        assert_eq!(parse_job_id(""), None);
    }
}
