//! The report as one self-contained HTML page: inline CSS, SVG and script, no network
//! fetches (links to GitLab are plain anchors). Every string from the database goes through
//! [`h`]; the sections are in `html_sections.rs`.

use std::fmt::Write;

use super::escape::{Links, html as h};
use super::html_sections as sections;
use super::model::utc;
use super::svg;
use super::view::Report;

const CSS: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

pub fn render(report: &Report) -> String {
    let links = Links {
        base: &report.gitlab_url,
    };
    let scope = &report.scope;
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // No fetches at all: a stored value that slipped through could not load anything either.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<title>tokentrail job-token audit report</title>\n");
    let _ = write!(out, "<style>\n{CSS}</style>\n</head>\n");
    out.push_str("<body data-report-ready=\"0\">\n<header>\n<h1>Job-token audit report</h1>\n");
    let group = if scope.group.is_empty() {
        "every project".to_string()
    } else {
        format!("projects under <code>{}</code>", h(&scope.group))
    };
    let _ = writeln!(
        out,
        "<p class=\"scope\">Uses from {} to {} (UTC, end exclusive), {group}. Generated {} by \
         tokentrail {}.</p>",
        utc(scope.from_ms),
        utc(scope.to_ms),
        utc(scope.generated_at_ms),
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(concat!(
        "<nav><a href=\"#headline\">Summary</a><a href=\"#graph\">Access graph</a>",
        "<a href=\"#projects\">Protected projects</a><a href=\"#unprotected\">Without an allowlist</a>",
        "<a href=\"#outside\">Outside the allowlist</a>",
        "<a href=\"#changes\">Changes</a><a href=\"#alerts\">Alerts</a>",
        "<a href=\"#permissions\">Permission mapping</a></nav>\n</header>\n"
    ));
    headline(&mut out, report);
    graph(&mut out, report);
    sections::projects(&mut out, report, &links);
    sections::unprotected(&mut out, report, &links);
    sections::outside(&mut out, report, &links);
    sections::changes(&mut out, report, &links);
    sections::alerts(&mut out, report, &links);
    sections::permission_mapping(&mut out);
    let _ = write!(out, "<script>\n{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn headline(out: &mut String, report: &Report) {
    let f = &report.headline;
    out.push_str("<section id=\"headline\">\n<h2>Summary</h2>\n<div class=\"figures\">\n");
    for (key, value, label, bad) in [
        ("token_uses", f.token_uses, "token uses", false),
        (
            "cross_project_edges",
            f.cross_project_edges,
            "cross-project edges",
            false,
        ),
        (
            "uses_outside_allowlist",
            f.uses_outside_allowlist,
            "uses from sources outside the target's allowlist",
            f.uses_outside_allowlist > 0,
        ),
        (
            "targets_without_allowlist",
            f.targets_without_allowlist,
            "targets without an allowlist",
            f.targets_without_allowlist > 0,
        ),
        (
            "open_alerts",
            f.open_alerts,
            "open alerts",
            f.open_alerts > 0,
        ),
    ] {
        let class = if bad { "figure bad" } else { "figure" };
        let _ = writeln!(
            out,
            "<div class=\"{class}\" data-figure=\"{key}\" data-value=\"{value}\">\
             <span class=\"value\">{}</span><span class=\"label\">{label}</span></div>",
            grouped(value)
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn graph(out: &mut String, report: &Report) {
    let g = &report.graph;
    out.push_str("<section id=\"graph\">\n<h2>Cross-project access</h2>\n");
    let how = if g.aggregated {
        format!(
            "{} projects, shown as {} groups of {} path level{} (edges between groups summed \
             per status; edges inside a group are left out). Filter by a path to find it.",
            g.projects,
            g.nodes.len(),
            g.level,
            if g.level == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{} projects, placed by top-level group. Arrows point from the project whose job \
             token was used to the project it reached; width grows with uses.",
            g.projects
        )
    };
    let _ = writeln!(out, "<p class=\"note\">{how}</p>");
    out.push_str(concat!(
        "<div class=\"controls\"><input id=\"graph-filter\" type=\"search\" ",
        "placeholder=\"filter projects\" aria-label=\"filter projects\">",
        "<label><input type=\"checkbox\" data-status=\"allowed\" checked> allowed</label>",
        "<label><input type=\"checkbox\" data-status=\"not_allowed\" checked> not allowed</label>",
        "<label><input type=\"checkbox\" data-status=\"unknown\" checked> unknown</label>",
        "<button type=\"button\" data-zoom=\"in\">zoom in</button>",
        "<button type=\"button\" data-zoom=\"out\">zoom out</button>",
        "<button type=\"button\" data-zoom=\"reset\">reset</button></div>\n"
    ));
    out.push_str(&svg::render(g));
    out.push_str(concat!(
        "\n<p class=\"legend\"><span><i class=\"swatch allowed\"></i>allowed at the time</span>",
        "<span><i class=\"swatch not_allowed\"></i>not allowed (at least one use outside the ",
        "allowlist)</span><span><i class=\"swatch unknown\"></i>unknown (target had no ",
        "allowlist history)</span></p>\n</section>\n"
    ));
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1000), "1,000");
        assert_eq!(super::grouped(10_000_000), "10,000,000");
    }
}
