//! Singleton modules end to end: three orchestrators on a real nats-server
//! (loopback, JetStream), each declaring the producer `singleton: true`.
//! It runs on one node at a time; killed, its holder's lease expires and
//! another node starts it; stopped cleanly, it moves at once; a holder
//! frozen past its lease (SIGSTOP) and woken (SIGCONT) stops it, and none
//! of its events published after waking is accepted by the others.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, Scenario, orch_bin, workspace_root};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const MODULES: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-producer\n    singleton: true\n    config:\n      publish_interval: 100ms\n  \
     - name: mod-dummy-consumer\n";

struct Node {
    name: String,
    scenario: Scenario,
    process: Option<OrchProcess>,
}

impl Node {
    fn new(server: &NatsServer, name: &str) -> Self {
        Self::with_modules(server, name, MODULES)
    }

    fn with_modules(server: &NatsServer, name: &str, modules: &str) -> Self {
        let scenario = Scenario::with_main(
            modules,
            &orch_e2e::bridge::section(
                &server.url(),
                name,
                "    presence:\n      bucket: e2e_single\n      ttl: 2s\n",
            ),
        );
        let mut node = Self {
            name: name.to_owned(),
            scenario,
            process: None,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let process =
            OrchProcess::spawn(self.scenario.command(&["run"])).expect("spawn cargo-orch");
        self.process = Some(process);
    }

    fn process(&mut self) -> &mut OrchProcess {
        self.process.as_mut().expect("running")
    }

    /// Whether the producer runs here now (its own status says so).
    fn runs_producer(&self) -> bool {
        let Some(process) = &self.process else {
            return false;
        };
        let output = Command::new(orch_bin())
            .current_dir(workspace_root())
            .args([
                "orch",
                "status",
                "--json",
                "--pid",
                &process.pid().to_string(),
            ])
            .output()
            .expect("status");
        let reports: serde_json::Value = match serde_json::from_slice(&output.stdout) {
            Ok(reports) => reports,
            Err(e) => {
                eprintln!(
                    "status of {}: not JSON ({e}): {}{}",
                    self.name,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                return false;
            }
        };
        if std::env::var_os("SINGLETON_DEBUG").is_some() {
            eprintln!("status of {}: {}", self.name, reports[0]["modules"]);
        }
        reports[0]["modules"].as_array().is_some_and(|modules| {
            modules
                .iter()
                .any(|m| m["name"] == "mod-dummy-producer" && m["state"] == "running")
        })
    }
}

/// The live node that runs the producer, other than `not`; waits up to
/// `within` (asking each node's own status).
fn next_holder(nodes: &mut [Node], not: Option<usize>, within: Duration) -> usize {
    let until = Instant::now() + within;
    loop {
        for (i, node) in nodes.iter_mut().enumerate() {
            if Some(i) != not && node.process.is_some() && node.runs_producer() {
                return i;
            }
            if let Some(process) = node.process.as_mut() {
                process.collect_for(Duration::from_millis(10));
            }
        }
        if Instant::now() >= until {
            let outputs: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    n.process
                        .as_ref()
                        .map(|p| format!("--- {}\n{}", n.name, p.output()))
                })
                .collect();
            panic!(
                "no node started the singleton within {within:?}:\n{}",
                outputs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// At most one live node runs the producer.
fn at_most_one(nodes: &[Node]) {
    let running: Vec<&str> = nodes
        .iter()
        .filter(|n| n.runs_producer())
        .map(|n| n.name.as_str())
        .collect();
    assert!(running.len() <= 1, "the singleton runs on {running:?}");
}

fn three_nodes(server: &NatsServer) -> Vec<Node> {
    let mut nodes: Vec<Node> = ["single-a", "single-b", "single-c"]
        .iter()
        .map(|name| Node::new(server, name))
        .collect();
    for node in &mut nodes {
        node.process().wait_for("app.started", BUILD).unwrap();
    }
    nodes
}

#[test]
fn a_singleton_runs_once_and_moves_when_its_holder_dies_or_stops() {
    kill_cycles(3);
}

#[test]
#[ignore = "slow lane (twenty kill cycles): cargo xtask ci runs it"]
fn over_twenty_kill_cycles_the_singleton_never_runs_twice() {
    kill_cycles(20);
}

/// A singleton without presence is a configuration error naming the key.
#[test]
fn a_singleton_needs_presence() {
    let scenario = Scenario::new("modules:\n  - name: mod-dummy-producer\n    singleton: true\n");
    let output = scenario.command(&["run"]).output().expect("run");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`singleton: true` needs `bridge.nats.presence`") && text.contains("hint"),
        "{text}"
    );
}

/// Kills the holder `cycles` times (restarting it each time): another node
/// takes over, both others hear the holder is lost, and no sampled instant
/// has two nodes running it; then a clean stop hands it over.
fn kill_cycles(cycles: usize) {
    let server = NatsServer::start().expect("nats-server");
    let mut nodes = three_nodes(&server);
    let mut holder = next_holder(&mut nodes, None, SHORT);
    at_most_one(&nodes);
    for _cycle in 0..cycles {
        let killed = nodes[holder].name.clone();
        nodes[holder]
            .process()
            .signal(Signal::SIGKILL)
            .expect("SIGKILL");
        let _ = nodes[holder].process().wait_exit(SHORT);
        nodes[holder].process = None;
        let next = next_holder(&mut nodes, Some(holder), SHORT);
        assert_ne!(next, holder);
        at_most_one(&nodes);
        for node in nodes.iter_mut().filter(|n| n.process.is_some()) {
            node.process()
                .wait_for_match(
                    |t| t.contains("EVENT bridge.node_lost {") && t.contains(&killed),
                    "node_lost of the killed holder",
                    SHORT,
                )
                .unwrap();
        }
        nodes[holder].start();
        nodes[holder]
            .process()
            .wait_for("app.started", BUILD)
            .unwrap();
        at_most_one(&nodes);
        holder = next;
    }
    // A clean stop hands the lease over at once (no TTL to wait for).
    nodes[holder].process().stop_cleanly();
    nodes[holder].process = None;
    let next = next_holder(&mut nodes, Some(holder), SHORT);
    assert_ne!(next, holder);
    at_most_one(&nodes);
    for node in nodes.iter_mut().filter(|n| n.process.is_some()) {
        node.process().stop_cleanly();
    }
}

#[test]
fn a_frozen_holder_that_wakes_up_stops_and_none_of_its_late_events_is_accepted() {
    let server = NatsServer::start().expect("nats-server");
    let mut nodes = three_nodes(&server);
    let holder = next_holder(&mut nodes, None, SHORT);
    nodes[holder]
        .process()
        .signal(Signal::SIGSTOP)
        .expect("SIGSTOP");
    let next = next_holder(&mut nodes, Some(holder), SHORT);
    assert_ne!(next, holder);
    let third = 3 - holder - next;
    // Both others watch: the new holder (which sees its own fence, never
    // imported) and the third node (which imported the new holder's).
    let tap_on = |node: &Node| {
        let pid = node.process.as_ref().expect("running").pid().to_string();
        let mut command =
            node.scenario
                .command(&["tap", "test.ping", "--json", "--pid", pid.as_str()]);
        command.env_remove("RUST_LOG");
        OrchProcess::spawn(command).expect("spawn tap")
    };
    let mut taps = [tap_on(&nodes[next]), tap_on(&nodes[third])];
    std::thread::sleep(Duration::from_millis(500));
    let woke_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    nodes[holder]
        .process()
        .signal(Signal::SIGCONT)
        .expect("SIGCONT");
    nodes[holder]
        .process()
        .wait_for(
            "[SINGLETON] 'mod-dummy-producer' stopped on this node",
            SHORT,
        )
        .unwrap();
    at_most_one(&nodes);
    let frozen = nodes[holder].name.clone();
    for tap in &mut taps {
        tap.collect_for(Duration::from_secs(2));
        let late: Vec<String> = tap
            .lines_with("\"topic\":\"test.ping\"")
            .into_iter()
            .filter(|line| {
                let event: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                event["origin"] == frozen.as_str()
                    && event["at_ms"].as_u64().is_some_and(|at| at >= woke_ms)
            })
            .collect();
        assert!(
            late.is_empty(),
            "events the woken holder published were accepted: {late:?}"
        );
        tap.signal(Signal::SIGINT).expect("SIGINT");
    }
    for node in nodes.iter_mut() {
        node.process().stop_cleanly();
    }
}

/// A holder on which the singleton cannot start (here its library panics
/// in initialize) releases the lease at once, and another node runs it.
#[test]
fn a_holder_that_cannot_start_the_singleton_hands_it_to_another_node() {
    let server = NatsServer::start().expect("nats-server");
    let broken = "modules:\n  - name: mod-dummy-producer\n    package: fixture-panic-init\n    \
                  singleton: true\n";
    let mut a = Node::with_modules(&server, "single-broken", broken);
    a.process().wait_for("app.started", BUILD).unwrap();
    a.process()
        .wait_for("lease released (the module did not start here)", SHORT)
        .unwrap();
    let mut b = Node::new(&server, "single-sound");
    b.process().wait_for("app.started", BUILD).unwrap();
    let mut nodes = [a, b];
    let holder = next_holder(&mut nodes, None, SHORT);
    assert_eq!(nodes[holder].name, "single-sound");
    assert!(
        nodes[0]
            .process()
            .lines_with("holds the lease here but did not start")
            .len()
            <= 2,
        "the broken node keeps taking the lease back:\n{}",
        nodes[0].process().output()
    );
    for node in nodes.iter_mut() {
        node.process().stop_cleanly();
    }
}
