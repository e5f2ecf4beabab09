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

/// The permissions the Many machines chapter gives for presence, as they
/// are: each node publishes only its own key, so it cannot write another
/// node's record; presence works under them.
const PRESENCE_PERMISSIONS: &str = r#"
jetstream: enabled
authorization {
  users = [
    {
      user: "pres-a"
      password: "pres-a-secret"
      permissions: {
        publish: {
          allow: [
            "orch.e2e.test.>",
            "$KV.pres_nodes.pres-a",
            "$JS.API.INFO",
            "$JS.API.STREAM.INFO.KV_pres_nodes",
            "$JS.API.STREAM.CREATE.KV_pres_nodes",
            "$JS.API.CONSUMER.CREATE.KV_pres_nodes",
            "$JS.API.CONSUMER.DELETE.KV_pres_nodes.>",
            "$JS.FC.KV_pres_nodes.>"
          ]
        }
        subscribe: { allow: ["_INBOX.pres-a.>", "orch.e2e.test.>"] }
      }
    },
    {
      user: "pres-b"
      password: "pres-b-secret"
      permissions: {
        publish: {
          allow: [
            "orch.e2e.test.>",
            "$KV.pres_nodes.pres-b",
            "$JS.API.INFO",
            "$JS.API.STREAM.INFO.KV_pres_nodes",
            "$JS.API.STREAM.CREATE.KV_pres_nodes",
            "$JS.API.CONSUMER.CREATE.KV_pres_nodes",
            "$JS.API.CONSUMER.DELETE.KV_pres_nodes.>",
            "$JS.FC.KV_pres_nodes.>"
          ]
        }
        subscribe: { allow: ["_INBOX.pres-b.>", "orch.e2e.test.>"] }
      }
    }
  ]
}
"#;

#[test]
fn under_per_node_permissions_presence_works_and_no_node_writes_another_s_record() {
    let server = NatsServer::start_with_settings(PRESENCE_PERMISSIONS).expect("nats-server");
    let start = |name: &str| {
        let scenario = Scenario::with_main(
            MODULES,
            &orch_e2e::bridge::section(
                &server.url(),
                name,
                &format!(
                    "    auth: {{user: {name}, password: \"{name}-secret\"}}\n    \
                     presence:\n      bucket: pres_nodes\n      ttl: 2s\n"
                ),
            ),
        );
        let process = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
        (scenario, process)
    };
    let (_a_config, mut a) = start("pres-a");
    let (_b_config, mut b) = start("pres-b");
    a.wait_for("app.started", BUILD).unwrap();
    b.wait_for("app.started", BUILD).unwrap();
    a.wait_for("node 'pres-b' joined", SHORT).unwrap();
    b.wait_for("node 'pres-a' joined", SHORT).unwrap();
    let mut as_a = orch_e2e::RawNats::connect(server.port(), Some(("pres-a", "pres-a-secret")))
        .expect("connect as pres-a");
    as_a.publish(
        "$KV.pres_nodes.pres-b",
        None,
        &[],
        br#"{"node":"pres-b","incarnation":"forged","app":"x","version":"1","ready":false,"modules":[]}"#,
    )
    .expect("publish");
    as_a.flush().expect("flush");
    assert!(
        as_a.errors
            .iter()
            .any(|e| e.contains("Permissions Violation") && e.contains("$KV.pres_nodes.pres-b")),
        "{:?}",
        as_a.errors
    );
    a.collect_for(Duration::from_secs(1));
    for process in [&a, &b] {
        assert!(
            process.lines_with("Permissions Violation").is_empty()
                && process.lines_with("presence: cannot").is_empty(),
            "{}",
            process.output()
        );
    }
    assert!(
        a.lines_with("incarnation forged").is_empty(),
        "the forged record never arrived"
    );
    b.stop_cleanly();
    a.wait_for_match(
        |t| t.contains("EVENT bridge.node_lost {") && t.contains("pres-b"),
        "pres-b lost",
        SHORT,
    )
    .unwrap();
    a.stop_cleanly();
}
