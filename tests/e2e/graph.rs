//! `cargo orch graph` end to end: the shipped producer and consumer with
//! their contracts, a bridge that exports and imports, an isolated module.
//! The DOT is read back with a DOT parser, the SVG as XML, the Mermaid as
//! text; each has the producer-to-consumer edge on `test.ping`; what
//! nobody feeds is called out.

use layout::gv::DotParser;
use layout::gv::parser::ast::Stmt;
use orch_e2e::Scenario;

const MODULES: &str = "modules:\n  - name: mod-dummy-producer\n    publishes: [test.ping]\n    \
                       subscribes: []\n  - name: mod-dummy-consumer\n    publishes: []\n    \
                       subscribes: [\"test.*\", orders.created]\n    isolation: process\n  \
                       - name: mod-test-module\n";

fn with_bridge() -> Scenario {
    Scenario::with_main(
        MODULES,
        "bridge:\n  nats:\n    url: nats://127.0.0.1:4222\n    export: [\"test.>\"]\n    \
         import: [\"orders.*\"]\n",
    )
}

fn graph(scenario: &Scenario, args: &[&str]) -> (String, String) {
    let mut all = vec!["graph"];
    all.extend_from_slice(args);
    let output = scenario.command(&all).output().expect("cargo orch graph");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "{out}{err}");
    (out, err)
}

fn unquoted(text: &str) -> &str {
    text.trim_matches('"')
}

#[test]
fn the_graph_draws_the_dataflow_in_dot_svg_and_mermaid() {
    let scenario = with_bridge();
    let (dot, notes) = graph(&scenario, &[]);
    let parsed = DotParser::new(&dot).process().expect("the DOT parses");
    let edges: Vec<(String, String, String)> = parsed
        .list
        .list
        .iter()
        .filter_map(|stmt| match stmt {
            Stmt::Edge(edge) => {
                let label = edge
                    .list
                    .list
                    .iter()
                    .find(|(k, _)| k == "label")
                    .map(|(_, v)| unquoted(v).to_owned())?;
                let to = edge.to.first()?;
                Some((
                    unquoted(&edge.from.name).to_owned(),
                    unquoted(&to.0.name).to_owned(),
                    label,
                ))
            }
            _ => None,
        })
        .collect();
    let edge = |from: &str, to: &str, topic: &str| {
        edges
            .iter()
            .any(|(f, t, l)| f == from && t == to && l == topic)
    };
    assert!(
        edge("mod-dummy-producer", "mod-dummy-consumer", "test.ping"),
        "{edges:?}\n{dot}"
    );
    assert!(
        edge("mod-dummy-producer", "(NATS bridge)", "test.ping"),
        "{edges:?}"
    );
    assert!(
        edge("(NATS bridge)", "mod-dummy-consumer", "orders.created"),
        "{edges:?}"
    );
    assert!(
        dot.contains("mod-dummy-consumer (process)"),
        "isolated modules are marked:\n{dot}"
    );
    assert!(
        notes.contains("'mod-test-module' declares no"),
        "a module without a contract is named:\n{notes}"
    );

    // Nothing feeds a subscription: called out.
    let unfed = with_bridge();
    std::fs::write(
        unfed.config_dir().join("main.yaml"),
        "app: {name: e2e, version: 0.0.1}\n",
    )
    .expect("write");
    let (_, notes) = graph(&unfed, &["--format", "mermaid"]);
    assert!(
        notes.contains(
            "'mod-dummy-consumer' subscribes to orders.created: nothing here publishes it"
        ),
        "{notes}"
    );

    let (mermaid, _) = graph(&scenario, &["--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("-->|\"test.ping\"|"), "{mermaid}");

    let svg_path = scenario.config_dir().join("graph.svg");
    let svg_arg = svg_path.to_str().expect("UTF-8 path");
    graph(&scenario, &["--out", svg_arg]);
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG is written");
    let document = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = document
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.descendants().filter_map(|d| d.text()).collect::<String>())
        .collect();
    for wanted in [
        "mod-dummy-producer",
        "mod-dummy-consumer (process)",
        "test.ping",
        "NATS bridge",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(wanted)),
            "{wanted} is not drawn: {texts:?}"
        );
    }
}
