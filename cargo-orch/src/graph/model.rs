//! The graph of an application as its configuration declares it.

use std::collections::HashMap;

use orch_config::{AppConfig, Isolation, ModuleSpec};
use orch_runtime::typing::{self, TopicTypes};

use super::overlap;

/// The bridge's node id.
pub const BRIDGE: &str = "(NATS bridge)";

/// What a node stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A module; `isolated` when it runs in a child process.
    Module {
        /// `isolation: process`.
        isolated: bool,
        /// It declares no `publishes:` or no `subscribes:`.
        undeclared: bool,
    },
    /// The NATS bridge (exports, imports, shared work).
    Bridge,
}

/// A node: a module or the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// Its id (the module's name).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
}

/// Events on `topic` from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The publisher (or the bridge, for imports).
    pub from: String,
    /// The subscriber (or the bridge, for exports).
    pub to: String,
    /// The topic (or pattern) as the publisher declares it; with `--live`,
    /// the topic the events had.
    pub topic: String,
    /// With `--live`: events the subscriber's handler was given on this edge
    /// so far (`Some(0)`: subscribed, nothing came yet).
    pub events: Option<u64>,
    /// The payload's type, when the publisher types the topic.
    pub type_name: Option<String>,
    /// The subscriber could not read what the publisher sends (typed topics).
    pub conflict: bool,
}

/// The graph, and what does not connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Modules in start-up order, then the bridge if any.
    pub nodes: Vec<GraphNode>,
    /// Edges, sorted.
    pub edges: Vec<Edge>,
    /// Topics nobody hears or feeds, modules that declare no contract.
    pub notes: Vec<String>,
}

/// The bridge's topics: exported (and shared work) and imported patterns.
struct BridgeTopics {
    out: Vec<String>,
    in_: Vec<String>,
}

fn bridge_topics(config: &AppConfig) -> Option<BridgeTopics> {
    let nats = &config.main.bridge.as_ref()?.nats;
    let mut out = nats.export.clone();
    out.extend(
        nats.work
            .iter()
            .flat_map(|group| group.topics.iter().cloned()),
    );
    Some(BridgeTopics {
        out,
        in_: nats.import.clone(),
    })
}

/// What a module's missing contract keeps from the graph, if it lacks one.
pub fn contract_note(spec: &ModuleSpec) -> Option<String> {
    let contract = &spec.contract;
    let missing = match (&contract.publishes, &contract.subscribes) {
        (None, None) => "publishes` or `subscribes",
        (None, Some(_)) => "publishes",
        (Some(_), None) => "subscribes",
        (Some(_), Some(_)) => return None,
    };
    Some(format!(
        "module '{}' declares no `{missing}` in modules.yaml: its edges cannot all be drawn",
        spec.name
    ))
}

/// The graph of the enabled modules of `config`.
pub fn from_config(config: &AppConfig) -> Graph {
    let modules: Vec<&ModuleSpec> = config.startup_order();
    let bridge = bridge_topics(config);
    let mut graph = Graph::default();
    for spec in &modules {
        let contract = &spec.contract;
        let undeclared = contract.publishes.is_none() || contract.subscribes.is_none();
        graph.nodes.push(GraphNode {
            id: spec.name.clone(),
            kind: NodeKind::Module {
                isolated: spec.isolation == Isolation::Process,
                undeclared,
            },
        });
        graph.notes.extend(contract_note(spec));
    }
    if bridge.is_some() {
        graph.nodes.push(GraphNode {
            id: BRIDGE.to_owned(),
            kind: NodeKind::Bridge,
        });
    }
    let subscribes = |spec: &ModuleSpec| spec.contract.subscribes.clone().unwrap_or_default();
    let publishes = |spec: &ModuleSpec| spec.contract.publishes.clone().unwrap_or_default();
    for publisher in &modules {
        for topic in publishes(publisher) {
            let mut heard = false;
            for subscriber in &modules {
                if subscribes(subscriber).iter().any(|p| overlap(&topic, p)) {
                    heard = true;
                    graph.edges.push(Edge {
                        from: publisher.name.clone(),
                        to: subscriber.name.clone(),
                        topic: topic.clone(),
                        events: None,
                        type_name: None,
                        conflict: false,
                    });
                }
            }
            if let Some(bridge) = &bridge
                && bridge.out.iter().any(|p| overlap(&topic, p))
            {
                heard = true;
                graph.edges.push(Edge {
                    from: publisher.name.clone(),
                    to: BRIDGE.to_owned(),
                    topic: topic.clone(),
                    events: None,
                    type_name: None,
                    conflict: false,
                });
            }
            if !heard {
                graph.notes.push(format!(
                    "'{}' publishes {topic}: nobody here subscribes to it and the bridge does not export it",
                    publisher.name
                ));
            }
        }
    }
    for subscriber in &modules {
        for pattern in subscribes(subscriber) {
            let fed_here = modules
                .iter()
                .any(|p| publishes(p).iter().any(|t| overlap(t, &pattern)));
            let imported = bridge
                .as_ref()
                .is_some_and(|b| b.in_.iter().any(|i| overlap(i, &pattern)));
            if imported {
                graph.edges.push(Edge {
                    from: BRIDGE.to_owned(),
                    to: subscriber.name.clone(),
                    topic: pattern.clone(),
                    events: None,
                    type_name: None,
                    conflict: false,
                });
            }
            if !fed_here && !imported {
                graph.notes.push(format!(
                    "'{}' subscribes to {pattern}: nothing here publishes it and the bridge does not import it",
                    subscriber.name
                ));
            }
        }
    }
    graph.edges.sort();
    graph.edges.dedup();
    graph
}

/// `config` with each typed module's topics as the contract lists it does
/// not declare in modules.yaml (typed topics are declarations too).
pub fn typed_contracts(config: &AppConfig, types: &HashMap<String, TopicTypes>) -> AppConfig {
    let mut config = config.clone();
    for spec in &mut config.modules {
        let Some(typed) = types.get(&spec.name) else {
            continue;
        };
        let contract = &mut spec.contract;
        if contract.publishes.is_none() {
            contract.publishes = Some(typed.publishes.keys().cloned().collect());
        }
        if contract.subscribes.is_none() {
            contract.subscribes = Some(typed.subscribes.keys().cloned().collect());
        }
    }
    config
}

/// Names each edge's payload type from the publishers' typed topics, and
/// marks (and notes) the edges whose subscriber could not read it.
pub fn annotate_types(graph: &mut Graph, types: &HashMap<String, TopicTypes>) {
    for edge in &mut graph.edges {
        let Some(sent) = types.get(&edge.from) else {
            continue;
        };
        edge.type_name = sent
            .published(&edge.topic)
            .map(|(_, schema)| TopicTypes::type_name(schema).to_owned());
        let Some(read) = types.get(&edge.to) else {
            continue;
        };
        for conflict in typing::conflicts((&edge.from, sent), (&edge.to, read)) {
            if overlap(&conflict.topic, &edge.topic) {
                edge.conflict = true;
                let note = format!("type conflict: {conflict}");
                if !graph.notes.contains(&note) {
                    graph.notes.push(note);
                }
            }
        }
    }
}
