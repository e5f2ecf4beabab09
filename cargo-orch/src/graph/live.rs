//! The graph of a running orchestrator (`cargo orch graph --live`): its
//! modules' real subscriptions and the events each was given, per sender
//! and topic, on top of what the configuration declares.

use orch_config::AppConfig;
use orch_runtime::status::{ModuleState, ModuleStatus, Sender};
use orch_runtime::typing::TopicTypes;

use super::model::{BRIDGE, Edge, Graph, GraphNode, NodeKind, from_config};
use super::overlap;

/// The graph of the modules in `modules` (a status report's rows), with
/// `config`'s contracts for the edges no event has taken yet.
pub fn live(config: &AppConfig, modules: &[ModuleStatus]) -> Graph {
    let declared = from_config(config);
    let mut graph = Graph {
        nodes: declared.nodes.clone(),
        ..Graph::default()
    };
    graph.notes.extend(
        config
            .startup_order()
            .into_iter()
            .filter_map(super::model::contract_note),
    );
    for module in modules {
        let isolated = module.isolation == "process";
        match graph.nodes.iter_mut().find(|n| n.id == module.name) {
            Some(node) => {
                if let NodeKind::Module { isolated: flag, .. } = &mut node.kind {
                    *flag = isolated;
                }
            }
            None => {
                graph.notes.push(format!(
                    "module '{}' runs but is not enabled in this configuration",
                    module.name
                ));
                let at = graph
                    .nodes
                    .iter()
                    .position(|n| n.kind == NodeKind::Bridge)
                    .unwrap_or(graph.nodes.len());
                graph.nodes.insert(
                    at,
                    GraphNode {
                        id: module.name.clone(),
                        kind: NodeKind::Module {
                            isolated,
                            undeclared: true,
                        },
                    },
                );
            }
        }
    }
    for module in modules {
        for edge in &module.received {
            let from = match &edge.from {
                Sender::Module { name } => name.clone(),
                Sender::Bridge { .. } => {
                    add_bridge(&mut graph);
                    BRIDGE.to_owned()
                }
                // Timers and the host's own events are not dataflow.
                Sender::Host => continue,
            };
            graph.edges.push(Edge {
                from,
                to: module.name.clone(),
                topic: edge.topic.clone(),
                events: Some(edge.events),
                type_name: None,
                conflict: false,
            });
        }
        if module.received_others > 0 {
            graph.notes.push(format!(
                "'{}' got {} more events from senders and topics past the {} counted",
                module.name,
                module.received_others,
                orch_runtime::status::MAX_EDGES
            ));
        }
    }
    silent_edges(config, modules, &mut graph);
    // What leaves through the bridge is drawn as declared (no counts here).
    graph
        .edges
        .extend(declared.edges.into_iter().filter(|e| e.to == BRIDGE));
    graph.edges.sort();
    graph.edges.dedup();
    let types: std::collections::HashMap<String, TopicTypes> = modules
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.types.clone()?)))
        .collect();
    super::model::annotate_types(&mut graph, &types);
    graph
}

fn add_bridge(graph: &mut Graph) {
    if !graph.nodes.iter().any(|n| n.kind == NodeKind::Bridge) {
        graph.nodes.push(GraphNode {
            id: BRIDGE.to_owned(),
            kind: NodeKind::Bridge,
        });
    }
}

/// Edges a contract declares onto a real subscription that no event took
/// yet (drawn with 0), subscriptions nothing feeds, and declared
/// subscriptions the module did not make.
fn silent_edges(config: &AppConfig, modules: &[ModuleStatus], graph: &mut Graph) {
    let specs = config.startup_order();
    let imports: Vec<String> = config
        .main
        .bridge
        .as_ref()
        .map(|b| b.nats.import.clone())
        .unwrap_or_default();
    let mut silent = Vec::new();
    for module in modules {
        for pattern in &module.subscriptions {
            let mut fed = graph
                .edges
                .iter()
                .any(|e| e.to == module.name && overlap(pattern, &e.topic))
                || imports.iter().any(|i| overlap(i, pattern));
            for publisher in &specs {
                for topic in publisher.contract.publishes.iter().flatten() {
                    if !overlap(topic, pattern) {
                        continue;
                    }
                    fed = true;
                    let flowing = graph.edges.iter().any(|e| {
                        e.from == publisher.name && e.to == module.name && overlap(topic, &e.topic)
                    });
                    if !flowing {
                        silent.push(Edge {
                            from: publisher.name.clone(),
                            to: module.name.clone(),
                            topic: topic.clone(),
                            events: Some(0),
                            type_name: None,
                            conflict: false,
                        });
                    }
                }
            }
            if !fed {
                graph.notes.push(format!(
                    "'{}' subscribes to {pattern}: no event came and nothing here declares it \
                     or imports it",
                    module.name
                ));
            }
        }
        let spec = specs.iter().find(|s| s.name == module.name);
        for pattern in spec
            .and_then(|s| s.contract.subscribes.as_ref())
            .into_iter()
            .flatten()
        {
            if !module.subscriptions.contains(pattern) && module.state == ModuleState::Running {
                graph.notes.push(format!(
                    "'{}' may subscribe to {pattern} (modules.yaml) but is not subscribed to it now",
                    module.name
                ));
            }
        }
    }
    graph.edges.extend(silent);
}
