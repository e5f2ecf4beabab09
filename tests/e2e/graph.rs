//! `cargo orch graph` end to end: the shipped producer and consumer with
//! their contracts, a bridge that exports and imports, an isolated module.
//! The DOT is read back with a DOT parser, the SVG as XML, the Mermaid as
//! text; each has the producer-to-consumer edge on `test.ping`; what
//! nobody feeds is called out.

use layout::gv::DotParser;
use layout::gv::parser::ast::Stmt;
use std::time::Duration;

use orch_e2e::{OrchProcess, Scenario, wait_until};

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

/// An edge of a DOT graph: (from, to, attributes).
type DotEdge = (String, String, Vec<(String, String)>);

/// Each edge of a DOT graph.
fn dot_edges(dot: &str) -> Vec<DotEdge> {
    let parsed = DotParser::new(dot).process().expect("the DOT parses");
    parsed
        .list
        .list
        .iter()
        .filter_map(|stmt| match stmt {
            Stmt::Edge(edge) => {
                let to = edge.to.first()?;
                let attributes = edge
                    .list
                    .list
                    .iter()
                    .map(|(k, v)| (k.clone(), unquoted(v).to_owned()))
                    .collect();
                Some((
                    unquoted(&edge.from.name).to_owned(),
                    unquoted(&to.0.name).to_owned(),
                    attributes,
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_graph_draws_the_dataflow_in_dot_svg_and_mermaid() {
    let scenario = with_bridge();
    let (dot, notes) = graph(&scenario, &[]);
    let edges: Vec<(String, String, String)> = dot_edges(&dot)
        .into_iter()
        .filter_map(|(from, to, attributes)| {
            let label = attributes.into_iter().find(|(k, _)| k == "label")?.1;
            Some((from, to, label))
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

/// The events `graph --live` counts on the edge `from` -> `to` on `topic`.
fn live_count(scenario: &Scenario, pid: &str, from: &str, to: &str, topic: &str) -> Option<u64> {
    let (dot, _) = graph(scenario, &["--live", "--pid", pid]);
    dot_edges(&dot).into_iter().find_map(|(f, t, attributes)| {
        let attribute = |key: &str| {
            attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let label = attribute("label")?;
        (f == from && t == to && label.starts_with(&format!("{topic} (")))
            .then(|| attribute("events")?.parse().ok())?
    })
}

#[test]
fn the_live_graph_draws_real_subscriptions_and_counts_events_per_edge() {
    // The consumer runs in a child process: its events are counted by the
    // host all the same. Its contract allows `audit.*`, which it never
    // subscribes to; the probe subscribes to `test.ping` too.
    let scenario = Scenario::new(
        "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n    \
         publishes: [test.ping]\n    subscribes: []\n  - name: mod-dummy-consumer\n    \
         isolation: process\n    publishes: []\n    subscribes: [test.ping, \"audit.*\"]\n",
    );
    let mut run = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    run.wait_for("app.started", Duration::from_secs(240))
        .expect("the orchestrator starts");
    let pid = run.pid().to_string();
    let edge = || {
        live_count(
            &scenario,
            &pid,
            "mod-dummy-producer",
            "mod-dummy-consumer",
            "test.ping",
        )
    };
    let mut first = None;
    wait_until("the edge carries pings", Duration::from_secs(30), || {
        first = edge().filter(|&n| n > 0);
        first.is_some()
    });
    let first = first.unwrap_or_default();
    wait_until("its count grows", Duration::from_secs(30), || {
        edge().is_some_and(|n| n >= first + 3)
    });
    let (dot, notes) = graph(&scenario, &["--live", "--pid", &pid]);
    assert!(
        dot.contains("mod-dummy-consumer (process)"),
        "the isolated module is marked:\n{dot}"
    );
    assert!(
        notes.contains(
            "'mod-dummy-consumer' may subscribe to audit.* (modules.yaml) but is not subscribed"
        ),
        "a declared subscription the module did not make is named:\n{notes}"
    );
    // The host's own timer events are not dataflow: no edge from the host.
    assert!(
        dot_edges(&dot)
            .iter()
            .all(|(f, t, _)| f != "mod-dummy-producer" || t != "mod-dummy-producer"),
        "{dot}"
    );
    let (svg, _) = graph(&scenario, &["--live", "--pid", &pid, "--format", "svg"]);
    let document = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    assert!(
        document
            .descendants()
            .filter_map(|n| n.text())
            .any(|t| t.contains("test.ping (") && t.contains("events)")),
        "the SVG labels the edge with its count:\n{svg}"
    );
    run.signal(nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    let status = run.wait_exit(Duration::from_secs(30)).expect("it stops");
    assert_eq!(status.code(), Some(0), "{}", run.output());
}
