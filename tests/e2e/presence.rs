//! Presence end to end: three orchestrators with `bridge.nats.presence` on
//! a real nats-server (JetStream, loopback). Each sees the others join;
//! `cargo orch status --cluster` shows every node and module; a node killed
//! with SIGKILL is reported lost (`expired`) to both others, one stopped
//! cleanly (`stopped`) at once.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, Scenario, orch_bin, wait_until, workspace_root};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const MODULES: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-consumer\n";

fn node(server: &NatsServer, name: &str) -> (Scenario, OrchProcess) {
    let scenario = Scenario::with_main(
        MODULES,
        &orch_e2e::bridge::section(
            &server.url(),
            name,
            "    presence:\n      bucket: e2e_nodes\n      ttl: 2s\n",
        ),
    );
    let process = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    (scenario, process)
}

/// `cargo orch status --cluster [--json] --pid PID`.
fn cluster(pid: u32, json: bool) -> (bool, String) {
    let mut command = Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .args(["orch", "status", "--cluster", "--pid", &pid.to_string()]);
    if json {
        command.arg("--json");
    }
    let output = command.output().expect("cargo orch status --cluster");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The node ids `status --cluster --json` lists.
fn cluster_nodes(pid: u32) -> Vec<String> {
    let (ok, text) = cluster(pid, true);
    if !ok {
        return Vec::new();
    }
    let nodes: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    nodes
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["node"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn nodes_see_each_other_join_and_are_told_when_one_is_killed_or_stops() {
    let server = NatsServer::start().expect("nats-server");
    let (_a_config, mut a) = node(&server, "node-a");
    let (_b_config, mut b) = node(&server, "node-b");
    let (_c_config, mut c) = node(&server, "node-c");
    for process in [&mut a, &mut b, &mut c] {
        process.wait_for("app.started", BUILD).unwrap();
    }
    for (process, others) in [
        (&mut a, ["node-b", "node-c"]),
        (&mut b, ["node-a", "node-c"]),
        (&mut c, ["node-a", "node-b"]),
    ] {
        for other in others {
            process
                .wait_for(&format!("node '{other}' joined"), SHORT)
                .unwrap();
        }
    }
    let a_pid = a.pid();
    wait_until("the cluster view lists three nodes", SHORT, || {
        cluster_nodes(a_pid) == ["node-a", "node-b", "node-c"]
    });
    let (ok, table) = cluster(a_pid, false);
    assert!(ok, "{table}");
    assert!(
        table.contains("cluster of 3 node(s)")
            && table.contains("mod-dummy-consumer")
            && table.contains("running"),
        "{table}"
    );

    // SIGKILL: no chance to delete its record; the others notice silence.
    c.signal(Signal::SIGKILL).expect("SIGKILL node-c");
    for process in [&mut a, &mut b] {
        let line = process.wait_for("EVENT bridge.node_lost {", SHORT).unwrap();
        assert!(
            line.text.contains("node-c") && line.text.contains("expired"),
            "{}",
            line.text
        );
    }
    // A clean stop deletes the record: node-a is told it stopped.
    b.stop_cleanly();
    let line = a
        .wait_for_match(
            |t| t.contains("EVENT bridge.node_lost {") && t.contains("node-b"),
            "node-b lost",
            SHORT,
        )
        .unwrap();
    assert!(line.text.contains("stopped"), "{}", line.text);
    wait_until("the cluster view shrinks to node-a", SHORT, || {
        cluster_nodes(a_pid) == ["node-a"]
    });
    a.stop_cleanly();
}

/// A presence record written by something else than an orchestrator (a
/// forged or broken one) is refused and named; the node runs on.
#[test]
fn a_forged_presence_record_is_refused_and_the_node_runs_on() {
    let server = NatsServer::start().expect("nats-server");
    let (_config, mut a) = node(&server, "node-a");
    a.wait_for("app.started", BUILD).unwrap();
    a.wait_for("presence: node 'node-a' in bucket 'e2e_nodes'", SHORT)
        .unwrap();
    // The KV bucket's subject for key `ghost`: a record naming another node,
    // and bytes that are no record at all.
    server
        .publish_raw(
            "$KV.e2e_nodes.ghost",
            br#"{"node":"node-a","incarnation":"1","app":"x","version":"1","ready":true,"modules":[]}"#,
        )
        .expect("publish a forged record");
    a.wait_for("record under key 'ghost' refused", SHORT)
        .unwrap();
    server
        .publish_raw("$KV.e2e_nodes.junk", b"\xff\xfe not json")
        .expect("publish junk");
    a.collect_for(Duration::from_millis(500));
    assert!(
        cluster_nodes(a.pid()) == ["node-a"],
        "a refused record never enters the view"
    );
    a.stop_cleanly();
}
