//! Tests of the pure report: the figures, the per-project sections, escaping in every format
//! and a snapshot of the HTML page's structure (tags, ids and classes; not text or pixels).

use super::model::*;
use super::view::{EntryUse, build};
use super::{Format, render};
use crate::model::{Alert, AlertStatus, Severity};
use crate::query::recommend::{Entry, EntryKind, Recommendation};

const HOSTILE_PATH: &str = "evil/<script>alert(\"p\")</script>";
const HOSTILE_NAME: &str = "Mallory \"<script>alert(1)</script>";

fn pair(source: &str, target: &str, uses: u64) -> PairUse {
    PairUse {
        source: source.into(),
        target: target.into(),
        uses,
        last_used: "2025-06-03 10:00:00".into(),
        last_actor: HOSTILE_NAME.into(),
        last_job_id: Some(7),
    }
}

fn row(project: &str, member_type: &str, member: &str, status: &str, uses: u64) -> AllowlistRow {
    AllowlistRow {
        project: project.into(),
        inbound: if project == "web/site" {
            "not configured"
        } else {
            "enabled"
        }
        .into(),
        member_type: member_type.into(),
        member_path: member.into(),
        status: status.into(),
        uses,
        last_used: if uses > 0 {
            "2025-06-03 11:00:00".into()
        } else {
            String::new()
        },
    }
}

fn action(source: &str, target: &str, action: &str) -> PairAction {
    PairAction {
        source: source.into(),
        target: target.into(),
        action: action.into(),
        uses: 1,
    }
}

pub(super) fn fixture() -> ReportData {
    ReportData {
        scope: Scope {
            from_ms: 1_748_908_800_000,
            to_ms: 1_751_328_000_000,
            generated_at_ms: 1_751_328_000_000,
            group: String::new(),
            unused_days: 90,
        },
        pairs: vec![
            pair("a/app", "pay/ledger", 10),
            pair("b/tool", "pay/ledger", 4),
            pair(HOSTILE_PATH, "pay/ledger", 2),
            pair("a/app", "web/site", 3),
            pair("pay/ledger", "pay/ledger", 5),
            pair("a/app", "", 1),
        ],
        outside: vec![OutsidePair {
            target: "pay/ledger".into(),
            source: HOSTILE_PATH.into(),
            uses: 2,
            actions: "repository.read".into(),
            first_used: "2025-06-03 10:00:00".into(),
            last_used: "2025-06-03 10:05:00".into(),
        }],
        outside_uses: vec![OutsideUse {
            at: "2025-06-03 10:05:00".into(),
            source: HOSTILE_PATH.into(),
            target: "pay/ledger".into(),
            action: "repository.read".into(),
            actor_name: HOSTILE_NAME.into(),
            actor_username: "mallory".into(),
            actor_kind: "human".into(),
            job_id: Some(99),
        }],
        allowlist: vec![
            row("pay/ledger", "Group", "b", "allowlisted group", 0),
            row("pay/ledger", "Project", "a/app", "allowlisted, used", 10),
            row(
                "pay/ledger",
                "Project",
                "old/gone",
                "allowlisted, unused",
                0,
            ),
            row(
                "pay/ledger",
                "Project",
                "b/tool",
                "used, covered by group",
                4,
            ),
            row(
                "pay/ledger",
                "Project",
                HOSTILE_PATH,
                "used, NOT allowlisted",
                2,
            ),
            row(
                "web/site",
                "Project",
                "a/app",
                "used, no allowlist history",
                3,
            ),
        ],
        unused_entries: vec![UnusedEntry {
            project: "pay/ledger".into(),
            member_type: "Project".into(),
            member_path: "old/gone".into(),
            last_used: "never".into(),
        }],
        actions: vec![
            action("a/app", "pay/ledger", "artifact.read"),
            action("a/app", "pay/ledger", "package.write"),
            action("b/tool", "pay/ledger", "pipeline.trigger"),
            action(HOSTILE_PATH, "pay/ledger", "repository.read"),
        ],
        recommendations: vec![
            Recommendation {
                project: "pay/ledger".into(),
                entries: ["a/app", "b/tool", HOSTILE_PATH]
                    .map(|p| Entry {
                        kind: EntryKind::Project,
                        path: p.into(),
                        consumers: 1,
                        unobserved: 0,
                        uses: 1,
                    })
                    .to_vec(),
                over_limit: false,
            },
            Recommendation {
                project: "web/site".into(),
                entries: vec![Entry {
                    kind: EntryKind::Project,
                    path: "a/app".into(),
                    consumers: 1,
                    unobserved: 0,
                    uses: 3,
                }],
                over_limit: false,
            },
        ],
        changes: vec![Change {
            at: "2025-06-03 09:00:00".into(),
            kind: "allowlist".into(),
            what: "project_added".into(),
            subject: "a/app".into(),
            scope: "pay/ledger".into(),
            author_name: HOSTILE_NAME.into(),
            author_kind: "human".into(),
        }],
        alerts: vec![Alert {
            alert_id: "not_allowlisted:1".into(),
            rule: "not_allowlisted".into(),
            severity: Severity::High,
            summary: format!("{HOSTILE_PATH} reached pay/ledger"),
            first_seen_ms: 1_748_944_800_000,
            // 2025-06-03 10:05:00 UTC
            last_seen_ms: 1_748_945_100_000,
            count: 2,
            source_project_path: HOSTILE_PATH.into(),
            target_project_path: "pay/ledger".into(),
            actor_id: 5,
            actor_kind: "human".into(),
            action: "repository.read".into(),
            job_id: Some(99),
            event_time_ms: 1_748_945_100_000,
            details: serde_json::json!({}),
            status: AlertStatus::Open,
            acked_by: String::new(),
        }],
        open_alerts: 3,
    }
}

