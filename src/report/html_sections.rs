//! The report's tables: protected projects, uses outside the allowlist, changes, alerts and
//! the permission mapping. Every database string goes through [`h`] or [`link`].

use std::fmt::Write;

use super::escape::{Links, html as h};
use super::model::utc;
use super::permissions::{self, Permissions};
use super::view::{EntryUse, Recommended, Report};

/// `text` escaped, inside an anchor when there is an address.
fn link(href: Option<String>, text: &str) -> String {
    match href {
        Some(url) => format!("<a href=\"{}\">{}</a>", h(&url), h(text)),
        None => h(text),
    }
}

fn perms(p: &Permissions) -> String {
    let mut cell = p
        .recommended
        .iter()
        .map(|r| format!("<code>{r}</code>"))
        .collect::<Vec<_>>()
        .join(" ");
    if !p.uncovered.is_empty() {
        let flagged: Vec<String> = p.uncovered.iter().map(|a| h(a)).collect();
        let _ = write!(
            cell,
            " <span class=\"flag\" title=\"no fine-grained permission covers these\">\
             not covered: {}</span>",
            flagged.join(", ")
        );
    }
    cell
}

fn table_head(out: &mut String, class: &str, columns: &[&str]) {
    let _ = write!(out, "<table class=\"{class}\"><thead><tr>");
    for c in columns {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
}

pub fn projects(out: &mut String, report: &Report, links: &Links) {
    out.push_str("<section id=\"projects\">\n<h2>Protected projects</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">Projects with an inbound allowlist entry or enforcement enabled: \
         each entry against the consumers actually seen (used in the window, not used in the \
         window, or neither used nor changed for {} days), the consumers that were not on the \
         allowlist at the time (missing), and the recommended minimal allowlist with the \
         fine-grained permissions the observed actions need.</p>",
        report.scope.unused_days
    );
    if report.projects.is_empty() {
        out.push_str("<p>No protected project in scope.</p>\n");
    }
    for p in &report.projects {
        let unused = p
            .entries
            .iter()
            .filter(|e| e.usage == EntryUse::Unused)
            .count();
        let _ = writeln!(
            out,
            "<details class=\"project\" data-project=\"{}\"><summary>{} — inbound {}, {} \
             entries ({unused} unused), {} missing, {} recommended{}</summary>",
            h(&p.project),
            h(&p.project),
            h(&p.inbound),
            p.entries.len(),
            p.missing.len(),
            p.recommended.len(),
            over_limit_note(p.over_limit)
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            link(links.project(&p.project), "open in GitLab")
        );
        out.push_str("<h3>Allowlist entries</h3>\n");
        table_head(
            out,
            "entries",
            &[
                "type",
                "member",
                "usage",
                "uses",
                "last used",
                "permissions",
            ],
        );
        for e in &p.entries {
            let (class, usage) = match e.usage {
                EntryUse::Used => ("usage-used", "used".to_string()),
                EntryUse::NotInWindow => ("usage-idle", "not used in the window".to_string()),
                EntryUse::Unused => (
                    "usage-unused",
                    format!("unused for {} days", report.scope.unused_days),
                ),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{usage}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                h(&e.member_type),
                link(links.project(&e.member_path), &e.member_path),
                e.uses,
                h(&e.last_used),
                perms(&e.permissions)
            );
        }
        out.push_str("</tbody></table>\n<h3>Missing: consumers outside the allowlist</h3>\n");
        table_head(
            out,
            "missing",
            &["consumer", "uses", "last used", "permissions it used"],
        );
        for m in &p.missing {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                link(links.project(&m.path), &m.path),
                m.uses,
                h(&m.last_used),
                perms(&m.permissions)
            );
        }
        out.push_str("</tbody></table>\n<h3>Recommended minimal allowlist</h3>\n");
        recommended(out, &p.recommended, links);
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

fn recommended(out: &mut String, entries: &[Recommended], links: &Links) {
    table_head(
        out,
        "recommended",
        &[
            "type",
            "entry",
            "consumers",
            "unobserved admitted",
            "uses",
            "permissions",
        ],
    );
    for r in entries {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            h(&r.entry_type),
            link(links.project(&r.path), &r.path),
            r.consumers,
            r.unobserved_admitted,
            r.uses,
            perms(&r.permissions)
        );
    }
    out.push_str("</tbody></table>\n");
}

pub fn unprotected(out: &mut String, report: &Report, links: &Links) {
    out.push_str("<section id=\"unprotected\">\n<h2>Targets without an allowlist</h2>\n");
    out.push_str(
        "<p class=\"note\">Projects reached by other projects' job tokens that have no \
         allowlist entry and no inbound enforcement: the recommended minimal allowlist to \
         start from, with the permissions the observed actions need.</p>\n",
    );
    for p in &report.unprotected {
        let _ = writeln!(
            out,
            "<details class=\"project\" data-project=\"{}\"><summary>{} — inbound {}, {} \
             consumers, {} uses, {} recommended entries{}</summary>",
            h(&p.project),
            h(&p.project),
            h(&p.inbound),
            p.consumers,
            p.uses,
            p.recommended.len(),
            over_limit_note(p.over_limit)
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            link(links.project(&p.project), "open in GitLab")
        );
        recommended(out, &p.recommended, links);
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

pub fn outside(out: &mut String, report: &Report, links: &Links) {
    out.push_str("<section id=\"outside\">\n<h2>Uses outside the allowlist</h2>\n");
    out.push_str(
        "<p class=\"note\">The latest uses whose source was not on the target's allowlist \
         at the time of the use, newest first.</p>\n",
    );
    table_head(
        out,
        "outside",
        &["when", "who", "source", "target", "action", "job"],
    );
    for u in &report.outside_uses {
        let job = u.job_id.map(|j| j.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{} <small>{} {}</small></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            h(&u.at),
            h(&u.actor_name),
            h(&u.actor_username),
            h(&u.actor_kind),
            link(links.project(&u.source), &u.source),
            link(links.project(&u.target), &u.target),
            h(&u.action),
            link(links.job(&u.source, u.job_id), &job)
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

pub fn changes(out: &mut String, report: &Report, links: &Links) {
    out.push_str("<section id=\"changes\">\n<h2>Token lifecycle and allowlist changes</h2>\n");
    table_head(
        out,
        "changes",
        &["when", "who", "kind", "what", "subject", "scope"],
    );
    for c in &report.changes {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{} <small>{}</small></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            h(&c.at),
            h(&c.author_name),
            h(&c.author_kind),
            h(&c.kind),
            h(&c.what),
            h(&c.subject),
            link(links.project(&c.scope), &c.scope)
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

pub fn alerts(out: &mut String, report: &Report, links: &Links) {
    out.push_str("<section id=\"alerts\">\n<h2>Open alerts</h2>\n");
    table_head(
        out,
        "alerts",
        &[
            "last seen",
            "rule",
            "severity",
            "summary",
            "who",
            "source",
            "target",
            "job",
            "count",
        ],
    );
    for a in &report.alerts {
        let job = a.job_id.map(|j| j.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            h(&utc(a.last_seen_ms)),
            h(&a.rule),
            h(a.severity.as_str()),
            h(&a.summary),
            h(&a.actor_kind),
            a.actor_id,
            link(
                links.project(&a.source_project_path),
                &a.source_project_path
            ),
            link(
                links.project(&a.target_project_path),
                &a.target_project_path
            ),
            link(links.job(&a.source_project_path, a.job_id), &job),
            a.count
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

pub fn permission_mapping(out: &mut String) {
    out.push_str("<section id=\"permissions\">\n<h2>Permission mapping</h2>\n");
    out.push_str(
        "<p class=\"note\">tokentrail action → GitLab fine-grained job-token permission, from \
         GitLab's <a href=\"https://docs.gitlab.com/ci/jobs/fine_grained_permissions/\">\
         Fine-grained permissions for CI/CD job tokens</a>. Actions not listed are flagged \
         \"not covered\": only the allowlist entry itself controls them.</p>\n",
    );
    table_head(out, "mapping", &["action", "permission", "GitLab resource"]);
    for (action, permission, resource) in permissions::PERMISSION_BY_ACTION {
        let _ = writeln!(
            out,
            "<tr><td><code>{action}</code></td><td><code>{permission}</code></td>\
             <td>{resource}</td></tr>"
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

/// Said after an allowlist's entry count when it exceeds what GitLab accepts.
fn over_limit_note(over_limit: bool) -> &'static str {
    if over_limit {
        " (over GitLab's limit)"
    } else {
        ""
    }
}
