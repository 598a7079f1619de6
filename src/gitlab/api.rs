//! The GitLab calls tokentrail makes, with their answers checked field by field: a wrong type
//! or a missing id is an error naming the field, never a silently skipped entry.
//!
//! REST (https://docs.gitlab.com/api/project_job_token_scopes/, Maintainer on the project):
//! `GET /projects/:id/job_token_scope` → `{"inbound_enabled": bool, …}`;
//! `GET /projects/:id/job_token_scope/allowlist` → project objects (`id`,
//! `path_with_namespace`); `GET /projects/:id/job_token_scope/groups_allowlist` → group
//! objects (`id`, `web_url`, `name`; `full_path` when present). Projects in scope:
//! `GET /groups/:id/projects?include_subgroups=true` (https://docs.gitlab.com/api/groups/)
//! or `GET /projects?pagination=keyset&order_by=id` (https://docs.gitlab.com/api/projects/).
//! GraphQL (https://docs.gitlab.com/api/graphql/reference/): `Project.ciJobTokenScopeAllowlist`
//! (fine-grained policies per entry) and `Project.ciJobTokenAuthLogs` (origin project, last
//! authorized at; see /work/shared/reference/gitlab-2026-update.md "Authentication log").

use serde_json::{Map, Value};

use super::client::{Client, GitlabError, path_segment, value_kind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: i64,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    Project,
    Group,
}

/// One allowlist entry as GitLab lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: MemberKind,
    pub id: i64,
    pub path: String,
    /// `None` when GraphQL was off or unavailable: not known, not "none".
    pub default_permissions: Option<bool>,
    pub policies: Vec<String>,
}

/// A project's inbound allowlist as read at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    pub project: ProjectRef,
    pub inbound_enabled: bool,
    pub entries: Vec<Entry>,
    /// Whether the fine-grained policies were read (GraphQL answered).
    pub policies_read: bool,
}

/// Which projects a sync covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A group's projects, subgroups included.
    Group(String),
    /// Every project the token can see (an administrator sees all).
    Instance,
}

pub async fn projects(
    client: &Client,
    scope: &Scope,
    on_page: impl FnMut(&[Value]),
) -> Result<Vec<ProjectRef>, GitlabError> {
    let (path, query) = match scope {
        Scope::Group(g) => (
            format!("/groups/{}/projects", path_segment(g)),
            vec![
                ("include_subgroups", "true".to_string()),
                ("order_by", "id".to_string()),
                ("sort", "asc".to_string()),
            ],
        ),
        Scope::Instance => (
            "/projects".to_string(),
            vec![
                ("pagination", "keyset".to_string()),
                ("order_by", "id".to_string()),
                ("sort", "asc".to_string()),
            ],
        ),
    };
    let items = client.get_all(&path, &query, on_page).await?;
    items.iter().map(|v| project_ref(&path, v)).collect()
}

/// The allowlist of `project`: REST for the entries and `inbound_enabled`, GraphQL for the
/// policies when `with_policies` (an error there is logged and the entries kept without).
pub async fn allowlist(
    client: &Client,
    project: &ProjectRef,
    with_policies: bool,
) -> Result<Allowlist, GitlabError> {
    let base = format!("/projects/{}/job_token_scope", project.id);
    let scope = client.get(&base).await?;
    let inbound_enabled = field_bool(&base, object(&base, &scope)?, "inbound_enabled")?;
    let mut entries = Vec::new();
    let path = format!("{base}/allowlist");
    for v in client.get_all(&path, &[], |_| {}).await? {
        let p = project_ref(&path, &v)?;
        entries.push(Entry {
            kind: MemberKind::Project,
            id: p.id,
            path: p.path,
            default_permissions: None,
            policies: Vec::new(),
        });
    }
    let path = format!("{base}/groups_allowlist");
    for v in client.get_all(&path, &[], |_| {}).await? {
        let (id, gpath) = group_ref(&path, &v)?;
        entries.push(Entry {
            kind: MemberKind::Group,
            id,
            path: gpath,
            default_permissions: None,
            policies: Vec::new(),
        });
    }
    let mut policies_read = false;
    if with_policies {
        match policies(client, &project.path).await {
            Ok(found) => {
                policies_read = true;
                for e in &mut entries {
                    if let Some((d, p)) = found
                        .iter()
                        .find(|f| f.0 == e.kind && f.1 == e.id)
                        .map(|f| (f.2, f.3.clone()))
                    {
                        e.default_permissions = d;
                        e.policies = p;
                    }
                }
            }
            // Older GitLab (no such field) or no GraphQL access: entries without policies.
            Err(e @ (GitlabError::GraphQl { .. } | GitlabError::Forbidden { .. })) => {
                tracing::warn!(project = %project.path, error = %e, "fine-grained policies not read");
            }
            Err(e) => return Err(e),
        }
    }
    entries.sort_by_key(|e| (e.kind as u8, e.id));
    Ok(Allowlist {
        project: project.clone(),
        inbound_enabled,
        entries,
        policies_read,
    })
}

const POLICIES_QUERY: &str = "query($path: ID!) { project(fullPath: $path) { \
  ciJobTokenScopeAllowlist { \
    projectsAllowlist { nodes { defaultPermissions jobTokenPolicies target { ... on CiJobTokenAccessibleProject { id fullPath } ... on Project { id fullPath } } } } \
    groupsAllowlist { nodes { defaultPermissions jobTokenPolicies target { ... on CiJobTokenAccessibleGroup { id fullPath } ... on Group { id fullPath } } } } } } }";

type Policies = Vec<(MemberKind, i64, Option<bool>, Vec<String>)>;

