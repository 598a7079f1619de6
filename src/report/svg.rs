//! The access graph as inline SVG: one `<line class="edge …">` per edge and one
//! `<g class="node">` per node, each with a `<title>` tooltip. `report.js` zooms, pans and
//! filters it; it reads only attributes, so nothing from the database is ever parsed as markup.

use std::fmt::Write;

use super::escape::html as h;
use super::graph::{Graph, SIZE};

/// Above this many nodes, labels show only on hover or when a filter matches.
const LABELS_UP_TO: usize = 120;

pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let dense = if graph.nodes.len() > LABELS_UP_TO {
        " dense"
    } else {
        ""
    };
    let _ = write!(
        out,
        r#"<svg id="graph-svg" class="graph{dense}" viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="cross-project access graph" data-nodes="{}" data-edges="{}" data-aggregated="{}">"#,
        graph.nodes.len(),
        graph.edges.len(),
        graph.aggregated
    );
    out.push_str(concat!(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse">"#,
        r#"<path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"></path></marker></defs>"#
    ));
    let max_uses = graph.edges.iter().map(|e| e.uses).max().unwrap_or(1).max(1) as f64;
    let pos = |id: &str| {
        graph
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| (n.x, n.y))
            .unwrap_or((0.0, 0.0))
    };
    out.push_str(r#"<g class="edges">"#);
    for e in &graph.edges {
        let ((x1, y1), (x2, y2)) = (pos(&e.source), pos(&e.target));
        let width = 0.6 + 5.0 * ((e.uses as f64).ln_1p() / max_uses.ln_1p());
        let _ = write!(
            out,
            r#"<line class="edge {status}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke-width="{width:.1}" marker-end="url(#arrow)" data-source="{s}" data-target="{t}" data-status="{status}"><title>{s} → {t}: {uses} uses, {na} not allowed ({label})</title></line>"#,
            status = e.status.as_str(),
            s = h(&e.source),
            t = h(&e.target),
            uses = e.uses,
            na = e.not_allowed_uses,
            label = e.status.label(),
        );
    }
    out.push_str(r#"</g><g class="nodes">"#);
    let max_node = graph
        .nodes
        .iter()
        .map(|n| n.uses_in + n.uses_out)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for n in &graph.nodes {
        let total = (n.uses_in + n.uses_out) as f64;
        let r = 3.0 + 9.0 * (total.ln_1p() / max_node.ln_1p());
        let projects = if graph.aggregated {
            format!(", {} projects", n.projects)
        } else {
            String::new()
        };
        // Labels point away from the centre, so they run outwards from the circle.
        let angle = (n.y - SIZE / 2.0).atan2(n.x - SIZE / 2.0);
        let (tx, ty) = (n.x + (r + 3.0) * angle.cos(), n.y + (r + 3.0) * angle.sin());
        let (rotate, anchor) = if angle.cos() < 0.0 {
            (angle.to_degrees() + 180.0, "end")
        } else {
            (angle.to_degrees(), "start")
        };
        let _ = write!(
            out,
            r#"<g class="node" data-id="{id}" data-group="{group}"><circle cx="{x}" cy="{y}" r="{r:.1}"></circle><text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" transform="rotate({rotate:.1} {tx:.1} {ty:.1})">{id}</text><title>{id}: {uin} uses in, {uout} uses out{projects}</title></g>"#,
            id = h(&n.id),
            group = h(&n.group),
            x = n.x,
            y = n.y,
            uin = n.uses_in,
            uout = n.uses_out,
        );
    }
    out.push_str("</g></svg>");
    out
}
