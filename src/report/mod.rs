//! `tokentrail report`: one self-contained audit report (HTML, Markdown or JSON) of job-token
//! use in a window: headline figures, the cross-project access graph, every protected
//! project's allowlist against its consumers with the recommended minimal allowlist and
//! fine-grained permissions, uses outside the allowlist, changes and alerts.
//!
//! `data` reads ClickHouse through the named queries into a plain [`model::ReportData`];
//! everything after that is pure: `view` (sections and figures), `graph` (aggregation and
//! layout), `permissions` (action → GitLab permission), then `html`/`svg`, `markdown`, or
//! serde for JSON. The command is `cli::report`. See docs/report.md.

pub mod allowlists;
pub mod data;
pub mod escape;
pub mod graph;
pub mod html;
mod html_sections;
pub mod markdown;
pub mod model;
pub mod permissions;
pub mod settings;
pub mod svg;
pub mod view;
#[cfg(test)]
mod view_tests;

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Md,
    Json,
}

/// The report in `format`.
pub fn render(report: &view::Report, format: Format) -> String {
    match format {
        Format::Html => html::render(report),
        Format::Md => markdown::render(report),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report).expect("the report serializes");
            text.push('\n');
            text
        }
    }
}