async fn policies(client: &Client, project_path: &str) -> Result<Policies, GitlabError> {
    let data = client
        .graphql(
            "ciJobTokenScopeAllowlist",
            POLICIES_QUERY,
            serde_json::json!({ "path": project_path }),
        )
        .await?;
    parse_policies(&data)
}

pub fn parse_policies(data: &Value) -> Result<Policies, GitlabError> {
    const WHERE: &str = "/api/graphql ciJobTokenScopeAllowlist";
    let allow = data
        .pointer("/project/ciJobTokenScopeAllowlist")
        .filter(|v| !v.is_null())
        .ok_or_else(|| malformed(WHERE, "no project.ciJobTokenScopeAllowlist"))?;
    let mut out = Vec::new();
    for (key, kind) in [
        ("projectsAllowlist", MemberKind::Project),
        ("groupsAllowlist", MemberKind::Group),
    ] {
        let nodes = allow
            .get(key)
            .and_then(|v| v.get("nodes"))
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(WHERE, &format!("{key}.nodes is not a list")))?;
        for n in nodes {
            let target = n
                .get("target")
                .ok_or_else(|| malformed(WHERE, "an entry without target"))?;
            let id = global_id(target.get("id"))
                .ok_or_else(|| malformed(WHERE, "target.id is not a GitLab global id"))?;
            let default = match n.get("defaultPermissions") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(v) => {
                    return Err(malformed(
                        WHERE,
                        &format!("defaultPermissions is {}", value_kind(v)),
                    ));
                }
            };
            let policies = match n.get("jobTokenPolicies") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .map(|s| s.to_ascii_lowercase())
                            .ok_or_else(|| malformed(WHERE, "a policy is not a string"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(v) => {
                    return Err(malformed(
                        WHERE,
                        &format!("jobTokenPolicies is {}", value_kind(v)),
                    ));
                }
            };
            out.push((kind, id, default, policies));
        }
    }
    Ok(out)
}

/// `gid://gitlab/Project/42` (or a bare number) → 42.
pub fn global_id(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.rsplit('/').next()?.parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

fn malformed(path: &str, reason: &str) -> GitlabError {
    GitlabError::Malformed {
        path: path.into(),
        reason: reason.into(),
    }
}

fn object<'a>(path: &str, v: &'a Value) -> Result<&'a Map<String, Value>, GitlabError> {
    v.as_object()
        .ok_or_else(|| malformed(path, &format!("expected an object, got {}", value_kind(v))))
}

pub(super) fn field_i64(path: &str, o: &Map<String, Value>, key: &str) -> Result<i64, GitlabError> {
    match o.get(key) {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i > 0) => {
            Ok(n.as_i64().unwrap_or_default())
        }
        Some(v) => Err(malformed(
            path,
            &format!("`{key}` must be a positive integer, got {}", value_kind(v)),
        )),
        None => Err(malformed(path, &format!("`{key}` is missing"))),
    }
}

pub(super) fn field_str<'a>(
    path: &str,
    o: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str, GitlabError> {
    match o.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(v) => Err(malformed(
            path,
            &format!("`{key}` must be a non-empty string, got {}", value_kind(v)),
        )),
        None => Err(malformed(path, &format!("`{key}` is missing"))),
    }
}

fn field_bool(path: &str, o: &Map<String, Value>, key: &str) -> Result<bool, GitlabError> {
    match o.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(malformed(
            path,
            &format!("`{key}` must be a boolean, got {}", value_kind(v)),
        )),
        None => Err(malformed(path, &format!("`{key}` is missing"))),
    }
}

fn project_ref(path: &str, v: &Value) -> Result<ProjectRef, GitlabError> {
    let o = object(path, v)?;
    Ok(ProjectRef {
        id: field_i64(path, o, "id")?,
        path: field_str(path, o, "path_with_namespace")?.to_owned(),
    })
}

/// A group's id and full path: `full_path`, else the part of `web_url` after `/groups/`.
fn group_ref(path: &str, v: &Value) -> Result<(i64, String), GitlabError> {
    let o = object(path, v)?;
    let id = field_i64(path, o, "id")?;
    if o.contains_key("full_path") {
        return Ok((id, field_str(path, o, "full_path")?.to_owned()));
    }
    let web = field_str(path, o, "web_url")?;
    let full = web
        .split_once("/groups/")
        .map(|(_, p)| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty() && !p.contains(['?', '#', ' ']))
        .ok_or_else(|| {
            malformed(
                path,
                &format!("group {id}: no full_path, and web_url {web:?} names none"),
            )
        })?;
    Ok((id, full.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_paths_from_full_path_or_web_url() {
        let g = json!({"id": 4, "web_url": "https://gitlab.example.com/groups/diaspora/diaspora-group", "name": "namespace1"});
        assert_eq!(
            group_ref("p", &g).unwrap(),
            (4, "diaspora/diaspora-group".into())
        );
        let g = json!({"id": 4, "full_path": "a/b", "web_url": "x"});
        assert_eq!(group_ref("p", &g).unwrap(), (4, "a/b".into()));
        assert!(group_ref("p", &json!({"id": 4, "web_url": "https://h/a"})).is_err());
        assert!(
            group_ref("p", &json!({"id": "4", "full_path": "a"}))
                .unwrap_err()
                .to_string()
                .contains("`id`")
        );
    }

    #[test]
    fn global_ids() {
        assert_eq!(global_id(Some(&json!("gid://gitlab/Project/42"))), Some(42));
        assert_eq!(global_id(Some(&json!(7))), Some(7));
        assert_eq!(global_id(Some(&json!("gid://gitlab/Project/x"))), None);
        assert_eq!(global_id(Some(&json!(-1))), None);
    }
}
