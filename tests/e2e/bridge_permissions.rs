//! NATS accounts and subject permissions are the trust boundary between
//! orchestrators: a nats-server with one user per node (the example of the
//! book's NATS bridge page, as it is: cargo-orch's docs_check compares the
//! two), under which the bridge works and the server refuses
//! what a node may not do. Real orchestrators, a real nats-server on
//! loopback.

use std::time::Duration;

use orch_e2e::{NatsServer, OrchProcess, RawNats, Scenario, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(30);

const PRODUCER: &str =
    "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";
const CONSUMER: &str = "modules:\n  - name: mod-dummy-consumer\n";

fn start(scenario: &Scenario) -> OrchProcess {
    OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch")
}

/// The consumer info of `durable` on `stream`, through the JetStream API.
fn consumer_info(peer: &mut RawNats, stream: &str, durable: &str) -> serde_json::Value {
    let answer = peer
        .request(&format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"), b"")
        .expect("consumer info");
    serde_json::from_slice(&answer.payload).expect("consumer info is JSON")
}

/// One user per node, as the book's trust-boundary section has it: each
/// publishes only what it exports, reaches only its own durable consumer,
/// and reads only its own inbox (`_INBOX.<node>.>`).
const PER_NODE_PERMISSIONS: &str = r#"
authorization {
  users = [
    {
      user: "perm-a"
      password: "perm-a-secret"
      permissions: {
        publish: {
          allow: [
            "orch.e2e.test.>",
            "$JS.API.STREAM.INFO.ORCH_PERM",
            "$JS.API.STREAM.CREATE.ORCH_PERM",
            "$JS.API.CONSUMER.INFO.ORCH_PERM.perm-a",
            "$JS.API.CONSUMER.CREATE.ORCH_PERM.perm-a",
            "$JS.API.CONSUMER.MSG.NEXT.ORCH_PERM.perm-a",
            "$JS.ACK.ORCH_PERM.perm-a.>"
          ]
        }
        subscribe: { allow: ["_INBOX.perm-a.>"] }
      }
    },
    {
      user: "perm-b"
      password: "perm-b-secret"
      permissions: {
        publish: {
          allow: [
            "$JS.API.STREAM.INFO.ORCH_PERM",
            "$JS.API.STREAM.CREATE.ORCH_PERM",
            "$JS.API.CONSUMER.INFO.ORCH_PERM.perm-b",
            "$JS.API.CONSUMER.CREATE.ORCH_PERM.perm-b",
            "$JS.API.CONSUMER.MSG.NEXT.ORCH_PERM.perm-b",
            "$JS.ACK.ORCH_PERM.perm-b.>"
          ]
        }
        subscribe: { allow: ["_INBOX.perm-b.>"] }
      }
    }
  ]
}
"#;

#[test]
fn per_node_permissions_refuse_what_a_node_may_not_publish_and_the_bridge_works() {
    let server = NatsServer::start_with_settings(PER_NODE_PERMISSIONS).expect("nats-server");
    let node = |name: &str| {
        let auth = format!("    auth: {{user: {name}, password: \"{name}-secret\"}}\n");
        orch_e2e::bridge::section(
            &server.url(),
            name,
            &format!("{auth}{}", orch_e2e::bridge::jetstream("ORCH_PERM", name)),
        )
    };
    let consumer = Scenario::with_main(CONSUMER, &node("perm-b"));
    let producer = Scenario::with_main(PRODUCER, &node("perm-a"));
    let mut b = start(&consumer);
    b.wait_for("JetStream stream 'ORCH_PERM' holds orch.e2e.>", BUILD)
        .unwrap();
    b.wait_for("app.started", BUILD).unwrap();
    let mut a = start(&producer);
    a.wait_for("app.started", BUILD).unwrap();
    wait_until("node B gets node A's pings", SHORT, || {
        b.collect_for(Duration::from_millis(200));
        b.pings_received("mod-dummy-consumer").len() >= 20
    });

    // Node A's user publishing outside what it exports, node B's user
    // publishing at all under the prefix or on another node's acks, and
    // reading another node's inbox: the server refuses each.
    let mut as_a = RawNats::connect(server.port(), Some(("perm-a", "perm-a-secret"))).expect("a");
    as_a.publish("orch.e2e.alerts.fire", None, &[], b"{}")
        .expect("publish");
    as_a.subscribe("_INBOX.perm-b.>").expect("subscribe");
    as_a.publish(
        "orch.e2e.test.ping",
        None,
        &[],
        br#"{"message":"allowed","seq":1}"#,
    )
    .expect("publish");
    as_a.flush().expect("flush");
    let mut as_b = RawNats::connect(server.port(), Some(("perm-b", "perm-b-secret"))).expect("b");
    as_b.publish("orch.e2e.test.ping", None, &[], b"{}")
        .expect("publish");
    as_b.publish("$JS.ACK.ORCH_PERM.perm-a.1.1.1.1.0", None, &[], b"+TERM")
        .expect("publish");
    as_b.flush().expect("flush");
    let refused = |errors: &[String], what: &str| {
        errors
            .iter()
            .any(|e| e.contains("Permissions Violation") && e.contains(what))
    };
    assert!(
        refused(&as_a.errors, "Publish to \"orch.e2e.alerts.fire\""),
        "{:?}",
        as_a.errors
    );
    assert!(
        refused(&as_a.errors, "Subscription to \"_INBOX.perm-b.>\""),
        "{:?}",
        as_a.errors
    );
    assert_eq!(
        as_a.errors.len(),
        2,
        "what A exports is allowed: {:?}",
        as_a.errors
    );
    assert!(
        refused(&as_b.errors, "Publish to \"orch.e2e.test.ping\""),
        "{:?}",
        as_b.errors
    );
    assert!(
        refused(&as_b.errors, "Publish to \"$JS.ACK.ORCH_PERM.perm-a"),
        "{:?}",
        as_b.errors
    );
    b.wait_for("Received test.ping: allowed (seq 1)", SHORT)
        .unwrap();
    // Node B's acknowledgements go through: its user reads its consumer.
    as_b.inbox = "_INBOX.perm-b.raw".to_owned();
    let info = consumer_info(&mut as_b, "ORCH_PERM", "perm-b");
    assert!(
        info["ack_floor"]["stream_seq"].as_u64() >= Some(20),
        "{info:#}"
    );
    a.stop_cleanly();
    b.collect_for(Duration::from_millis(500));
    b.stop_cleanly();
    // The bridge itself needed nothing it was not given.
    for orch in [&a, &b] {
        let output = orch.output();
        assert!(
            !output.contains("Permissions Violation") && !output.contains("permissions"),
            "{output}"
        );
    }
    let got = b.pings_received("mod-dummy-consumer");
    assert!(got.starts_with(&[1, 2, 3]), "{got:?}");
}
