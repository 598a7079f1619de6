//! The cross-project access graph: projects grouped by top-level group, edges weighted by
//! uses and coloured by allowlist status at the time of the uses. Above
//! [`AGGREGATE_ABOVE`] projects, nodes are groups: the deepest group level (`a`, `a/b`, …)
//! that still gives at most that many nodes, with edges summed between them per status, so
//! the picture stays readable at 500+ projects. The layout is computed here (no layout
//! engine in the page): every node on one circle, ordered by top-level group.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::top_level_group;

/// Beyond this many projects (nodes) the graph shows groups instead.
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
    /// Aggregated: the group level of the nodes (1 = top-level groups, 2 = `a/b`, …); a
    /// project with fewer levels stays itself. 0 when nodes are projects.
    pub level: usize,
    /// Projects in the graph (before aggregation).
    pub projects: usize,
    pub nodes: Vec<Node>,
    /// `source`/`target` are node ids; one edge per (source, target, status). Aggregated:
    /// edges inside one node are left out (their uses count in its `uses_in`/`uses_out`).
    pub edges: Vec<Edge>,
}

/// The first `level` segments of a path (the path itself when it has no more).
fn prefix(path: &str, level: usize) -> &str {
    match path.match_indices('/').nth(level.saturating_sub(1)) {
        Some((i, _)) if level > 0 => &path[..i],
        _ => path,
    }
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
    let nodes_at = |level: usize| {
        let ids: std::collections::BTreeSet<&str> =
            projects.keys().map(|p| prefix(p, level)).collect();
        ids.len()
    };
    let level = if aggregated {
        (2..=16)
            .take_while(|&l| nodes_at(l) <= aggregate_above && nodes_at(l) < count)
            .last()
            .unwrap_or(1)
    } else {
        0
    };
    let node_of = |path: &str| -> String {
        if aggregated {
            prefix(path, level).to_string()
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
    let mut merged: BTreeMap<(String, String, EdgeStatus), Edge> = BTreeMap::new();
    for e in edges {
        let (s, t) = (node_of(&e.source), node_of(&e.target));
        if s == t {
            continue;
        }
        let m = merged
            .entry((s.clone(), t.clone(), e.status))
            .or_insert(Edge {
                source: s,
                target: t,
                uses: 0,
                not_allowed_uses: 0,
                status: e.status,
            });
        m.uses += e.uses;
        m.not_allowed_uses += e.not_allowed_uses;
    }
    let mut nodes: Vec<Node> = nodes.into_values().collect();
    layout(&mut nodes);
    Graph {
        aggregated,
        level,
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
    fn large_graphs_aggregate_by_group_with_one_edge_per_status() {
        let g = build(
            &[
                edge("a/x", "b/y", 3, EdgeStatus::Allowed),
                edge("a/sub/z", "b/w", 2, EdgeStatus::Unknown),
                edge("a/x", "a/sub/z", 7, EdgeStatus::NotAllowed),
                edge("b/y", "a/x", 1, EdgeStatus::Allowed),
                edge("a/sub/q", "b/y", 4, EdgeStatus::Allowed),
            ],
            3,
        );
        assert!(g.aggregated);
        assert_eq!((g.projects, g.level), (5, 1));
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(g.nodes[0].projects, 3);
        let ab: Vec<(u64, EdgeStatus)> = g
            .edges
            .iter()
            .filter(|e| e.source == "a")
            .map(|e| (e.uses, e.status))
            .collect();
        assert_eq!(ab, [(7, EdgeStatus::Allowed), (2, EdgeStatus::Unknown)]);
        assert_eq!(g.edges.len(), 3, "the edge inside group a is left out");
    }

    #[test]
    fn aggregation_takes_the_deepest_level_that_fits() {
        let edges: Vec<Edge> = (0..6)
            .map(|i| edge(&format!("a/s{}/p{i}", i % 2), "b/t", 1, EdgeStatus::Allowed))
            .collect();
        // 7 projects; a/s0, a/s1 and b/t make 3 nodes at level 2.
        let g = build(&edges, 4);
        assert_eq!(g.level, 2);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a/s0", "a/s1", "b/t"]);
        assert_eq!(prefix("a/b/c", 1), "a");
        assert_eq!(prefix("a/b/c", 2), "a/b");
        assert_eq!(prefix("a/b", 5), "a/b");
    }

    #[test]
    fn six_hundred_projects_show_as_their_sixty_subgroups() {
        let path = |i: usize| format!("g{}/s{}/p{}", i % 6, (i / 6) % 10, i);
        let edges: Vec<Edge> = (0..600)
            .map(|i| edge(&path(i), &path((i * 7 + 1) % 600), 1, EdgeStatus::Allowed))
            .collect();
        let g = build(&edges, AGGREGATE_ABOVE);
        assert!(g.aggregated);
        assert_eq!((g.projects, g.level, g.nodes.len()), (600, 2, 60));
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
