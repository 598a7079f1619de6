//! The report as Markdown, for tickets: the same sections as the HTML page, the graph as its
//! busiest edges. Every database string goes through [`m`].

use std::fmt::Write;

use super::escape::{Links, markdown as m};
use super::model::utc;
use super::permissions::Permissions;
use super::view::{EntryUse, Recommended, Report};

/// Edges listed in place of the picture.
const EDGES_LISTED: usize = 50;

fn link(href: Option<String>, text: &str) -> String {
    match href {
        // The URL's path is percent-encoded (escape::url_path), so it holds no `)` or space.
        Some(url) => format!("[{}]({url})", m(text)),
        None => m(text),
    }
}

fn perms(p: &Permissions) -> String {
    let mut cell: Vec<String> = p.recommended.iter().map(|r| format!("`{r}`")).collect();
    if !p.uncovered.is_empty() {
        let flagged: Vec<String> = p.uncovered.iter().map(|a| m(a)).collect();
        cell.push(format!("**not covered:** {}", flagged.join(", ")));
    }
    cell.join(" ")
}

fn recommended(out: &mut String, entries: &[Recommended]) {
    for r in entries {
        let _ = writeln!(
            out,
            "- {} {} ({} consumers, {} unobserved admitted, {} uses): {}",
            m(&r.entry_type),
            m(&r.path),
            r.consumers,
            r.unobserved_admitted,
            r.uses,
            perms(&r.permissions)
        );
    }
}

pub fn render(report: &Report) -> String {
    let links = Links {
        base: &report.gitlab_url,
    };
    let s = &report.scope;
    let f = &report.headline;
    let mut out = String::new();
    let _ = writeln!(out, "# Job-token audit report\n");
    let group = if s.group.is_empty() {
        "every project".to_string()
    } else {
        format!("projects under {}", m(&s.group))
    };
    let _ = writeln!(
        out,
        "Uses from {} to {} (UTC, end exclusive), {group}. Generated {}.\n",
        utc(s.from_ms),
        utc(s.to_ms),
        utc(s.generated_at_ms)
    );
    let _ = writeln!(out, "## Summary\n\n| figure | value |\n|---|---:|");
    for (label, v) in [
        ("token uses", f.token_uses),
        ("cross-project edges", f.cross_project_edges),
        (
            "uses from sources outside the target's allowlist",
            f.uses_outside_allowlist,
        ),
        ("targets without an allowlist", f.targets_without_allowlist),
        ("open alerts", f.open_alerts),
    ] {
        let _ = writeln!(out, "| {label} | {v} |");
    }
    let g = &report.graph;
    let _ = writeln!(
        out,
        "\n## Cross-project access\n\n{} projects, {} edges{}. Busiest first:\n\n\
         | source | target | uses | not allowed | status |\n|---|---|---:|---:|---|",
        g.projects,
        g.edges.len(),
        if g.aggregated {
            format!(" between groups of {} path level(s)", g.level)
        } else {
            String::new()
        }
    );
    let mut edges: Vec<_> = g.edges.iter().collect();
    edges.sort_by(|a, b| b.uses.cmp(&a.uses).then(a.source.cmp(&b.source)));
    for e in edges.iter().take(EDGES_LISTED) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            m(&e.source),
            m(&e.target),
            e.uses,
            e.not_allowed_uses,
            e.status.label()
        );
    }
    let _ = writeln!(out, "\n## Protected projects\n");
    for p in &report.projects {
        let _ = writeln!(
            out,
            "### {}\n\nInbound enforcement: {}.{}\n\n| entry | usage | uses | last used | permissions |\n|---|---|---:|---|---|",
            link(links.project(&p.project), &p.project),
            m(&p.inbound),
            if p.over_limit {
                " Recommendation over GitLab's limit."
            } else {
                ""
            }
        );
        for e in &p.entries {
            let usage = match e.usage {
                EntryUse::Used => "used".to_string(),
                EntryUse::NotInWindow => "not used in the window".to_string(),
                EntryUse::Unused => format!("unused for {} days", s.unused_days),
            };
            let _ = writeln!(
                out,
                "| {} {} | {usage} | {} | {} | {} |",
                m(&e.member_type),
                link(links.project(&e.member_path), &e.member_path),
                e.uses,
                m(&e.last_used),
                perms(&e.permissions)
            );
        }
        for x in &p.missing {
            let _ = writeln!(
                out,
                "| Project {} | **missing** | {} | {} | {} |",
                link(links.project(&x.path), &x.path),
                x.uses,
                m(&x.last_used),
                perms(&x.permissions)
            );
        }
        let _ = writeln!(out, "\nRecommended minimal allowlist:\n");
        recommended(&mut out, &p.recommended);
        out.push('\n');
    }
    let _ = writeln!(out, "## Targets without an allowlist\n");
    for p in &report.unprotected {
        let _ = writeln!(
            out,
            "### {}\n\nInbound enforcement: {}; {} consumers, {} uses. Recommended allowlist{}:\n",
            link(links.project(&p.project), &p.project),
            m(&p.inbound),
            p.consumers,
            p.uses,
            if p.over_limit {
                " (over GitLab's limit)"
            } else {
                ""
            }
        );
        recommended(&mut out, &p.recommended);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "## Uses outside the allowlist\n\n| when | who | source | target | action | job |\n|---|---|---|---|---|---|"
    );
    for u in &report.outside_uses {
        let job = u.job_id.map(|j| j.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} |",
            m(&u.at),
            m(&u.actor_name),
            m(&u.actor_kind),
            link(links.project(&u.source), &u.source),
            link(links.project(&u.target), &u.target),
            m(&u.action),
            link(links.job(&u.source, u.job_id), &job)
        );
    }
    let _ = writeln!(
        out,
        "\n## Token lifecycle and allowlist changes\n\n| when | who | what | subject | scope |\n|---|---|---|---|---|"
    );
    for c in &report.changes {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} |",
            m(&c.at),
            m(&c.author_name),
            m(&c.kind),
            m(&c.what),
            m(&c.subject),
            link(links.project(&c.scope), &c.scope)
        );
    }
    let _ = writeln!(
        out,
        "\n## Open alerts\n\n| last seen | rule | severity | summary | source | target | job |\n|---|---|---|---|---|---|---|"
    );
    for a in &report.alerts {
        let job = a.job_id.map(|j| j.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            m(&utc(a.last_seen_ms)),
            m(&a.rule),
            m(a.severity.as_str()),
            m(&a.summary),
            link(
                links.project(&a.source_project_path),
                &a.source_project_path
            ),
            link(
                links.project(&a.target_project_path),
                &a.target_project_path
            ),
            link(links.job(&a.source_project_path, a.job_id), &job)
        );
    }
    let _ = writeln!(
        out,
        "\nPermission names: <https://docs.gitlab.com/ci/jobs/fine_grained_permissions/>."
    );
    out
}
