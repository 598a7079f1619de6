//! JSON bodies shaped like GitLab's (field names and order copied from the shared samples
//! and `docs/gitlab-events.md` §1.2, §2, §4).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

pub const JOB_TOKEN_AUTH: &str = "user_authenticated_using_job_token";
pub const GIT_OPERATION: &str = "repository_git_operation";
pub const ARTIFACT_DOWNLOADED: &str = "job_artifact_downloaded";
pub const DOWNSTREAM_CREATED: &str = "multi_project_downstream_pipeline_created";
pub const SECRET_READ: &str = "secrets_manager_read_project_secret";

#[derive(Serialize, Clone, Debug)]
#[serde(untagged)]
pub enum AuditId {
    /// Saved events carry their database id.
    Saved(i64),
    /// Stream-only events get a fresh UUID per dispatch.
    Stream(String),
}

#[derive(Serialize, Clone, Debug)]
#[serde(untagged)]
pub enum CustomMessage {
    Text(String),
    Git {
        protocol: &'static str,
        action: &'static str,
        verb: &'static str,
    },
}

/// Emitter-specific `details` keys, kept in insertion order (serde_json's map would sort).
#[derive(Clone, Debug, Default)]
pub struct Extra(pub Vec<(&'static str, Value)>);

impl Serialize for Extra {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Details {
    pub event_name: &'static str,
    pub author_name: String,
    pub author_class: &'static str,
    pub target_id: i64,
    pub target_type: &'static str,
    pub target_details: String,
    pub custom_message: CustomMessage,
    #[serde(flatten)]
    pub extra: Extra,
    pub ip_address: String,
    pub entity_path: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct AuditBody {
    pub id: AuditId,
    pub author_id: i64,
    pub author_name: String,
    pub entity_id: i64,
    pub entity_type: &'static str,
    pub entity_path: String,
    pub target_id: i64,
    pub target_type: &'static str,
    pub target_details: String,
    pub ip_address: String,
    pub created_at: String,
    pub event_type: &'static str,
    pub details: Details,
}

/// Who performed an audited action.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: i64,
    pub name: String,
}

/// The scope (`entity_*`) or object (`target_*`) of an audit event.
#[derive(Clone, Debug)]
pub struct Obj {
    pub id: i64,
    pub kind: &'static str,
    /// `entity_path` for entities, `target_details` for targets.
    pub text: String,
}

pub struct AuditSpec {
    pub event_type: &'static str,
    pub id: AuditId,
    pub actor: Actor,
    pub entity: Obj,
    pub target: Obj,
    pub ip: String,
    pub at_ms: i64,
    pub message: CustomMessage,
    pub extra: Extra,
}

pub fn audit(spec: AuditSpec) -> AuditBody {
    let AuditSpec {
        event_type,
        id,
        actor,
        entity,
        target,
        ip,
        at_ms,
        message,
        extra,
    } = spec;
    AuditBody {
        id,
        author_id: actor.id,
        author_name: actor.name.clone(),
        entity_id: entity.id,
        entity_type: entity.kind,
        entity_path: entity.text.clone(),
        target_id: target.id,
        target_type: target.kind,
        target_details: target.text.clone(),
        ip_address: ip.clone(),
        created_at: iso_ms(at_ms),
        event_type,
        details: Details {
            event_name: event_type,
            author_name: actor.name,
            // Project bots are `User` records too; bot-ness is only visible in the username.
            author_class: "User",
            target_id: target.id,
            target_type: target.kind,
            target_details: target.text,
            custom_message: message,
            extra,
            ip_address: ip,
            entity_path: entity.text,
        },
    }
}

/// Civil UTC fields of Unix milliseconds (Howard Hinnant's days-to-civil). Hand-rolled
/// because chrono's strftime dominated generation time.
fn civil(ms: i64) -> [u32; 7] {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let f = |v: i64| v as u32;
    [
        f(y),
        f(m),
        f(d),
        f(sod / 3600),
        f(sod / 60 % 60),
        f(sod % 60),
        f(ms.rem_euclid(1000)),
    ]
}

fn push_num(out: &mut String, v: u32, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width]).expect("ASCII digits"));
}

