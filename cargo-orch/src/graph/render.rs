//! The graph as DOT (Graphviz), Mermaid, or SVG laid out here.

use std::fmt::Write as _;

use super::model::{Edge, Graph, NodeKind};

/// A DOT string literal.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The graph in Graphviz's DOT language.
pub fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph orch {\n  rankdir=LR;\n  node [shape=box];\n");
    for node in &graph.nodes {
        let attributes = match node.kind {
            NodeKind::Module {
                isolated,
                undeclared,
            } => {
                let mut label = node.id.clone();
                if isolated {
                    label.push_str(" (process)");
                }
                let mut attrs = format!("label={}", quoted(&label));
                if isolated {
                    attrs.push_str(", style=dashed");
                }
                if undeclared {
                    attrs.push_str(", color=gray");
                }
                attrs
            }
            NodeKind::Bridge => format!("label={}, shape=ellipse", quoted("NATS bridge")),
        };
        let _ = writeln!(out, "  {} [{attributes}];", quoted(&node.id));
    }
    for edge in &graph.edges {
        // With --live the count is in the label and, for tools, in `events`.
        let mut events = edge
            .events
            .map(|n| format!(", events={n}"))
            .unwrap_or_default();
        if edge.conflict {
            events.push_str(", color=red, fontcolor=red");
        }
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{events}];",
            quoted(&edge.from),
            quoted(&edge.to),
            quoted(&label(edge))
        );
    }
    for note in &graph.notes {
        let _ = writeln!(out, "  // {}", note.replace('\n', " "));
    }
    out.push_str("}\n");
    out
}

/// An edge's label: its topic, and with `--live` how many events took it.
fn label(edge: &Edge) -> String {
    let topic = match &edge.type_name {
        Some(name) => format!("{}: {name}", edge.topic),
        None => edge.topic.clone(),
    };
    match edge.events {
        Some(1) => format!("{topic} (1 event)"),
        Some(n) => format!("{topic} ({n} events)"),
        None => topic,
    }
}

/// A Mermaid label: quotes and angle brackets as entities.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

/// The graph as a Mermaid flowchart.
pub fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    let id = |name: &str| {
        graph
            .nodes
            .iter()
            .position(|n| n.id == name)
            .map_or_else(|| "unknown".to_owned(), |i| format!("n{i}"))
    };
    for (index, node) in graph.nodes.iter().enumerate() {
        let text = match node.kind {
            NodeKind::Module { isolated: true, .. } => format!("{} (process)", node.id),
            NodeKind::Module { .. } => node.id.clone(),
            NodeKind::Bridge => "NATS bridge".to_owned(),
        };
        let shape = match node.kind {
            NodeKind::Bridge => ("([", "])"),
            NodeKind::Module { .. } => ("[", "]"),
        };
        let _ = writeln!(
            out,
            "  n{index}{}\"{}\"{}",
            shape.0,
            mermaid_text(&text),
            shape.1
        );
    }
    for edge in &graph.edges {
        let _ = writeln!(
            out,
            "  {} -->|\"{}\"| {}",
            id(&edge.from),
            mermaid_text(&label(edge)),
            id(&edge.to)
        );
    }
    for note in &graph.notes {
        let _ = writeln!(out, "  %% {}", note.replace('\n', " "));
    }
    out
}

/// The graph laid out and drawn as SVG (layout-rs: no Graphviz needed).
pub fn svg(graph: &Graph) -> Result<String, String> {
    let text = dot(graph);
    // The layout is a library of its own; a panic in it is an error here.
    std::panic::catch_unwind(|| {
        let mut parser = layout::gv::DotParser::new(&text);
        let parsed = parser.process()?;
        let mut builder = layout::gv::GraphBuilder::new();
        builder.visit_graph(&parsed);
        let mut visual = builder.get();
        let mut writer = layout::backends::svg::SVGWriter::new();
        visual.do_it(false, false, false, &mut writer);
        Ok(writer.finalize())
    })
    .unwrap_or_else(|_| Err("the graph layout failed".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::GraphNode;

    fn sample() -> Graph {
        Graph {
            nodes: vec![
                GraphNode {
                    id: "producer".into(),
                    kind: NodeKind::Module {
                        isolated: false,
                        undeclared: false,
                    },
                },
                GraphNode {
                    id: "consumer".into(),
                    kind: NodeKind::Module {
                        isolated: true,
                        undeclared: false,
                    },
                },
            ],
            edges: vec![Edge {
                from: "producer".into(),
                to: "consumer".into(),
                topic: "test.ping".into(),
                events: None,
                type_name: None,
                conflict: false,
            }],
            notes: vec!["a \"note\"".into()],
        }
    }

    #[test]
    fn dot_and_mermaid_name_every_node_and_edge() {
        let dot = dot(&sample());
        assert!(
            dot.contains("\"producer\" -> \"consumer\" [label=\"test.ping\"];"),
            "{dot}"
        );
        assert!(dot.contains("consumer (process)"), "{dot}");
        let mermaid = mermaid(&sample());
        assert!(mermaid.contains("n0 -->|\"test.ping\"| n1"), "{mermaid}");
        assert!(mermaid.contains("%% a \"note\""), "{mermaid}");
    }

    #[test]
    fn svg_is_drawn_without_graphviz() {
        let svg = svg(&sample()).expect("laid out");
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        assert!(
            svg.contains("test.ping") && svg.contains("producer"),
            "{svg}"
        );
    }
}
