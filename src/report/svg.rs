//! The access graph as inline SVG: one `<path class="edge …">` per edge and one
//! `<g class="node">` per node, each with a `<title>` tooltip. `report.js` zooms, pans and
//! filters it; it reads only attributes, so nothing from the database is ever parsed as markup.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::escape::html as h;
use super::graph::{EdgeStatus, Graph, SIZE};

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
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">"#,
        r#"<path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"></path></marker></defs>"#
    ));
    let max_node = graph
        .nodes
        .iter()
        .map(|n| n.uses_in + n.uses_out)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let radius: BTreeMap<&str, (f64, f64, f64)> = graph
        .nodes
        .iter()
        .map(|n| {
            let total = (n.uses_in + n.uses_out) as f64;
            let r = 3.0 + 9.0 * (total.ln_1p() / max_node.ln_1p());
            (n.id.as_str(), (n.x, n.y, r))
        })
        .collect();
    let max_uses = graph.edges.iter().map(|e| e.uses).max().unwrap_or(1).max(1) as f64;
    out.push_str(r#"<g class="edges">"#);
    for e in &graph.edges {
        let (Some(&(x1, y1, r1)), Some(&(x2, y2, r2))) =
            (radius.get(e.source.as_str()), radius.get(e.target.as_str()))
        else {
            continue;
        };
        let width = 0.6 + 5.0 * ((e.uses as f64).ln_1p() / max_uses.ln_1p());
        let _ = write!(
            out,
            r#"<path class="edge {status}" d="{d}" stroke-width="{width:.1}" marker-end="url(#arrow)" data-source="{s}" data-target="{t}" data-status="{status}"><title>{s} → {t}: {uses} uses, {na} not allowed ({label})</title></path>"#,
            d = curve((x1, y1, r1), (x2, y2, r2), e.status),
            status = e.status.as_str(),
            s = h(&e.source),
            t = h(&e.target),
            uses = e.uses,
            na = e.not_allowed_uses,
            label = e.status.label(),
        );
    }
    out.push_str(r#"</g><g class="nodes">"#);
    for n in &graph.nodes {
        let r = radius[n.id.as_str()].2;
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

/// A quadratic curve from the edge of the source's circle to the edge of the target's,
/// bent by status, so the edges of one pair with different statuses stay apart and A → B
/// and B → A do too.
fn curve(from: (f64, f64, f64), to: (f64, f64, f64), status: EdgeStatus) -> String {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-6);
    let (ux, uy) = (dx / len, dy / len);
    let bend = match status {
        EdgeStatus::Allowed => 0.08,
        EdgeStatus::Unknown => 0.16,
        EdgeStatus::NotAllowed => 0.24,
    } * len;
    let (mx, my) = (
        (from.0 + to.0) / 2.0 - uy * bend,
        (from.1 + to.1) / 2.0 + ux * bend,
    );
    let (sx, sy) = (from.0 + ux * from.2, from.1 + uy * from.2);
    let (ex, ey) = (to.0 - ux * (to.2 + 1.0), to.1 - uy * (to.2 + 1.0));
    format!("M {sx:.1} {sy:.1} Q {mx:.1} {my:.1} {ex:.1} {ey:.1}")
}