fn fmt_time(ms: i64, date_time_sep: char, millis: bool, suffix: &str) -> String {
    let [y, mo, d, h, mi, s, milli] = civil(ms);
    let mut out = String::with_capacity(24);
    push_num(&mut out, y, 4);
    out.push('-');
    push_num(&mut out, mo, 2);
    out.push('-');
    push_num(&mut out, d, 2);
    out.push(date_time_sep);
    push_num(&mut out, h, 2);
    out.push(':');
    push_num(&mut out, mi, 2);
    out.push(':');
    push_num(&mut out, s, 2);
    if millis {
        out.push('.');
        push_num(&mut out, milli, 3);
    }
    out.push_str(suffix);
    out
}

/// `2025-06-03T10:15:42.123Z` (audit `created_at`, job hook `build_*_at`).
pub fn iso_ms(ms: i64) -> String {
    fmt_time(ms, 'T', true, "Z")
}

/// `2025-06-03T10:15:42Z` (job hook `*_iso`).
pub fn iso_s(ms: i64) -> String {
    fmt_time(ms, 'T', false, "Z")
}

/// `2025-06-03 10:15:42 UTC` (pipeline hook times).
pub fn utc_s(ms: i64) -> String {
    fmt_time(ms, ' ', false, " UTC")
}

// ---- webhooks -------------------------------------------------------------------------