#[test]
fn headline_figures() {
    let r = build(&fixture(), "", 150);
    let f = r.headline;
    assert_eq!(f.token_uses, 25);
    assert_eq!(
        f.cross_project_edges, 4,
        "same-project and auth-only pairs are not edges"
    );
    assert_eq!(f.uses_outside_allowlist, 2);
    assert_eq!(f.targets_without_allowlist, 1, "web/site");
    assert_eq!(f.open_alerts, 3);
    assert_eq!(r.graph.nodes.len(), 5);
}

#[test]
fn protected_project_entries_missing_and_permissions() {
    let r = build(&fixture(), "", 150);
    assert_eq!(r.projects.len(), 1);
    let p = &r.projects[0];
    let usage: Vec<(&str, EntryUse, u64)> = p
        .entries
        .iter()
        .map(|e| (e.member_path.as_str(), e.usage, e.uses))
        .collect();
    assert_eq!(
        usage,
        [
            ("b", EntryUse::Used, 4),
            ("a/app", EntryUse::Used, 10),
            ("old/gone", EntryUse::Unused, 0)
        ]
    );
    assert_eq!(p.entries[0].permissions.uncovered, ["pipeline.trigger"]);
    assert_eq!(
        p.entries[1].permissions.recommended,
        ["admin_packages", "read_jobs"]
    );
    assert_eq!(p.missing.len(), 1);
    assert_eq!(p.missing[0].path, HOSTILE_PATH);
    assert_eq!(p.recommended.len(), 3);
    assert_eq!(r.unprotected.len(), 1);
    assert_eq!(r.unprotected[0].project, "web/site");
    assert_eq!(r.unprotected[0].inbound, "not configured");
}

#[test]
fn group_scope_keeps_pairs_touching_the_group() {
    let mut data = fixture();
    data.scope.group = "web".into();
    let r = build(&data, "", 150);
    assert_eq!(r.headline.cross_project_edges, 1);
    assert!(r.projects.is_empty());
    assert!(r.changes.is_empty());
}

#[test]
fn no_database_string_reaches_html_or_markdown_unescaped() {
    let r = build(&fixture(), "https://gitlab.example.com", 150);
    let html = render(&r, Format::Html);
    // The page's own script is the only one.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("alert(1)</script>"));
    assert!(!html.contains("\"<script"));
    assert!(html.contains("Mallory &quot;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("href=\"https://gitlab.example.com/evil/%3Cscript%3Ealert%28%22p%22%29%3C/script%3E/-/jobs/99\""));
    let md = render(&r, Format::Md);
    assert!(!md.contains("<script"), "{md}");
    assert!(md.contains(r#"Mallory \"&lt;script&gt;alert\(1\)&lt;/script&gt;"#));
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
    assert_eq!(json["headline"]["token_uses"], 25);
    assert_eq!(json["outside_uses"][0]["actor_name"], HOSTILE_NAME);
}

/// The page's element tree: tag, id and classes per element, text and attribute values of
/// data dropped; `<style>` and `<script>` bodies skipped. Repeated rows collapse to one line.
fn outline(html: &str) -> String {
    const VOID: &[&str] = &["meta", "input", "br", "img", "link"];
    let mut out: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap();
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if tag.starts_with('/') {
            depth -= 1;
            continue;
        }
        let name = tag.split_whitespace().next().unwrap();
        let attr = |a: &str| {
            let key = format!(" {a}=\"");
            tag.find(&key).map(|i| {
                let v = &tag[i + key.len()..];
                v[..v.find('"').unwrap()].to_string()
            })
        };
        let mut line = format!("{}{name}", "  ".repeat(depth));
        if let Some(id) = attr("id") {
            line.push_str(&format!("#{id}"));
        }
        if let Some(class) = attr("class") {
            line.push_str(&format!(".{}", class.replace(' ', ".")));
        }
        if out.last() != Some(&line) {
            out.push(line);
        }
        if name == "style" || name == "script" {
            let close = format!("</{name}>");
            rest = &rest[rest.find(&close).unwrap()..];
        }
        if !VOID.contains(&name) {
            depth += 1;
        }
    }
    assert_eq!(depth, 0, "unbalanced tags");
    out.join("\n")
}

#[test]
fn html_structure() {
    let html = render(
        &build(&fixture(), "https://gitlab.example.com", 150),
        Format::Html,
    );
    insta::assert_snapshot!(outline(&html));
}
