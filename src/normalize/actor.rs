//! Who acted: humans, bots, service accounts, deploy credentials.

use crate::model::ActorKind;

/// Classifies an actor from what an audit event or webhook says about it.
///
/// Precedence, strongest evidence first:
/// 1. `author_class` names a deploy credential or an unauthenticated author. GitLab sets the
///    class from the author object itself (`build_service.rb`: `author_class:
///    @author.class.name`), so it is more specific than the id.
/// 2. The reserved author ids (docs/gitlab-events.md §1.2): −1 unauthenticated, −2 deploy token,
///    −3 deploy key.
/// 3. Composite identity "SA on behalf of @human" (§1.2): the acting principal is
///    the service account.
/// 4. GitLab's bot user naming, on the username first, then the display name:
///    `project_<id>_bot…`, `group_<id>_bot…`, `service_account_…`.
/// 5. Any other positive id is a human; 0, other negatives and missing ids are unknown.
pub fn classify_actor(
    author_id: i64,
    name: &str,
    username: Option<&str>,
    author_class: Option<&str>,
) -> ActorKind {
    if let Some(kind) = author_class.and_then(kind_from_class) {
        return kind;
    }
    match author_id {
        -1 => return ActorKind::Unauthenticated,
        -2 => return ActorKind::DeployToken,
        -3 => return ActorKind::DeployKey,
        _ => {}
    }
    if name.contains(" on behalf of @") {
        return ActorKind::ServiceAccount;
    }
    for candidate in username.into_iter().chain(Some(name)) {
        if let Some(kind) = kind_from_username(candidate.trim()) {
            return kind;
        }
    }
    if author_id > 0 {
        ActorKind::Human
    } else {
        ActorKind::Unknown
    }
}

fn kind_from_class(class: &str) -> Option<ActorKind> {
    // Ruby class names, possibly namespaced (`Gitlab::Audit::DeployTokenAuthor`).
    let short = class.rsplit("::").next().unwrap_or(class);
    match short {
        "DeployToken" | "DeployTokenAuthor" => Some(ActorKind::DeployToken),
        "DeployKey" | "DeployKeyAuthor" => Some(ActorKind::DeployKey),
        "UnauthenticatedAuthor" => Some(ActorKind::Unauthenticated),
        "ServiceAccount" => Some(ActorKind::ServiceAccount),
        _ => None,
    }
}

fn kind_from_username(s: &str) -> Option<ActorKind> {
    if is_bot_name(s, "project_") {
        Some(ActorKind::ProjectBot)
    } else if is_bot_name(s, "group_") {
        Some(ActorKind::GroupBot)
    } else if s.starts_with("service_account_") {
        Some(ActorKind::ServiceAccount)
    } else {
        None
    }
}

/// `<prefix><digits>_bot` followed by nothing, `_…` or digits (older GitLab versions named
/// bots `project_12_bot`, `project_12_bot1`; newer ones `project_12_bot_<hex>`).
fn is_bot_name(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    match rest[digits..].strip_prefix("_bot") {
        Some(tail) => {
            tail.is_empty() || tail.starts_with('_') || tail.as_bytes()[0].is_ascii_digit()
        }
        None => false,
    }
}