#[derive(Serialize, Clone, Debug)]
pub struct HookUser {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub avatar_url: String,
    pub email: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub struct HookRunner {
    pub id: i64,
    pub description: String,
    pub runner_type: &'static str,
    pub active: bool,
    pub is_shared: bool,
    pub tags: Vec<&'static str>,
}

#[derive(Serialize, Clone, Debug)]
pub struct HookProject {
    pub id: i64,
    pub name: String,
    pub description: &'static str,
    pub web_url: String,
    pub avatar_url: Option<String>,
    pub git_ssh_url: String,
    pub git_http_url: String,
    pub namespace: String,
    pub visibility_level: u8,
    pub path_with_namespace: String,
    pub default_branch: &'static str,
    pub ci_config_path: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct SourcePipelineProject {
    pub id: i64,
    pub web_url: String,
    pub path_with_namespace: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct SourcePipeline {
    pub project: SourcePipelineProject,
    pub job_id: i64,
    pub pipeline_id: i64,
}

#[derive(Serialize, Debug)]
pub struct JobCommit {
    pub id: i64,
    pub name: Option<String>,
    pub sha: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub author_url: String,
    pub status: &'static str,
    pub duration: Option<f64>,
    pub started_at: String,
    pub started_at_iso: String,
    pub finished_at: Option<String>,
    pub finished_at_iso: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct HookRepository {
    pub name: String,
    pub url: String,
    pub description: &'static str,
    pub homepage: String,
    pub git_http_url: String,
    pub git_ssh_url: String,
    pub visibility_level: u8,
}

#[derive(Serialize, Debug)]
pub struct JobHook {
    pub object_kind: &'static str,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub tag: bool,
    pub before_sha: String,
    pub sha: String,
    pub retries_count: u32,
    pub build_id: i64,
    pub build_name: String,
    pub build_stage: String,
    pub build_status: &'static str,
    pub build_created_at: String,
    pub build_started_at: String,
    pub build_finished_at: Option<String>,
    pub build_created_at_iso: String,
    pub build_started_at_iso: String,
    pub build_finished_at_iso: Option<String>,
    pub build_duration: Option<f64>,
    pub build_queued_duration: f64,
    pub build_allow_failure: bool,
    pub build_failure_reason: &'static str,
    pub pipeline_id: i64,
    pub runner: HookRunner,
    pub project_id: i64,
    pub project_name: String,
    pub user: HookUser,
    pub commit: JobCommit,
    pub repository: HookRepository,
    pub project: HookProject,
    pub environment: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_pipeline: Option<SourcePipeline>,
}

#[derive(Serialize, Debug)]
pub struct PipelineAttributes {
    pub id: i64,
    pub iid: i64,
    pub name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub tag: bool,
    pub sha: String,
    pub before_sha: String,
    pub source: &'static str,
    pub status: &'static str,
    pub detailed_status: &'static str,
    pub stages: Vec<&'static str>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub duration: Option<i64>,
    pub queued_duration: Option<i64>,
    pub protected_ref: bool,
    pub variables: Vec<Value>,
    pub url: String,
}

#[derive(Serialize, Debug)]
pub struct CommitAuthor {
    pub name: String,
    pub email: String,
}

#[derive(Serialize, Debug)]
pub struct PipelineCommit {
    pub id: String,
    pub message: String,
    pub title: String,
    pub timestamp: String,
    pub url: String,
    pub author: CommitAuthor,
}

#[derive(Serialize, Debug)]
pub struct ArtifactsFile {
    pub filename: Option<String>,
    pub size: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct PipelineBuild {
    pub id: i64,
    pub stage: String,
    pub name: String,
    pub status: &'static str,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration: Option<f64>,
    pub queued_duration: Option<f64>,
    pub failure_reason: Option<String>,
    pub when: &'static str,
    pub manual: bool,
    pub allow_failure: bool,
    pub user: HookUser,
    pub runner: Option<HookRunner>,
    pub artifacts_file: ArtifactsFile,
    pub environment: Option<Value>,
}

#[derive(Serialize, Debug)]
pub struct PipelineHook {
    pub object_kind: &'static str,
    pub object_attributes: PipelineAttributes,
    pub merge_request: Option<Value>,
    pub user: HookUser,
    pub project: HookProject,
    pub commit: PipelineCommit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_pipeline: Option<SourcePipeline>,
    pub builds: Vec<PipelineBuild>,
}

pub const INSTANCE: &str = "https://gitlab.example.com";

pub fn hook_project(id: i64, name: &str, path: &str, namespace: String) -> HookProject {
    HookProject {
        id,
        name: name.to_string(),
        description: "",
        web_url: format!("{INSTANCE}/{path}"),
        avatar_url: None,
        git_ssh_url: format!("git@gitlab.example.com:{path}.git"),
        git_http_url: format!("{INSTANCE}/{path}.git"),
        namespace,
        visibility_level: 0,
        path_with_namespace: path.to_string(),
        default_branch: "main",
        ci_config_path: None,
    }
}

pub fn hook_repository(name: &str, path: &str) -> HookRepository {
    HookRepository {
        name: name.to_string(),
        url: format!("git@gitlab.example.com:{path}.git"),
        description: "",
        homepage: format!("{INSTANCE}/{path}"),
        git_http_url: format!("{INSTANCE}/{path}.git"),
        git_ssh_url: format!("git@gitlab.example.com:{path}.git"),
        visibility_level: 0,
    }
}

pub fn hook_user(id: i64, name: &str, username: &str) -> HookUser {
    HookUser {
        id,
        name: name.to_string(),
        username: username.to_string(),
        avatar_url: format!("{INSTANCE}/uploads/-/system/user/avatar/{id}/avatar.png"),
        email: "[REDACTED]",
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    #[test]
    fn time_formats_match_chrono() {
        for ms in [
            0i64,
            951_782_400_000,
            1_748_944_542_123,
            1_709_164_799_999,
            4_102_444_800_001,
        ] {
            let d = DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(
                super::iso_ms(ms),
                d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            assert_eq!(super::iso_s(ms), d.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            assert_eq!(
                super::utc_s(ms),
                d.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            );
        }
    }
}
