//! Fine-grained CI/CD job-token permissions recommended from the actions observed.
//!
//! Source of the permission names and of what each covers: GitLab's "Fine-grained permissions
//! for CI/CD job tokens", <https://docs.gitlab.com/ci/jobs/fine_grained_permissions/>
//! (the "Available API endpoints" table; the names are the lower-case form the allowlist
//! policies take, e.g. `read_jobs` for `READ_JOBS`). An action whose endpoints that table
//! does not list, or lists with permission `None`, is "not covered": no fine-grained
//! permission controls it, only the allowlist entry itself. tokentrail's action vocabulary
//! is in src/normalize/resource.rs.

use std::collections::BTreeSet;

use serde::Serialize;

/// tokentrail action → GitLab permission, with the endpoint row of the table it rests on.
/// Actions not in this table are not covered.
pub const PERMISSION_BY_ACTION: &[(&str, &str, &str)] = &[
    // Jobs: Read — GET /projects/:id/jobs/:job_id/artifacts (and the other artifact downloads)
    ("artifact.read", "read_jobs", "Jobs: Read"),
    // Packages: Read and write — package uploads (PUT …/packages/generic, maven, npm, …)
    (
        "package.write",
        "admin_packages",
        "Packages: Read and write",
    ),
    // Packages: Read — package downloads
    ("package.read", "read_packages", "Packages: Read"),
    // Releases: Read and write — POST/PUT/DELETE /projects/:id/releases…
    (
        "release.write",
        "admin_releases",
        "Releases: Read and write",
    ),
    ("release.read", "read_releases", "Releases: Read"),
    // Deployments: Read and write — POST/PUT /projects/:id/deployments…
    (
        "deployment.write",
        "admin_deployments",
        "Deployments: Read and write",
    ),
    ("deployment.read", "read_deployments", "Deployments: Read"),
    // Environments
    (
        "environment.write",
        "admin_environments",
        "Environments: Read and write",
    ),
    (
        "environment.read",
        "read_environments",
        "Environments: Read",
    ),
    // Secure files
    (
        "secure_file.read",
        "read_secure_files",
        "Secure files: Read",
    ),
    (
        "secure_file.write",
        "admin_secure_files",
        "Secure files: Read and write",
    ),
    // Terraform state
    (
        "terraform_state.read",
        "read_terraform_state",
        "Terraform state: Read",
    ),
    (
        "terraform_state.write",
        "admin_terraform_state",
        "Terraform state: Read and write",
    ),
];

/// Why an observed action has no permission, for the report's flag.
pub fn uncovered_reason(action: &str) -> &'static str {
    match action {
        "repository.read" | "repository.write" | "repository.unknown" => {
            "Git over HTTP(S) is not an endpoint of the fine-grained table"
        }
        "container_registry.write" => "registry endpoints are listed with permission None",
        "pipeline.trigger" => "triggering a pipeline is not an endpoint of the fine-grained table",
        "auth" => "an authentication without a resource event",
        _ => "no endpoint of the fine-grained table covers it",
    }
}

pub fn permission_for(action: &str) -> Option<&'static str> {
    PERMISSION_BY_ACTION
        .iter()
        .find(|(a, _, _)| *a == action)
        .map(|(_, p, _)| *p)
}

/// The permissions a set of observed actions needs, and the actions none covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Sorted, deduplicated.
    pub recommended: Vec<&'static str>,
    /// Observed actions no fine-grained permission covers (sorted).
    pub uncovered: Vec<String>,
}

impl Permissions {
    pub fn is_empty(&self) -> bool {
        self.recommended.is_empty() && self.uncovered.is_empty()
    }
}

pub fn for_actions<'a>(actions: impl IntoIterator<Item = &'a str>) -> Permissions {
    let mut recommended = BTreeSet::new();
    let mut uncovered = BTreeSet::new();
    for action in actions {
        match permission_for(action) {
            Some(p) => {
                recommended.insert(p);
            }
            None => {
                uncovered.insert(action.to_string());
            }
        }
    }
    Permissions {
        recommended: recommended.into_iter().collect(),
        uncovered: uncovered.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_observed_actions_and_flags_the_rest() {
        let p = for_actions([
            "artifact.read",
            "package.write",
            "artifact.read",
            "repository.read",
            "pipeline.trigger",
            "secret.read",
        ]);
        assert_eq!(p.recommended, ["admin_packages", "read_jobs"]);
        assert_eq!(
            p.uncovered,
            ["pipeline.trigger", "repository.read", "secret.read"]
        );
    }

    #[test]
    fn nothing_observed_needs_nothing() {
        assert!(for_actions([]).is_empty());
    }

    #[test]
    fn every_permission_name_is_a_policy_name() {
        // The lower-case form of the table's "Permission Names" column.
        for (_, p, resource) in PERMISSION_BY_ACTION {
            assert!(p.starts_with("read_") || p.starts_with("admin_"), "{p}");
            assert_eq!(
                p.starts_with("admin_"),
                resource.ends_with("Read and write")
            );
        }
    }
}
