//! The cross-project access graph: projects grouped by top-level group, edges weighted by
//! uses and coloured by allowlist status at the time of the uses. Above
//! [`AGGREGATE_ABOVE`] projects, nodes are top-level groups and edges are summed between
//! groups, so the picture stays readable at 500+ projects. The layout is computed here (no
//! layout engine in the page): groups on a circle, each group's projects on a small circle
//! around the group's place.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::top_level_group;

/// Beyond this many projects the graph shows groups instead.
pub const AGGREGATE_ABOVE: usize = 150;
/// The drawing's square side, in SVG user units.
pub const SIZE: f64 = 1000.0;

/// Allowlist status of an edge at the time of its uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeStatus {
    Allowed,
    Unknown,
    NotAllowed,
}

impl EdgeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeStatus::Allowed => "allowed",
            EdgeStatus::Unknown => "unknown",
            EdgeStatus::NotAllowed => "not_allowed",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            EdgeStatus::Allowed => "allowed",
            EdgeStatus::Unknown => "unknown (no allowlist history)",
            EdgeStatus::NotAllowed => "not allowed",
        }
    }
}

/// One cross-project pair in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub source: String,
    pub target: String,
    pub uses: u64,
    /// Uses whose source was not on the target's allowlist at the time.
    pub not_allowed_uses: u64,
    pub status: EdgeStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// A project path, or a top-level group when aggregated.
    pub id: String,
    pub group: String,
    pub uses_in: u64,
    pub uses_out: u64,
    /// Projects behind the node (1 unless aggregated).
    pub projects: usize,
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    pub aggregated: bool,
    /// Projects in the graph (before aggregation).
    pub projects: usize,
    pub nodes: Vec<Node>,
    /// `source`/`target` are node ids. Aggregated: edges inside one group are left out (their
    /// uses count in the node's `uses_in`/`uses_out`).
    pub edges: Vec<Edge>,
}

/// The graph of `edges` (cross-project pairs), aggregated by group above `aggregate_above`
/// projects.
pub fn build(edges: &[Edge], aggregate_above: usize) -> Graph {
    let mut projects: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in edges {
        projects.entry(&e.source).or_default().1 += e.uses;
        projects.entry(&e.target).or_default().0 += e.uses;
    }
    let count = projects.len();
    let aggregated = count > aggregate_above;
    let node_of = |path: &str| -> String {
        if aggregated {
            top_level_group(path).to_string()
        } else {
            path.to_string()
        }
    };
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for (path, (uses_in, uses_out)) in &projects {
        let id = node_of(path);
        let n = nodes.entry(id.clone()).or_insert_with(|| Node {
            group: top_level_group(path).to_string(),
            id,
            uses_in: 0,
            uses_out: 0,
            projects: 0,
            x: 0.0,
            y: 0.0,
        });
        n.uses_in += uses_in;
        n.uses_out += uses_out;
        n.projects += 1;
    }
    let mut merged: BTreeMap<(String, String), Edge> = BTreeMap::new();
    for e in edges {
        let (s, t) = (node_of(&e.source), node_of(&e.target));
        if s == t {
            continue;
        }
        let m = merged.entry((s.clone(), t.clone())).or_insert(Edge {
            source: s,
            target: t,
            uses: 0,
            not_allowed_uses: 0,
            status: EdgeStatus::Allowed,
        });
        m.uses += e.uses;
        m.not_allowed_uses += e.not_allowed_uses;
        m.status = m.status.max(e.status);
    }
    let mut nodes: Vec<Node> = nodes.into_values().collect();
    layout(&mut nodes);
    Graph {
        aggregated,
        projects: count,
        nodes,
        edges: merged.into_values().collect(),
    }
}

/// Every node on one circle, ordered by (group, id), with a gap of [`GROUP_GAP`] slots
/// between groups: a group is one arc, and edges cross the middle.
fn layout(nodes: &mut [Node]) {
    nodes.sort_by(|a, b| (&a.group, &a.id).cmp(&(&b.group, &b.id)));
    let groups = nodes
        .windows(2)
        .filter(|w| w[0].group != w[1].group)
        .count()
        + 1;
    let slots = nodes.len() + GROUP_GAP * groups;
    let step = std::f64::consts::TAU / slots.max(1) as f64;
    let (centre, radius) = (SIZE / 2.0, SIZE * RADIUS_SHARE);
    let mut slot = 0;
    for i in 0..nodes.len() {
        if i > 0 && nodes[i].group != nodes[i - 1].group {
            slot += GROUP_GAP;
        }
        let angle = step * slot as f64 - std::f64::consts::FRAC_PI_2;
        nodes[i].x = round1(centre + radius * angle.cos());
        nodes[i].y = round1(centre + radius * angle.sin());
        slot += 1;
    }
}

/// Empty slots between two groups on the circle.
const GROUP_GAP: usize = 2;
/// The circle's radius as a share of the drawing (the rest is room for labels).
pub const RADIUS_SHARE: f64 = 0.3;

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(s: &str, t: &str, uses: u64, status: EdgeStatus) -> Edge {
        Edge {
            source: s.into(),
            target: t.into(),
            uses,
            not_allowed_uses: if status == EdgeStatus::NotAllowed {
                1
            } else {
                0
            },
            status,
        }
    }

    #[test]
    fn small_graphs_show_projects() {
        let g = build(
            &[
                edge("a/x", "b/y", 3, EdgeStatus::Allowed),
                edge("a/z", "b/y", 2, EdgeStatus::NotAllowed),
            ],
            10,
        );
        assert!(!g.aggregated);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a/x", "a/z", "b/y"]);
        assert_eq!(g.edges.len(), 2);
        let y = &g.nodes[2];
        assert_eq!((y.uses_in, y.uses_out, y.group.as_str()), (5, 0, "b"));
        for n in &g.nodes {
            assert!((0.0..=SIZE).contains(&n.x) && (0.0..=SIZE).contains(&n.y));
        }
    }

    #[test]
    fn large_graphs_aggregate_by_top_level_group_with_the_worst_status() {
        let g = build(
            &[
                edge("a/x", "b/y", 3, EdgeStatus::Allowed),
                edge("a/sub/z", "b/w", 2, EdgeStatus::Unknown),
                edge("a/x", "a/z", 7, EdgeStatus::NotAllowed),
                edge("b/y", "a/x", 1, EdgeStatus::Allowed),
            ],
            3,
        );
        assert!(g.aggregated);
        assert_eq!(g.projects, 5);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(g.nodes[0].projects, 3);
        let ab = g.edges.iter().find(|e| e.source == "a").unwrap();
        assert_eq!((ab.uses, ab.status), (5, EdgeStatus::Unknown));
        assert_eq!(g.edges.len(), 2, "the edge inside group a is left out");
    }

    #[test]
    fn nodes_of_one_group_do_not_overlap() {
        let edges: Vec<Edge> = (0..8)
            .map(|i| edge(&format!("g/p{i}"), "h/t", 1, EdgeStatus::Allowed))
            .collect();
        let g = build(&edges, 100);
        for (i, a) in g.nodes.iter().enumerate() {
            for b in &g.nodes[i + 1..] {
                let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
                assert!(d > 10.0, "{} and {} are {d} apart", a.id, b.id);
            }
        }
    }
}
